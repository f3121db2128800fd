//! Every way a request is refused, and the response each becomes.
//!
//! Callback refusals answer a specific 4xx (or 503 when the store is down, so WeCom retries)
//! with a stable snake_case reason as a plain-text body; the callback handlers log and count
//! them under that reason (`kefu_callback_rejects_total`). JSON API refusals answer
//! `{"error": …}`. Internal details (store errors, panics) are logged where they happen and
//! never sent.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::crypto::CryptoError;
use crate::wecom::XmlError;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    // ------------------------------------------------ callbacks: plain-text reason bodies
    /// 400 `missing_param`: a required query parameter is absent or empty.
    MissingParam,
    /// 400 `bad_timestamp`: `timestamp` is not a number.
    BadTimestamp,
    /// 403 `stale_timestamp`: `timestamp` is further from our clock than
    /// `callback.timestamp_tolerance_secs`.
    StaleTimestamp,
    /// 413 `body_too_large`: the body is larger than `callback.max_body_bytes`.
    BodyTooLarge,
    /// 400 `body_not_utf8`: the body is not UTF-8.
    BodyNotUtf8,
    /// 415 `unsupported_content_type`: Content-Type is neither XML nor text.
    UnsupportedContentType,
    /// 405 `method_not_allowed`, with `Allow: GET, POST`: the route exists but not for this
    /// method.
    MethodNotAllowed,
    /// 404 `channel_not_configured`: the channel has no configuration.
    ChannelNotConfigured,
    /// 400 `unsupported_encrypt_type`: an unknown `encrypt_type`, a plaintext request where
    /// the channel requires safe mode, or the reverse.
    EncryptTypeMismatch,
    /// 403 for a wrong signature or receive id, 400 for any other decryption failure; the
    /// reason is [`CryptoError::reason`].
    Crypto(CryptoError),
    /// 400 with [`XmlError::reason`]: the envelope or message does not parse.
    Xml(XmlError),
    /// 403 `replayed`: an Official Account plaintext query already used with another body.
    Replayed,
    /// 503 `store_unavailable`: the store could not record the message. WeCom will retry;
    /// nothing was acknowledged.
    StoreUnavailable,

    // ------------------------------------------------ JSON API: `{"error": …}` bodies
    /// 403 `{"error": "the JSON API is disabled: set admin_token"}`.
    ApiDisabled,
    /// 401 `{"error": "bad or missing bearer token"}`.
    BadBearerToken,
    /// 422 `{"error": …, "problems": […]}`: the reply library on disk is invalid; the running
    /// one stays.
    InvalidLibrary(Vec<String>),
    /// 422 `{"error": <message>}`: the reply library could not be reloaded; the message is
    /// the loader's diagnostic (a file and what is wrong with it), meant for the operator.
    ReloadFailed(String),
    /// 503 `{"error": "store unavailable"}`.
    ApiStoreUnavailable,
    /// 500 `{"error": <message>}`: something failed that the caller cannot fix; the cause was
    /// logged.
    Internal(&'static str),
    /// 404 `{"error": <message>}`: no such ticket, agent or customer.
    NotFound(String),
    /// 409 `{"error": <message>, "status": <current status>}`: the ticket's lifecycle forbids
    /// this action now, or it changed meanwhile.
    Conflict {
        message: String,
        status: Option<String>,
    },
    /// 422 `{"error": <message>, "field": <name>}`: a field of the request is missing or bad.
    BadField {
        field: &'static str,
        message: String,
    },

    // ------------------------------------------------ console: plain-text bodies
    /// 303 to the login page: no live console session.
    LoginRequired,
    /// 403 with the message: the console user may not do this (an agent on a supervisor
    /// route, or on a ticket outside their groups and assignments).
    Forbidden(&'static str),
    /// 403 `bad or missing CSRF token`: a state-changing console request without its
    /// session's token.
    CsrfRejected,
    /// 403 `cross-site request refused`: the browser says the request comes from another
    /// site (`Origin`, `Sec-Fetch-Site`).
    CrossSite,
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        use WebError::*;
        match self {
            MissingParam | BadTimestamp | BodyNotUtf8 | EncryptTypeMismatch | Xml(_) => {
                StatusCode::BAD_REQUEST
            }
            StaleTimestamp | Replayed | Forbidden(_) | CsrfRejected | CrossSite => {
                StatusCode::FORBIDDEN
            }
            LoginRequired => StatusCode::SEE_OTHER,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ChannelNotConfigured => StatusCode::NOT_FOUND,
            Crypto(CryptoError::Signature | CryptoError::ReceiveId) => StatusCode::FORBIDDEN,
            Crypto(_) => StatusCode::BAD_REQUEST,
            StoreUnavailable | ApiStoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiDisabled => StatusCode::FORBIDDEN,
            BadBearerToken => StatusCode::UNAUTHORIZED,
            InvalidLibrary(_) | ReloadFailed(_) | BadField { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            NotFound(_) => StatusCode::NOT_FOUND,
            Conflict { .. } => StatusCode::CONFLICT,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable snake_case label: the body of a callback refusal, and what logs and metrics
    /// record.
    pub fn reason(&self) -> &'static str {
        use WebError::*;
        match self {
            MissingParam => "missing_param",
            BadTimestamp => "bad_timestamp",
            StaleTimestamp => "stale_timestamp",
            Replayed => "replayed",
            BodyTooLarge => "body_too_large",
            BodyNotUtf8 => "body_not_utf8",
            UnsupportedContentType => "unsupported_content_type",
            MethodNotAllowed => "method_not_allowed",
            ChannelNotConfigured => "channel_not_configured",
            EncryptTypeMismatch => "unsupported_encrypt_type",
            Crypto(e) => e.reason(),
            Xml(e) => e.reason(),
            StoreUnavailable | ApiStoreUnavailable => "store_unavailable",
            ApiDisabled => "api_disabled",
            BadBearerToken => "bad_bearer_token",
            InvalidLibrary(_) => "invalid_library",
            ReloadFailed(_) => "reload_failed",
            Internal(_) => "internal",
            NotFound(_) => "not_found",
            Conflict { .. } => "conflict",
            BadField { .. } => "bad_field",
            LoginRequired => "login_required",
            Forbidden(_) => "forbidden",
            CsrfRejected => "bad_csrf",
            CrossSite => "cross_site",
        }
    }
}

impl WebError {
    /// A JSON API or console request the store could not serve: logged, answered 503.
    pub fn store(e: sqlx::Error) -> WebError {
        tracing::error!(error = %e, "store error while serving a request");
        WebError::ApiStoreUnavailable
    }
}

impl From<CryptoError> for WebError {
    fn from(e: CryptoError) -> Self {
        WebError::Crypto(e)
    }
}

impl From<XmlError> for WebError {
    fn from(e: XmlError) -> Self {
        WebError::Xml(e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let json_error =
            |message: &str| (status, Json(json!({ "error": message }))).into_response();
        match self {
            WebError::MethodNotAllowed => (
                status,
                [(header::ALLOW, "GET, POST")],
                WebError::MethodNotAllowed.reason(),
            )
                .into_response(),
            WebError::ApiDisabled => json_error("the JSON API is disabled: set admin_token"),
            WebError::BadBearerToken => json_error("bad or missing bearer token"),
            WebError::InvalidLibrary(problems) => (
                status,
                Json(json!({
                    "error": "the reply library has problems; the previous library stays in use",
                    "problems": problems,
                })),
            )
                .into_response(),
            WebError::ReloadFailed(message) => json_error(&message),
            WebError::ApiStoreUnavailable => json_error("store unavailable"),
            WebError::Internal(message) => json_error(message),
            WebError::NotFound(message) => json_error(&message),
            WebError::Conflict { message, status } => (
                StatusCode::CONFLICT,
                Json(json!({"error": message, "status": status})),
            )
                .into_response(),
            WebError::BadField { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": message, "field": field})),
            )
                .into_response(),
            WebError::LoginRequired => {
                (status, [(header::LOCATION, "/console/login")]).into_response()
            }
            WebError::Forbidden(message) => (status, message).into_response(),
            WebError::CsrfRejected => (status, "bad or missing CSRF token").into_response(),
            WebError::CrossSite => (status, "cross-site request refused").into_response(),
            callback => (status, callback.reason()).into_response(),
        }
    }
}
