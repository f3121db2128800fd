//! How a refused callback becomes a response: a specific 4xx (or 503 when the store is down,
//! so WeCom retries) with a short reason, never a 500 with internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::crypto::CryptoError;
use crate::wecom::XmlError;

/// A refused request. `reason` is a stable snake_case label shown to the client, logged and
/// counted in `kefu_callback_rejects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub status: StatusCode,
    pub reason: &'static str,
}

impl Reject {
    pub const fn new(status: StatusCode, reason: &'static str) -> Self {
        Reject { status, reason }
    }
    /// A required query parameter is absent or empty.
    pub const MISSING_PARAM: Reject = Reject::new(StatusCode::BAD_REQUEST, "missing_param");
    /// `timestamp` is not a number.
    pub const BAD_TIMESTAMP: Reject = Reject::new(StatusCode::BAD_REQUEST, "bad_timestamp");
    /// `timestamp` is further from our clock than the configured tolerance.
    pub const STALE_TIMESTAMP: Reject = Reject::new(StatusCode::FORBIDDEN, "stale_timestamp");
    /// Body larger than `callback.max_body_bytes`.
    pub const TOO_LARGE: Reject = Reject::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    /// Body is not UTF-8.
    pub const NOT_UTF8: Reject = Reject::new(StatusCode::BAD_REQUEST, "body_not_utf8");
    /// Content-Type is not XML or text.
    pub const CONTENT_TYPE: Reject = Reject::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
    );
    /// The route exists but not for this method.
    pub const METHOD: Reject = Reject::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    /// The channel has no configuration.
    pub const NOT_CONFIGURED: Reject = Reject::new(StatusCode::NOT_FOUND, "channel_not_configured");
    /// Plaintext-mode request where the channel requires safe mode, or the reverse.
    pub const MODE: Reject = Reject::new(StatusCode::BAD_REQUEST, "unsupported_encrypt_type");
    /// The store could not record the message: WeCom will retry, nothing was acknowledged.
    pub const STORE: Reject = Reject::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
}

impl From<CryptoError> for Reject {
    fn from(e: CryptoError) -> Self {
        let status = match e {
            CryptoError::Signature | CryptoError::ReceiveId => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        Reject::new(status, e.reason())
    }
}

impl From<XmlError> for Reject {
    fn from(e: XmlError) -> Self {
        Reject::new(StatusCode::BAD_REQUEST, e.reason())
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        (self.status, self.reason).into_response()
    }
}
