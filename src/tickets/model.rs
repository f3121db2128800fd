//! A ticket's status and priority, stored as lower-case words.

use serde::Serialize;

/// Where a ticket stands. `new -> queued -> assigned -> pending_customer -> resolved ->
/// closed`, and `reopened` back to the queue from resolved (see [`TicketStatus::can_become`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    New,
    Queued,
    Assigned,
    PendingCustomer,
    Resolved,
    Closed,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 6] = [
        TicketStatus::New,
        TicketStatus::Queued,
        TicketStatus::Assigned,
        TicketStatus::PendingCustomer,
        TicketStatus::Resolved,
        TicketStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::New => "new",
            TicketStatus::Queued => "queued",
            TicketStatus::Assigned => "assigned",
            TicketStatus::PendingCustomer => "pending_customer",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<TicketStatus> {
        TicketStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Open: someone still owes the shopper something.
    pub fn is_open(self) -> bool {
        !matches!(self, TicketStatus::Resolved | TicketStatus::Closed)
    }
}

/// How soon a ticket must be handled; the order queues are worked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Urgent,
    High,
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Urgent,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// 0 for urgent up to 3 for low: the stored sort key, so queues order in SQL.
    pub fn rank(self) -> i64 {
        self as i64
    }

    pub fn from_rank(rank: i64) -> Option<Priority> {
        Priority::ALL.get(usize::try_from(rank).ok()?).copied()
    }

    /// One step more urgent (urgent stays urgent).
    pub fn raised(self) -> Priority {
        Priority::from_rank(self.rank() - 1).unwrap_or(Priority::Urgent)
    }
}
