//! The ticket watch and routing when kefu has no WeCom Customer Service loop (an Official
//! Account only): the kf loop runs the same passes, plus what WeCom must be told, when it
//! is configured.

use std::sync::Arc;
use std::time::Duration;

use super::store as ticket_store;
use super::{TicketError, TicketService};
use crate::store::Store;

/// How often the passes run.
pub const TICK: Duration = Duration::from_secs(5);

/// One pass: take in waiting Official Account messages, watch, then route.
pub async fn pass(store: &Store, tickets: &TicketService) -> Result<(), TicketError> {
    tickets.take_in_waiting_mp(store.pool()).await?;
    let mut tx = store.pool().begin().await?;
    ticket_store::take_routing_turn(&mut tx).await?;
    tickets.requeue_idle(&mut tx).await?;
    tickets.close_expired(&mut tx).await?;
    tickets.check_sla(&mut tx).await?;
    tx.commit().await?;
    let mut tx = store.pool().begin().await?;
    tickets.route(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Run [`pass`] every [`TICK`] until `shutdown` fires.
pub fn spawn(
    store: Store,
    tickets: Arc<TicketService>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (s, t) = (store.clone(), tickets.clone());
            if !pass_apart(async move { pass(&s, &t).await }).await {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {},
                _ = shutdown.changed() => break,
            }
        }
    })
}

/// Run a background pass on a thread of its own (from the runtime's blocking pool), within
/// the runtime, instead of among the request tasks. `None` when it was cancelled.
///
/// A pass is a string of statements inside transactions, and on SQLite each transaction
/// holds the write lock that intake's writer, and so every shopper waiting for an answer,
/// waits on. Each statement's result wakes the pass: among the request tasks of a loaded
/// server that wake-up waits its turn in the runtime's shared queue, while sqlx's SQLite
/// thread unparks a thread of its own directly. Under load this halved how long a take-in
/// batch held the lock (see BENCHMARKS.md). On PostgreSQL the socket's readiness still
/// comes through the runtime's I/O driver.
///
/// Dropping the returned future (a worker aborted at the shutdown deadline, the runtime shut
/// down) stops the pass at its next await, so its transaction is rolled back and its
/// connection given back before the store closes, as when the pass ran on the worker task.
pub async fn apart<F>(work: F) -> Result<Option<F::Output>, tokio::task::JoinError>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (_running, cancelled) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        rt.block_on(async move {
            tokio::select! {
                // First, so nothing else is polled once the caller is gone.
                biased;
                _ = cancelled => None,
                done = work => Some(done),
            }
        })
    })
    .await
}

/// [`apart`] for a ticket pass: a failure or a panic is logged and the loop goes on (`true`);
/// `false` when the pass was cancelled (shutdown).
pub async fn pass_apart<T, E>(
    work: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
) -> bool
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    match apart(work).await {
        Ok(Some(Ok(_))) => true,
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "ticket pass failed");
            true
        }
        Err(e) if e.is_panic() => {
            tracing::error!(error = %e, "ticket pass panicked");
            true
        }
        Ok(None) | Err(_) => false,
    }
}
