//! HTTP surface: each module owns its routes ([`callback`], [`api`], [`ops`]) and they are
//! merged here, around one shared [`AppState`] and one error type, [`WebError`]. The
//! services behind the state are wired in [`crate::server`].

mod api;
mod auth;
mod callback;
pub mod console;
mod error;
mod limits;
mod ops;
mod replay;
mod tickets;

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower::ServiceExt;

use crate::channel::kf::KfService;
use crate::channel::Intake;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::MsgCrypt;
use crate::intent::SharedClassifier;
use crate::metrics::{Metrics, RouteLabel, RouteOutcome};
use crate::store::Store;
use crate::tickets::TicketService;

pub use auth::Admin;
pub use error::WebError;

/// Everything a handler may need, behind one `Arc`: axum clones the state for every request.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The configuration and the services built from it, as [`crate::server::build`] wired them.
pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    /// The intent classifier over the reply library, swapped on reload.
    pub classifier: Arc<SharedClassifier>,
    pub intake: Intake,
    /// The WeCom Customer Service loop, when `[wecom] secret` is set.
    pub kf: Option<Arc<KfService>>,
    /// Tickets, their agents and SLA clocks.
    pub tickets: Arc<TicketService>,
    /// WeCom callback crypto (CorpID as receive id), when `[wecom]` is configured.
    pub wecom_crypt: Option<Arc<MsgCrypt>>,
    /// Official Account: its token for plain signatures, and crypto for safe mode.
    pub mp: Option<Arc<MpChannel>>,
    /// Failed console logins per account and client address, for the login rate limit.
    pub login_limiter: crate::console::LoginLimiter,
    /// Ticket changes for the console's live pages.
    pub feed: crate::console::feed::Feed,
}

/// An Official Account's callback credentials.
pub struct MpChannel {
    pub token: String,
    /// Plaintext mode: each signed query bound to its first body (see [`replay`]).
    pub replays: replay::ReplayGuard,
    /// Set when the account runs in safe mode (an EncodingAESKey is configured).
    pub crypt: Option<MsgCrypt>,
}

/// Every route, counted, timed and held to the request limits of [`limits`] by [`track`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(callback::router())
        .merge(api::router())
        .merge(ops::router())
        .merge(tickets::router())
        .merge(console::router(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// What answers the requests of every connection: the [`router`], and a direct way in for
/// the callbacks' POSTs, the requests that come by the thousand.
///
/// A callback POST goes straight to its handler, within the same limits and counted and
/// timed the same as through the router ([`measure`]); it skips the route lookup, the
/// middleware's boxed services and the client's address, which only the console reads.
/// In the load test that saved 2–4 µs of the 26–48 µs of CPU an image message cost, and
/// 3–10% of the throughput (BENCHMARKS.md).
#[derive(Clone)]
pub struct App {
    state: AppState,
    router: Router,
}

impl App {
    pub fn new(state: AppState) -> App {
        App {
            router: router(state.clone()),
            state,
        }
    }

    /// Answer one request from the client at `peer`.
    pub async fn serve(self, mut req: Request, peer: SocketAddr) -> Response {
        if req.method() == Method::POST {
            if let Some(route) = callback::Post::at(req.uri().path()) {
                let state = &self.state;
                return measure(state, route.path().into(), req, |req| {
                    route.handle(state, req)
                })
                .await;
            }
        }
        req.extensions_mut().insert(ConnectInfo(peer));
        match self.router.oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The router's one middleware: [`measure`] each request under its route.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route: Cow<'static, str> = match req.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str().to_owned().into(),
        None => "unmatched".into(),
    };
    measure(&state, route, req, |req| next.run(req)).await
}

/// Run a request within its time limits ([`limits::limit`]), and count it by route and
/// outcome and time it.
async fn measure<F, Fut>(
    state: &AppState,
    route: Cow<'static, str>,
    req: Request,
    run: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let resp = limits::limit(state, &route, started, req, run).await;
    let outcome = match resp.status().as_u16() {
        200..=299 => "ok",
        400..=499 => "rejected",
        _ => "error",
    };
    let label = RouteLabel { route };
    state
        .metrics
        .latency
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RouteOutcome {
            route: label.route,
            outcome: outcome.into(),
        })
        .inc();
    resp
}
