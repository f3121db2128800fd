//! Statistics of a FIFO / kefu comparison and its Markdown report.

use std::fmt::Write as _;

use super::{generate, local_midnight, run, Policy, Scenario, SimTicket, HOUR_MS, MINUTE_MS};
use crate::crm::CustomerTier;
use crate::tickets::{PriorityTable, SlaSettings};

/// Waits of one group of tickets under one policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaitStats {
    pub tickets: usize,
    /// First-response waits in business minutes (served tickets only).
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    /// Share of tickets answered by their first-response due time.
    pub sla_met: f64,
    pub unserved: usize,
}

/// One tier (or all tickets): FIFO next to kefu.
#[derive(Debug, Clone, PartialEq)]
pub struct TierRow {
    /// A tier name, or "all".
    pub label: &'static str,
    pub fifo: WaitStats,
    pub kefu: WaitStats,
}

impl TierRow {
    /// Relative change of the mean wait from FIFO to kefu (-0.6 is 60% lower).
    pub fn mean_change(&self) -> f64 {
        if self.fifo.mean > 0.0 {
            self.kefu.mean / self.fifo.mean - 1.0
        } else {
            0.0
        }
    }
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub seeds: Vec<u64>,
    pub days: u32,
    pub tickets: usize,
    pub by_priority: [usize; 4],
    /// Work offered over agent capacity in open time: the whole period, and the busiest
    /// local hour (averaged over days and seeds).
    pub load: f64,
    pub peak_load: f64,
    pub peak_hour: usize,
    pub max_queue_fifo: usize,
    pub max_queue_kefu: usize,
    pub rows: Vec<TierRow>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn stats(sla: &SlaSettings, tickets: &[(&SimTicket, Option<i64>)]) -> WaitStats {
    let mut waits: Vec<f64> = tickets
        .iter()
        .filter_map(|(t, s)| {
            s.map(|s| sla.calendar.business_ms_between(t.arrival_ms, s) as f64 / MINUTE_MS as f64)
        })
        .collect();
    waits.sort_by(f64::total_cmp);
    let met = tickets
        .iter()
        .filter(|(t, s)| s.is_some_and(|s| s <= t.first_response_due_ms))
        .count();
    WaitStats {
        tickets: tickets.len(),
        mean: if waits.is_empty() {
            0.0
        } else {
            waits.iter().sum::<f64>() / waits.len() as f64
        },
        p50: percentile(&waits, 0.5),
        p90: percentile(&waits, 0.9),
        sla_met: if tickets.is_empty() {
            1.0
        } else {
            met as f64 / tickets.len() as f64
        },
        unserved: tickets.len() - waits.len(),
    }
}

/// Agent capacity (conversation-ms) on shift in open time between two instants.
fn capacity_ms(scenario: &Scenario, sla: &SlaSettings, from: i64, to: i64) -> i64 {
    let mut total = 0;
    let mut day = scenario.start;
    for _ in 0..scenario.days {
        let midnight = local_midnight(sla, day);
        for a in &scenario.agents {
            let s = (midnight + i64::from(a.start_min) * MINUTE_MS).max(from);
            let e = (midnight + i64::from(a.end_min) * MINUTE_MS).min(to);
            total += sla.calendar.business_ms_between(s, e);
        }
        day = day.tomorrow().unwrap_or(day);
    }
    total * scenario.capacity.max(1) as i64
}

/// Generate and serve the scenario for every seed, FIFO and kefu, and pool the results.
pub fn compare(
    scenario: &Scenario,
    sla: &SlaSettings,
    table: &PriorityTable,
    seeds: &[u64],
) -> Comparison {
    let mut fifo_all = Vec::new();
    let mut kefu_all = Vec::new();
    let mut tickets_all = Vec::new();
    let (mut max_fifo, mut max_kefu) = (0, 0);
    for &seed in seeds {
        let tickets = generate(scenario, sla, table, seed);
        let fifo = run(scenario, sla, &tickets, Policy::Fifo);
        let kefu = run(scenario, sla, &tickets, Policy::Kefu);
        max_fifo = max_fifo.max(fifo.max_queue);
        max_kefu = max_kefu.max(kefu.max_queue);
        fifo_all.extend(fifo.first_response_ms);
        kefu_all.extend(kefu.first_response_ms);
        tickets_all.extend(tickets);
    }
    let start = local_midnight(sla, scenario.start);
    let end = start + i64::from(scenario.days) * 24 * HOUR_MS;
    let work: i64 = tickets_all.iter().map(|t| t.work_ms).sum();
    let runs = seeds.len().max(1) as f64;
    let cap = capacity_ms(scenario, sla, start, end) as f64 * runs;
    let load = if cap > 0.0 { work as f64 / cap } else { 0.0 };
    // The busiest local hour among those with agents on shift.
    let (mut peak_load, mut peak_hour) = (0.0, 0);
    for hour in 0..24usize {
        let mut hour_cap = 0i64;
        let mut day = scenario.start;
        for _ in 0..scenario.days {
            let h0 = local_midnight(sla, day) + hour as i64 * HOUR_MS;
            hour_cap += capacity_ms(
                &Scenario {
                    start: day,
                    days: 1,
                    ..scenario.clone()
                },
                sla,
                h0,
                h0 + HOUR_MS,
            );
            day = day.tomorrow().unwrap_or(day);
        }
        if hour_cap == 0 {
            continue;
        }
        let hour_work: i64 = tickets_all
            .iter()
            .filter(|t| {
                let dt = sla.calendar.time_zone().to_datetime(
                    jiff::Timestamp::from_millisecond(t.arrival_ms).unwrap_or_default(),
                );
                dt.hour() as usize == hour
            })
            .map(|t| t.work_ms)
            .sum();
        let l = hour_work as f64 / (hour_cap as f64 * runs);
        if l > peak_load {
            (peak_load, peak_hour) = (l, hour);
        }
    }
    let mut by_priority = [0usize; 4];
    for t in &tickets_all {
        if let Some(slot) = by_priority.get_mut(t.priority.rank() as usize) {
            *slot += 1;
        }
    }
    let row = |label: &'static str, keep: &dyn Fn(&SimTicket) -> bool| {
        let pick = |served: &[Option<i64>]| {
            tickets_all
                .iter()
                .zip(served.iter().copied())
                .filter(|(t, _)| keep(t))
                .collect::<Vec<_>>()
        };
        TierRow {
            label,
            fifo: stats(sla, &pick(&fifo_all)),
            kefu: stats(sla, &pick(&kefu_all)),
        }
    };
    let mut rows: Vec<TierRow> = CustomerTier::ALL
        .iter()
        .map(|&tier| row(tier.as_str(), &|t: &SimTicket| t.tier == tier))
        .collect();
    rows.push(row("all", &|_: &SimTicket| true));
    Comparison {
        seeds: seeds.to_vec(),
        days: scenario.days,
        tickets: tickets_all.len(),
        by_priority,
        load,
        peak_load,
        peak_hour,
        max_queue_fifo: max_fifo,
        max_queue_kefu: max_kefu,
        rows,
    }
}

fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn signed_pct(x: f64) -> String {
    format!("{:+.0}%", x * 100.0)
}

impl Comparison {
    pub fn row(&self, label: &str) -> Option<&TierRow> {
        self.rows.iter().find(|r| r.label == label)
    }

    /// The scenario, the table, and whether the target (VIP mean wait at least 60% lower
    /// than FIFO, normal customers at most 10% worse) is met.
    pub fn render(&self, scenario: &Scenario, sla: &SlaSettings) -> String {
        let mut out = String::new();
        let seeds = match self.seeds.as_slice() {
            [one] => format!("seed {one}"),
            [first, .., last] => {
                format!("seeds {first}–{last} ({} runs, pooled)", self.seeds.len())
            }
            [] => "no seeds".into(),
        };
        let days = self.days;
        let _ = writeln!(
            out,
            "Queue simulation, {seeds}, {days} day(s) from {} ({:?}).\n",
            scenario.start,
            scenario.start.weekday()
        );
        let runs = self.seeds.len().max(1) * days.max(1) as usize;
        let _ = writeln!(
            out,
            "- arrivals: {} tickets, {:.0} a day on average (Poisson, mean {:.0}/day, most in the local hour {:02}:00); tiers {}",
            self.tickets,
            self.tickets as f64 / runs as f64,
            scenario.tickets_per_day,
            scenario
                .hourly_weights
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(h, _)| h),
            scenario
                .tier_mix
                .iter()
                .map(|(t, w)| format!("{} {:.0}%", t.as_str(), w * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            out,
            "- priorities (default table, {:.0}% raised one step): urgent {}, high {}, normal {}, low {}",
            scenario.raised_share * 100.0,
            self.by_priority[0],
            self.by_priority[1],
            self.by_priority[2],
            self.by_priority[3]
        );
        let _ = writeln!(
            out,
            "- agents: {}; {} conversations at a time each; handling time log-normal, median {} min, sigma {} (senior ×{})",
            scenario
                .agents
                .iter()
                .map(|a| format!("{} {}–{}", a.name, hhmm(a.start_min), hhmm(a.end_min)))
                .collect::<Vec<_>>()
                .join(", "),
            scenario.capacity,
            scenario.handle_median_min,
            scenario.handle_sigma,
            scenario.senior_speed
        );
        let _ = writeln!(
            out,
            "- calendar {} (shifts are worked inside its windows); first-response SLA urgent {} / high {} / normal {} / low {} business minutes",
            sla.calendar.time_zone().iana_name().unwrap_or("(fixed offset)"),
            sla.urgent.first_response_min,
            sla.high.first_response_min,
            sla.normal.first_response_min,
            sla.low.first_response_min
        );
        let _ = writeln!(
            out,
            "- load: work offered is {} of agent capacity in open time; busiest hour {:02}:00 at {}; longest queue FIFO {}, kefu {}\n",
            pct(self.load),
            self.peak_hour,
            pct(self.peak_load),
            self.max_queue_fifo,
            self.max_queue_kefu
        );
        out.push_str("First-response wait in business minutes (from arrival to the first reply), FIFO → kefu:\n\n");
        out.push_str("| tier | tickets | mean FIFO | mean kefu | change | p50 FIFO | p50 kefu | p90 FIFO | p90 kefu | SLA met FIFO | SLA met kefu |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
                r.label,
                r.fifo.tickets,
                r.fifo.mean,
                r.kefu.mean,
                signed_pct(r.mean_change()),
                r.fifo.p50,
                r.kefu.p50,
                r.fifo.p90,
                r.kefu.p90,
                pct(r.fifo.sla_met),
                pct(r.kefu.sla_met)
            );
        }
        let unserved: usize = self
            .row("all")
            .map_or(0, |r| r.fifo.unserved.max(r.kefu.unserved));
        if unserved > 0 {
            let _ = writeln!(out, "\n{unserved} tickets were still waiting when the simulation stopped (counted as SLA misses, left out of the waits).");
        }
        let vip = self.row("vip").map_or(0.0, TierRow::mean_change);
        let normal = self.row("normal").map_or(0.0, TierRow::mean_change);
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        let _ = writeln!(
            out,
            "\nTarget: VIP mean wait at least 60% lower than FIFO: {} ({}); normal customers at most 10% worse: {} ({}).",
            signed_pct(vip),
            verdict(vip <= -0.6),
            signed_pct(normal),
            verdict(normal <= 0.1)
        );
        out
    }
}
