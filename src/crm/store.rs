//! The CRM tables (`migrations/0009_crm.sql`): customers (`crm_customers`), imported
//! purchase history (`crm_purchases`) and the stored RFM boundaries (`crm_rfm_bounds`).
//! Every SQL string of the CRM is in this file.

use sqlx::{Any, AnyConnection, Executor};

use super::rfm::{Bounds, DimensionBounds};
use crate::store::new_id;

/// How a purchase-history row is keyed (`crm_purchases.id_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    ExternalUserId,
    UnionId,
}

impl IdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::ExternalUserId => "external_userid",
            IdKind::UnionId => "unionid",
        }
    }

    pub fn parse(s: &str) -> Option<IdKind> {
        match s {
            "external_userid" => Some(IdKind::ExternalUserId),
            "unionid" => Some(IdKind::UnionId),
            _ => None,
        }
    }
}

/// One `crm_purchases` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseRow {
    pub id_kind: IdKind,
    pub id_value: String,
    pub unionid: Option<String>,
    pub name: Option<String>,
    /// JSON array of tag names.
    pub tags: String,
    pub orders: i64,
    pub spent_fen: i64,
    pub last_order_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PurchaseRow {
    /// Same contents, whenever written.
    pub fn same_contents(&self, other: &PurchaseRow) -> bool {
        self.unionid == other.unionid
            && self.name == other.name
            && self.tags == other.tags
            && self.orders == other.orders
            && self.spent_fen == other.spent_fen
            && self.last_order_at == other.last_order_at
    }
}

type RawPurchase = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    i64,
);

const PURCHASE_COLUMNS: &str = "id_kind, id_value, unionid, name, tags, orders, spent_fen, \
     last_order_at, created_at, updated_at";

fn purchase(raw: RawPurchase) -> Option<PurchaseRow> {
    let (kind, id_value, unionid, name, tags, orders, spent_fen, last_order_at, created, updated) =
        raw;
    Some(PurchaseRow {
        id_kind: IdKind::parse(&kind)?,
        id_value,
        unionid,
        name,
        tags,
        orders,
        spent_fen,
        last_order_at,
        created_at: created,
        updated_at: updated,
    })
}

// ---- crm_purchases ----

/// Every purchase-history row (an import compares against them; the RFM boundaries are
/// computed over them).
/// Take the database's write lock now, before anything is read: on SQLite a transaction
/// that reads first and writes later can be refused at once when another writer got in
/// between (busy_timeout does not cover that); PostgreSQL needs nothing here. A write that
/// matches no row still takes the lock.
pub async fn take_write_lock(conn: &mut AnyConnection) -> sqlx::Result<()> {
    sqlx::query("UPDATE crm_rfm_bounds SET computed_at = computed_at WHERE 1 = 0")
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn all_purchases(conn: &mut AnyConnection) -> sqlx::Result<Vec<PurchaseRow>> {
    let rows: Vec<RawPurchase> =
        sqlx::query_as(&format!("SELECT {PURCHASE_COLUMNS} FROM crm_purchases"))
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().filter_map(purchase).collect())
}

/// The history of a customer: the row keyed by their external_userid if there is one, else
/// a row carrying their unionid (the most recently changed).
pub async fn purchases_of<'e>(
    db: impl Executor<'e, Database = Any>,
    external_userid: Option<&str>,
    unionid: Option<&str>,
) -> sqlx::Result<Option<PurchaseRow>> {
    // Empty strings never match: no key is stored empty.
    let row: Option<RawPurchase> = sqlx::query_as(&format!(
        "SELECT {PURCHASE_COLUMNS} FROM crm_purchases \
         WHERE (id_kind = 'external_userid' AND id_value = $1) OR unionid = $2 \
         ORDER BY CASE WHEN id_kind = 'external_userid' THEN 0 ELSE 1 END, updated_at DESC, id_value \
         LIMIT 1"
    ))
    .bind(external_userid.unwrap_or(""))
    .bind(unionid.unwrap_or(""))
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(purchase))
}

pub async fn insert_purchase(conn: &mut AnyConnection, row: &PurchaseRow) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO crm_purchases ({PURCHASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(row.id_kind.as_str())
    .bind(&row.id_value)
    .bind(row.unionid.as_deref())
    .bind(row.name.as_deref())
    .bind(&row.tags)
    .bind(row.orders)
    .bind(row.spent_fen)
    .bind(row.last_order_at)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Overwrite a row's contents and `updated_at` (not `created_at`).
pub async fn update_purchase(conn: &mut AnyConnection, row: &PurchaseRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE crm_purchases SET unionid = $1, name = $2, tags = $3, orders = $4, spent_fen = $5, \
         last_order_at = $6, updated_at = $7 WHERE id_kind = $8 AND id_value = $9",
    )
    .bind(row.unionid.as_deref())
    .bind(row.name.as_deref())
    .bind(&row.tags)
    .bind(row.orders)
    .bind(row.spent_fen)
    .bind(row.last_order_at)
    .bind(row.updated_at)
    .bind(row.id_kind.as_str())
    .bind(&row.id_value)
    .execute(conn)
    .await?;
    Ok(())
}

// ---- crm_customers ----

/// A customer's ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerIds {
    pub external_userid: Option<String>,
    pub openid: Option<String>,
    pub unionid: Option<String>,
}

type RawIds = (Option<String>, Option<String>, Option<String>);

fn ids((external_userid, openid, unionid): RawIds) -> CustomerIds {
    CustomerIds {
        external_userid,
        openid,
        unionid,
    }
}

/// The customer with this external_userid.
pub async fn customer_by_external_userid<'e>(
    db: impl Executor<'e, Database = Any>,
    external_userid: &str,
) -> sqlx::Result<Option<CustomerIds>> {
    let row: Option<RawIds> = sqlx::query_as(
        "SELECT external_userid, openid, unionid FROM crm_customers WHERE external_userid = $1",
    )
    .bind(external_userid)
    .fetch_optional(db)
    .await?;
    Ok(row.map(ids))
}

/// The customer with this Official Account openid.
pub async fn customer_by_openid<'e>(
    db: impl Executor<'e, Database = Any>,
    openid: &str,
) -> sqlx::Result<Option<CustomerIds>> {
    let row: Option<RawIds> = sqlx::query_as(
        "SELECT external_userid, openid, unionid FROM crm_customers WHERE openid = $1",
    )
    .bind(openid)
    .fetch_optional(db)
    .await?;
    Ok(row.map(ids))
}

/// The customers linked by this unionid (a kf shopper and an Official Account follower may
/// both be).
pub async fn customers_by_unionid<'e>(
    db: impl Executor<'e, Database = Any>,
    unionid: &str,
) -> sqlx::Result<Vec<CustomerIds>> {
    let rows: Vec<RawIds> = sqlx::query_as(
        "SELECT external_userid, openid, unionid FROM crm_customers WHERE unionid = $1 \
         ORDER BY external_userid, openid",
    )
    .bind(unionid)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(ids).collect())
}

/// Which ids the customer table is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerColumn {
    ExternalUserId,
    OpenId,
}

/// Make sure the customer exists; with a unionid, link it. `authoritative`: WeChat said so,
/// and it replaces a different unionid; otherwise (the shop's file) it only fills a missing
/// one. Writes nothing when nothing changes.
pub async fn link_customer<'e>(
    db: impl Executor<'e, Database = Any>,
    column: CustomerColumn,
    id: &str,
    unionid: Option<&str>,
    authoritative: bool,
    now_ms: i64,
) -> sqlx::Result<()> {
    let col = match column {
        CustomerColumn::ExternalUserId => "external_userid",
        CustomerColumn::OpenId => "openid",
    };
    let when = match (unionid, authoritative) {
        (None, _) => "DO NOTHING".to_string(),
        (Some(_), false) => {
            "DO UPDATE SET unionid = excluded.unionid, updated_at = excluded.updated_at \
             WHERE crm_customers.unionid IS NULL"
                .to_string()
        }
        (Some(_), true) => {
            "DO UPDATE SET unionid = excluded.unionid, updated_at = excluded.updated_at \
             WHERE crm_customers.unionid IS NULL OR crm_customers.unionid <> excluded.unionid"
                .to_string()
        }
    };
    sqlx::query(&format!(
        "INSERT INTO crm_customers (id, {col}, unionid, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT ({col}) {when}"
    ))
    .bind(new_id(now_ms))
    .bind(id)
    .bind(unionid)
    .bind(now_ms)
    .execute(db)
    .await?;
    Ok(())
}

// ---- crm_rfm_bounds ----

const DIMENSIONS: [&str; 3] = ["recency", "frequency", "monetary"];

type RawBounds = (
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
);

/// The stored boundaries; `None` before the first import.
pub async fn load_bounds<'e>(
    db: impl Executor<'e, Database = Any>,
) -> sqlx::Result<Option<Bounds>> {
    let rows: Vec<RawBounds> = sqlx::query_as(
        "SELECT dimension, score2, score3, score4, score5, population FROM crm_rfm_bounds",
    )
    .fetch_all(db)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut bounds = Bounds::default();
    for (dimension, s2, s3, s4, s5, population) in rows {
        let d = DimensionBounds {
            min_for: [s2, s3, s4, s5],
            population,
        };
        match dimension.as_str() {
            "recency" => bounds.recency = d,
            "frequency" => bounds.frequency = d,
            "monetary" => bounds.monetary = d,
            _ => {}
        }
    }
    Ok(Some(bounds))
}

/// Store the boundaries of all three dimensions.
pub async fn save_bounds(
    conn: &mut AnyConnection,
    bounds: &Bounds,
    now_ms: i64,
) -> sqlx::Result<()> {
    for (name, d) in DIMENSIONS
        .into_iter()
        .zip([bounds.recency, bounds.frequency, bounds.monetary])
    {
        sqlx::query(
            "INSERT INTO crm_rfm_bounds (dimension, score2, score3, score4, score5, population, computed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dimension) DO UPDATE SET \
             score2 = excluded.score2, score3 = excluded.score3, score4 = excluded.score4, \
             score5 = excluded.score5, population = excluded.population, computed_at = excluded.computed_at",
        )
        .bind(name)
        .bind(d.min_for[0])
        .bind(d.min_for[1])
        .bind(d.min_for[2])
        .bind(d.min_for[3])
        .bind(d.population)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
