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
pub mod work;

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::State;
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
use crate::console::{self, store as console_store};
use crate::tickets::routing::Agent;
use crate::tickets::store as ticket_store;

pub use crate::console::may_see;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(LOGIN_PATH, get(login_page).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route("/console/agents", get(agents_page))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .merge(work::routes())
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
            (
                "agents.html",
                include_str!("../../../templates/agents.html"),
            ),
            (
                "workspace.html",
                include_str!("../../../templates/workspace.html"),
            ),
            (
                "queue_rows.html",
                include_str!("../../../templates/queue_rows.html"),
            ),
            ("panel.html", include_str!("../../../templates/panel.html")),
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

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../../templates/console.js"),
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
