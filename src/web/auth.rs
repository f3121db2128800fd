//! Admin authentication: the bearer `admin_token`, checked from the request head before any
//! handler reads the body.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::{AppState, WebError};

/// Proof that the request carries `Authorization: Bearer <admin_token>`. Put it before any
/// body extractor in a handler's arguments: extractors run in order, so a request without
/// the token is refused before its body is read.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let Some(expected) = state.config.admin_token.as_deref() else {
            return Err(WebError::ApiDisabled);
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if token_matches(expected, given) {
            Ok(Admin)
        } else {
            Err(WebError::BadBearerToken)
        }
    }
}

/// Compare digests rather than the tokens: both are 20 bytes whatever was sent, so neither
/// the comparison's time nor an early length check tells a caller anything about the token.
fn token_matches(expected: &str, given: &str) -> bool {
    let expected = Sha1::digest(expected.as_bytes());
    let given = Sha1::digest(given.as_bytes());
    expected.as_slice().ct_eq(given.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches("s3cret-token", "s3cret-token"));
        assert!(!token_matches("s3cret-token", "s3cret-tokeN"));
        assert!(!token_matches("s3cret-token", "s3cret"));
        assert!(!token_matches("s3cret-token", "s3cret-token-and-more"));
        assert!(!token_matches("s3cret-token", ""));
    }
}
