//! Pulling: page through `kf/sync_msg` from the stored cursor and record each message once.
//!
//! Each page's messages, the outbox rows they cause and the next cursor are written in one
//! transaction. Pulls of one kf account take turns: an in-process lock, and on PostgreSQL a
//! transaction-scoped advisory lock taken before the cursor is read, so replicas do too.
//! A newly recorded message goes to the handler for its sender: the shopper's to
//! [`decide`](super::decide), an agent's marks the session as held by a person, events to
//! [`events`](super::events).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use sqlx::{Any, Transaction};
use tokio::sync::Mutex;

use super::{KfError, KfService, PullReport};
use crate::crm::{self, CustomerProfile};
use crate::ids::{ExternalUserId, MsgId, OpenKfId};
use crate::store::kf::{self as kf_store, NewKfMessage};
use crate::store::{Backend, Origin, SessionState};

/// One message of a `kf/sync_msg` page, as far as kefu reads it; other fields are ignored
/// (the whole message is stored as pulled). Every field may be missing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PulledMessage {
    pub msgid: Option<MsgId>,
    pub external_userid: Option<ExternalUserId>,
    /// See [`Origin`]; unknown origins are recorded and otherwise ignored.
    pub origin: Option<i64>,
    pub msgtype: Option<String>,
    /// Unix seconds.
    pub send_time: Option<i64>,
    /// The agent who wrote it (origin 5).
    pub servicer_userid: Option<String>,
    pub text: Option<PulledText>,
    pub event: Option<PulledEvent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PulledText {
    pub content: Option<String>,
    /// Set when the shopper clicked an item of a menu we sent: the reply's id.
    pub menu_id: Option<String>,
}

/// The `event` of an event message: the fields of every event type kefu handles.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PulledEvent {
    pub event_type: Option<String>,
    pub external_userid: Option<ExternalUserId>,
    /// `enter_session`: the code `send_msg_on_event` needs, good for 20 seconds.
    pub welcome_code: Option<String>,
    /// `session_status_change`: 1 taken from the pool, 2 transferred, 3 ended, 4 reopened.
    pub change_type: Option<i64>,
    pub new_servicer_userid: Option<String>,
    /// `session_status_change`: a code for one `send_msg_on_event` (e.g. the survey when
    /// the session ends).
    pub msg_code: Option<String>,
    /// `msg_send_fail`: our msgid (the outbox row's id) and why.
    pub fail_msgid: Option<String>,
    /// Kept as WeCom sent it: it is only quoted in messages.
    pub fail_type: Value,
    /// `user_recall_msg`: the shopper's message taken back.
    pub recall_msgid: Option<MsgId>,
    /// `servicer_status_change`: the agent and their new availability (see `AgentStatus`).
    pub servicer_userid: Option<String>,
    pub status: Option<i64>,
}

/// A newly recorded message, with what its handlers read.
pub(super) struct Pulled<'a> {
    pub msgid: &'a MsgId,
    /// The shopper the message concerns (empty if WeCom named none).
    pub external_userid: ExternalUserId,
    pub send_time: i64,
    pub message: &'a PulledMessage,
}

impl PulledMessage {
    fn text_content(&self) -> Option<&str> {
        self.text.as_ref().and_then(|t| t.content.as_deref())
    }

    fn menu_id(&self) -> Option<&str> {
        self.text
            .as_ref()
            .and_then(|t| t.menu_id.as_deref())
            .filter(|s| !s.is_empty())
    }
}

impl KfService {
    async fn lock_for(&self, open_kfid: &OpenKfId) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .await
            .entry(open_kfid.clone())
            .or_default()
            .clone()
    }

    /// Pull everything new for `open_kfid`. `token` is the callback's Token (it lifts the
    /// rate limit); the safety-net poller pulls without one.
    pub async fn pull(
        &self,
        open_kfid: impl Into<OpenKfId>,
        token: Option<&str>,
    ) -> Result<PullReport, KfError> {
        let open_kfid: OpenKfId = open_kfid.into();
        let lock = self.lock_for(&open_kfid).await;
        let guard = lock.lock().await;
        let result = self.pull_locked(&open_kfid, token).await;
        drop(guard);
        // Forget the account's lock when nobody else holds or waits for it, so the map does
        // not keep an entry for every account ever named.
        let mut locks = self.locks.lock().await;
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&open_kfid);
        }
        result
    }

    /// How many kf accounts have a pull lock right now (pulls running or waiting).
    pub async fn pull_locks_held(&self) -> usize {
        self.locks.lock().await.len()
    }

    async fn pull_locked(
        &self,
        open_kfid: &OpenKfId,
        token: Option<&str>,
    ) -> Result<PullReport, KfError> {
        let open_kfid = open_kfid.clone();
        let paging = self.paging();
        let mut report = PullReport::default();
        loop {
            let postgres = self.store.backend() == Backend::Postgres;
            // No transaction and no pooled connection is held across the calls to WeCom
            // (`sync_msg`, the shoppers' profiles): a slow WeCom must not take the connections
            // callbacks need. The cursor is read, the page fetched, and then, in one short
            // transaction under the account's lock (PostgreSQL: replicas write one after
            // another), the cursor is read again: if another replica moved it meanwhile, it
            // recorded this page, which is dropped here and the pull goes on from there.
            let cursor: Option<String> = kf_store::cursor(self.store.pool(), &open_kfid).await?;
            let page = self
                .client
                .sync_msg(
                    open_kfid.as_str(),
                    cursor.as_deref(),
                    token,
                    paging.page_size,
                )
                .await?;
            report.pages += 1;
            let messages = parse_page(&page);
            let profiles = self.shopper_profiles(&messages).await;
            let mut tx = self.store.pool().begin().await?;
            if postgres {
                kf_store::lock_account(&mut tx, &open_kfid).await?;
                if kf_store::cursor(&mut *tx, &open_kfid).await? != cursor {
                    tx.rollback().await?;
                    report.pages_superseded += 1;
                    if report.pages >= paging.max_pages {
                        report.capped = true;
                        break;
                    }
                    continue;
                }
            }
            for (raw, message) in &messages {
                self.record_pulled(&mut tx, &open_kfid, raw, message, &profiles, &mut report)
                    .await?;
            }
            if let Some(next) = page["next_cursor"].as_str().filter(|c| !c.is_empty()) {
                kf_store::save_cursor(&mut tx, &open_kfid, next, self.clock.now_ms()).await?;
            }
            tx.commit().await?;
            self.outbox_ready.notify_one();
            if report.tickets_opened > 0 {
                self.tickets_ready.notify_one();
            }
            if page["has_more"].as_i64().unwrap_or(0) != 1 {
                break;
            }
            if report.pages >= paging.max_pages {
                // A backlog larger than this waits for the next pull (the poller's, or the
                // next callback's) from the cursor saved above: one pull never holds the
                // account for ever.
                tracing::info!(open_kfid = %open_kfid, pages = report.pages, "kf pull stopped at its page cap; the rest comes with the next pull");
                report.capped = true;
                break;
            }
        }
        Ok(report)
    }

    /// Profiles of the shoppers who wrote in a page, from the cache or WeCom (outside any
    /// transaction: these are network calls).
    async fn shopper_profiles(
        &self,
        messages: &[(&Value, PulledMessage)],
    ) -> HashMap<ExternalUserId, CustomerProfile> {
        let shoppers: Vec<ExternalUserId> = messages
            .iter()
            .filter(|(_, m)| m.origin == Some(Origin::Customer.as_i64()))
            .filter_map(|(_, m)| m.external_userid.clone())
            .filter(|id| !id.is_empty())
            .collect();
        crm::profiles(
            &self.store,
            &self.client,
            &self.tickets.settings().tiers,
            &self.clock,
            &shoppers,
        )
        .await
    }

    /// Store one pulled message; if it is new, act on it in the same transaction.
    async fn record_pulled(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        raw: &Value,
        message: &PulledMessage,
        profiles: &HashMap<ExternalUserId, CustomerProfile>,
        report: &mut PullReport,
    ) -> Result<(), KfError> {
        let Some(msgid) = message.msgid.as_ref() else {
            tracing::warn!("kf message without msgid skipped");
            return Ok(());
        };
        let external_userid = message
            .external_userid
            .clone()
            .or_else(|| message.event.as_ref()?.external_userid.clone())
            .unwrap_or_default();
        let origin = message.origin.unwrap_or(0);
        let msgtype = message.msgtype.as_deref().unwrap_or("unknown");
        let send_time = message.send_time.unwrap_or(0);
        let content = message.text_content();
        let menu_id = message.menu_id();
        let inserted = kf_store::insert_message(
            tx,
            &NewKfMessage {
                msgid,
                open_kfid,
                external_userid: &external_userid,
                origin,
                msgtype,
                content,
                menu_id,
                event_type: message.event.as_ref().and_then(|e| e.event_type.as_deref()),
                send_time,
                raw_json: raw.to_string(),
                received_at: self.clock.now_ms(),
            },
        )
        .await?;
        if !inserted {
            return Ok(()); // pulled before: already handled
        }
        report.new_messages += 1;
        let pulled = Pulled {
            msgid,
            external_userid,
            send_time,
            message,
        };
        match (Origin::from_i64(origin), msgtype) {
            (Some(Origin::Customer), _) => {
                let profile = profiles
                    .get(&pulled.external_userid)
                    .cloned()
                    .unwrap_or_default();
                self.answer_or_hand_over(tx, open_kfid, &pulled, content, menu_id, &profile, report)
                    .await
            }
            (Some(Origin::Servicer), _) => {
                // An agent wrote from WeCom: a person holds the session, and the reply counts
                // as the agent's response on the customer's open ticket.
                self.agent_wrote_in_wecom(tx, open_kfid, &pulled, content)
                    .await?;
                kf_store::set_session(
                    tx,
                    open_kfid,
                    &pulled.external_userid,
                    SessionState::Agent,
                    message.servicer_userid.as_deref(),
                    self.clock.now_ms(),
                )
                .await?;
                Ok(())
            }
            (_, "event") => self.handle_event(tx, open_kfid, &pulled).await,
            _ => Ok(()),
        }
    }
}

/// The messages of a page with the JSON each was read from. A message that does not read as
/// a [`PulledMessage`] (a field of an unexpected type) is still recorded as pulled, under its
/// msgid, so that nothing WeCom delivered is lost, but nothing is done with it: no origin is
/// read from it. Only a message without a string msgid cannot be recorded.
fn parse_page(page: &Value) -> Vec<(&Value, PulledMessage)> {
    page["msg_list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|raw| match PulledMessage::deserialize(raw) {
            Ok(m) => (raw, m),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable kf message recorded as it came");
                let fallback = PulledMessage {
                    msgid: raw["msgid"].as_str().map(MsgId::from),
                    msgtype: Some("unreadable".into()),
                    ..PulledMessage::default()
                };
                (raw, fallback)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pulled_messages_read_what_kefu_uses_and_ignore_the_rest() {
        let page = json!({"msg_list": [
            {"msgid": "m1", "open_kfid": "wk1", "external_userid": "wm1", "send_time": 1700000000,
             "origin": 3, "msgtype": "text", "text": {"content": "在吗", "menu_id": ""}, "extra": [1]},
            {"msgid": "m2", "origin": 4, "msgtype": "event",
             "event": {"event_type": "msg_send_fail", "external_userid": "wm2", "fail_msgid": "kf1", "fail_type": 4}},
            {"origin": 3},
            {"msgid": 7},
            {"msgid": "m5", "origin": "3", "msgtype": "text", "text": "在吗"},
        ]});
        let messages = parse_page(&page);
        assert_eq!(messages.len(), 5);
        assert_eq!(messages[3].1.msgid, None, "a number is no msgid");
        // Unreadable, but kept under its msgid, with nothing read from it to act on.
        assert_eq!(messages[4].1.msgid, Some(MsgId::from("m5")));
        assert_eq!(messages[4].1.msgtype.as_deref(), Some("unreadable"));
        assert_eq!(messages[4].1.origin, None);
        let text = &messages[0].1;
        assert_eq!(text.msgid, Some(MsgId::from("m1")));
        assert_eq!(text.text_content(), Some("在吗"));
        assert_eq!(text.menu_id(), None, "an empty menu id is no menu id");
        let event = messages[1].1.event.as_ref().unwrap();
        assert_eq!(event.fail_type.to_string(), "4");
        assert_eq!(event.external_userid, Some(ExternalUserId::from("wm2")));
        assert_eq!(messages[2].1.msgid, None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON value, nested a few levels, with the field names of a `sync_msg` page
        /// more likely than others.
        fn json() -> impl Strategy<Value = Value> {
            let key = prop_oneof![
                prop::sample::select(vec![
                    "msg_list",
                    "msgid",
                    "open_kfid",
                    "external_userid",
                    "send_time",
                    "origin",
                    "msgtype",
                    "text",
                    "content",
                    "menu_id",
                    "event",
                    "event_type",
                    "servicer_userid",
                    "fail_msgid",
                    "fail_type",
                    "welcome_code",
                    "msg_code",
                    "scene",
                    "new_servicer_userid",
                    "change_type",
                    "image",
                    "media_id",
                ])
                .prop_map(str::to_string),
                any::<String>(),
            ];
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(
                    |f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                ),
                any::<String>().prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 64, 8, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                    prop::collection::vec((key.clone(), inner), 0..8)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(crate::fuzz::cases()))]

            #[test]
            fn any_sync_msg_page_reads_without_panicking(list in prop::collection::vec(json(), 0..6), other in json()) {
                let page = serde_json::json!({"errcode": 0, "msg_list": list, "next_cursor": other});
                let parsed = parse_page(&page);
                // Every entry of the list is kept, read or recorded as it came.
                prop_assert_eq!(parsed.len(), page["msg_list"].as_array().map_or(0, Vec::len));
                let _ = parse_page(&other);
            }
        }
    }
}
