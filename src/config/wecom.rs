//! `[wecom]`: the WeCom self-built app / Customer Service account.

use serde::Deserialize;

use super::{invalid, required, valid_aes_key, ConfigError, Env};
use crate::crypto::MsgCrypt;

/// WeCom self-built app / Customer Service settings.
#[derive(Clone)]
pub struct WecomConfig {
    pub corp_id: String,
    pub token: String,
    pub encoding_aes_key: String,
    /// The app's secret: with it kefu pulls and answers kf messages; without it kf callbacks
    /// are only recorded.
    pub secret: Option<String>,
    pub api_base: String,
    /// Key of a WeCom group robot that supervisors are in: outgoing messages that fail for
    /// good are reported there.
    pub alert_webhook_key: Option<String>,
    /// How long an outbox sender holds a row it claimed (`outbox_lease_secs`, default 120):
    /// a replica that dies mid-send leaves its row this long before another takes it.
    pub outbox_lease: std::time::Duration,
}

/// The default `[wecom] outbox_lease_secs`.
pub const DEFAULT_OUTBOX_LEASE_SECS: u64 = 120;

impl WecomConfig {
    pub fn crypt(&self) -> MsgCrypt {
        MsgCrypt::new(&self.token, &self.encoding_aes_key, &self.corp_id)
            .expect("EncodingAESKey validated at config load")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWecom {
    corp_id: Option<String>,
    token: Option<String>,
    encoding_aes_key: Option<String>,
    secret: Option<String>,
    alert_webhook_key: Option<String>,
    api_base: Option<String>,
    outbox_lease_secs: Option<u64>,
    /// `KEFU_WECOM_OUTBOX_LEASE_SECS`, read when validating.
    #[serde(skip)]
    outbox_lease_secs_env: Option<String>,
}

impl RawWecom {
    /// Overlay `KEFU_WECOM_*`; any of them creates the section.
    pub(super) fn apply_env(section: &mut Option<RawWecom>, env: &Env) {
        let keys = [
            "wecom.corp_id",
            "wecom.token",
            "wecom.encoding_aes_key",
            "wecom.secret",
            "wecom.api_base",
            "wecom.alert_webhook_key",
        ];
        if env.any(&keys) {
            section.get_or_insert_with(Default::default);
        }
        let Some(w) = section.as_mut() else { return };
        let [corp_id, token, aes_key, secret, api_base, robot] = keys;
        env.set(&mut w.corp_id, corp_id);
        env.set(&mut w.token, token);
        env.set(&mut w.encoding_aes_key, aes_key);
        env.set(&mut w.secret, secret);
        env.set(&mut w.api_base, api_base);
        env.set(&mut w.alert_webhook_key, robot);
        env.set(&mut w.outbox_lease_secs_env, "wecom.outbox_lease_secs");
    }

    pub(super) fn validate(self) -> Result<WecomConfig, ConfigError> {
        let corp_id = required(self.corp_id, "wecom.corp_id")?;
        let token = required(self.token, "wecom.token")?;
        let encoding_aes_key = valid_aes_key(
            required(self.encoding_aes_key, "wecom.encoding_aes_key")?,
            "wecom.encoding_aes_key",
        )?;
        let api_base = self
            .api_base
            .unwrap_or_else(|| "https://qyapi.weixin.qq.com".into())
            .trim_end_matches('/')
            .to_string();
        if !(api_base.starts_with("http://") || api_base.starts_with("https://")) {
            return Err(invalid(
                "wecom.api_base",
                "expected an http:// or https:// URL",
            ));
        }
        // The corp secret and access tokens travel in its query strings: plain HTTP only to
        // this machine (the simulator, a local proxy that adds TLS).
        if api_base.starts_with("http://") && !is_local(&api_base["http://".len()..]) {
            return Err(invalid(
                "wecom.api_base",
                "must be https:// unless it is on this machine (localhost, 127.0.0.1, [::1])",
            ));
        }
        let lease_key = "wecom.outbox_lease_secs";
        let lease_secs = match self.outbox_lease_secs_env {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid(lease_key, format!("expected a whole number, got {v:?}")))?,
            None => self.outbox_lease_secs.unwrap_or(DEFAULT_OUTBOX_LEASE_SECS),
        };
        // A send with the client's retries must fit well inside it.
        if !(5..=3600).contains(&lease_secs) {
            return Err(invalid(lease_key, "must be between 5 and 3600"));
        }
        Ok(WecomConfig {
            corp_id,
            token,
            encoding_aes_key,
            secret: self.secret.filter(|s| !s.trim().is_empty()),
            api_base,
            alert_webhook_key: self.alert_webhook_key.filter(|s| !s.trim().is_empty()),
            outbox_lease: std::time::Duration::from_secs(lease_secs),
        })
    }
}

/// Whether `host_and_rest` (what follows `http://`) names this machine.
fn is_local(host_and_rest: &str) -> bool {
    let authority = host_and_rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_only_to_this_machine() {
        for local in [
            "127.0.0.1:8080",
            "localhost",
            "localhost:99/x",
            "[::1]:5000",
            "127.0.0.2",
        ] {
            assert!(super::is_local(local), "{local}");
        }
        for remote in [
            "qyapi.weixin.qq.com",
            "10.0.0.5:80",
            "localhost.evil.com",
            "[2001:db8::1]:80",
            "127.0.0.1.evil.com",
        ] {
            assert!(!super::is_local(remote), "{remote}");
        }
    }
}
