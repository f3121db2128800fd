//! `[tiers]`: how tags and RFM scores make a customer's tier (see [`crate::crm::rules`]).
//!
//! Every key is optional; without the section the defaults apply: `vip_tags = ["VIP",
//! "SVIP"]`, `vip_min_rfm = 13`, `high_tags = []`, `high_min_rfm = 10`,
//! `raise_priority_tags = ["投诉风险"]`. In the environment a tag list is comma-separated.

use serde::Deserialize;

use super::{invalid, ConfigError, Env};
use crate::crm::TierRules;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTiers {
    vip_tags: Option<Vec<String>>,
    vip_min_rfm: Option<u32>,
    high_tags: Option<Vec<String>>,
    high_min_rfm: Option<u32>,
    raise_priority_tags: Option<Vec<String>>,
}

impl RawTiers {
    /// Overlay `KEFU_TIERS_*`.
    pub(super) fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        for (key, slot) in [
            ("tiers.vip_min_rfm", &mut self.vip_min_rfm),
            ("tiers.high_min_rfm", &mut self.high_min_rfm),
        ] {
            if let Some(v) = env.get(key) {
                *slot =
                    Some(v.trim().parse::<u32>().map_err(|_| {
                        invalid(key, format!("expected a whole number, got {v:?}"))
                    })?);
            }
        }
        for (key, slot) in [
            ("tiers.vip_tags", &mut self.vip_tags),
            ("tiers.high_tags", &mut self.high_tags),
            ("tiers.raise_priority_tags", &mut self.raise_priority_tags),
        ] {
            if let Some(v) = env.get(key) {
                *slot = Some(
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
        }
        Ok(())
    }

    pub(super) fn validate(self) -> Result<TierRules, ConfigError> {
        let defaults = TierRules::default();
        let rules = TierRules {
            vip_tags: tags("tiers.vip_tags", self.vip_tags, defaults.vip_tags)?,
            vip_min_rfm: self.vip_min_rfm.unwrap_or(defaults.vip_min_rfm),
            high_tags: tags("tiers.high_tags", self.high_tags, defaults.high_tags)?,
            high_min_rfm: self.high_min_rfm.unwrap_or(defaults.high_min_rfm),
            raise_priority_tags: tags(
                "tiers.raise_priority_tags",
                self.raise_priority_tags,
                defaults.raise_priority_tags,
            )?,
        };
        // Three scores of 1 to 5 add up to 3..=15.
        for (key, v) in [
            ("tiers.vip_min_rfm", rules.vip_min_rfm),
            ("tiers.high_min_rfm", rules.high_min_rfm),
        ] {
            if v != 0 && !(3..=15).contains(&v) {
                return Err(invalid(
                    key,
                    format!("must be between 3 and 15 (R+F+M), or 0 to turn the rule off; got {v}"),
                ));
            }
        }
        if rules.vip_min_rfm != 0 && rules.high_min_rfm > rules.vip_min_rfm {
            return Err(invalid(
                "tiers.high_min_rfm",
                "must not be above tiers.vip_min_rfm",
            ));
        }
        Ok(rules)
    }
}

/// A tag list: trimmed, none empty.
fn tags(
    key: &'static str,
    given: Option<Vec<String>>,
    default: Vec<String>,
) -> Result<Vec<String>, ConfigError> {
    let Some(given) = given else {
        return Ok(default);
    };
    given
        .into_iter()
        .map(|t| {
            let t = t.trim();
            if t.is_empty() {
                Err(invalid(key, "must not contain an empty tag"))
            } else {
                Ok(t.to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::crm::TierRules;
    use std::path::Path;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(toml, Path::new("kefu.toml"), |k| env.get(k).cloned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn without_the_section_the_defaults_apply() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.tiers, TierRules::default());
        assert_eq!(c.tiers.vip_min_rfm, 13);
        assert_eq!(c.tiers.raise_priority_tags, ["投诉风险"]);
    }

    #[test]
    fn keys_come_from_the_file_and_the_environment() {
        let c = load(
            "[tiers]\nvip_tags = [\"黑卡\"]\nvip_min_rfm = 14\nhigh_tags = [\"老客户\"]\n",
            &[
                ("KEFU_TIERS_HIGH_MIN_RFM", "11"),
                ("KEFU_TIERS_RAISE_PRIORITY_TAGS", "投诉风险, 差评"),
            ],
        )
        .unwrap();
        assert_eq!(c.tiers.vip_tags, ["黑卡"]);
        assert_eq!(c.tiers.vip_min_rfm, 14);
        assert_eq!(c.tiers.high_tags, ["老客户"]);
        assert_eq!(c.tiers.high_min_rfm, 11);
        assert_eq!(c.tiers.raise_priority_tags, ["投诉风险", "差评"]);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (toml, env, key) in [
            ("[tiers]\nvip_min_rfm = 16\n", None, "tiers.vip_min_rfm"),
            ("[tiers]\nhigh_min_rfm = 2\n", None, "tiers.high_min_rfm"),
            (
                "[tiers]\nvip_min_rfm = 10\nhigh_min_rfm = 12\n",
                None,
                "tiers.high_min_rfm",
            ),
            ("[tiers]\nvip_tags = [\" \"]\n", None, "tiers.vip_tags"),
            ("[tiers]\nvip_tag = [\"VIP\"]\n", None, "vip_tag"),
            (
                "",
                Some(("KEFU_TIERS_VIP_MIN_RFM", "lots")),
                "tiers.vip_min_rfm",
            ),
        ] {
            let env: Vec<(&str, &str)> = env.into_iter().collect();
            let err = load(toml, &env).unwrap_err();
            assert!(err.contains(key), "{toml:?}: {err}");
        }
        let c = load("[tiers]\nvip_min_rfm = 0\nhigh_min_rfm = 12\n", &[]).unwrap();
        assert_eq!(c.tiers.vip_min_rfm, 0, "0 turns the RFM VIP rule off");
    }
}
