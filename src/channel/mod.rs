//! Inbound handling shared by the channels: turn a verified, decrypted message into a stored
//! record and decide the immediate answer. The web layer stays thin: it parses, verifies and
//! hands a typed message here.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::metrics::{ChannelLabel, MessageLabel, Metrics};
use crate::store::{new_id, InboundStatus, NewInbound, Recorded, Store, StoreError};
use crate::wecom::{InboundMessage, MsgBody};

/// Where a callback came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// WeCom self-built app and Customer Service (kf) callbacks.
    Wecom,
    /// WeChat Official Account.
    Mp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Wecom => "wecom",
            Channel::Mp => "mp",
        }
    }
}

/// The outcome of one accepted callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// This was a retry or replay of a message already recorded; nothing new was done.
    pub duplicate: bool,
    /// Text to send back as a passive reply, if any.
    pub reply_text: Option<String>,
}

#[derive(Clone)]
pub struct Intake {
    store: Store,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    ack_text: String,
}

impl Intake {
    pub fn new(store: Store, metrics: Arc<Metrics>, clock: SharedClock, ack_text: String) -> Self {
        Intake {
            store,
            metrics,
            clock,
            ack_text,
        }
    }

    /// Record `msg` (durably, exactly once) and decide the passive reply.
    pub async fn accept(
        &self,
        channel: Channel,
        raw_xml: String,
        msg: InboundMessage,
    ) -> Result<Accepted, StoreError> {
        let (status, reply_text) = self.decide(channel, &msg);
        let now = self.clock.now_ms();
        let rec = NewInbound {
            id: new_id(now),
            channel: channel.as_str(),
            dedup_key: msg.dedup_key(&raw_xml),
            msg_type: msg.msg_type.clone(),
            event: msg.event_name().map(str::to_owned),
            from_user: msg.from_user.clone(),
            to_user: msg.to_user.clone(),
            create_time: msg.create_time,
            content: msg.text().map(str::to_owned),
            raw_xml,
            received_at: now,
            status,
            reply_text: reply_text.clone(),
        };
        match self.store.record_inbound(rec).await? {
            Recorded::New => {
                self.metrics
                    .recorded
                    .get_or_create(&MessageLabel {
                        channel: channel.as_str().into(),
                        msg_type: msg.msg_type.clone(),
                    })
                    .inc();
                Ok(Accepted {
                    duplicate: false,
                    reply_text,
                })
            }
            Recorded::Duplicate { reply_text } => {
                self.metrics
                    .duplicates
                    .get_or_create(&ChannelLabel {
                        channel: channel.as_str().into(),
                    })
                    .inc();
                // The first delivery's answer may never have reached WeChat (that is why it
                // retried), so the same answer is given again; nothing is processed twice.
                Ok(Accepted {
                    duplicate: true,
                    reply_text,
                })
            }
        }
    }

    fn decide(&self, channel: Channel, msg: &InboundMessage) -> (InboundStatus, Option<String>) {
        match (&msg.body, channel) {
            // Official Account text: acknowledge, and leave it for a person.
            (MsgBody::Text { .. }, Channel::Mp) => {
                (InboundStatus::Unresolved, Some(self.ack_text.clone()))
            }
            _ => (InboundStatus::Received, None),
        }
    }
}
