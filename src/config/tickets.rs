//! `[tickets]`: where agents answer, the reopen window, the idle-assignment timeout, the
//! satisfaction survey, what counts as rejecting the bot's answer, and the agents
//! (`[[tickets.agents]]`).

use serde::Deserialize;

use super::{invalid, ConfigError, Env};
use crate::taxonomy;
use crate::tickets::routing::Agent;
use crate::tickets::{ReplyMode, TicketSettings, DEFAULT_REJECTIONS};

/// The tickets part of the configuration; the SLA and priority sections complete it.
#[derive(Debug, Clone)]
pub struct TicketsConfig {
    pub agents_reply_in: ReplyMode,
    pub reopen_within_ms: i64,
    pub assignment_timeout_ms: i64,
    pub csat: bool,
    pub rejection_phrases: Vec<String>,
    /// Agents known at start (added or updated; duty state comes from WeCom).
    pub agents: Vec<Agent>,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        let d = TicketSettings::default();
        TicketsConfig {
            agents_reply_in: d.agents_reply_in,
            reopen_within_ms: d.reopen_within_ms,
            assignment_timeout_ms: d.assignment_timeout_ms,
            csat: d.csat,
            rejection_phrases: d.rejection_phrases,
            agents: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTickets {
    agents_reply_in: Option<String>,
    reopen_within: Option<String>,
    assignment_timeout: Option<String>,
    csat: Option<bool>,
    rejection_phrases: Option<Vec<String>>,
    #[serde(default)]
    agents: Vec<RawAgent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    servicer_userid: String,
    name: Option<String>,
    groups: Vec<String>,
    capacity: Option<i64>,
    senior: Option<bool>,
}

/// "90s", "10m", "2h", "7d" -> milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit.trim() {
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

impl RawTickets {
    /// Overlay `KEFU_TICKETS_*` (the scalar keys).
    pub(super) fn apply_env(&mut self, env: &Env) -> Result<(), ConfigError> {
        env.set(&mut self.agents_reply_in, "tickets.agents_reply_in");
        env.set(&mut self.reopen_within, "tickets.reopen_within");
        env.set(&mut self.assignment_timeout, "tickets.assignment_timeout");
        if let Some(v) = env.get("tickets.csat") {
            self.csat = Some(match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(invalid(
                        "tickets.csat",
                        format!("expected true or false, got {v:?}"),
                    ))
                }
            });
        }
        Ok(())
    }

    pub(super) fn validate(self) -> Result<TicketsConfig, ConfigError> {
        let d = TicketsConfig::default();
        let agents_reply_in = match self.agents_reply_in.as_deref().map(str::trim) {
            None | Some("console") => ReplyMode::Console,
            Some("wecom") => ReplyMode::Wecom,
            Some(other) => {
                return Err(invalid(
                    "tickets.agents_reply_in",
                    format!("expected \"console\" or \"wecom\", got {other:?}"),
                ))
            }
        };
        let duration = |key: &'static str, v: Option<String>, default: i64| match v {
            None => Ok(default),
            Some(v) => parse_duration_ms(&v).ok_or_else(|| {
                invalid(
                    key,
                    format!("expected a duration such as \"10m\", \"2h\" or \"7d\", got {v:?}"),
                )
            }),
        };
        let reopen_within_ms = duration(
            "tickets.reopen_within",
            self.reopen_within,
            d.reopen_within_ms,
        )?;
        let assignment_timeout_ms = duration(
            "tickets.assignment_timeout",
            self.assignment_timeout,
            d.assignment_timeout_ms,
        )?;
        let rejection_phrases = self
            .rejection_phrases
            .unwrap_or_else(|| DEFAULT_REJECTIONS.iter().map(|s| s.to_string()).collect());
        if rejection_phrases.iter().any(|p| p.trim().is_empty()) {
            return Err(invalid(
                "tickets.rejection_phrases",
                "must not contain an empty phrase",
            ));
        }
        let groups: Vec<&str> = {
            let mut g: Vec<&str> = taxonomy::all().iter().map(|i| i.group).collect();
            g.sort_unstable();
            g.dedup();
            g
        };
        let mut agents = Vec::new();
        for a in self.agents {
            let id = a.servicer_userid.trim().to_string();
            if id.is_empty() {
                return Err(invalid(
                    "tickets.agents.servicer_userid",
                    "must not be empty",
                ));
            }
            if agents.iter().any(|x: &Agent| x.servicer_userid == id) {
                return Err(invalid(
                    "tickets.agents.servicer_userid",
                    format!("{id:?} is listed twice"),
                ));
            }
            if let Some(g) = a.groups.iter().find(|g| !groups.contains(&g.as_str())) {
                return Err(invalid(
                    "tickets.agents.groups",
                    format!(
                        "unknown skill group {g:?} for {id:?}; the groups are {}",
                        groups.join(", ")
                    ),
                ));
            }
            let capacity = a.capacity.unwrap_or(5);
            if !(1..=100).contains(&capacity) {
                return Err(invalid(
                    "tickets.agents.capacity",
                    format!("must be between 1 and 100 (agent {id:?})"),
                ));
            }
            agents.push(Agent {
                name: a.name.unwrap_or_else(|| id.clone()),
                servicer_userid: id,
                groups: a.groups,
                capacity,
                senior: a.senior.unwrap_or(false),
                on_duty: true,
                active: true,
                last_assigned_at: None,
            });
        }
        Ok(TicketsConfig {
            agents_reply_in,
            reopen_within_ms,
            assignment_timeout_ms,
            csat: self.csat.unwrap_or(d.csat),
            rejection_phrases,
            agents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration_ms("10m"), Some(600_000));
        assert_eq!(parse_duration_ms("7d"), Some(7 * 86_400_000));
        assert_eq!(parse_duration_ms(" 90s "), Some(90_000));
        assert_eq!(parse_duration_ms("10"), None);
        assert_eq!(parse_duration_ms("0m"), None);
        assert_eq!(parse_duration_ms("m"), None);
        assert_eq!(parse_duration_ms("5 weeks"), None);
    }
}
