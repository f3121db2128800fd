//! The supervisors' dashboard: how the shop's customer service did over a period of days.
//!
//! A [`Period`] is a run of whole days in the shop's time zone (`[sla] time_zone`), both ends
//! included. [`compute`] reads the period's tickets, shopper messages and decided suggestions
//! with a few queries ([`store`]) and works the figures out here, overall and per intent,
//! skill group, customer tier and agent ([`Dimension`]). Nothing here speaks HTTP: the console
//! renders a [`Dashboard`] as a page or, through [`csv`], as a spreadsheet.
//!
//! The figures, exactly:
//! - **Tickets**: tickets whose `opened_at` falls in the period.
//! - **First response** and **resolution**: wall-clock minutes from `opened_at` to
//!   `first_response_at`, and to `resolved_at` (else `closed_at`), over the tickets that have
//!   one; p50 and p90 by nearest rank ([`nearest_rank`]).
//! - **SLA attained**: the share of the tickets with no `breach` mark in `sla_marks`, any target
//!   (a ticket still open may breach later).
//! - **Auto-answered**: of the shoppers' messages received in the period, the share the bot
//!   answered at once (`status = 'answered'`). Shoppers' messages are kf messages from the
//!   customer (origin 3) that kefu decided on (answered, unresolved, or held by an agent; not
//!   a satisfaction-survey click, not one recalled), and every Official Account message that
//!   is not an event. Only intent and group apply: messages carry no tier or agent.
//! - **Suggestions**: suggestions shown in the period and decided; accepted = (accepted +
//!   edited) / decided, accepted as is = accepted / decided.
//! - **CSAT**: of the tickets opened in the period that were rated, the share rated `good`.
//!
//! By agent: ticket figures go to the ticket's assignee (else the last agent who served it),
//! CSAT to the agent rated (`csat_agent`), suggestions to the console user who decided them
//! (else the one they were shown to), as that user's servicer id when they have one, so the
//! rows line up with the tickets'. [`NONE`] stands for no agent (or no tier).

pub mod csv;
mod period;
mod store;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::AnyPool;

use crate::taxonomy;
use crate::tickets::GENERAL_GROUP;

pub use period::{
    local_midnight, parse_day, today, zone_name, Period, PeriodError, DEFAULT_DAYS, MAX_DAYS,
};

/// The value of a row with no agent, or no tier.
pub const NONE: &str = "(none)";

/// What the figures are broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Overall,
    Intent,
    Group,
    Tier,
    Agent,
}

impl Dimension {
    pub const BREAKDOWNS: [Dimension; 4] = [
        Dimension::Intent,
        Dimension::Group,
        Dimension::Tier,
        Dimension::Agent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Overall => "overall",
            Dimension::Intent => "intent",
            Dimension::Group => "group",
            Dimension::Tier => "tier",
            Dimension::Agent => "agent",
        }
    }

    /// Whether the auto-answer rate has this breakdown (messages have no tier or agent).
    pub fn has_messages(self) -> bool {
        matches!(
            self,
            Dimension::Overall | Dimension::Intent | Dimension::Group
        )
    }
}

/// Durations of the tickets that have one: how many, and their p50 and p90.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub n: u64,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
}

impl Spread {
    fn of(mut values: Vec<i64>) -> Spread {
        values.sort_unstable();
        Spread {
            n: values.len() as u64,
            p50_ms: nearest_rank(&values, 50),
            p90_ms: nearest_rank(&values, 90),
        }
    }
}

/// The `p`th percentile (1..=100) of ascending `sorted` by nearest rank: the value at
/// 1-based rank ⌈p/100 × n⌉. Always one of the values; none for no values.
pub fn nearest_rank(sorted: &[i64], p: u32) -> Option<i64> {
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// One row's figures. Counts are kept, shares derived, so nothing divides by zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub tickets: u64,
    pub first_response: Spread,
    pub resolution: Spread,
    pub sla_breached: u64,
    pub shopper_messages: u64,
    pub auto_answered: u64,
    pub suggestions_accepted: u64,
    pub suggestions_edited: u64,
    pub suggestions_dismissed: u64,
    pub csat_good: u64,
    pub csat_ok: u64,
    pub csat_bad: u64,
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Figures {
    pub fn sla_attained_share(&self) -> Option<f64> {
        share(self.tickets.saturating_sub(self.sla_breached), self.tickets)
    }

    pub fn auto_answer_share(&self) -> Option<f64> {
        share(self.auto_answered, self.shopper_messages)
    }

    pub fn suggestions_decided(&self) -> u64 {
        self.suggestions_accepted + self.suggestions_edited + self.suggestions_dismissed
    }

    /// Accepted as is or edited, of those decided.
    pub fn suggestion_acceptance_share(&self) -> Option<f64> {
        share(
            self.suggestions_accepted + self.suggestions_edited,
            self.suggestions_decided(),
        )
    }

    pub fn suggestion_as_is_share(&self) -> Option<f64> {
        share(self.suggestions_accepted, self.suggestions_decided())
    }

    pub fn csat_ratings(&self) -> u64 {
        self.csat_good + self.csat_ok + self.csat_bad
    }

    pub fn csat_good_share(&self) -> Option<f64> {
        share(self.csat_good, self.csat_ratings())
    }
}

/// One value of a breakdown: an intent, group, tier or agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub value: String,
    /// A readable name where there is one: the intent's Chinese name, the agent's name.
    pub label: Option<String>,
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    pub dimension: Dimension,
    /// Most tickets first, then most messages, then by value.
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub period: Period,
    pub overall: Figures,
    pub breakdowns: Vec<Breakdown>,
}

pub use store::{MessageCount, SuggestionCount, TicketRow};

/// Read the period's rows and work the figures out.
pub async fn compute(pool: &AnyPool, period: Period) -> sqlx::Result<Dashboard> {
    let tickets = store::tickets(pool, &period).await?;
    let messages = store::messages(pool, &period).await?;
    let suggestions = store::suggestions(pool, &period).await?;
    let agents: HashMap<String, String> = crate::tickets::store::agents(pool)
        .await?
        .into_iter()
        .map(|a| (a.servicer_userid, a.name))
        .collect();
    Ok(build(period, &tickets, &messages, &suggestions, &agents))
}

/// Counts and durations gathered for one row before they become [`Figures`].
#[derive(Default)]
struct Tally {
    figures: Figures,
    first_response_ms: Vec<i64>,
    resolution_ms: Vec<i64>,
}

/// The rows' keys: (dimension, value).
type Tallies = BTreeMap<(Dimension, String), Tally>;

fn group_of(intent: &str) -> &'static str {
    taxonomy::get(intent).map_or(GENERAL_GROUP, |i| i.group)
}

/// Add to the overall row and to each given breakdown's row.
fn tally(tallies: &mut Tallies, keys: &[(Dimension, &str)], add: impl Fn(&mut Tally)) {
    add(tallies
        .entry((Dimension::Overall, String::new()))
        .or_default());
    for (dimension, value) in keys {
        add(tallies.entry((*dimension, value.to_string())).or_default());
    }
}

/// The figures from already-read rows; `agents` names servicer ids.
pub fn build(
    period: Period,
    tickets: &[TicketRow],
    messages: &[MessageCount],
    suggestions: &[SuggestionCount],
    agents: &HashMap<String, String>,
) -> Dashboard {
    let mut tallies = Tallies::new();
    for t in tickets {
        let agent = t.agent.as_deref().unwrap_or(NONE);
        let keys = [
            (Dimension::Intent, t.intent.as_str()),
            (Dimension::Group, t.grp.as_str()),
            (Dimension::Tier, t.tier.as_str()),
        ];
        let first_response = t.first_response_at.map(|at| (at - t.opened_at).max(0));
        let resolution = t.ended_at.map(|at| (at - t.opened_at).max(0));
        tally(
            &mut tallies,
            &[keys[0], keys[1], keys[2], (Dimension::Agent, agent)],
            |r| {
                r.figures.tickets += 1;
                r.figures.sla_breached += u64::from(t.breached != 0);
                r.first_response_ms.extend(first_response);
                r.resolution_ms.extend(resolution);
            },
        );
        if let Some(rating) = t.csat.as_deref() {
            let rated = t.csat_agent.as_deref().unwrap_or(NONE);
            tally(
                &mut tallies,
                &[keys[0], keys[1], keys[2], (Dimension::Agent, rated)],
                |r| match rating {
                    "good" => r.figures.csat_good += 1,
                    "ok" => r.figures.csat_ok += 1,
                    "bad" => r.figures.csat_bad += 1,
                    _ => {}
                },
            );
        }
    }
    for m in messages {
        let intent = m.intent.as_deref().unwrap_or(taxonomy::UNKNOWN);
        let keys = [
            (Dimension::Intent, intent),
            (Dimension::Group, group_of(intent)),
        ];
        let n = u64::try_from(m.n).unwrap_or(0);
        tally(&mut tallies, &keys, |r| {
            r.figures.shopper_messages += n;
            if m.status == "answered" {
                r.figures.auto_answered += n;
            }
        });
    }
    for s in suggestions {
        let keys = [
            (Dimension::Intent, s.intent.as_str()),
            (Dimension::Group, group_of(&s.intent)),
            (Dimension::Tier, s.tier.as_deref().unwrap_or(NONE)),
            (Dimension::Agent, s.agent.as_str()),
        ];
        let n = u64::try_from(s.n).unwrap_or(0);
        tally(&mut tallies, &keys, |r| match s.outcome.as_str() {
            "accepted" => r.figures.suggestions_accepted += n,
            "edited" => r.figures.suggestions_edited += n,
            "dismissed" => r.figures.suggestions_dismissed += n,
            _ => {}
        });
    }

    let mut overall = Figures::default();
    let mut rows: BTreeMap<Dimension, Vec<Row>> = BTreeMap::new();
    for ((dimension, value), t) in tallies {
        let figures = Figures {
            first_response: Spread::of(t.first_response_ms),
            resolution: Spread::of(t.resolution_ms),
            ..t.figures
        };
        if dimension == Dimension::Overall {
            overall = figures;
            continue;
        }
        let label = match dimension {
            Dimension::Intent => taxonomy::get(&value).map(|i| i.name_zh.to_string()),
            Dimension::Agent => agents.get(&value).filter(|n| **n != value).cloned(),
            _ => None,
        };
        rows.entry(dimension).or_default().push(Row {
            value,
            label,
            figures,
        });
    }
    let breakdowns = Dimension::BREAKDOWNS
        .into_iter()
        .map(|dimension| {
            let mut rows = rows.remove(&dimension).unwrap_or_default();
            rows.sort_by(|a, b| {
                (b.figures.tickets, b.figures.shopper_messages)
                    .cmp(&(a.figures.tickets, a.figures.shopper_messages))
                    .then_with(|| a.value.cmp(&b.value))
            });
            Breakdown { dimension, rows }
        })
        .collect();
    Dashboard {
        period,
        overall,
        breakdowns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::Date;
    use jiff::tz::TimeZone;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn nearest_rank_picks_a_value_at_the_rounded_up_rank() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 50), Some(7));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 90), Some(4));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 50), Some(5));
        assert_eq!(nearest_rank(&ten, 90), Some(9));
        assert_eq!(nearest_rank(&ten, 100), Some(10));
    }

    fn ticket(intent: &str, agent: Option<&str>, fr_min: Option<i64>) -> TicketRow {
        TicketRow {
            intent: intent.into(),
            grp: group_of(intent).into(),
            tier: "normal".into(),
            agent: agent.map(str::to_string),
            opened_at: 0,
            first_response_at: fr_min.map(|m| m * 60_000),
            ended_at: None,
            csat: None,
            csat_agent: None,
            breached: 0,
        }
    }

    #[test]
    fn each_fact_counts_overall_and_in_its_own_rows() {
        let tz = shanghai();
        let period =
            Period::new(Date::constant(2026, 3, 2), Date::constant(2026, 3, 2), &tz).unwrap();
        let mut rated = ticket("refund_status", Some("li"), Some(3));
        rated.csat = Some("good".into());
        rated.csat_agent = Some("wang".into());
        rated.breached = 1;
        let tickets = [rated, ticket("tracking", None, None)];
        let messages = [MessageCount {
            intent: None,
            status: "answered".into(),
            n: 2,
        }];
        let suggestions = [SuggestionCount {
            intent: "tracking".into(),
            agent: "li".into(),
            tier: None,
            outcome: "edited".into(),
            n: 1,
        }];
        let agents = HashMap::from([("li".to_string(), "李丽".to_string())]);
        let d = build(period, &tickets, &messages, &suggestions, &agents);
        assert_eq!(d.overall.tickets, 2);
        assert_eq!(d.overall.sla_attained_share(), Some(0.5));
        assert_eq!(d.overall.first_response.p50_ms, Some(180_000));
        assert_eq!(d.overall.auto_answer_share(), Some(1.0));
        assert_eq!(d.overall.suggestion_acceptance_share(), Some(1.0));
        assert_eq!(d.overall.suggestion_as_is_share(), Some(0.0));
        let rows = |dim: Dimension| -> Vec<(String, Figures)> {
            d.breakdowns
                .iter()
                .find(|b| b.dimension == dim)
                .unwrap()
                .rows
                .iter()
                .map(|r| (r.value.clone(), r.figures.clone()))
                .collect()
        };
        let agents = rows(Dimension::Agent);
        let names: Vec<&str> = agents.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(names, ["(none)", "li", "wang"]);
        // The rating goes to the agent rated, the ticket to its assignee.
        assert_eq!((agents[1].1.tickets, agents[1].1.csat_ratings()), (1, 0));
        assert_eq!((agents[2].1.tickets, agents[2].1.csat_good), (0, 1));
        assert_eq!(agents[1].1.suggestions_edited, 1);
        // A message without an intent is `unknown`, in the general group.
        let groups = rows(Dimension::Group);
        let general = groups.iter().find(|(v, _)| v == GENERAL_GROUP).unwrap();
        assert_eq!(general.1.shopper_messages, 2);
        let d2 = d
            .breakdowns
            .iter()
            .find(|b| b.dimension == Dimension::Agent)
            .unwrap();
        assert_eq!(d2.rows[1].label.as_deref(), Some("李丽"));
        // Nothing at all: no shares, no NaN.
        let empty = build(period, &[], &[], &[], &HashMap::new());
        assert_eq!(empty.overall, Figures::default());
        assert_eq!(empty.overall.sla_attained_share(), None);
        assert_eq!(empty.overall.csat_good_share(), None);
        assert!(empty.breakdowns.iter().all(|b| b.rows.is_empty()));
    }
}
