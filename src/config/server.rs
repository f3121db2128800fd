//! `[server]`: how long a client may take over each part of a request, how many connections
//! are served at once, and how long a shutdown may take whatever clients do.

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, parse_duration_ms, ConfigError, Env};

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From the first byte a connection is waited on (a new connection, or one kept alive
    /// after a response) to the end of the request's headers; past it the connection is
    /// closed (`header_read_timeout`, default 10 s). This also ends idle kept-alive
    /// connections.
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body: a body still arriving then is
    /// cut, the request answered 408 and the connection closed (`body_read_timeout`,
    /// default 15 s).
    pub body_read_timeout: Duration,
    /// From the end of the headers to the response's status line; past it the request is
    /// answered 503 (`request_timeout`, default 30 s). A streamed response (the console's
    /// event feed) is not cut once it has started.
    pub request_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one
    /// closes (`max_connections`, default 1024).
    pub max_connections: usize,
    /// After SIGTERM or Ctrl-C: how long requests in flight and background workers get
    /// before the remaining connections are closed, the store included
    /// (`shutdown_timeout`, default 10 s). The process exits within it.
    pub shutdown_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    request_timeout: Option<String>,
    max_connections: Option<usize>,
    shutdown_timeout: Option<String>,
}

/// A duration in whole seconds or more ("10s", "2m"), between `min` and `max` seconds.
pub(super) fn bounded_duration(
    value: Option<String>,
    key: &'static str,
    default: Duration,
    (min, max): (u64, u64),
) -> Result<Duration, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let ms = parse_duration_ms(&text).ok_or_else(|| {
        invalid(
            key,
            format!("expected a duration such as \"10s\" or \"2m\", got {text:?}"),
        )
    })?;
    let d = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
    if d < Duration::from_secs(min) || d > Duration::from_secs(max) {
        return Err(invalid(
            key,
            format!("must be between {min} s and {max} s, got {text:?}"),
        ));
    }
    Ok(d)
}

impl RawServer {
    /// Overlay `KEFU_SERVER_*`.
    pub(super) fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        env.set(&mut self.header_read_timeout, "server.header_read_timeout");
        env.set(&mut self.body_read_timeout, "server.body_read_timeout");
        env.set(&mut self.request_timeout, "server.request_timeout");
        env.set(&mut self.shutdown_timeout, "server.shutdown_timeout");
        if let Some(v) = env.get("server.max_connections") {
            self.max_connections = Some(v.trim().parse().map_err(|_| {
                invalid(
                    "server.max_connections",
                    format!("expected a whole number, got {v:?}"),
                )
            })?);
        }
        Ok(())
    }

    pub(super) fn validate(self) -> Result<ServerLimits, ConfigError> {
        let d = ServerLimits::default();
        let header_read_timeout = bounded_duration(
            self.header_read_timeout,
            "server.header_read_timeout",
            d.header_read_timeout,
            (1, 600),
        )?;
        let body_read_timeout = bounded_duration(
            self.body_read_timeout,
            "server.body_read_timeout",
            d.body_read_timeout,
            (1, 3600),
        )?;
        let request_timeout = bounded_duration(
            self.request_timeout,
            "server.request_timeout",
            d.request_timeout,
            (1, 3600),
        )?;
        if request_timeout < body_read_timeout {
            return Err(invalid(
                "server.request_timeout",
                "must be at least server.body_read_timeout (the body is read within it)",
            ));
        }
        let shutdown_timeout = bounded_duration(
            self.shutdown_timeout,
            "server.shutdown_timeout",
            d.shutdown_timeout,
            (1, 600),
        )?;
        let max_connections = self.max_connections.unwrap_or(d.max_connections);
        // Each connection is a file descriptor (two behind a proxy); far past 100 000 the
        // process limit is reached first.
        if !(1..=100_000).contains(&max_connections) {
            return Err(invalid(
                "server.max_connections",
                "must be between 1 and 100000",
            ));
        }
        Ok(ServerLimits {
            header_read_timeout,
            body_read_timeout,
            request_timeout,
            max_connections,
            shutdown_timeout,
        })
    }
}
