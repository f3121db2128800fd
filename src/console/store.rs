//! Every SQL string of console users and sessions. The callers own the transactions.

use sqlx::{Any, AnyConnection, Executor};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub servicer_userid: Option<String>,
    /// JSON array of skill groups.
    pub groups: String,
    pub password_hash: String,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const USER_COLUMNS: &str =
    "name, role, servicer_userid, groups, password_hash, disabled_at, created_at, updated_at";

/// Add a user; false when the name is taken.
pub async fn insert_user(conn: &mut AnyConnection, u: &UserRow) -> sqlx::Result<bool> {
    let done = sqlx::query(&format!(
        "INSERT INTO console_users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (name) DO NOTHING"
    ))
    .bind(&u.name)
    .bind(&u.role)
    .bind(&u.servicer_userid)
    .bind(&u.groups)
    .bind(&u.password_hash)
    .bind(u.disabled_at)
    .bind(u.created_at)
    .bind(u.updated_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

pub async fn user<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM console_users WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(db)
    .await
}

pub async fn users<'e>(db: impl Executor<'e, Database = Any>) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM console_users ORDER BY name"
    ))
    .fetch_all(db)
    .await
}

/// Mark a user disabled; false when there is no such user or they were disabled already.
pub async fn disable_user(conn: &mut AnyConnection, name: &str, now_ms: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE console_users SET disabled_at = $1, updated_at = $1 \
         WHERE name = $2 AND disabled_at IS NULL",
    )
    .bind(now_ms)
    .bind(name)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

// ---- sessions ----

pub async fn insert_session(
    conn: &mut AnyConnection,
    token_hash: &str,
    user_name: &str,
    csrf_token: &str,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO console_sessions (token_hash, user_name, csrf_token, created_at, \
         last_seen_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(token_hash)
    .bind(user_name)
    .bind(csrf_token)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live session with its user, as one row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub token_hash: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub name: String,
    pub role: String,
    pub servicer_userid: Option<String>,
    pub groups: String,
}

/// The session with this token hash, if its user is still enabled.
pub async fn session<'e>(
    db: impl Executor<'e, Database = Any>,
    token_hash: &str,
) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as(
        "SELECT s.token_hash, s.csrf_token, s.created_at, s.last_seen_at, u.name, u.role, \
         u.servicer_userid, u.groups FROM console_sessions s \
         JOIN console_users u ON u.name = s.user_name \
         WHERE s.token_hash = $1 AND u.disabled_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await
}

pub async fn touch_session<'e>(
    db: impl Executor<'e, Database = Any>,
    token_hash: &str,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE console_sessions SET last_seen_at = $1 WHERE token_hash = $2")
        .bind(now_ms)
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete_session<'e>(
    db: impl Executor<'e, Database = Any>,
    token_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

/// End every session of a user; how many there were.
pub async fn delete_sessions_of(conn: &mut AnyConnection, user_name: &str) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM console_sessions WHERE user_name = $1")
            .bind(user_name)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Forget sessions idle since before `idle_before` or started before `started_before`.
pub async fn delete_expired<'e>(
    db: impl Executor<'e, Database = Any>,
    idle_before: i64,
    started_before: i64,
) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM console_sessions WHERE last_seen_at < $1 OR created_at < $2")
            .bind(idle_before)
            .bind(started_before)
            .execute(db)
            .await?
            .rows_affected(),
    )
}
