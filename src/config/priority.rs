//! `[priority]`: the table that gives a ticket its priority from the customer's tier and
//! the intent ([`PriorityTable`]; its module documents the default rules).
//!
//! ```toml
//! [priority]
//! default = "normal"            # when no rule matches
//!
//! [[priority.rules]]            # tried in order, the first match wins
//! tiers = ["vip"]               # none: any tier
//! intents = ["complaint"]       # intents and/or skill groups; neither: any intent
//! priority = "urgent"
//! ```
//!
//! Rules given in the file replace the default rules as a whole.

use serde::Deserialize;

use super::{invalid, ConfigError, Env};
use crate::crm::CustomerTier;
use crate::taxonomy;
use crate::tickets::priority::{default_rules, PriorityRule};
use crate::tickets::{Priority, PriorityTable};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPriority {
    default: Option<String>,
    rules: Option<Vec<RawRule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    tiers: Vec<String>,
    #[serde(default)]
    intents: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    priority: Option<String>,
}

fn priority_names() -> String {
    Priority::ALL.map(Priority::as_str).join(", ")
}

impl RawPriority {
    /// Overlay `KEFU_PRIORITY_DEFAULT`.
    pub(super) fn apply_env(&mut self, env: &Env) {
        env.set(&mut self.default, "priority.default");
    }

    pub(super) fn validate(self) -> Result<PriorityTable, ConfigError> {
        let default = match self.default.as_deref().map(str::trim) {
            None => Priority::Normal,
            Some(name) => Priority::parse(name).ok_or_else(|| {
                invalid(
                    "priority.default",
                    format!(
                        "unknown priority {name:?}: expected one of {}",
                        priority_names()
                    ),
                )
            })?,
        };
        let rules = match self.rules {
            None => default_rules(),
            Some(raw) => raw
                .into_iter()
                .enumerate()
                .map(|(i, r)| r.validate(i + 1))
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(PriorityTable::new(rules, default))
    }
}

impl RawRule {
    /// `n` counts the rules from 1, as a reader of the file would.
    fn validate(self, n: usize) -> Result<PriorityRule, ConfigError> {
        let bad = |what: String| invalid("priority.rules", format!("rule {n}: {what}"));
        let tiers = self
            .tiers
            .iter()
            .map(|t| {
                CustomerTier::parse(t.trim()).ok_or_else(|| {
                    bad(format!(
                        "unknown tier {t:?} in `tiers`: expected vip, high, normal or new"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for intent in &self.intents {
            if intent != taxonomy::UNKNOWN && taxonomy::get(intent).is_none() {
                return Err(bad(format!(
                    "unknown intent {intent:?} in `intents` (see src/taxonomy/intents.tsv)"
                )));
            }
        }
        for group in &self.groups {
            if !taxonomy::all().iter().any(|i| i.group == group) {
                let mut known: Vec<&str> = taxonomy::all().iter().map(|i| i.group).collect();
                known.dedup();
                return Err(bad(format!(
                    "unknown group {group:?} in `groups`: expected one of {}",
                    known.join(", ")
                )));
            }
        }
        let priority = match self.priority.as_deref().map(str::trim) {
            None => return Err(bad("`priority` is required".into())),
            Some(name) => Priority::parse(name).ok_or_else(|| {
                bad(format!(
                    "unknown priority {name:?}: expected one of {}",
                    priority_names()
                ))
            })?,
        };
        Ok(PriorityRule {
            tiers,
            intents: self.intents,
            groups: self.groups,
            priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::crm::CustomerTier;
    use crate::tickets::{Priority, PriorityTable};

    fn table(text: &str) -> Result<PriorityTable, String> {
        Config::from_sources(text, Path::new("kefu.toml"), |_| None)
            .map(|c| c.priority)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn no_section_gives_the_default_table() {
        assert_eq!(table("").unwrap(), PriorityTable::default());
    }

    #[test]
    fn rules_in_the_file_replace_the_defaults() {
        let t = table(
            r#"
[priority]
default = "low"
[[priority.rules]]
tiers = ["vip", "high"]
intents = ["complaint"]
groups = ["aftersale"]
priority = "urgent"
[[priority.rules]]
tiers = ["new"]
groups = ["presale"]
priority = "high"
"#,
        )
        .unwrap();
        assert_eq!(t.rules().len(), 2);
        let p = |tier, intent, group| t.priority(tier, intent, group, false);
        assert_eq!(
            p(CustomerTier::High, "exchange", "aftersale"),
            Priority::Urgent
        );
        assert_eq!(
            p(CustomerTier::Vip, "complaint", "service"),
            Priority::Urgent
        );
        assert_eq!(p(CustomerTier::New, "stock", "presale"), Priority::High);
        assert_eq!(p(CustomerTier::Vip, "tracking", "logistics"), Priority::Low);
        let env = Config::from_sources("", Path::new("kefu.toml"), |k| {
            (k == "KEFU_PRIORITY_DEFAULT").then(|| "high".to_string())
        })
        .unwrap();
        assert_eq!(env.priority.default_priority(), Priority::High);
    }

    #[test]
    fn unknown_names_are_refused_with_the_key() {
        let cases = [
            ("[priority]\ndefault = \"asap\"\n", "priority.default"),
            (
                "[[priority.rules]]\ntiers = [\"gold\"]\npriority = \"high\"\n",
                "gold",
            ),
            (
                "[[priority.rules]]\nintents = [\"complaints\"]\npriority = \"high\"\n",
                "complaints",
            ),
            (
                "[[priority.rules]]\ngroups = [\"sales\"]\npriority = \"high\"\n",
                "sales",
            ),
            (
                "[[priority.rules]]\nintents = [\"complaint\"]\npriority = \"p1\"\n",
                "p1",
            ),
            (
                "[[priority.rules]]\nintents = [\"complaint\"]\n",
                "required",
            ),
        ];
        for (text, needle) in cases {
            let e = table(text).unwrap_err();
            assert!(e.contains("priority."), "{text}: {e}");
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = table("[[priority.rules]]\npriority = \"high\"\n[[priority.rules]]\ntiers = [\"x\"]\npriority = \"low\"\n").unwrap_err();
        assert!(e.contains("rule 2"), "{e}");
    }
}
