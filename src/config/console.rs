//! `[console]`: how long a console session lasts and how many failed logins are allowed.

use serde::Deserialize;

use super::{invalid, parse_duration_ms, ConfigError, Env};

/// Console session and login limits.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// A session ends after this long without a request (`idle_timeout`, default 8 h).
    pub idle_timeout_ms: i64,
    /// ... and this long after login whatever happens (`session_lifetime`, default 24 h).
    pub session_lifetime_ms: i64,
    /// Failed logins allowed per account within `login_window` (default 5).
    pub login_failures_per_account: u32,
    /// Failed logins allowed per client address within `login_window` (default 20: several
    /// agents may share one office address).
    pub login_failures_per_address: u32,
    /// The sliding window of the two limits (default 15 min).
    pub login_window_ms: i64,
    /// Compliance-lexicon categories that only warn an agent's free reply (the agent may send
    /// it after confirming); every other category blocks it (`compliance_warn`, default none).
    pub compliance_warn: Vec<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            idle_timeout_ms: 8 * 3_600_000,
            session_lifetime_ms: 24 * 3_600_000,
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            login_window_ms: 15 * 60_000,
            compliance_warn: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    idle_timeout: Option<String>,
    session_lifetime: Option<String>,
    login_failures_per_account: Option<u32>,
    login_failures_per_address: Option<u32>,
    login_window: Option<String>,
    compliance_warn: Option<Vec<String>>,
}

impl RawConsole {
    /// Overlay `KEFU_CONSOLE_*`.
    pub(super) fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        env.set(&mut self.idle_timeout, "console.idle_timeout");
        env.set(&mut self.session_lifetime, "console.session_lifetime");
        env.set(&mut self.login_window, "console.login_window");
        for (key, slot) in [
            (
                "console.login_failures_per_account",
                &mut self.login_failures_per_account,
            ),
            (
                "console.login_failures_per_address",
                &mut self.login_failures_per_address,
            ),
        ] {
            if let Some(v) = env.get(key) {
                *slot =
                    Some(v.trim().parse().map_err(|_| {
                        invalid(key, format!("expected a whole number, got {v:?}"))
                    })?);
            }
        }
        Ok(())
    }

    pub(super) fn validate(self) -> Result<ConsoleConfig, ConfigError> {
        let d = ConsoleConfig::default();
        let duration = |v: Option<String>, key: &'static str, default: i64| match v {
            None => Ok(default),
            Some(text) => parse_duration_ms(&text).ok_or_else(|| {
                invalid(
                    key,
                    format!("expected a duration such as \"30m\" or \"8h\", got {text:?}"),
                )
            }),
        };
        let idle_timeout_ms =
            duration(self.idle_timeout, "console.idle_timeout", d.idle_timeout_ms)?;
        let session_lifetime_ms = duration(
            self.session_lifetime,
            "console.session_lifetime",
            d.session_lifetime_ms,
        )?;
        if session_lifetime_ms < idle_timeout_ms {
            return Err(invalid(
                "console.session_lifetime",
                "must be at least console.idle_timeout",
            ));
        }
        let login_window_ms =
            duration(self.login_window, "console.login_window", d.login_window_ms)?;
        let limit = |v: Option<u32>, key: &'static str, default: u32| {
            let n = v.unwrap_or(default);
            if (1..=1000).contains(&n) {
                Ok(n)
            } else {
                Err(invalid(key, "must be between 1 and 1000"))
            }
        };
        let compliance_warn = self.compliance_warn.unwrap_or_default();
        let lexicon = crate::library::lexicon::Lexicon::builtin();
        if let Some(bad) = compliance_warn
            .iter()
            .find(|c| !lexicon.categories().iter().any(|k| &k.id == *c))
        {
            let known: Vec<&str> = lexicon.categories().iter().map(|k| k.id.as_str()).collect();
            return Err(invalid(
                "console.compliance_warn",
                format!(
                    "unknown category {bad:?}; the categories are {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(ConsoleConfig {
            compliance_warn,
            idle_timeout_ms,
            session_lifetime_ms,
            login_failures_per_account: limit(
                self.login_failures_per_account,
                "console.login_failures_per_account",
                d.login_failures_per_account,
            )?,
            login_failures_per_address: limit(
                self.login_failures_per_address,
                "console.login_failures_per_address",
                d.login_failures_per_address,
            )?,
            login_window_ms,
        })
    }
}
