//! `[store]`: how long a callback waits for the store to record its message.

use std::time::Duration;

use serde::Deserialize;

use super::server::bounded_duration;
use super::{ConfigError, Env};

/// How long a callback waits for its message to be committed before answering 503 (WeCom
/// and WeChat then retry) instead of hanging on a database that does not answer
/// (`write_timeout`, default 3 s: WeChat gives a callback 5 s).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    write_timeout: Option<String>,
}

impl RawStore {
    /// Overlay `KEFU_STORE_*`.
    pub(super) fn apply_env(&mut self, env: &Env) {
        env.set(&mut self.write_timeout, "store.write_timeout");
    }

    /// The write timeout.
    pub(super) fn validate(self) -> Result<Duration, ConfigError> {
        bounded_duration(
            self.write_timeout,
            "store.write_timeout",
            DEFAULT_WRITE_TIMEOUT,
            (1, 600),
        )
    }
}
