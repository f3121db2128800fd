//! The `outbox` table: everything kefu sends is written here first, in the transaction that
//! decided it, and sent by the outbox worker.
//!
//! A row is `pending` until claimed (`sending`), then `sent`, or `failed` past the retry
//! budget; `cancelled` when the message it answers was recalled first. Rows of one chat (a kf
//! account and a shopper) are numbered (`seq`) in the order written and sent in that order.

use sqlx::{AnyConnection, AnyPool};

/// An outbox row's state (`outbox.status`). The migration's comment lists four; the column
/// holds these five.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// `'pending'`: waiting for its turn or its retry time.
    Pending,
    /// `'sending'`: claimed by a sender; a crash leaves it here until recovery.
    Sending,
    /// `'sent'`: WeCom took it.
    Sent,
    /// `'failed'`: refused for good, out of retries, or reported undelivered.
    Failed,
    /// `'cancelled'`: the shopper recalled the message it answered before it was sent.
    Cancelled,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        Some(match s {
            "pending" => OutboxStatus::Pending,
            "sending" => OutboxStatus::Sending,
            "sent" => OutboxStatus::Sent,
            "failed" => OutboxStatus::Failed,
            "cancelled" => OutboxStatus::Cancelled,
            _ => return None,
        })
    }
}

/// The call that sends a row (`outbox.api`). The migration's comment lists three; the column
/// holds these four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxApi {
    /// `'send_msg'`: a message to a shopper (`kf/send_msg`).
    SendMsg,
    /// `'send_msg_on_event'`: the welcome message, with an event's code.
    SendMsgOnEvent,
    /// `'service_state_trans'`: move a session (to the pending pool).
    ServiceStateTrans,
    /// `'webhook_send'`: an alert to the supervisors' group robot.
    WebhookSend,
}

impl OutboxApi {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxApi::SendMsg => "send_msg",
            OutboxApi::SendMsgOnEvent => "send_msg_on_event",
            OutboxApi::ServiceStateTrans => "service_state_trans",
            OutboxApi::WebhookSend => "webhook_send",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxApi> {
        Some(match s {
            "send_msg" => OutboxApi::SendMsg,
            "send_msg_on_event" => OutboxApi::SendMsgOnEvent,
            "service_state_trans" => OutboxApi::ServiceStateTrans,
            "webhook_send" => OutboxApi::WebhookSend,
            _ => return None,
        })
    }

    /// Messages to a shopper carry a msgid of ours: the row's id, which makes the send
    /// idempotent.
    pub fn carries_msgid(self) -> bool {
        matches!(self, OutboxApi::SendMsg | OutboxApi::SendMsgOnEvent)
    }
}

/// A row about to be queued.
pub struct NewOutboxRow<'a> {
    pub id: &'a str,
    pub api: OutboxApi,
    pub payload: String,
    /// The pulled message this row answers, if any.
    pub source_msgid: Option<&'a str>,
    pub now_ms: i64,
    /// The conversation whose order the row keeps, if any.
    pub chat: Option<&'a str>,
    pub seq: Option<i64>,
}

/// A row due to be sent.
#[derive(Debug, Clone)]
pub struct DueRow {
    pub id: String,
    /// As stored; see [`OutboxApi::parse`].
    pub api: String,
    pub payload: String,
    pub attempts: i64,
}

/// A row that failed for good, as listed for supervisors.
#[derive(Debug, Clone)]
pub struct FailedRow {
    pub id: String,
    pub api: String,
    pub payload: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// The next number in `chat`'s order. Pulls of one kf account run one at a time, so it is
/// read and used inside the same transaction; the unique index on (chat, seq) backs that up.
pub async fn next_seq(conn: &mut AnyConnection, chat: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox WHERE chat = $1")
        .bind(chat)
        .fetch_one(conn)
        .await
}

/// Queue a row as `pending`, due at once.
pub async fn insert(conn: &mut AnyConnection, row: &NewOutboxRow<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO outbox (id, api, payload, source_msgid, status, attempts, next_attempt_at, created_at, chat, seq) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $7, $8)",
    )
    .bind(row.id)
    .bind(row.api.as_str())
    .bind(&row.payload)
    .bind(row.source_msgid)
    .bind(OutboxStatus::Pending.as_str())
    .bind(row.now_ms)
    .bind(row.chat)
    .bind(row.seq)
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows due by `now_ms` (pending and past their retry time, or claimed by a sender whose
/// lease has run out) whose chat has no earlier row still pending or sending, oldest first
/// (at most 200).
pub async fn due(pool: &AnyPool, now_ms: i64) -> sqlx::Result<Vec<DueRow>> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT o.id, o.api, o.payload, o.attempts FROM outbox o \
         WHERE ((o.status = $1 AND o.next_attempt_at <= $2) \
                OR (o.status = $3 AND COALESCE(o.lease_until, 0) < $2)) \
         AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.chat = o.chat AND e.seq < o.seq \
                         AND e.status IN ($1, $3)) \
         ORDER BY o.created_at, o.id LIMIT 200",
    )
    .bind(OutboxStatus::Pending.as_str())
    .bind(now_ms)
    .bind(OutboxStatus::Sending.as_str())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, api, payload, attempts)| DueRow {
            id,
            api,
            payload,
            attempts,
        })
        .collect())
}

/// Take a row for sending until `lease_until_ms` (and count the attempt): a pending row, or
/// one whose previous sender's lease ran out before `now_ms`. False when another sender has it.
pub async fn claim(
    pool: &AnyPool,
    id: &str,
    now_ms: i64,
    lease_until_ms: i64,
) -> sqlx::Result<bool> {
    let claimed = sqlx::query(
        "UPDATE outbox SET status = $1, attempts = attempts + 1, lease_until = $2 \
         WHERE id = $3 AND (status = $4 OR (status = $1 AND COALESCE(lease_until, 0) < $5))",
    )
    .bind(OutboxStatus::Sending.as_str())
    .bind(lease_until_ms)
    .bind(id)
    .bind(OutboxStatus::Pending.as_str())
    .bind(now_ms)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(claimed > 0)
}

pub async fn mark_sent(pool: &AnyPool, id: &str, now_ms: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE outbox SET status = $1, sent_at = $2, last_error = NULL WHERE id = $3")
        .bind(OutboxStatus::Sent.as_str())
        .bind(now_ms)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// After a failed send: `pending` again, due at `next_attempt_at`, or `failed` for good.
pub async fn mark_attempt_failed(
    pool: &AnyPool,
    id: &str,
    status: OutboxStatus,
    next_attempt_at: i64,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE outbox SET status = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(next_attempt_at)
    .bind(error)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// WeCom reported a sent message undelivered (`msg_send_fail`).
pub async fn mark_undelivered(conn: &mut AnyConnection, id: &str, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE outbox SET status = $1, last_error = $2 WHERE id = $3")
        .bind(OutboxStatus::Failed.as_str())
        .bind(error)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Cancel the rows still pending that answer `source_msgid`.
pub async fn cancel_pending_for(conn: &mut AnyConnection, source_msgid: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE outbox SET status = $1 WHERE source_msgid = $2 AND status = $3")
        .bind(OutboxStatus::Cancelled.as_str())
        .bind(source_msgid)
        .bind(OutboxStatus::Pending.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Rows left `sending` whose lease ran out before `now_ms` go back to `pending`; rows
/// another live sender holds are left alone. Returns how many.
pub async fn recover_sending(pool: &AnyPool, now_ms: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE outbox SET status = $1 WHERE status = $2 AND COALESCE(lease_until, 0) < $3",
    )
    .bind(OutboxStatus::Pending.as_str())
    .bind(OutboxStatus::Sending.as_str())
    .bind(now_ms)
    .execute(pool)
    .await?
    .rows_affected())
}

/// The newest rows that failed for good (at most `limit`).
pub async fn failed(pool: &AnyPool, limit: i64) -> sqlx::Result<Vec<FailedRow>> {
    type Row = (String, String, String, i64, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, api, payload, attempts, last_error FROM outbox WHERE status = $1 ORDER BY created_at DESC LIMIT $2",
    )
    .bind(OutboxStatus::Failed.as_str())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, api, payload, attempts, last_error)| FailedRow {
            id,
            api,
            payload,
            attempts,
            last_error,
        })
        .collect())
}

/// `send_msg` rows written for `chat` at or after `since_ms` that were not cancelled or
/// refused: what counts against WeCom's send quota.
pub async fn sends_since(conn: &mut AnyConnection, chat: &str, since_ms: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE chat = $1 AND api = $2 AND created_at >= $3 \
         AND status IN ($4, $5, $6)",
    )
    .bind(chat)
    .bind(OutboxApi::SendMsg.as_str())
    .bind(since_ms)
    .bind(OutboxStatus::Pending.as_str())
    .bind(OutboxStatus::Sending.as_str())
    .bind(OutboxStatus::Sent.as_str())
    .fetch_one(conn)
    .await
}
