//! The inbound-message table and its group-commit writer.

use std::collections::HashMap;
use std::path::Path;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::{Backend, StoreError};

/// Up to this many queued records share one transaction.
const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundStatus {
    /// Stored; nothing decided yet (e.g. a kf event waiting to be pulled).
    Received,
    /// Answered automatically.
    Answered,
    /// Needs a person: a ticket will be opened for it.
    Unresolved,
}

impl InboundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundStatus::Received => "received",
            InboundStatus::Answered => "answered",
            InboundStatus::Unresolved => "unresolved",
        }
    }
}

/// A callback message about to be stored.
#[derive(Debug, Clone)]
pub struct NewInbound {
    pub id: String,
    pub channel: &'static str,
    pub dedup_key: String,
    pub msg_type: String,
    pub event: Option<String>,
    pub from_user: Option<String>,
    pub to_user: String,
    pub create_time: i64,
    pub content: Option<String>,
    pub raw_xml: String,
    pub received_at: i64,
    pub status: InboundStatus,
    pub reply_text: Option<String>,
    /// Classifier result for text messages.
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    pub reply_id: Option<String>,
}

/// What recording did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// First time: stored now.
    New,
    /// Seen before (a retry or replay); the reply given then, if any.
    Duplicate { reply_text: Option<String> },
}

pub(super) struct WriteJob {
    rec: NewInbound,
    done: oneshot::Sender<Result<Recorded, String>>,
}

/// What the writer is asked to do.
// `Close` comes once per process; boxing `Write` would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
pub(super) enum WriterMsg {
    Write(WriteJob),
    /// Store what is queued, let go of the database, then answer.
    Close(oneshot::Sender<()>),
}

/// Take the queued jobs after `first` into `batch`, up to [`MAX_BATCH`]; on a close request,
/// stop taking new jobs and take all that were queued before it. Returns that request.
fn fill_batch(
    first: WriterMsg,
    rx: &mut mpsc::Receiver<WriterMsg>,
    batch: &mut Vec<WriteJob>,
) -> Option<oneshot::Sender<()>> {
    let mut close = None;
    let mut next = Some(first);
    while let Some(msg) = next.take() {
        match msg {
            WriterMsg::Write(job) => batch.push(job),
            WriterMsg::Close(ack) => {
                if close.is_none() {
                    rx.close();
                }
                // A second close request is answered with the first.
                close.get_or_insert(ack);
            }
        }
        if close.is_none() && batch.len() >= MAX_BATCH {
            break;
        }
        next = rx.try_recv().ok();
    }
    close
}

impl super::Store {
    /// Store a callback message durably, or report that it was stored before; within the
    /// write timeout, so that a hung database gets the callback an error (and WeChat a
    /// reason to retry) instead of a request that never ends.
    ///
    /// The bound covers the wait for a place in the writer's queue and for the commit. A
    /// record given up on stays queued and may still be committed when the database comes
    /// back; its retry is then a duplicate, answered like the first delivery.
    pub async fn record_inbound(&self, rec: NewInbound) -> Result<Recorded, StoreError> {
        let (done, wait) = oneshot::channel();
        let recorded = async {
            self.writer
                .send(WriterMsg::Write(WriteJob { rec, done }))
                .await
                .map_err(|_| StoreError::Closed)?;
            match wait.await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(msg)) => Err(StoreError::Db(sqlx::Error::Protocol(msg))),
                Err(_) => Err(StoreError::Closed),
            }
        };
        tokio::time::timeout(self.write_timeout, recorded)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.write_timeout)))
    }

    /// Count stored messages on a channel (operations and tests).
    pub async fn count_inbound(&self, channel: &str) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbound_messages WHERE channel = $1")
            .bind(channel)
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}

/// The inbound writer on SQLite: a thread of its own that owns one connection and stores
/// each batch in one transaction, statement by statement, so a batch costs no hand-off
/// between threads beyond receiving it and answering it.
pub(super) fn spawn_sqlite_writer(
    path: &Path,
    rx: mpsc::Receiver<WriterMsg>,
) -> Result<(), StoreError> {
    let conn = open_sqlite_writer(path)?;
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("kefu-inbound-writer".into())
        .spawn(move || sqlite_writer(conn, rx, rt))
        .map_err(|e| StoreError::Writer(e.to_string()))?;
    Ok(())
}

fn open_sqlite_writer(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| {
        // FULL: the commit is on disk before any request of the batch is answered.
        let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {mode}, not wal"
            )));
        }
        c.pragma_update(None, "synchronous", "FULL")?;
        // While another connection writes (the ticket watch, the console), retry every
        // 0.2 ms for up to 5 s. SQLite's own busy timeout sleeps up to 100 ms between tries,
        // and every request of the batch would wait out the sleep after the lock was free.
        c.busy_handler(Some(retry_soon))?;
        Ok(c)
    })
    .map_err(|e| StoreError::Writer(format!("{}: {e}", path.display())))?;
    Ok(conn)
}

/// The writer's busy handler: `true` (try again) after a 0.2 ms pause, until 5 s have passed
/// since the first try of this wait (measured, not counted: a busy machine oversleeps).
fn retry_soon(tries: i32) -> bool {
    use std::time::{Duration, Instant};
    const PAUSE: Duration = Duration::from_micros(200);
    const GIVE_UP_AFTER: Duration = Duration::from_secs(5);
    thread_local! {
        static WAITING_SINCE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = Instant::now();
    let since = WAITING_SINCE.with(|w| {
        if tries == 0 {
            w.set(Some(now));
        }
        w.get().unwrap_or(now)
    });
    if now.duration_since(since) >= GIVE_UP_AFTER {
        return false;
    }
    std::thread::sleep(PAUSE);
    true
}

fn sqlite_writer(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<WriterMsg>,
    rt: tokio::runtime::Handle,
) {
    let mut batch: Vec<WriteJob> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let close = fill_batch(first, &mut rx, &mut batch);
        if !batch.is_empty() {
            let outcomes = match store_batch_sqlite(&mut conn, &batch) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, size = batch.len(), "storing inbound messages failed");
                    let e = e.to_string();
                    batch.iter().map(|_| Err(e.clone())).collect()
                }
            };
            // Waking each waiting request is left to the runtime: under load this thread is
            // the one everything waits on.
            let jobs: Vec<WriteJob> = std::mem::take(&mut batch);
            rt.spawn(async move {
                for (job, out) in jobs.into_iter().zip(outcomes) {
                    let _ = job.done.send(out);
                }
            });
        }
        if let Some(ack) = close {
            drop(conn);
            let _ = ack.send(());
            return;
        }
    }
}

const INSERT_SQLITE: &str =
    "INSERT INTO inbound_messages (id, channel, dedup_key, msg_type, event, \
     from_user, to_user, create_time, content, raw_xml, received_at, status, reply_text, intent, \
     confidence, reply_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
     CAST(?15 AS DOUBLE PRECISION), ?16) ON CONFLICT (channel, dedup_key) DO NOTHING";

const EARLIER_SQLITE: &str =
    "SELECT reply_text FROM inbound_messages WHERE channel = ?1 AND dedup_key = ?2";

/// One transaction for the batch. A record that fails on its own (its statement is undone)
/// gets its own error and the others are still stored; a failure that ends the transaction
/// fails the whole batch, and then nothing of it was stored.
fn store_batch_sqlite(
    conn: &mut rusqlite::Connection,
    jobs: &[WriteJob],
) -> rusqlite::Result<Vec<Result<Recorded, String>>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(jobs.len());
    {
        let mut insert = tx.prepare_cached(INSERT_SQLITE)?;
        let mut earlier = tx.prepare_cached(EARLIER_SQLITE)?;
        for job in jobs {
            let r = &job.rec;
            let inserted = insert.execute(rusqlite::params![
                r.id,
                r.channel,
                r.dedup_key,
                r.msg_type,
                r.event,
                r.from_user,
                r.to_user,
                r.create_time,
                r.content,
                r.raw_xml,
                r.received_at,
                r.status.as_str(),
                r.reply_text,
                r.intent,
                r.confidence,
                r.reply_id,
            ]);
            let res = match inserted {
                Ok(1) => Ok(Recorded::New),
                // Stored before, maybe earlier in this very batch: give its reply again.
                Ok(_) => earlier
                    .query_row((r.channel, &r.dedup_key), |row| row.get(0))
                    .map(|reply_text| Recorded::Duplicate { reply_text })
                    .map_err(|e| e.to_string()),
                Err(e) if tx.is_autocommit() => return Err(e),
                Err(e) => Err(e.to_string()),
            };
            out.push(res);
        }
    }
    tx.commit()?;
    Ok(out)
}

/// The inbound writer on PostgreSQL (and in-memory SQLite): a task that stores each batch
/// with one statement through the pool.
pub(super) async fn writer(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<WriterMsg>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    let mut conn: Option<PoolConnection<Any>> = None;
    let closing = pool.close_event();
    tokio::pin!(closing);
    loop {
        let first = tokio::select! {
            msg = rx.recv() => msg,
            // Hand the connection back so `Pool::close` can finish; later jobs get an error.
            _ = &mut closing, if conn.is_some() => {
                conn = None;
                continue;
            }
        };
        let Some(first) = first else { break };
        let close = fill_batch(first, &mut rx, &mut batch);
        if !batch.is_empty() {
            conn = write_pooled(&pool, backend, conn, &mut batch).await;
        }
        if let Some(ack) = close {
            drop(conn);
            let _ = ack.send(());
            return;
        }
    }
}

/// Store `batch` on the writer's connection (acquired if it has none) and answer each job.
async fn write_pooled(
    pool: &AnyPool,
    backend: Backend,
    mut conn: Option<PoolConnection<Any>>,
    batch: &mut Vec<WriteJob>,
) -> Option<PoolConnection<Any>> {
    // The writer keeps one connection: no pool hand-off or liveness ping per batch, and
    // its statement cache holds the INSERTs of the usual batch sizes.
    if conn.is_none() && !pool.is_closed() {
        match pool.acquire().await {
            Ok(c) => conn = Some(c),
            Err(e) => {
                tracing::error!(error = %e, "no database connection for the inbound writer");
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(e.to_string()));
                }
                return None;
            }
        }
    }
    let Some(c) = conn.as_mut() else {
        for job in batch.drain(..) {
            let _ = job.done.send(Err("the store is shutting down".into()));
        }
        return None;
    };
    match write_batch(c, backend, batch.iter().map(|j| &j.rec)).await {
        Ok(outcomes) => {
            for (job, out) in batch.drain(..).zip(outcomes) {
                let _ = job.done.send(Ok(out));
            }
            conn
        }
        Err(batch_err) => {
            // One bad record must not fail its neighbours: retry each on its own, on a
            // fresh connection in case this one broke.
            tracing::warn!(error = %batch_err, size = batch.len(), "batch insert failed; retrying one by one");
            for job in batch.drain(..) {
                let res = match pool.acquire().await {
                    Ok(mut c) => write_batch(&mut c, backend, std::iter::once(&job.rec)).await,
                    Err(e) => Err(e),
                };
                let res = res
                    .map(|mut v| v.pop().unwrap_or(Recorded::New))
                    .map_err(|e| e.to_string());
                let _ = job.done.send(res);
            }
            None
        }
    }
}

const COLUMNS: usize = 16;

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Bind one record's COLUMNS values, in the column order of the INSERTs below.
fn bind_row<'q>(q: AnyQuery<'q>, r: &'q NewInbound) -> AnyQuery<'q> {
    q.bind(&r.id)
        .bind(r.channel)
        .bind(&r.dedup_key)
        .bind(&r.msg_type)
        .bind(r.event.as_deref())
        .bind(r.from_user.as_deref())
        .bind(&r.to_user)
        .bind(r.create_time)
        .bind(r.content.as_deref())
        .bind(&r.raw_xml)
        .bind(r.received_at)
        .bind(r.status.as_str())
        .bind(r.reply_text.as_deref())
        .bind(r.intent.as_deref())
        .bind(super::float_param(r.confidence))
        .bind(r.reply_id.as_deref())
}

/// `n` placeholders starting after `offset`: `?` on SQLite (it resolves `$N` names by a
/// linear search per bind, which makes large batches quadratic), `$N` on PostgreSQL.
fn placeholders(sql: &mut String, backend: Backend, offset: usize, n: usize) {
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        match backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => {
                sql.push('$');
                sql.push_str(&(offset + i + 1).to_string());
            }
        }
    }
}

/// Store a batch with one statement, which is its own transaction: a multi-row
/// `INSERT … ON CONFLICT DO NOTHING`, so the usual batch (no retries in it) costs one round
/// trip to the database and one commit. Keys it did not store were stored before (a retry, a
/// replay, or another replica a moment ago: on PostgreSQL the insert waits for that replica's
/// commit); their earlier reply is read after.
async fn write_batch<'a>(
    db: &mut AnyConnection,
    backend: Backend,
    recs: impl Iterator<Item = &'a NewInbound>,
) -> Result<Vec<Recorded>, sqlx::Error> {
    let recs: Vec<&NewInbound> = recs.collect();

    // The first of several records with one key in this batch is the candidate; the others
    // are duplicates of it.
    let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(recs.len());
    let mut fresh: Vec<&NewInbound> = Vec::with_capacity(recs.len());
    for (i, r) in recs.iter().enumerate() {
        first
            .entry((r.channel, r.dedup_key.as_str()))
            .or_insert_with(|| {
                fresh.push(r);
                i
            });
    }

    let mut sql = String::with_capacity(200 + fresh.len() * 80);
    sql.push_str(
        "INSERT INTO inbound_messages (id, channel, dedup_key, msg_type, event, from_user, to_user, \
         create_time, content, raw_xml, received_at, status, reply_text, intent, confidence, reply_id) VALUES ",
    );
    for i in 0..fresh.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        // The confidence (the 15th column) goes as text and is cast back (see float_param).
        placeholders(&mut sql, backend, i * COLUMNS, 14);
        sql.push_str(",CAST(");
        placeholders(&mut sql, backend, i * COLUMNS + 14, 1);
        sql.push_str(" AS DOUBLE PRECISION),");
        placeholders(&mut sql, backend, i * COLUMNS + 15, COLUMNS - 15);
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (channel, dedup_key) DO NOTHING");
    let mut q = sqlx::query(&sql);
    for r in &fresh {
        q = bind_row(q, r);
    }
    let stored = q.execute(&mut *db).await?.rows_affected();

    // Usually every record was new. Otherwise each key's stored row says which: it carries
    // this record's id if the insert above stored it, and the earlier reply if not.
    let mut earlier: HashMap<(&str, &str), Option<String>> = HashMap::new();
    if stored as usize != fresh.len() {
        let mut select =
            String::from("SELECT id, reply_text FROM inbound_messages WHERE channel = ");
        placeholders(&mut select, backend, 0, 1);
        select.push_str(" AND dedup_key = ");
        placeholders(&mut select, backend, 1, 1);
        for r in &fresh {
            let row: Option<(String, Option<String>)> = sqlx::query_as(&select)
                .bind(r.channel)
                .bind(&r.dedup_key)
                .fetch_optional(&mut *db)
                .await?;
            match row {
                Some((id, _)) if id == r.id => {}
                Some((_, reply)) => {
                    earlier.insert((r.channel, r.dedup_key.as_str()), reply);
                }
                None => {
                    return Err(sqlx::Error::Protocol(format!(
                        "inbound message {} neither stored nor found",
                        r.id
                    )))
                }
            }
        }
    }

    Ok(recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key = (r.channel, r.dedup_key.as_str());
            match earlier.get(&key) {
                Some(reply) => Recorded::Duplicate {
                    reply_text: reply.clone(),
                },
                None if first.get(&key) == Some(&i) => Recorded::New,
                None => Recorded::Duplicate {
                    reply_text: first_reply(&recs, &first, key),
                },
            }
        })
        .collect())
}

/// The reply of the record that came first with `key` in this batch.
fn first_reply(
    recs: &[&NewInbound],
    first: &HashMap<(&str, &str), usize>,
    key: (&str, &str),
) -> Option<String> {
    first
        .get(&key)
        .and_then(|i| recs.get(*i))
        .and_then(|r| r.reply_text.clone())
}
