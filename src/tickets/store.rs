//! Every SQL string of tickets, agents, history and SLA marks. Small named functions that
//! return typed rows; the callers own the transactions.

use sqlx::{Any, AnyConnection, Executor};

use super::model::{Ticket, TicketStatus};

const COLUMNS: &str = "id, channel, account, external_userid, open_key, customer_name, status, \
     reason, intent, grp, priority, tier, tier_reasons, assignee, assigned_at, last_assignee, \
     last_served_at, idle_agent, idle_until, opened_at, \
     updated_at, last_message, last_customer_at, last_agent_at, first_response_at, \
     sla_started_at, waiting_since, first_response_due, next_response_due, resolution_due, \
     paused_at, resolved_at, closed_at, csat, csat_agent, csat_at, version";

// ---- tickets ----

pub async fn insert(conn: &mut AnyConnection, t: &Ticket) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO tickets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, \
         $29, $30, $31, $32, $33, $34, $35, $36, $37)"
    ))
    .bind(&t.id)
    .bind(&t.channel)
    .bind(&t.account)
    .bind(&t.external_userid)
    .bind(&t.open_key)
    .bind(&t.customer_name)
    .bind(&t.status)
    .bind(&t.reason)
    .bind(&t.intent)
    .bind(&t.grp)
    .bind(t.priority)
    .bind(&t.tier)
    .bind(&t.tier_reasons)
    .bind(&t.assignee)
    .bind(t.assigned_at)
    .bind(&t.last_assignee)
    .bind(t.last_served_at)
    .bind(&t.idle_agent)
    .bind(t.idle_until)
    .bind(t.opened_at)
    .bind(t.updated_at)
    .bind(&t.last_message)
    .bind(t.last_customer_at)
    .bind(t.last_agent_at)
    .bind(t.first_response_at)
    .bind(t.sla_started_at)
    .bind(t.waiting_since)
    .bind(t.first_response_due)
    .bind(t.next_response_due)
    .bind(t.resolution_due)
    .bind(t.paused_at)
    .bind(t.resolved_at)
    .bind(t.closed_at)
    .bind(&t.csat)
    .bind(&t.csat_agent)
    .bind(t.csat_at)
    .bind(t.version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Write `t` over the stored ticket if nobody changed it since it was read (its `version`
/// is still the stored one); the stored version is bumped. False when someone did.
pub async fn save(conn: &mut AnyConnection, t: &Ticket) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE tickets SET open_key = $1, customer_name = $2, status = $3, intent = $4, \
         grp = $5, priority = $6, assignee = $7, assigned_at = $8, updated_at = $9, \
         last_message = $10, last_customer_at = $11, last_agent_at = $12, \
         first_response_at = $13, sla_started_at = $14, waiting_since = $15, \
         first_response_due = $16, next_response_due = $17, resolution_due = $18, \
         paused_at = $19, resolved_at = $20, closed_at = $21, csat = $22, csat_agent = $23, \
         csat_at = $24, last_assignee = $25, last_served_at = $26, idle_agent = $27, \
         idle_until = $28, version = version + 1 WHERE id = $29 AND version = $30",
    )
    .bind(&t.open_key)
    .bind(&t.customer_name)
    .bind(&t.status)
    .bind(&t.intent)
    .bind(&t.grp)
    .bind(t.priority)
    .bind(&t.assignee)
    .bind(t.assigned_at)
    .bind(t.updated_at)
    .bind(&t.last_message)
    .bind(t.last_customer_at)
    .bind(t.last_agent_at)
    .bind(t.first_response_at)
    .bind(t.sla_started_at)
    .bind(t.waiting_since)
    .bind(t.first_response_due)
    .bind(t.next_response_due)
    .bind(t.resolution_due)
    .bind(t.paused_at)
    .bind(t.resolved_at)
    .bind(t.closed_at)
    .bind(&t.csat)
    .bind(&t.csat_agent)
    .bind(t.csat_at)
    .bind(&t.last_assignee)
    .bind(t.last_served_at)
    .bind(&t.idle_agent)
    .bind(t.idle_until)
    .bind(&t.id)
    .bind(t.version)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

pub async fn get<'e>(
    db: impl Executor<'e, Database = Any>,
    id: &str,
) -> sqlx::Result<Option<Ticket>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tickets WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The open ticket of a customer on a channel, if there is one.
pub async fn open_for(conn: &mut AnyConnection, open_key: &str) -> sqlx::Result<Option<Ticket>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE open_key = $1"
    ))
    .bind(open_key)
    .fetch_optional(conn)
    .await
}

/// The customer's most recently resolved ticket, if resolved at or after `since_ms`.
pub async fn resolved_since(
    conn: &mut AnyConnection,
    channel: &str,
    account: &str,
    external_userid: &str,
    since_ms: i64,
) -> sqlx::Result<Option<Ticket>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE channel = $1 AND account = $2 \
         AND external_userid = $3 AND status = $4 AND resolved_at >= $5 \
         ORDER BY resolved_at DESC LIMIT 1"
    ))
    .bind(channel)
    .bind(account)
    .bind(external_userid)
    .bind(TicketStatus::Resolved.as_str())
    .bind(since_ms)
    .fetch_optional(conn)
    .await
}

/// What `GET /api/tickets` filters on; `None` is "any".
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub group: Option<String>,
    pub priority: Option<i64>,
    pub tier: Option<String>,
    pub assignee: Option<String>,
    /// Only tickets with a recorded SLA breach (true) or without one (false).
    pub breached: Option<bool>,
    pub external_userid: Option<String>,
    pub limit: i64,
    /// Newest first instead of most urgent first (a customer's history).
    pub newest_first: bool,
}

/// Tickets matching `f`, most urgent first: priority, then the earliest due time, then age.
pub async fn list<'e>(
    db: impl Executor<'e, Database = Any>,
    f: &Filter,
) -> sqlx::Result<Vec<Ticket>> {
    let breached = match f.breached {
        None => "",
        Some(true) => " AND EXISTS (SELECT 1 FROM sla_marks m WHERE m.ticket_id = t.id AND m.kind = 'breach')",
        Some(false) => " AND NOT EXISTS (SELECT 1 FROM sla_marks m WHERE m.ticket_id = t.id AND m.kind = 'breach')",
    };
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("t.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let order = if f.newest_first {
        "t.opened_at DESC, t.id DESC"
    } else {
        "t.priority, COALESCE(t.first_response_due, t.next_response_due, t.resolution_due), \
         t.opened_at, t.id"
    };
    // Unset filters bind NULL and match everything: one statement, every value bound.
    sqlx::query_as(&format!(
        "SELECT {columns} FROM tickets t WHERE ($1 IS NULL OR t.status = $1) \
         AND ($2 IS NULL OR t.grp = $2) AND ($3 IS NULL OR t.priority = $3) \
         AND ($4 IS NULL OR t.tier = $4) AND ($5 IS NULL OR t.assignee = $5) \
         AND ($6 IS NULL OR t.external_userid = $6){breached} ORDER BY {order} LIMIT $7"
    ))
    .bind(&f.status)
    .bind(&f.group)
    .bind(f.priority)
    .bind(&f.tier)
    .bind(&f.assignee)
    .bind(&f.external_userid)
    .bind(f.limit)
    .fetch_all(db)
    .await
}

/// Queued tickets in the order they are to be handed out: priority, then due time. On
/// PostgreSQL the rows are locked for this transaction, skipping any another transaction
/// holds (a pull appending to one): that one waits for the next pass instead of holding
/// this one up.
pub async fn queued(conn: &mut AnyConnection, limit: i64) -> sqlx::Result<Vec<Ticket>> {
    let lock = if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE status = $1 \
         ORDER BY priority, COALESCE(first_response_due, next_response_due, resolution_due), \
         opened_at, id LIMIT $2{lock}"
    ))
    .bind(TicketStatus::Queued.as_str())
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Open tickets whose clocks run (not paused), for the SLA watch.
pub async fn running_clocks<'e>(
    db: impl Executor<'e, Database = Any>,
) -> sqlx::Result<Vec<Ticket>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE open_key IS NOT NULL AND paused_at IS NULL"
    ))
    .fetch_all(db)
    .await
}

/// Assigned tickets whose agent has not written since being assigned before `before_ms`.
pub async fn idle_assignments(
    conn: &mut AnyConnection,
    before_ms: i64,
) -> sqlx::Result<Vec<Ticket>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE status = $1 AND assigned_at < $2 \
         AND (last_agent_at IS NULL OR last_agent_at < assigned_at)"
    ))
    .bind(TicketStatus::Assigned.as_str())
    .bind(before_ms)
    .fetch_all(conn)
    .await
}

/// Resolved tickets resolved before `before_ms`: past the reopen window, to be closed.
pub async fn resolved_before(
    conn: &mut AnyConnection,
    before_ms: i64,
) -> sqlx::Result<Vec<Ticket>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE status = $1 AND resolved_at < $2 LIMIT 500"
    ))
    .bind(TicketStatus::Resolved.as_str())
    .bind(before_ms)
    .fetch_all(conn)
    .await
}

/// The agent who last served this customer (assigned or replied) at or after `since_ms`.
pub async fn recent_agent(
    conn: &mut AnyConnection,
    channel: &str,
    account: &str,
    external_userid: &str,
    since_ms: i64,
) -> sqlx::Result<Option<String>> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT last_assignee FROM tickets WHERE channel = $1 AND account = $2 \
         AND external_userid = $3 AND last_assignee IS NOT NULL AND last_served_at >= $4 \
         ORDER BY last_served_at DESC LIMIT 1",
    )
    .bind(channel)
    .bind(account)
    .bind(external_userid)
    .bind(since_ms)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|r| r.0))
}

/// The kf accounts of queued tickets, sorted: the order their locks are taken in.
pub async fn queued_accounts(conn: &mut AnyConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT account FROM tickets WHERE status = $1 AND channel = 'kf' ORDER BY account",
    )
    .bind(TicketStatus::Queued.as_str())
    .fetch_all(conn)
    .await
}

/// Record the shopper's rating once, while the ticket is resolved or closed, against its
/// agent. False when it was rated already (or is open again).
pub async fn set_csat(
    conn: &mut AnyConnection,
    id: &str,
    rating: &str,
    now_ms: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE tickets SET csat = $1, csat_agent = assignee, csat_at = $2, updated_at = $2, \
         version = version + 1 \
         WHERE id = $3 AND csat IS NULL AND status IN ($4, $5)",
    )
    .bind(rating)
    .bind(now_ms)
    .bind(id)
    .bind(TicketStatus::Resolved.as_str())
    .bind(TicketStatus::Closed.as_str())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Assigned tickets of `agent` the agent has not answered since being assigned.
pub async fn unanswered_of(conn: &mut AnyConnection, agent: &str) -> sqlx::Result<Vec<Ticket>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE status = $1 AND assignee = $2 \
         AND (last_agent_at IS NULL OR last_agent_at < assigned_at)"
    ))
    .bind(TicketStatus::Assigned.as_str())
    .bind(agent)
    .fetch_all(conn)
    .await
}

/// Open tickets held by each agent.
pub async fn loads(conn: &mut AnyConnection) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT assignee, COUNT(*) FROM tickets WHERE assignee IS NOT NULL \
         AND status IN ($1, $2) GROUP BY assignee",
    )
    .bind(TicketStatus::Assigned.as_str())
    .bind(TicketStatus::PendingCustomer.as_str())
    .fetch_all(conn)
    .await
}

/// Take the routing turn: passes run one at a time, across replicas too.
pub async fn take_routing_turn(conn: &mut AnyConnection) -> sqlx::Result<()> {
    sqlx::query("UPDATE ticket_routing SET passes = passes + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

// ---- messages and history ----

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TicketMessage {
    pub id: String,
    pub ticket_id: String,
    pub msgid: Option<String>,
    pub author: String,
    pub agent: Option<String>,
    pub content: String,
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    pub at: i64,
    /// The library reply an agent's message came from (a suggestion, perhaps edited).
    pub reply_id: Option<String>,
}

/// The ticket a message (a kf msgid or an outbox id) belongs to, if any.
pub async fn ticket_of_message(
    conn: &mut AnyConnection,
    msgid: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT ticket_id FROM ticket_messages WHERE msgid = $1 LIMIT 1")
        .bind(msgid)
        .fetch_optional(conn)
        .await
}

pub async fn insert_message(conn: &mut AnyConnection, m: &TicketMessage) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ticket_messages (id, ticket_id, msgid, author, agent, content, intent, \
         confidence, at, reply_id) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         CAST($8 AS DOUBLE PRECISION), $9, $10)",
    )
    .bind(&m.id)
    .bind(&m.ticket_id)
    .bind(&m.msgid)
    .bind(&m.author)
    .bind(&m.agent)
    .bind(&m.content)
    .bind(&m.intent)
    .bind(crate::store::float_param(m.confidence))
    .bind(m.at)
    .bind(&m.reply_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn messages<'e>(
    db: impl Executor<'e, Database = Any>,
    ticket_id: &str,
) -> sqlx::Result<Vec<TicketMessage>> {
    sqlx::query_as(
        "SELECT id, ticket_id, msgid, author, agent, content, intent, confidence, at, \
         reply_id FROM ticket_messages WHERE ticket_id = $1 ORDER BY at, id",
    )
    .bind(ticket_id)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TicketEvent {
    pub id: String,
    pub ticket_id: String,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub detail: String,
}

pub async fn insert_event(conn: &mut AnyConnection, e: &TicketEvent) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ticket_events (id, ticket_id, at, actor, kind, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.id)
    .bind(&e.ticket_id)
    .bind(e.at)
    .bind(&e.actor)
    .bind(&e.kind)
    .bind(&e.detail)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn events<'e>(
    db: impl Executor<'e, Database = Any>,
    ticket_id: &str,
) -> sqlx::Result<Vec<TicketEvent>> {
    sqlx::query_as(
        "SELECT id, ticket_id, at, actor, kind, detail FROM ticket_events \
         WHERE ticket_id = $1 ORDER BY at, id",
    )
    .bind(ticket_id)
    .fetch_all(db)
    .await
}

// ---- SLA marks ----

/// Record a warning or breach; false when it was already recorded (by this replica or another).
pub async fn insert_mark(
    conn: &mut AnyConnection,
    ticket_id: &str,
    target: &str,
    kind: &str,
    started_at: i64,
    due_at: i64,
    now_ms: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO sla_marks (ticket_id, target, kind, started_at, due_at, at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(ticket_id)
    .bind(target)
    .bind(kind)
    .bind(started_at)
    .bind(due_at)
    .bind(now_ms)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// (target, kind) of every mark on a ticket.
/// The SLA marks of the open tickets: ticket id -> (kind, the due time it was for).
pub async fn open_marks<'e>(
    db: impl Executor<'e, Database = Any>,
) -> sqlx::Result<std::collections::HashMap<String, Vec<(String, i64)>>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT m.ticket_id, m.kind, m.due_at FROM sla_marks m \
         JOIN tickets t ON t.id = m.ticket_id WHERE t.open_key IS NOT NULL",
    )
    .fetch_all(db)
    .await?;
    let mut out: std::collections::HashMap<String, Vec<(String, i64)>> = Default::default();
    for (id, kind, due) in rows {
        out.entry(id).or_default().push((kind, due));
    }
    Ok(out)
}

pub async fn marks<'e>(
    db: impl Executor<'e, Database = Any>,
    ticket_id: &str,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT target, kind FROM sla_marks WHERE ticket_id = $1 ORDER BY at")
        .bind(ticket_id)
        .fetch_all(db)
        .await
}

// ---- agents ----

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentRow {
    pub servicer_userid: String,
    pub name: String,
    /// JSON array of skill groups.
    pub groups: String,
    pub capacity: i64,
    pub senior: i64,
    pub on_duty: i64,
    pub active: i64,
    pub last_assigned_at: Option<i64>,
    pub updated_at: i64,
}

pub async fn agents<'e>(db: impl Executor<'e, Database = Any>) -> sqlx::Result<Vec<AgentRow>> {
    sqlx::query_as(
        "SELECT servicer_userid, name, groups, capacity, senior, on_duty, active, \
         last_assigned_at, updated_at FROM agents ORDER BY servicer_userid",
    )
    .fetch_all(db)
    .await
}

/// Add an agent, or change one's name, groups, capacity and seniority (and, when given,
/// duty). Their duty state otherwise stays what WeCom last said.
pub async fn upsert_agent(
    conn: &mut AnyConnection,
    a: &AgentRow,
    set_duty: bool,
) -> sqlx::Result<()> {
    let duty = if set_duty {
        "excluded.on_duty"
    } else {
        "agents.on_duty"
    };
    sqlx::query(&format!(
        "INSERT INTO agents (servicer_userid, name, groups, capacity, senior, on_duty, active, \
         last_assigned_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (servicer_userid) DO UPDATE SET name = excluded.name, \
         groups = excluded.groups, capacity = excluded.capacity, senior = excluded.senior, \
         on_duty = {duty}, active = excluded.active, updated_at = excluded.updated_at"
    ))
    .bind(&a.servicer_userid)
    .bind(&a.name)
    .bind(&a.groups)
    .bind(a.capacity)
    .bind(a.senior)
    .bind(a.on_duty)
    .bind(a.active)
    .bind(a.last_assigned_at)
    .bind(a.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// An agent went on or off duty; false when kefu does not know the agent.
pub async fn set_on_duty(
    conn: &mut AnyConnection,
    servicer_userid: &str,
    on_duty: bool,
    now_ms: i64,
) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE agents SET on_duty = $1, updated_at = $2 WHERE servicer_userid = $3")
            .bind(i64::from(on_duty))
            .bind(now_ms)
            .bind(servicer_userid)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(done == 1)
}

pub async fn touch_assigned(
    conn: &mut AnyConnection,
    servicer_userid: &str,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE agents SET last_assigned_at = $1 WHERE servicer_userid = $2")
        .bind(now_ms)
        .bind(servicer_userid)
        .execute(conn)
        .await?;
    Ok(())
}
