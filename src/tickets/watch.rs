//! The watch: what happens to tickets as time passes.
//!
//! - SLA: a warning at 80% of a target's business time and a breach at its due time, each
//!   recorded once per ticket, target and clock (the `sla_marks` primary key decides which
//!   replica records it; only that one reports it).
//! - An assigned ticket without an agent reply for `assignment_timeout` goes back to the
//!   queue.
//! - A resolved ticket past the reopen window is closed.

use sqlx::AnyConnection;

use super::model::{Action, Ticket};
use super::sla::Target;
use super::store;
use super::{TicketError, TicketService};

/// A warning or breach this replica recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaMark {
    pub ticket_id: String,
    pub external_userid: String,
    pub assignee: Option<String>,
    pub target: Target,
    pub breach: bool,
    pub due_at: i64,
}

/// Warnings are recorded once this share of a target's business time has passed.
pub const WARN_AT: f64 = 0.8;

impl TicketService {
    /// The running clocks of `t`: (target, when the clock started, due time).
    fn clocks(t: &Ticket) -> Vec<(Target, i64, i64)> {
        let mut out = Vec::new();
        if t.first_response_at.is_none() {
            if let Some(due) = t.first_response_due {
                out.push((Target::FirstResponse, t.sla_started_at, due));
            }
        }
        if let (Some(since), Some(due)) = (t.waiting_since, t.next_response_due) {
            out.push((Target::NextResponse, since, due));
        }
        out.push((Target::Resolution, t.sla_started_at, t.resolution_due));
        out
    }

    /// Record the SLA warnings and breaches due by now; returns those this call recorded.
    pub async fn check_sla(&self, conn: &mut AnyConnection) -> Result<Vec<SlaMark>, TicketError> {
        let now = self.now_ms();
        let cal = &self.settings().sla.calendar;
        let mut out = Vec::new();
        for t in store::running_clocks(&mut *conn).await? {
            for (target, start, due) in Self::clocks(&t) {
                // What is left against the whole target: a pause moves the due time but does
                // not count against the target.
                let total = self.settings().sla.policy(t.priority()).minutes(target) * 60_000;
                let left = cal.business_ms_between(now, due);
                let breach = now >= due;
                let warn = breach || (total > 0 && left as f64 <= (1.0 - WARN_AT) * total as f64);
                let kinds: &[(&str, bool)] = match (warn, breach) {
                    (_, true) => &[("warning", false), ("breach", true)],
                    (true, false) => &[("warning", false)],
                    _ => &[],
                };
                for (kind, is_breach) in kinds {
                    if store::insert_mark(conn, &t.id, target.as_str(), kind, start, due, now)
                        .await?
                    {
                        self.event(
                            conn,
                            &t.id,
                            "kefu",
                            if *is_breach {
                                "sla_breach"
                            } else {
                                "sla_warning"
                            },
                            serde_json::json!({"target": target.as_str(), "due_at": due}),
                        )
                        .await?;
                        self.metrics
                            .sla
                            .get_or_create(&crate::metrics::SlaLabel {
                                target: target.as_str().into(),
                                kind: (*kind).into(),
                            })
                            .inc();
                        out.push(SlaMark {
                            ticket_id: t.id.clone(),
                            external_userid: t.external_userid.clone(),
                            assignee: t.assignee.clone(),
                            target,
                            breach: *is_breach,
                            due_at: due,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Assigned tickets whose agent has not written within `assignment_timeout` go back to
    /// the queue; returns them.
    pub async fn requeue_idle(&self, conn: &mut AnyConnection) -> Result<Vec<Ticket>, TicketError> {
        let before = self.now_ms() - self.settings().assignment_timeout_ms;
        let mut out = Vec::new();
        let now = self.now_ms();
        for mut t in store::idle_assignments(conn, before).await? {
            // Passed over for this ticket for a while, so it goes to someone else.
            t.idle_agent = t.assignee.clone();
            t.idle_until = Some(now + self.settings().assignment_timeout_ms);
            match self.act(conn, &t, Action::Unassign, "kefu", None).await {
                Ok(t) => out.push(t),
                Err(TicketError::Conflict(_) | TicketError::Stale) => {} // changed meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Close resolved tickets the shopper can no longer reopen.
    pub async fn close_expired(&self, conn: &mut AnyConnection) -> Result<usize, TicketError> {
        let before = self.now_ms() - self.settings().reopen_within_ms;
        let mut closed = 0;
        for t in store::resolved_before(conn, before).await? {
            match self.act(conn, &t, Action::Close, "kefu", None).await {
                Ok(_) => closed += 1,
                Err(TicketError::Conflict(_) | TicketError::Stale) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(closed)
    }
}
