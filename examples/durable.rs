//! The load test's durable-intake baseline: the least any server that records a callback
//! before answering it must do, on the same runtime settings as kefu.
//!
//! - axum, on the same route as kefu's callback;
//! - one SQLite writer thread (rusqlite, the same libsqlite3 as kefu) that takes everything
//!   queued and commits it as one transaction: WAL, `synchronous=FULL`, so an fsync per
//!   commit;
//! - one row per message with a unique key (the query's `timestamp` and `nonce`, which a
//!   sender does not repeat), holding the body as received: a rowid table and the key's
//!   unique index, nothing else;
//! - the answer only after the commit.
//!
//! It verifies, decrypts, parses and classifies nothing: what it costs is HTTP, the hand-off
//! to the writer and back, and the durable commit.
//! `cargo run --release --example durable -- 127.0.0.1:18083 /tmp/durable.db`

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use tokio::sync::{mpsc, oneshot};

/// Up to this many queued rows share one transaction (kefu's writer uses the same bound).
const MAX_BATCH: usize = 256;

struct Job {
    key: String,
    body: axum::body::Bytes,
    done: oneshot::Sender<bool>,
}

#[derive(Clone)]
struct Writer(mpsc::Sender<Job>);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18083".into());
    let path = args.next().unwrap_or_else(|| "bench/out/durable.db".into());
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let conn = rusqlite::Connection::open(&path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("journal_mode is {mode}, not wal").into());
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS intake (key TEXT NOT NULL UNIQUE, body BLOB NOT NULL)",
    )?;
    let (tx, rx) = mpsc::channel::<Job>(4096);
    std::thread::Builder::new()
        .name("durable-writer".into())
        .spawn({
            let rt = tokio::runtime::Handle::current();
            move || writer(conn, rx, rt)
        })?;

    let app = axum::Router::new()
        .route("/wechat/callback", axum::routing::post(intake))
        .with_state(Writer(tx));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn intake(
    State(writer): State<Writer>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    // The unique key: the sender's timestamp and nonce from the query string.
    let param = |name: &str| {
        query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    };
    let (ts, nonce) = (param("timestamp"), param("nonce"));
    if ts.is_empty() || nonce.is_empty() {
        return (StatusCode::BAD_REQUEST, "no timestamp or nonce");
    }
    let key = format!("{ts}:{nonce}");
    let (done, wait) = oneshot::channel();
    if writer.0.send(Job { key, body, done }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "writer gone");
    }
    match wait.await {
        Ok(true) => (StatusCode::OK, "success"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "not stored"),
    }
}

/// Take what is queued (up to [`MAX_BATCH`]), store it in one transaction, answer each job
/// (the wake-ups are left to the runtime, so the writer goes straight back to the queue).
fn writer(mut conn: rusqlite::Connection, mut rx: mpsc::Receiver<Job>, rt: tokio::runtime::Handle) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let stored = store(&mut conn, &batch).is_ok();
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        rt.spawn(async move {
            for job in jobs {
                let _ = job.done.send(stored);
            }
        });
    }
}

fn store(conn: &mut rusqlite::Connection, batch: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO intake (key, body) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        for job in batch {
            insert.execute((&job.key, &job.body[..]))?;
        }
    }
    tx.commit()
}
