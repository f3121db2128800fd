//! The agent and supervisor console: server-rendered pages behind a login.
//!
//! `GET /console/login` and `POST /console/login` (form: name, password, csrf),
//! `POST /console/logout`, `GET /console/` (the tickets the user may see),
//! `GET /console/tickets/{id}` (one ticket's messages) and, for supervisors only,
//! `GET /console/agents`. Every state-changing request passes [`auth::guard`] (CSRF token,
//! no cross-site requests); every response carries [`auth::security_headers`]. Templates
//! live in `templates/` at the top of the repository and are compiled into the binary;
//! HTML is autoescaped.

pub mod auth;
pub mod dashboard;

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use minijinja::{context, Environment, Value};
use serde::{Deserialize, Serialize};

use self::auth::{
    count_login_failure, equal_tokens, set_cookie, ClientAddr, Session, Supervisor, LOGIN_COOKIE,
    LOGIN_PATH, SESSION_COOKIE,
};
use super::{AppState, WebError};
use crate::console::{self, store as console_store, ConsoleUser};
use crate::tickets::routing::Agent;
use crate::tickets::store::{self as ticket_store, Filter};
use crate::tickets::{Ticket, TicketStatus};

pub use crate::console::may_see;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(queue))
        .route(LOGIN_PATH, get(login_page).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route("/console/tickets/{id}", get(ticket_page))
        .route("/console/agents", get(agents_page))
        .route("/console/static/console.css", get(stylesheet))
        .merge(dashboard::routes())
        .layer(middleware::from_fn_with_state(state, auth::guard))
        .layer(middleware::map_response(auth::security_headers))
}

// ---- templates ----

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` names turn HTML autoescaping on (minijinja's default callback).
        for (name, source) in [
            ("base.html", include_str!("../../../templates/base.html")),
            ("login.html", include_str!("../../../templates/login.html")),
            ("queue.html", include_str!("../../../templates/queue.html")),
            (
                "ticket.html",
                include_str!("../../../templates/ticket.html"),
            ),
            (
                "agents.html",
                include_str!("../../../templates/agents.html"),
            ),
            (
                "dashboard.html",
                include_str!("../../../templates/dashboard.html"),
            ),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "console template does not compile");
            }
        }
        env
    })
}

fn render(name: &str, ctx: Value) -> Result<Html<String>, WebError> {
    templates()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map(Html)
        .map_err(|e| {
            tracing::error!(template = name, error = %e, "console template failed");
            WebError::Internal("the page could not be rendered")
        })
}

fn ser<T: Serialize>(v: &T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../templates/console.css"),
    )
}

// ---- login and logout ----

/// The login page, with a fresh login-form token in a cookie of its own (double submit).
/// Already logged in: on to the tickets.
async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if auth::load_session(&state, &headers).await?.is_some() {
        return Ok(Redirect::to("/console/").into_response());
    }
    login_form(&state, StatusCode::OK, None, "", None)
}

fn login_form(
    state: &AppState,
    status: StatusCode,
    error: Option<String>,
    name: &str,
    retry_after: Option<i64>,
) -> Result<Response, WebError> {
    let token = console::new_token();
    let page = render(
        "login.html",
        context! { csrf => token.clone(), error => error, name => name },
    )?;
    let mut resp = (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(state, LOGIN_COOKIE, &token, LOGIN_PATH, Some(3600)),
        )],
        page,
    )
        .into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    Ok(resp)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    name: String,
    password: String,
    csrf: String,
}

/// The one message for a wrong name, a wrong password and a disabled account.
const BAD_LOGIN: &str = "Wrong name or password.";

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, WebError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let name = form.name.trim().to_string();
    let shown_name = if console::valid_name(&name) {
        name.as_str()
    } else {
        ""
    };
    let login_token = auth::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !equal_tokens(&login_token, &form.csrf) {
        count_login_failure(&state, "bad_csrf");
        return login_form(
            &state,
            StatusCode::FORBIDDEN,
            Some("The login form expired. Please try again.".into()),
            shown_name,
            None,
        );
    }
    let now = state.clock.now_ms();
    let limits = &state.config.console;
    let account_key = format!("account:{}", name.to_lowercase());
    let address_key = addr.map(|a| format!("address:{a}"));
    let blocked = [
        state
            .login_limiter
            .blocked_for(&account_key, limits.login_failures_per_account, now),
        address_key.as_deref().and_then(|k| {
            state
                .login_limiter
                .blocked_for(k, limits.login_failures_per_address, now)
        }),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(secs) = blocked {
        count_login_failure(&state, "rate_limited");
        let minutes = (secs + 59) / 60;
        return login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!(
                "Too many failed logins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
            shown_name,
            Some(secs),
        );
    }
    let user = if console::valid_name(&name) {
        console_store::user(state.store.pool(), &name)
            .await
            .map_err(WebError::store)?
    } else {
        None
    };
    // Argon2 runs whether or not the user exists, so both failures take as long.
    let password_ok = console::verify_password(
        user.as_ref().map(|u| u.password_hash.clone()),
        form.password,
    )
    .await;
    let failure = match &user {
        None => Some("unknown_user"),
        Some(_) if !password_ok => Some("bad_password"),
        Some(u) if u.disabled_at.is_some() => Some("disabled"),
        Some(_) => None,
    };
    let Some(user) = user.filter(|_| failure.is_none()) else {
        let reason = failure.unwrap_or("unknown_user");
        count_login_failure(&state, reason);
        state.login_limiter.record_failure(&account_key, now);
        if let Some(k) = &address_key {
            state.login_limiter.record_failure(k, now);
        }
        tracing::info!(reason, "console login refused");
        return login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some(BAD_LOGIN.into()),
            shown_name,
            None,
        );
    };
    state.login_limiter.clear(&account_key);
    // A new token at every login: a token planted before login opens nothing.
    let token = console::new_token();
    let csrf = console::new_token();
    let pool = state.store.pool();
    let mut conn = pool.acquire().await.map_err(WebError::store)?;
    console_store::delete_expired(
        &mut *conn,
        now - limits.idle_timeout_ms,
        now - limits.session_lifetime_ms,
    )
    .await
    .map_err(WebError::store)?;
    console_store::insert_session(
        &mut conn,
        &console::token_hash(&token),
        &user.name,
        &csrf,
        now,
    )
    .await
    .map_err(WebError::store)?;
    tracing::info!(user = %user.name, "console login");
    let mut resp = Redirect::to("/console/").into_response();
    let h = resp.headers_mut();
    for cookie in [
        set_cookie(&state, SESSION_COOKIE, &token, "/console", None),
        set_cookie(&state, LOGIN_COOKIE, "", LOGIN_PATH, Some(0)),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// End the session (the guard checked its CSRF token) and go back to the login page.
async fn logout(State(state): State<AppState>, session: Session) -> Result<Response, WebError> {
    console_store::delete_session(state.store.pool(), &session.token_hash)
        .await
        .map_err(WebError::store)?;
    let mut resp = Redirect::to(LOGIN_PATH).into_response();
    if let Ok(v) =
        header::HeaderValue::from_str(&set_cookie(&state, SESSION_COOKIE, "", "/console", Some(0)))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

// ---- pages ----

#[derive(Serialize)]
struct TicketView {
    id: String,
    priority: &'static str,
    tier: String,
    tier_reasons: Vec<String>,
    status: &'static str,
    group: String,
    assignee: Option<String>,
    customer_name: Option<String>,
    external_userid: String,
    last_message: Option<String>,
}

impl From<&Ticket> for TicketView {
    fn from(t: &Ticket) -> Self {
        TicketView {
            id: t.id.clone(),
            priority: t.priority().as_str(),
            tier: t.tier.clone(),
            tier_reasons: t.tier_reasons(),
            status: t.status().as_str(),
            group: t.grp.clone(),
            assignee: t.assignee.clone(),
            customer_name: t.customer_name.clone(),
            external_userid: t.external_userid.clone(),
            last_message: t.last_message.clone(),
        }
    }
}

/// How many tickets one query of the queue page reads at most.
const QUEUE_LIMIT: i64 = 500;

/// The open tickets `user` may see, most urgent first.
async fn visible_tickets(state: &AppState, user: &ConsoleUser) -> Result<Vec<Ticket>, WebError> {
    let pool = state.store.pool();
    let mut filters = Vec::new();
    if user.is_supervisor() {
        for s in TicketStatus::ALL.into_iter().filter(|s| s.is_open()) {
            filters.push(Filter {
                status: Some(s.as_str().into()),
                limit: QUEUE_LIMIT,
                ..Filter::default()
            });
        }
    } else {
        if let Some(me) = &user.servicer_userid {
            filters.push(Filter {
                assignee: Some(me.clone()),
                limit: QUEUE_LIMIT,
                ..Filter::default()
            });
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
    let mut seen = HashMap::new();
    for f in &filters {
        for t in ticket_store::list(pool, f).await.map_err(WebError::store)? {
            if t.status().is_open() && may_see(user, &t) {
                seen.entry(t.id.clone()).or_insert(t);
            }
        }
    }
    let mut tickets: Vec<Ticket> = seen.into_values().collect();
    tickets.sort_by_key(|t| {
        (
            t.priority,
            t.first_response_due
                .or(t.next_response_due)
                .unwrap_or(t.resolution_due),
            t.opened_at,
            t.id.clone(),
        )
    });
    Ok(tickets)
}

/// `GET /console/`: the open tickets the user may see.
async fn queue(State(state): State<AppState>, session: Session) -> Result<Response, WebError> {
    let tickets: Vec<TicketView> = visible_tickets(&state, &session.user)
        .await?
        .iter()
        .map(TicketView::from)
        .collect();
    Ok(render(
        "queue.html",
        context! { user => ser(&session.user), csrf => session.csrf, tickets => ser(&tickets) },
    )?
    .into_response())
}

#[derive(Serialize)]
struct MessageView {
    author: String,
    agent: Option<String>,
    content: String,
    at: String,
}

/// `GET /console/tickets/{id}`: one ticket and its messages, if the user may see it.
async fn ticket_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let pool = state.store.pool();
    let t = super::tickets::ticket_or_404(pool, &id).await?;
    if !may_see(&session.user, &t) {
        return Err(WebError::Forbidden(
            "this ticket is neither yours nor in your groups' queue",
        ));
    }
    let messages: Vec<MessageView> = ticket_store::messages(pool, &id)
        .await
        .map_err(WebError::store)?
        .into_iter()
        .map(|m| MessageView {
            author: m.author,
            agent: m.agent,
            content: m.content,
            at: jiff::Timestamp::from_millisecond(m.at)
                .map(|t| t.to_string())
                .unwrap_or_default(),
        })
        .collect();
    Ok(render(
        "ticket.html",
        context! {
            user => ser(&session.user),
            csrf => session.csrf,
            ticket => ser(&TicketView::from(&t)),
            messages => ser(&messages),
        },
    )?
    .into_response())
}

#[derive(Serialize)]
struct AgentView {
    servicer_userid: String,
    name: String,
    groups: Vec<String>,
    on_duty: bool,
    capacity: i64,
    load: i64,
}

/// `GET /console/agents` (supervisors): every active agent with their load.
async fn agents_page(
    State(state): State<AppState>,
    Supervisor(user): Supervisor,
    session: Session,
) -> Result<Response, WebError> {
    let pool = state.store.pool();
    let rows = ticket_store::agents(pool).await.map_err(WebError::store)?;
    let mut conn = pool.acquire().await.map_err(WebError::store)?;
    let loads: HashMap<String, i64> = ticket_store::loads(&mut conn)
        .await
        .map_err(WebError::store)?
        .into_iter()
        .collect();
    let agents: Vec<AgentView> = rows
        .into_iter()
        .map(Agent::from)
        .filter(|a| a.active)
        .map(|a| AgentView {
            load: loads.get(&a.servicer_userid).copied().unwrap_or(0),
            servicer_userid: a.servicer_userid,
            name: a.name,
            groups: a.groups,
            on_duty: a.on_duty,
            capacity: a.capacity,
        })
        .collect();
    Ok(render(
        "agents.html",
        context! { user => ser(&user), csrf => session.csrf, agents => ser(&agents) },
    )?
    .into_response())
}
