//! Official Account messages the bot could not answer become tickets too. The intake
//! answers them at once (a passive reply) and records them; the watch then opens or
//! appends to the follower's ticket, from the stored message, so nothing on the hot path
//! waits for tickets and nothing recorded is missed.

use sqlx::AnyConnection;

use super::{Incoming, OpenReason, TicketError, TicketService};
use crate::crm::Standing;
use crate::store::unresolved;

/// How far back the watch looks for messages without a ticket.
const LOOK_BACK_MS: i64 = 7 * 24 * 3600 * 1000;

impl TicketService {
    /// Open or append tickets for unresolved Official Account messages no ticket holds;
    /// returns how many it took in.
    pub async fn take_in_mp(&self, conn: &mut AnyConnection) -> Result<usize, TicketError> {
        let now = self.now_ms();
        let waiting = unresolved::unticketed(conn, "mp", now - LOOK_BACK_MS, 200).await?;
        let standing = Standing::default();
        let mut taken = 0;
        for m in &waiting {
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
            taken += 1;
        }
        Ok(taken)
    }
}
