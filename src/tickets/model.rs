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

/// Why a ticket was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenReason {
    /// The classifier could not tell what the shopper wants, or was not sure enough.
    Unclear,
    /// An intent that always goes to a person (a complaint, "转人工", a damaged item…).
    Handoff,
    /// The same question twice within ten minutes: the answer did not help.
    Repeated,
    /// The shopper said the bot's answer was no use ("没用", "不是这个").
    Rejected,
    /// Written outside business hours, about something a person must handle.
    OutOfHours,
    /// Not text (an image, a voice message, a file…): a person looks at it.
    NotText,
    /// Pulled too late for the bot to answer (history from before kefu was running).
    Missed,
}

impl OpenReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OpenReason::Unclear => "unclear",
            OpenReason::Handoff => "handoff",
            OpenReason::Repeated => "repeated",
            OpenReason::Rejected => "rejected",
            OpenReason::OutOfHours => "out_of_hours",
            OpenReason::NotText => "not_text",
            OpenReason::Missed => "missed",
        }
    }
}

/// What may be done to a ticket; each names the statuses it is allowed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Queue,
    Assign,
    Unassign,
    WaitForCustomer,
    CustomerWrote,
    Resolve,
    Close,
    Reopen,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Queue => "queue",
            Action::Assign => "assign",
            Action::Unassign => "unassign",
            Action::WaitForCustomer => "pending",
            Action::CustomerWrote => "customer_wrote",
            Action::Resolve => "resolve",
            Action::Close => "close",
            Action::Reopen => "reopen",
        }
    }
}

impl TicketStatus {
    /// The status `action` leads to from this one, or `None` when the lifecycle forbids it.
    /// `assigned` says whether the ticket has an agent (a shopper's reply to a ticket waiting
    /// on them goes back to that agent, else to the queue).
    pub fn after(self, action: Action, assigned: bool) -> Option<TicketStatus> {
        use TicketStatus::*;
        let back = if assigned { Assigned } else { Queued };
        match (action, self) {
            (Action::Queue, New) => Some(Queued),
            (Action::Assign, New | Queued | Assigned | PendingCustomer) => Some(Assigned),
            (Action::Unassign, Assigned) => Some(Queued),
            (Action::WaitForCustomer, Assigned) => Some(PendingCustomer),
            (Action::CustomerWrote, PendingCustomer) => Some(back),
            (Action::CustomerWrote, s @ (New | Queued | Assigned)) => Some(s),
            (Action::Resolve, New | Queued | Assigned | PendingCustomer) => Some(Resolved),
            (Action::Close, New | Queued | Assigned | PendingCustomer | Resolved) => Some(Closed),
            (Action::Reopen, Resolved | Closed) => Some(Queued),
            _ => None,
        }
    }
}

/// A ticket as stored. Times are unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct Ticket {
    pub id: String,
    pub channel: String,
    pub account: String,
    pub external_userid: String,
    pub open_key: Option<String>,
    pub customer_name: Option<String>,
    pub status: String,
    pub reason: String,
    pub intent: String,
    pub grp: String,
    pub priority: i64,
    pub tier: String,
    pub tier_reasons: String,
    pub assignee: Option<String>,
    pub assigned_at: Option<i64>,
    pub last_assignee: Option<String>,
    pub last_served_at: Option<i64>,
    pub idle_agent: Option<String>,
    pub idle_until: Option<i64>,
    pub opened_at: i64,
    pub updated_at: i64,
    pub last_message: Option<String>,
    pub last_customer_at: Option<i64>,
    pub last_agent_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub sla_started_at: i64,
    pub waiting_since: Option<i64>,
    pub first_response_due: Option<i64>,
    pub next_response_due: Option<i64>,
    pub resolution_due: i64,
    pub paused_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub csat: Option<String>,
    pub csat_agent: Option<String>,
    pub csat_at: Option<i64>,
    pub version: i64,
}

impl Ticket {
    pub fn status(&self) -> TicketStatus {
        TicketStatus::parse(&self.status).unwrap_or(TicketStatus::Queued)
    }

    pub fn priority(&self) -> Priority {
        Priority::from_rank(self.priority).unwrap_or(Priority::Normal)
    }

    pub fn tier_reasons(&self) -> Vec<String> {
        serde_json::from_str(&self.tier_reasons).unwrap_or_default()
    }

    /// The key that makes a ticket the one open ticket of its customer and channel.
    pub fn open_key_for(channel: &str, account: &str, external_userid: &str) -> String {
        format!("{channel}/{account}/{external_userid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_only_its_own_moves() {
        use TicketStatus::*;
        assert_eq!(New.after(Action::Queue, false), Some(Queued));
        assert_eq!(Queued.after(Action::Assign, false), Some(Assigned));
        assert_eq!(
            Assigned.after(Action::WaitForCustomer, true),
            Some(PendingCustomer)
        );
        assert_eq!(
            PendingCustomer.after(Action::CustomerWrote, true),
            Some(Assigned)
        );
        assert_eq!(
            PendingCustomer.after(Action::CustomerWrote, false),
            Some(Queued)
        );
        assert_eq!(Assigned.after(Action::Resolve, true), Some(Resolved));
        assert_eq!(Resolved.after(Action::Close, true), Some(Closed));
        assert_eq!(Resolved.after(Action::Reopen, true), Some(Queued));
        assert_eq!(Closed.after(Action::Reopen, true), Some(Queued));
        // Forbidden moves.
        assert_eq!(Resolved.after(Action::Resolve, true), None);
        assert_eq!(Closed.after(Action::Close, true), None);
        assert_eq!(Closed.after(Action::Assign, true), None);
        assert_eq!(Queued.after(Action::Reopen, false), None);
        assert_eq!(Queued.after(Action::WaitForCustomer, false), None);
        for s in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(s.as_str()), Some(s));
        }
        for p in Priority::ALL {
            assert_eq!(Priority::from_rank(p.rank()), Some(p));
        }
        assert_eq!(Priority::Low.raised(), Priority::Normal);
        assert_eq!(Priority::Urgent.raised(), Priority::Urgent);
    }
}
