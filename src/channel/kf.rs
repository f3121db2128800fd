//! WeCom Customer Service (微信客服): pull, decide, send.
//!
//! A `kf_msg_or_event` callback only says "there is something new". [`KfService::pull`]
//! fetches it with `kf/sync_msg`, paging while `has_more`, and stores each page's messages,
//! the outbox rows they cause and the new cursor in **one transaction**, so a crash neither
//! loses nor repeats a message. One consumer per `open_kfid` at a time: an in-process lock,
//! plus a transaction-scoped advisory lock on PostgreSQL so replicas take turns.
//!
//! Every outgoing message goes to the `outbox` table first; [`KfService::send_due`] sends
//! due rows with retries and marks them sent, or failed past the retry budget (listed for
//! supervisors at `GET /api/outbox/failed`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{Any, Transaction};
use tokio::sync::{Mutex, Notify};

use crate::clock::SharedClock;
use crate::intent::SharedClassifier;
use crate::library::Library;
use crate::store::{new_id, Backend, Store};
use crate::wecom::api::{ApiError, WecomClient};

/// Messages older than this when first pulled are history (e.g. the 3 days a first pull
/// returns): recorded and left to a person, never answered by the bot.
pub const HISTORY_CUTOFF_SECS: i64 = 10 * 60;
/// Attempts before an outbox row is marked failed.
pub const OUTBOX_ATTEMPTS: i64 = 6;

#[derive(Debug, thiserror::Error)]
pub enum KfError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
}

/// One line of a supervisors' alert about a failed outgoing message: whom it was for and why,
/// never its text.
fn failure_line(api: &str, body: &Value, error: &str) -> String {
    let who = body["touser"]
        .as_str()
        .or_else(|| body["external_userid"].as_str())
        .unwrap_or("-");
    let error: String = error.chars().take(120).collect();
    format!("{} → {}：{}", plain(api), plain(who), plain(&error))
}

/// The outbox's name for one conversation: a kf account and a shopper.
fn chat_key(open_kfid: &str, external_userid: &str) -> String {
    format!("{open_kfid}/{external_userid}")
}

/// Text safe inside a markdown alert line: no line breaks or markup characters.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' => ' ',
            c => c,
        })
        .collect()
}

/// What a shopper is told when a chat is handed to a person.
#[derive(Debug, Clone)]
pub struct Acks {
    pub ack_text: String,
    /// Instead of `ack_text` while every known agent of the account is off duty.
    pub offline_ack_text: String,
}

impl Acks {
    pub fn new(ack_text: impl Into<String>) -> Acks {
        Acks {
            ack_text: ack_text.into(),
            offline_ack_text: crate::config::DEFAULT_OFFLINE_ACK_TEXT.into(),
        }
    }
}

impl From<&crate::config::CallbackConfig> for Acks {
    fn from(c: &crate::config::CallbackConfig) -> Acks {
        Acks {
            ack_text: c.ack_text.clone(),
            offline_ack_text: c.offline_ack_text.clone(),
        }
    }
}

/// What one pull did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullReport {
    pub pages: usize,
    pub new_messages: usize,
    pub answered: usize,
    pub handed_over: usize,
}

pub struct KfService {
    store: Store,
    client: Arc<WecomClient>,
    classifier: Arc<SharedClassifier>,
    clock: SharedClock,
    acks: Acks,
    /// Group robot for supervisors' alerts (outgoing messages that failed for good).
    alert_webhook_key: Option<String>,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    outbox_ready: Notify,
    outbox_lock: Mutex<()>,
}

/// One pulled message, parsed.
struct Pulled<'a> {
    msgid: &'a str,
    external_userid: &'a str,
    origin: i64,
    msgtype: &'a str,
    send_time: i64,
    raw: &'a Value,
}

impl KfService {
    pub fn new(
        store: Store,
        client: Arc<WecomClient>,
        classifier: Arc<SharedClassifier>,
        clock: SharedClock,
        acks: Acks,
        alert_webhook_key: Option<String>,
    ) -> Arc<KfService> {
        Arc::new(KfService {
            store,
            client,
            classifier,
            clock,
            acks,
            alert_webhook_key,
            locks: Mutex::new(HashMap::new()),
            outbox_ready: Notify::new(),
            outbox_lock: Mutex::new(()),
        })
    }

    async fn lock_for(&self, open_kfid: &str) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .await
            .entry(open_kfid.to_string())
            .or_default()
            .clone()
    }

    /// Pull everything new for `open_kfid`. `token` is the callback's Token (it lifts the
    /// rate limit); the safety-net poller pulls without one.
    pub async fn pull(&self, open_kfid: &str, token: Option<&str>) -> Result<PullReport, KfError> {
        let lock = self.lock_for(open_kfid).await;
        let _guard = lock.lock().await;
        let mut report = PullReport::default();
        loop {
            let postgres = self.store.backend() == Backend::Postgres;
            // PostgreSQL: the advisory lock is taken before the cursor is read and held until
            // commit, so replicas pull one after another. SQLite: one process, the in-process
            // lock suffices, and the transaction starts only when there is something to write.
            let mut pg_tx = None;
            let cursor: Option<String> = if postgres {
                let mut tx = self.store.pool().begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(open_kfid)
                    .execute(&mut *tx)
                    .await?;
                let c = sqlx::query_scalar("SELECT cursor FROM kf_cursors WHERE open_kfid = $1")
                    .bind(open_kfid)
                    .fetch_optional(&mut *tx)
                    .await?;
                pg_tx = Some(tx);
                c
            } else {
                sqlx::query_scalar("SELECT cursor FROM kf_cursors WHERE open_kfid = $1")
                    .bind(open_kfid)
                    .fetch_optional(self.store.pool())
                    .await?
            };
            let page = self
                .client
                .sync_msg(open_kfid, cursor.as_deref(), token, 1000)
                .await?;
            report.pages += 1;
            let msgs = page["msg_list"].as_array().cloned().unwrap_or_default();
            let profiles = self.profiles(&msgs).await;
            let mut tx = match pg_tx {
                Some(tx) => tx,
                None => self.store.pool().begin().await?,
            };
            for m in &msgs {
                self.store_one(&mut tx, open_kfid, m, &profiles, &mut report)
                    .await?;
            }
            if let Some(next) = page["next_cursor"].as_str().filter(|c| !c.is_empty()) {
                sqlx::query(
                    "INSERT INTO kf_cursors (open_kfid, cursor, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (open_kfid) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                )
                .bind(open_kfid)
                .bind(next)
                .bind(self.clock.now_ms())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            self.outbox_ready.notify_one();
            if page["has_more"].as_i64().unwrap_or(0) != 1 {
                break;
            }
        }
        Ok(report)
    }

    /// Customer tiers for the senders in a page, from the cache or WeCom (outside any
    /// transaction: these are network calls).
    async fn profiles(&self, msgs: &[Value]) -> HashMap<String, (Option<String>, Option<String>)> {
        let mut out = HashMap::new();
        for m in msgs {
            let Some(id) = m["external_userid"].as_str().filter(|s| !s.is_empty()) else {
                continue;
            };
            if out.contains_key(id) || m["origin"].as_i64() != Some(3) {
                continue;
            }
            out.insert(id.to_string(), self.profile(id).await);
        }
        out
    }

    /// (nickname, tier) of a customer, cached for a day.
    pub async fn profile(&self, external_userid: &str) -> (Option<String>, Option<String>) {
        let now = self.clock.now_ms();
        let cached: Option<(Option<String>, Option<String>, i64)> = sqlx::query_as(
            "SELECT nickname, tier, fetched_at FROM kf_customers WHERE external_userid = $1",
        )
        .bind(external_userid)
        .fetch_optional(self.store.pool())
        .await
        .ok()
        .flatten();
        if let Some((nick, tier, at)) = cached {
            if now - at < 24 * 3600 * 1000 {
                return (nick, tier);
            }
        }
        let nickname = self
            .client
            .customer_batchget(&[external_userid])
            .await
            .ok()
            .and_then(|v| {
                v["customer_list"][0]["nickname"]
                    .as_str()
                    .map(str::to_owned)
            });
        // Not every kf customer is an external contact (84061): then there are no corp tags.
        let tags: Vec<String> = match self.client.externalcontact_get(external_userid).await {
            Ok(v) => v["follow_user"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|f| f["tags"].as_array().cloned().unwrap_or_default())
                .filter_map(|t| t["tag_name"].as_str().map(str::to_owned))
                .collect(),
            Err(_) => Vec::new(),
        };
        let tier = if tags.iter().any(|t| t.eq_ignore_ascii_case("svip")) {
            Some("svip".to_string())
        } else if tags
            .iter()
            .any(|t| t.eq_ignore_ascii_case("vip") || t.contains("VIP"))
        {
            Some("vip".to_string())
        } else {
            None
        };
        let _ = sqlx::query(
            "INSERT INTO kf_customers (external_userid, nickname, tags, tier, fetched_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (external_userid) DO UPDATE SET nickname = excluded.nickname, tags = excluded.tags, \
             tier = excluded.tier, fetched_at = excluded.fetched_at",
        )
        .bind(external_userid)
        .bind(nickname.as_deref())
        .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()))
        .bind(tier.as_deref())
        .bind(now)
        .execute(self.store.pool())
        .await;
        (nickname, tier)
    }

    async fn store_one(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &str,
        m: &Value,
        profiles: &HashMap<String, (Option<String>, Option<String>)>,
        report: &mut PullReport,
    ) -> Result<(), KfError> {
        let Some(msgid) = m["msgid"].as_str() else {
            tracing::warn!("kf message without msgid skipped");
            return Ok(());
        };
        let p = Pulled {
            msgid,
            external_userid: m["external_userid"]
                .as_str()
                .or_else(|| m["event"]["external_userid"].as_str())
                .unwrap_or(""),
            origin: m["origin"].as_i64().unwrap_or(0),
            msgtype: m["msgtype"].as_str().unwrap_or("unknown"),
            send_time: m["send_time"].as_i64().unwrap_or(0),
            raw: m,
        };
        let content = m["text"]["content"].as_str();
        let menu_id = m["text"]["menu_id"].as_str().filter(|s| !s.is_empty());
        let event_type = m["event"]["event_type"].as_str();
        let inserted = sqlx::query(
            "INSERT INTO kf_messages (msgid, open_kfid, external_userid, origin, msgtype, content, menu_id, event_type, \
             send_time, raw_json, received_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'recorded') \
             ON CONFLICT (msgid) DO NOTHING",
        )
        .bind(p.msgid)
        .bind(open_kfid)
        .bind(p.external_userid)
        .bind(p.origin)
        .bind(p.msgtype)
        .bind(content)
        .bind(menu_id)
        .bind(event_type)
        .bind(p.send_time)
        .bind(p.raw.to_string())
        .bind(self.clock.now_ms())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(()); // pulled before: already handled
        }
        report.new_messages += 1;
        match (p.origin, p.msgtype) {
            (3, _) => {
                self.customer_message(tx, open_kfid, &p, content, menu_id, profiles, report)
                    .await
            }
            (5, _) => {
                self.set_session(
                    tx,
                    open_kfid,
                    p.external_userid,
                    3,
                    m["servicer_userid"].as_str(),
                )
                .await
            }
            (_, "event") => self.event(tx, open_kfid, &p).await,
            _ => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn customer_message(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &str,
        p: &Pulled<'_>,
        content: Option<&str>,
        menu_id: Option<&str>,
        profiles: &HashMap<String, (Option<String>, Option<String>)>,
        report: &mut PullReport,
    ) -> Result<(), KfError> {
        let state: Option<i64> = sqlx::query_scalar(
            "SELECT state FROM kf_sessions WHERE open_kfid = $1 AND external_userid = $2",
        )
        .bind(open_kfid)
        .bind(p.external_userid)
        .fetch_optional(&mut **tx)
        .await?;
        if state == Some(3) {
            // A person holds this session: the bot stays quiet.
            return self.mark(tx, p.msgid, "agent", None).await;
        }
        let chat = Some((open_kfid, p.external_userid));
        let fresh = self.clock.now_secs() - p.send_time <= HISTORY_CUTOFF_SECS;
        let classifier = self.classifier.current();
        let library = classifier.library();
        let (nickname, tier) = profiles
            .get(p.external_userid)
            .cloned()
            .unwrap_or((None, None));

        // A click on a menu we sent names the reply directly.
        let verdict = match (menu_id.and_then(|id| library.get(id)), content) {
            (Some(r), _) => Some((r.intent.clone(), 1.0f64, Some(r.id.clone()), true)),
            (None, Some(text)) => {
                let c = classifier.classify(text);
                let auto = c.auto_answer();
                Some((c.intent, c.confidence as f64, c.reply_id, auto))
            }
            (None, None) => None, // image, voice, file…: a person looks at it
        };
        // WeCom takes `send_msg` only while the session is new or with the bot (states 0 and
        // 1; an ended session, 4, starts again as new when the shopper writes). In the pending
        // pool (2) the shopper already waits for a person: nothing is sent, the message is
        // left for that person.
        if state == Some(2) {
            let v = verdict.map(|(i, c, r, _)| (i, c, r));
            return self.mark(tx, p.msgid, "unresolved", v).await;
        }
        let answer = verdict
            .as_ref()
            .filter(|v| v.3 && fresh)
            .and_then(|v| v.2.as_deref())
            .and_then(|id| library.get(id));
        if let Some(reply) = answer {
            let text = library.render(reply, tier.as_deref(), nickname.as_deref());
            let body = message_body(library, reply, &text, p.external_userid, open_kfid);
            self.enqueue(tx, "send_msg", body, Some(p.msgid), chat)
                .await?;
            report.answered += 1;
            let (intent, conf, rid, _) = verdict.clone().unwrap_or_default();
            return self
                .mark(tx, p.msgid, "answered", Some((intent, conf, rid)))
                .await;
        }
        // Hand over: acknowledge (unless this is old history), queue for a person.
        if fresh {
            let text = if self.nobody_on_duty(tx, open_kfid).await? {
                &self.acks.offline_ack_text
            } else {
                &self.acks.ack_text
            };
            let ack = json!({"touser": p.external_userid, "open_kfid": open_kfid, "msgtype": "text", "text": {"content": text}});
            self.enqueue(tx, "send_msg", ack, Some(p.msgid), chat)
                .await?;
        }
        // Written after the acknowledgement, so sent after it: in the pool WeCom would refuse it.
        let trans = json!({"open_kfid": open_kfid, "external_userid": p.external_userid, "service_state": 2, "servicer_userid": ""});
        self.enqueue(tx, "service_state_trans", trans, Some(p.msgid), chat)
            .await?;
        self.set_session(tx, open_kfid, p.external_userid, 2, None)
            .await?;
        report.handed_over += 1;
        let v = verdict.map(|(i, c, r, _)| (i, c, r));
        self.mark(tx, p.msgid, "unresolved", v).await
    }

    async fn event(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &str,
        p: &Pulled<'_>,
    ) -> Result<(), KfError> {
        let e = &p.raw["event"];
        match e["event_type"].as_str().unwrap_or("") {
            "enter_session" => {
                let code = e["welcome_code"].as_str().unwrap_or("");
                // The welcome code is good for 20 seconds after the shopper entered.
                if !code.is_empty() && self.clock.now_secs() - p.send_time <= 20 {
                    let library = self.classifier.current();
                    let body = welcome_body(library.library(), code);
                    let chat = Some((open_kfid, p.external_userid));
                    self.enqueue(tx, "send_msg_on_event", body, Some(p.msgid), chat)
                        .await?;
                }
                Ok(())
            }
            "session_status_change" => {
                let servicer = e["new_servicer_userid"].as_str();
                let state = match e["change_type"].as_i64().unwrap_or(0) {
                    1 | 2 | 4 => 3,
                    3 => 4,
                    _ => return Ok(()),
                };
                let who = e["external_userid"].as_str().unwrap_or(p.external_userid);
                self.set_session(tx, open_kfid, who, state, servicer).await
            }
            "msg_send_fail" => {
                let failed = e["fail_msgid"].as_str().unwrap_or("");
                sqlx::query("UPDATE outbox SET status = 'failed', last_error = $1 WHERE id = $2")
                    .bind(format!(
                        "WeCom could not deliver it (fail_type {})",
                        e["fail_type"]
                    ))
                    .bind(failed)
                    .execute(&mut **tx)
                    .await?;
                tracing::warn!(msgid = ?failed, "a sent message was not delivered");
                let who = e["external_userid"].as_str().unwrap_or(p.external_userid);
                let line = format!(
                    "{} 未送达（fail_type {}，消息 {}）",
                    plain(who),
                    e["fail_type"],
                    plain(failed)
                );
                self.alert(tx, "未送达", &[line]).await
            }
            "user_recall_msg" => {
                let recalled = e["recall_msgid"].as_str().unwrap_or("");
                sqlx::query("UPDATE kf_messages SET status = 'recalled' WHERE msgid = $1")
                    .bind(recalled)
                    .execute(&mut **tx)
                    .await?;
                // Do not answer a message the shopper took back.
                sqlx::query("UPDATE outbox SET status = 'cancelled' WHERE source_msgid = $1 AND status = 'pending'")
                    .bind(recalled)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
            "servicer_status_change" => {
                let servicer = e["servicer_userid"].as_str().unwrap_or("");
                let status = e["status"].as_i64().unwrap_or(0);
                if servicer.is_empty() || !(status == 1 || status == 2) {
                    return Ok(());
                }
                // Availability is the agent's, whichever account reported it.
                let now = self.clock.now_ms();
                sqlx::query(
                    "UPDATE kf_servicers SET status = $1, updated_at = $2 WHERE servicer_userid = $3",
                )
                .bind(status)
                .bind(now)
                .bind(servicer)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "INSERT INTO kf_servicers (open_kfid, servicer_userid, status, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (open_kfid, servicer_userid) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
                )
                .bind(open_kfid)
                .bind(servicer)
                .bind(status)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                // Debug formatting escapes whatever the ids contain.
                tracing::info!(
                    ?open_kfid,
                    ?servicer,
                    on_duty = status == 1,
                    "agent availability changed"
                );
                Ok(())
            }
            _ => Ok(()), // other events: recorded
        }
    }

    /// True when agents of `open_kfid` are known and every one of them is off duty.
    async fn nobody_on_duty(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &str,
    ) -> Result<bool, KfError> {
        let statuses: Vec<i64> =
            sqlx::query_scalar("SELECT status FROM kf_servicers WHERE open_kfid = $1")
                .bind(open_kfid)
                .fetch_all(&mut **tx)
                .await?;
        Ok(!statuses.is_empty() && statuses.iter().all(|s| *s != 1))
    }

    async fn set_session(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &str,
        external_userid: &str,
        state: i64,
        servicer: Option<&str>,
    ) -> Result<(), KfError> {
        sqlx::query(
            "INSERT INTO kf_sessions (open_kfid, external_userid, state, servicer_userid, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (open_kfid, external_userid) DO UPDATE SET state = excluded.state, \
             servicer_userid = excluded.servicer_userid, updated_at = excluded.updated_at",
        )
        .bind(open_kfid)
        .bind(external_userid)
        .bind(state)
        .bind(servicer)
        .bind(self.clock.now_ms())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn mark(
        &self,
        tx: &mut Transaction<'static, Any>,
        msgid: &str,
        status: &str,
        verdict: Option<(String, f64, Option<String>)>,
    ) -> Result<(), KfError> {
        let (intent, conf, rid) = match verdict {
            Some((i, c, r)) => (Some(i), Some(c), r),
            None => (None, None, None),
        };
        sqlx::query("UPDATE kf_messages SET status = $1, intent = $2, confidence = $3, reply_id = $4 WHERE msgid = $5")
            .bind(status)
            .bind(intent)
            .bind(conf)
            .bind(rid)
            .bind(msgid)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Queue `body` for `api`. Rows of one chat (`open_kfid`, `external_userid`) are numbered
    /// in the order they are written and sent strictly in that order; rows without a chat
    /// (alerts) have no order to keep.
    async fn enqueue(
        &self,
        tx: &mut Transaction<'static, Any>,
        api: &str,
        mut body: Value,
        source: Option<&str>,
        chat: Option<(&str, &str)>,
    ) -> Result<(), KfError> {
        let now = self.clock.now_ms();
        // "kf" + 26 hex digits: a valid kf msgid (≤ 32 of [0-9a-zA-Z_-]) and the send's idempotency key.
        let id = format!("kf{}", &new_id(now)[3..]);
        if api == "send_msg" || api == "send_msg_on_event" {
            body["msgid"] = json!(id);
        }
        let chat = chat.map(|(kfid, user)| chat_key(kfid, user));
        let seq: Option<i64> = match &chat {
            // Pulls of one kf account run one at a time (see `pull`), so the next number is
            // read and used inside the same transaction; a unique index backs that up.
            Some(c) => Some(
                sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox WHERE chat = $1")
                    .bind(c)
                    .fetch_one(&mut **tx)
                    .await?,
            ),
            None => None,
        };
        sqlx::query(
            "INSERT INTO outbox (id, api, payload, source_msgid, status, attempts, next_attempt_at, created_at, chat, seq) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $6, $7)",
        )
        .bind(&id)
        .bind(api)
        .bind(body.to_string())
        .bind(source)
        .bind(now)
        .bind(chat)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
        Ok(())
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
        let now = self.clock.now_ms();
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT o.id, o.api, o.payload, o.attempts FROM outbox o \
             WHERE o.status = 'pending' AND o.next_attempt_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.chat = o.chat AND e.seq < o.seq \
                             AND e.status IN ('pending', 'sending')) \
             ORDER BY o.created_at, o.id LIMIT 200",
        )
        .bind(now)
        .fetch_all(self.store.pool())
        .await?;
        let mut sent = 0;
        let mut settled = 0;
        let mut failed_for_good: Vec<String> = Vec::new();
        for (id, api, payload, attempts) in rows {
            let claimed = sqlx::query("UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = $1 AND status = 'pending'")
                .bind(&id)
                .execute(self.store.pool())
                .await?
                .rows_affected();
            if claimed == 0 {
                continue; // another replica took it
            }
            settled += 1;
            let body: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
            let result = match api.as_str() {
                "send_msg" => self.client.send_msg(&body).await,
                "send_msg_on_event" => self.client.send_msg_on_event(&body).await,
                "service_state_trans" => {
                    self.client
                        .service_state_trans(
                            body["open_kfid"].as_str().unwrap_or(""),
                            body["external_userid"].as_str().unwrap_or(""),
                            body["service_state"].as_u64().unwrap_or(2) as u8,
                            body["servicer_userid"].as_str().unwrap_or(""),
                        )
                        .await
                }
                "webhook_send" => match &self.alert_webhook_key {
                    Some(key) => self.client.webhook_send(key, &body).await,
                    None => Err(ApiError::Decode {
                        api: "outbox",
                        detail: "no [wecom] alert_webhook_key configured".into(),
                    }),
                },
                other => Err(ApiError::Decode {
                    api: "outbox",
                    detail: format!("unknown api {other}"),
                }),
            };
            let now = self.clock.now_ms();
            match result {
                Ok(_) => {
                    sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1, last_error = NULL WHERE id = $2")
                        .bind(now)
                        .bind(&id)
                        .execute(self.store.pool())
                        .await?;
                    sent += 1;
                }
                Err(e) => {
                    let transient = matches!(e.code(), Some(-1 | 45009 | 45033) | None);
                    let give_up = !transient || attempts + 1 >= OUTBOX_ATTEMPTS;
                    let delay = 1000i64 << (attempts.clamp(0, 8));
                    sqlx::query("UPDATE outbox SET status = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4")
                        .bind(if give_up { "failed" } else { "pending" })
                        .bind(now + delay)
                        .bind(e.to_string())
                        .bind(&id)
                        .execute(self.store.pool())
                        .await?;
                    if give_up {
                        tracing::error!(outbox_id = %id, error = %e, "outgoing message failed for good; listed for supervisors");
                        if api != "webhook_send" {
                            failed_for_good.push(failure_line(&api, &body, &e.to_string()));
                        }
                    }
                }
            }
        }
        if !failed_for_good.is_empty() {
            let mut tx = self.store.pool().begin().await?;
            self.alert(&mut tx, "发送失败，已停止重试", &failed_for_good)
                .await?;
            tx.commit().await?;
        }
        Ok((sent, settled))
    }

    /// Tell supervisors through the group robot, if one is configured. The alert goes through
    /// the outbox like everything else sent, so it survives restarts and is retried; one alert
    /// covers a whole pass, which keeps within the robot's 20 messages a minute.
    async fn alert(
        &self,
        tx: &mut Transaction<'static, Any>,
        what: &str,
        lines: &[String],
    ) -> Result<(), KfError> {
        if self.alert_webhook_key.is_none() || lines.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 10;
        let mut content = format!("**kefu：{} 条消息{what}**\n", lines.len());
        for line in lines.iter().take(SHOWN) {
            content.push_str("> ");
            content.push_str(line);
            content.push('\n');
        }
        if lines.len() > SHOWN {
            content.push_str(&format!("> 另有 {} 条\n", lines.len() - SHOWN));
        }
        content.push_str("详见 GET /api/outbox/failed");
        let body = json!({"msgtype": "markdown", "markdown": {"content": content}});
        self.enqueue(tx, "webhook_send", body, None, None).await
    }

    /// Rows left in 'sending' by a crash go back to 'pending' (they are re-sent with the same
    /// msgid).
    pub async fn recover(&self) -> Result<u64, KfError> {
        Ok(
            sqlx::query("UPDATE outbox SET status = 'pending' WHERE status = 'sending'")
                .execute(self.store.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Background work until `shutdown` fires: the outbox sender, and a poller that pulls
    /// every known kf account with its stored cursor as a safety net for lost callbacks.
    pub fn spawn_workers(
        self: &Arc<Self>,
        poll_every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let me = self.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = me.recover().await {
                tracing::error!(error = %e, "outbox recovery failed");
            }
            loop {
                if let Err(e) = me.send_due().await {
                    tracing::warn!(error = %e, "outbox pass failed");
                }
                tokio::select! {
                    _ = me.outbox_ready.notified() => {},
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {},
                    _ = stop.changed() => break,
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(poll_every) => {},
                    _ = shutdown.changed() => break,
                }
                let ids: Vec<String> = sqlx::query_scalar("SELECT open_kfid FROM kf_cursors")
                    .fetch_all(me.store.pool())
                    .await
                    .unwrap_or_default();
                for id in ids {
                    if let Err(e) = me.pull(&id, None).await {
                        tracing::warn!(open_kfid = %id, error = %e, "safety-net pull failed");
                    }
                }
            }
        });
    }
}

/// The `send_msg` body for a reply: a menu of related questions when the reply has one.
fn message_body(
    library: &Library,
    reply: &crate::library::Reply,
    text: &str,
    to: &str,
    open_kfid: &str,
) -> Value {
    let items: Vec<Value> = reply
        .menu
        .iter()
        .filter_map(|id| library.get(id))
        .map(|r| json!({"type": "click", "click": {"id": r.id, "content": r.title}}))
        .collect();
    if items.is_empty() {
        json!({"touser": to, "open_kfid": open_kfid, "msgtype": "text", "text": {"content": text}})
    } else {
        json!({"touser": to, "open_kfid": open_kfid, "msgtype": "msgmenu",
               "msgmenu": {"head_content": text, "list": items, "tail_content": "也可以直接输入您的问题"}})
    }
}

/// The welcome message: a greeting and a menu of the questions shoppers ask most.
fn welcome_body(library: &Library, code: &str) -> Value {
    let shop = library.shop().get("shop_name").cloned().unwrap_or_default();
    let popular = [
        "tracking.where",
        "shipping_time.when",
        "return_request.how",
        "refund_status.how_long",
    ];
    let items: Vec<Value> = popular
        .iter()
        .filter_map(|id| library.get(id))
        .map(|r| json!({"type": "click", "click": {"id": r.id, "content": r.title}}))
        .collect();
    json!({"code": code, "msgtype": "msgmenu",
           "msgmenu": {"head_content": format!("您好，欢迎来到{shop}！您可能想问："), "list": items, "tail_content": "也可以直接输入您的问题"}})
}
