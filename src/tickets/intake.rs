//! Official Account messages the bot could not answer become tickets too. The intake
//! answers them at once (a passive reply) and records them; the watch then opens or
//! appends to the follower's ticket, from the stored message, so nothing on the hot path
//! waits for tickets and nothing recorded is missed.

use sqlx::{AnyConnection, AnyPool};

use super::store::take_routing_turn;
use super::{Incoming, OpenReason, TicketError, TicketService};
use crate::crm::Standing;
use crate::store::unresolved;

/// How far back the watch looks for messages without a ticket.
const LOOK_BACK_MS: i64 = 7 * 24 * 3600 * 1000;

/// Messages taken in per transaction. On SQLite each transaction holds the write lock that
/// intake's writer (and so every shopper waiting for an answer) waits on: a few at a time,
/// committed in between, keeps that wait short. The watch takes in up to
/// `TAKE_IN_BATCH * TAKE_IN_ROUNDS` per pass.
pub const TAKE_IN_BATCH: usize = 20;
const TAKE_IN_ROUNDS: usize = 10;

/// What one [`TicketService::take_in_mp`] did.
struct TakenIn {
    /// Messages it read (at most [`TAKE_IN_BATCH`]).
    seen: usize,
    /// Of them, those now in a ticket.
    taken: usize,
}

impl TicketService {
    /// Take in the Official Account messages waiting for a ticket, a batch per transaction
    /// (each after the routing turn, so replicas take turns), until none is left or
    /// `TAKE_IN_ROUNDS` batches are done; returns how many it took in.
    pub async fn take_in_waiting_mp(&self, pool: &AnyPool) -> Result<usize, TicketError> {
        let mut total = 0;
        for _ in 0..TAKE_IN_ROUNDS {
            let mut tx = pool.begin().await?;
            take_routing_turn(&mut tx).await?;
            let batch = self.take_in_mp(&mut tx).await?;
            tx.commit().await?;
            total += batch.taken;
            if batch.seen < TAKE_IN_BATCH {
                break;
            }
        }
        Ok(total)
    }

    /// Open or append tickets for up to [`TAKE_IN_BATCH`] unresolved Official Account
    /// messages no ticket holds, oldest first.
    async fn take_in_mp(&self, conn: &mut AnyConnection) -> Result<TakenIn, TicketError> {
        let now = self.now_ms();
        let waiting =
            unresolved::unticketed(conn, "mp", now - LOOK_BACK_MS, TAKE_IN_BATCH as i64).await?;
        let standing = Standing::default();
        let mut taken = 0;
        for m in &waiting {
            // `unticketed` reads only messages with a sender; this is a guard, not a path.
            let Some(openid) = m.from_user.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let shown = m
                .content
                .clone()
                .unwrap_or_else(|| format!("[{}]", m.msg_type));
            let intent = m.intent.as_deref().unwrap_or(crate::taxonomy::UNKNOWN);
            let incoming = Incoming {
                channel: "mp",
                account: &m.to_user,
                external_userid: openid,
                customer_name: None,
                msgid: &m.id,
                content: &shown,
                intent,
                confidence: m.confidence,
                at_ms: m.received_at,
                standing: &standing,
            };
            if self.append(conn, &incoming).await?.is_none() {
                let reason = if !self.settings().sla.calendar.is_open(m.received_at) {
                    OpenReason::OutOfHours
                } else if crate::taxonomy::get(intent).is_some_and(|i| i.handoff) {
                    OpenReason::Handoff
                } else if m.content.is_none() {
                    OpenReason::NotText
                } else {
                    OpenReason::Unclear
                };
                self.open(conn, &incoming, reason).await?;
            }
            unresolved::mark_ticketed(conn, "mp", &m.dedup_key, now).await?;
            taken += 1;
        }
        Ok(TakenIn {
            seen: waiting.len(),
            taken,
        })
    }
}
