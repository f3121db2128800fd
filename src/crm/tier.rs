//! Customer tiers for tickets and routing: VIP, high, normal, new.

use serde::Serialize;

/// A customer's standing with the shop, from corp tags and purchase history (RFM).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerTier {
    Vip,
    High,
    Normal,
    #[default]
    New,
}

impl CustomerTier {
    pub const ALL: [CustomerTier; 4] = [
        CustomerTier::Vip,
        CustomerTier::High,
        CustomerTier::Normal,
        CustomerTier::New,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CustomerTier::Vip => "vip",
            CustomerTier::High => "high",
            CustomerTier::Normal => "normal",
            CustomerTier::New => "new",
        }
    }

    pub fn parse(s: &str) -> Option<CustomerTier> {
        CustomerTier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}
