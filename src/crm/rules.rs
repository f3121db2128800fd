//! Tier rules (`[tiers]` in config): tags and RFM make a [`CustomerTier`], with reasons a
//! supervisor can read.
//!
//! In order, the first that applies:
//! 1. a tag matching `vip_tags`, or R+F+M ≥ `vip_min_rfm` → VIP;
//! 2. a tag matching `high_tags`, or R+F+M ≥ `high_min_rfm` → high;
//! 3. any orders → normal;
//! 4. otherwise → new.
//!
//! A customer tag matches a rule tag when it contains it, ignoring case: `VIP` matches
//! `vip`, `SVIP` and `金卡VIP`. A tag matching `raise_priority_tags` (default `投诉风险`)
//! sets [`Standing::raise_priority`], whatever the tier. A `*_min_rfm` of 0 turns that rule off.

use super::rfm::{china_day, RfmScores};
use super::{CustomerTier, Standing};

/// The rules, as validated from `[tiers]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierRules {
    pub vip_tags: Vec<String>,
    /// R+F+M at or above which a customer is VIP; 0: never by RFM.
    pub vip_min_rfm: u32,
    pub high_tags: Vec<String>,
    /// R+F+M at or above which a customer is high; 0: never by RFM.
    pub high_min_rfm: u32,
    pub raise_priority_tags: Vec<String>,
}

impl Default for TierRules {
    fn default() -> TierRules {
        TierRules {
            vip_tags: vec!["VIP".into(), "SVIP".into()],
            vip_min_rfm: 13,
            high_tags: Vec::new(),
            high_min_rfm: 10,
            raise_priority_tags: vec!["投诉风险".into()],
        }
    }
}

/// What the rules look at for one customer.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// Corp tags and imported tags, merged.
    pub tags: &'a [String],
    /// Lifetime orders (0 without history).
    pub orders: i64,
    pub spent_fen: i64,
    pub last_order_at: Option<i64>,
    /// `None` without orders.
    pub rfm: Option<RfmScores>,
}

/// Words that turn a tag into its opposite: "非VIP", "VIP已过期", "前VIP" name customers who
/// are not (or no longer) VIPs.
const NEGATIONS: [&str; 7] = ["非", "不是", "过期", "失效", "取消", "前", "曾"];

/// The first of `tags` that matches one of `rule_tags`: contains it, ignoring case, and says
/// nothing that negates it.
fn matching<'t>(tags: &'t [String], rule_tags: &[String]) -> Option<&'t str> {
    tags.iter()
        .find(|t| {
            let t = t.to_lowercase();
            rule_tags.iter().any(|r| t.contains(&r.to_lowercase()))
                && !NEGATIONS.iter().any(|n| t.contains(n))
        })
        .map(String::as_str)
}

impl TierRules {
    /// The customer's standing at `now_ms` (used for "last order N days ago").
    pub fn standing(&self, facts: &Facts, now_ms: i64) -> Standing {
        let total = facts.rfm.map(|s| s.total());
        let reaches = |min: u32| min > 0 && total.is_some_and(|t| t >= min);
        let mut reasons = Vec::new();
        let mut rfm_said = false;
        let tier = if let Some(tag) = matching(facts.tags, &self.vip_tags) {
            reasons.push(format!("tag {tag}"));
            CustomerTier::Vip
        } else if reaches(self.vip_min_rfm) {
            reasons.push(rfm_reason(facts.rfm, "VIP", self.vip_min_rfm));
            rfm_said = true;
            CustomerTier::Vip
        } else if let Some(tag) = matching(facts.tags, &self.high_tags) {
            reasons.push(format!("tag {tag}"));
            CustomerTier::High
        } else if reaches(self.high_min_rfm) {
            reasons.push(rfm_reason(facts.rfm, "high", self.high_min_rfm));
            rfm_said = true;
            CustomerTier::High
        } else if facts.orders > 0 {
            CustomerTier::Normal
        } else {
            CustomerTier::New
        };
        if facts.orders > 0 {
            reasons.push(format!(
                "{} order{}, {} in total",
                facts.orders,
                if facts.orders == 1 { "" } else { "s" },
                yuan(facts.spent_fen)
            ));
            reasons.push(match facts.last_order_at {
                Some(at) => last_order(at, now_ms),
                None => "last order date unknown".into(),
            });
            if let (Some(rfm), false) = (facts.rfm, rfm_said) {
                reasons.push(rfm.to_string());
            }
        } else {
            reasons.push("no orders on record".into());
        }
        let raise = matching(facts.tags, &self.raise_priority_tags);
        if let Some(tag) = raise {
            reasons.push(format!("tag {tag} raises priority"));
        }
        Standing {
            tier,
            reasons,
            raise_priority: raise.is_some(),
        }
    }
}

/// `RFM 5+5+4 = 14, VIP from 13`
fn rfm_reason(rfm: Option<RfmScores>, tier: &str, min: u32) -> String {
    match rfm {
        Some(s) => format!("{s}, {tier} from {min}"),
        None => format!("RFM {tier} from {min}"),
    }
}

/// `last order today` / `yesterday` / `3 days ago`, counted in China calendar days.
fn last_order(at_ms: i64, now_ms: i64) -> String {
    match china_day(now_ms) - china_day(at_ms) {
        d if d < 0 => "last order in the future".into(),
        0 => "last order today".into(),
        1 => "last order yesterday".into(),
        d => format!("last order {d} days ago"),
    }
}

/// Fen as yuan with thousands separators: `¥8,600`, `¥8,600.50`, `-¥3.20`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    let digits = (fen / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match fen % 100 {
        0 => format!("{sign}¥{grouped}"),
        cents => format!("{sign}¥{grouped}.{cents:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negated_tag_is_no_match() {
        let rule = vec!["VIP".to_string()];
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(matching(&tags(&["金卡VIP"]), &rule), Some("金卡VIP"));
        assert_eq!(matching(&tags(&["svip"]), &rule), Some("svip"));
        assert_eq!(matching(&tags(&["非VIP"]), &rule), None);
        assert_eq!(matching(&tags(&["VIP已过期"]), &rule), None);
        assert_eq!(matching(&tags(&["前VIP", "VIP"]), &rule), Some("VIP"));
    }
    use crate::crm::rfm::DAY_MS;

    const NOW: i64 = 1_795_000_000_000;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    fn rfm(r: u8, f: u8, m: u8) -> Option<RfmScores> {
        Some(RfmScores {
            recency: r,
            frequency: f,
            monetary: m,
        })
    }

    fn buyer<'a>(t: &'a [String], scores: Option<RfmScores>) -> Facts<'a> {
        Facts {
            tags: t,
            orders: 14,
            spent_fen: 860_000,
            last_order_at: Some(NOW - 3 * DAY_MS),
            rfm: scores,
        }
    }

    #[test]
    fn money_has_thousands_separators() {
        assert_eq!(yuan(860_000), "¥8,600");
        assert_eq!(yuan(860_050), "¥8,600.50");
        assert_eq!(yuan(12_345_678_901), "¥123,456,789.01");
        assert_eq!(yuan(0), "¥0");
        assert_eq!(yuan(99_900), "¥999");
        assert_eq!(yuan(-320), "-¥3.20");
    }

    #[test]
    fn vip_by_tag_lists_the_tag_then_the_history() {
        let t = tags(&["老客户", "金卡VIP"]);
        let s = TierRules::default().standing(&buyer(&t, rfm(5, 5, 4)), NOW);
        assert_eq!(s.tier, CustomerTier::Vip);
        assert_eq!(
            s.reasons,
            [
                "tag 金卡VIP",
                "14 orders, ¥8,600 in total",
                "last order 3 days ago",
                "RFM 5+5+4 = 14"
            ]
        );
        assert!(!s.raise_priority);
        for t in [&["vip"][..], &["SVIP"], &["svip会员"]] {
            let t = tags(t);
            let s = TierRules::default().standing(
                &Facts {
                    tags: &t,
                    ..Facts::default()
                },
                NOW,
            );
            assert_eq!(s.tier, CustomerTier::Vip, "{t:?}");
        }
    }

    #[test]
    fn rfm_thresholds_make_vip_high_and_normal() {
        let rules = TierRules::default();
        let s = rules.standing(&buyer(&[], rfm(5, 4, 4)), NOW);
        assert_eq!(s.tier, CustomerTier::Vip);
        assert_eq!(s.reasons[0], "RFM 5+4+4 = 13, VIP from 13");
        assert_eq!(s.reasons.len(), 3, "RFM said once: {:?}", s.reasons);
        let s = rules.standing(&buyer(&[], rfm(4, 4, 4)), NOW);
        assert_eq!(s.tier, CustomerTier::High);
        assert_eq!(s.reasons[0], "RFM 4+4+4 = 12, high from 10");
        let s = rules.standing(&buyer(&[], rfm(3, 3, 3)), NOW);
        assert_eq!(s.tier, CustomerTier::Normal);
        assert_eq!(s.reasons.last().map(String::as_str), Some("RFM 3+3+3 = 9"));
    }

    #[test]
    fn newcomers_and_a_single_order() {
        let rules = TierRules::default();
        let s = rules.standing(&Facts::default(), NOW);
        assert_eq!(s.tier, CustomerTier::New);
        assert_eq!(s.reasons, ["no orders on record"]);
        let one = Facts {
            orders: 1,
            spent_fen: 9_950,
            last_order_at: Some(NOW - 1000),
            rfm: rfm(1, 1, 1),
            ..Facts::default()
        };
        let s = rules.standing(&one, NOW);
        assert_eq!(s.tier, CustomerTier::Normal);
        assert_eq!(
            s.reasons,
            [
                "1 order, ¥99.50 in total",
                "last order today",
                "RFM 1+1+1 = 3"
            ]
        );
        let undated = Facts {
            last_order_at: None,
            ..one
        };
        assert_eq!(
            rules.standing(&undated, NOW).reasons[1],
            "last order date unknown"
        );
    }

    #[test]
    fn a_complaint_risk_tag_raises_priority_and_says_so() {
        let t = tags(&["投诉风险"]);
        let s = TierRules::default().standing(
            &Facts {
                tags: &t,
                ..Facts::default()
            },
            NOW,
        );
        assert!(s.raise_priority);
        assert_eq!(s.tier, CustomerTier::New);
        assert_eq!(
            s.reasons,
            ["no orders on record", "tag 投诉风险 raises priority"]
        );
    }

    #[test]
    fn configured_rules_replace_the_defaults() {
        let rules = TierRules {
            vip_tags: tags(&["黑卡"]),
            vip_min_rfm: 0,
            high_tags: tags(&["vip"]),
            high_min_rfm: 15,
            raise_priority_tags: Vec::new(),
        };
        let t = tags(&["VIP", "投诉风险"]);
        let s = rules.standing(&buyer(&t, rfm(5, 5, 5)), NOW);
        assert_eq!(
            s.tier,
            CustomerTier::High,
            "RFM VIP is off; VIP is a high tag"
        );
        assert_eq!(s.reasons[0], "tag VIP");
        assert!(!s.raise_priority);
        let t = tags(&["黑卡会员"]);
        let s = rules.standing(&buyer(&t, rfm(1, 1, 1)), NOW);
        assert_eq!(s.tier, CustomerTier::Vip);
        let s = rules.standing(&buyer(&[], rfm(5, 5, 5)), NOW);
        assert_eq!(s.tier, CustomerTier::High);
        assert_eq!(s.reasons[0], "RFM 5+5+5 = 15, high from 15");
    }
}
