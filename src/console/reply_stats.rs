//! `kefu replies stats`: where the reply library falls short, read from the console's records.
//!
//! 1. The library replies agents edit or dismiss most. Per reply id and intent, from the
//!    `suggestions` table: how often the reply was shown, accepted as is, edited before
//!    sending, and dismissed; the edit-or-dismiss share is (edited + dismissed) / decided.
//!    Only replies shown at least `min_shown` times are listed, so a one-off does not top the
//!    list; highest share first, then most decided.
//! 2. Answers agents keep writing themselves: agent messages without a library reply
//!    (`ticket_messages.author = 'agent'`, `reply_id` NULL), grouped by [`normalise`]d text.
//!    Each group has its count, the number of distinct tickets, the intent of the shopper
//!    messages it answered (the latest customer message before it in its ticket; the most
//!    frequent one when they differ) and one example. Those used in `min_tickets` tickets or
//!    more (2 by default) are listed, most tickets first: candidates for the library.
//!
//! Text from shoppers and agents goes through [`printable`] before it is shown.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sqlx::AnyPool;

use crate::taxonomy;

/// What to list.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only suggestions shown and agent messages written at or after this instant (ms).
    pub since_ms: Option<i64>,
    /// At most this many rows per list.
    pub limit: usize,
    pub min_shown: u64,
    pub min_tickets: u64,
}

/// One library reply and what agents did with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplyRow {
    pub reply_id: String,
    pub intent: String,
    pub shown: u64,
    pub accepted: u64,
    pub edited: u64,
    pub dismissed: u64,
    /// (edited + dismissed) / decided; none when nothing was decided yet.
    pub edit_or_dismiss_share: Option<f64>,
}

impl ReplyRow {
    pub fn decided(&self) -> u64 {
        self.accepted + self.edited + self.dismissed
    }
}

/// An answer agents wrote themselves, more than once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentAnswer {
    /// The normalised text the occurrences share.
    pub text: String,
    /// The latest occurrence as written (made printable).
    pub example: String,
    pub occurrences: u64,
    pub tickets: u64,
    /// The intent of the shopper messages it answered, the most frequent one.
    pub intent: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplyStats {
    pub min_shown: u64,
    pub min_tickets: u64,
    pub replies: Vec<ReplyRow>,
    pub agent_answers: Vec<AgentAnswer>,
}

/// Full-width forms to half-width, then each control (and bidirectional-override) character
/// dropped or, if it is white space, made a space; runs of white space become one space;
/// trimmed; trailing punctuation (`。，！？…~` and their ASCII kin) dropped. Case is kept.
pub fn normalise(text: &str) -> String {
    let folded: String = text
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect();
    let mut out = printable(&folded)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    while out.ends_with(is_trailing_punctuation) || out.ends_with(' ') {
        out.pop();
    }
    out
}

fn is_trailing_punctuation(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | '!' | '?' | ';' | ':' | '~' | '。' | '、' | '…' | '·' | '～' | '﹏'
    )
}

/// Text safe to print to a terminal: control characters (C0, DEL, C1) and the
/// bidirectional overrides that could reorder what is shown are dropped; tabs and line
/// breaks become spaces.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() => None,
            '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}' => None,
            c => Some(c),
        })
        .collect()
}

/// The first `max` characters of `text`, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[derive(sqlx::FromRow)]
struct OutcomeCount {
    reply_id: String,
    intent: String,
    outcome: Option<String>,
    n: i64,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    ticket_id: String,
    author: String,
    content: String,
    intent: Option<String>,
    at: i64,
    reply_id: Option<String>,
}

/// Both lists, from the store.
pub async fn compute(pool: &AnyPool, opts: &Options) -> sqlx::Result<ReplyStats> {
    let since = opts.since_ms.unwrap_or(i64::MIN);
    let outcomes: Vec<OutcomeCount> = sqlx::query_as(
        "SELECT reply_id, intent, outcome, COUNT(*) AS n FROM suggestions \
         WHERE shown_at >= $1 GROUP BY reply_id, intent, outcome",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    // Every message of the tickets with an agent-written answer, in order: the customer
    // message before each answer says what it answered.
    let messages: Vec<MessageRow> = sqlx::query_as(
        "SELECT m.ticket_id, m.author, m.content, m.intent, m.at, m.reply_id \
         FROM ticket_messages m WHERE m.author IN ('customer', 'agent') \
         AND m.ticket_id IN (SELECT a.ticket_id FROM ticket_messages a \
         WHERE a.author = 'agent' AND a.reply_id IS NULL AND a.at >= $1) \
         ORDER BY m.ticket_id, m.at, m.id",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    Ok(ReplyStats {
        min_shown: opts.min_shown,
        min_tickets: opts.min_tickets,
        replies: reply_rows(outcomes, opts),
        agent_answers: agent_answers(messages, since, opts),
    })
}

fn reply_rows(outcomes: Vec<OutcomeCount>, opts: &Options) -> Vec<ReplyRow> {
    let mut rows: BTreeMap<(String, String), ReplyRow> = BTreeMap::new();
    for o in outcomes {
        let n = u64::try_from(o.n).unwrap_or(0);
        let row = rows
            .entry((o.reply_id.clone(), o.intent.clone()))
            .or_insert_with(|| ReplyRow {
                reply_id: o.reply_id,
                intent: o.intent,
                shown: 0,
                accepted: 0,
                edited: 0,
                dismissed: 0,
                edit_or_dismiss_share: None,
            });
        row.shown += n;
        match o.outcome.as_deref() {
            Some("accepted") => row.accepted += n,
            Some("edited") => row.edited += n,
            Some("dismissed") => row.dismissed += n,
            _ => {} // still open
        }
    }
    let mut rows: Vec<ReplyRow> = rows
        .into_values()
        .filter(|r| r.shown >= opts.min_shown)
        .map(|mut r| {
            let decided = r.decided();
            r.edit_or_dismiss_share =
                (decided > 0).then(|| (r.edited + r.dismissed) as f64 / decided as f64);
            r
        })
        .collect();
    rows.sort_by(|a, b| {
        let share = |r: &ReplyRow| r.edit_or_dismiss_share.unwrap_or(-1.0);
        share(b)
            .total_cmp(&share(a))
            .then_with(|| b.decided().cmp(&a.decided()))
            .then_with(|| b.shown.cmp(&a.shown))
            .then_with(|| (&a.reply_id, &a.intent).cmp(&(&b.reply_id, &b.intent)))
    });
    rows.truncate(opts.limit);
    rows
}

#[derive(Default)]
struct Recurring {
    occurrences: u64,
    tickets: BTreeSet<String>,
    intents: HashMap<String, u64>,
    example: String,
    latest: i64,
}

fn agent_answers(messages: Vec<MessageRow>, since: i64, opts: &Options) -> Vec<AgentAnswer> {
    let mut groups: HashMap<String, Recurring> = HashMap::new();
    let mut ticket = String::new();
    let mut answered: Option<String> = None;
    for m in messages {
        if m.ticket_id != ticket {
            ticket.clone_from(&m.ticket_id);
            answered = None;
        }
        if m.author == "customer" {
            answered = Some(m.intent.unwrap_or_else(|| taxonomy::UNKNOWN.into()));
            continue;
        }
        if m.reply_id.is_some() || m.at < since || placeholder(&m.content) {
            continue;
        }
        let text = normalise(&m.content);
        if text.is_empty() {
            continue;
        }
        let g = groups.entry(text).or_default();
        g.occurrences += 1;
        g.tickets.insert(m.ticket_id);
        let intent = answered.clone().unwrap_or_else(|| taxonomy::UNKNOWN.into());
        *g.intents.entry(intent).or_default() += 1;
        if g.example.is_empty() || m.at >= g.latest {
            g.example = m.content;
            g.latest = m.at;
        }
    }
    let mut out: Vec<AgentAnswer> = groups
        .into_iter()
        .filter(|(_, g)| g.tickets.len() as u64 >= opts.min_tickets)
        .map(|(text, g)| AgentAnswer {
            intent: g
                .intents
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(i, _)| printable(i))
                .unwrap_or_default(),
            example: printable(&g.example),
            occurrences: g.occurrences,
            tickets: g.tickets.len() as u64,
            text,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.tickets, b.occurrences)
            .cmp(&(a.tickets, a.occurrences))
            .then_with(|| a.text.cmp(&b.text))
    });
    out.truncate(opts.limit);
    out
}

/// The two lists as plain-text tables for a terminal.
pub fn render_text(s: &ReplyStats) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Library replies agents edit or dismiss most (shown {} times or more)",
        s.min_shown
    );
    if s.replies.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {:<28} {:<18} {:>6} {:>9} {:>7} {:>10} {:>13}",
            "reply", "intent", "shown", "accepted", "edited", "dismissed", "edit+dismiss"
        );
        for r in &s.replies {
            let share = r
                .edit_or_dismiss_share
                .map(|v| format!("{:.1}%", v * 100.0))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  {:<28} {:<18} {:>6} {:>9} {:>7} {:>10} {:>13}",
                clip(&printable(&r.reply_id), 28),
                clip(&printable(&r.intent), 18),
                r.shown,
                r.accepted,
                r.edited,
                r.dismissed,
                share
            );
        }
    }
    let _ = writeln!(
        out,
        "\nAnswers agents wrote themselves in {} tickets or more (candidates for the library)",
        s.min_tickets
    );
    if s.agent_answers.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(
            out,
            "  {:>7} {:>5}  {:<18} example",
            "tickets", "times", "intent"
        );
        for a in &s.agent_answers {
            let _ = writeln!(
                out,
                "  {:>7} {:>5}  {:<18} {}",
                a.tickets,
                a.occurrences,
                clip(&a.intent, 18),
                clip(&a.example, 60)
            );
        }
    }
    out
}

/// What kefu records for an agent message without text (`[image]`, `[voice]`): not an
/// answer anyone wrote.
fn placeholder(content: &str) -> bool {
    let c = content.trim();
    c.starts_with('[') && c.ends_with(']') && c.chars().count() <= 24 && !c[1..].contains('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_folds_width_space_and_trailing_punctuation() {
        for (raw, want) in [
            ("  亲，已经帮您催了哦～ ", "亲,已经帮您催了哦"),
            ("亲,已经帮您催了哦", "亲,已经帮您催了哦"),
            ("亲，已经帮您催了哦。。。", "亲,已经帮您催了哦"),
            ("ＯＫ　稍等\n\n一下!", "OK 稍等 一下"),
            ("稍等\u{1b}[31m一下", "稍等[31m一下"),
            ("Hello   World?", "Hello World"),
            ("。！", ""),
        ] {
            assert_eq!(normalise(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn printable_text_has_no_controls_or_overrides() {
        assert_eq!(
            printable("a\u{1b}]0;pwned\u{7}b\u{9b}c\u{202e}d\te\u{7f}"),
            "a]0;pwnedbcd e"
        );
    }

    fn outcome(reply: &str, outcome: Option<&str>, n: i64) -> OutcomeCount {
        OutcomeCount {
            reply_id: reply.into(),
            intent: "tracking".into(),
            outcome: outcome.map(str::to_string),
            n,
        }
    }

    #[test]
    fn replies_rank_by_share_then_decisions_and_one_offs_stay_out() {
        let opts = Options {
            since_ms: None,
            limit: 10,
            min_shown: 3,
            min_tickets: 2,
        };
        let rows = reply_rows(
            vec![
                outcome("a", Some("dismissed"), 2),
                outcome("a", Some("accepted"), 2),
                outcome("b", Some("edited"), 1),
                outcome("b", Some("dismissed"), 1),
                outcome("b", Some("accepted"), 2),
                outcome("b", None, 2),
                outcome("c", Some("dismissed"), 2),
                outcome("d", Some("accepted"), 5),
            ],
            &opts,
        );
        let got: Vec<(&str, u64, Option<f64>)> = rows
            .iter()
            .map(|r| (r.reply_id.as_str(), r.shown, r.edit_or_dismiss_share))
            .collect();
        assert_eq!(
            got,
            // a and b tie on share and decisions: b was shown more. c was shown twice only.
            [
                ("b", 6, Some(0.5)),
                ("a", 4, Some(0.5)),
                ("d", 5, Some(0.0))
            ]
        );
    }
}
