//! The console's live feed: which tickets changed, for the open pages to refresh.
//!
//! One watcher per process reads the tickets whose `updated_at` moved since its last look
//! (every [`POLL`], so changes made by other replicas arrive too) and broadcasts each new
//! version once. A change carries ids only, never customer text: the page fetches what it
//! may see. A page that connects, reconnects or falls behind is told to reload its views
//! (see the `hello` event in the console's event stream), so it misses nothing.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use sqlx::AnyPool;
use tokio::sync::broadcast;

use super::ConsoleUser;
use crate::tickets::TicketStatus;

/// How often the watcher looks.
pub const POLL: Duration = Duration::from_millis(50);
/// How far back each look reaches before the newest change it saw: a transaction that
/// committed late with an earlier `updated_at` (another replica, a slow writer) is still seen.
const GRACE_MS: i64 = 5_000;

/// One ticket's new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub ticket: String,
    pub status: String,
    pub group: String,
    pub assignee: Option<String>,
    /// The agent it was assigned to before this change, when that changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_assignee: Option<String>,
    /// Its group and agent before the change, when the watcher knew them: a change concerns
    /// whoever saw the ticket before it too (a queued ticket taken by someone else leaves
    /// the group's other agents' queues).
    #[serde(skip)]
    pub before: Option<(String, Option<String>)>,
}

impl Change {
    /// Whether the change concerns `user`: a supervisor sees all; an agent their own
    /// tickets (also one just taken from them) and their groups' unassigned ones.
    pub fn concerns(&self, user: &ConsoleUser) -> bool {
        if user.is_supervisor() {
            return true;
        }
        let me = user.servicer_userid.as_deref();
        let visible = |group: &str, assignee: &Option<String>| match assignee {
            Some(a) => me == Some(a.as_str()),
            None => user.groups.iter().any(|g| g == group),
        };
        visible(&self.group, &self.assignee)
            || self
                .previous_assignee
                .as_deref()
                .is_some_and(|a| me == Some(a))
            || self
                .before
                .as_ref()
                .is_some_and(|(group, assignee)| visible(group, assignee))
    }
}

/// The watcher's handle: subscribe to receive changes.
#[derive(Clone)]
pub struct Feed {
    pool: AnyPool,
    sender: broadcast::Sender<Arc<Change>>,
    started: Arc<OnceLock<()>>,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Feed {
    pub fn new(pool: AnyPool) -> Feed {
        let (sender, _) = broadcast::channel(1024);
        Feed {
            pool,
            sender,
            started: Arc::new(OnceLock::new()),
            closing: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// The server is shutting down: every event stream ends.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Feed::close`] was called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }

    /// Changes from now on. The watcher starts with the first subscriber.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        let rx = self.sender.subscribe();
        self.started.get_or_init(|| {
            tokio::spawn(watch(self.pool.clone(), self.sender.clone()));
        });
        rx
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    version: i64,
    updated_at: i64,
    status: String,
    grp: String,
    assignee: Option<String>,
}

async fn watch(pool: AnyPool, sender: broadcast::Sender<Arc<Change>>) {
    // Ticket id -> (version, assignee, updated_at, open, group) as last seen.
    let mut seen: HashMap<String, (i64, Option<String>, i64, bool, String)> = HashMap::new();
    let mut newest: Option<i64> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if sender.receiver_count() == 0 && newest.is_some() {
            // Nobody is looking: a page that connects gets `hello` and reloads anyway.
            continue;
        }
        let Some(since) = newest.map(|n| n - GRACE_MS) else {
            // The first look only learns where things stand: the open tickets (whose
            // assignee a later change may take away) and the newest change.
            match start(&pool).await {
                Ok((rows, max)) => {
                    for r in rows {
                        seen.insert(r.id, (r.version, r.assignee, r.updated_at, true, r.grp));
                    }
                    newest = Some(max.unwrap_or(0));
                }
                Err(e) => tracing::warn!(error = %e, "console feed: cannot read tickets"),
            }
            continue;
        };
        let rows: Vec<Row> = match sqlx::query_as(
            "SELECT id, version, updated_at, status, grp, assignee FROM tickets \
             WHERE updated_at >= $1 ORDER BY updated_at, id",
        )
        .bind(since)
        .fetch_all(&pool)
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "console feed: cannot read ticket changes");
                continue;
            }
        };
        for r in rows {
            newest = Some(newest.map_or(r.updated_at, |n| n.max(r.updated_at)));
            let before = seen.get(&r.id);
            if before.is_some_and(|(v, ..)| *v >= r.version) {
                continue;
            }
            let previous = before
                .map(|(_, a, ..)| a.clone())
                .filter(|a| *a != r.assignee)
                .flatten();
            let before = before.map(|(_, a, _, _, g)| (g.clone(), a.clone()));
            let open = TicketStatus::parse(&r.status).is_some_and(|s| s.is_open());
            seen.insert(
                r.id.clone(),
                (
                    r.version,
                    r.assignee.clone(),
                    r.updated_at,
                    open,
                    r.grp.clone(),
                ),
            );
            // No subscriber is fine: nobody is looking.
            let _ = sender.send(Arc::new(Change {
                ticket: r.id,
                status: r.status,
                group: r.grp,
                assignee: r.assignee,
                previous_assignee: previous,
                before,
            }));
        }
        if let Some(n) = newest {
            // Keep what the next look can return again, and the open tickets.
            seen.retain(|_, (_, _, at, open, _)| *open || *at >= n - 2 * GRACE_MS);
        }
    }
}

async fn start(pool: &AnyPool) -> sqlx::Result<(Vec<Row>, Option<i64>)> {
    let rows = sqlx::query_as(
        "SELECT id, version, updated_at, status, grp, assignee FROM tickets \
         WHERE open_key IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(updated_at) FROM tickets")
        .fetch_one(pool)
        .await?;
    Ok((rows, max))
}
