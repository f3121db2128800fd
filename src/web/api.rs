//! The JSON API (`/api/...`), behind the bearer `admin_token`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::crypto::signature_matches;
use crate::intent::ReloadError;
use crate::library::LibraryError;

/// A refused API call: a status and a short message, sent as `{"error": …}`.
pub struct ApiError(StatusCode, &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

/// Refuse unless the request carries `Authorization: Bearer <admin_token>`.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.config.admin_token.as_deref() else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "the JSON API is disabled: set admin_token",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if signature_matches(expected, given) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "bad or missing bearer token",
        ))
    }
}

/// `POST /api/replies/reload`: re-read `replies/` and swap the classifier in atomically.
/// An invalid library is refused with its diagnostics and the running one stays.
pub async fn reload_replies(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    let classifier = state.classifier.clone();
    match tokio::task::spawn_blocking(move || classifier.reload()).await {
        Ok(Ok(report)) => {
            tracing::info!(
                replies = report.replies,
                build_ms = report.build_ms,
                "reply library reloaded (API)"
            );
            (
                StatusCode::OK,
                Json(json!({"status": "reloaded", "report": report})),
            )
                .into_response()
        }
        Ok(Err(ReloadError::Library(LibraryError::Invalid(diags)))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "the reply library has problems; the previous library stays in use",
                "problems": diags.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reply library reload failed");
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": e.to_string()})),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "reply library reload panicked");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "reload failed"})),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct ClassifyRequest {
    text: String,
}

/// `POST /api/classify {"text": …}`: the classifier's verdict, as `kefu classify` prints it.
pub async fn classify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<ClassifyRequest>,
) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    Json(state.classifier.current().classify(&req.text)).into_response()
}

/// `GET /api/outbox/failed`: outgoing messages that could not be sent within the retry
/// budget, newest first, for supervisors to act on.
pub async fn failed_outbox(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    match crate::store::outbox::failed(state.store.pool(), 200).await {
        Ok(rows) => Json(json!({"failed": rows.into_iter().map(|r| json!({
            "id": r.id, "api": r.api, "payload": serde_json::from_str::<serde_json::Value>(&r.payload).unwrap_or_default(),
            "attempts": r.attempts, "last_error": r.last_error,
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "listing failed outbox rows");
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}
