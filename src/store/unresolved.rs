//! Official Account messages waiting for a person that no ticket holds yet: the ticket
//! watch picks them up (a crash between recording a message and opening its ticket loses
//! nothing: the next pass finds it). A message taken in is marked in the same transaction
//! as its ticket, which takes it out of the index of waiting messages (migration 0015), so
//! a pass does not walk the messages taken in before (only unresolved messages without a
//! sender, which no ticket can take, stay in that index for the look-back).

use sqlx::AnyConnection;

/// An unresolved inbound message.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Unresolved {
    pub id: String,
    pub dedup_key: String,
    pub from_user: Option<String>,
    pub to_user: String,
    pub content: Option<String>,
    pub msg_type: String,
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    pub received_at: i64,
}

/// The watch's read: `ticketed_at IS NULL` selects the waiting messages' index; the ticket
/// check stays for messages a ticket took in without marking them (an older version's).
/// Binds: channel, the earliest `received_at`, the limit.
pub const UNTICKETED: &str = "SELECT m.id, m.dedup_key, m.from_user, m.to_user, m.content, \
     m.msg_type, m.intent, m.confidence, m.received_at FROM inbound_messages m \
     WHERE m.status = 'unresolved' AND m.ticketed_at IS NULL AND m.channel = $1 \
     AND m.received_at >= $2 AND m.from_user IS NOT NULL AND m.from_user <> '' \
     AND NOT EXISTS (SELECT 1 FROM ticket_messages t WHERE t.msgid = m.id) \
     ORDER BY m.received_at, m.id LIMIT $3";

/// Unresolved messages of `channel` received at or after `since_ms` that no ticket holds,
/// oldest first. Messages without a sender cannot have a ticket (no one to answer) and are
/// left out, so they never fill a batch ahead of the ones that can.
pub async fn unticketed(
    conn: &mut AnyConnection,
    channel: &str,
    since_ms: i64,
    limit: i64,
) -> sqlx::Result<Vec<Unresolved>> {
    sqlx::query_as(UNTICKETED)
        .bind(channel)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Mark a message as taken into a ticket at `at_ms` (in the ticket's transaction).
pub async fn mark_ticketed(
    conn: &mut AnyConnection,
    channel: &str,
    dedup_key: &str,
    at_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE inbound_messages SET ticketed_at = $1 WHERE channel = $2 AND dedup_key = $3",
    )
    .bind(at_ms)
    .bind(channel)
    .bind(dedup_key)
    .execute(conn)
    .await?;
    Ok(())
}
