//! A queue simulation that compares kefu's routing with a plain FIFO queue (`kefu
//! simulate-queue`).
//!
//! One or more days of tickets (the chats the bot hands to a person) arrive by hour, from
//! customers of each tier asking about intents drawn from a plausible mix; their priorities
//! come from the [`PriorityTable`] and their first-response due times from the
//! [`SlaSettings`] and its calendar. Agents work shifts inside the calendar's open windows
//! and hold a fixed number of conversations at a time. The same tickets are then served
//! twice:
//!
//! - **FIFO**: the oldest waiting ticket goes to the least-loaded agent on shift;
//! - **kefu**: the queue is ordered by priority, then by first-response due time; an urgent
//!   or VIP ticket goes to a senior agent when one has a free slot, other tickets to the
//!   least-loaded agent (sparing the senior on a tie).
//!
//! The wait is the time from arrival to the first reply (taken when an agent picks the
//! ticket up), counted in business time, as the SLA clock counts it. Everything follows
//! from the seed: the same seed gives the same report.

use jiff::civil::{date, Date};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::model::Priority;
use super::priority::PriorityTable;
use super::sla::{SlaSettings, Target};
use crate::crm::CustomerTier;
use crate::taxonomy;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Relative weight of each intent among tickets (chats the bot could not finish), so the
/// handoff intents weigh more than they do among all messages.
pub const INTENT_MIX: [(&str, u32); 36] = [
    ("product_info", 8),
    ("size_advice", 6),
    ("stock", 4),
    ("promotion", 4),
    ("coupon", 3),
    ("price_protection", 2),
    ("presale_deposit", 1),
    ("group_buy", 1),
    ("bargain", 1),
    ("live_stream", 1),
    ("try_before_buy", 1),
    ("payment_issue", 3),
    ("order_status", 4),
    ("cancel_order", 3),
    ("modify_order", 3),
    ("invoice", 2),
    ("auto_renewal", 1),
    ("shipping_time", 4),
    ("tracking", 5),
    ("delivery_problem", 6),
    ("shipping_fee", 1),
    ("return_policy", 3),
    ("return_request", 5),
    ("exchange", 3),
    ("refund_status", 4),
    ("damaged_item", 5),
    ("wrong_item", 3),
    ("warranty", 1),
    ("membership", 1),
    ("account_binding", 1),
    ("referral", 1),
    ("human_agent", 12),
    ("complaint", 4),
    ("business_hours", 1),
    ("greeting", 2),
    ("thanks", 1),
];

/// One agent's shift, in local minutes after midnight; only the part inside the
/// calendar's open windows is worked.
#[derive(Debug, Clone)]
pub struct AgentShift {
    pub name: String,
    pub senior: bool,
    pub start_min: u16,
    pub end_min: u16,
}

impl AgentShift {
    pub fn new(name: &str, senior: bool, start_min: u16, end_min: u16) -> AgentShift {
        AgentShift {
            name: name.to_string(),
            senior,
            start_min,
            end_min,
        }
    }
}

/// What is simulated.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The first local day.
    pub start: Date,
    pub days: u32,
    /// Mean tickets a day (each hour's count is Poisson).
    pub tickets_per_day: f64,
    /// Share of the day's tickets by local hour (any scale).
    pub hourly_weights: [f64; 24],
    /// vip, high, normal, new.
    pub tier_mix: [(CustomerTier, f64); 4],
    /// Share of tickets tagged as a complaint risk (priority one step up).
    pub raised_share: f64,
    /// Handling time of a conversation: log-normal with this median and sigma.
    pub handle_median_min: f64,
    pub handle_sigma: f64,
    /// A senior agent needs this fraction of the handling time.
    pub senior_speed: f64,
    /// Conversations an agent holds at once.
    pub capacity: usize,
    pub agents: Vec<AgentShift>,
}

impl Scenario {
    /// A small shop from Monday 2026-03-02: ~450 tickets a day, most in the afternoon and
    /// the evening peak (19:00–21:00), about a fifth after closing or before opening, to be
    /// answered when the shop opens; six agents holding two conversations each, on two shifts: a senior and two
    /// others early (09:00–17:30), three late (13:30–21:00).
    pub fn small_shop(days: u32) -> Scenario {
        Scenario {
            start: date(2026, 3, 2),
            days,
            tickets_per_day: 450.0,
            hourly_weights: [
                3.0, 2.0, 1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 14.0, 22.0, 26.0, 26.0, 22.0, 24.0, 26.0,
                26.0, 26.0, 27.0, 30.0, 38.0, 44.0, 24.0, 14.0, 7.0,
            ],
            tier_mix: [
                (CustomerTier::Vip, 0.05),
                (CustomerTier::High, 0.15),
                (CustomerTier::Normal, 0.60),
                (CustomerTier::New, 0.20),
            ],
            raised_share: 0.03,
            handle_median_min: 6.0,
            handle_sigma: 0.8,
            senior_speed: 0.8,
            capacity: 2,
            agents: vec![
                AgentShift::new("senior", true, 9 * 60, 17 * 60 + 30),
                AgentShift::new("early-1", false, 9 * 60, 17 * 60 + 30),
                AgentShift::new("early-2", false, 9 * 60, 17 * 60 + 30),
                AgentShift::new("late-1", false, 13 * 60 + 30, 21 * 60),
                AgentShift::new("late-2", false, 13 * 60 + 30, 21 * 60),
                AgentShift::new("late-3", false, 13 * 60 + 30, 21 * 60),
            ],
        }
    }
}

/// One simulated ticket.
#[derive(Debug, Clone)]
pub struct SimTicket {
    pub arrival_ms: i64,
    pub tier: CustomerTier,
    pub intent: &'static str,
    pub priority: Priority,
    pub first_response_due_ms: i64,
    /// Handling time by a regular agent.
    pub work_ms: i64,
}

impl SimTicket {
    pub fn new(
        arrival_ms: i64,
        tier: CustomerTier,
        intent: &'static str,
        raised: bool,
        work_ms: i64,
        sla: &SlaSettings,
        table: &PriorityTable,
    ) -> SimTicket {
        let group = taxonomy::get(intent).map_or("", |i| i.group);
        let priority = table.priority(tier, intent, group, raised);
        SimTicket {
            arrival_ms,
            tier,
            intent,
            priority,
            first_response_due_ms: sla.due(priority, Target::FirstResponse, arrival_ms),
            work_ms,
        }
    }
}

/// The instant of local midnight of `day` in the calendar's zone.
pub fn local_midnight(sla: &SlaSettings, day: Date) -> i64 {
    sla.calendar
        .time_zone()
        .to_ambiguous_timestamp(day.at(0, 0, 0, 0))
        .compatible()
        .map_or(0, |t| t.as_millisecond())
}

fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    rng.random::<f64>()
}

/// A standard normal variate (Box–Muller).
fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let u1 = 1.0 - uniform(rng); // (0, 1]
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn pick<T: Copy>(rng: &mut Xoshiro256PlusPlus, items: &[(T, f64)]) -> Option<T> {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = uniform(rng) * total;
    for (item, w) in items {
        if x < *w {
            return Some(*item);
        }
        x -= w;
    }
    items.last().map(|(item, _)| *item)
}

/// The scenario's tickets for `seed`, in arrival order.
pub fn generate(
    scenario: &Scenario,
    sla: &SlaSettings,
    table: &PriorityTable,
    seed: u64,
) -> Vec<SimTicket> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let intents: Vec<(&'static str, f64)> = INTENT_MIX
        .iter()
        .map(|(i, w)| (*i, f64::from(*w)))
        .collect();
    let weight_sum: f64 = scenario.hourly_weights.iter().sum();
    let mut tickets = Vec::new();
    let mut day = scenario.start;
    for _ in 0..scenario.days {
        let midnight = local_midnight(sla, day);
        for (hour, w) in scenario.hourly_weights.iter().enumerate() {
            let per_ms =
                scenario.tickets_per_day * w / weight_sum.max(f64::MIN_POSITIVE) / HOUR_MS as f64;
            if per_ms <= 0.0 {
                continue;
            }
            let hour_start = midnight + hour as i64 * HOUR_MS;
            // Poisson arrivals: exponential gaps.
            let mut t = 0.0f64;
            loop {
                t += -(1.0 - uniform(&mut rng)).ln() / per_ms;
                if t >= HOUR_MS as f64 {
                    break;
                }
                let tier = pick(&mut rng, &scenario.tier_mix).unwrap_or_default();
                let intent = pick(&mut rng, &intents).unwrap_or(taxonomy::UNKNOWN);
                let raised = uniform(&mut rng) < scenario.raised_share;
                let minutes =
                    scenario.handle_median_min * (scenario.handle_sigma * normal(&mut rng)).exp();
                let work_ms = ((minutes * MINUTE_MS as f64) as i64).clamp(30_000, 2 * HOUR_MS);
                tickets.push(SimTicket::new(
                    hour_start + t as i64,
                    tier,
                    intent,
                    raised,
                    work_ms,
                    sla,
                    table,
                ));
            }
        }
        day = day.tomorrow().unwrap_or(day);
    }
    tickets.sort_by_key(|t| t.arrival_ms);
    tickets
}

/// How the queue is worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Fifo,
    Kefu,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Fifo => "FIFO",
            Policy::Kefu => "kefu",
        }
    }
}

/// When each ticket got its first reply (`None`: never, within the simulated time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub first_response_ms: Vec<Option<i64>>,
    /// The longest the queue got.
    pub max_queue: usize,
}

struct Agent {
    senior: bool,
    start_min: u16,
    end_min: u16,
    /// End instants of the conversations held.
    busy_until: Vec<i64>,
}

/// Serve `tickets` (in arrival order) under `policy`, from local midnight of the first day
/// until the queue is empty or three days after the last simulated day.
pub fn run(
    scenario: &Scenario,
    sla: &SlaSettings,
    tickets: &[SimTicket],
    policy: Policy,
) -> Served {
    let tz = sla.calendar.time_zone();
    let mut agents: Vec<Agent> = scenario
        .agents
        .iter()
        .map(|a| Agent {
            senior: a.senior,
            start_min: a.start_min,
            end_min: a.end_min,
            busy_until: Vec::new(),
        })
        .collect();
    let capacity = scenario.capacity.max(1);
    let start = local_midnight(sla, scenario.start);
    let first = tickets.first().map_or(start, |t| t.arrival_ms.min(start));
    let stop = start + (i64::from(scenario.days) + 3) * DAY_MS;
    let mut served = vec![None; tickets.len()];
    let mut queue: Vec<usize> = Vec::new();
    let mut max_queue = 0;
    let mut next = 0usize;
    let mut t = first;
    while t < stop && (next < tickets.len() || !queue.is_empty()) {
        for a in &mut agents {
            a.busy_until.retain(|&end| end > t);
        }
        while next < tickets.len() && tickets[next].arrival_ms <= t {
            queue.push(next);
            next += 1;
        }
        max_queue = max_queue.max(queue.len());
        let minute = {
            let dt = tz.to_datetime(jiff::Timestamp::from_millisecond(t).unwrap_or_default());
            dt.hour() as u16 * 60 + dt.minute() as u16
        };
        if sla.calendar.is_open(t) {
            while !queue.is_empty() {
                let free: Vec<usize> = (0..agents.len())
                    .filter(|&i| {
                        let a = &agents[i];
                        a.start_min <= minute && minute < a.end_min && a.busy_until.len() < capacity
                    })
                    .collect();
                if free.is_empty() {
                    break;
                }
                let qi = match policy {
                    Policy::Fifo => {
                        (0..queue.len()).min_by_key(|&q| (tickets[queue[q]].arrival_ms, queue[q]))
                    }
                    Policy::Kefu => (0..queue.len()).min_by_key(|&q| {
                        let tk = &tickets[queue[q]];
                        (
                            tk.priority.rank(),
                            tk.first_response_due_ms,
                            tk.arrival_ms,
                            queue[q],
                        )
                    }),
                };
                let Some(qi) = qi else { break };
                let ti = queue.swap_remove(qi);
                let ticket = &tickets[ti];
                let wants_senior = policy == Policy::Kefu
                    && (ticket.priority == Priority::Urgent || ticket.tier == CustomerTier::Vip);
                let senior = free.iter().copied().find(|&i| agents[i].senior);
                let agent = match (wants_senior, senior) {
                    (true, Some(i)) => Some(i),
                    _ => free.iter().copied().min_by_key(|&i| {
                        let spare_senior = policy == Policy::Kefu && agents[i].senior;
                        (agents[i].busy_until.len(), spare_senior, i)
                    }),
                };
                let Some(ai) = agent else { break };
                let a = &mut agents[ai];
                let work = if a.senior {
                    (ticket.work_ms as f64 * scenario.senior_speed) as i64
                } else {
                    ticket.work_ms
                };
                a.busy_until.push(t + work.max(1));
                served[ti] = Some(t);
            }
        }
        // Next event: an arrival, a conversation ending, or the next minute (shifts and
        // windows change on whole minutes).
        let next_minute = t - t.rem_euclid(MINUTE_MS) + MINUTE_MS;
        let mut step = next_minute;
        if let Some(tk) = tickets.get(next) {
            step = step.min(tk.arrival_ms.max(t + 1));
        }
        for a in &agents {
            for &end in &a.busy_until {
                step = step.min(end);
            }
        }
        t = step.max(t + 1);
    }
    Served {
        first_response_ms: served,
        max_queue,
    }
}

mod report;
pub use report::{compare, Comparison, TierRow};

#[cfg(test)]
mod tests;
