//! Configuration: `kefu.toml` (every key optional) overlaid with `KEFU_*` environment
//! variables, read once into a typed, validated [`Config`]. Every error names the key that is
//! wrong and, where one exists, the environment variable that can set it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::crypto::{decode_aes_key, MsgCrypt};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`{env}: {message}")]
    Invalid {
        key: &'static str,
        env: String,
        message: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    let env = env_name(key).map(|e| format!(" ({e})")).unwrap_or_default();
    ConfigError::Invalid {
        key,
        env,
        message: message.into(),
    }
}

/// The `KEFU_*` variable for a dotted key, e.g. `wecom.token` -> `KEFU_WECOM_TOKEN`.
fn env_name(key: &str) -> Option<String> {
    Some(format!(
        "KEFU_{}",
        key.replace('.', "_").to_ascii_uppercase()
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    database_url: Option<String>,
    replies_dir: Option<String>,
    admin_token: Option<String>,
    log_format: Option<String>,
    wecom: Option<RawWecom>,
    mp: Option<RawMp>,
    callback: Option<RawCallback>,
    classifier: Option<RawClassifier>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassifier {
    unknown_below: Option<f32>,
    answer_at: Option<f32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWecom {
    corp_id: Option<String>,
    token: Option<String>,
    encoding_aes_key: Option<String>,
    secret: Option<String>,
    alert_webhook_key: Option<String>,
    api_base: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMp {
    app_id: Option<String>,
    token: Option<String>,
    encoding_aes_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCallback {
    timestamp_tolerance_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    ack_text: Option<String>,
    offline_ack_text: Option<String>,
}

/// WeCom self-built app / Customer Service settings.
#[derive(Clone)]
pub struct WecomConfig {
    pub corp_id: String,
    pub token: String,
    pub encoding_aes_key: String,
    pub secret: Option<String>,
    pub api_base: String,
    /// Key of a WeCom group robot that supervisors are in: outgoing messages that fail for
    /// good are reported there.
    pub alert_webhook_key: Option<String>,
}

/// WeChat Official Account settings.
#[derive(Clone)]
pub struct MpConfig {
    pub app_id: String,
    pub token: String,
    pub encoding_aes_key: Option<String>,
}

/// Callback intake limits.
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    /// How far a callback's `timestamp` may be from our clock, either way.
    pub timestamp_tolerance_secs: u64,
    /// Larger bodies are refused with 413 before they are parsed.
    pub max_body_bytes: usize,
    /// Passive reply to an Official Account text message when no canned answer applies.
    pub ack_text: String,
    /// Acknowledgement sent instead of `ack_text` when a chat is handed over while every
    /// agent of the kf account is known to be off duty (`servicer_status_change`).
    pub offline_ack_text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub replies_dir: PathBuf,
    pub admin_token: Option<String>,
    pub log_format: LogFormat,
    pub wecom: Option<WecomConfig>,
    pub mp: Option<MpConfig>,
    pub callback: CallbackConfig,
    pub classifier: crate::intent::Thresholds,
}

// Secrets are left out of Debug so a stray `{:?}` cannot log them.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("replies_dir", &self.replies_dir)
            .field("wecom.corp_id", &self.wecom.as_ref().map(|w| &w.corp_id))
            .field("mp.app_id", &self.mp.as_ref().map(|m| &m.app_id))
            .field("callback", &self.callback)
            .finish_non_exhaustive()
    }
}

/// Hide a password in a database URL (`postgres://user:secret@host` -> `user:***@host`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub const DEFAULT_ACK_TEXT: &str = "您好，消息已收到，客服会尽快为您解答～";
pub const DEFAULT_OFFLINE_ACK_TEXT: &str =
    "您好，人工客服暂时不在线，您的消息已记录，客服上线后会第一时间回复您～";

impl Config {
    /// Load from `path` (a missing file is fine only when it is the default path) and the
    /// process environment.
    pub fn load(path: &Path, path_was_given: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path_was_given => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Self::from_sources(&text, path, |k| std::env::var(k).ok())
    }

    /// Build from TOML text and an environment lookup (injected so tests need not touch the
    /// process environment).
    pub fn from_sources(
        toml_text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut raw: RawConfig = toml::from_str(toml_text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        apply_env(&mut raw, &env)?;
        validate(raw)
    }
}

fn apply_env(
    raw: &mut RawConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let set = |slot: &mut Option<String>, key: &str| {
        if let Some(v) = env_name(key).and_then(|n| env(&n)) {
            *slot = Some(v);
        }
    };
    set(&mut raw.listen, "listen");
    set(&mut raw.database_url, "database_url");
    set(&mut raw.replies_dir, "replies_dir");
    set(&mut raw.admin_token, "admin_token");
    set(&mut raw.log_format, "log_format");

    let has = |prefix: &str| {
        [
            "corp_id",
            "token",
            "encoding_aes_key",
            "secret",
            "api_base",
            "alert_webhook_key",
            "app_id",
        ]
        .iter()
        .any(|f| {
            env_name(&format!("{prefix}.{f}"))
                .and_then(|n| env(&n))
                .is_some()
        })
    };
    if has("wecom") {
        raw.wecom.get_or_insert_with(Default::default);
    }
    if let Some(w) = raw.wecom.as_mut() {
        set(&mut w.corp_id, "wecom.corp_id");
        set(&mut w.token, "wecom.token");
        set(&mut w.encoding_aes_key, "wecom.encoding_aes_key");
        set(&mut w.secret, "wecom.secret");
        set(&mut w.api_base, "wecom.api_base");
        set(&mut w.alert_webhook_key, "wecom.alert_webhook_key");
    }
    if has("mp") {
        raw.mp.get_or_insert_with(Default::default);
    }
    if let Some(m) = raw.mp.as_mut() {
        set(&mut m.app_id, "mp.app_id");
        set(&mut m.token, "mp.token");
        set(&mut m.encoding_aes_key, "mp.encoding_aes_key");
    }

    let cb = raw.callback.get_or_insert_with(Default::default);
    let num = |key: &'static str| -> Result<Option<u64>, ConfigError> {
        match env_name(key).and_then(|n| env(&n)) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| invalid(key, format!("expected a whole number, got {v:?}"))),
        }
    };
    if let Some(v) = num("callback.timestamp_tolerance_secs")? {
        cb.timestamp_tolerance_secs = Some(v);
    }
    if let Some(v) = num("callback.max_body_bytes")? {
        cb.max_body_bytes = Some(v as usize);
    }
    set(&mut cb.ack_text, "callback.ack_text");
    set(&mut cb.offline_ack_text, "callback.offline_ack_text");

    let cl = raw.classifier.get_or_insert_with(Default::default);
    for (key, slot) in [
        ("classifier.unknown_below", &mut cl.unknown_below),
        ("classifier.answer_at", &mut cl.answer_at),
    ] {
        if let Some(v) = env_name(key).and_then(|n| env(&n)) {
            *slot = Some(v.trim().parse::<f32>().map_err(|_| {
                invalid(key, format!("expected a number between 0 and 1, got {v:?}"))
            })?);
        }
    }
    Ok(())
}

fn required(value: Option<String>, key: &'static str) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Some(_) => Err(invalid(key, "must not be empty")),
        None => Err(invalid(key, "is required when its section is present")),
    }
}

fn aes_key(value: String, key: &'static str) -> Result<String, ConfigError> {
    decode_aes_key(&value).map_err(|_| {
        invalid(
            key,
            format!(
                "must be 43 characters of base64 (the EncodingAESKey from the admin console), got {} characters",
                value.chars().count()
            ),
        )
    })?;
    Ok(value)
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_text.parse().map_err(|_| {
        invalid(
            "listen",
            format!("expected host:port such as 127.0.0.1:8080, got {listen_text:?}"),
        )
    })?;

    let database_url = raw
        .database_url
        .unwrap_or_else(|| "sqlite://data/kefu.db".into());
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        return Err(invalid(
            "database_url",
            "expected sqlite://PATH or postgres://USER@HOST/DB",
        ));
    }

    let log_format = match raw.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "log_format",
                format!("expected text or json, got {other:?}"),
            ))
        }
    };

    let wecom = match raw.wecom {
        None => None,
        Some(w) => {
            let corp_id = required(w.corp_id, "wecom.corp_id")?;
            let token = required(w.token, "wecom.token")?;
            let encoding_aes_key = aes_key(
                required(w.encoding_aes_key, "wecom.encoding_aes_key")?,
                "wecom.encoding_aes_key",
            )?;
            let api_base = w
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
            Some(WecomConfig {
                corp_id,
                token,
                encoding_aes_key,
                secret: w.secret.filter(|s| !s.trim().is_empty()),
                api_base,
                alert_webhook_key: w.alert_webhook_key.filter(|s| !s.trim().is_empty()),
            })
        }
    };

    let mp = match raw.mp {
        None => None,
        Some(m) => Some(MpConfig {
            app_id: required(m.app_id, "mp.app_id")?,
            token: required(m.token, "mp.token")?,
            encoding_aes_key: match m.encoding_aes_key {
                Some(k) if !k.trim().is_empty() => {
                    Some(aes_key(k.trim().to_string(), "mp.encoding_aes_key")?)
                }
                _ => None,
            },
        }),
    };

    let cb = raw.callback.unwrap_or_default();
    let max_body_bytes = cb.max_body_bytes.unwrap_or(64 * 1024);
    if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
        return Err(invalid(
            "callback.max_body_bytes",
            "must be between 1024 and 16777216",
        ));
    }
    let ack_text = cb.ack_text.unwrap_or_else(|| DEFAULT_ACK_TEXT.into());
    if ack_text.trim().is_empty() {
        return Err(invalid("callback.ack_text", "must not be empty"));
    }
    let offline_ack_text = cb
        .offline_ack_text
        .unwrap_or_else(|| DEFAULT_OFFLINE_ACK_TEXT.into());
    if offline_ack_text.trim().is_empty() {
        return Err(invalid("callback.offline_ack_text", "must not be empty"));
    }

    let defaults = crate::intent::Thresholds::default();
    let cl = raw.classifier.unwrap_or_default();
    let classifier = crate::intent::Thresholds {
        unknown_below: cl.unknown_below.unwrap_or(defaults.unknown_below),
        answer_at: cl.answer_at.unwrap_or(defaults.answer_at),
    };
    for (key, v) in [
        ("classifier.unknown_below", classifier.unknown_below),
        ("classifier.answer_at", classifier.answer_at),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(invalid(key, "must be between 0 and 1"));
        }
    }
    if classifier.answer_at < classifier.unknown_below {
        return Err(invalid(
            "classifier.answer_at",
            "must not be below classifier.unknown_below",
        ));
    }

    Ok(Config {
        classifier,
        listen,
        database_url,
        replies_dir: PathBuf::from(raw.replies_dir.unwrap_or_else(|| "replies".into())),
        admin_token: raw.admin_token.filter(|t| !t.is_empty()),
        log_format,
        wecom,
        mp,
        callback: CallbackConfig {
            timestamp_tolerance_secs: cb.timestamp_tolerance_secs.unwrap_or(300),
            max_body_bytes,
            ack_text,
            offline_ack_text,
        },
    })
}

impl WecomConfig {
    pub fn crypt(&self) -> MsgCrypt {
        // Validated at load time.
        MsgCrypt::new(&self.token, &self.encoding_aes_key, &self.corp_id)
            .expect("EncodingAESKey validated at config load")
    }
}

impl MpConfig {
    pub fn crypt(&self) -> Option<MsgCrypt> {
        self.encoding_aes_key.as_ref().map(|k| {
            MsgCrypt::new(&self.token, k, &self.app_id)
                .expect("EncodingAESKey validated at config load")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(toml, Path::new("kefu.toml"), |k| env.get(k).cloned())
    }

    #[test]
    fn empty_config_gives_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://data/kefu.db");
        assert!(c.wecom.is_none() && c.mp.is_none());
        assert_eq!(c.callback.max_body_bytes, 65536);
        assert_eq!(c.callback.timestamp_tolerance_secs, 300);
    }

    #[test]
    fn env_overrides_file_and_can_create_a_section() {
        let c = load(
            "listen = \"127.0.0.1:1\"\n[mp]\napp_id = \"wxfile\"\ntoken = \"t\"\n",
            &[
                ("KEFU_LISTEN", "0.0.0.0:9000"),
                ("KEFU_MP_APP_ID", "wxenv"),
                ("KEFU_WECOM_CORP_ID", "wwcorp"),
                ("KEFU_WECOM_TOKEN", "tok"),
                ("KEFU_WECOM_ENCODING_AES_KEY", KEY),
                ("KEFU_DATABASE_URL", "postgres://u:pw@h/db"),
            ],
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.mp.as_ref().unwrap().app_id, "wxenv");
        assert_eq!(c.wecom.as_ref().unwrap().corp_id, "wwcorp");
        assert_eq!(c.database_url, "postgres://u:pw@h/db");
        assert!(
            !format!("{c:?}").contains("pw@"),
            "password must not be in Debug"
        );
    }

    #[test]
    fn alert_robot_and_off_duty_text_come_from_file_or_env() {
        let base = format!(
            "[wecom]\ncorp_id=\"ww\"\ntoken=\"t\"\nencoding_aes_key=\"{KEY}\"\nalert_webhook_key=\"robot-in-file\"\n"
        );
        let c = load(&base, &[]).unwrap();
        assert_eq!(
            c.wecom.as_ref().unwrap().alert_webhook_key.as_deref(),
            Some("robot-in-file")
        );
        assert_eq!(c.callback.offline_ack_text, DEFAULT_OFFLINE_ACK_TEXT);
        let c = load(
            &base,
            &[
                ("KEFU_WECOM_ALERT_WEBHOOK_KEY", "robot-from-env"),
                ("KEFU_CALLBACK_OFFLINE_ACK_TEXT", "今天休息，明早回复您"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.wecom.as_ref().unwrap().alert_webhook_key.as_deref(),
            Some("robot-from-env")
        );
        assert_eq!(c.callback.offline_ack_text, "今天休息，明早回复您");
        assert!(
            !format!("{c:?}").contains("robot-from-env"),
            "the robot key is a secret"
        );
        let err = load(&base, &[("KEFU_CALLBACK_OFFLINE_ACK_TEXT", "  ")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("callback.offline_ack_text"), "{err}");
    }

    #[test]
    fn bad_aes_key_names_the_key_and_env_var() {
        let err = load(
            "[wecom]\ncorp_id=\"ww\"\ntoken=\"t\"\nencoding_aes_key=\"tooshort\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("wecom.encoding_aes_key"), "{err}");
        assert!(err.contains("KEFU_WECOM_ENCODING_AES_KEY"), "{err}");
        assert!(err.contains("43"), "{err}");
        assert!(
            !err.contains("tooshort"),
            "the secret itself is not echoed: {err}"
        );
    }

    #[test]
    fn missing_required_key_in_a_section_is_named() {
        let err = load("[wecom]\ncorp_id=\"ww\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("wecom.token"), "{err}");
    }

    #[test]
    fn malformed_values_are_clear_errors() {
        let err = load("listen = \"nope\"", &[]).unwrap_err().to_string();
        assert!(err.contains("`listen`"), "{err}");
        let err = load("database_url = \"mysql://x\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database_url"), "{err}");
        let err = load("lisen = \"127.0.0.1:1\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "unknown keys are named: {err}");
        let err = load("", &[("KEFU_CALLBACK_MAX_BODY_BYTES", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("callback.max_body_bytes"), "{err}");
        let err = load("[callback]\nmax_body_bytes = 10", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("callback.max_body_bytes"), "{err}");
    }

    #[test]
    fn redacts_database_password() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
        assert_eq!(redact_url("sqlite://data/kefu.db"), "sqlite://data/kefu.db");
    }
}
