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
            if let Err(e) = pass(&store, &tickets).await {
                tracing::warn!(error = %e, "ticket pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {},
                _ = shutdown.changed() => break,
            }
        }
    })
}
