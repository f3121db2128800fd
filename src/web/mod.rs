//! HTTP surface: the whole router is built here, from per-concern modules, around one
//! shared [`AppState`].

mod api;
mod callback;
mod error;
mod ops;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::channel::Intake;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::MsgCrypt;
use crate::intent::SharedClassifier;
use crate::metrics::{Metrics, RouteLabel, RouteOutcome};
use crate::store::Store;

pub use error::Reject;

/// Everything a handler may need, behind one `Arc`: axum clones the state for every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    /// The intent classifier over the reply library, swapped on reload.
    pub classifier: Arc<SharedClassifier>,
    pub intake: Intake,
    /// The WeCom Customer Service loop, when `[wecom] secret` is set.
    pub kf: Option<Arc<crate::channel::kf::KfService>>,
    /// WeCom callback crypto (CorpID as receive id), when `[wecom]` is configured.
    pub wecom: Option<Arc<MsgCrypt>>,
    /// Official Account: its token for plain signatures, and crypto for safe mode.
    pub mp: Option<Arc<MpChannel>>,
}

pub struct MpChannel {
    pub token: String,
    pub crypt: Option<MsgCrypt>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        clock: SharedClock,
        classifier: Arc<SharedClassifier>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let kf = config.wecom.as_ref().and_then(|w| {
            let secret = w.secret.as_deref()?;
            let client = crate::wecom::api::WecomClient::new(
                &w.api_base,
                &w.corp_id,
                secret,
                Some(store.clone()),
                metrics.clone(),
                clock.clone(),
                crate::wecom::api::RetryPolicy::default(),
            );
            Some(crate::channel::kf::KfService::new(
                store.clone(),
                Arc::new(client),
                classifier.clone(),
                clock.clone(),
                (&config.callback).into(),
                w.alert_webhook_key.clone(),
            ))
        });
        let mut intake = Intake::new(
            store.clone(),
            metrics.clone(),
            clock.clone(),
            classifier.clone(),
            config.callback.ack_text.clone(),
        );
        if let Some(kf) = &kf {
            intake = intake.with_kf(kf.clone());
        }
        let wecom = config.wecom.as_ref().map(|w| Arc::new(w.crypt()));
        let mp = config.mp.as_ref().map(|m| {
            Arc::new(MpChannel {
                token: m.token.clone(),
                crypt: m.crypt(),
            })
        });
        AppState(Arc::new(Shared {
            config: Arc::new(config),
            store,
            metrics,
            clock,
            classifier,
            intake,
            kf,
            wecom,
            mp,
        }))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/wecom/callback",
            get(callback::wecom_verify)
                .post(callback::wecom_message)
                .fallback(callback::wrong_method),
        )
        .route(
            "/wechat/callback",
            get(callback::mp_verify)
                .post(callback::mp_message)
                .fallback(callback::wrong_method),
        )
        .route("/api/replies/reload", post(api::reload_replies))
        .route("/api/classify", post(api::classify))
        .route("/api/outbox/failed", get(api::failed_outbox))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Count every request by route and outcome and time it.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let resp = next.run(req).await;
    let outcome = match resp.status().as_u16() {
        200..=299 => "ok",
        400..=499 => "rejected",
        _ => "error",
    };
    state
        .metrics
        .latency
        .get_or_create(&RouteLabel {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RouteOutcome {
            route,
            outcome: outcome.to_owned(),
        })
        .inc();
    resp
}
