//! `[classifier]`: the confidence thresholds of the intent classifier.

use serde::Deserialize;

use super::{invalid, ConfigError, Env};
use crate::intent::Thresholds;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClassifier {
    unknown_below: Option<f32>,
    answer_at: Option<f32>,
}

impl RawClassifier {
    /// Overlay `KEFU_CLASSIFIER_*`.
    pub(super) fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        for (key, slot) in [
            ("classifier.unknown_below", &mut self.unknown_below),
            ("classifier.answer_at", &mut self.answer_at),
        ] {
            if let Some(v) = env.get(key) {
                *slot = Some(v.trim().parse::<f32>().map_err(|_| {
                    invalid(key, format!("expected a number between 0 and 1, got {v:?}"))
                })?);
            }
        }
        Ok(())
    }

    pub(super) fn validate(self) -> Result<Thresholds, ConfigError> {
        let defaults = Thresholds::default();
        let thresholds = Thresholds {
            unknown_below: self.unknown_below.unwrap_or(defaults.unknown_below),
            answer_at: self.answer_at.unwrap_or(defaults.answer_at),
        };
        for (key, v) in [
            ("classifier.unknown_below", thresholds.unknown_below),
            ("classifier.answer_at", thresholds.answer_at),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, "must be between 0 and 1"));
            }
        }
        if thresholds.answer_at < thresholds.unknown_below {
            return Err(invalid(
                "classifier.answer_at",
                "must not be below classifier.unknown_below",
            ));
        }
        Ok(thresholds)
    }
}
