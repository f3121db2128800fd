//! Who is asking, and may they: the session cookie, the [`ConsoleUser`] and [`Supervisor`]
//! extractors, the CSRF and cross-site checks every state-changing console request passes,
//! and the security headers every console response carries.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::console::{self, store as console_store, ConsoleUser};
use crate::metrics::ReasonLabel;
use crate::web::{AppState, WebError};

pub const SESSION_COOKIE: &str = "kefu_session";
pub const LOGIN_COOKIE: &str = "kefu_login";
pub const LOGIN_PATH: &str = "/console/login";
/// Form bodies the CSRF check reads at most.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A live session: its user and its CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: ConsoleUser,
    pub csrf: String,
    pub token_hash: String,
}

/// The value of cookie `name`, from every `Cookie` header.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure when kefu is served over https.
pub fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<i64>,
) -> String {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(secs) = max_age {
        c.push_str(&format!("; Max-Age={secs}"));
    }
    if secure(state) {
        c.push_str("; Secure");
    }
    c
}

fn secure(state: &AppState) -> bool {
    state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

pub fn equal_tokens(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The session named by the request's cookie, if it is live; an expired one is deleted.
/// Seen again, its idle clock restarts.
pub async fn load_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, WebError> {
    let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let hash = console::token_hash(&token);
    let pool = state.store.pool();
    let Some(row) = console_store::session(pool, &hash)
        .await
        .map_err(WebError::store)?
    else {
        return Ok(None);
    };
    let now = state.clock.now_ms();
    let limits = &state.config.console;
    if now - row.last_seen_at >= limits.idle_timeout_ms
        || now - row.created_at >= limits.session_lifetime_ms
    {
        console_store::delete_session(pool, &hash)
            .await
            .map_err(WebError::store)?;
        return Ok(None);
    }
    // One write a few seconds at most, not one per request.
    if now - row.last_seen_at >= 5_000 {
        console_store::touch_session(pool, &hash, now)
            .await
            .map_err(WebError::store)?;
    }
    Ok(Some(Session {
        user: ConsoleUser::from_parts(
            &row.name,
            &row.role,
            row.servicer_userid.as_deref(),
            &row.groups,
        ),
        csrf: row.csrf_token,
        token_hash: hash,
    }))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        // The guard already loaded it for a state-changing request.
        if let Some(s) = parts.extensions.get::<Session>() {
            return Ok(s.clone());
        }
        load_session(state, &parts.headers)
            .await?
            .ok_or(WebError::LoginRequired)
    }
}

/// Any logged-in console user (agent or supervisor). Without a live session: a redirect to
/// the login page.
impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        Ok(Session::from_request_parts(parts, state).await?.user)
    }
}

/// A logged-in supervisor; an agent gets 403.
#[derive(Debug, Clone)]
pub struct Supervisor(pub ConsoleUser);

impl FromRequestParts<AppState> for Supervisor {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let user = ConsoleUser::from_request_parts(parts, state).await?;
        if user.is_supervisor() {
            Ok(Supervisor(user))
        } else {
            Err(WebError::Forbidden("supervisors only"))
        }
    }
}

/// The client's address, as the connection gives it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Whether a browser says the request comes from another site: `Sec-Fetch-Site` other than
/// same-origin or none, or an `Origin` that is not kefu's own (`public_url`, else the
/// `Host` it was sent to). Clients that send neither header are left to the CSRF token.
pub fn cross_site(state: &AppState, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return true;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return true;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    match &state.config.public_url {
        Some(expected) => origin != *expected,
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_ascii_lowercase);
            match host {
                Some(host) => {
                    origin != format!("http://{host}") && origin != format!("https://{host}")
                }
                None => true,
            }
        }
    }
}

pub fn count_login_failure(state: &AppState, reason: &str) {
    state
        .metrics
        .console_login_failures
        .get_or_create(&ReasonLabel {
            reason: reason.to_owned().into(),
        })
        .inc();
}

/// Every state-changing console request: refused when cross-site; outside the login form
/// (which carries its own token), it needs a live session and that session's CSRF token,
/// in the `X-CSRF-Token` header or the form's `csrf` field.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let is_login = req.uri().path() == LOGIN_PATH;
    if cross_site(&state, req.headers()) {
        if is_login {
            count_login_failure(&state, "cross_site");
        }
        return WebError::CrossSite.into_response();
    }
    if is_login {
        return next.run(req).await;
    }
    let session = match load_session(&state, req.headers()).await {
        Ok(Some(s)) => s,
        Ok(None) => return WebError::LoginRequired.into_response(),
        Err(e) => return e.into_response(),
    };
    let header_token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (mut req, given) = match header_token {
        Some(t) => (req, t),
        None => {
            let is_form = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            if !is_form {
                return WebError::CsrfRejected.into_response();
            }
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
                return WebError::BodyTooLarge.into_response();
            };
            let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                .ok()
                .and_then(|fields| fields.into_iter().find(|(k, _)| k == "csrf"))
                .map(|(_, v)| v)
                .unwrap_or_default();
            (Request::from_parts(parts, Body::from(bytes)), token)
        }
    };
    if !equal_tokens(&session.csrf, &given) {
        return WebError::CsrfRejected.into_response();
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// What every console response carries: no inline script (customer text stays inert even
/// if it ever escaped the templates), no framing, no sniffing, no caching of customer data.
pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
