//! `GET|POST /wecom/callback` and `GET|POST /wechat/callback`.
//!
//! Each handler is a straight line: read the query and a size-limited body, check the
//! timestamp and signature, decrypt, parse into a typed message, hand it to the intake, answer.
//! Any refusal is a [`WebError`], logged with its reason (never with secrets or customer text)
//! and counted; nothing is stored unless every check passed.

use std::borrow::Cow;

use axum::body::{to_bytes, Body};
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{AppState, WebError};
use crate::channel::Channel;
use crate::crypto::{signature_of_matches, CryptoError, MsgCrypt};
use crate::wecom::xml::text_reply;
use crate::wecom::{parse_envelope, parse_message};

const WECOM_ROUTE: &str = "/wecom/callback";
const MP_ROUTE: &str = "/wechat/callback";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            WECOM_ROUTE,
            get(wecom_verify)
                .post(|State(state): State<AppState>, req: Request| async move {
                    Post::Wecom.handle(&state, req).await
                })
                .fallback(wrong_method),
        )
        .route(
            MP_ROUTE,
            get(mp_verify)
                .post(|State(state): State<AppState>, req: Request| async move {
                    Post::Mp.handle(&state, req).await
                })
                .fallback(wrong_method),
        )
}

/// A callback route's POST (a message), for [`super::App`]'s direct way in.
#[derive(Debug, Clone, Copy)]
pub(super) enum Post {
    Wecom,
    Mp,
}

impl Post {
    /// The callback route at `path`, matched as the router matches it.
    pub(super) fn at(path: &str) -> Option<Post> {
        match path {
            WECOM_ROUTE => Some(Post::Wecom),
            MP_ROUTE => Some(Post::Mp),
            _ => None,
        }
    }

    /// The route, as the router names it in metrics and logs.
    pub(super) fn path(self) -> &'static str {
        match self {
            Post::Wecom => WECOM_ROUTE,
            Post::Mp => MP_ROUTE,
        }
    }

    /// Take in the message, or refuse it (logged and counted): the handler of this POST on
    /// both ways in.
    pub(super) async fn handle(self, state: &AppState, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let raw = parts.uri.query();
        let outcome = match self {
            Post::Wecom => wecom_message(state, raw, &parts.headers, body).await,
            Post::Mp => mp_message(state, raw, &parts.headers, body).await,
        };
        answer(state, self.path(), outcome)
    }
}

/// The query parameters WeCom and WeChat send, borrowed from the query string where they
/// need no decoding (signatures, timestamps and nonces never do).
#[derive(Debug, Default)]
struct CallbackQuery<'q> {
    msg_signature: Option<Cow<'q, str>>,
    signature: Option<Cow<'q, str>>,
    timestamp: Option<Cow<'q, str>>,
    nonce: Option<Cow<'q, str>>,
    echostr: Option<Cow<'q, str>>,
    encrypt_type: Option<Cow<'q, str>>,
}

impl<'q> CallbackQuery<'q> {
    /// Read the parameters kefu uses; others are ignored, and a repeated one counts as its
    /// last value. Form decoding never fails: a stray `%` stays as it is and invalid UTF-8
    /// becomes U+FFFD, which no signature check then accepts.
    fn parse(raw: Option<&'q str>) -> Self {
        let mut q = CallbackQuery::default();
        for pair in raw.unwrap_or("").split('&') {
            // Form-decoded only where there is something to decode (a verification's echostr;
            // a message's query never has any): any other pair decodes to itself.
            let (k, v): (Cow<'q, str>, Cow<'q, str>) = if pair.contains(['%', '+']) {
                match form_urlencoded::parse(pair.as_bytes()).next() {
                    Some(decoded) => decoded,
                    None => continue,
                }
            } else if pair.is_empty() {
                continue;
            } else {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k.into(), v.into())
            };
            let slot = match k.as_ref() {
                "msg_signature" => &mut q.msg_signature,
                "signature" => &mut q.signature,
                "timestamp" => &mut q.timestamp,
                "nonce" => &mut q.nonce,
                "echostr" => &mut q.echostr,
                "encrypt_type" => &mut q.encrypt_type,
                _ => continue,
            };
            *slot = Some(v);
        }
        q
    }

    fn need<'f>(field: &'f Option<Cow<'q, str>>) -> Result<&'f str, WebError> {
        match field.as_deref() {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(WebError::MissingParam),
        }
    }
}

/// The response to one callback: the handler's answer, or its refusal, logged and counted.
fn answer(state: &AppState, route: &'static str, outcome: Result<Response, WebError>) -> Response {
    outcome.unwrap_or_else(|refusal| {
        tracing::warn!(
            route,
            reason = refusal.reason(),
            status = refusal.status().as_u16(),
            "callback refused"
        );
        state.metrics.reject(route, refusal.reason());
        refusal.into_response()
    })
}

fn check_timestamp(state: &AppState, timestamp: &str) -> Result<(), WebError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebError::BadTimestamp)?;
    let tolerance =
        i64::try_from(state.config.callback.timestamp_tolerance_secs).unwrap_or(i64::MAX);
    // Checked: a timestamp near i64::MIN or MAX must be stale, not an overflow.
    let off_by = state
        .clock
        .now_secs()
        .checked_sub(ts)
        .and_then(i64::checked_abs)
        .unwrap_or(i64::MAX);
    if off_by > tolerance {
        return Err(WebError::StaleTimestamp);
    }
    Ok(())
}

/// Senders that do not URL-encode `+` in base64 have it decoded to a space; base64 never
/// contains spaces, so putting the `+` back is always safe.
fn base64_param(v: &str) -> String {
    v.replace(' ', "+")
}

async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<String, WebError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        let ok = mime.is_empty() || mime.ends_with("/xml") || mime == "text/plain";
        if !ok {
            return Err(WebError::UnsupportedContentType);
        }
    }
    let bytes = to_bytes(body, state.config.callback.max_body_bytes)
        .await
        .map_err(|_| WebError::BodyTooLarge)?;
    // The body's own buffer becomes the string when nothing else shares it.
    String::from_utf8(Vec::from(bytes)).map_err(|_| WebError::BodyNotUtf8)
}

fn xml_response(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn text_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn success() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "success",
    )
        .into_response()
}

fn fresh_nonce() -> String {
    rand::random::<u32>().to_string()
}

/// Any method but GET and POST: counted under the `callback` route, logged only at debug
/// (scanners do this all day).
async fn wrong_method(State(state): State<AppState>, method: Method) -> Response {
    tracing::debug!(%method, "method not allowed on callback route");
    let refusal = WebError::MethodNotAllowed;
    state.metrics.reject("callback", refusal.reason());
    refusal.into_response()
}

// ---------------------------------------------------------------- WeCom

/// URL verification: verify `msg_signature` over `echostr`, answer its decrypted plaintext.
async fn wecom_verify(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    answer(&state, WECOM_ROUTE, wecom_verify_inner(&state, raw))
}

fn wecom_verify_inner(state: &AppState, raw: Option<String>) -> Result<Response, WebError> {
    let crypt = state
        .wecom_crypt
        .as_ref()
        .ok_or(WebError::ChannelNotConfigured)?;
    let q = CallbackQuery::parse(raw.as_deref());
    let sig = CallbackQuery::need(&q.msg_signature)?;
    let ts = CallbackQuery::need(&q.timestamp)?;
    let nonce = CallbackQuery::need(&q.nonce)?;
    let echostr = base64_param(CallbackQuery::need(&q.echostr)?);
    check_timestamp(state, ts)?;
    Ok(text_response(
        crypt.verify_and_decrypt(sig, ts, nonce, &echostr)?,
    ))
}

async fn wecom_message(
    state: &AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, WebError> {
    let crypt = state
        .wecom_crypt
        .clone()
        .ok_or(WebError::ChannelNotConfigured)?;
    let q = CallbackQuery::parse(raw);
    let sig = CallbackQuery::need(&q.msg_signature)?;
    let ts = CallbackQuery::need(&q.timestamp)?;
    let nonce = CallbackQuery::need(&q.nonce)?;
    check_timestamp(state, ts)?;
    let body = read_body(state, headers, body).await?;
    let envelope = parse_envelope(&body)?;
    let plain = crypt.verify_and_decrypt(sig, ts, nonce, &envelope.encrypt)?;
    let msg = parse_message(&plain)?;
    let accepted = state
        .intake
        .accept(Channel::Wecom, plain, msg)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not record a WeCom callback");
            WebError::StoreUnavailable
        })?;
    tracing::debug!(duplicate = accepted.duplicate, "wecom callback recorded");
    // WeCom app and kf callbacks are acknowledged without a passive reply; kf messages are
    // answered through kf/send_msg.
    Ok(success())
}

// ---------------------------------------------------------------- Official Account

/// Official Account URL verification is plain: check `signature`, echo `echostr`.
async fn mp_verify(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    answer(&state, MP_ROUTE, mp_verify_inner(&state, raw))
}

fn mp_verify_inner(state: &AppState, raw: Option<String>) -> Result<Response, WebError> {
    let mp = state.mp.as_ref().ok_or(WebError::ChannelNotConfigured)?;
    let q = CallbackQuery::parse(raw.as_deref());
    let sig = CallbackQuery::need(&q.signature)?;
    let ts = CallbackQuery::need(&q.timestamp)?;
    let nonce = CallbackQuery::need(&q.nonce)?;
    let echostr = CallbackQuery::need(&q.echostr)?;
    check_timestamp(state, ts)?;
    check_plain_signature(&mp.token, sig, ts, nonce)?;
    Ok(text_response(echostr.to_owned()))
}

fn check_plain_signature(token: &str, sig: &str, ts: &str, nonce: &str) -> Result<(), WebError> {
    if signature_of_matches([token, ts, nonce], sig) {
        Ok(())
    } else {
        Err(CryptoError::Signature.into())
    }
}

async fn mp_message(
    state: &AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, WebError> {
    let mp = state.mp.clone().ok_or(WebError::ChannelNotConfigured)?;
    let q = CallbackQuery::parse(raw);
    let ts = CallbackQuery::need(&q.timestamp)?;
    let nonce = CallbackQuery::need(&q.nonce)?;
    check_timestamp(state, ts)?;
    let safe_mode = match q.encrypt_type.as_deref() {
        None | Some("") | Some("raw") => false,
        Some("aes") => true,
        Some(_) => return Err(WebError::EncryptTypeMismatch),
    };
    // The plain signature rides on every request; in safe mode msg_signature is what binds
    // the body, so the plain one is checked when present.
    match (&q.signature, safe_mode) {
        (Some(sig), _) => check_plain_signature(&mp.token, sig, ts, nonce)?,
        (None, false) => return Err(WebError::MissingParam),
        (None, true) => {}
    }
    let body = read_body(state, headers, body).await?;

    let (plain, crypt): (String, Option<&MsgCrypt>) = if safe_mode {
        let crypt = mp.crypt.as_ref().ok_or(WebError::EncryptTypeMismatch)?;
        let sig = CallbackQuery::need(&q.msg_signature)?;
        let envelope = parse_envelope(&body)?;
        (
            crypt.verify_and_decrypt(sig, ts, nonce, &envelope.encrypt)?,
            Some(crypt),
        )
    } else {
        if mp.crypt.is_some() {
            // An account configured for safe mode does not take unencrypted bodies: a leaked
            // token alone must not be enough to inject messages.
            return Err(WebError::EncryptTypeMismatch);
        }
        let window =
            i64::try_from(state.config.callback.timestamp_tolerance_secs).unwrap_or(i64::MAX);
        if !mp.replays.admit(
            ts,
            nonce,
            &body,
            state.clock.now_secs(),
            window.saturating_mul(2),
        ) {
            return Err(WebError::Replayed);
        }
        (body, None)
    };
    let msg = parse_message(&plain)?;
    let (to_user, from_user) = (msg.to_user.clone(), msg.from_user.clone());
    let accepted = state
        .intake
        .accept(Channel::Mp, plain, msg)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not record an Official Account callback");
            WebError::StoreUnavailable
        })?;
    let (Some(reply), Some(shopper)) = (accepted.reply_text, from_user) else {
        return Ok(success());
    };
    let reply_xml = text_reply(&shopper, &to_user, state.clock.now_secs(), &reply);
    Ok(match crypt {
        Some(c) => {
            let reply_ts = state.clock.now_secs().to_string();
            xml_response(c.encrypt_reply(&reply_xml, &reply_ts, &fresh_nonce()))
        }
        None => xml_response(reply_xml),
    })
}

#[cfg(test)]
mod tests {
    use super::CallbackQuery;

    /// The query reads as form decoding reads it, whether or not a pair needs decoding.
    #[test]
    fn query_pairs_read_as_form_decoding_reads_them() {
        let raw = "timestamp=1409304348&nonce=xxxxxx&&msg_signature=477715d1&openid=o-x_1\
                   &echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2F%2BqBbn+2W&time%73tamp=7&nonce&x=%ZZ\
                   &signature=ab%ZZ+c%e4%b8&encrypt_type=aes";
        let q = CallbackQuery::parse(Some(raw));
        // The last of a repeated name counts, however it was spelled.
        assert_eq!(q.timestamp.as_deref(), Some("7"));
        // A name without `=` has an empty value.
        assert_eq!(q.nonce.as_deref(), Some(""));
        assert_eq!(q.msg_signature.as_deref(), Some("477715d1"));
        assert_eq!(
            q.echostr.as_deref(),
            Some("P9nAzCzyDtyTWESHep1vC5X9xho/+qBbn 2W")
        );
        // An invalid escape stays as it is, a cut UTF-8 sequence becomes U+FFFD.
        assert_eq!(q.signature.as_deref(), Some("ab%ZZ c\u{fffd}"));
        assert_eq!(q.encrypt_type.as_deref(), Some("aes"));
        // The same as form decoding, pair by pair, for every parameter kefu reads.
        let mut expected = CallbackQuery::default();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            match k.as_ref() {
                "timestamp" => expected.timestamp = Some(v),
                "nonce" => expected.nonce = Some(v),
                "msg_signature" => expected.msg_signature = Some(v),
                "echostr" => expected.echostr = Some(v),
                "signature" => expected.signature = Some(v),
                "encrypt_type" => expected.encrypt_type = Some(v),
                _ => {}
            }
        }
        assert_eq!(format!("{q:?}"), format!("{expected:?}"));
        assert_eq!(
            format!("{:?}", CallbackQuery::parse(None)),
            format!("{:?}", CallbackQuery::default())
        );
    }
}
