//! Configuration: `kefu.toml` (every key optional) overlaid with `KEFU_*` environment
//! variables, read once into a typed, validated [`Config`]. Every error names the key that is
//! wrong and, where one exists, the environment variable that can set it.
//!
//! The top-level keys live here; each `[section]` lives in its own file, which owns its raw
//! TOML shape, its environment overlay, its validation and its typed result. A new section
//! is a new file plus one field in [`RawConfig`] and [`Config`].

mod callback;
mod classifier;
mod console;
mod mp;
mod priority;
mod server;
mod sla;
mod store;
mod tickets;
mod tiers;
mod wecom;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::crypto::decode_aes_key;

pub use callback::{AckTexts, CallbackLimits, DEFAULT_ACK_TEXT, DEFAULT_OFFLINE_ACK_TEXT};
pub use console::ConsoleConfig;
pub use mp::MpConfig;
pub use server::ServerLimits;
pub use store::DEFAULT_WRITE_TIMEOUT;
pub use tickets::{parse_duration_ms, TicketsConfig};
pub use wecom::{WecomConfig, DEFAULT_OUTBOX_LEASE_SECS};

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
    ConfigError::Invalid {
        key,
        env: format!(" ({})", env_name(key)),
        message: message.into(),
    }
}

/// The `KEFU_*` variable for a dotted key, e.g. `wecom.token` -> `KEFU_WECOM_TOKEN`.
fn env_name(key: &str) -> String {
    format!("KEFU_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The environment, looked up by dotted config key.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, key: &str) -> Option<String> {
        (self.0)(&env_name(key))
    }

    /// Overwrite `slot` when the key's variable is set.
    fn set(&self, slot: &mut Option<String>, key: &str) {
        if let Some(v) = self.get(key) {
            *slot = Some(v);
        }
    }

    /// Whether any of the keys' variables is set.
    fn any(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.get(k).is_some())
    }
}

fn required(value: Option<String>, key: &'static str) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Some(_) => Err(invalid(key, "must not be empty")),
        None => Err(invalid(key, "is required when its section is present")),
    }
}

/// `value` if it is an EncodingAESKey; the error tells its length, never the value.
fn valid_aes_key(value: String, key: &'static str) -> Result<String, ConfigError> {
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    database_url: Option<String>,
    replies_dir: Option<String>,
    admin_token: Option<String>,
    public_url: Option<String>,
    log_format: Option<String>,
    console: Option<console::RawConsole>,
    wecom: Option<wecom::RawWecom>,
    mp: Option<mp::RawMp>,
    server: Option<server::RawServer>,
    store: Option<store::RawStore>,
    callback: Option<callback::RawCallback>,
    classifier: Option<classifier::RawClassifier>,
    tickets: Option<tickets::RawTickets>,
    sla: Option<sla::RawSla>,
    priority: Option<priority::RawPriority>,
    tiers: Option<tiers::RawTiers>,
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
    /// Bearer token of the JSON API; without it the API is disabled.
    pub admin_token: Option<String>,
    /// Where people reach kefu (`public_url`, e.g. `https://kefu.example.com`), as
    /// scheme://host[:port]: the console's expected Origin, and https makes its cookies
    /// Secure.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// `[server]`: timeouts, the connection cap, the shutdown bound.
    pub server: ServerLimits,
    /// `[store] write_timeout`: how long a callback waits for its message to be committed.
    pub store_write_timeout: std::time::Duration,
    /// `[console]`: sessions and login limits.
    pub console: ConsoleConfig,
    pub wecom: Option<WecomConfig>,
    pub mp: Option<MpConfig>,
    /// `[callback]` limits.
    pub callback: CallbackLimits,
    /// `[callback]` acknowledgement texts.
    pub acks: AckTexts,
    pub classifier: crate::intent::Thresholds,
    /// `[sla]`: the business calendar and the SLA minutes per priority.
    pub sla: crate::tickets::SlaSettings,
    /// `[priority]`: tier x intent -> ticket priority.
    pub priority: crate::tickets::PriorityTable,
    /// `[tickets]`.
    pub tickets: TicketsConfig,
    /// `[tiers]`: how tags and RFM make a customer's tier.
    pub tiers: crate::crm::TierRules,
}

impl Config {
    /// Everything tickets need: `[tickets]` with the SLA calendar and policies and the
    /// priority table.
    pub fn ticket_settings(&self) -> crate::tickets::TicketSettings {
        let t = &self.tickets;
        crate::tickets::TicketSettings {
            agents_reply_in: t.agents_reply_in,
            reopen_within_ms: t.reopen_within_ms,
            assignment_timeout_ms: t.assignment_timeout_ms,
            csat: t.csat,
            rejection_phrases: t.rejection_phrases.clone(),
            agents: t.agents.clone(),
            sla: self.sla.clone(),
            priority: self.priority.clone(),
            tiers: self.tiers.clone(),
            ..crate::tickets::TicketSettings::default()
        }
    }
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
            .field("server", &self.server)
            .field("store_write_timeout", &self.store_write_timeout)
            .field("callback", &self.callback)
            .field("acks", &self.acks)
            .finish_non_exhaustive()
    }
}

/// Hide a password in a database URL (`postgres://user:secret@host` -> `user:***@host`).
pub fn redact_url(url: &str) -> String {
    // A password may also travel as a query parameter (`?password=…`, libpq style).
    let (url, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = redact_userinfo(url);
    match query {
        None => base,
        Some(q) => {
            let q: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _))
                        if k.eq_ignore_ascii_case("password")
                            || k.eq_ignore_ascii_case("sslpassword") =>
                    {
                        format!("{k}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
    }
}

fn redact_userinfo(url: &str) -> String {
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

/// `public_url` as scheme://host[:port], lower-cased, without a trailing slash: what a
/// browser sends as `Origin`. A path is refused (the console lives at /console).
fn public_origin(url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let bad = || {
        invalid(
            "public_url",
            format!("expected http(s)://host[:port] without a path, got {url:?}"),
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    if !(scheme == "http" || scheme == "https")
        || rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' '])
    {
        return Err(bad());
    }
    Ok(format!("{scheme}://{}", rest.to_ascii_lowercase()))
}

/// "line L, column C: what" for a TOML error, without the text of the line.
fn parse_error_without_source(text: &str, e: &toml::de::Error) -> String {
    let what = e.message();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what.to_string(),
    }
}

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
        // The parser's own message quotes the offending line, which may hold a secret: say
        // where and what, never the line.
        let mut raw: RawConfig = toml::from_str(toml_text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: parse_error_without_source(toml_text, &e),
        })?;
        raw.apply_env(&Env(&env))?;
        raw.validate()
    }
}

impl RawConfig {
    fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        env.set(&mut self.listen, "listen");
        env.set(&mut self.database_url, "database_url");
        env.set(&mut self.replies_dir, "replies_dir");
        env.set(&mut self.admin_token, "admin_token");
        env.set(&mut self.public_url, "public_url");
        self.console
            .get_or_insert_with(Default::default)
            .apply_env(env)?;
        env.set(&mut self.log_format, "log_format");
        wecom::RawWecom::apply_env(&mut self.wecom, env);
        mp::RawMp::apply_env(&mut self.mp, env);
        self.server
            .get_or_insert_with(Default::default)
            .apply_env(env)?;
        self.store
            .get_or_insert_with(Default::default)
            .apply_env(env);
        self.callback
            .get_or_insert_with(Default::default)
            .apply_env(env)?;
        self.classifier
            .get_or_insert_with(Default::default)
            .apply_env(env)?;
        self.sla
            .get_or_insert_with(Default::default)
            .apply_env(env)?;
        self.priority
            .get_or_insert_with(Default::default)
            .apply_env(env);
        self.tickets
            .get_or_insert_with(Default::default)
            .apply_env(env)?;
        self.tiers
            .get_or_insert_with(Default::default)
            .apply_env(env)
    }

    fn validate(self) -> Result<Config, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("expected host:port such as 127.0.0.1:8080, got {listen_text:?}"),
            )
        })?;

        let database_url = self
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

        let log_format = match self.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("expected text or json, got {other:?}"),
                ))
            }
        };

        let admin_token = self.admin_token.filter(|t| !t.is_empty());
        if let Some(t) = &admin_token {
            // A token of blanks (or one that only differs by them) is a typo, not a secret.
            if t.trim() != t || t.chars().count() < 16 {
                return Err(invalid(
                    "admin_token",
                    "must be at least 16 characters, without leading or trailing spaces",
                ));
            }
        }
        let public_url = self
            .public_url
            .filter(|u| !u.trim().is_empty())
            .map(|u| public_origin(&u))
            .transpose()?;
        let server = self.server.unwrap_or_default().validate()?;
        let store_write_timeout = self.store.unwrap_or_default().validate()?;
        let console = self.console.unwrap_or_default().validate()?;
        let wecom = self.wecom.map(wecom::RawWecom::validate).transpose()?;
        let mp = self.mp.map(mp::RawMp::validate).transpose()?;
        let (callback, acks) = self.callback.unwrap_or_default().validate()?;
        let classifier = self.classifier.unwrap_or_default().validate()?;
        let sla = self.sla.unwrap_or_default().validate()?;
        let priority = self.priority.unwrap_or_default().validate()?;
        let tickets = self.tickets.unwrap_or_default().validate()?;
        let tiers = self.tiers.unwrap_or_default().validate()?;

        Ok(Config {
            listen,
            database_url,
            replies_dir: PathBuf::from(self.replies_dir.unwrap_or_else(|| "replies".into())),
            admin_token,
            public_url,
            log_format,
            server,
            store_write_timeout,
            console,
            wecom,
            mp,
            callback,
            acks,
            classifier,
            tickets,
            sla,
            priority,
            tiers,
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
    fn the_outbox_lease_is_two_minutes_unless_set() {
        let wecom =
            format!("[wecom]\ncorp_id = \"ww1\"\ntoken = \"t\"\nencoding_aes_key = \"{KEY}\"\n");
        let lease = |toml: &str, env: &[(&str, &str)]| {
            load(toml, env).map(|c| c.wecom.map(|w| w.outbox_lease.as_secs()))
        };
        assert_eq!(lease(&wecom, &[]).unwrap(), Some(120));
        let set = format!("{wecom}outbox_lease_secs = 30\n");
        assert_eq!(lease(&set, &[]).unwrap(), Some(30));
        let env = [("KEFU_WECOM_OUTBOX_LEASE_SECS", "10")];
        assert_eq!(lease(&set, &env).unwrap(), Some(10));
        for bad in ["4", "ten", "3601"] {
            let err = lease(&wecom, &[("KEFU_WECOM_OUTBOX_LEASE_SECS", bad)])
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains("wecom.outbox_lease_secs"), "{bad}: {err}");
        }
        // On its own the variable does not make a [wecom] section.
        assert_eq!(lease("", &env).unwrap(), None);
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
        assert_eq!(c.acks.offline_ack_text, DEFAULT_OFFLINE_ACK_TEXT);
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
        assert_eq!(c.acks.offline_ack_text, "今天休息，明早回复您");
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
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=secret&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h/db?Password=x"),
            "postgres://u:***@h/db?Password=***"
        );
    }

    #[test]
    fn a_syntax_error_names_the_place_but_never_prints_the_line() {
        let text = "[wecom]\ncorp_id = \"ww1\"\nsecret = \"very-secret-value\n";
        let e = Config::from_sources(text, Path::new("kefu.toml"), |_| None).unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("line 3"), "{shown}");
    }

    #[test]
    fn an_admin_token_of_blanks_or_too_short_is_refused() {
        for bad in ["   ", "short", " padded-token-of-enough-length "] {
            let text = format!("admin_token = \"{bad}\"\n");
            let e = Config::from_sources(&text, Path::new("kefu.toml"), |_| None).unwrap_err();
            assert!(e.to_string().contains("admin_token"), "{e}");
        }
        let text = "admin_token = \"a-long-enough-admin-token\"\n";
        assert!(Config::from_sources(text, Path::new("kefu.toml"), |_| None).is_ok());
    }

    #[test]
    fn public_url_and_console_limits_are_checked() {
        let c = load("public_url = \"HTTPS://Kefu.Example.com/\"\n", &[]).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://kefu.example.com"));
        assert_eq!(c.console.idle_timeout_ms, 8 * 3_600_000);
        for bad in [
            "kefu.example.com",
            "ftp://x",
            "https://x/console",
            "https://",
        ] {
            let e = load(&format!("public_url = \"{bad}\"\n"), &[]).unwrap_err();
            assert!(e.to_string().contains("public_url"), "{e}");
        }
        let c = load("", &[("KEFU_CONSOLE_IDLE_TIMEOUT", "30m")]).unwrap();
        assert_eq!(c.console.idle_timeout_ms, 30 * 60_000);
        for bad in [
            "[console]\nidle_timeout = \"soon\"\n",
            "[console]\nidle_timeout = \"2d\"\n",
            "[console]\nlogin_failures_per_account = 0\n",
            "[console]\ncompliance_warn = [\"no_such_category\"]\n",
        ] {
            let e = load(bad, &[]).unwrap_err();
            assert!(e.to_string().contains("console."), "{e}");
        }
    }

    #[test]
    fn the_timestamp_window_is_bounded() {
        for bad in ["0", "86400"] {
            let text = format!("[callback]\ntimestamp_tolerance_secs = {bad}\n");
            let e = Config::from_sources(&text, Path::new("kefu.toml"), |_| None).unwrap_err();
            assert!(e.to_string().contains("timestamp_tolerance_secs"), "{e}");
        }
    }

    #[test]
    fn server_limits_and_store_timeout_have_defaults_file_and_env() {
        use std::time::Duration;
        let c = load("", &[]).unwrap();
        assert_eq!(c.server, ServerLimits::default());
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.store_write_timeout, Duration::from_secs(3));
        let c = load(
            "[server]\nheader_read_timeout = \"5s\"\nmax_connections = 64\n[store]\nwrite_timeout = \"2s\"\n",
            &[
                ("KEFU_SERVER_SHUTDOWN_TIMEOUT", "1m"),
                ("KEFU_SERVER_MAX_CONNECTIONS", "128"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(60));
        assert_eq!(c.server.max_connections, 128);
        assert_eq!(c.store_write_timeout, Duration::from_secs(2));
    }

    #[test]
    fn server_limits_are_bounded() {
        for (bad, key) in [
            (
                "[server]\nheader_read_timeout = \"0s\"\n",
                "server.header_read_timeout",
            ),
            (
                "[server]\nheader_read_timeout = \"1h\"\n",
                "server.header_read_timeout",
            ),
            (
                "[server]\nbody_read_timeout = \"soon\"\n",
                "server.body_read_timeout",
            ),
            (
                "[server]\nbody_read_timeout = \"1m\"\nrequest_timeout = \"30s\"\n",
                "server.request_timeout",
            ),
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
            (
                "[server]\nshutdown_timeout = \"1d\"\n",
                "server.shutdown_timeout",
            ),
            ("[store]\nwrite_timeout = \"0s\"\n", "store.write_timeout"),
        ] {
            let e = load(bad, &[]).unwrap_err();
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
        let e = load("", &[("KEFU_SERVER_MAX_CONNECTIONS", "lots")]).unwrap_err();
        assert!(e.to_string().contains("KEFU_SERVER_MAX_CONNECTIONS"), "{e}");
    }

    #[test]
    fn plain_http_api_base_only_to_this_machine() {
        let section = |base: &str| {
            format!("[wecom]\ncorp_id=\"ww\"\ntoken=\"t\"\nencoding_aes_key=\"{KEY}\"\napi_base=\"{base}\"\n")
        };
        let e = load(&section("http://qyapi.weixin.qq.com"), &[]).unwrap_err();
        assert!(e.to_string().contains("wecom.api_base"), "{e}");
        assert!(load(&section("http://127.0.0.1:9100"), &[]).is_ok());
        assert!(load(&section("https://qyapi.weixin.qq.com"), &[]).is_ok());
    }
}
