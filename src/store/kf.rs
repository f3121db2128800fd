//! The WeCom Customer Service tables: pulled messages (`kf_messages`), each account's pull
//! position (`kf_cursors`), sessions as kefu last knew them (`kf_sessions`), agent
//! availability (`kf_servicers`) and the customer profile cache (`kf_customers`).
//!
//! The states these tables hold travel as numbers and strings in the columns (see
//! `migrations/0004_kf.sql`); here they are the enums below, stored with the same values.
//! Functions that belong to a pull take the pull's transaction (`&mut AnyConnection`), so
//! messages, their outbox rows and the cursor commit together.

use sqlx::{Any, AnyConnection, AnyPool, Executor};

use crate::ids::{ExternalUserId, MsgId, OpenKfId};

/// What became of a pulled message (`kf_messages.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KfMessageStatus {
    /// `'recorded'`: stored, nothing to decide (events, agents' messages), or not yet decided.
    Recorded,
    /// `'answered'`: the bot answered it.
    Answered,
    /// `'unresolved'`: a person must take it.
    Unresolved,
    /// `'agent'`: a person holds the session; the bot stayed quiet.
    Agent,
    /// `'recalled'`: the shopper took it back.
    Recalled,
}

impl KfMessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KfMessageStatus::Recorded => "recorded",
            KfMessageStatus::Answered => "answered",
            KfMessageStatus::Unresolved => "unresolved",
            KfMessageStatus::Agent => "agent",
            KfMessageStatus::Recalled => "recalled",
        }
    }

    pub fn parse(s: &str) -> Option<KfMessageStatus> {
        Some(match s {
            "recorded" => KfMessageStatus::Recorded,
            "answered" => KfMessageStatus::Answered,
            "unresolved" => KfMessageStatus::Unresolved,
            "agent" => KfMessageStatus::Agent,
            "recalled" => KfMessageStatus::Recalled,
            _ => return None,
        })
    }
}

/// A kf session's state (`kf_sessions.state`, WeCom's `service_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// 0: new, nobody has answered yet.
    New,
    /// 1: with the bot (smart assistant).
    Bot,
    /// 2: in the pending pool, waiting for a person.
    Pool,
    /// 3: a person (agent, "servicer") holds it.
    Agent,
    /// 4: ended; the next shopper message starts it again as new.
    Ended,
}

impl SessionState {
    pub fn as_i64(self) -> i64 {
        match self {
            SessionState::New => 0,
            SessionState::Bot => 1,
            SessionState::Pool => 2,
            SessionState::Agent => 3,
            SessionState::Ended => 4,
        }
    }

    pub fn from_i64(v: i64) -> Option<SessionState> {
        Some(match v {
            0 => SessionState::New,
            1 => SessionState::Bot,
            2 => SessionState::Pool,
            3 => SessionState::Agent,
            4 => SessionState::Ended,
            _ => return None,
        })
    }
}

/// Who a pulled message comes from (`origin` in `kf/sync_msg`, stored as is in
/// `kf_messages.origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// 3: the shopper.
    Customer,
    /// 4: a system event.
    Event,
    /// 5: an agent (servicer) writing from WeCom.
    Servicer,
}

impl Origin {
    pub fn as_i64(self) -> i64 {
        match self {
            Origin::Customer => 3,
            Origin::Event => 4,
            Origin::Servicer => 5,
        }
    }

    pub fn from_i64(v: i64) -> Option<Origin> {
        Some(match v {
            3 => Origin::Customer,
            4 => Origin::Event,
            5 => Origin::Servicer,
            _ => return None,
        })
    }
}

/// An agent's availability (`kf_servicers.status`, from `servicer_status_change` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// 1: on duty (接待中).
    OnDuty,
    /// 2: off duty (停止接待).
    OffDuty,
}

impl AgentStatus {
    pub fn as_i64(self) -> i64 {
        match self {
            AgentStatus::OnDuty => 1,
            AgentStatus::OffDuty => 2,
        }
    }

    pub fn from_i64(v: i64) -> Option<AgentStatus> {
        match v {
            1 => Some(AgentStatus::OnDuty),
            2 => Some(AgentStatus::OffDuty),
            _ => None,
        }
    }
}

/// A pulled message about to be stored.
pub struct NewKfMessage<'a> {
    pub msgid: &'a MsgId,
    pub open_kfid: &'a OpenKfId,
    pub external_userid: &'a ExternalUserId,
    /// As pulled: unknown origins are stored too.
    pub origin: i64,
    pub msgtype: &'a str,
    pub content: Option<&'a str>,
    pub menu_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub send_time: i64,
    pub raw_json: String,
    pub received_at: i64,
}

/// The classifier's reading of a message, kept beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub intent: String,
    pub confidence: f64,
    pub reply_id: Option<String>,
}

/// A message's outcome, as the demo prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageOutcome {
    /// `None` for a value this build does not know.
    pub status: Option<KfMessageStatus>,
    /// Empty when the message was not classified.
    pub intent: String,
    pub confidence: Option<f64>,
}

/// How many messages the bot answered and how many wait for a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub answered: i64,
    pub unresolved: i64,
}

/// A cached customer profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCustomer {
    pub nickname: Option<String>,
    pub tier: Option<String>,
    /// JSON array of tag names.
    pub tags: String,
    pub fetched_at: i64,
}

// ---- kf_cursors ----

/// PostgreSQL only: wait for, then hold until the transaction ends, the advisory lock of
/// `open_kfid`, so replicas pull one account one after another.
pub async fn lock_account(conn: &mut AnyConnection, open_kfid: &OpenKfId) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(open_kfid.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Where the pull of `open_kfid` stands; `None` before its first page.
pub async fn cursor<'e>(
    db: impl Executor<'e, Database = Any>,
    open_kfid: &OpenKfId,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT cursor FROM kf_cursors WHERE open_kfid = $1")
        .bind(open_kfid.as_str())
        .fetch_optional(db)
        .await
}

pub async fn save_cursor(
    conn: &mut AnyConnection,
    open_kfid: &OpenKfId,
    cursor: &str,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO kf_cursors (open_kfid, cursor, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (open_kfid) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
    )
    .bind(open_kfid.as_str())
    .bind(cursor)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every kf account pulled at least once.
pub async fn known_accounts(pool: &AnyPool) -> sqlx::Result<Vec<OpenKfId>> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT open_kfid FROM kf_cursors")
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().map(OpenKfId::from).collect())
}

// ---- kf_messages ----

/// Store a pulled message as `recorded`; false when it was stored before.
pub async fn insert_message(conn: &mut AnyConnection, m: &NewKfMessage<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO kf_messages (msgid, open_kfid, external_userid, origin, msgtype, content, menu_id, event_type, \
         send_time, raw_json, received_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (msgid) DO NOTHING",
    )
    .bind(m.msgid.as_str())
    .bind(m.open_kfid.as_str())
    .bind(m.external_userid.as_str())
    .bind(m.origin)
    .bind(m.msgtype)
    .bind(m.content)
    .bind(m.menu_id)
    .bind(m.event_type)
    .bind(m.send_time)
    .bind(&m.raw_json)
    .bind(m.received_at)
    .bind(KfMessageStatus::Recorded.as_str())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// Record what was decided about a message, with the classification behind it (or none).
pub async fn set_message_status(
    conn: &mut AnyConnection,
    msgid: &MsgId,
    status: KfMessageStatus,
    classification: Option<&Classification>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE kf_messages SET status = $1, intent = $2, confidence = CAST($3 AS DOUBLE PRECISION), \
         reply_id = $4 WHERE msgid = $5",
    )
    .bind(status.as_str())
    .bind(classification.map(|c| c.intent.as_str()))
    .bind(super::float_param(classification.map(|c| c.confidence)))
    .bind(classification.and_then(|c| c.reply_id.as_deref()))
    .bind(msgid.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// The shopper took `msgid` back; its classification stays.
pub async fn mark_recalled(conn: &mut AnyConnection, msgid: &MsgId) -> sqlx::Result<()> {
    sqlx::query("UPDATE kf_messages SET status = $1 WHERE msgid = $2")
        .bind(KfMessageStatus::Recalled.as_str())
        .bind(msgid.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn message_outcome<'e>(
    db: impl Executor<'e, Database = Any>,
    msgid: &MsgId,
) -> sqlx::Result<Option<MessageOutcome>> {
    let row: Option<(String, String, Option<f64>)> = sqlx::query_as(
        "SELECT status, COALESCE(intent, ''), confidence FROM kf_messages WHERE msgid = $1",
    )
    .bind(msgid.as_str())
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(status, intent, confidence)| MessageOutcome {
        status: KfMessageStatus::parse(&status),
        intent,
        confidence,
    }))
}

pub async fn status_counts<'e>(
    db: impl Executor<'e, Database = Any>,
) -> sqlx::Result<StatusCounts> {
    let (answered, unresolved): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN status = $1 THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN status = $2 THEN 1 ELSE 0 END), 0) FROM kf_messages",
    )
    .bind(KfMessageStatus::Answered.as_str())
    .bind(KfMessageStatus::Unresolved.as_str())
    .fetch_one(db)
    .await?;
    Ok(StatusCounts {
        answered,
        unresolved,
    })
}

// ---- kf_sessions ----

/// The session's state as last recorded; `None` when unknown (never seen, or a value this
/// build does not know).
pub async fn session_state(
    conn: &mut AnyConnection,
    open_kfid: &OpenKfId,
    external_userid: &ExternalUserId,
) -> sqlx::Result<Option<SessionState>> {
    let state: Option<i64> = sqlx::query_scalar(
        "SELECT state FROM kf_sessions WHERE open_kfid = $1 AND external_userid = $2",
    )
    .bind(open_kfid.as_str())
    .bind(external_userid.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(state.and_then(SessionState::from_i64))
}

pub async fn set_session(
    conn: &mut AnyConnection,
    open_kfid: &OpenKfId,
    external_userid: &ExternalUserId,
    state: SessionState,
    servicer: Option<&str>,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO kf_sessions (open_kfid, external_userid, state, servicer_userid, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (open_kfid, external_userid) DO UPDATE SET state = excluded.state, \
         servicer_userid = excluded.servicer_userid, updated_at = excluded.updated_at",
    )
    .bind(open_kfid.as_str())
    .bind(external_userid.as_str())
    .bind(state.as_i64())
    .bind(servicer)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

// ---- kf_servicers ----

/// The availability of every agent known for `open_kfid` (`None`: a value this build does
/// not know).
pub async fn agent_statuses(
    conn: &mut AnyConnection,
    open_kfid: &OpenKfId,
) -> sqlx::Result<Vec<Option<AgentStatus>>> {
    let statuses: Vec<i64> =
        sqlx::query_scalar("SELECT status FROM kf_servicers WHERE open_kfid = $1")
            .bind(open_kfid.as_str())
            .fetch_all(conn)
            .await?;
    Ok(statuses.into_iter().map(AgentStatus::from_i64).collect())
}

/// Record an agent's availability: on every account that knows the agent (availability is
/// the agent's, whichever account reported it), and on `open_kfid`.
pub async fn set_agent_status(
    conn: &mut AnyConnection,
    open_kfid: &OpenKfId,
    servicer: &str,
    status: AgentStatus,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE kf_servicers SET status = $1, updated_at = $2 WHERE servicer_userid = $3")
        .bind(status.as_i64())
        .bind(now_ms)
        .bind(servicer)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO kf_servicers (open_kfid, servicer_userid, status, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (open_kfid, servicer_userid) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
    )
    .bind(open_kfid.as_str())
    .bind(servicer)
    .bind(status.as_i64())
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

// ---- kf_customers ----

pub async fn cached_customer<'e>(
    db: impl Executor<'e, Database = Any>,
    external_userid: &ExternalUserId,
) -> sqlx::Result<Option<CachedCustomer>> {
    let row: Option<(Option<String>, Option<String>, String, i64)> = sqlx::query_as(
        "SELECT nickname, tier, tags, fetched_at FROM kf_customers WHERE external_userid = $1",
    )
    .bind(external_userid.as_str())
    .fetch_optional(db)
    .await?;
    Ok(
        row.map(|(nickname, tier, tags, fetched_at)| CachedCustomer {
            nickname,
            tier,
            tags,
            fetched_at,
        }),
    )
}

/// Cache a profile; `tags_json` is a JSON array of the customer's tag names.
pub async fn save_customer<'e>(
    db: impl Executor<'e, Database = Any>,
    external_userid: &ExternalUserId,
    nickname: Option<&str>,
    tags_json: &str,
    tier: Option<&str>,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO kf_customers (external_userid, nickname, tags, tier, fetched_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (external_userid) DO UPDATE SET nickname = excluded.nickname, tags = excluded.tags, \
         tier = excluded.tier, fetched_at = excluded.fetched_at",
    )
    .bind(external_userid.as_str())
    .bind(nickname)
    .bind(tags_json)
    .bind(tier)
    .bind(now_ms)
    .execute(db)
    .await?;
    Ok(())
}

// ---- what tickets ask of the kf history ----

/// Did the bot answer this shopper since `since_ms` (received time), about `intent` if one
/// is given?
pub async fn answered_since(
    conn: &mut AnyConnection,
    open_kfid: &OpenKfId,
    external_userid: &ExternalUserId,
    intent: Option<&str>,
    since_ms: i64,
) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM kf_messages WHERE open_kfid = $1 AND external_userid = $2 \
         AND status = $3 AND ($4 IS NULL OR intent = $4) AND received_at >= $5",
    )
    .bind(open_kfid.as_str())
    .bind(external_userid.as_str())
    .bind(KfMessageStatus::Answered.as_str())
    .bind(intent)
    .bind(since_ms)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// When the shopper last wrote: WeCom's send_time (unix seconds) and when kefu recorded it
/// (unix ms, kefu's clock), if ever.
pub async fn last_customer_message(
    conn: &mut AnyConnection,
    open_kfid: &OpenKfId,
    external_userid: &ExternalUserId,
) -> sqlx::Result<Option<(i64, i64)>> {
    sqlx::query_as(
        "SELECT send_time, received_at FROM kf_messages WHERE open_kfid = $1 \
         AND external_userid = $2 AND origin = $3 ORDER BY received_at DESC, send_time DESC LIMIT 1",
    )
    .bind(open_kfid.as_str())
    .bind(external_userid.as_str())
    .bind(Origin::Customer.as_i64())
    .fetch_optional(conn)
    .await
}
