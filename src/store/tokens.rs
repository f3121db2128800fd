//! The `wecom_tokens` table: the WeCom access token shared by every replica on PostgreSQL.
//! The caller holds the row lock (`FOR UPDATE`) for the whole refresh, so N replicas make one
//! `gettoken` call; on SQLite the table stays unused.

use sqlx::AnyConnection;

/// A token as stored (empty before the first refresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub access_token: String,
    pub good_until_ms: i64,
}

/// Lock `corp_id`'s row until the transaction ends, creating it empty if needed, and read it.
pub async fn lock_token(conn: &mut AnyConnection, corp_id: &str) -> sqlx::Result<StoredToken> {
    sqlx::query(
        "INSERT INTO wecom_tokens (corp_id, access_token, good_until_ms) VALUES ($1, '', 0) ON CONFLICT (corp_id) DO NOTHING",
    )
    .bind(corp_id)
    .execute(&mut *conn)
    .await?;
    let (access_token, good_until_ms): (String, i64) = sqlx::query_as(
        "SELECT access_token, good_until_ms FROM wecom_tokens WHERE corp_id = $1 FOR UPDATE",
    )
    .bind(corp_id)
    .fetch_one(conn)
    .await?;
    Ok(StoredToken {
        access_token,
        good_until_ms,
    })
}

pub async fn save_token(
    conn: &mut AnyConnection,
    corp_id: &str,
    access_token: &str,
    good_until_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE wecom_tokens SET access_token = $1, good_until_ms = $2 WHERE corp_id = $3")
        .bind(access_token)
        .bind(good_until_ms)
        .bind(corp_id)
        .execute(conn)
        .await?;
    Ok(())
}
