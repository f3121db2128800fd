//! The kf side of tickets: what WeCom must be told when a ticket moves, and what WeCom
//! tells kefu about the people working them.
//!
//! - A routing and watch pass ([`KfService::ticket_pass`]): hand queued tickets to agents
//!   (in `wecom` mode the session moves to the agent, state 3), record SLA warnings and
//!   breaches (breaches alert the supervisors' group robot), requeue idle assignments and
//!   close resolved tickets past the reopen window.
//! - Agents' actions that reach the shopper: a reply from the console (through the outbox
//!   and `send_msg`, within WeCom's quota), assignment, and resolution with its survey.
//! - WeCom's reports: an agent's message from the WeCom app, a session taken or ended, an
//!   agent on or off duty.
//!
//! A transaction that changes tickets outside a pull takes the routing turn, then on
//! PostgreSQL the advisory lock of every kf account whose tickets it writes, and only then
//! reads and writes the tickets. A pull takes its account's lock and then writes tickets,
//! so the two wait for each other in one order only, and a chat's outbox rows keep theirs.

use serde::Serialize;
use serde_json::json;
use sqlx::{Any, Transaction};

use super::bodies;
use super::pull::{Pulled, PulledEvent};
use super::{KfError, KfService};
use crate::ids::{ExternalUserId, OpenKfId};
use crate::store::kf as kf_store;
use crate::store::outbox as outbox_store;
use crate::store::{Backend, OutboxApi, SessionState};
use crate::tickets::routing::Agent;
use crate::tickets::{self, store as ticket_store, Action, ReplyMode, Ticket, TicketError};

/// WeCom's send quota: messages after each shopper message, and for how long.
pub const SEND_QUOTA: i64 = 5;
pub const SEND_WINDOW_MS: i64 = 48 * 3600 * 1000;

/// What one ticket pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TicketWork {
    /// Official Account messages that joined or opened a ticket.
    pub taken_in: usize,
    pub assigned: usize,
    pub warnings: usize,
    pub breaches: usize,
    pub requeued: usize,
    pub closed: usize,
}

/// A console reply, queued.
#[derive(Debug, Clone, Serialize)]
pub struct ReplyOutcome {
    pub outbox_id: String,
    /// Messages WeCom still takes for this shopper before they write again.
    pub quota_left: i64,
}

/// The kf account and shopper a ticket's chat is with.
fn chat_of(t: &Ticket) -> (OpenKfId, ExternalUserId) {
    (
        OpenKfId::from(t.account.as_str()),
        ExternalUserId::from(t.external_userid.as_str()),
    )
}

/// A console user's request met a ticket that was reassigned meanwhile.
fn no_longer_yours(t: &Ticket) -> TicketError {
    TicketError::Conflict(format!(
        "ticket {} was just assigned to {}",
        t.id,
        t.assignee.as_deref().unwrap_or("someone else")
    ))
}

impl KfService {
    pub fn tickets(&self) -> &tickets::TicketService {
        &self.tickets
    }

    /// Wake the ticket pass (a ticket was resolved, an agent added or back on duty).
    pub fn tickets_changed(&self) {
        self.tickets_ready.notify_one();
    }

    /// A transaction for changing tickets outside a pull: the routing turn is taken first.
    pub async fn ticket_tx(&self) -> Result<Transaction<'static, Any>, KfError> {
        let mut tx = self.store.pool().begin().await?;
        ticket_store::take_routing_turn(&mut tx).await?;
        Ok(tx)
    }

    /// On PostgreSQL, the kf account's lock: this transaction may now number the chat's
    /// outbox rows (see [`KfService::pull`]).
    async fn lock_chat(
        &self,
        tx: &mut Transaction<'static, Any>,
        account: &str,
    ) -> Result<(), KfError> {
        if self.store.backend() == Backend::Postgres {
            kf_store::lock_account(tx, &OpenKfId::from(account)).await?;
        }
        Ok(())
    }

    /// Record the agents of `[[tickets.agents]]` (their duty state stays WeCom's).
    pub async fn sync_agents(&self) -> Result<(), KfError> {
        let configured = self.tickets.settings().agents.clone();
        if configured.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut tx = self.ticket_tx().await?;
        for a in &configured {
            ticket_store::upsert_agent(&mut tx, &a.to_row(now), false).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Add or change an agent (the API); routing runs again.
    /// `set_duty`: also record `agent.on_duty` (else WeCom's last word on it stays).
    pub async fn save_agent(&self, agent: &Agent, set_duty: bool) -> Result<(), KfError> {
        let mut tx = self.ticket_tx().await?;
        ticket_store::upsert_agent(&mut tx, &agent.to_row(self.clock.now_ms()), set_duty).await?;
        tx.commit().await?;
        self.tickets_changed();
        Ok(())
    }

    /// Watch, then route: one transaction each, so a failing watch does not hold routing.
    pub async fn ticket_pass(&self) -> Result<TicketWork, KfError> {
        let mut work = TicketWork::default();
        if let Err(e) = self.watch_tickets(&mut work).await {
            tracing::warn!(error = %e, "ticket watch failed; routing goes on");
        }
        let mut tx = self.ticket_tx().await?;
        // A pull holds its account's lock and then writes tickets: take the locks of every
        // account routing may write to first, in one order, so neither waits on the other.
        for account in ticket_store::queued_accounts(&mut tx).await? {
            self.lock_chat(&mut tx, &account).await?;
        }
        let assigned = self.tickets.route(&mut tx).await?;
        for a in &assigned {
            if self.tickets.settings().agents_reply_in == ReplyMode::Wecom
                && a.ticket.channel == "kf"
            {
                self.move_to_agent(&mut tx, &a.ticket, &a.agent).await?;
            }
        }
        tx.commit().await?;
        work.assigned = assigned.len();
        if !assigned.is_empty() {
            self.outbox_ready.notify_one();
        }
        Ok(work)
    }

    /// Idle assignments back to the queue, old resolved tickets closed, SLA marks recorded
    /// and breaches alerted.
    async fn watch_tickets(&self, work: &mut TicketWork) -> Result<(), KfError> {
        work.taken_in = self.tickets.take_in_waiting_mp(self.store.pool()).await?;
        let mut tx = self.ticket_tx().await?;
        work.requeued = self.tickets.requeue_idle(&mut tx).await?.len();
        work.closed = self.tickets.close_expired(&mut tx).await?;
        let marks = self.tickets.check_sla(&mut tx).await?;
        let mut lines = Vec::new();
        for m in &marks {
            if m.breach {
                work.breaches += 1;
                lines.push(format!(
                    "工单 {} {} 超时（客户 {}，负责人 {}）",
                    m.ticket_id,
                    m.target.as_str(),
                    super::outbox::strip_markdown(&m.external_userid),
                    super::outbox::strip_markdown(m.assignee.as_deref().unwrap_or("未分配"))
                ));
            } else {
                work.warnings += 1;
            }
        }
        self.alert_with(
            &mut tx,
            "SLA 超时",
            &lines,
            "详见 GET /api/tickets?breached=true",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// In `wecom` mode: the session goes to the agent (state 3), who answers in WeCom. The
    /// caller holds the account's lock.
    async fn move_to_agent(
        &self,
        tx: &mut Transaction<'static, Any>,
        t: &Ticket,
        agent: &str,
    ) -> Result<(), KfError> {
        self.move_session(tx, t, SessionState::Agent, agent).await
    }

    async fn move_session(
        &self,
        tx: &mut Transaction<'static, Any>,
        t: &Ticket,
        state: SessionState,
        agent: &str,
    ) -> Result<(), KfError> {
        let (kfid, customer) = chat_of(t);
        let trans = json!({"open_kfid": kfid, "external_userid": customer,
                           "service_state": state.as_i64(), "servicer_userid": agent});
        self.enqueue(
            tx,
            OutboxApi::ServiceStateTrans,
            trans,
            None,
            Some((&kfid, &customer)),
        )
        .await?;
        let servicer = (!agent.is_empty()).then_some(agent);
        kf_store::set_session(tx, &kfid, &customer, state, servicer, self.clock.now_ms()).await?;
        Ok(())
    }

    /// A transaction on one ticket: the routing turn, then (PostgreSQL) its kf account's
    /// lock, then the ticket as it stands now. Pulls take the account lock first too, so the
    /// two never wait on each other in a circle.
    pub async fn ticket_tx_for(
        &self,
        id: &str,
    ) -> Result<(Transaction<'static, Any>, Ticket), KfError> {
        let mut tx = self.ticket_tx().await?;
        let t = ticket_store::get(&mut *tx, id)
            .await?
            .ok_or_else(|| TicketError::NotFound(id.into()))?;
        if t.channel == "kf" {
            self.lock_chat(&mut tx, &t.account).await?;
        }
        // Read again under the lock: a pull may have changed it meanwhile.
        let t = ticket_store::get(&mut *tx, id)
            .await?
            .ok_or_else(|| TicketError::NotFound(id.into()))?;
        Ok((tx, t))
    }

    /// A lifecycle action that sends nothing (close, reopen, pending), or a note.
    pub async fn act_on_ticket(
        &self,
        id: &str,
        action: Action,
        actor: &str,
    ) -> Result<Ticket, KfError> {
        let (mut tx, t) = self.ticket_tx_for(id).await?;
        let t = self.tickets.act(&mut tx, &t, action, actor, None).await?;
        tx.commit().await?;
        self.tickets_changed();
        Ok(t)
    }

    /// Assign a ticket to an agent by hand (`actor`: who did it).
    pub async fn assign_ticket(
        &self,
        id: &str,
        agent: &str,
        actor: &str,
    ) -> Result<Ticket, KfError> {
        let (mut tx, t) = self.ticket_tx_for(id).await?;
        let t = self
            .tickets
            .act(&mut tx, &t, Action::Assign, actor, Some(agent))
            .await?;
        if self.tickets.settings().agents_reply_in == ReplyMode::Wecom && t.channel == "kf" {
            self.move_to_agent(&mut tx, &t, agent).await?;
        }
        tx.commit().await?;
        self.outbox_ready.notify_one();
        Ok(t)
    }

    /// Resolve a ticket. Console mode: the shopper gets the satisfaction survey while WeCom
    /// still takes messages for them (unless turned off). Wecom mode: the session with the
    /// agent ends, so the shopper's next message comes back to kefu (and reopens the ticket
    /// within the window).
    /// `may` is asked again of the ticket as read under the lock: a console user's right
    /// to it may have changed since their request was checked.
    pub async fn resolve_ticket(
        &self,
        id: &str,
        actor: &str,
        may: &(dyn Fn(&Ticket) -> bool + Send + Sync),
    ) -> Result<Ticket, KfError> {
        let (mut tx, t) = self.ticket_tx_for(id).await?;
        if !may(&t) {
            return Err(no_longer_yours(&t).into());
        }
        let t = self
            .tickets
            .act(&mut tx, &t, Action::Resolve, actor, None)
            .await?;
        let settings = self.tickets.settings();
        if t.channel == "kf" {
            let (kfid, customer) = chat_of(&t);
            let state = kf_store::session_state(&mut tx, &kfid, &customer).await?;
            match settings.agents_reply_in {
                ReplyMode::Console => {
                    let writable =
                        matches!(state, None | Some(SessionState::New | SessionState::Bot));
                    if settings.csat
                        && writable
                        && self.quota_left(&mut tx, &kfid, &customer).await? > 0
                    {
                        let body = bodies::csat(&t.id, &customer, &kfid, None);
                        self.enqueue(
                            &mut tx,
                            OutboxApi::SendMsg,
                            body,
                            None,
                            Some((&kfid, &customer)),
                        )
                        .await?;
                    }
                }
                ReplyMode::Wecom => {
                    if state == Some(SessionState::Agent) {
                        self.move_session(&mut tx, &t, SessionState::Ended, "")
                            .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        self.outbox_ready.notify_one();
        self.tickets_changed();
        Ok(t)
    }

    /// An agent's reply from the console (console mode): queued for `send_msg`, counted as
    /// the agent's response. A queued ticket is claimed by the agent who answers it. Refused
    /// while WeCom would refuse it (no quota left, or the session is with a person in WeCom).
    pub async fn reply_to_ticket(
        &self,
        id: &str,
        agent: &str,
        text: &str,
        reply_id: Option<&str>,
        may: &(dyn Fn(&Ticket) -> bool + Send + Sync),
    ) -> Result<ReplyOutcome, KfError> {
        let (mut tx, t) = self.ticket_tx_for(id).await?;
        if !may(&t) {
            return Err(no_longer_yours(&t).into());
        }
        if !t.status().is_open() {
            return Err(TicketError::Forbidden {
                action: "reply to",
                status: t.status().as_str(),
            }
            .into());
        }
        if t.channel != "kf" {
            return Err(TicketError::Conflict(
                "replies can be sent only to WeCom Customer Service chats".into(),
            )
            .into());
        }
        let (kfid, customer) = chat_of(&t);
        let state = kf_store::session_state(&mut tx, &kfid, &customer).await?;
        if matches!(state, Some(SessionState::Pool | SessionState::Agent)) {
            return Err(TicketError::Conflict(
                "WeCom does not let kefu write to this shopper now: the session is with a person in WeCom (95018)".into(),
            )
            .into());
        }
        let left = self.quota_left(&mut tx, &kfid, &customer).await?;
        if left == 0 {
            return Err(TicketError::Conflict(
                "WeCom's send quota for this shopper is used up (5 messages per shopper message, within 48 hours): wait for the shopper to write".into(),
            )
            .into());
        }
        let t = if t.assignee.is_none() {
            self.tickets
                .act(&mut tx, &t, Action::Assign, agent, Some(agent))
                .await?
        } else {
            t
        };
        let body = bodies::text(text, &customer, &kfid);
        let outbox_id = self
            .enqueue_returning_id(&mut tx, OutboxApi::SendMsg, body, Some((&kfid, &customer)))
            .await?;
        self.tickets
            .agent_replied(&mut tx, &t, agent, Some(&outbox_id), text, reply_id)
            .await?;
        tx.commit().await?;
        self.outbox_ready.notify_one();
        Ok(ReplyOutcome {
            outbox_id,
            quota_left: left - 1,
        })
    }

    /// How many more messages WeCom takes now for the shopper of a kf ticket.
    pub async fn quota_for(&self, t: &Ticket) -> Result<i64, KfError> {
        let (kfid, customer) = chat_of(t);
        let mut tx = self.store.pool().begin().await?;
        let left = self.quota_left(&mut tx, &kfid, &customer).await?;
        tx.rollback().await?;
        Ok(left)
    }

    /// How many more messages WeCom takes for this shopper now.
    pub async fn quota_left(
        &self,
        tx: &mut Transaction<'static, Any>,
        kfid: &OpenKfId,
        customer: &ExternalUserId,
    ) -> Result<i64, KfError> {
        let Some((sent_secs, received_ms)) =
            kf_store::last_customer_message(tx, kfid, customer).await?
        else {
            return Ok(0);
        };
        if self.clock.now_ms() - sent_secs.saturating_mul(1000) > SEND_WINDOW_MS {
            return Ok(0);
        }
        // Rows written since kefu recorded that message (both on kefu's clock).
        let chat = super::outbox::chat_key(kfid, customer);
        let used = outbox_store::sends_since(tx, &chat, received_ms).await?;
        Ok((SEND_QUOTA - used).max(0))
    }

    /// A survey click: recorded once, against the ticket and its agent.
    pub(super) async fn record_csat(
        &self,
        tx: &mut Transaction<'static, Any>,
        customer: &ExternalUserId,
        ticket_id: &str,
        rating: &str,
    ) -> Result<(), KfError> {
        let Some(t) = ticket_store::get(&mut **tx, ticket_id).await? else {
            return Ok(());
        };
        if t.external_userid != customer.as_str() {
            return Ok(()); // not this shopper's ticket
        }
        self.tickets.record_csat(tx, &t, rating).await?;
        Ok(())
    }

    /// An agent wrote from the WeCom app (origin 5): their response on the open ticket.
    pub(super) async fn agent_wrote_in_wecom(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        p: &Pulled<'_>,
        content: Option<&str>,
    ) -> Result<(), KfError> {
        let Some(t) = self
            .tickets
            .open_ticket(tx, "kf", open_kfid.as_str(), p.external_userid.as_str())
            .await?
        else {
            return Ok(());
        };
        let agent = p.message.servicer_userid.as_deref().unwrap_or("wecom");
        let shown = content
            .map(str::to_owned)
            .unwrap_or_else(|| super::decide::describe(p.message.msgtype.as_deref()));
        // A suggestion the agent copied into WeCom, as is or edited, is marked so.
        let from = match content {
            Some(text) => {
                crate::console::suggest::decide_for_text(
                    tx,
                    &self.classifier.current(),
                    &t,
                    text,
                    agent,
                    self.clock.now_ms(),
                )
                .await?
            }
            None => None,
        };
        self.tickets
            .agent_replied(
                tx,
                &t,
                agent,
                Some(p.msgid.as_str()),
                &shown,
                from.as_deref(),
            )
            .await?;
        Ok(())
    }

    /// WeCom moved a session: taken by or passed to an agent (the ticket follows), or ended
    /// (the ticket is resolved and the survey sent with the event's code).
    pub(super) async fn ticket_follows_session(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        who: &ExternalUserId,
        e: &PulledEvent,
        ended: bool,
    ) -> Result<(), KfError> {
        let Some(t) = self
            .tickets
            .open_ticket(tx, "kf", open_kfid.as_str(), who.as_str())
            .await?
        else {
            return Ok(());
        };
        let actor = e
            .new_servicer_userid
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("wecom");
        if ended {
            let t = self
                .tickets
                .act(tx, &t, Action::Resolve, actor, None)
                .await?;
            let code = e.msg_code.as_deref().filter(|c| !c.is_empty());
            if let (true, Some(code)) = (self.tickets.settings().csat, code) {
                let body = bodies::csat(&t.id, who, open_kfid, Some(code));
                self.enqueue(
                    tx,
                    OutboxApi::SendMsgOnEvent,
                    body,
                    None,
                    Some((open_kfid, who)),
                )
                .await?;
            }
            self.tickets_ready.notify_one();
        } else if let Some(agent) = e.new_servicer_userid.as_deref().filter(|s| !s.is_empty()) {
            if t.assignee.as_deref() != Some(agent) {
                self.tickets
                    .act(tx, &t, Action::Assign, actor, Some(agent))
                    .await?;
            }
        }
        Ok(())
    }

    /// An agent went on or off duty in WeCom. Coming on duty wakes routing; going off duty
    /// sends the tickets they have not answered yet back to the queue.
    pub(super) async fn agent_duty_changed(
        &self,
        tx: &mut Transaction<'static, Any>,
        servicer: &str,
        on_duty: bool,
    ) -> Result<(), KfError> {
        let known = ticket_store::set_on_duty(tx, servicer, on_duty, self.clock.now_ms()).await?;
        if !known {
            return Ok(());
        }
        if !on_duty {
            for t in ticket_store::unanswered_of(tx, servicer).await? {
                match self
                    .tickets
                    .act(tx, &t, Action::Unassign, "kefu", None)
                    .await
                {
                    Ok(_) | Err(TicketError::Stale | TicketError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.tickets_ready.notify_one();
        Ok(())
    }
}
