//! `[callback]`: how callbacks are taken in ([`CallbackLimits`]) and what shoppers are told
//! while they wait for a person ([`AckTexts`]).

use serde::Deserialize;

use super::{invalid, ConfigError, Env};

pub const DEFAULT_ACK_TEXT: &str = "您好，消息已收到，客服会尽快为您解答～";
pub const DEFAULT_OFFLINE_ACK_TEXT: &str =
    "您好，人工客服暂时不在线，您的消息已记录，客服上线后会第一时间回复您～";

/// Callback intake limits (`[callback] timestamp_tolerance_secs`, `max_body_bytes`).
#[derive(Debug, Clone)]
pub struct CallbackLimits {
    /// How far a callback's `timestamp` may be from our clock, either way.
    pub timestamp_tolerance_secs: u64,
    /// Larger bodies are refused with 413 before they are parsed.
    pub max_body_bytes: usize,
}

/// What a shopper is told when no canned answer applies or a chat is handed to a person
/// (`[callback] ack_text`, `offline_ack_text`).
#[derive(Debug, Clone)]
pub struct AckTexts {
    /// The passive reply to an Official Account text message when no canned answer applies,
    /// and the acknowledgement of a kf chat handed to a person.
    pub ack_text: String,
    /// Sent instead of `ack_text` when a chat is handed over while every agent of the kf
    /// account is known to be off duty (`servicer_status_change`).
    pub offline_ack_text: String,
}

impl AckTexts {
    /// `ack_text`, with the default off-duty text.
    pub fn new(ack_text: impl Into<String>) -> AckTexts {
        AckTexts {
            ack_text: ack_text.into(),
            offline_ack_text: DEFAULT_OFFLINE_ACK_TEXT.into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCallback {
    timestamp_tolerance_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    ack_text: Option<String>,
    offline_ack_text: Option<String>,
}

impl RawCallback {
    /// Overlay `KEFU_CALLBACK_*`.
    pub(super) fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        let whole_number = |key: &'static str| -> Result<Option<u64>, ConfigError> {
            env.get(key)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| invalid(key, format!("expected a whole number, got {v:?}")))
                })
                .transpose()
        };
        if let Some(v) = whole_number("callback.timestamp_tolerance_secs")? {
            self.timestamp_tolerance_secs = Some(v);
        }
        if let Some(v) = whole_number("callback.max_body_bytes")? {
            self.max_body_bytes = Some(v as usize);
        }
        env.set(&mut self.ack_text, "callback.ack_text");
        env.set(&mut self.offline_ack_text, "callback.offline_ack_text");
        Ok(())
    }

    pub(super) fn validate(self) -> Result<(CallbackLimits, AckTexts), ConfigError> {
        let max_body_bytes = self.max_body_bytes.unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(invalid(
                "callback.max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        let ack_text = self.ack_text.unwrap_or_else(|| DEFAULT_ACK_TEXT.into());
        if ack_text.trim().is_empty() {
            return Err(invalid("callback.ack_text", "must not be empty"));
        }
        let offline_ack_text = self
            .offline_ack_text
            .unwrap_or_else(|| DEFAULT_OFFLINE_ACK_TEXT.into());
        if offline_ack_text.trim().is_empty() {
            return Err(invalid("callback.offline_ack_text", "must not be empty"));
        }
        // WeCom signs a timestamp so that a captured callback cannot be replayed for long:
        // a window past an hour would defeat that, and zero would refuse every callback.
        let timestamp_tolerance_secs = self.timestamp_tolerance_secs.unwrap_or(300);
        if !(1..=3600).contains(&timestamp_tolerance_secs) {
            return Err(invalid(
                "callback.timestamp_tolerance_secs",
                "must be between 1 and 3600",
            ));
        }
        Ok((
            CallbackLimits {
                timestamp_tolerance_secs,
                max_body_bytes,
            },
            AckTexts {
                ack_text,
                offline_ack_text,
            },
        ))
    }
}
