//! Persistence through sqlx's `Any` driver: an SQLite file by default (created with its
//! folder, WAL, `synchronous=FULL`), PostgreSQL when `database_url` is `postgres://…`; one
//! set of portable migrations applied at start-up.
//!
//! Inbound callbacks are written by one group-commit writer: concurrent requests queue their
//! records, the writer stores up to a few hundred in one transaction and answers each request
//! once the commit is durable. A callback is acknowledged only after that answer, and the
//! `(channel, dedup_key)` unique constraint turns WeCom's retries into "already recorded".

mod inbound;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tokio::sync::mpsc;

pub use inbound::{InboundStatus, NewInbound, Recorded};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("the store is shutting down")]
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    writer: mpsc::Sender<inbound::WriteJob>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connect, create the SQLite file and folder if needed, and apply migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // FULL: a commit is on disk before the callback is acknowledged; the
                        // group-commit writer keeps the fsync count low.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(inbound::writer(pool.clone(), backend, rx));
        Ok(Store {
            pool,
            backend,
            writer: tx,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for services that own their own queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Is the database answering? Used by `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Turn `sqlite://path` into a URL sqlx will create, making the folder first.
fn prepare_sqlite(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_string());
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Folder {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }
    let query = match query {
        Some(q) if q.contains("mode=") => q.to_string(),
        Some(q) => format!("{q}&mode=rwc"),
        None => "mode=rwc".to_string(),
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// A time-ordered, collision-resistant id: 13 hex digits of milliseconds, then 16 random.
pub fn new_id(now_ms: i64) -> String {
    format!("{:013x}{:016x}", now_ms.max(0), rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/kefu.db");
        let url = prepare_sqlite(&format!("sqlite://{}", path.display())).unwrap();
        assert!(url.ends_with("kefu.db?mode=rwc"), "{url}");
        assert!(path.parent().unwrap().is_dir());
        assert_eq!(
            prepare_sqlite("sqlite::memory:").unwrap(),
            "sqlite::memory:"
        );
    }

    #[test]
    fn ids_sort_by_time() {
        let a = new_id(1_700_000_000_000);
        let b = new_id(1_700_000_000_001);
        assert!(a < b);
        assert_eq!(a.len(), 29);
    }
}
