//! A ticket's priority from the customer's tier and the intent (a table in config).

use super::model::Priority;
use crate::crm::CustomerTier;

/// Tier x intent (or the intent's group) -> priority. Placeholder: VIP complaints are
/// urgent, other VIP tickets high, the rest normal; the configurable table replaces it.
#[derive(Debug, Clone, Default)]
pub struct PriorityTable {
    _private: (),
}

impl PriorityTable {
    /// The priority of a ticket for a customer of `tier` about `intent` (of `group`);
    /// `raised` (a tag such as 投诉风险) moves it one step up.
    pub fn priority(
        &self,
        tier: CustomerTier,
        intent: &str,
        group: &str,
        raised: bool,
    ) -> Priority {
        let _ = group;
        let base = match (tier, intent) {
            (CustomerTier::Vip, "complaint") => Priority::Urgent,
            (CustomerTier::Vip, _) => Priority::High,
            _ => Priority::Normal,
        };
        if raised {
            base.raised()
        } else {
            base
        }
    }
}
