//! What kefu knows about a shopper: nickname, the reply library's tier, and the customer's
//! standing for tickets (tier, reasons, raised priority).
//!
//! The nickname comes from `kf/customer/batchget`, the corp tags from `externalcontact/get`:
//! a tag "svip" makes the reply library's SVIP, "vip" (or any tag containing "VIP") its VIP.
//! Those are cached in `kf_customers` for a day. The standing merges the corp tags with the
//! shop's imported tags and purchase history ([`import`]), scored by [`rfm`] and judged by
//! the `[tiers]` rules ([`rules`]). Lookups never fail: a shopper nobody knows anything about
//! has an empty profile and the standing "new".
//!
//! Customers are keyed by kf `external_userid` or Official Account `openid`, linked by the
//! `unionid` when WeChat (`batchget`) or the imported file tells it; imported history keyed
//! by either external_userid or unionid applies to the customer ([`store`] holds the SQL).

pub mod import;
pub mod rfm;
pub mod rules;
pub mod store;
pub mod tier;

pub use rfm::RfmScores;
pub use rules::TierRules;
pub use tier::CustomerTier;

use std::collections::HashMap;

use serde::Serialize;

use crate::clock::SharedClock;
use crate::ids::ExternalUserId;
use crate::store::{self as db, Store};
use crate::wecom::api::WecomClient;
use store::{CustomerColumn, CustomerIds, PurchaseRow};

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub tier: CustomerTier,
    /// Human-readable, e.g. "tag VIP", "14 orders, ¥8,600 in total", "RFM 5+5+4 = 14".
    pub reasons: Vec<String>,
    /// A tag such as 投诉风险 moves this customer's tickets one priority up.
    pub raise_priority: bool,
}

impl Standing {
    /// The standing tags alone give under the default rules (no purchase history).
    pub fn from_tags(tags: &[String]) -> Standing {
        TierRules::default().standing(
            &rules::Facts {
                tags,
                ..rules::Facts::default()
            },
            0,
        )
    }
}

impl CustomerProfile {
    /// The tier as the reply library names it.
    pub fn tier_name(&self) -> Option<&'static str> {
        self.tier.map(Tier::as_str)
    }
}

/// Tags in order, each once: `first`, then those of `more` not already there.
fn merge_tags(first: &[String], more: &[String]) -> Vec<String> {
    let mut out = first.to_vec();
    for t in more {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

/// Everything the standing was judged on.
struct Assessment {
    tags: Vec<String>,
    history: Option<PurchaseRow>,
    rfm: Option<RfmScores>,
    standing: Standing,
}

/// Judge a customer by their corp tags and the stored history under `external_userid` or
/// `unionid`.
async fn assess(
    store: &Store,
    rules: &TierRules,
    now_ms: i64,
    external_userid: Option<&str>,
    unionid: Option<&str>,
    corp_tags: &[String],
) -> sqlx::Result<Assessment> {
    let history = store::purchases_of(store.pool(), external_userid, unionid).await?;
    let bounds = match &history {
        Some(h) if h.orders > 0 => store::load_bounds(store.pool()).await?,
        _ => None,
    };
    let imported: Vec<String> = history
        .as_ref()
        .and_then(|h| serde_json::from_str(&h.tags).ok())
        .unwrap_or_default();
    let tags = merge_tags(corp_tags, &imported);
    let purchases = history.as_ref().map(|h| rfm::Purchases {
        orders: h.orders,
        spent_fen: h.spent_fen,
        last_order_at: h.last_order_at,
    });
    let rfm = match (&purchases, &bounds) {
        (Some(p), Some(b)) => b.score(p),
        // History without boundaries (written by hand, not imported): alone among nobody.
        (Some(p), None) => rfm::Bounds::compute([*p]).score(p),
        (None, _) => None,
    };
    let standing = rules.standing(
        &rules::Facts {
            tags: &tags,
            orders: purchases.map_or(0, |p| p.orders),
            spent_fen: purchases.map_or(0, |p| p.spent_fen),
            last_order_at: purchases.and_then(|p| p.last_order_at),
            rfm,
        },
        now_ms,
    );
    Ok(Assessment {
        tags,
        history,
        rfm,
        standing,
    })
}

/// The standing of a kf shopper; on a store error, what the corp tags alone say.
async fn kf_standing(
    store: &Store,
    rules: &TierRules,
    now_ms: i64,
    external_userid: &ExternalUserId,
    corp_tags: &[String],
) -> Standing {
    let unionid = store::customer_by_external_userid(store.pool(), external_userid.as_str())
        .await
        .ok()
        .flatten()
        .and_then(|c| c.unionid);
    match assess(
        store,
        rules,
        now_ms,
        Some(external_userid.as_str()),
        unionid.as_deref(),
        corp_tags,
    )
    .await
    {
        Ok(a) => a.standing,
        Err(e) => {
            tracing::warn!(error = %e, "purchase history unavailable; tier from tags alone");
            rules.standing(
                &rules::Facts {
                    tags: corp_tags,
                    ..rules::Facts::default()
                },
                now_ms,
            )
        }
    }
}

/// The profile of a customer: nickname and corp tags from the cache while it is under a day
/// old, else from WeCom (and cached again); the standing from those tags, the imported
/// history and `rules`. `now_ms` is the caller's clock.
pub async fn profile(
    store: &Store,
    client: &WecomClient,
    rules: &TierRules,
    now_ms: i64,
    external_userid: &ExternalUserId,
) -> CustomerProfile {
    let cached = db::kf::cached_customer(store.pool(), external_userid)
        .await
        .ok()
        .flatten();
    if let Some(c) = cached {
        if now_ms - c.fetched_at < PROFILE_TTL_MS {
            let tags: Vec<String> = serde_json::from_str(&c.tags).unwrap_or_default();
            return CustomerProfile {
                nickname: c.nickname,
                tier: c.tier.as_deref().and_then(Tier::parse),
                standing: kf_standing(store, rules, now_ms, external_userid, &tags).await,
            };
        }
    }
    let found = client
        .customer_batchget(&[external_userid.as_str()])
        .await
        .ok();
    let customer = found.as_ref().map(|v| &v["customer_list"][0]);
    let nickname = customer
        .and_then(|c| c["nickname"].as_str())
        .map(str::to_owned);
    // Set only when the kf account is bound to the shop's WeChat Open Platform account.
    let unionid = customer
        .and_then(|c| c["unionid"].as_str())
        .filter(|u| !u.is_empty());
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
    let _ = db::kf::save_customer(
        store.pool(),
        external_userid,
        nickname.as_deref(),
        &serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
        tier.map(Tier::as_str),
        now_ms,
    )
    .await;
    if let Err(e) = store::link_customer(
        store.pool(),
        CustomerColumn::ExternalUserId,
        external_userid.as_str(),
        unionid,
        true,
        now_ms,
    )
    .await
    {
        tracing::warn!(error = %e, "cannot record the customer");
    }
    CustomerProfile {
        nickname,
        tier,
        standing: kf_standing(store, rules, now_ms, external_userid, &tags).await,
    }
}

/// The profiles of several customers, each looked up once (network calls: keep them outside
/// any transaction).
pub async fn profiles(
    store: &Store,
    client: &WecomClient,
    rules: &TierRules,
    clock: &SharedClock,
    customers: &[ExternalUserId],
) -> HashMap<ExternalUserId, CustomerProfile> {
    let mut out = HashMap::new();
    for id in customers {
        if out.contains_key(id) {
            continue;
        }
        let found = profile(store, client, rules, clock.now_ms(), id).await;
        out.insert(id.clone(), found);
    }
    out
}

/// How a console names a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerKey {
    ExternalUserId(String),
    OpenId(String),
    UnionId(String),
    /// Any of the three, tried in that order (for `GET /api/customers/{id}`).
    Any(String),
}

/// Everything kefu has stored about a customer, for a console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerCard {
    pub external_userid: Option<String>,
    pub openid: Option<String>,
    pub unionid: Option<String>,
    /// From the imported file.
    pub name: Option<String>,
    /// From WeCom (`kf/customer/batchget`), as last cached.
    pub nickname: Option<String>,
    /// Corp tags (as last cached) and imported tags, merged.
    pub tags: Vec<String>,
    /// Lifetime orders from the imported history (0 without one).
    pub orders: i64,
    /// Lifetime spend in fen.
    pub total_spent_fen: i64,
    /// The same, for people: `¥8,600.50`.
    pub total_spent: String,
    /// Unix ms.
    pub last_order_at_ms: Option<i64>,
    /// RFC 3339, China time: `2026-11-26T00:00:00+08:00`.
    pub last_order_at: Option<String>,
    /// `None` without orders.
    pub rfm: Option<RfmScores>,
    pub tier: CustomerTier,
    pub reasons: Vec<String>,
    pub raise_priority: bool,
    /// When the imported history last changed (unix ms).
    pub history_updated_at: Option<i64>,
}

/// The card of a customer from what is stored (no WeCom call): `None` when kefu knows
/// nothing about that id.
pub async fn customer_card(
    store: &Store,
    rules: &TierRules,
    now_ms: i64,
    key: &CustomerKey,
) -> sqlx::Result<Option<CustomerCard>> {
    let pool = store.pool();
    let (ids, has_row) = match key {
        CustomerKey::Any(id) => {
            for k in [
                CustomerKey::ExternalUserId(id.clone()),
                CustomerKey::OpenId(id.clone()),
                CustomerKey::UnionId(id.clone()),
            ] {
                if let Some(card) = Box::pin(customer_card(store, rules, now_ms, &k)).await? {
                    return Ok(Some(card));
                }
            }
            return Ok(None);
        }
        CustomerKey::ExternalUserId(e) => {
            match store::customer_by_external_userid(pool, e).await? {
                Some(ids) => (ids, true),
                None => (
                    CustomerIds {
                        external_userid: Some(e.clone()),
                        ..CustomerIds::default()
                    },
                    false,
                ),
            }
        }
        CustomerKey::OpenId(o) => match store::customer_by_openid(pool, o).await? {
            Some(ids) => (ids, true),
            None => return Ok(None),
        },
        CustomerKey::UnionId(u) => {
            let linked = store::customers_by_unionid(pool, u).await?;
            let ids = CustomerIds {
                external_userid: linked.iter().find_map(|c| c.external_userid.clone()),
                openid: linked.iter().find_map(|c| c.openid.clone()),
                unionid: Some(u.clone()),
            };
            (ids, !linked.is_empty())
        }
    };
    let cached = match &ids.external_userid {
        Some(e) => db::kf::cached_customer(pool, &ExternalUserId::from(e)).await?,
        None => None,
    };
    let corp_tags: Vec<String> = cached
        .as_ref()
        .and_then(|c| serde_json::from_str(&c.tags).ok())
        .unwrap_or_default();
    let a = assess(
        store,
        rules,
        now_ms,
        ids.external_userid.as_deref(),
        ids.unionid.as_deref(),
        &corp_tags,
    )
    .await?;
    let known = has_row || a.history.is_some() || cached.is_some();
    if !known {
        return Ok(None);
    }
    let h = a.history.as_ref();
    let last_order_at_ms = h.and_then(|h| h.last_order_at);
    Ok(Some(CustomerCard {
        external_userid: ids.external_userid,
        openid: ids.openid,
        unionid: ids.unionid.or_else(|| h.and_then(|h| h.unionid.clone())),
        name: h.and_then(|h| h.name.clone()),
        nickname: cached.and_then(|c| c.nickname),
        tags: a.tags,
        orders: h.map_or(0, |h| h.orders),
        total_spent_fen: h.map_or(0, |h| h.spent_fen),
        total_spent: rules::yuan(h.map_or(0, |h| h.spent_fen)),
        last_order_at_ms,
        last_order_at: last_order_at_ms.and_then(china_rfc3339),
        rfm: a.rfm,
        tier: a.standing.tier,
        reasons: a.standing.reasons,
        raise_priority: a.standing.raise_priority,
        history_updated_at: h.map(|h| h.updated_at),
    }))
}

/// Unix ms as RFC 3339 at +08:00.
fn china_rfc3339(ms: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    let dt = jiff::tz::Offset::constant(8).to_datetime(ts);
    Some(format!("{}+08:00", dt.strftime("%Y-%m-%dT%H:%M:%S")))
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
