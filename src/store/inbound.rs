//! The inbound-message table and its group-commit writer.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

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

impl super::Store {
    /// Store a callback message durably, or report that it was stored before.
    pub async fn record_inbound(&self, rec: NewInbound) -> Result<Recorded, StoreError> {
        let (done, wait) = oneshot::channel();
        self.writer
            .send(WriteJob { rec, done })
            .await
            .map_err(|_| StoreError::Closed)?;
        match wait.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(StoreError::Db(sqlx::Error::Protocol(msg))),
            Err(_) => Err(StoreError::Closed),
        }
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

pub(super) async fn writer(pool: AnyPool, mut rx: mpsc::Receiver<WriteJob>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match write_batch(&pool, batch.iter().map(|j| &j.rec)).await {
            Ok(outcomes) => {
                for (job, out) in batch.drain(..).zip(outcomes) {
                    let _ = job.done.send(Ok(out));
                }
            }
            Err(batch_err) => {
                // One bad record must not fail its neighbours: retry each on its own.
                tracing::warn!(error = %batch_err, size = batch.len(), "batch insert failed; retrying one by one");
                for job in batch.drain(..) {
                    let res = write_batch(&pool, std::iter::once(&job.rec))
                        .await
                        .map(|mut v| v.pop().unwrap_or(Recorded::New))
                        .map_err(|e| e.to_string());
                    let _ = job.done.send(res);
                }
            }
        }
    }
}

async fn write_batch<'a>(
    pool: &AnyPool,
    recs: impl Iterator<Item = &'a NewInbound>,
) -> Result<Vec<Recorded>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::new();
    for r in recs {
        let inserted = sqlx::query(
            "INSERT INTO inbound_messages (id, channel, dedup_key, msg_type, event, from_user, to_user, \
             create_time, content, raw_xml, received_at, status, reply_text) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (channel, dedup_key) DO NOTHING",
        )
        .bind(&r.id)
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
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            out.push(Recorded::New);
        } else {
            let reply_text: Option<String> = sqlx::query_scalar(
                "SELECT reply_text FROM inbound_messages WHERE channel = $1 AND dedup_key = $2",
            )
            .bind(r.channel)
            .bind(&r.dedup_key)
            .fetch_one(&mut *tx)
            .await?;
            out.push(Recorded::Duplicate { reply_text });
        }
    }
    tx.commit().await?;
    Ok(out)
}
