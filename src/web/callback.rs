//! `GET|POST /wecom/callback` and `GET|POST /wechat/callback`.
//!
//! Each handler is a straight line: read the query and a size-limited body, check the
//! timestamp and signature, decrypt, parse into a typed message, hand it to the intake, answer.
//! Any refusal is a [`Reject`], logged with its reason (never with secrets or customer text)
//! and counted; nothing is stored unless every check passed.

use axum::body::{to_bytes, Body};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AppState, Reject};
use crate::channel::Channel;
use crate::crypto::{sha1_signature, signature_matches, CryptoError, MsgCrypt};
use crate::wecom::xml::text_reply;
use crate::wecom::{parse_envelope, parse_message};

const WECOM_ROUTE: &str = "/wecom/callback";
const MP_ROUTE: &str = "/wechat/callback";

/// The query parameters WeCom and WeChat send.
#[derive(Debug, Default)]
struct CallbackQuery {
    msg_signature: Option<String>,
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    encrypt_type: Option<String>,
}

impl CallbackQuery {
    fn parse(raw: Option<String>) -> Result<Self, Reject> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
            .map_err(|_| Reject::new(StatusCode::BAD_REQUEST, "bad_query"))?;
        let mut q = CallbackQuery::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
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
        Ok(q)
    }

    fn need(field: &Option<String>) -> Result<&str, Reject> {
        match field.as_deref() {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Reject::MISSING_PARAM),
        }
    }
}

/// Log and count a refusal, then turn it into the response.
fn refuse(state: &AppState, route: &'static str, r: Reject) -> Response {
    tracing::warn!(
        route,
        reason = r.reason,
        status = r.status.as_u16(),
        "callback refused"
    );
    state.metrics.reject(route, r.reason);
    r.into_response()
}

fn check_timestamp(state: &AppState, timestamp: &str) -> Result<(), Reject> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Reject::BAD_TIMESTAMP)?;
    let tolerance = state.config.callback.timestamp_tolerance_secs as i64;
    if (state.clock.now_secs() - ts).abs() > tolerance {
        return Err(Reject::STALE_TIMESTAMP);
    }
    Ok(())
}

/// Senders that do not URL-encode `+` in base64 have it decoded to a space; base64 never
/// contains spaces, so putting the `+` back is always safe.
fn base64_param(v: &str) -> String {
    v.replace(' ', "+")
}

async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<String, Reject> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        let ok = mime.is_empty() || mime.ends_with("/xml") || mime == "text/plain";
        if !ok {
            return Err(Reject::CONTENT_TYPE);
        }
    }
    let bytes = to_bytes(body, state.config.callback.max_body_bytes)
        .await
        .map_err(|_| Reject::TOO_LARGE)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| Reject::NOT_UTF8)
}

fn xml_response(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
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

pub async fn wrong_method(State(state): State<AppState>, method: Method) -> Response {
    tracing::debug!(%method, "method not allowed on callback route");
    state.metrics.reject("callback", Reject::METHOD.reason);
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET, POST")],
        Reject::METHOD.reason,
    )
        .into_response()
}

// ---------------------------------------------------------------- WeCom

/// URL verification: verify `msg_signature` over `echostr`, answer its decrypted plaintext.
pub async fn wecom_verify(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    match wecom_verify_inner(&state, raw) {
        Ok(plain) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], plain).into_response(),
        Err(r) => refuse(&state, WECOM_ROUTE, r),
    }
}

fn wecom_verify_inner(state: &AppState, raw: Option<String>) -> Result<String, Reject> {
    let crypt = state.wecom.as_ref().ok_or(Reject::NOT_CONFIGURED)?;
    let q = CallbackQuery::parse(raw)?;
    let sig = CallbackQuery::need(&q.msg_signature)?;
    let ts = CallbackQuery::need(&q.timestamp)?;
    let nonce = CallbackQuery::need(&q.nonce)?;
    let echostr = base64_param(CallbackQuery::need(&q.echostr)?);
    check_timestamp(state, ts)?;
    Ok(crypt.verify_and_decrypt(sig, ts, nonce, &echostr)?)
}

pub async fn wecom_message(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match wecom_message_inner(&state, raw, &headers, body).await {
        Ok(resp) => resp,
        Err(r) => refuse(&state, WECOM_ROUTE, r),
    }
}

async fn wecom_message_inner(
    state: &AppState,
    raw: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Reject> {
    let crypt = state.wecom.clone().ok_or(Reject::NOT_CONFIGURED)?;
    let q = CallbackQuery::parse(raw)?;
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
            Reject::STORE
        })?;
    tracing::debug!(duplicate = accepted.duplicate, "wecom callback recorded");
    // WeCom app and kf callbacks are acknowledged without a passive reply; kf messages are
    // answered through kf/send_msg.
    Ok(success())
}

// ---------------------------------------------------------------- Official Account

/// Official Account URL verification is plain: check `signature`, echo `echostr`.
pub async fn mp_verify(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    match mp_verify_inner(&state, raw) {
        Ok(echo) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], echo).into_response(),
        Err(r) => refuse(&state, MP_ROUTE, r),
    }
}

fn mp_verify_inner(state: &AppState, raw: Option<String>) -> Result<String, Reject> {
    let mp = state.mp.as_ref().ok_or(Reject::NOT_CONFIGURED)?;
    let q = CallbackQuery::parse(raw)?;
    let sig = CallbackQuery::need(&q.signature)?;
    let ts = CallbackQuery::need(&q.timestamp)?;
    let nonce = CallbackQuery::need(&q.nonce)?;
    let echostr = CallbackQuery::need(&q.echostr)?;
    check_timestamp(state, ts)?;
    check_plain_signature(&mp.token, sig, ts, nonce)?;
    Ok(echostr.to_owned())
}

fn check_plain_signature(token: &str, sig: &str, ts: &str, nonce: &str) -> Result<(), Reject> {
    if signature_matches(&sha1_signature(&[token, ts, nonce]), sig) {
        Ok(())
    } else {
        Err(CryptoError::Signature.into())
    }
}

pub async fn mp_message(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match mp_message_inner(&state, raw, &headers, body).await {
        Ok(resp) => resp,
        Err(r) => refuse(&state, MP_ROUTE, r),
    }
}

async fn mp_message_inner(
    state: &AppState,
    raw: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Reject> {
    let mp = state.mp.clone().ok_or(Reject::NOT_CONFIGURED)?;
    let q = CallbackQuery::parse(raw)?;
    let ts = CallbackQuery::need(&q.timestamp)?.to_owned();
    let nonce = CallbackQuery::need(&q.nonce)?.to_owned();
    check_timestamp(state, &ts)?;
    let safe_mode = match q.encrypt_type.as_deref() {
        None | Some("") | Some("raw") => false,
        Some("aes") => true,
        Some(_) => return Err(Reject::MODE),
    };
    // The plain signature rides on every request; in safe mode msg_signature is what binds
    // the body, so the plain one is checked when present.
    match (&q.signature, safe_mode) {
        (Some(sig), _) => check_plain_signature(&mp.token, sig, &ts, &nonce)?,
        (None, false) => return Err(Reject::MISSING_PARAM),
        (None, true) => {}
    }
    let body = read_body(state, headers, body).await?;

    let (plain, crypt): (String, Option<&MsgCrypt>) = if safe_mode {
        let crypt = mp.crypt.as_ref().ok_or(Reject::MODE)?;
        let sig = CallbackQuery::need(&q.msg_signature)?;
        let envelope = parse_envelope(&body)?;
        (
            crypt.verify_and_decrypt(sig, &ts, &nonce, &envelope.encrypt)?,
            Some(crypt),
        )
    } else {
        if mp.crypt.is_some() {
            // An account configured for safe mode does not take unencrypted bodies: a leaked
            // token alone must not be enough to inject messages.
            return Err(Reject::MODE);
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
            Reject::STORE
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
