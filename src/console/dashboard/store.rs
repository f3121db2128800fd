//! Every SQL string of the dashboard: the period's tickets (one row each), and its shopper
//! messages and decided suggestions (counted per intent and outcome in the database).

use sqlx::AnyPool;

use super::Period;

/// A ticket opened in the period, with what the figures need of it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TicketRow {
    pub intent: String,
    pub grp: String,
    pub tier: String,
    /// The assignee, else the last agent who served the ticket.
    pub agent: Option<String>,
    pub opened_at: i64,
    pub first_response_at: Option<i64>,
    /// Resolved, else closed.
    pub ended_at: Option<i64>,
    pub csat: Option<String>,
    pub csat_agent: Option<String>,
    /// 1 when an SLA breach was recorded on the ticket.
    pub breached: i64,
}

/// Shopper messages of one intent and status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageCount {
    pub intent: Option<String>,
    pub status: String,
    pub n: i64,
}

/// Decided suggestions of one intent, agent, tier and outcome.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SuggestionCount {
    pub intent: String,
    /// The deciding console user's servicer id, else their name.
    pub agent: String,
    /// The ticket's tier (none if the ticket is gone).
    pub tier: Option<String>,
    pub outcome: String,
    pub n: i64,
}

pub(super) async fn tickets(pool: &AnyPool, p: &Period) -> sqlx::Result<Vec<TicketRow>> {
    sqlx::query_as(
        "SELECT t.intent, t.grp, t.tier, COALESCE(t.assignee, t.last_assignee) AS agent, \
         t.opened_at, t.first_response_at, COALESCE(t.resolved_at, t.closed_at) AS ended_at, \
         t.csat, t.csat_agent, \
         CASE WHEN EXISTS (SELECT 1 FROM sla_marks m WHERE m.ticket_id = t.id \
         AND m.kind = 'breach') THEN 1 ELSE 0 END AS breached \
         FROM tickets t WHERE t.opened_at >= $1 AND t.opened_at < $2",
    )
    .bind(p.start_ms)
    .bind(p.end_ms)
    .fetch_all(pool)
    .await
}

/// kf: the customer's messages kefu decided on (a satisfaction click stays `recorded`, a
/// recalled message `recalled`: neither is a question). Official Account: every message
/// that is not an event; a non-text one stays `received`, unanswered.
pub(super) async fn messages(pool: &AnyPool, p: &Period) -> sqlx::Result<Vec<MessageCount>> {
    sqlx::query_as(
        "SELECT intent, status, COUNT(*) AS n FROM kf_messages \
         WHERE origin = 3 AND status IN ('answered', 'unresolved', 'agent') \
         AND received_at >= $1 AND received_at < $2 GROUP BY intent, status \
         UNION ALL \
         SELECT intent, status, COUNT(*) AS n FROM inbound_messages \
         WHERE channel = 'mp' AND msg_type <> 'event' \
         AND received_at >= $1 AND received_at < $2 GROUP BY intent, status",
    )
    .bind(p.start_ms)
    .bind(p.end_ms)
    .fetch_all(pool)
    .await
}

pub(super) async fn suggestions(pool: &AnyPool, p: &Period) -> sqlx::Result<Vec<SuggestionCount>> {
    sqlx::query_as(
        "SELECT s.intent, COALESCE(u.servicer_userid, s.decided_by, s.agent) AS agent, \
         t.tier, s.outcome, COUNT(*) AS n FROM suggestions s \
         LEFT JOIN tickets t ON t.id = s.ticket_id \
         LEFT JOIN console_users u ON u.name = COALESCE(s.decided_by, s.agent) \
         WHERE s.shown_at >= $1 AND s.shown_at < $2 AND s.outcome IS NOT NULL \
         GROUP BY s.intent, COALESCE(u.servicer_userid, s.decided_by, s.agent), t.tier, \
         s.outcome",
    )
    .bind(p.start_ms)
    .bind(p.end_ms)
    .fetch_all(pool)
    .await
}
