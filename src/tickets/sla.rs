//! SLA targets per priority, in business minutes of the shop's calendar.

use super::calendar::BusinessCalendar;
use super::model::Priority;

/// The three clocks of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Opened to the first agent reply.
    FirstResponse,
    /// The shopper's first unanswered message to the agent's reply.
    NextResponse,
    /// Opened to resolved.
    Resolution,
}

impl Target {
    pub const ALL: [Target; 3] = [
        Target::FirstResponse,
        Target::NextResponse,
        Target::Resolution,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::FirstResponse => "first_response",
            Target::NextResponse => "next_response",
            Target::Resolution => "resolution",
        }
    }
}

/// Minutes of business time allowed for each target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaPolicy {
    pub first_response_min: i64,
    pub next_response_min: i64,
    pub resolution_min: i64,
}

impl SlaPolicy {
    pub fn minutes(&self, target: Target) -> i64 {
        match target {
            Target::FirstResponse => self.first_response_min,
            Target::NextResponse => self.next_response_min,
            Target::Resolution => self.resolution_min,
        }
    }
}

/// The calendar and a policy per priority (`[sla]` in `kefu.toml`).
#[derive(Debug, Clone)]
pub struct SlaSettings {
    pub calendar: BusinessCalendar,
    pub urgent: SlaPolicy,
    pub high: SlaPolicy,
    pub normal: SlaPolicy,
    pub low: SlaPolicy,
}

impl Default for SlaSettings {
    /// What an empty `[sla]` gives: the default shop calendar ([`BusinessCalendar::default`])
    /// and, in business minutes (first response / next response / resolution), urgent
    /// 5/5/240, high 15/15/480, normal 30/30/1440, low 120/120/4320.
    fn default() -> Self {
        let p = |f, n, r| SlaPolicy {
            first_response_min: f,
            next_response_min: n,
            resolution_min: r,
        };
        SlaSettings {
            calendar: BusinessCalendar::default(),
            urgent: p(5, 5, 4 * 60),
            high: p(15, 15, 8 * 60),
            normal: p(30, 30, 24 * 60),
            low: p(120, 120, 3 * 24 * 60),
        }
    }
}

impl SlaSettings {
    /// The default policies on a calendar that is always open (wall-clock minutes).
    pub fn always_open() -> SlaSettings {
        SlaSettings {
            calendar: BusinessCalendar::always_open(),
            ..SlaSettings::default()
        }
    }

    pub fn policy(&self, priority: Priority) -> &SlaPolicy {
        match priority {
            Priority::Urgent => &self.urgent,
            Priority::High => &self.high,
            Priority::Normal => &self.normal,
            Priority::Low => &self.low,
        }
    }

    /// When `target` falls due for a clock started at `start_ms`.
    pub fn due(&self, priority: Priority, target: Target, start_ms: i64) -> i64 {
        let minutes = self.policy(priority).minutes(target);
        self.calendar
            .add_business_ms(start_ms, minutes.saturating_mul(60_000))
    }
}
