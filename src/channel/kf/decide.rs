//! A shopper's message: answer it, or hand the chat to a person.
//!
//! While a person holds the session the bot stays quiet. Otherwise the message is read: a
//! click on a menu we sent names its reply, text goes to the classifier, anything else
//! (image, voice, file…) is for a person. A fresh message the classifier is sure of, in a
//! session WeCom lets the bot write to, is answered; the rest is acknowledged (unless it is
//! old history) and moved to the pending pool, where an agent takes it.

use serde_json::json;
use sqlx::{Any, Transaction};

use super::bodies;
use super::pull::Pulled;
use super::{KfError, KfService, PullReport, HISTORY_CUTOFF_SECS};
use crate::crm::CustomerProfile;
use crate::ids::OpenKfId;
use crate::store::kf::{self as kf_store, Classification};
use crate::store::{AgentStatus, KfMessageStatus, OutboxApi, SessionState};

/// What kefu made of a shopper's message.
struct Verdict {
    /// Kept beside the message, whatever is decided.
    classification: Classification,
    /// The bot may answer it on its own (a menu click, or a confident classification of an
    /// intent the bot may answer).
    may_answer: bool,
}

impl KfService {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn answer_or_hand_over(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        p: &Pulled<'_>,
        content: Option<&str>,
        menu_id: Option<&str>,
        profile: &CustomerProfile,
        report: &mut PullReport,
    ) -> Result<(), KfError> {
        let customer = &p.external_userid;
        let state = kf_store::session_state(tx, open_kfid, customer).await?;
        if state == Some(SessionState::Agent) {
            // A person holds this session: the bot stays quiet.
            kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Agent, None).await?;
            return Ok(());
        }
        let chat = Some((open_kfid, customer));
        let fresh = self.clock.now_secs() - p.send_time <= HISTORY_CUTOFF_SECS;
        let classifier = self.classifier.current();
        let library = classifier.library();

        // A click on a menu we sent names the reply directly.
        let verdict = match (menu_id.and_then(|id| library.get(id)), content) {
            (Some(r), _) => Some(Verdict {
                classification: Classification {
                    intent: r.intent.clone(),
                    confidence: 1.0,
                    reply_id: Some(r.id.clone()),
                },
                may_answer: true,
            }),
            (None, Some(text)) => {
                let c = classifier.classify(text);
                let may_answer = c.auto_answer();
                Some(Verdict {
                    classification: Classification {
                        intent: c.intent,
                        confidence: c.confidence as f64,
                        reply_id: c.reply_id,
                    },
                    may_answer,
                })
            }
            (None, None) => None, // image, voice, file…: a person looks at it
        };
        let classification = verdict.as_ref().map(|v| &v.classification);
        // WeCom takes `send_msg` only while the session is new or with the bot (states 0 and
        // 1; an ended session, 4, starts again as new when the shopper writes). In the pending
        // pool (2) the shopper already waits for a person: nothing is sent, the message is
        // left for that person.
        if state == Some(SessionState::Pool) {
            kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Unresolved, classification)
                .await?;
            return Ok(());
        }
        let answer = verdict
            .as_ref()
            .filter(|v| v.may_answer && fresh)
            .and_then(|v| v.classification.reply_id.as_deref())
            .and_then(|id| library.get(id));
        if let Some(reply) = answer {
            let text = library.render(reply, profile.tier_name(), profile.nickname.as_deref());
            let body = bodies::reply(library, reply, &text, customer, open_kfid);
            self.enqueue(tx, OutboxApi::SendMsg, body, Some(p.msgid), chat)
                .await?;
            report.answered += 1;
            kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Answered, classification)
                .await?;
            return Ok(());
        }
        // Hand over: acknowledge (unless this is old history), queue for a person.
        if fresh {
            let text = if self.nobody_on_duty(tx, open_kfid).await? {
                &self.acks.offline_ack_text
            } else {
                &self.acks.ack_text
            };
            let ack = bodies::text(text, customer, open_kfid);
            self.enqueue(tx, OutboxApi::SendMsg, ack, Some(p.msgid), chat)
                .await?;
        }
        // Written after the acknowledgement, so sent after it: in the pool WeCom would refuse it.
        let trans = json!({"open_kfid": open_kfid, "external_userid": customer,
                           "service_state": SessionState::Pool.as_i64(), "servicer_userid": ""});
        self.enqueue(tx, OutboxApi::ServiceStateTrans, trans, Some(p.msgid), chat)
            .await?;
        kf_store::set_session(
            tx,
            open_kfid,
            customer,
            SessionState::Pool,
            None,
            self.clock.now_ms(),
        )
        .await?;
        report.handed_over += 1;
        kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Unresolved, classification)
            .await?;
        Ok(())
    }

    /// True when agents of `open_kfid` are known and every one of them is off duty.
    async fn nobody_on_duty(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
    ) -> Result<bool, KfError> {
        let statuses = kf_store::agent_statuses(tx, open_kfid).await?;
        Ok(!statuses.is_empty() && statuses.iter().all(|s| *s != Some(AgentStatus::OnDuty)))
    }
}
