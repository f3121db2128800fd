//! Persistence through sqlx's `Any` driver: an SQLite file by default (created with its
//! folder, WAL, `synchronous=FULL`), PostgreSQL when `database_url` is `postgres://…`; one
//! set of portable migrations applied at start-up.
//!
//! Inbound callbacks are written by one group-commit writer: concurrent requests queue their
//! records, the writer stores up to a few hundred in one transaction and answers each request
//! once the commit is durable. A callback is acknowledged only after that answer, and the
//! `(channel, dedup_key)` unique constraint turns WeCom's retries into "already recorded".
//! On an SQLite file the writer is a thread with its own connection (rusqlite), so a batch
//! is one in-process transaction rather than a round trip through sqlx's worker thread; on
//! PostgreSQL it is a task that sends each batch as one statement.
//!
//! Each domain's SQL lives in a file of its own: [`kf`] (pulled messages, cursors, sessions,
//! agents, customers), [`outbox`] (everything sent) and [`tokens`] (the shared access token)
//! here, and `crm/store.rs` (customers, imported purchase history, RFM boundaries) inside its
//! domain. No other file writes SQL.

mod inbound;
pub mod kf;
pub mod outbox;
pub mod tokens;
pub mod unresolved;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tokio::sync::mpsc;

pub use inbound::{InboundStatus, NewInbound, Recorded};
pub use kf::{AgentStatus, KfMessageStatus, Origin, SessionState};
pub use outbox::{OutboxApi, OutboxStatus};

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
    /// The inbound writer did not answer within the write timeout: the database is hung or
    /// overloaded. The message may still be committed later (a retry then finds it).
    #[error("the store did not record the message within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("cannot start the inbound writer: {0}")]
    Writer(String),
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
    writer: mpsc::Sender<inbound::WriterMsg>,
    /// How long [`Store::record_inbound`] waits for the writer (`[store] write_timeout`).
    write_timeout: Duration,
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
        let (url, file) = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => (url.to_string(), None),
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
        match file {
            Some(path) => inbound::spawn_sqlite_writer(&path, rx)?,
            None => {
                tokio::spawn(inbound::writer(pool.clone(), backend, rx));
            }
        }
        Ok(Store {
            pool,
            backend,
            writer: tx,
            write_timeout: crate::config::DEFAULT_WRITE_TIMEOUT,
        })
    }

    /// The same store, with callbacks waiting at most `timeout` for their message to be
    /// recorded.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Store {
        self.write_timeout = timeout;
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for services that own their own queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Is the database answering, and is the inbound writer there to record callbacks? Used
    /// by `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Store what is queued, stop the writer, and close the pool.
    pub async fn close(&self) {
        let (ack, done) = tokio::sync::oneshot::channel();
        if self
            .writer
            .send(inbound::WriterMsg::Close(ack))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        self.pool.close().await;
    }
}

/// Turn `sqlite://path` into a URL sqlx will create, making the folder first; also the
/// file's path (none for an in-memory database).
fn prepare_sqlite(url: &str) -> Result<(String, Option<PathBuf>), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" || query.is_some_and(|q| q.contains("mode=memory")) {
        return Ok((url.to_string(), None));
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
    Ok((
        format!("sqlite://{path}?{query}"),
        Some(PathBuf::from(path)),
    ))
}

/// A time-ordered, collision-resistant id: 13 hex digits of milliseconds, then 16 random.
/// A nullable `DOUBLE PRECISION` parameter, bound as text for SQL that casts it back
/// (`CAST($n AS DOUBLE PRECISION)`). sqlx's `Any` driver (0.8) sends a NULL `f64` to
/// PostgreSQL typed `float4` but a value typed `float8`, so a cached statement first run with
/// a NULL refused every later value ("incorrect binary data format in bind parameter").
/// Rust prints an `f64` in the shortest form that reads back to the same value.
pub(crate) fn float_param(x: Option<f64>) -> Option<String> {
    x.map(|x| x.to_string())
}

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
        let (url, file) = prepare_sqlite(&format!("sqlite://{}", path.display())).unwrap();
        assert!(url.ends_with("kefu.db?mode=rwc"), "{url}");
        assert_eq!(file.as_deref(), Some(path.as_path()));
        assert!(path.parent().unwrap().is_dir());
        assert_eq!(
            prepare_sqlite("sqlite::memory:").unwrap(),
            ("sqlite::memory:".to_string(), None)
        );
    }

    #[test]
    fn ids_sort_by_time() {
        let a = new_id(1_700_000_000_000);
        let b = new_id(1_700_000_000_001);
        assert!(a < b);
        assert_eq!(a.len(), 29);
    }

    fn record(i: usize, key: &str) -> NewInbound {
        NewInbound {
            id: new_id(1_700_000_000_000 + i as i64),
            channel: "mp",
            dedup_key: key.to_string(),
            msg_type: "text".into(),
            event: None,
            from_user: Some(format!("user{i}")),
            to_user: "shop".into(),
            create_time: 1_700_000_000,
            content: Some("还有货吗".into()),
            raw_xml: "<xml/>".into(),
            received_at: 1_700_000_000_000,
            status: InboundStatus::Answered,
            reply_text: Some(format!("reply {i}")),
            intent: None,
            confidence: None,
            reply_id: None,
        }
    }

    /// The SQLite writer: one batch holding a message and its retry stores it once and gives
    /// the retry the first reply; closing stores what was queued, then refuses new records.
    #[test]
    fn sqlite_writer_dedups_within_a_batch_and_drains_on_close() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/kefu.db", dir.path().display());
            let store = Store::connect(&url).await.unwrap();
            let mut tasks = Vec::new();
            for i in 0..300 {
                let store = store.clone();
                // Keys repeat in pairs: 0 and 1 share a key, 2 and 3, ...
                let key = format!("k{}", i / 2);
                tasks.push(tokio::spawn(async move {
                    store.record_inbound(record(i, &key)).await
                }));
            }
            let mut new = 0;
            for t in tasks {
                match t.await.unwrap().unwrap() {
                    Recorded::New => new += 1,
                    Recorded::Duplicate { reply_text } => {
                        let r = reply_text.unwrap();
                        assert!(r.starts_with("reply "), "{r}");
                    }
                }
            }
            assert_eq!(new, 150);
            assert_eq!(store.count_inbound("mp").await.unwrap(), 150);

            // Queued right before the close: stored all the same.
            let late: Vec<_> = (1000..1020)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store.record_inbound(record(i, &format!("late{i}"))).await
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            store.close().await;
            let mut stored_late = 0;
            for t in late {
                match t.await.unwrap() {
                    Ok(Recorded::New) => stored_late += 1,
                    Ok(other) => panic!("{other:?}"),
                    Err(StoreError::Closed) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(matches!(
                store.record_inbound(record(2000, "after")).await,
                Err(StoreError::Closed)
            ));
            assert!(store.ping().await.is_err(), "not ready once closed");
            let reopened = Store::connect(&url).await.unwrap();
            assert_eq!(
                reopened.count_inbound("mp").await.unwrap(),
                150 + stored_late
            );
            reopened.close().await;
        });
    }
}
