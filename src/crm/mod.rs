//! What kefu knows about a shopper: nickname and customer tier, for answers that greet a VIP
//! by name or word things differently for them.
//!
//! The nickname comes from `kf/customer/batchget`, the tier from the corp tags the shop put
//! on the shopper as an external contact (`externalcontact/get`): a tag "svip" makes an SVIP,
//! "vip" (or any tag containing "VIP") a VIP. Profiles are cached in `kf_customers` for a
//! day. Lookups never fail: a shopper WeCom says nothing about has an empty profile.

pub mod tier;

pub use tier::CustomerTier;

use std::collections::HashMap;

use crate::clock::SharedClock;
use crate::ids::ExternalUserId;
use crate::store::{self, Store};
use crate::wecom::api::WecomClient;

/// How long a cached profile is used before it is fetched again.
pub const PROFILE_TTL_MS: i64 = 24 * 3600 * 1000;

/// A customer tier, stored as `'vip'` / `'svip'` in `kf_customers.tier`; the reply library
/// keys tier-specific wordings by the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Vip,
    Svip,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Vip => "vip",
            Tier::Svip => "svip",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "vip" => Some(Tier::Vip),
            "svip" => Some(Tier::Svip),
            _ => None,
        }
    }

    /// The tier the shop's corp tags give a customer, if any.
    pub fn from_tags(tags: &[String]) -> Option<Tier> {
        if tags.iter().any(|t| t.eq_ignore_ascii_case("svip")) {
            Some(Tier::Svip)
        } else if tags
            .iter()
            .any(|t| t.eq_ignore_ascii_case("vip") || t.contains("VIP"))
        {
            Some(Tier::Vip)
        } else {
            None
        }
    }
}

/// What answers may use about a customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerProfile {
    pub nickname: Option<String>,
    pub tier: Option<Tier>,
    /// The customer's tier for tickets and routing, with the reasons for it.
    pub standing: Standing,
}

/// A customer's tier for tickets, why, and whether a tag raises their tickets' priority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    pub tier: CustomerTier,
    /// Human-readable, e.g. "tag VIP", "14 orders, ¥8,600 in 12 months".
    pub reasons: Vec<String>,
    /// A tag such as 投诉风险 moves this customer's tickets one priority up.
    pub raise_priority: bool,
}

impl Standing {
    /// Placeholder until purchase history and tier rules arrive: tags only.
    pub fn from_tags(tags: &[String]) -> Standing {
        match Tier::from_tags(tags) {
            Some(_) => Standing {
                tier: CustomerTier::Vip,
                reasons: vec!["tag VIP".into()],
                raise_priority: false,
            },
            None => Standing {
                tier: CustomerTier::New,
                reasons: vec!["no orders on record".into()],
                raise_priority: false,
            },
        }
    }
}

impl CustomerProfile {
    /// The tier as the reply library names it.
    pub fn tier_name(&self) -> Option<&'static str> {
        self.tier.map(Tier::as_str)
    }
}

/// The profile of a customer: from the cache while it is under a day old, else from WeCom
/// (and cached again). `now_ms` is the caller's clock.
pub async fn profile(
    store: &Store,
    client: &WecomClient,
    now_ms: i64,
    external_userid: &ExternalUserId,
) -> CustomerProfile {
    let cached = store::kf::cached_customer(store.pool(), external_userid)
        .await
        .ok()
        .flatten();
    if let Some(c) = cached {
        if now_ms - c.fetched_at < PROFILE_TTL_MS {
            let tags: Vec<String> = serde_json::from_str(&c.tags).unwrap_or_default();
            return CustomerProfile {
                nickname: c.nickname,
                tier: c.tier.as_deref().and_then(Tier::parse),
                standing: Standing::from_tags(&tags),
            };
        }
    }
    let nickname = client
        .customer_batchget(&[external_userid.as_str()])
        .await
        .ok()
        .and_then(|v| {
            v["customer_list"][0]["nickname"]
                .as_str()
                .map(str::to_owned)
        });
    // Not every kf customer is an external contact (84061): then there are no corp tags.
    let tags: Vec<String> = match client.externalcontact_get(external_userid.as_str()).await {
        Ok(v) => v["follow_user"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["tags"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["tag_name"].as_str().map(str::to_owned))
            .collect(),
        Err(_) => Vec::new(),
    };
    let tier = Tier::from_tags(&tags);
    // A cache that cannot be written only costs a lookup next time.
    let _ = store::kf::save_customer(
        store.pool(),
        external_userid,
        nickname.as_deref(),
        &serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
        tier.map(Tier::as_str),
        now_ms,
    )
    .await;
    CustomerProfile {
        nickname,
        tier,
        standing: Standing::from_tags(&tags),
    }
}

/// The profiles of several customers, each looked up once (network calls: keep them outside
/// any transaction).
pub async fn profiles(
    store: &Store,
    client: &WecomClient,
    clock: &SharedClock,
    customers: &[ExternalUserId],
) -> HashMap<ExternalUserId, CustomerProfile> {
    let mut out = HashMap::new();
    for id in customers {
        if out.contains_key(id) {
            continue;
        }
        let found = profile(store, client, clock.now_ms(), id).await;
        out.insert(id.clone(), found);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_come_from_tags() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Tier::from_tags(&tags(&["SVIP", "vip"])), Some(Tier::Svip));
        assert_eq!(Tier::from_tags(&tags(&["Vip"])), Some(Tier::Vip));
        assert_eq!(Tier::from_tags(&tags(&["金卡VIP"])), Some(Tier::Vip));
        assert_eq!(Tier::from_tags(&tags(&["新客"])), None);
        assert_eq!(Tier::parse(Tier::Svip.as_str()), Some(Tier::Svip));
    }
}
