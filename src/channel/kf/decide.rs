//! A shopper's message: answer it, or hand the chat to a person with a ticket.
//!
//! A click on the satisfaction survey is recorded against its ticket. A message to a
//! customer with an open ticket goes to that ticket: the person working it answers, the bot
//! stays quiet. Otherwise the message is read (a menu click names its reply, text goes to
//! the classifier, anything else is for a person) and a ticket opens when a person is
//! needed: the classifier is unsure, the intent always goes to a person, the same question
//! comes twice within ten minutes, the shopper rejects the bot's answer, or the message is
//! too old to answer. A fresh message the classifier is sure of is answered.
//!
//! Handing over acknowledges the shopper (unless the message is old history). Then, by
//! `[tickets] agents_reply_in`: kefu keeps the session with the API (state 1) and its own
//! queue hands the ticket to an agent; or, in `wecom` mode with no agents configured in
//! kefu, the session goes to WeCom's pending pool (state 2) and WeCom hands it out.

use serde_json::json;
use sqlx::{Any, Transaction};

use super::bodies;
use super::pull::Pulled;
use super::{KfError, KfService, PullReport, HISTORY_CUTOFF_SECS};
use crate::crm::CustomerProfile;
use crate::ids::OpenKfId;
use crate::store::kf::{self as kf_store, Classification};
use crate::store::{AgentStatus, KfMessageStatus, OutboxApi, SessionState};
use crate::taxonomy;
use crate::tickets::{self, Incoming, OpenReason, ReplyMode};

/// What kefu made of a shopper's message.
struct Verdict {
    /// Kept beside the message, whatever is decided.
    classification: Classification,
    /// The bot may answer it on its own (a menu click, or a confident classification of an
    /// intent the bot may answer).
    may_answer: bool,
}

/// What the ticket shows for a message that is not text.
pub(super) fn describe(msgtype: Option<&str>) -> String {
    format!("[{}]", msgtype.unwrap_or("message"))
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
        if let Some((rating, ticket_id)) = menu_id.and_then(bodies::csat_click) {
            self.record_csat(tx, customer, ticket_id, rating).await?;
            kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Recorded, None).await?;
            return Ok(());
        }
        let state = kf_store::session_state(tx, open_kfid, customer).await?;
        let chat = Some((open_kfid, customer));
        let now = self.clock.now_ms();
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
                let v = classifier.verdict(text);
                Some(Verdict {
                    classification: Classification {
                        intent: v.intent.to_string(),
                        confidence: v.confidence as f64,
                        reply_id: v.reply.map(|r| r.id.clone()),
                    },
                    may_answer: v.auto_answer(),
                })
            }
            (None, None) => None, // image, voice, file…: a person looks at it
        };
        let classification = verdict.as_ref().map(|v| &v.classification);
        let shown = content
            .map(str::to_owned)
            .unwrap_or_else(|| describe(p.message.msgtype.as_deref()));
        let incoming = Incoming {
            channel: "kf",
            account: open_kfid.as_str(),
            external_userid: customer.as_str(),
            customer_name: profile.nickname.as_deref(),
            msgid: p.msgid.as_str(),
            content: &shown,
            intent: classification.map_or(taxonomy::UNKNOWN, |c| c.intent.as_str()),
            confidence: classification.map(|c| c.confidence),
            // kefu's clock, like the agents' replies, so a ticket's messages keep their order.
            at_ms: now,
            standing: &profile.standing,
        };

        // A customer with an open ticket: the message joins it, the person answers.
        if self.tickets.append(tx, &incoming).await?.is_some() {
            let status = if state == Some(SessionState::Agent) {
                KfMessageStatus::Agent
            } else {
                KfMessageStatus::Unresolved
            };
            kf_store::set_message_status(tx, p.msgid, status, classification).await?;
            report.appended += 1;
            return Ok(());
        }
        if state == Some(SessionState::Agent) {
            // A person holds this session (taken in WeCom, with no ticket in kefu).
            kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Agent, classification)
                .await?;
            return Ok(());
        }

        let reason = self
            .needs_person(tx, open_kfid, p, verdict.as_ref(), content, fresh)
            .await?;
        let answer = verdict
            .as_ref()
            .filter(|_| reason.is_none())
            .and_then(|v| v.classification.reply_id.as_deref())
            .and_then(|id| library.get(id));
        // WeCom takes `send_msg` only while the session is new or with the bot (states 0 and
        // 1; an ended session, 4, starts again as new when the shopper writes). In the
        // pending pool (2) nothing is sent: a ticket waits for the person.
        let may_send = state != Some(SessionState::Pool);
        if let (Some(reply), true) = (answer, may_send) {
            let text = library.render(reply, profile.tier_name(), profile.nickname.as_deref());
            let body = bodies::reply(library, reply, &text, customer, open_kfid);
            self.enqueue(tx, OutboxApi::SendMsg, body, Some(p.msgid), chat)
                .await?;
            report.answered += 1;
            kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Answered, classification)
                .await?;
            return Ok(());
        }

        // Hand over: a ticket, an acknowledgement (unless this is old history), and the
        // session kept where the agent can answer.
        let reason = reason.unwrap_or(OpenReason::Unclear);
        let ticket = self.tickets.open(tx, &incoming, reason).await?;
        report.tickets_opened += 1;
        if !may_send {
            kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Unresolved, classification)
                .await?;
            return Ok(());
        }
        if fresh {
            let offline =
                reason == OpenReason::OutOfHours || self.nobody_on_duty(tx, open_kfid).await?;
            let text = if offline {
                &self.acks.offline_ack_text
            } else {
                &self.acks.ack_text
            };
            let ack = bodies::text(text, customer, open_kfid);
            self.enqueue(tx, OutboxApi::SendMsg, ack, Some(p.msgid), chat)
                .await?;
        }
        let to_pool = self.tickets.settings().agents_reply_in == ReplyMode::Wecom
            && tickets::store::agents(&mut **tx).await?.is_empty();
        let target = if to_pool {
            Some(SessionState::Pool)
        } else if matches!(
            state,
            None | Some(SessionState::New) | Some(SessionState::Ended)
        ) {
            // kefu keeps the session with the API, where its agents' replies can be sent.
            Some(SessionState::Bot)
        } else {
            None
        };
        if let Some(target) = target {
            // Written after the acknowledgement, so sent after it: in the pool WeCom would
            // refuse it.
            let trans = json!({"open_kfid": open_kfid, "external_userid": customer,
                               "service_state": target.as_i64(), "servicer_userid": ""});
            self.enqueue(tx, OutboxApi::ServiceStateTrans, trans, Some(p.msgid), chat)
                .await?;
            kf_store::set_session(tx, open_kfid, customer, target, None, now).await?;
        }
        tracing::debug!(ticket = %ticket.id, reason = reason.as_str(), "ticket opened");
        report.handed_over += 1;
        kf_store::set_message_status(tx, p.msgid, KfMessageStatus::Unresolved, classification)
            .await?;
        Ok(())
    }

    /// Why this message needs a person, or `None` when the bot may answer it.
    async fn needs_person(
        &self,
        tx: &mut Transaction<'static, Any>,
        open_kfid: &OpenKfId,
        p: &Pulled<'_>,
        verdict: Option<&Verdict>,
        content: Option<&str>,
        fresh: bool,
    ) -> Result<Option<OpenReason>, KfError> {
        let settings = self.tickets.settings();
        let now = self.clock.now_ms();
        let recent = now - settings.repeat_within_ms;
        let customer = &p.external_userid;
        let reason = match verdict {
            None => Some(OpenReason::NotText),
            Some(v) => {
                let intent = v.classification.intent.as_str();
                if content.is_some_and(|t| self.tickets.is_rejection(t))
                    && kf_store::answered_since(tx, open_kfid, customer, None, recent).await?
                {
                    Some(OpenReason::Rejected)
                } else if taxonomy::get(intent).is_some_and(|i| i.handoff) {
                    Some(OpenReason::Handoff)
                } else if !v.may_answer {
                    Some(OpenReason::Unclear)
                } else if kf_store::answered_since(tx, open_kfid, customer, Some(intent), recent)
                    .await?
                {
                    Some(OpenReason::Repeated)
                } else if !fresh {
                    Some(OpenReason::Missed)
                } else {
                    None
                }
            }
        };
        Ok(match reason {
            Some(_) if fresh && !settings.sla.calendar.is_open(now) => Some(OpenReason::OutOfHours),
            r => r,
        })
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
