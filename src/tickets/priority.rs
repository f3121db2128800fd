//! A ticket's priority from the customer's tier and the intent (a table in config).
//!
//! The table is a list of rules, tried in order; the first that matches gives the priority,
//! and when none does the table's default applies. A rule names tiers (none: any tier) and
//! intents and/or skill groups (none: any intent); it matches when the tier is listed and
//! the intent is listed or belongs to a listed group. A `raised` ticket (tagged e.g.
//! 投诉风险) then moves one step up.
//!
//! The default table ([`PriorityTable::default`]), first match wins:
//!
//! | # | tiers | intents / groups | priority |
//! |---|---|---|---|
//! | 1 | vip | complaint, delivery_problem, damaged_item, wrong_item, payment_issue | urgent |
//! | 2 | vip | any | high |
//! | 3 | high | complaint, delivery_problem, damaged_item, wrong_item, payment_issue | high |
//! | 4 | high | any | normal |
//! | 5 | any | complaint | high |
//! | 6 | any | greeting, thanks, business_hours; group account | low |
//! | – | default | | normal |
//!
//! So a VIP complaint is urgent, a normal or new customer's complaint high, their order,
//! logistics, after-sale and presale questions normal (a new customer's presale question
//! is a sale to win), and small talk and account questions low.

use super::model::Priority;
use crate::crm::CustomerTier;

/// The intents that report something gone wrong with an order (the handoff intents other
/// than `human_agent`).
pub const PROBLEM_INTENTS: [&str; 5] = [
    "complaint",
    "delivery_problem",
    "damaged_item",
    "wrong_item",
    "payment_issue",
];

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityRule {
    /// Tiers it applies to; empty: every tier.
    pub tiers: Vec<CustomerTier>,
    /// Intent ids it applies to.
    pub intents: Vec<String>,
    /// Skill groups it applies to. With `intents` also empty: every intent.
    pub groups: Vec<String>,
    pub priority: Priority,
}

impl PriorityRule {
    pub fn matches(&self, tier: CustomerTier, intent: &str, group: &str) -> bool {
        let tier_ok = self.tiers.is_empty() || self.tiers.contains(&tier);
        let any_intent = self.intents.is_empty() && self.groups.is_empty();
        tier_ok
            && (any_intent
                || self.intents.iter().any(|i| i == intent)
                || self.groups.iter().any(|g| g == group))
    }
}

/// Tier x intent (or the intent's group) -> priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityTable {
    rules: Vec<PriorityRule>,
    default: Priority,
}

impl Default for PriorityTable {
    fn default() -> Self {
        PriorityTable::new(default_rules(), Priority::Normal)
    }
}

/// The rules of [`PriorityTable::default`] (see the module documentation).
pub fn default_rules() -> Vec<PriorityRule> {
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let rule = |tiers: &[CustomerTier], intents: &[&str], groups: &[&str], priority| PriorityRule {
        tiers: tiers.to_vec(),
        intents: strings(intents),
        groups: strings(groups),
        priority,
    };
    use CustomerTier::{High, Vip};
    vec![
        rule(&[Vip], &PROBLEM_INTENTS, &[], Priority::Urgent),
        rule(&[Vip], &[], &[], Priority::High),
        rule(&[High], &PROBLEM_INTENTS, &[], Priority::High),
        rule(&[High], &[], &[], Priority::Normal),
        rule(&[], &["complaint"], &[], Priority::High),
        rule(
            &[],
            &["greeting", "thanks", "business_hours"],
            &["account"],
            Priority::Low,
        ),
    ]
}

impl PriorityTable {
    pub fn new(rules: Vec<PriorityRule>, default: Priority) -> PriorityTable {
        PriorityTable { rules, default }
    }

    pub fn rules(&self) -> &[PriorityRule] {
        &self.rules
    }

    /// The priority when no rule matches.
    pub fn default_priority(&self) -> Priority {
        self.default
    }

    /// The priority of a ticket for a customer of `tier` about `intent` (of `group`);
    /// `raised` (a tag such as 投诉风险) moves it one step up.
    pub fn priority(
        &self,
        tier: CustomerTier,
        intent: &str,
        group: &str,
        raised: bool,
    ) -> Priority {
        let base = self
            .rules
            .iter()
            .find(|r| r.matches(tier, intent, group))
            .map_or(self.default, |r| r.priority);
        if raised {
            base.raised()
        } else {
            base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy;
    use CustomerTier::{High, New, Normal, Vip};

    fn p(tier: CustomerTier, intent: &str) -> Priority {
        let group = taxonomy::get(intent).map_or("", |i| i.group);
        PriorityTable::default().priority(tier, intent, group, false)
    }

    #[test]
    fn default_table_puts_vip_problems_first() {
        for intent in PROBLEM_INTENTS {
            assert_eq!(p(Vip, intent), Priority::Urgent, "{intent}");
            assert_eq!(p(High, intent), Priority::High, "{intent}");
        }
        assert_eq!(p(Vip, "product_info"), Priority::High);
        assert_eq!(p(Vip, "greeting"), Priority::High);
        assert_eq!(p(High, "tracking"), Priority::Normal);
        assert_eq!(p(High, "greeting"), Priority::Normal);
        assert_eq!(p(Normal, "complaint"), Priority::High);
        assert_eq!(p(New, "complaint"), Priority::High);
        assert_eq!(p(Normal, "damaged_item"), Priority::Normal);
        assert_eq!(p(New, "product_info"), Priority::Normal);
        assert_eq!(p(New, "size_advice"), Priority::Normal);
        assert_eq!(p(Normal, "greeting"), Priority::Low);
        assert_eq!(p(Normal, "membership"), Priority::Low);
        assert_eq!(p(New, "unknown"), Priority::Normal);
    }

    #[test]
    fn every_intent_of_every_tier_has_a_priority_and_vip_is_never_below_others() {
        for info in taxonomy::all() {
            let vip = p(Vip, info.id);
            for tier in CustomerTier::ALL {
                assert!(vip <= p(tier, info.id), "{} {:?}", info.id, tier);
            }
        }
    }

    #[test]
    fn raised_moves_one_step_up() {
        let t = PriorityTable::default();
        assert_eq!(
            t.priority(Normal, "greeting", "service", true),
            Priority::Normal
        );
        assert_eq!(
            t.priority(Normal, "tracking", "logistics", true),
            Priority::High
        );
        assert_eq!(
            t.priority(Vip, "complaint", "service", true),
            Priority::Urgent
        );
    }

    #[test]
    fn first_match_wins_and_groups_match() {
        let rule =
            |tiers: Vec<CustomerTier>, intents: &[&str], groups: &[&str], priority| PriorityRule {
                tiers,
                intents: intents.iter().map(|s| s.to_string()).collect(),
                groups: groups.iter().map(|s| s.to_string()).collect(),
                priority,
            };
        let t = PriorityTable::new(
            vec![
                rule(vec![New], &[], &["presale"], Priority::High),
                rule(vec![], &["stock"], &[], Priority::Urgent),
            ],
            Priority::Low,
        );
        assert_eq!(t.priority(New, "stock", "presale", false), Priority::High);
        assert_eq!(
            t.priority(Normal, "stock", "presale", false),
            Priority::Urgent
        );
        assert_eq!(
            t.priority(Normal, "tracking", "logistics", false),
            Priority::Low
        );
        assert_eq!(t.default_priority(), Priority::Low);
    }
}
