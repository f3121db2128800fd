//! The WeCom server API client (`qyapi.weixin.qq.com`, or the simulator in tests).
//!
//! - Access token: cached until shortly before `expires_in`; refreshed by one caller at a time
//!   (the others wait for its result); on PostgreSQL shared by all replicas through the
//!   `wecom_tokens` row, refreshed under a row lock so N replicas make one `gettoken` call.
//! - 40014 / 42001 (bad or expired token): refresh once and retry. -1 / 45009 / 45033 and
//!   network errors: retry with jittered exponential backoff. Anything else is permanent.
//! - Every call's outcome is counted in `/metrics`; URLs (which carry the token) are never
//!   logged.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::{tokens, Backend, Store};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{api}: WeCom error {code} ({msg})")]
    Api {
        api: &'static str,
        code: i64,
        msg: String,
    },
    #[error("{api}: network error: {detail}")]
    Network { api: &'static str, detail: String },
    #[error("{api}: unreadable answer: {detail}")]
    Decode { api: &'static str, detail: String },
    #[error("token store: {0}")]
    Store(String),
    /// A call kefu cannot make as configured (an unknown outbox api, no robot key): retrying
    /// will not help.
    #[error("{api}: {detail}")]
    Config { api: &'static str, detail: String },
}

impl ApiError {
    /// The WeCom error code, if WeCom answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Worth trying again later: WeCom's "busy" answers (-1 system busy, 45009 and 45033
    /// frequency limits), network trouble, an unreadable answer, and a token store that did
    /// not answer (the database may be back by the next attempt). Every other WeCom code
    /// (e.g. 95018, a send the session state forbids) and a configuration problem are final.
    ///
    /// The client's own retry loop and the outbox both follow this rule. (`Store` never
    /// reaches the client's loop: a token store error ends the call before it.)
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Api { code, .. } => matches!(code, -1 | 45009 | 45033),
            ApiError::Network { .. } | ApiError::Decode { .. } | ApiError::Store(_) => true,
            ApiError::Config { .. } => false,
        }
    }

    fn outcome(&self) -> String {
        match self {
            ApiError::Api { code, .. } => format!("errcode_{code}"),
            ApiError::Network { .. } => "network".into(),
            ApiError::Decode { .. } => "decode".into(),
            ApiError::Store(_) => "store".into(),
            ApiError::Config { .. } => "config".into(),
        }
    }
}

/// The WeCom API client could not be made (kefu refuses to start without it).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the WeCom HTTP client: {0}")]
pub struct ClientBuildError(String);

/// Retry budget for transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    /// Unix ms after which we no longer use it.
    good_until_ms: i64,
}

/// Refresh this long before WeCom's expiry, so a token never dies mid-call.
const EARLY_REFRESH_MS: i64 = 5 * 60 * 1000;

pub struct WecomClient {
    http: reqwest::Client,
    base: String,
    corp_id: String,
    secret: String,
    /// Held while refreshing: the single flight.
    token: Mutex<Option<CachedToken>>,
    store: Option<Store>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    retry: RetryPolicy,
}

impl WecomClient {
    /// `store` is used to share the token between replicas when it is PostgreSQL.
    ///
    /// Fails when the HTTP client cannot be built (no TLS roots, a broken system
    /// configuration): a client without the timeout and redirect policy below is never used
    /// instead.
    pub fn new(
        base: &str,
        corp_id: &str,
        secret: &str,
        store: Option<Store>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        retry: RetryPolicy,
    ) -> Result<WecomClient, ClientBuildError> {
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            // URLs carry the access token: never replay them to wherever a 3xx points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // The error's text names no URL or secret (none is known yet), only the cause.
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(WecomClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            corp_id: corp_id.to_string(),
            secret: secret.to_string(),
            token: Mutex::new(None),
            store: store.filter(|s| s.backend() == Backend::Postgres),
            metrics,
            clock,
            retry,
        })
    }

    fn count(&self, api: &str, outcome: &str) {
        self.metrics
            .wecom_calls
            .get_or_create(&crate::metrics::ApiLabel {
                api: api.to_owned().into(),
                outcome: outcome.to_owned().into(),
            })
            .inc();
    }

    /// A valid access token. `stale` names a token WeCom just refused: it is replaced
    /// unless someone already did.
    pub async fn access_token(&self, stale: Option<&str>) -> Result<String, ApiError> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now_ms();
        if let Some(c) = cached.as_ref() {
            if c.good_until_ms > now && Some(c.token.as_str()) != stale {
                return Ok(c.token.clone());
            }
        }
        let fresh = match &self.store {
            Some(store) => self.shared_token(store, stale).await?,
            None => self.fetch_token().await?,
        };
        *cached = Some(fresh.clone());
        Ok(fresh.token)
    }

    async fn fetch_token(&self) -> Result<CachedToken, ApiError> {
        let url = format!("{}/cgi-bin/gettoken", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = self
                .http
                .get(&url)
                .query(&[("corpid", &self.corp_id), ("corpsecret", &self.secret)])
                .send()
                .await;
            let out = decode("gettoken", res).await.and_then(|v| {
                let token = v["access_token"].as_str().unwrap_or("").to_string();
                let ttl = v["expires_in"].as_i64().unwrap_or(7200);
                if token.is_empty() {
                    return Err(ApiError::Decode {
                        api: "gettoken",
                        detail: "no access_token".into(),
                    });
                }
                Ok(CachedToken {
                    token,
                    good_until_ms: self.clock.now_ms()
                        + (ttl * 1000 - EARLY_REFRESH_MS).max(ttl * 500),
                })
            });
            match out {
                Ok(t) => {
                    self.count("gettoken", "ok");
                    return Ok(t);
                }
                Err(e) => {
                    self.count("gettoken", &e.outcome());
                    if !e.retryable() || attempt >= self.retry.attempts {
                        tracing::error!(error = %e, "gettoken failed");
                        return Err(e);
                    }
                    self.backoff(attempt).await;
                }
            }
        }
    }

    /// PostgreSQL: one row per corp, refreshed under `SELECT … FOR UPDATE`, so replicas
    /// wait for whichever of them holds the lock and then use its token.
    async fn shared_token(
        &self,
        store: &Store,
        stale: Option<&str>,
    ) -> Result<CachedToken, ApiError> {
        let db = |e: sqlx::Error| ApiError::Store(e.to_string());
        let mut tx = store.pool().begin().await.map_err(db)?;
        let stored = tokens::lock_token(&mut tx, &self.corp_id)
            .await
            .map_err(db)?;
        if !stored.access_token.is_empty()
            && stored.good_until_ms > self.clock.now_ms()
            && Some(stored.access_token.as_str()) != stale
        {
            tx.commit().await.map_err(db)?;
            return Ok(CachedToken {
                token: stored.access_token,
                good_until_ms: stored.good_until_ms,
            });
        }
        let fresh = self.fetch_token().await?;
        tokens::save_token(&mut tx, &self.corp_id, &fresh.token, fresh.good_until_ms)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(fresh)
    }

    async fn backoff(&self, attempt: u32) {
        let base = self.retry.base_delay.as_millis() as u64 * (1u64 << attempt.min(6));
        let jitter = rand::random_range(0..=base / 2 + 1);
        tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
    }

    /// Call `path` with the access token; refresh once on a token error, back off on
    /// transient ones.
    async fn call(
        &self,
        api: &'static str,
        get: bool,
        path: &str,
        extra_query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{}", self.base, path);
        let mut refreshed = false;
        let mut stale: Option<String> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.access_token(stale.as_deref()).await?;
            let mut req = if get {
                self.http.get(&url)
            } else {
                self.http.post(&url)
            };
            req = req
                .query(&[("access_token", token.as_str())])
                .query(extra_query);
            if let Some(b) = body {
                req = req.json(b);
            }
            match decode(api, req.send().await).await {
                Ok(v) => {
                    self.count(api, "ok");
                    return Ok(v);
                }
                Err(e) => {
                    self.count(api, &e.outcome());
                    match e.code() {
                        Some(40014 | 42001 | 40001) if !refreshed => {
                            refreshed = true;
                            stale = Some(token);
                            continue;
                        }
                        _ => {}
                    }
                    if !e.retryable() {
                        // Permanent answers (84061 "not an external contact", 95xxx session
                        // rules) are part of normal operation; the caller decides.
                        tracing::debug!(error = %e, "WeCom call refused");
                        return Err(e);
                    }
                    if attempt >= self.retry.attempts {
                        tracing::warn!(error = %e, attempt, "WeCom call failed after retries");
                        return Err(e);
                    }
                    self.backoff(attempt).await;
                }
            }
        }
    }

    pub async fn sync_msg(
        &self,
        open_kfid: &str,
        cursor: Option<&str>,
        token: Option<&str>,
        limit: u32,
    ) -> Result<Value, ApiError> {
        let mut body = json!({"open_kfid": open_kfid, "limit": limit, "voice_format": 0});
        if let Some(c) = cursor {
            body["cursor"] = json!(c);
        }
        if let Some(t) = token {
            body["token"] = json!(t);
        }
        self.call(
            "kf/sync_msg",
            false,
            "/cgi-bin/kf/sync_msg",
            &[],
            Some(&body),
        )
        .await
    }

    pub async fn send_msg(&self, body: &Value) -> Result<Value, ApiError> {
        self.call(
            "kf/send_msg",
            false,
            "/cgi-bin/kf/send_msg",
            &[],
            Some(body),
        )
        .await
    }

    pub async fn send_msg_on_event(&self, body: &Value) -> Result<Value, ApiError> {
        self.call(
            "kf/send_msg_on_event",
            false,
            "/cgi-bin/kf/send_msg_on_event",
            &[],
            Some(body),
        )
        .await
    }

    pub async fn service_state_get(
        &self,
        open_kfid: &str,
        external_userid: &str,
    ) -> Result<Value, ApiError> {
        let body = json!({"open_kfid": open_kfid, "external_userid": external_userid});
        self.call(
            "kf/service_state/get",
            false,
            "/cgi-bin/kf/service_state/get",
            &[],
            Some(&body),
        )
        .await
    }

    pub async fn service_state_trans(
        &self,
        open_kfid: &str,
        external_userid: &str,
        state: u8,
        servicer: &str,
    ) -> Result<Value, ApiError> {
        let body = json!({"open_kfid": open_kfid, "external_userid": external_userid, "service_state": state, "servicer_userid": servicer});
        self.call(
            "kf/service_state/trans",
            false,
            "/cgi-bin/kf/service_state/trans",
            &[],
            Some(&body),
        )
        .await
    }

    pub async fn customer_batchget(&self, ids: &[&str]) -> Result<Value, ApiError> {
        let body = json!({"external_userid_list": ids, "need_enter_session_context": 0});
        self.call(
            "kf/customer/batchget",
            false,
            "/cgi-bin/kf/customer/batchget",
            &[],
            Some(&body),
        )
        .await
    }

    pub async fn account_list(&self) -> Result<Value, ApiError> {
        self.call(
            "kf/account/list",
            true,
            "/cgi-bin/kf/account/list",
            &[],
            None,
        )
        .await
    }

    pub async fn servicer_list(&self, open_kfid: &str) -> Result<Value, ApiError> {
        self.call(
            "kf/servicer/list",
            true,
            "/cgi-bin/kf/servicer/list",
            &[("open_kfid", open_kfid)],
            None,
        )
        .await
    }

    pub async fn externalcontact_get(&self, external_userid: &str) -> Result<Value, ApiError> {
        self.call(
            "externalcontact/get",
            true,
            "/cgi-bin/externalcontact/get",
            &[("external_userid", external_userid)],
            None,
        )
        .await
    }

    /// Group-robot notification; the key is the robot's, no access token.
    pub async fn webhook_send(&self, key: &str, body: &Value) -> Result<Value, ApiError> {
        let url = format!("{}/cgi-bin/webhook/send", self.base);
        let res = self
            .http
            .post(&url)
            .query(&[("key", key)])
            .json(body)
            .send()
            .await;
        let out = decode("webhook/send", res).await;
        self.count(
            "webhook/send",
            out.as_ref()
                .map(|_| "ok".to_string())
                .unwrap_or_else(|e| e.outcome())
                .as_str(),
        );
        out
    }
}

async fn decode(
    api: &'static str,
    res: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, ApiError> {
    // reqwest errors can include the URL, which carries the token: keep only the kind.
    let res = res.map_err(|e| ApiError::Network {
        api,
        detail: if e.is_timeout() {
            "timeout".into()
        } else if e.is_connect() {
            "connect".into()
        } else {
            "request".into()
        },
    })?;
    let status = res.status();
    let v: Value = res.json().await.map_err(|_| ApiError::Decode {
        api,
        detail: format!("HTTP {status}, not JSON"),
    })?;
    match v["errcode"].as_i64().unwrap_or(0) {
        0 => Ok(v),
        code => Err(ApiError::Api {
            api,
            code,
            msg: v["errmsg"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(120)
                .collect(),
        }),
    }
}
