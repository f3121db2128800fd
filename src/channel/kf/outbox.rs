//! The outbox: everything kefu sends is queued in the transaction that decided it, then sent
//! here, with retries, and marked sent, or failed past the retry budget (and listed for
//! supervisors at `GET /api/outbox/failed`, with an alert through the group robot).
//!
//! One chat's rows are sent strictly in the order they were written: WeCom refuses an
//! acknowledgement sent after the move to the pending pool (95018). Whether a failure is
//! worth another attempt is [`ApiError::retryable`]'s call, the same rule the client's own
//! retry loop follows.

use serde_json::{json, Value};
use sqlx::{Any, Transaction};

use super::{KfError, KfService, OUTBOX_ATTEMPTS};
use crate::ids::{ExternalUserId, MsgId, OpenKfId};
use crate::store::new_id;
use crate::store::outbox::{self as outbox_store, DueRow, NewOutboxRow};
use crate::store::{OutboxApi, OutboxStatus};
use crate::wecom::api::ApiError;

/// Alerts list at most this many messages; the rest are counted.
const ALERT_LINES_SHOWN: usize = 10;

/// The outbox's name for one conversation: a kf account and a shopper.
pub(super) fn chat_key(open_kfid: &OpenKfId, external_userid: &ExternalUserId) -> String {
    format!("{open_kfid}/{external_userid}")
}

/// Text safe inside a markdown alert line: no line breaks or markup characters.
pub(super) fn strip_markdown(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' => ' ',
            c => c,
        })
        .collect()
}

/// One line of a supervisors' alert about a failed outgoing message: whom it was for and why,
/// never its text.
fn failure_line(api: &str, body: &Value, error: &str) -> String {
    let who = body["touser"]
        .as_str()
        .or_else(|| body["external_userid"].as_str())
        .unwrap_or("-");
    let error: String = error.chars().take(120).collect();
    format!(
        "{} → {}：{}",
        strip_markdown(api),
        strip_markdown(who),
        strip_markdown(&error)
    )
}

/// Wait before attempt `attempts + 1`: one second, doubling, at most 256 s.
fn retry_delay_ms(attempts: i64) -> i64 {
    1000i64 << attempts.clamp(0, 8)
}

impl KfService {
    /// Queue `body` for `api`. Rows of one chat (`open_kfid`, `external_userid`) are numbered
    /// in the order they are written and sent strictly in that order; rows without a chat
    /// (alerts) have no order to keep.
    pub(super) async fn enqueue(
        &self,
        tx: &mut Transaction<'static, Any>,
        api: OutboxApi,
        body: Value,
        source: Option<&MsgId>,
        chat: Option<(&OpenKfId, &ExternalUserId)>,
    ) -> Result<(), KfError> {
        self.enqueue_row(tx, api, body, source, chat)
            .await
            .map(|_| ())
    }

    /// [`KfService::enqueue`] without a source message, returning the row's id (also the
    /// msgid WeCom is given).
    pub(super) async fn enqueue_returning_id(
        &self,
        tx: &mut Transaction<'static, Any>,
        api: OutboxApi,
        body: Value,
        chat: Option<(&OpenKfId, &ExternalUserId)>,
    ) -> Result<String, KfError> {
        self.enqueue_row(tx, api, body, None, chat).await
    }

    async fn enqueue_row(
        &self,
        tx: &mut Transaction<'static, Any>,
        api: OutboxApi,
        mut body: Value,
        source: Option<&MsgId>,
        chat: Option<(&OpenKfId, &ExternalUserId)>,
    ) -> Result<String, KfError> {
        let now = self.clock.now_ms();
        // "kf" + 26 hex digits: a valid kf msgid (≤ 32 of [0-9a-zA-Z_-]) and the send's idempotency key.
        let id = format!("kf{}", &new_id(now)[3..]);
        if api.carries_msgid() {
            body["msgid"] = json!(id);
        }
        let chat = chat.map(|(kfid, user)| chat_key(kfid, user));
        let seq = match &chat {
            // Pulls of one kf account run one at a time (see `pull`), so the next number is
            // read and used inside the same transaction; a unique index backs that up.
            Some(c) => Some(outbox_store::next_seq(tx, c).await?),
            None => None,
        };
        outbox_store::insert(
            tx,
            &NewOutboxRow {
                id: &id,
                api,
                payload: body.to_string(),
                source_msgid: source.map(MsgId::as_str),
                now_ms: now,
                chat: chat.as_deref(),
                seq,
            },
        )
        .await?;
        Ok(id)
    }

    /// Send every due outbox row; returns how many were sent.
    ///
    /// One chat's rows go strictly in the order they were written: a row is due only once
    /// every earlier row of its chat has been sent or has failed for good, so a pass takes
    /// at most one row per chat, and passes repeat until nothing due is left. A row waiting
    /// for its retry holds back the rows behind it. Different chats go side by side, and
    /// replicas may share the work: a row is claimed before it is sent.
    pub async fn send_due(&self) -> Result<usize, KfError> {
        let _one = self.outbox_lock.lock().await;
        let mut sent = 0;
        // Bounded so that one call cannot run forever if rows keep arriving.
        for _ in 0..64 {
            let (pass_sent, settled) = self.send_pass().await?;
            sent += pass_sent;
            if settled == 0 {
                break;
            }
        }
        Ok(sent)
    }

    /// One pass over the due rows, at most one per chat. Returns (sent, rows settled: sent,
    /// failed or rescheduled by this pass).
    async fn send_pass(&self) -> Result<(usize, usize), KfError> {
        let pool = self.store.pool();
        let rows = outbox_store::due(pool, self.clock.now_ms()).await?;
        let mut sent = 0;
        let mut settled = 0;
        let mut failed_for_good: Vec<String> = Vec::new();
        // (outbox id, error) of rows given up on: an agent's reply among them is reported on
        // its ticket.
        let mut given_up: Vec<(String, String)> = Vec::new();
        let lease_ms = self.outbox_lease_ms();
        for row in rows {
            let now = self.clock.now_ms();
            if !outbox_store::claim(pool, &row.id, now, now + lease_ms).await? {
                continue; // another replica took it
            }
            let lease_ends = tokio::time::Instant::now()
                + std::time::Duration::from_millis(lease_ms.max(0) as u64);
            settled += 1;
            let body: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
            let api = OutboxApi::parse(&row.api);
            if row.attempts >= OUTBOX_ATTEMPTS {
                // Taken back after its lease ran out, as often as it may be tried: every
                // sender that had it died or could not record what happened. Stop here
                // rather than send it yet again.
                let error = format!("no outcome recorded after {} attempts", row.attempts);
                outbox_store::mark_attempt_failed(pool, &row.id, OutboxStatus::Failed, now, &error)
                    .await?;
                tracing::error!(outbox_id = %row.id, "outgoing message failed for good; listed for supervisors");
                if api != Some(OutboxApi::WebhookSend) {
                    failed_for_good.push(failure_line(&row.api, &body, &error));
                }
                given_up.push((row.id.clone(), error));
                continue;
            }
            // Never past the lease: by then another sender may take the row. A fifth of it is
            // left to record the outcome.
            let within = std::time::Duration::from_millis((lease_ms - lease_ms / 5).max(0) as u64);
            let result = tokio::time::timeout(within, self.send_one(api, &row, &body))
                .await
                .unwrap_or_else(|_| {
                    Err(ApiError::Network {
                        api: "outbox",
                        detail: "no outcome within the outbox lease".into(),
                    })
                });
            let now = self.clock.now_ms();
            match result {
                Ok(_) => {
                    self.record_sent(&row.id, lease_ends).await?;
                    sent += 1;
                }
                Err(e) => {
                    let give_up = !e.retryable() || row.attempts + 1 >= OUTBOX_ATTEMPTS;
                    let status = if give_up {
                        OutboxStatus::Failed
                    } else {
                        OutboxStatus::Pending
                    };
                    outbox_store::mark_attempt_failed(
                        pool,
                        &row.id,
                        status,
                        now + retry_delay_ms(row.attempts),
                        &e.to_string(),
                    )
                    .await?;
                    if give_up {
                        tracing::error!(outbox_id = %row.id, error = %e, "outgoing message failed for good; listed for supervisors");
                        // An alert that failed is not alerted about.
                        if api != Some(OutboxApi::WebhookSend) {
                            failed_for_good.push(failure_line(&row.api, &body, &e.to_string()));
                        }
                        given_up.push((row.id.clone(), e.to_string()));
                    }
                }
            }
        }
        if !failed_for_good.is_empty() || !given_up.is_empty() {
            let mut tx = pool.begin().await?;
            self.alert(&mut tx, "发送失败，已停止重试", &failed_for_good)
                .await?;
            for (id, error) in &given_up {
                self.tickets.reply_failed(&mut tx, id, error).await?;
            }
            tx.commit().await?;
        }
        Ok((sent, settled))
    }

    /// WeCom took the message: record it. While the store cannot be reached, keep trying for
    /// as long as the row's lease is this sender's: a row left `sending` would be sent again
    /// once its lease runs out.
    async fn record_sent(&self, id: &str, lease_ends: tokio::time::Instant) -> Result<(), KfError> {
        let mut wait = std::time::Duration::from_millis(50);
        loop {
            match outbox_store::mark_sent(self.store.pool(), id, self.clock.now_ms()).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() + wait < lease_ends => {
                    tracing::warn!(outbox_id = %id, error = %e, "sent, but not yet recorded; trying again");
                    tokio::time::sleep(wait).await;
                    // At most 0.1 s apart: once the store is back, the record lands at once,
                    // and the time in which a crash would leave it unrecorded stays short.
                    wait = (wait * 2).min(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Make the call a row stands for.
    async fn send_one(
        &self,
        api: Option<OutboxApi>,
        row: &DueRow,
        body: &Value,
    ) -> Result<Value, ApiError> {
        match api {
            Some(OutboxApi::SendMsg) => self.client.send_msg(body).await,
            Some(OutboxApi::SendMsgOnEvent) => self.client.send_msg_on_event(body).await,
            Some(OutboxApi::ServiceStateTrans) => {
                self.client
                    .service_state_trans(
                        body["open_kfid"].as_str().unwrap_or(""),
                        body["external_userid"].as_str().unwrap_or(""),
                        body["service_state"].as_u64().unwrap_or(2) as u8,
                        body["servicer_userid"].as_str().unwrap_or(""),
                    )
                    .await
            }
            Some(OutboxApi::WebhookSend) => match &self.alert_webhook_key {
                Some(key) => self.client.webhook_send(key, body).await,
                None => Err(ApiError::Config {
                    api: "outbox",
                    detail: "no [wecom] alert_webhook_key configured".into(),
                }),
            },
            None => Err(ApiError::Config {
                api: "outbox",
                detail: format!("unknown api {}", row.api),
            }),
        }
    }

    /// Tell supervisors through the group robot, if one is configured. The alert goes through
    /// the outbox like everything else sent, so it survives restarts and is retried; one alert
    /// covers a whole pass, which keeps within the robot's 20 messages a minute.
    pub(super) async fn alert(
        &self,
        tx: &mut Transaction<'static, Any>,
        what: &str,
        lines: &[String],
    ) -> Result<(), KfError> {
        let title = format!("{} 条消息{what}", lines.len());
        self.alert_with(tx, &title, lines, "详见 GET /api/outbox/failed")
            .await
    }

    /// Queue a markdown alert for the supervisors' group robot: a title, at most
    /// [`ALERT_LINES_SHOWN`] lines, and where to read more.
    pub(super) async fn alert_with(
        &self,
        tx: &mut Transaction<'static, Any>,
        title: &str,
        lines: &[String],
        footer: &str,
    ) -> Result<(), KfError> {
        if self.alert_webhook_key.is_none() || lines.is_empty() {
            return Ok(());
        }
        let mut content = format!("**kefu：{title}**\n");
        for line in lines.iter().take(ALERT_LINES_SHOWN) {
            content.push_str("> ");
            content.push_str(line);
            content.push('\n');
        }
        if lines.len() > ALERT_LINES_SHOWN {
            content.push_str(&format!("> 另有 {} 条\n", lines.len() - ALERT_LINES_SHOWN));
        }
        content.push_str(footer);
        let body = json!({"msgtype": "markdown", "markdown": {"content": content}});
        self.enqueue(tx, OutboxApi::WebhookSend, body, None, None)
            .await
    }

    /// Rows left in 'sending' whose lease ran out (a crash) go back to 'pending' (they are
    /// re-sent with the same msgid); rows another live replica is sending are left alone.
    pub async fn recover(&self) -> Result<u64, KfError> {
        Ok(outbox_store::recover_sending(self.store.pool(), self.clock.now_ms()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_lines_carry_no_markup_and_no_message_text() {
        let body = json!({"touser": "wm*1*", "text": {"content": "secret"}});
        let line = failure_line("send_msg", &body, "kf/send_msg: WeCom error 95018 (`x`)\n");
        assert_eq!(
            line,
            "send msg → wm 1 ：kf/send msg: WeCom error 95018 ( x ) "
        );
        assert!(!line.contains("secret"));
    }

    #[test]
    fn retries_back_off_to_a_ceiling() {
        assert_eq!(retry_delay_ms(0), 1000);
        assert_eq!(retry_delay_ms(3), 8000);
        assert_eq!(retry_delay_ms(20), 256_000);
    }

    #[test]
    fn only_busy_and_transport_failures_are_retried() {
        let api = |code| ApiError::Api {
            api: "kf/send_msg",
            code,
            msg: String::new(),
        };
        for code in [-1, 45009, 45033] {
            assert!(api(code).retryable(), "{code}");
        }
        assert!(!api(95018).retryable());
        assert!(ApiError::Network {
            api: "x",
            detail: "timeout".into()
        }
        .retryable());
        assert!(ApiError::Store("down".into()).retryable());
        assert!(!ApiError::Config {
            api: "outbox",
            detail: "unknown api x".into()
        }
        .retryable());
    }
}
