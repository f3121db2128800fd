//! Tickets: kefu's own record of every chat the bot could not finish, independent of the
//! WeCom session (which ends after 48 h).
//!
//! - [`model`]: statuses and the lifecycle, priorities, why a ticket opened, the stored row.
//! - [`store`]: every SQL string of tickets, their messages and history, agents, SLA marks.
//! - [`sla`] and [`calendar`]: targets per priority in business time; [`priority`]: tier x
//!   intent -> priority.
//! - [`routing`]: who gets a queued ticket.
//! - [`settings`]: `[tickets]` with the rest of what the service reads.
//! - [`watch`]: SLA warnings and breaches, idle assignments, closing old resolved tickets.
//!
//! The kf loop decides when a ticket opens and calls in here inside its own transaction;
//! nothing here talks to WeCom. Every change writes a history row with its actor.

pub mod calendar;
pub mod intake;
pub mod model;
pub mod priority;
pub mod routing;
pub mod settings;
pub mod simulation;
pub mod sla;
pub mod store;
pub mod watch;
pub mod worker;

use std::sync::Arc;

use sqlx::AnyConnection;

pub use calendar::{BusinessCalendar, CalendarError, CalendarSpec, Window};
pub use model::{Action, OpenReason, Priority, Ticket, TicketStatus};
pub use priority::PriorityTable;
pub use settings::{ReplyMode, TicketSettings, DEFAULT_REJECTIONS};
pub use sla::{SlaPolicy, SlaSettings, Target};

use crate::clock::SharedClock;
use crate::crm::Standing;
use crate::metrics::Metrics;
use crate::store::new_id;
use store::{TicketEvent, TicketMessage};

/// An id for a history or message row: time first, then a counter, so rows written in one
/// millisecond by one process keep the order they were written in.
fn row_id(now_ms: i64) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:013x}{n:08x}{:08x}", now_ms.max(0), rand::random::<u32>())
}

/// Tickets about something no skill group owns (an unclear message, a picture) may go to
/// any agent.
pub const GENERAL_GROUP: &str = "general";

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("no ticket {0}")]
    NotFound(String),
    /// The lifecycle does not allow this action from the ticket's status.
    #[error("cannot {action} a ticket that is {status}")]
    Forbidden {
        action: &'static str,
        status: &'static str,
    },
    /// Someone else changed the ticket first, or another ticket of the customer is open.
    #[error("{0}")]
    Conflict(String),
    /// The ticket changed since it was read (its version moved on): read it again.
    #[error("the ticket was changed meanwhile; reload it")]
    Stale,
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
}

/// A shopper's message as tickets see it.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub channel: &'a str,
    pub account: &'a str,
    pub external_userid: &'a str,
    pub customer_name: Option<&'a str>,
    pub msgid: &'a str,
    /// The text, or a short description of what was sent ("[image]").
    pub content: &'a str,
    pub intent: &'a str,
    pub confidence: Option<f64>,
    pub at_ms: i64,
    pub standing: &'a Standing,
}

pub struct TicketService {
    clock: SharedClock,
    settings: TicketSettings,
    metrics: Arc<Metrics>,
}

impl TicketService {
    pub fn new(
        clock: SharedClock,
        settings: TicketSettings,
        metrics: Arc<Metrics>,
    ) -> TicketService {
        TicketService {
            clock,
            settings,
            metrics,
        }
    }

    pub fn settings(&self) -> &TicketSettings {
        &self.settings
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Does the shopper's text say the bot's answer did not help?
    pub fn is_rejection(&self, text: &str) -> bool {
        let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        // Short messages only: a long story that mentions "人工" is not a rejection.
        t.chars().count() <= 12
            && self
                .settings
                .rejection_phrases
                .iter()
                .any(|p| !p.is_empty() && t.contains(p.as_str()))
    }

    /// The customer's open ticket on this channel, if any.
    pub async fn open_ticket(
        &self,
        conn: &mut AnyConnection,
        channel: &str,
        account: &str,
        external_userid: &str,
    ) -> Result<Option<Ticket>, TicketError> {
        let key = Ticket::open_key_for(channel, account, external_userid);
        Ok(store::open_for(conn, &key).await?)
    }

    /// Append the shopper's message to their open ticket; `None` when they have none.
    pub async fn append(
        &self,
        conn: &mut AnyConnection,
        m: &Incoming<'_>,
    ) -> Result<Option<Ticket>, TicketError> {
        // Someone may change the ticket between the read and the write (an agent, the
        // watch): read it again and retry, a few times.
        let mut tries = 0;
        loop {
            match self.append_once(conn, m).await {
                Err(TicketError::Stale) if tries < 3 => tries += 1,
                Err(TicketError::Stale) => {
                    return Err(TicketError::Conflict(
                        "the ticket kept changing; try again".into(),
                    ))
                }
                other => return other,
            }
        }
    }

    async fn append_once(
        &self,
        conn: &mut AnyConnection,
        m: &Incoming<'_>,
    ) -> Result<Option<Ticket>, TicketError> {
        let Some(mut t) = self
            .open_ticket(conn, m.channel, m.account, m.external_userid)
            .await?
        else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        let from = t.status();
        let to = from
            .after(Action::CustomerWrote, t.assignee.is_some())
            .unwrap_or(from);
        if from == TicketStatus::PendingCustomer {
            self.resume_clocks(&mut t, now);
        }
        t.status = to.as_str().into();
        self.customer_wrote(&mut t, m, now);
        // A later message can make the ticket more urgent (a question that turns into a
        // complaint); it never makes it less so.
        let group = crate::taxonomy::get(m.intent).map_or(GENERAL_GROUP, |i| i.group);
        let tier = crate::crm::CustomerTier::parse(&t.tier).unwrap_or_default();
        let priority =
            self.settings
                .priority
                .priority(tier, m.intent, group, m.standing.raise_priority);
        let raised = priority < t.priority();
        if raised {
            t.priority = priority.rank();
        }
        self.write(
            conn,
            &t,
            "customer",
            "appended",
            serde_json::json!({"msgid": m.msgid, "status": to,
                               "priority_raised_to": raised.then_some(priority)}),
        )
        .await?;
        self.add_message(conn, &t.id, m).await?;
        t.version += 1;
        Ok(Some(t))
    }

    /// Open a ticket for a message that needs a person, or reopen the customer's ticket
    /// resolved within `reopen_within`. The customer must have no open ticket (see
    /// [`TicketService::append`]).
    pub async fn open(
        &self,
        conn: &mut AnyConnection,
        m: &Incoming<'_>,
        reason: OpenReason,
    ) -> Result<Ticket, TicketError> {
        let mut tries = 0;
        loop {
            match self.open_once(conn, m, reason).await {
                Err(TicketError::Stale) if tries < 3 => tries += 1,
                other => return other,
            }
        }
    }

    async fn open_once(
        &self,
        conn: &mut AnyConnection,
        m: &Incoming<'_>,
        reason: OpenReason,
    ) -> Result<Ticket, TicketError> {
        let now = self.clock.now_ms();
        let since = now - self.settings.reopen_within_ms;
        if let Some(mut t) =
            store::resolved_since(conn, m.channel, m.account, m.external_userid, since).await?
        {
            t.open_key = Some(Ticket::open_key_for(
                m.channel,
                m.account,
                m.external_userid,
            ));
            self.restart(&mut t, now);
            self.customer_wrote(&mut t, m, now);
            self.write(
                conn,
                &t,
                "customer",
                "reopened",
                serde_json::json!({"msgid": m.msgid, "reason": reason}),
            )
            .await?;
            self.add_message(conn, &t.id, m).await?;
            t.version += 1;
            return Ok(t);
        }
        let group = crate::taxonomy::get(m.intent)
            .map(|i| i.group)
            .unwrap_or(GENERAL_GROUP);
        let standing = m.standing;
        let priority = self.settings.priority.priority(
            standing.tier,
            m.intent,
            group,
            standing.raise_priority,
        );
        let sla = &self.settings.sla;
        let t = Ticket {
            id: new_id(now),
            channel: m.channel.into(),
            account: m.account.into(),
            external_userid: m.external_userid.into(),
            open_key: Some(Ticket::open_key_for(
                m.channel,
                m.account,
                m.external_userid,
            )),
            customer_name: m.customer_name.map(str::to_owned),
            status: TicketStatus::New.as_str().into(),
            reason: reason.as_str().into(),
            intent: m.intent.into(),
            grp: group.into(),
            priority: priority.rank(),
            tier: standing.tier.as_str().into(),
            tier_reasons: serde_json::to_string(&standing.reasons).unwrap_or_else(|_| "[]".into()),
            opened_at: now,
            updated_at: now,
            last_message: Some(m.content.into()),
            last_customer_at: Some(m.at_ms),
            sla_started_at: now,
            first_response_due: Some(sla.due(priority, Target::FirstResponse, now)),
            resolution_due: sla.due(priority, Target::Resolution, now),
            ..Ticket::default()
        };
        store::insert(conn, &t).await.map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                TicketError::Conflict("the customer already has an open ticket".into())
            }
            e => TicketError::Db(e),
        })?;
        self.event(
            conn,
            &t.id,
            "kefu",
            "opened",
            serde_json::json!({"reason": reason, "priority": priority, "tier": standing.tier,
                               "tier_reasons": standing.reasons, "intent": m.intent}),
        )
        .await?;
        self.add_message(conn, &t.id, m).await?;
        // new -> queued: routing hands it out.
        let mut t = t;
        t.status = TicketStatus::Queued.as_str().into();
        self.write(conn, &t, "kefu", "queued", serde_json::json!({}))
            .await?;
        t.version += 1;
        Ok(t)
    }

    /// An agent replied (from the console, or from WeCom in `wecom` mode): the response
    /// clocks stop.
    pub async fn agent_replied(
        &self,
        conn: &mut AnyConnection,
        ticket: &Ticket,
        agent: &str,
        msgid: Option<&str>,
        content: &str,
        reply_id: Option<&str>,
    ) -> Result<Ticket, TicketError> {
        let now = self.clock.now_ms();
        let mut t = ticket.clone();
        t.first_response_at.get_or_insert(now);
        t.last_assignee = Some(agent.into());
        t.last_served_at = Some(now);
        t.first_response_due = None;
        t.waiting_since = None;
        t.next_response_due = None;
        t.last_agent_at = Some(now);
        t.last_message = Some(content.into());
        t.updated_at = now;
        self.write(
            conn,
            &t,
            agent,
            "replied",
            serde_json::json!({"msgid": msgid}),
        )
        .await?;
        store::insert_message(
            conn,
            &TicketMessage {
                id: row_id(now),
                ticket_id: t.id.clone(),
                msgid: msgid.map(str::to_owned),
                author: "agent".into(),
                agent: Some(agent.into()),
                content: content.into(),
                intent: None,
                confidence: None,
                at: now,
                reply_id: reply_id.map(str::to_owned),
            },
        )
        .await?;
        t.version += 1;
        Ok(t)
    }

    /// Apply a lifecycle action by `actor` (an agent id, "admin", "kefu"). `assignee` is for
    /// [`Action::Assign`]. Returns the changed ticket; nothing changes on an error.
    pub async fn act(
        &self,
        conn: &mut AnyConnection,
        ticket: &Ticket,
        action: Action,
        actor: &str,
        assignee: Option<&str>,
    ) -> Result<Ticket, TicketError> {
        let now = self.clock.now_ms();
        let from = ticket.status();
        let to = from
            .after(action, ticket.assignee.is_some())
            .ok_or(TicketError::Forbidden {
                action: action.as_str(),
                status: from.as_str(),
            })?;
        let mut t = ticket.clone();
        let mut detail = serde_json::json!({"from": from, "to": to});
        match action {
            Action::Assign => {
                let agent = assignee.unwrap_or_default();
                detail["assignee"] = serde_json::json!(agent);
                detail["previous"] = serde_json::json!(t.assignee);
                t.assignee = Some(agent.into());
                t.assigned_at = Some(now);
                t.last_assignee = Some(agent.into());
                t.last_served_at = Some(now);
                if from == TicketStatus::PendingCustomer {
                    // Still waiting on the shopper: a new owner does not restart the clocks.
                    t.status = from.as_str().into();
                    detail["to"] = serde_json::json!(from);
                }
            }
            Action::Unassign => {
                detail["previous"] = serde_json::json!(t.assignee);
                t.assignee = None;
                t.assigned_at = None;
            }
            Action::WaitForCustomer => t.paused_at = Some(now),
            Action::Resolve => {
                t.resolved_at = Some(now);
                t.open_key = None;
                t.paused_at = None;
            }
            Action::Close => {
                t.closed_at = Some(now);
                t.open_key = None;
                t.paused_at = None;
            }
            Action::Reopen => {
                t.open_key = Some(Ticket::open_key_for(
                    &t.channel,
                    &t.account,
                    &t.external_userid,
                ));
                self.restart(&mut t, now);
            }
            Action::Queue | Action::CustomerWrote => {}
        }
        if !(action == Action::Assign && from == TicketStatus::PendingCustomer) {
            t.status = to.as_str().into();
        }
        t.updated_at = now;
        let kind = match action {
            Action::Assign if from == TicketStatus::Assigned => "reassigned",
            Action::Assign => "assigned",
            Action::Unassign => "unassigned",
            Action::WaitForCustomer => "pending_customer",
            Action::Resolve => "resolved",
            Action::Close => "closed",
            Action::Reopen => "reopened",
            Action::Queue => "queued",
            Action::CustomerWrote => "appended",
        };
        self.write(conn, &t, actor, kind, detail).await?;
        if let (Action::Assign, Some(agent)) = (action, assignee) {
            store::touch_assigned(conn, agent, now).await?;
        }
        t.version += 1;
        Ok(t)
    }

    /// WeCom refused or could not deliver a message an agent sent (`msgid`, the outbox id):
    /// the ticket's history says so, for the agent to see. False if it was no ticket's.
    pub async fn reply_failed(
        &self,
        conn: &mut AnyConnection,
        msgid: &str,
        error: &str,
    ) -> Result<bool, TicketError> {
        let Some(ticket_id) = store::ticket_of_message(conn, msgid).await? else {
            return Ok(false);
        };
        let error: String = error.chars().take(300).collect();
        self.event(
            conn,
            &ticket_id,
            "wecom",
            "reply_failed",
            serde_json::json!({"msgid": msgid, "error": error}),
        )
        .await?;
        Ok(true)
    }

    /// A note on a ticket, for the people working it.
    pub async fn note(
        &self,
        conn: &mut AnyConnection,
        ticket: &Ticket,
        actor: &str,
        text: &str,
    ) -> Result<(), TicketError> {
        self.event(
            conn,
            &ticket.id,
            actor,
            "note",
            serde_json::json!({"text": text}),
        )
        .await
    }

    /// Escalate an open ticket (a supervisor's action): one step more urgent, so it comes
    /// first in its queue, and from `high` up goes to a senior agent when next routed. The
    /// SLA due times stay those the ticket opened with.
    pub async fn escalate(
        &self,
        conn: &mut AnyConnection,
        ticket: &Ticket,
        actor: &str,
    ) -> Result<Ticket, TicketError> {
        if !ticket.status().is_open() {
            return Err(TicketError::Forbidden {
                action: "escalate",
                status: ticket.status().as_str(),
            });
        }
        let from = ticket.priority();
        let to = from.raised();
        if to == from {
            return Err(TicketError::Conflict(format!(
                "ticket {} is {} already",
                ticket.id,
                from.as_str()
            )));
        }
        let mut t = ticket.clone();
        t.priority = to.rank();
        t.updated_at = self.clock.now_ms();
        self.write(
            conn,
            &t,
            actor,
            "escalated",
            serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
        )
        .await?;
        t.version += 1;
        Ok(t)
    }

    /// Record the shopper's satisfaction rating, once per ticket, while it is resolved or
    /// closed. False if it was rated already or is open again.
    pub async fn record_csat(
        &self,
        conn: &mut AnyConnection,
        ticket: &Ticket,
        rating: &str,
    ) -> Result<bool, TicketError> {
        if !store::set_csat(conn, &ticket.id, rating, self.clock.now_ms()).await? {
            return Ok(false);
        }
        self.event(
            conn,
            &ticket.id,
            "customer",
            "csat",
            serde_json::json!({"rating": rating, "agent": ticket.assignee}),
        )
        .await?;
        Ok(true)
    }

    /// The clocks start again (a reopened ticket): queued, unassigned, new resolution target.
    fn restart(&self, t: &mut Ticket, now: i64) {
        let priority = t.priority();
        t.status = TicketStatus::Queued.as_str().into();
        t.assignee = None;
        t.assigned_at = None;
        t.resolved_at = None;
        t.closed_at = None;
        t.paused_at = None;
        t.sla_started_at = now;
        t.first_response_due = None;
        t.waiting_since = None;
        t.next_response_due = None;
        t.resolution_due = self.settings.sla.due(priority, Target::Resolution, now);
        t.updated_at = now;
    }

    /// The shopper wrote: the next-response clock starts unless one already runs (or the
    /// first response is still owed, whose clock covers it).
    fn customer_wrote(&self, t: &mut Ticket, m: &Incoming<'_>, now: i64) {
        t.last_message = Some(m.content.into());
        t.last_customer_at = Some(m.at_ms);
        t.updated_at = now;
        if t.first_response_due.is_none() && t.waiting_since.is_none() {
            t.waiting_since = Some(now);
            t.next_response_due = Some(self.settings.sla.due(
                t.priority(),
                Target::NextResponse,
                now,
            ));
        }
    }

    /// The clocks stopped at `paused_at` start again at `now`: each due time keeps the
    /// business time it had left.
    fn resume_clocks(&self, t: &mut Ticket, now: i64) {
        let Some(paused) = t.paused_at.take() else {
            return;
        };
        let cal = &self.settings.sla.calendar;
        let shift = |due: i64| {
            if due <= paused {
                due // already past due when paused: stays breached
            } else {
                cal.add_business_ms(now, cal.business_ms_between(paused, due))
            }
        };
        t.first_response_due = t.first_response_due.map(shift);
        t.next_response_due = t.next_response_due.map(shift);
        t.resolution_due = shift(t.resolution_due);
    }

    /// Save `t` (checking nobody changed it since it was read) and record the change.
    async fn write(
        &self,
        conn: &mut AnyConnection,
        t: &Ticket,
        actor: &str,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<(), TicketError> {
        let saved = store::save(conn, t).await.map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                TicketError::Conflict("the customer already has another open ticket".into())
            }
            e => TicketError::Db(e),
        })?;
        if !saved {
            return Err(TicketError::Stale);
        }
        self.event(conn, &t.id, actor, kind, detail).await
    }

    async fn event(
        &self,
        conn: &mut AnyConnection,
        ticket_id: &str,
        actor: &str,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<(), TicketError> {
        let now = self.clock.now_ms();
        store::insert_event(
            conn,
            &TicketEvent {
                id: row_id(now),
                ticket_id: ticket_id.into(),
                at: now,
                actor: actor.into(),
                kind: kind.into(),
                detail: detail.to_string(),
            },
        )
        .await?;
        Ok(())
    }

    async fn add_message(
        &self,
        conn: &mut AnyConnection,
        ticket_id: &str,
        m: &Incoming<'_>,
    ) -> Result<(), TicketError> {
        store::insert_message(
            conn,
            &TicketMessage {
                id: row_id(self.clock.now_ms()),
                ticket_id: ticket_id.into(),
                msgid: Some(m.msgid.into()),
                author: "customer".into(),
                agent: None,
                content: m.content.into(),
                intent: Some(m.intent.into()),
                confidence: m.confidence,
                at: m.at_ms,
                reply_id: None,
            },
        )
        .await?;
        Ok(())
    }
}
