//! `[tickets]` settings as the ticket service uses them: where agents answer, the windows,
//! the survey, what counts as rejecting the bot, agents, tiers, SLA and priority.

use super::routing;
use super::{PriorityTable, SlaSettings};

/// Where agents write their replies (`[tickets] agents_reply_in`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// In kefu's console: the session stays with the API (state 1), replies go through
    /// `kf/send_msg`.
    #[default]
    Console,
    /// In the WeCom app: assignment moves the session to the agent (state 3).
    Wecom,
}

impl ReplyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyMode::Console => "console",
            ReplyMode::Wecom => "wecom",
        }
    }
}

/// `[tickets]` settings, with the SLA calendar and policies and the priority table.
#[derive(Debug, Clone)]
pub struct TicketSettings {
    pub agents_reply_in: ReplyMode,
    /// A shopper writing within this long of a resolution reopens the ticket.
    pub reopen_within_ms: i64,
    /// An assigned ticket without an agent reply for this long goes back to the queue.
    pub assignment_timeout_ms: i64,
    /// The same intent twice within this long opens a ticket.
    pub repeat_within_ms: i64,
    /// Ask for a satisfaction rating when a ticket is resolved.
    pub csat: bool,
    /// What a shopper says when the bot's answer did not help.
    pub rejection_phrases: Vec<String>,
    pub sla: SlaSettings,
    pub priority: PriorityTable,
    /// Agents known at start (`[[tickets.agents]]`).
    pub agents: Vec<routing::Agent>,
    /// `[tiers]`: how tags and purchase history make a customer's tier.
    pub tiers: crate::crm::TierRules,
}

impl Default for TicketSettings {
    fn default() -> Self {
        TicketSettings {
            agents_reply_in: ReplyMode::Console,
            reopen_within_ms: 7 * 24 * 3600 * 1000,
            assignment_timeout_ms: 10 * 60 * 1000,
            repeat_within_ms: 10 * 60 * 1000,
            csat: true,
            rejection_phrases: DEFAULT_REJECTIONS.iter().map(|s| s.to_string()).collect(),
            sla: SlaSettings::default(),
            priority: PriorityTable::default(),
            agents: Vec::new(),
            tiers: crate::crm::TierRules::default(),
        }
    }
}

pub const DEFAULT_REJECTIONS: &[&str] = &[
    "没用",
    "没有用",
    "不是这个",
    "不是我要的",
    "答非所问",
    "不对",
    "看不懂",
    "机器人",
    "转人工",
    "人工",
];
