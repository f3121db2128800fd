//! Inbound handling shared by the channels: turn a verified, decrypted message into a stored
//! record and decide the immediate answer. The web layer stays thin: it parses, verifies and
//! hands a typed message here.

use std::sync::Arc;

pub mod kf;

use crate::clock::SharedClock;
use crate::intent::SharedClassifier;
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

/// Records every verified callback exactly once and decides its passive reply; starts a kf
/// pull when WeCom says messages are waiting.
#[derive(Clone)]
pub struct Intake {
    store: Store,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    classifier: Arc<SharedClassifier>,
    ack_text: String,
    /// WeCom Customer Service loop, when `[wecom] secret` is configured.
    kf: Option<Arc<kf::KfService>>,
}

/// What to do with a message before it is stored.
struct Decision {
    status: InboundStatus,
    reply_text: Option<String>,
    intent: Option<String>,
    confidence: Option<f64>,
    reply_id: Option<String>,
}

impl Intake {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        classifier: Arc<SharedClassifier>,
        ack_text: String,
    ) -> Self {
        Intake {
            store,
            metrics,
            clock,
            classifier,
            ack_text,
            kf: None,
        }
    }

    /// Pull kf messages when a `kf_msg_or_event` callback arrives.
    pub fn with_kf(mut self, kf: Arc<kf::KfService>) -> Self {
        self.kf = Some(kf);
        self
    }

    /// Record `msg` (durably, exactly once) and decide the passive reply.
    pub async fn accept(
        &self,
        channel: Channel,
        raw_xml: String,
        msg: InboundMessage,
    ) -> Result<Accepted, StoreError> {
        let decision = self.decide(channel, &msg);
        let now = self.clock.now_ms();
        let msg_type_label = metric_msg_type(&msg.msg_type);
        // What a kf callback needs after it is stored: the pull's token and account.
        let kf_pull = match (&self.kf, &msg.body) {
            (Some(kf), MsgBody::KfMsgOrEvent { token, open_kfid }) => {
                Some((kf.clone(), token.clone(), open_kfid.clone()))
            }
            _ => None,
        };
        let dedup_key = msg.dedup_key(&raw_xml);
        let event = msg.event_name().map(str::to_owned);
        // The message's own strings move into the record.
        let content = match msg.body {
            MsgBody::Text { content } => Some(content),
            _ => None,
        };
        let record = NewInbound {
            id: new_id(now),
            channel: channel.as_str(),
            dedup_key,
            msg_type: msg.msg_type,
            event,
            from_user: msg.from_user,
            to_user: msg.to_user,
            create_time: msg.create_time,
            content,
            raw_xml,
            received_at: now,
            status: decision.status,
            reply_text: decision.reply_text.clone(),
            intent: decision.intent,
            confidence: decision.confidence,
            reply_id: decision.reply_id,
        };
        let reply_text = decision.reply_text;
        match self.store.record_inbound(record).await? {
            Recorded::New => {
                if let Some((kf, token, open_kfid)) = kf_pull {
                    // Acknowledge at once; pull in the background.
                    tokio::spawn(async move {
                        match kf.pull(&open_kfid, Some(&token)).await {
                            Ok(report) => {
                                tracing::info!(%open_kfid, new = report.new_messages, answered = report.answered, handed_over = report.handed_over, "kf pull")
                            }
                            Err(e) => {
                                tracing::warn!(%open_kfid, error = %e, "kf pull failed; the poller will retry")
                            }
                        }
                    });
                }
                self.metrics
                    .recorded
                    .get_or_create(&MessageLabel {
                        channel: channel.as_str().into(),
                        msg_type: msg_type_label.into(),
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

    fn decide(&self, channel: Channel, msg: &InboundMessage) -> Decision {
        match (&msg.body, channel) {
            // Official Account text: the canned answer when the classifier is confident and
            // the intent may be answered by the bot; otherwise an acknowledgement, and the
            // message waits for a person.
            (MsgBody::Text { content }, Channel::Mp) => {
                let classifier = self.classifier.current();
                let verdict = classifier.verdict(content);
                let (status, reply_text) = match verdict.reply {
                    Some(r) if verdict.auto_answer() => (
                        InboundStatus::Answered,
                        classifier.library().render(r, None, None),
                    ),
                    _ => (InboundStatus::Unresolved, self.ack_text.clone()),
                };
                Decision {
                    status,
                    reply_text: Some(reply_text),
                    intent: Some(verdict.intent.to_string()),
                    confidence: Some(verdict.confidence as f64),
                    reply_id: verdict.reply.map(|r| r.id.clone()),
                }
            }
            _ => Decision {
                status: InboundStatus::Received,
                reply_text: None,
                intent: None,
                confidence: None,
                reply_id: None,
            },
        }
    }
}

/// The message types WeChat documents, as a metric label; anything else is `other`, so a
/// sender cannot make the label set grow without bound.
fn metric_msg_type(msg_type: &str) -> &'static str {
    const KNOWN: [&str; 10] = [
        "text",
        "image",
        "voice",
        "video",
        "shortvideo",
        "location",
        "link",
        "event",
        "file",
        "miniprogrampage",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == msg_type)
        .unwrap_or("other")
}
