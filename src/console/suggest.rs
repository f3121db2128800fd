//! The three suggested replies an agent sees for a shopper's latest message, rendered for
//! that customer, and what became of each: accepted as is, edited, or dismissed.
//!
//! Shown suggestions are recorded once per (ticket, message, reply), when the agent's page
//! first shows them. When the agent sends a reply, the suggestion it came from is marked
//! accepted (the text is exactly the rendered reply) or edited, and the others of that
//! message dismissed; a dismiss button marks one at once.

use serde::Serialize;
use sqlx::AnyConnection;

use crate::intent::Classifier;
use crate::tickets::store::TicketMessage;
use crate::tickets::Ticket;

/// How many suggestions an agent sees.
pub const SHOWN: usize = 3;

/// One suggested reply, ready to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shown {
    /// 1-based, as the page numbers them (and the keys 1, 2, 3 pick them).
    pub slot: usize,
    pub reply_id: String,
    pub intent: String,
    pub title: String,
    /// The answer rendered for this customer: their tier's wording, shop facts, nickname.
    pub text: String,
    pub score: f32,
    /// `None` while open, else "accepted", "edited", "dismissed", or "passed" (another
    /// suggestion was sent).
    pub outcome: Option<String>,
}

/// The suggestions for `message` (the shopper's latest) on `ticket`: the classifier's
/// answer first, then its runners-up, at most [`SHOWN`].
pub fn for_message(
    classifier: &Classifier,
    ticket: &Ticket,
    message: &TicketMessage,
) -> Vec<Shown> {
    let c = classifier.classify(&message.content);
    let library = classifier.library();
    let mut ids: Vec<(String, f32)> = Vec::new();
    if let Some(id) = &c.reply_id {
        ids.push((id.clone(), c.confidence));
    }
    for s in &c.suggestions {
        if !ids.iter().any(|(id, _)| *id == s.reply_id) {
            ids.push((s.reply_id.clone(), s.score));
        }
    }
    ids.into_iter()
        .filter_map(|(id, score)| library.get(&id).map(|r| (r, score)))
        .take(SHOWN)
        .enumerate()
        .map(|(i, (reply, score))| Shown {
            slot: i + 1,
            reply_id: reply.id.clone(),
            intent: reply.intent.clone(),
            title: reply.title.clone(),
            text: library.render(reply, Some(&ticket.tier), ticket.customer_name.as_deref()),
            score,
            outcome: None,
        })
        .collect()
}

/// Record that `agent` was shown `shown` (a suggestion already recorded keeps its first
/// showing), and fill in each one's outcome so far.
pub async fn record_shown(
    conn: &mut AnyConnection,
    ticket_id: &str,
    message_id: &str,
    shown: &mut [Shown],
    agent: &str,
    now: i64,
) -> sqlx::Result<()> {
    for s in shown.iter_mut() {
        sqlx::query(
            "INSERT INTO suggestions (ticket_id, message_id, reply_id, intent, slot, agent, \
             shown_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (ticket_id, message_id, reply_id) DO NOTHING",
        )
        .bind(ticket_id)
        .bind(message_id)
        .bind(&s.reply_id)
        .bind(&s.intent)
        .bind(s.slot as i64)
        .bind(agent)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        s.outcome = sqlx::query_scalar(
            "SELECT outcome FROM suggestions WHERE ticket_id = $1 AND message_id = $2 \
             AND reply_id = $3",
        )
        .bind(ticket_id)
        .bind(message_id)
        .bind(&s.reply_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    }
    Ok(())
}

/// What an agent's reply to `message_id` did with its suggestions: `used` is the reply it
/// came from and whether the agent changed the text. The other open suggestions of that
/// message are `passed` over when one of them was used (not a verdict on them), and
/// dismissed when the agent wrote their own answer instead.
pub async fn decide(
    conn: &mut AnyConnection,
    ticket_id: &str,
    message_id: &str,
    used: Option<(&str, bool)>,
    by: &str,
    now: i64,
) -> sqlx::Result<()> {
    if let Some((reply_id, edited)) = used {
        mark(
            conn,
            ticket_id,
            message_id,
            Some(reply_id),
            if edited { "edited" } else { "accepted" },
            by,
            now,
        )
        .await?;
    }
    let rest = if used.is_some() {
        "passed"
    } else {
        "dismissed"
    };
    mark(conn, ticket_id, message_id, None, rest, by, now).await?;
    Ok(())
}

/// How an agent's text relates to a rendered suggestion: `Some(false)` sent as is,
/// `Some(true)` edited (most of its character pairs kept), `None` not from it.
pub fn used_as(rendered: &str, sent: &str) -> Option<bool> {
    let (rendered, sent) = (rendered.trim(), sent.trim());
    if rendered == sent {
        return Some(false);
    }
    let pairs = |s: &str| -> std::collections::HashSet<(char, char)> {
        let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
        chars.windows(2).map(|w| (w[0], w[1])).collect()
    };
    let (a, b) = (pairs(rendered), pairs(sent));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let shared = a.intersection(&b).count() as f64;
    (shared / a.union(&b).count() as f64 >= 0.5).then_some(true)
}

/// An agent's reply written outside the console (the WeCom app): which open suggestion of
/// the shopper's latest message it came from, if any, with the outcomes recorded like a
/// console reply's. Returns that suggestion's reply id.
pub async fn decide_for_text(
    conn: &mut AnyConnection,
    classifier: &Classifier,
    ticket: &Ticket,
    sent: &str,
    by: &str,
    now: i64,
) -> sqlx::Result<Option<String>> {
    let latest: Option<String> = sqlx::query_scalar(
        "SELECT id FROM ticket_messages WHERE ticket_id = $1 AND author = 'customer' \
         ORDER BY at DESC, id DESC LIMIT 1",
    )
    .bind(&ticket.id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(message_id) = latest else {
        return Ok(None);
    };
    let open: Vec<String> = sqlx::query_scalar(
        "SELECT reply_id FROM suggestions WHERE ticket_id = $1 AND message_id = $2 \
         AND outcome IS NULL ORDER BY slot",
    )
    .bind(&ticket.id)
    .bind(&message_id)
    .fetch_all(&mut *conn)
    .await?;
    if open.is_empty() {
        return Ok(None);
    }
    let library = classifier.library();
    let used = open.iter().find_map(|id| {
        let reply = library.get(id)?;
        let rendered = library.render(reply, Some(&ticket.tier), ticket.customer_name.as_deref());
        used_as(&rendered, sent).map(|edited| (id.clone(), edited))
    });
    decide(
        conn,
        &ticket.id,
        &message_id,
        used.as_ref().map(|(id, edited)| (id.as_str(), *edited)),
        by,
        now,
    )
    .await?;
    Ok(used.map(|(id, _)| id))
}

/// Dismiss one suggestion.
pub async fn dismiss(
    conn: &mut AnyConnection,
    ticket_id: &str,
    message_id: &str,
    reply_id: &str,
    by: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let n = mark(
        conn,
        ticket_id,
        message_id,
        Some(reply_id),
        "dismissed",
        by,
        now,
    )
    .await?;
    Ok(n > 0)
}

/// Set the outcome of one open suggestion (`reply_id`) or of all open ones of a message;
/// how many were set.
async fn mark(
    conn: &mut AnyConnection,
    ticket_id: &str,
    message_id: &str,
    reply_id: Option<&str>,
    outcome: &str,
    by: &str,
    now: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE suggestions SET outcome = $1, decided_by = $2, decided_at = $3 \
         WHERE ticket_id = $4 AND message_id = $5 AND ($6 IS NULL OR reply_id = $6) \
         AND outcome IS NULL",
    )
    .bind(outcome)
    .bind(by)
    .bind(now)
    .bind(ticket_id)
    .bind(message_id)
    .bind(reply_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::used_as;

    #[test]
    fn a_reply_is_as_is_edited_or_unrelated() {
        let r = "亲，非常抱歉！请拍下破损处的照片发给我，我们核实后为您补发或退款～";
        assert_eq!(used_as(r, &format!("  {r}\n")), Some(false));
        assert_eq!(
            used_as(
                r,
                "亲，非常抱歉！请拍下破损处和外包装的照片发给我，我们核实后马上为您补发～"
            ),
            Some(true)
        );
        assert_eq!(used_as(r, "好的，我帮您查一下物流"), None);
        assert_eq!(used_as(r, ""), None);
    }
}
