//! The tickets JSON API (bearer `admin_token`): queues, one ticket with its messages and
//! history, lifecycle actions, replies, agents. The console reads the same contract.
//!
//! Unknown id: 404. A move the lifecycle forbids: 409 naming the current status. A bad
//! field: 422 naming it. Nothing changes on any of them.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Admin;
use super::{AppState, WebError};
use crate::channel::kf::KfError;
use crate::crm::CustomerTier;
use crate::taxonomy;
use crate::tickets::routing::Agent;
use crate::tickets::store::{self as ticket_store, Filter};
use crate::tickets::{Action, Priority, Ticket, TicketError, TicketStatus, GENERAL_GROUP};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tickets", get(list))
        .route("/api/tickets/{id}", get(show))
        .route("/api/tickets/{id}/{action}", post(act))
        .route("/api/agents", get(agents).post(save_agent))
        .route("/api/customers/{id}", get(customer))
}

/// `GET /api/customers/{id}` (external_userid, openid or unionid): the customer card (tags,
/// purchase history, RFM, tier and its reasons) and their tickets, newest first.
async fn customer(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let pool = state.store.pool();
    let card = crate::crm::customer_card(
        &state.store,
        &state.config.tiers,
        state.clock.now_ms(),
        &crate::crm::CustomerKey::Any(id.clone()),
    )
    .await
    .map_err(WebError::store)?;
    let filter = Filter {
        external_userid: Some(id.clone()),
        limit: 100,
        ..Filter::default()
    };
    let mut tickets = ticket_store::list(pool, &filter)
        .await
        .map_err(WebError::store)?;
    tickets.sort_by_key(|t| std::cmp::Reverse(t.opened_at));
    let mut body = match card {
        Some(card) => json!(card),
        None if tickets.is_empty() => return Err(WebError::NotFound(format!("no customer {id}"))),
        // Known only from their tickets: no profile or purchase history yet.
        None => json!({"external_userid": id, "tier": "new", "reasons": ["no orders on record"]}),
    };
    body["tickets"] = tickets.iter().map(ticket_json).collect();
    Ok(Json(body).into_response())
}

/// An instant as RFC 3339 (UTC).
fn rfc3339(ms: Option<i64>) -> Value {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or(Value::Null, |t| json!(t.to_string()))
}

fn ticket_json(t: &Ticket) -> Value {
    json!({
        "id": t.id,
        "channel": t.channel,
        "account": t.account,
        "external_userid": t.external_userid,
        "customer_name": t.customer_name,
        "intent": t.intent,
        "reason": t.reason,
        "priority": t.priority(),
        "tier": t.tier,
        "tier_reasons": t.tier_reasons(),
        "status": t.status(),
        "group": t.grp,
        "assignee": t.assignee,
        "opened_at": rfc3339(Some(t.opened_at)),
        "assigned_at": rfc3339(t.assigned_at),
        "first_response_due": rfc3339(t.first_response_due),
        "next_response_due": rfc3339(t.next_response_due),
        "resolution_due": rfc3339(Some(t.resolution_due)),
        "first_response_at": rfc3339(t.first_response_at),
        "paused": t.paused_at.is_some(),
        "resolved_at": rfc3339(t.resolved_at),
        "closed_at": rfc3339(t.closed_at),
        "last_message": t.last_message,
        "csat": t.csat,
    })
}

/// Every agent, as routing sees them.
pub(super) async fn all_agents<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
) -> Result<Vec<Agent>, WebError> {
    Ok(ticket_store::agents(db)
        .await
        .map_err(WebError::store)?
        .into_iter()
        .map(Agent::from)
        .collect())
}

/// The ticket, or 404.
pub(super) async fn ticket_or_404<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
) -> Result<Ticket, WebError> {
    ticket_store::get(db, id)
        .await
        .map_err(WebError::store)?
        .ok_or_else(|| WebError::NotFound(format!("no ticket {id}")))
}

pub(super) fn ticket_error(e: TicketError) -> WebError {
    match e {
        TicketError::NotFound(id) => WebError::NotFound(format!("no ticket {id}")),
        e @ TicketError::Forbidden { status, .. } => WebError::Conflict {
            message: e.to_string(),
            status: Some(status.to_string()),
        },
        TicketError::Conflict(message) => WebError::Conflict {
            message,
            status: None,
        },
        e @ TicketError::Stale => WebError::Conflict {
            message: e.to_string(),
            status: None,
        },
        TicketError::Db(e) => WebError::store(e),
    }
}

pub(super) fn kf_error(e: KfError) -> WebError {
    match e {
        KfError::Ticket(e) => ticket_error(e),
        KfError::Db(e) => WebError::store(e),
        KfError::Api(e) => {
            tracing::error!(error = %e, "tickets API: WeCom call failed");
            WebError::Internal("WeCom could not be reached")
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ListQuery {
    pub status: Option<String>,
    pub group: Option<String>,
    pub priority: Option<String>,
    pub tier: Option<String>,
    pub assignee: Option<String>,
    pub breached: Option<String>,
    pub customer: Option<String>,
    pub limit: Option<i64>,
}

impl ListQuery {
    /// The store filter this query asks for; 422 naming a field that is not known.
    pub(super) fn filter(self) -> Result<Filter, WebError> {
        let bad = |field: &'static str, v: &str| WebError::BadField {
            field,
            message: format!("unknown {field} {v:?}"),
        };
        let empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let status = empty(self.status);
        if let Some(s) = &status {
            TicketStatus::parse(s).ok_or_else(|| bad("status", s))?;
        }
        let group = empty(self.group);
        if let Some(g) = &group {
            if !known_group(g) {
                return Err(bad("group", g));
            }
        }
        let priority = match empty(self.priority) {
            Some(p) => Some(
                Priority::parse(&p)
                    .ok_or_else(|| bad("priority", &p))?
                    .rank(),
            ),
            None => None,
        };
        let tier = empty(self.tier);
        if let Some(t) = &tier {
            CustomerTier::parse(t).ok_or_else(|| bad("tier", t))?;
        }
        let breached = match empty(self.breached).as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(v) => return Err(bad("breached", v)),
        };
        let limit = self.limit.unwrap_or(200);
        if !(1..=1000).contains(&limit) {
            return Err(WebError::BadField {
                field: "limit",
                message: "must be between 1 and 1000".into(),
            });
        }
        Ok(Filter {
            status,
            group,
            priority,
            tier,
            assignee: empty(self.assignee),
            breached,
            external_userid: empty(self.customer),
            limit,
            newest_first: false,
        })
    }
}

fn known_group(g: &str) -> bool {
    g == GENERAL_GROUP || taxonomy::all().iter().any(|i| i.group == g)
}

/// `GET /api/tickets?status=&group=&priority=&tier=&assignee=&breached=&customer=&limit=`:
/// most urgent first (priority, then due time).
async fn list(
    _: Admin,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let Query(q) = query.map_err(|_| WebError::BadField {
        field: "query",
        message: "the query string is not form-encoded".into(),
    })?;
    let filter = q.filter()?;
    let tickets = ticket_store::list(state.store.pool(), &filter)
        .await
        .map_err(WebError::store)?;
    let tickets: Vec<Value> = tickets.iter().map(ticket_json).collect();
    Ok(Json(json!({ "tickets": tickets })).into_response())
}

/// `GET /api/tickets/{id}`: the ticket with its messages, suggested replies for the latest
/// shopper message, SLA marks and history.
async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let pool = state.store.pool();
    let t = ticket_or_404(pool, &id).await?;
    let messages = ticket_store::messages(pool, &id)
        .await
        .map_err(WebError::store)?;
    let events = ticket_store::events(pool, &id)
        .await
        .map_err(WebError::store)?;
    let marks = ticket_store::marks(pool, &id)
        .await
        .map_err(WebError::store)?;
    let latest = messages.iter().rev().find(|m| m.author == "customer");
    let suggestions = latest
        .map(|m| state.classifier.current().classify(&m.content).suggestions)
        .unwrap_or_default();
    let mut body = ticket_json(&t);
    body["messages"] = messages
        .iter()
        .map(|m| {
            json!({"author": m.author, "agent": m.agent, "content": m.content, "intent": m.intent,
                   "confidence": m.confidence, "at": rfc3339(Some(m.at))})
        })
        .collect();
    body["suggestions"] = json!(suggestions);
    body["sla_marks"] = marks
        .iter()
        .map(|(target, kind)| json!({"target": target, "kind": kind}))
        .collect();
    body["history"] = events
        .iter()
        .map(|e| {
            json!({"at": rfc3339(Some(e.at)), "actor": e.actor, "kind": e.kind,
                   "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(body).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ActionBody {
    /// Who acts (an agent id); "admin" when absent.
    actor: Option<String>,
    /// `assign`: the agent.
    agent: Option<String>,
    /// `assign`: give the ticket to an agent who is off duty or at capacity all the same.
    force: bool,
    /// `note`, `reply`: the text.
    text: Option<String>,
}

pub(super) fn field(v: Option<String>, name: &'static str, max: usize) -> Result<String, WebError> {
    match v.map(|s| s.trim().to_string()) {
        Some(s) if !s.is_empty() && s.chars().count() <= max => Ok(s),
        Some(s) if !s.is_empty() => Err(WebError::BadField {
            field: name,
            message: format!("{name} is longer than {max} characters"),
        }),
        _ => Err(WebError::BadField {
            field: name,
            message: format!("{name} is required"),
        }),
    }
}

/// WeCom takes at most 2048 bytes of text in one message.
pub(super) const MAX_REPLY_BYTES: usize = 2048;

/// `POST /api/tickets/{id}/{assign|resolve|close|reopen|pending|note|reply}`.
async fn act(
    _: Admin,
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: Result<Option<Json<ActionBody>>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, WebError> {
    let body = body
        .map_err(|e| WebError::BadField {
            field: "body",
            message: format!("expected a JSON object: {}", e.body_text()),
        })?
        .map(|Json(b)| b)
        .unwrap_or_default();
    let actor = match body.actor {
        Some(a) => field(Some(a), "actor", 64)?,
        None => "admin".to_string(),
    };
    let pool = state.store.pool();
    // An unknown ticket is 404 whatever else is wrong with the request.
    let current = ticket_or_404(pool, &id).await?;
    let kf = state.kf.as_ref();
    let action = match action.as_str() {
        "assign" => {
            let agent_id = field(body.agent, "agent", 64)?;
            let agents = all_agents(pool).await?;
            let Some(agent) = agents
                .iter()
                .find(|a| a.servicer_userid == agent_id && a.active)
            else {
                return Err(WebError::BadField {
                    field: "agent",
                    message: format!("no agent {agent_id:?}"),
                });
            };
            if !body.force && current.assignee.as_deref() != Some(agent_id.as_str()) {
                let mut conn = pool.acquire().await.map_err(WebError::store)?;
                let load = ticket_store::loads(&mut conn)
                    .await
                    .map_err(WebError::store)?
                    .into_iter()
                    .find(|(a, _)| *a == agent_id)
                    .map_or(0, |(_, n)| n);
                if !agent.on_duty || load >= agent.capacity {
                    return Err(WebError::Conflict {
                        message: format!(
                            "{agent_id} is {}; send \"force\": true to assign all the same",
                            if agent.on_duty {
                                "at capacity"
                            } else {
                                "off duty"
                            }
                        ),
                        status: None,
                    });
                }
            }
            let t = match kf {
                Some(kf) => kf
                    .assign_ticket(&id, &agent_id, &actor)
                    .await
                    .map_err(kf_error)?,
                None => plain(&state, &id, Action::Assign, &actor, Some(&agent_id)).await?,
            };
            return Ok(Json(ticket_json(&t)).into_response());
        }
        "resolve" => {
            let t = match kf {
                Some(kf) => kf
                    .resolve_ticket(&id, &actor, &|_| true)
                    .await
                    .map_err(kf_error)?,
                None => plain(&state, &id, Action::Resolve, &actor, None).await?,
            };
            return Ok(Json(ticket_json(&t)).into_response());
        }
        "reply" => {
            let text = field(body.text, "text", MAX_REPLY_BYTES)?;
            if text.len() > MAX_REPLY_BYTES {
                return Err(WebError::BadField {
                    field: "text",
                    message: format!("WeCom takes at most {MAX_REPLY_BYTES} bytes of text"),
                });
            }
            if !all_agents(pool)
                .await?
                .iter()
                .any(|a| a.servicer_userid == actor && a.active)
            {
                return Err(WebError::BadField {
                    field: "actor",
                    message: format!("a reply is sent by an agent; no agent {actor:?}"),
                });
            }
            let Some(kf) = kf else {
                return Err(WebError::Conflict {
                    message: "replies need WeCom Customer Service ([wecom] secret)".into(),
                    status: None,
                });
            };
            if state.tickets.settings().agents_reply_in != crate::tickets::ReplyMode::Console {
                return Err(WebError::Conflict {
                    message: "agents answer in the WeCom app (agents_reply_in = \"wecom\")".into(),
                    status: None,
                });
            }
            let out = kf
                .reply_to_ticket(&id, &actor, &text, None, &|_| true)
                .await
                .map_err(kf_error)?;
            return Ok(Json(json!(out)).into_response());
        }
        "note" => {
            let text = field(body.text, "text", 4000)?;
            let mut tx = pool.begin().await.map_err(WebError::store)?;
            ticket_store::take_routing_turn(&mut tx)
                .await
                .map_err(WebError::store)?;
            state
                .tickets
                .note(&mut tx, &current, &actor, &text)
                .await
                .map_err(ticket_error)?;
            tx.commit().await.map_err(WebError::store)?;
            return Ok(Json(ticket_json(&current)).into_response());
        }
        "close" => Action::Close,
        "reopen" => Action::Reopen,
        "pending" => Action::WaitForCustomer,
        other => return Err(WebError::NotFound(format!("no ticket action {other:?}"))),
    };
    let t = match kf {
        Some(kf) => kf
            .act_on_ticket(&id, action, &actor)
            .await
            .map_err(kf_error)?,
        None => plain(&state, &id, action, &actor, None).await?,
    };
    Ok(Json(ticket_json(&t)).into_response())
}

/// A lifecycle action without WeCom (no `[wecom] secret`), in its own transaction (routing
/// turn first).
/// A ticket change's transaction without WeCom: the routing turn first, then the ticket.
pub(super) async fn plain_tx(
    state: &AppState,
    id: &str,
) -> Result<(sqlx::Transaction<'static, sqlx::Any>, Ticket), WebError> {
    let mut tx = state.store.pool().begin().await.map_err(WebError::store)?;
    ticket_store::take_routing_turn(&mut tx)
        .await
        .map_err(WebError::store)?;
    let t = ticket_or_404(&mut *tx, id).await?;
    Ok((tx, t))
}

pub(super) async fn plain(
    state: &AppState,
    id: &str,
    action: Action,
    actor: &str,
    agent: Option<&str>,
) -> Result<Ticket, WebError> {
    let (mut tx, t) = plain_tx(state, id).await?;
    let t = state
        .tickets
        .act(&mut tx, &t, action, actor, agent)
        .await
        .map_err(ticket_error)?;
    tx.commit().await.map_err(WebError::store)?;
    Ok(t)
}

/// `GET /api/agents`: every agent with their load.
async fn agents(_: Admin, State(state): State<AppState>) -> Result<Response, WebError> {
    let pool = state.store.pool();
    let rows = all_agents(pool).await?;
    let mut conn = pool.acquire().await.map_err(WebError::store)?;
    let loads: std::collections::HashMap<String, i64> = ticket_store::loads(&mut conn)
        .await
        .map_err(WebError::store)?
        .into_iter()
        .collect();
    let agents: Vec<Value> = rows
        .into_iter()
        .map(|a| {
            let mut v = json!(a);
            v["load"] = json!(loads.get(&a.servicer_userid).copied().unwrap_or(0));
            v
        })
        .collect();
    Ok(Json(json!({ "agents": agents })).into_response())
}

#[derive(Debug, Deserialize)]
struct AgentBody {
    servicer_userid: Option<String>,
    name: Option<String>,
    groups: Option<Vec<String>>,
    capacity: Option<i64>,
    senior: Option<bool>,
    on_duty: Option<bool>,
    active: Option<bool>,
}

/// `POST /api/agents`: add an agent or change one; routing runs again.
async fn save_agent(
    _: Admin,
    State(state): State<AppState>,
    body: Result<Json<AgentBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, WebError> {
    let Json(b) = body.map_err(|e| WebError::BadField {
        field: "body",
        message: format!("expected a JSON agent: {}", e.body_text()),
    })?;
    let id = field(b.servicer_userid, "servicer_userid", 64)?;
    // Fields left out keep their current values; a new agent gets the defaults.
    let existing = all_agents(state.store.pool())
        .await?
        .into_iter()
        .find(|a| a.servicer_userid == id);
    let groups = match (b.groups, &existing) {
        (Some(g), _) => g,
        (None, Some(e)) => e.groups.clone(),
        (None, None) => Vec::new(),
    };
    if let Some(g) = groups
        .iter()
        .find(|g| !known_group(g) || *g == GENERAL_GROUP)
    {
        return Err(WebError::BadField {
            field: "groups",
            message: format!("unknown skill group {g:?}"),
        });
    }
    let capacity = b
        .capacity
        .or(existing.as_ref().map(|e| e.capacity))
        .unwrap_or(5);
    if !(1..=100).contains(&capacity) {
        return Err(WebError::BadField {
            field: "capacity",
            message: "must be between 1 and 100".into(),
        });
    }
    let set_duty = b.on_duty.is_some() || existing.is_none();
    let agent = Agent {
        name: b
            .name
            .filter(|n| !n.trim().is_empty())
            .or(existing.as_ref().map(|e| e.name.clone()))
            .unwrap_or_else(|| id.clone()),
        servicer_userid: id,
        groups,
        capacity,
        senior: b
            .senior
            .or(existing.as_ref().map(|e| e.senior))
            .unwrap_or(false),
        on_duty: b
            .on_duty
            .or(existing.as_ref().map(|e| e.on_duty))
            .unwrap_or(true),
        active: b
            .active
            .or(existing.as_ref().map(|e| e.active))
            .unwrap_or(true),
        last_assigned_at: existing.as_ref().and_then(|e| e.last_assigned_at),
    };
    match &state.kf {
        Some(kf) => kf.save_agent(&agent, set_duty).await.map_err(kf_error)?,
        None => {
            let mut tx = state.store.pool().begin().await.map_err(WebError::store)?;
            ticket_store::take_routing_turn(&mut tx)
                .await
                .map_err(WebError::store)?;
            ticket_store::upsert_agent(&mut tx, &agent.to_row(state.clock.now_ms()), set_duty)
                .await
                .map_err(WebError::store)?;
            tx.commit().await.map_err(WebError::store)?;
        }
    }
    Ok(Json(json!(agent)).into_response())
}
