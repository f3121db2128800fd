//! The console's working views, for agents and supervisors.
//!
//! - `GET /console/` and `GET /console/tickets/{id}`: the queue beside one ticket (its chat,
//!   the customer card, three suggested replies and the reply box). Supervisors filter the
//!   queue (`?status=&group=&priority=&tier=&assignee=&breached=`) and act on many tickets.
//! - `GET /console/fragments/queue` and `GET /console/fragments/tickets/{id}`: the same two
//!   parts alone, which the page fetches again when the live feed says they changed.
//! - `GET /console/events`: server-sent events, `hello` at every (re)connection (the page
//!   then reloads both parts, so a dropped connection misses nothing) and `ticket` for each
//!   change that concerns the user.
//! - `POST /console/tickets/{id}/{reply|dismiss|resolve}` and, for supervisors,
//!   `POST /console/bulk`. Every action is authorised here, whatever the page shows.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use minijinja::context;
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::auth::Session;
use super::{render, ser};
use crate::console::compliance::{self, Verdict};
use crate::console::suggest::{self, Shown};
use crate::console::{may_see, ConsoleUser};
use crate::crm::{customer_card, CustomerKey};
use crate::tickets::routing::Agent;
use crate::tickets::store::{self as ticket_store, Filter, TicketMessage};
use crate::tickets::{Action, ReplyMode, Ticket, TicketStatus};
use crate::web::tickets::{
    all_agents, field, kf_error, plain, plain_tx, ticket_error, ticket_or_404, ListQuery,
    MAX_REPLY_BYTES,
};
use crate::web::{AppState, WebError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/", get(workspace))
        .route("/console/tickets/{id}", get(workspace_with))
        .route("/console/fragments/queue", get(queue_fragment))
        .route("/console/fragments/tickets/{id}", get(ticket_fragment))
        .route("/console/events", get(events))
        .route("/console/tickets/{id}/reply", post(reply))
        .route("/console/tickets/{id}/dismiss", post(dismiss))
        .route("/console/tickets/{id}/resolve", post(resolve))
        .route("/console/bulk", post(bulk))
}

// ---- the queue ----

/// How many tickets one query of the queue reads at most.
const QUEUE_LIMIT: i64 = 1000;

#[derive(Serialize)]
struct QueueRow {
    id: String,
    priority: &'static str,
    tier: String,
    tier_reasons: Vec<String>,
    status: &'static str,
    group: String,
    intent: String,
    assignee: Option<String>,
    customer: String,
    last_message: String,
    /// `ok`, `warning`, `breach` or `paused`.
    sla: &'static str,
    /// The next SLA due time (unix ms), for the page's countdown.
    due_ms: Option<i64>,
    /// The countdown as the server saw it: "12m left", "3m over".
    due_text: String,
}

/// At most this many characters of the last message in a queue row.
const PREVIEW_CHARS: usize = 60;

fn preview(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(PREVIEW_CHARS)
        .collect();
    if text.chars().count() > PREVIEW_CHARS {
        out.push('…');
    }
    out
}

/// "12m left", "1h 5m left", "3m over".
fn countdown(due: i64, now: i64) -> String {
    let mins = (due - now).abs() / 60_000;
    let span = if mins >= 60 {
        format!("{}h {}m", mins / 60, mins % 60)
    } else {
        format!("{mins}m")
    };
    if due >= now {
        format!("{span} left")
    } else {
        format!("{span} over")
    }
}

/// The next SLA due time a ticket runs against.
fn next_due(t: &Ticket) -> i64 {
    t.first_response_due
        .or(t.next_response_due)
        .unwrap_or(t.resolution_due)
}

fn queue_row(t: &Ticket, marks: &HashMap<String, Vec<(String, i64)>>, now: i64) -> QueueRow {
    let due = next_due(t);
    let marked = |kind: &str| {
        marks
            .get(&t.id)
            .is_some_and(|m| m.iter().any(|(k, d)| k == kind && *d == due))
    };
    let sla = if t.paused_at.is_some() {
        "paused"
    } else if marked("breach") || due < now {
        "breach"
    } else if marked("warning") {
        "warning"
    } else {
        "ok"
    };
    QueueRow {
        id: t.id.clone(),
        priority: t.priority().as_str(),
        tier: t.tier.clone(),
        tier_reasons: t.tier_reasons(),
        status: t.status().as_str(),
        group: t.grp.clone(),
        intent: t.intent.clone(),
        assignee: t.assignee.clone(),
        customer: t
            .customer_name
            .clone()
            .unwrap_or_else(|| t.external_userid.clone()),
        last_message: preview(t.last_message.as_deref().unwrap_or("")),
        sla,
        due_ms: (sla != "paused").then_some(due),
        due_text: if sla == "paused" {
            "paused".into()
        } else {
            countdown(due, now)
        },
    }
}

/// The open tickets `user` may see (a supervisor: matching `filter`), most urgent first.
async fn visible_tickets(
    state: &AppState,
    user: &ConsoleUser,
    filter: &Filter,
) -> Result<Vec<Ticket>, WebError> {
    let pool = state.store.pool();
    let mut filters = Vec::new();
    if user.is_supervisor() {
        match &filter.status {
            Some(_) => filters.push(filter.clone()),
            None => {
                for s in TicketStatus::ALL.into_iter().filter(|s| s.is_open()) {
                    filters.push(Filter {
                        status: Some(s.as_str().into()),
                        ..filter.clone()
                    });
                }
            }
        }
    } else {
        if let Some(me) = &user.servicer_userid {
            // Open statuses only: their resolved and closed tickets keep the assignee too.
            for s in TicketStatus::ALL.into_iter().filter(|s| s.is_open()) {
                filters.push(Filter {
                    status: Some(s.as_str().into()),
                    assignee: Some(me.clone()),
                    limit: QUEUE_LIMIT,
                    ..Filter::default()
                });
            }
        }
        for g in &user.groups {
            for s in [TicketStatus::New, TicketStatus::Queued] {
                filters.push(Filter {
                    status: Some(s.as_str().into()),
                    group: Some(g.clone()),
                    limit: QUEUE_LIMIT,
                    ..Filter::default()
                });
            }
        }
    }
    // A supervisor who asks for resolved or closed tickets sees them; otherwise open ones.
    let closed_too = user.is_supervisor() && filter.status.is_some();
    let mut seen = HashMap::new();
    for f in &filters {
        for t in ticket_store::list(pool, f).await.map_err(WebError::store)? {
            if (closed_too || t.status().is_open()) && may_see(user, &t) {
                seen.entry(t.id.clone()).or_insert(t);
            }
        }
    }
    let mut tickets: Vec<Ticket> = seen.into_values().collect();
    tickets.sort_by_key(|t| (t.priority, next_due(t), t.opened_at, t.id.clone()));
    Ok(tickets)
}

/// The queue's filter from the query string: supervisors only; agents see their queue.
fn queue_filter(user: &ConsoleUser, query: Option<&str>) -> Result<Filter, WebError> {
    if !user.is_supervisor() {
        return Ok(Filter {
            limit: QUEUE_LIMIT,
            ..Filter::default()
        });
    }
    let q: ListQuery =
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| WebError::BadField {
            field: "query",
            message: "the query string is not form-encoded".into(),
        })?;
    let mut f = q.filter()?;
    f.limit = QUEUE_LIMIT;
    Ok(f)
}

/// What the queue part of the page shows.
struct QueuePart {
    rows: Vec<QueueRow>,
    agents: Vec<Agent>,
}

async fn queue_part(
    state: &AppState,
    user: &ConsoleUser,
    filter: &Filter,
) -> Result<QueuePart, WebError> {
    let tickets = visible_tickets(state, user, filter).await?;
    let marks = ticket_store::open_marks(state.store.pool())
        .await
        .map_err(WebError::store)?;
    let now = state.clock.now_ms();
    let rows = tickets.iter().map(|t| queue_row(t, &marks, now)).collect();
    let agents = if user.is_supervisor() {
        all_agents(state.store.pool())
            .await?
            .into_iter()
            .filter(|a| a.active)
            .collect()
    } else {
        Vec::new()
    };
    Ok(QueuePart { rows, agents })
}

#[derive(Serialize)]
struct AgentOption {
    id: String,
    name: String,
    on_duty: bool,
}

fn agent_options(agents: &[Agent]) -> Vec<AgentOption> {
    agents
        .iter()
        .map(|a| AgentOption {
            id: a.servicer_userid.clone(),
            name: a.name.clone(),
            on_duty: a.on_duty,
        })
        .collect()
}

/// The filter as the form shows it back.
#[derive(Serialize, Default)]
struct FilterView {
    status: String,
    group: String,
    priority: String,
    tier: String,
    assignee: String,
    breached: String,
}

impl FilterView {
    fn of(f: &Filter) -> Self {
        FilterView {
            status: f.status.clone().unwrap_or_default(),
            group: f.group.clone().unwrap_or_default(),
            priority: f
                .priority
                .and_then(crate::tickets::Priority::from_rank)
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            tier: f.tier.clone().unwrap_or_default(),
            assignee: f.assignee.clone().unwrap_or_default(),
            breached: f.breached.map(|b| b.to_string()).unwrap_or_default(),
        }
    }
}

// ---- one ticket ----

#[derive(Serialize)]
struct MessageView {
    id: String,
    author: String,
    agent: Option<String>,
    content: String,
    intent: Option<String>,
    /// Local time of day in the shop's time zone, "14:05".
    time: String,
    /// RFC 3339 with the shop's offset.
    at: String,
}

#[derive(Serialize)]
struct PanelView {
    ticket: minijinja::Value,
    messages: Vec<MessageView>,
    card: minijinja::Value,
    past: Vec<minijinja::Value>,
    suggestions: Vec<Shown>,
    /// The shopper message the suggestions answer.
    message_id: Option<String>,
    /// The agent may write to the shopper from here (console mode, their ticket or queue).
    can_reply: bool,
    /// Why not, when they may not.
    reply_note: Option<String>,
    /// `console` or `wecom`.
    mode: &'static str,
    quota_left: Option<i64>,
    can_resolve: bool,
}

fn local_time(state: &AppState, ms: i64) -> (String, String) {
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
        return (String::new(), String::new());
    };
    let zoned = ts.to_zoned_datetime(state.config.sla.calendar.time_zone());
    (zoned.strftime("%H:%M").to_string(), zoned.to_string())
}

/// The ticket, or 404; 403 when the user may not see it.
async fn visible_ticket(
    state: &AppState,
    user: &ConsoleUser,
    id: &str,
) -> Result<Ticket, WebError> {
    let t = ticket_or_404(state.store.pool(), id).await?;
    if !may_see(user, &t) {
        return Err(WebError::Forbidden(
            "this ticket is neither yours nor in your groups' queue",
        ));
    }
    Ok(t)
}

async fn panel(state: &AppState, session: &Session, t: &Ticket) -> Result<PanelView, WebError> {
    let pool = state.store.pool();
    let user = &session.user;
    let messages = ticket_store::messages(pool, &t.id)
        .await
        .map_err(WebError::store)?;
    let latest: Option<&TicketMessage> = messages.iter().rev().find(|m| m.author == "customer");
    let mut suggestions = latest
        .map(|m| suggest::for_message(&state.classifier.current(), t, m))
        .unwrap_or_default();
    if let (Some(m), false) = (latest, suggestions.is_empty()) {
        let mut conn = pool.acquire().await.map_err(WebError::store)?;
        suggest::record_shown(
            &mut conn,
            &t.id,
            &m.id,
            &mut suggestions,
            &user.name,
            state.clock.now_ms(),
        )
        .await
        .map_err(WebError::store)?;
    }
    let key = match t.channel.as_str() {
        "mp" => CustomerKey::OpenId(t.external_userid.clone()),
        _ => CustomerKey::ExternalUserId(t.external_userid.clone()),
    };
    let card = customer_card(
        &state.store,
        &state.config.tiers,
        state.clock.now_ms(),
        &key,
    )
    .await
    .map_err(WebError::store)?;
    let past: Vec<minijinja::Value> = ticket_store::list(
        pool,
        &Filter {
            external_userid: Some(t.external_userid.clone()),
            newest_first: true,
            limit: 11,
            ..Filter::default()
        },
    )
    .await
    .map_err(WebError::store)?
    .into_iter()
    .filter(|p| p.id != t.id)
    .take(10)
    .map(|p| {
        ser(&json!({
            "id": p.id, "intent": p.intent, "status": p.status().as_str(),
            "opened": local_time(state, p.opened_at).1.get(..10).unwrap_or(""),
            "csat": p.csat,
        }))
    })
    .collect();
    let mode = state.tickets.settings().agents_reply_in;
    let open = t.status().is_open();
    let (can_reply, reply_note) = match (&state.kf, mode) {
        _ if !open => (false, Some("This ticket is not open.".to_string())),
        (None, _) => (
            false,
            Some("Replies need WeCom Customer Service ([wecom] secret).".to_string()),
        ),
        (Some(_), ReplyMode::Wecom) => (
            false,
            Some("Agents answer in the WeCom app: copy a suggestion there.".to_string()),
        ),
        _ if t.channel != "kf" => (
            false,
            Some("Official Account chats are answered in the Official Account platform.".into()),
        ),
        _ if user.servicer_userid.is_none() => (
            false,
            Some("Only a user with a servicer id can reply.".to_string()),
        ),
        _ => (true, None),
    };
    let quota_left = match (&state.kf, can_reply) {
        (Some(kf), true) => kf.quota_for(t).await.ok(),
        _ => None,
    };
    let messages = messages
        .iter()
        .map(|m| {
            let (time, at) = local_time(state, m.at);
            MessageView {
                id: m.id.clone(),
                author: m.author.clone(),
                agent: m.agent.clone(),
                content: m.content.clone(),
                intent: m.intent.clone(),
                time,
                at,
            }
        })
        .collect();
    let now = state.clock.now_ms();
    let marks = ticket_store::open_marks(pool)
        .await
        .map_err(WebError::store)?;
    let row = queue_row(t, &marks, now);
    Ok(PanelView {
        ticket: ser(&json!({
            "id": t.id, "priority": row.priority, "tier": row.tier,
            "tier_reasons": row.tier_reasons, "status": row.status, "group": row.group,
            "intent": t.intent, "reason": t.reason, "assignee": t.assignee,
            "customer": row.customer, "sla": row.sla, "due_ms": row.due_ms,
            "due_text": row.due_text, "channel": t.channel,
        })),
        messages,
        card: ser(&card),
        past,
        suggestions,
        message_id: latest.map(|m| m.id.clone()),
        can_reply,
        reply_note,
        mode: match mode {
            ReplyMode::Console => "console",
            ReplyMode::Wecom => "wecom",
        },
        quota_left,
        can_resolve: open && t.status() != TicketStatus::Resolved,
    })
}

// ---- pages and fragments ----

async fn workspace(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    page(&state, session, None, query).await
}

async fn workspace_with(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    page(&state, session, Some(id), query).await
}

async fn page(
    state: &AppState,
    session: Session,
    id: Option<String>,
    query: Option<String>,
) -> Result<Response, WebError> {
    let filter = queue_filter(&session.user, query.as_deref())?;
    let selected = match &id {
        Some(id) => Some(visible_ticket(state, &session.user, id).await?),
        None => None,
    };
    let part = queue_part(state, &session.user, &filter).await?;
    // What the last bulk action did, as it reported back.
    let done: Option<String> = query.as_deref().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "done")
            .map(|(_, v)| v)
    });
    let panel = match &selected {
        Some(t) => Some(panel(state, &session, t).await?),
        None => None,
    };
    Ok(render(
        "workspace.html",
        context! {
            user => ser(&session.user),
            csrf => session.csrf,
            rows => ser(&part.rows),
            agents => ser(&agent_options(&part.agents)),
            filter => ser(&FilterView::of(&filter)),
            query => query.unwrap_or_default(),
            groups => crate::console::skill_groups(),
            selected => id,
            done => done,
            now => state.clock.now_ms(),
            panel => panel.as_ref().map(ser),
        },
    )?
    .into_response())
}

async fn queue_fragment(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let filter = queue_filter(&session.user, query.as_deref())?;
    let part = queue_part(&state, &session.user, &filter).await?;
    Ok(render(
        "queue_rows.html",
        context! { user => ser(&session.user), rows => ser(&part.rows) },
    )?
    .into_response())
}

async fn ticket_fragment(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let t = visible_ticket(&state, &session.user, &id).await?;
    let panel = panel(&state, &session, &t).await?;
    Ok(render(
        "panel.html",
        context! { user => ser(&session.user), csrf => session.csrf, panel => ser(&panel) },
    )?
    .into_response())
}

// ---- live ----

/// How often an open event stream checks that its session is still live (logout, expiry,
/// a disabled user) and reloads the user's role and groups.
const STREAM_RECHECK: Duration = Duration::from_secs(15);

/// What an event stream carries between events.
struct Stream {
    state: AppState,
    rx: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::console::feed::Change>>,
    user: ConsoleUser,
    token_hash: String,
    hello: bool,
    closed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    recheck: tokio::time::Interval,
}

impl Stream {
    /// The next event, or `None` when the stream ends (server shutting down, session over).
    async fn next(&mut self) -> Option<Event> {
        if std::mem::take(&mut self.hello) {
            return Some(Event::default().event("hello").data("{}"));
        }
        loop {
            tokio::select! {
                _ = &mut self.closed => return None,
                _ = self.recheck.tick() => {
                    if !self.still_live().await {
                        return None;
                    }
                }
                change = self.rx.recv() => match change {
                    Ok(change) if change.concerns(&self.user) => {
                        let data = serde_json::to_string(&*change).unwrap_or_default();
                        return Some(Event::default().event("ticket").data(data));
                    }
                    Ok(_) => continue,
                    // Fell behind: the page reloads what it shows.
                    Err(RecvError::Lagged(_)) => {
                        return Some(Event::default().event("hello").data("{}"));
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Whether the session is still live; its user's role and groups as they are now.
    async fn still_live(&mut self) -> bool {
        let row =
            match crate::console::store::session(self.state.store.pool(), &self.token_hash).await {
                Ok(Some(row)) => row,
                Ok(None) => return false,
                // The store is unavailable: keep the stream; the next check decides.
                Err(_) => return true,
            };
        let now = self.state.clock.now_ms();
        let limits = &self.state.config.console;
        if now - row.last_seen_at >= limits.idle_timeout_ms
            || now - row.created_at >= limits.session_lifetime_ms
        {
            return false;
        }
        self.user = ConsoleUser::from_parts(
            &row.name,
            &row.role,
            row.servicer_userid.as_deref(),
            &row.groups,
        );
        true
    }
}

async fn events(
    State(state): State<AppState>,
    session: Session,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let mut recheck = tokio::time::interval(STREAM_RECHECK);
    recheck.reset();
    let stream = Stream {
        rx: state.feed.subscribe(),
        closed: Box::pin(state.feed.closed()),
        state,
        user: session.user,
        token_hash: session.token_hash,
        hello: true,
        recheck,
    };
    let events =
        futures_util::stream::unfold(
            stream,
            |mut s| async move { s.next().await.map(|e| (Ok(e), s)) },
        );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

// ---- actions ----

/// A form body as name/value pairs (repeated names kept).
fn form_pairs(body: &Bytes) -> Result<Vec<(String, String)>, WebError> {
    serde_urlencoded::from_bytes(body).map_err(|_| WebError::BadField {
        field: "body",
        message: "expected a form-encoded body".into(),
    })
}

fn form_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The agent acting: their servicer id, or 403.
fn servicer(user: &ConsoleUser) -> Result<&str, WebError> {
    user.servicer_userid.as_deref().ok_or(WebError::Forbidden(
        "only a user with a servicer id can do this",
    ))
}

/// `POST /console/tickets/{id}/reply` (form: text, reply_id?, message_id?, confirm?):
/// checked against the compliance lexicon, then queued for `kf/send_msg`. 422 when a term
/// blocks it, 409 with `"warning"` when the agent must confirm.
async fn reply(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = form_pairs(&body)?;
    let user = &session.user;
    let t = visible_ticket(&state, user, &id).await?;
    let agent = servicer(user)?;
    let text = field(
        form_value(&pairs, "text").map(str::to_string),
        "text",
        MAX_REPLY_BYTES,
    )?;
    if text.len() > MAX_REPLY_BYTES {
        return Err(WebError::BadField {
            field: "text",
            message: format!("WeCom takes at most {MAX_REPLY_BYTES} bytes of text"),
        });
    }
    let confirmed = form_value(&pairs, "confirm") == Some("1");
    match compliance::check(&text, &state.config.console.compliance_warn) {
        Verdict::Clean => {}
        Verdict::Block(flags) => {
            let f = &flags[0];
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": "blocked",
                    "message": format!("Not sent: \u{201c}{}\u{201d} is {} ({}).", f.term, f.category_name, f.category),
                    "flags": flags,
                })),
            )
                .into_response());
        }
        Verdict::Warn(flags) if !confirmed => {
            let f = &flags[0];
            return Ok((
                StatusCode::CONFLICT,
                Json(json!({
                    "error": "warning",
                    "message": format!("\u{201c}{}\u{201d} is {} ({}). Send anyway?", f.term, f.category_name, f.category),
                    "flags": flags,
                })),
            )
                .into_response());
        }
        Verdict::Warn(_) => {}
    }
    let Some(kf) = &state.kf else {
        return Err(WebError::Conflict {
            message: "replies need WeCom Customer Service ([wecom] secret)".into(),
            status: None,
        });
    };
    if state.tickets.settings().agents_reply_in != ReplyMode::Console {
        return Err(WebError::Conflict {
            message: "agents answer in the WeCom app (agents_reply_in = \"wecom\")".into(),
            status: None,
        });
    }
    // The suggestion it came from, and whether the agent changed it.
    let classifier = state.classifier.current();
    let used = form_value(&pairs, "reply_id")
        .and_then(|r| classifier.library().get(r))
        .and_then(|r| {
            let rendered =
                classifier
                    .library()
                    .render(r, Some(&t.tier), t.customer_name.as_deref());
            // Rewritten beyond recognition, it is the agent's own answer.
            suggest::used_as(&rendered, &text).map(|edited| (r.id.clone(), edited))
        });
    let may = |t: &Ticket| may_see(user, t);
    let out = kf
        .reply_to_ticket(
            &id,
            agent,
            &text,
            used.as_ref().map(|(r, _)| r.as_str()),
            &may,
        )
        .await
        .map_err(kf_error)?;
    if let Some(message_id) = form_value(&pairs, "message_id") {
        let Ok(mut conn) = state.store.pool().acquire().await else {
            tracing::warn!(ticket = %id, "suggestion outcome not recorded: no connection");
            return Ok(Json(json!({"sent": true, "quota_left": out.quota_left})).into_response());
        };
        // The reply is on its way: a failure to record the outcome must not look like a
        // failed send (the agent would send it again).
        if let Err(e) = suggest::decide(
            &mut conn,
            &id,
            message_id,
            used.as_ref().map(|(r, edited)| (r.as_str(), *edited)),
            &user.name,
            state.clock.now_ms(),
        )
        .await
        {
            tracing::warn!(error = %e, ticket = %id, "suggestion outcome not recorded");
        }
    }
    Ok(Json(json!({"sent": true, "quota_left": out.quota_left})).into_response())
}

/// `POST /console/tickets/{id}/dismiss` (form: message_id, reply_id).
async fn dismiss(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs = form_pairs(&body)?;
    visible_ticket(&state, &session.user, &id).await?;
    let (Some(message_id), Some(reply_id)) = (
        form_value(&pairs, "message_id"),
        form_value(&pairs, "reply_id"),
    ) else {
        return Err(WebError::BadField {
            field: "reply_id",
            message: "message_id and reply_id are required".into(),
        });
    };
    let mut conn = state
        .store
        .pool()
        .acquire()
        .await
        .map_err(WebError::store)?;
    let done = suggest::dismiss(
        &mut conn,
        &id,
        message_id,
        reply_id,
        &session.user.name,
        state.clock.now_ms(),
    )
    .await
    .map_err(WebError::store)?;
    Ok(Json(json!({"dismissed": done})).into_response())
}

/// `POST /console/tickets/{id}/resolve`.
async fn resolve(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let user = &session.user;
    visible_ticket(&state, user, &id).await?;
    let actor = user
        .servicer_userid
        .clone()
        .unwrap_or_else(|| user.name.clone());
    let t = match &state.kf {
        Some(kf) => {
            let may = |t: &Ticket| may_see(user, t);
            kf.resolve_ticket(&id, &actor, &may)
                .await
                .map_err(kf_error)?
        }
        None => plain(&state, &id, Action::Resolve, &actor, None).await?,
    };
    Ok(Json(json!({"status": t.status().as_str()})).into_response())
}

/// `POST /console/bulk` (supervisors; form: `ticket` repeated, `action` = assign |
/// escalate | close, `agent` for assign, `back` = the queue's query string): each ticket in
/// turn; the page comes back with what was done and what was refused.
async fn bulk(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, WebError> {
    if !session.user.is_supervisor() {
        return Err(WebError::Forbidden("supervisors only"));
    }
    let pairs = form_pairs(&body)?;
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "ticket")
        .map(|(_, v)| v.as_str())
        .collect();
    if ids.is_empty() || ids.len() > 500 {
        return Err(WebError::BadField {
            field: "ticket",
            message: "choose 1 to 500 tickets".into(),
        });
    }
    let action = form_value(&pairs, "action").unwrap_or("");
    let actor = format!("supervisor:{}", session.user.name);
    let agent = match action {
        "assign" => {
            let id = form_value(&pairs, "agent").unwrap_or("");
            let agents = all_agents(state.store.pool()).await?;
            if !agents.iter().any(|a| a.servicer_userid == id && a.active) {
                return Err(WebError::BadField {
                    field: "agent",
                    message: format!("no agent {id:?}"),
                });
            }
            Some(id.to_string())
        }
        "escalate" | "close" => None,
        other => {
            return Err(WebError::BadField {
                field: "action",
                message: format!("unknown action {other:?}; assign, escalate or close"),
            })
        }
    };
    let mut done = 0;
    let mut refused = Vec::new();
    for id in ids {
        let result = match action {
            "assign" => {
                let agent = agent.as_deref().unwrap_or_default();
                match &state.kf {
                    Some(kf) => kf.assign_ticket(id, agent, &actor).await.map_err(kf_error),
                    None => plain(&state, id, Action::Assign, &actor, Some(agent)).await,
                }
            }
            "escalate" => escalate(&state, id, &actor).await,
            _ => match &state.kf {
                Some(kf) => kf
                    .act_on_ticket(id, Action::Close, &actor)
                    .await
                    .map_err(kf_error),
                None => plain(&state, id, Action::Close, &actor, None).await,
            },
        };
        match result {
            Ok(_) => done += 1,
            Err(e) => refused.push(format!("{id}: {}", refusal(&e))),
        }
    }
    // Back to the queue as it was filtered (the filter's own fields only, so the address
    // stays on this page and the previous result is not carried along).
    let back: Vec<(String, String)> = form_value(&pairs, "back")
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| {
            [
                "status", "group", "priority", "tier", "assignee", "breached",
            ]
            .contains(&k.as_str())
        })
        .collect();
    tracing::info!(user = %session.user.name, action, done, refused = refused.len(), "console bulk action");
    let mut note = format!("{action}: {done} done");
    if !refused.is_empty() {
        const LISTED: usize = 5;
        let mut listed = refused[..refused.len().min(LISTED)].join("; ");
        if refused.len() > LISTED {
            listed.push_str(&format!("; and {} more", refused.len() - LISTED));
        }
        note.push_str(&format!(", {} refused ({listed})", refused.len()));
    }
    let mut back = back;
    back.push(("done".into(), note));
    let q = serde_urlencoded::to_string(&back).unwrap_or_default();
    Ok(Redirect::to(&format!("/console/?{q}")).into_response())
}

fn refusal(e: &WebError) -> String {
    match e {
        WebError::NotFound(m) => m.clone(),
        WebError::Conflict { message, .. } => message.clone(),
        WebError::BadField { message, .. } => message.clone(),
        other => other.reason().to_string(),
    }
}

async fn escalate(state: &AppState, id: &str, actor: &str) -> Result<Ticket, WebError> {
    match &state.kf {
        Some(kf) => {
            let (mut tx, t) = kf.ticket_tx_for(id).await.map_err(kf_error)?;
            let t = state
                .tickets
                .escalate(&mut tx, &t, actor)
                .await
                .map_err(ticket_error)?;
            tx.commit().await.map_err(WebError::store)?;
            kf.tickets_changed();
            Ok(t)
        }
        None => {
            let (mut tx, t) = plain_tx(state, id).await?;
            let t = state
                .tickets
                .escalate(&mut tx, &t, actor)
                .await
                .map_err(ticket_error)?;
            tx.commit().await.map_err(WebError::store)?;
            Ok(t)
        }
    }
}
