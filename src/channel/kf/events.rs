//! Event messages (`msgtype` "event"), one handler per event type kefu acts on:
//!
//! - `enter_session`: the shopper opened the chat; send the welcome menu while its code is good.
//! - `session_status_change`: an agent took, passed on, ended or reopened the session.
//! - `msg_send_fail`: WeCom could not deliver something we sent; mark it failed and alert.
//! - `user_recall_msg`: the shopper took a message back; do not answer it.
//! - `servicer_status_change`: an agent went on or off duty.
//!
//! Other events are recorded and nothing more.

use sqlx::{Any, Transaction};

use super::bodies;
use super::outbox::strip_markdown;
use super::pull::{Pulled, PulledEvent};
use super::{KfError, KfService};
use crate::ids::{ExternalUserId, OpenKfId};
use crate::store::kf as kf_store;
use crate::store::outbox as outbox_store;
use crate::store::{AgentStatus, OutboxApi, SessionState};

/// The welcome code is good for this long after the shopper entered.
const WELCOME_CODE_SECS: i64 = 20;

impl KfService {
    pub(super) async fn handle_event(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        p: &Pulled<'_>,
    ) -> Result<(), KfError> {
        let Some(e) = p.message.event.as_ref() else {
            return Ok(());
        };
        // The shopper the event is about: named in the event, else in the message.
        let who = e.external_userid.as_ref().unwrap_or(&p.external_userid);
        match e.event_type.as_deref().unwrap_or("") {
            "enter_session" => self.on_enter_session(tx, open_kfid, p, e).await,
            "session_status_change" => self.on_session_status_change(tx, open_kfid, who, e).await,
            "msg_send_fail" => self.on_msg_send_fail(tx, who, e).await,
            "user_recall_msg" => self.on_user_recall_msg(tx, e).await,
            "servicer_status_change" => self.on_servicer_status_change(tx, open_kfid, e).await,
            _ => Ok(()), // other events: recorded
        }
    }

    async fn on_enter_session(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        p: &Pulled<'_>,
        e: &PulledEvent,
    ) -> Result<(), KfError> {
        let code = e.welcome_code.as_deref().unwrap_or("");
        if !code.is_empty() && self.clock.now_secs() - p.send_time <= WELCOME_CODE_SECS {
            let classifier = self.classifier.current();
            let body = bodies::welcome(classifier.library(), code);
            let chat = Some((open_kfid, &p.external_userid));
            self.enqueue(tx, OutboxApi::SendMsgOnEvent, body, Some(p.msgid), chat)
                .await?;
        }
        Ok(())
    }

    async fn on_session_status_change(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        who: &ExternalUserId,
        e: &PulledEvent,
    ) -> Result<(), KfError> {
        let state = match e.change_type.unwrap_or(0) {
            // Taken from the pool, passed to another agent, or reopened by an agent.
            1 | 2 | 4 => SessionState::Agent,
            3 => SessionState::Ended,
            _ => return Ok(()),
        };
        self.ticket_follows_session(tx, open_kfid, who, e, state == SessionState::Ended)
            .await?;
        kf_store::set_session(
            tx,
            open_kfid,
            who,
            state,
            e.new_servicer_userid.as_deref(),
            self.clock.now_ms(),
        )
        .await?;
        Ok(())
    }

    async fn on_msg_send_fail(
        &self,
        tx: &mut Transaction<'static, Any>,
        who: &ExternalUserId,
        e: &PulledEvent,
    ) -> Result<(), KfError> {
        let failed = e.fail_msgid.as_deref().unwrap_or("");
        outbox_store::mark_undelivered(
            tx,
            failed,
            &format!("WeCom could not deliver it (fail_type {})", e.fail_type),
        )
        .await?;
        tracing::warn!(msgid = ?failed, "a sent message was not delivered");
        self.tickets
            .reply_failed(
                tx,
                failed,
                &format!("WeCom could not deliver it (fail_type {})", e.fail_type),
            )
            .await?;
        let line = format!(
            "{} 未送达（fail_type {}，消息 {}）",
            strip_markdown(who.as_str()),
            e.fail_type,
            strip_markdown(failed)
        );
        self.alert(tx, "未送达", &[line]).await
    }

    async fn on_user_recall_msg(
        &self,
        tx: &mut Transaction<'static, Any>,
        e: &PulledEvent,
    ) -> Result<(), KfError> {
        let recalled = e.recall_msgid.clone().unwrap_or_default();
        kf_store::mark_recalled(tx, &recalled).await?;
        // Do not answer a message the shopper took back.
        outbox_store::cancel_pending_for(tx, recalled.as_str()).await?;
        Ok(())
    }

    async fn on_servicer_status_change(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        e: &PulledEvent,
    ) -> Result<(), KfError> {
        let servicer = e.servicer_userid.as_deref().unwrap_or("");
        let Some(status) = e.status.and_then(AgentStatus::from_i64) else {
            return Ok(());
        };
        if servicer.is_empty() {
            return Ok(());
        }
        kf_store::set_agent_status(tx, open_kfid, servicer, status, self.clock.now_ms()).await?;
        self.agent_duty_changed(tx, servicer, status == AgentStatus::OnDuty)
            .await?;
        // Debug formatting escapes whatever the ids contain.
        tracing::info!(
            open_kfid = ?open_kfid.as_str(),
            ?servicer,
            on_duty = status == AgentStatus::OnDuty,
            "agent availability changed"
        );
        Ok(())
    }
}
