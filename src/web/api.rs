//! The JSON API (`/api/...`), behind the bearer `admin_token` (see [`Admin`]).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::Admin;
use super::{AppState, WebError};
use crate::intent::ReloadError;
use crate::library::LibraryError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/replies/reload", post(reload_replies))
        .route("/api/classify", post(classify))
        .route("/api/outbox/failed", get(failed_outbox))
}

/// `POST /api/replies/reload`: re-read `replies/` and swap the classifier in atomically.
/// An invalid library is refused with its diagnostics and the running one stays.
async fn reload_replies(_: Admin, State(state): State<AppState>) -> Result<Response, WebError> {
    let classifier = state.classifier.clone();
    let reloaded = tokio::task::spawn_blocking(move || classifier.reload())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reply library reload panicked");
            WebError::Internal("reload failed")
        })?;
    match reloaded {
        Ok(report) => {
            tracing::info!(
                replies = report.replies,
                build_ms = report.build_ms,
                "reply library reloaded (API)"
            );
            Ok(Json(json!({"status": "reloaded", "report": report})).into_response())
        }
        Err(ReloadError::Library(LibraryError::Invalid(diags))) => Err(WebError::InvalidLibrary(
            diags.iter().map(|d| d.to_string()).collect(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "reply library reload failed");
            Err(WebError::ReloadFailed(e.to_string()))
        }
    }
}

#[derive(Deserialize)]
struct ClassifyRequest {
    text: String,
}

/// `POST /api/classify {"text": …}`: the classifier's verdict, as `kefu classify` prints it.
async fn classify(
    _: Admin,
    State(state): State<AppState>,
    Json(req): Json<ClassifyRequest>,
) -> Response {
    Json(state.classifier.current().classify(&req.text)).into_response()
}

/// `GET /api/outbox/failed`: outgoing messages that could not be sent within the retry
/// budget, newest first, for supervisors to act on.
async fn failed_outbox(_: Admin, State(state): State<AppState>) -> Result<Response, WebError> {
    let rows = crate::store::outbox::failed(state.store.pool(), 200)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "listing failed outbox rows");
            WebError::ApiStoreUnavailable
        })?;
    let failed: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "api": r.api,
                "payload": serde_json::from_str::<serde_json::Value>(&r.payload).unwrap_or_default(),
                "attempts": r.attempts,
                "last_error": r.last_error,
            })
        })
        .collect();
    Ok(Json(json!({ "failed": failed })).into_response())
}
