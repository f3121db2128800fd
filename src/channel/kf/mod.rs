//! WeCom Customer Service (微信客服): pull, decide, send.
//!
//! A `kf_msg_or_event` callback only says "there is something new". [`KfService::pull`]
//! fetches it with `kf/sync_msg`, paging while `has_more`, and stores each page's messages,
//! the outbox rows they cause and the new cursor in **one transaction**, so a crash neither
//! loses nor repeats a message. One consumer per `open_kfid` at a time: an in-process lock,
//! plus a transaction-scoped advisory lock on PostgreSQL so replicas take turns.
//!
//! Every outgoing message goes to the `outbox` table first; [`KfService::send_due`] sends
//! due rows with retries and marks them sent, or failed past the retry budget (listed for
//! supervisors at `GET /api/outbox/failed`).
//!
//! The parts: [`pull`] (paging, cursor, locks, recording each message), [`decide`] (answer a
//! shopper or hand the chat to a person; the message bodies are in [`bodies`]), [`events`]
//! (one handler per event type), [`outbox`] (queue, send, retry, recover, alerts). This file
//! holds the service itself and its background workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};

use crate::clock::SharedClock;
use crate::config::AckTexts;
use crate::crm::{self, CustomerProfile};
use crate::ids::{ExternalUserId, OpenKfId};
use crate::intent::SharedClassifier;
use crate::store::{self, Store};
use crate::tickets::TicketService;
use crate::wecom::api::{ApiError, WecomClient};

mod bodies;
mod decide;
mod events;
mod outbox;
mod pull;
mod tickets;

pub use tickets::{ReplyOutcome, TicketWork};

/// Messages older than this when first pulled are history (e.g. the 3 days a first pull
/// returns): recorded and left to a person, never answered by the bot.
pub const HISTORY_CUTOFF_SECS: i64 = 10 * 60;
/// Attempts before an outbox row is marked failed.
pub const OUTBOX_ATTEMPTS: i64 = 6;
/// How long a sender holds a claimed outbox row, unless configured otherwise (`[wecom]
/// outbox_lease_secs`). One send, with the client's own retries, ends well within it (5
/// attempts of at most 5 s, with backoff), and a send is cut off before the lease runs out;
/// past it, the sender is taken to be gone and any sender may take the row again.
pub const OUTBOX_LEASE_MS: i64 = 2 * 60 * 1000;

/// How often the ticket watch runs when nothing wakes it (SLA marks, idle assignments).
const TICKET_TICK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum KfError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Ticket(#[from] crate::tickets::TicketError),
}

/// What one pull did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullReport {
    pub pages: usize,
    pub new_messages: usize,
    pub answered: usize,
    pub handed_over: usize,
    /// Tickets opened (or reopened) by this pull.
    pub tickets_opened: usize,
    /// Messages added to a customer's open ticket.
    pub appended: usize,
    /// The pull stopped at [`Paging::max_pages`] with more waiting.
    pub capped: bool,
    /// Pages fetched and dropped because another replica recorded them first.
    pub pages_superseded: usize,
}

/// How a pull pages through `kf/sync_msg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Messages asked for per page (WeCom's maximum is 1000).
    pub page_size: u32,
    /// Pages one pull takes at most; the rest waits for the next pull.
    pub max_pages: usize,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page_size: 1000,
            max_pages: 20,
        }
    }
}

pub struct KfService {
    store: Store,
    client: Arc<WecomClient>,
    classifier: Arc<SharedClassifier>,
    clock: SharedClock,
    acks: AckTexts,
    tickets: Arc<TicketService>,
    /// Group robot for supervisors' alerts (outgoing messages that failed for good).
    alert_webhook_key: Option<String>,
    /// One pull per kf account at a time (see [`KfService::pull`]).
    locks: Mutex<HashMap<OpenKfId, Arc<Mutex<()>>>>,
    /// Woken when a pull has queued rows, so the sender does not wait for its next tick.
    outbox_ready: Notify,
    /// One `send_due` at a time in this process.
    outbox_lock: Mutex<()>,
    /// Woken when tickets may be waiting for an agent (opened, agent free or added).
    tickets_ready: Notify,
    paging: std::sync::RwLock<Paging>,
    /// See [`OUTBOX_LEASE_MS`].
    outbox_lease_ms: AtomicI64,
}

impl KfService {
    pub fn new(
        store: Store,
        client: Arc<WecomClient>,
        classifier: Arc<SharedClassifier>,
        clock: SharedClock,
        acks: AckTexts,
        tickets: Arc<TicketService>,
        alert_webhook_key: Option<String>,
    ) -> Arc<KfService> {
        Arc::new(KfService {
            store,
            client,
            classifier,
            clock,
            acks,
            tickets,
            alert_webhook_key,
            locks: Mutex::new(HashMap::new()),
            outbox_ready: Notify::new(),
            outbox_lock: Mutex::new(()),
            tickets_ready: Notify::new(),
            paging: std::sync::RwLock::new(Paging::default()),
            outbox_lease_ms: AtomicI64::new(OUTBOX_LEASE_MS),
        })
    }

    /// Hold claimed outbox rows this long from now on (see [`OUTBOX_LEASE_MS`]).
    pub fn set_outbox_lease(&self, lease: Duration) {
        let ms = i64::try_from(lease.as_millis()).unwrap_or(OUTBOX_LEASE_MS);
        self.outbox_lease_ms.store(ms.max(1000), Ordering::Relaxed);
    }

    pub(super) fn outbox_lease_ms(&self) -> i64 {
        self.outbox_lease_ms.load(Ordering::Relaxed)
    }

    /// Page differently from now on (tests use small pages to reach the cap).
    pub fn set_paging(&self, paging: Paging) {
        if let Ok(mut p) = self.paging.write() {
            *p = paging;
        }
    }

    pub(super) fn paging(&self) -> Paging {
        self.paging.read().map(|p| *p).unwrap_or_default()
    }

    /// The customer's nickname, tier and standing (see [`crate::crm`]).
    pub async fn profile(&self, external_userid: &ExternalUserId) -> CustomerProfile {
        crm::profile(
            &self.store,
            &self.client,
            &self.tickets.settings().tiers,
            self.clock.now_ms(),
            external_userid,
        )
        .await
    }

    /// Background work until `shutdown` fires: the outbox sender, and a poller that pulls
    /// every known kf account with its stored cursor as a safety net for lost callbacks.
    ///
    /// Each worker finishes the item in hand before it stops; the returned handles end when
    /// both have stopped, so the caller can wait for them before it closes the store.
    pub fn spawn_workers(
        self: &Arc<Self>,
        poll_every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let shutdown_tickets = shutdown.clone();
        let service = self.clone();
        let mut stop = shutdown.clone();
        let sender = tokio::spawn(async move {
            if let Err(e) = service.recover().await {
                tracing::error!(error = %e, "outbox recovery failed");
            }
            loop {
                if let Err(e) = service.send_due().await {
                    tracing::warn!(error = %e, "outbox pass failed");
                }
                tokio::select! {
                    _ = service.outbox_ready.notified() => {},
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {},
                    _ = stop.changed() => break,
                }
            }
        });
        let service = self.clone();
        let poller = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(poll_every) => {},
                    _ = shutdown.changed() => break,
                }
                let mut accounts = store::kf::known_accounts(service.store.pool())
                    .await
                    .unwrap_or_default();
                // An account gets a cursor only when its first pull succeeds; if that pull
                // failed (or its callback was lost), only WeCom's own list still names it.
                match service.client.account_list().await {
                    Ok(list) => {
                        let listed = list["account_list"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|a| a["open_kfid"].as_str())
                            .map(OpenKfId::from);
                        for id in listed {
                            if !accounts.contains(&id) {
                                accounts.push(id);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "kf/account/list failed; polling known accounts")
                    }
                }
                for open_kfid in accounts {
                    if let Err(e) = service.pull(&open_kfid, None).await {
                        tracing::warn!(%open_kfid, error = %e, "safety-net pull failed");
                    }
                }
            }
        });
        let service = self.clone();
        let mut stop = shutdown_tickets;
        let watcher = tokio::spawn(async move {
            if let Err(e) = service.sync_agents().await {
                tracing::warn!(error = %e, "could not record the configured agents");
            }
            loop {
                let s = service.clone();
                if !crate::tickets::worker::pass_apart(async move { s.ticket_pass().await }).await {
                    break;
                }
                tokio::select! {
                    _ = service.tickets_ready.notified() => {},
                    _ = tokio::time::sleep(TICKET_TICK) => {},
                    _ = stop.changed() => break,
                }
            }
        });
        vec![sender, poller, watcher]
    }
}
