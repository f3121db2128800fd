//! Who gets a queued ticket.
//!
//! A chain of filters, then a choice. Filters: the agent works the ticket's skill group (a
//! ticket of the general group fits everyone), is on duty, and holds fewer open tickets
//! than their capacity. Choice: the agent who served this customer in the last 24 hours if
//! still eligible; for urgent and VIP tickets a senior agent where one is eligible; else
//! the least loaded, a senior agent spared on a tie, then whoever was assigned least
//! recently.
//!
//! A pass starts by taking the routing turn (one row every pass updates first), so passes
//! run one at a time, across replicas too, and a ticket is claimed by a version-checked
//! write: no ticket is assigned twice and no agent goes past capacity. Tickets nobody can
//! take stay queued, in priority then due-time order, for the next pass: when an agent
//! comes on duty, a ticket is resolved, an agent is added, or the watch's next tick.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::AnyConnection;

use super::model::{Action, Priority, Ticket};
use super::store::{self, AgentRow};
use super::{TicketError, TicketService, GENERAL_GROUP};
use crate::crm::CustomerTier;

/// The same customer goes back to the agent who served them within this long.
pub const RETURNING_CUSTOMER_MS: i64 = 24 * 3600 * 1000;

/// An agent as routing sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub servicer_userid: String,
    pub name: String,
    pub groups: Vec<String>,
    pub capacity: i64,
    pub senior: bool,
    pub on_duty: bool,
    pub active: bool,
    pub last_assigned_at: Option<i64>,
}

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Agent {
        Agent {
            groups: serde_json::from_str(&r.groups).unwrap_or_default(),
            servicer_userid: r.servicer_userid,
            name: r.name,
            capacity: r.capacity,
            senior: r.senior != 0,
            on_duty: r.on_duty != 0,
            active: r.active != 0,
            last_assigned_at: r.last_assigned_at,
        }
    }
}

impl Agent {
    /// An active agent, on duty, with the default capacity of 5.
    pub fn new(id: &str, name: &str, groups: &[&str], senior: bool) -> Agent {
        Agent {
            servicer_userid: id.into(),
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            capacity: 5,
            senior,
            on_duty: true,
            active: true,
            last_assigned_at: None,
        }
    }

    pub fn to_row(&self, now_ms: i64) -> AgentRow {
        AgentRow {
            servicer_userid: self.servicer_userid.clone(),
            name: self.name.clone(),
            groups: serde_json::to_string(&self.groups).unwrap_or_else(|_| "[]".into()),
            capacity: self.capacity,
            senior: i64::from(self.senior),
            on_duty: i64::from(self.on_duty),
            active: i64::from(self.active),
            last_assigned_at: self.last_assigned_at,
            updated_at: now_ms,
        }
    }

    fn works(&self, group: &str) -> bool {
        group == GENERAL_GROUP || self.groups.iter().any(|g| g == group)
    }
}

/// One ticket handed to one agent by a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub ticket: Ticket,
    pub agent: String,
}

/// The agent a ticket goes to among `agents` (with their current `loads`), or `None`.
/// `previous` is the agent who served the customer recently, if any.
pub fn choose<'a>(
    ticket: &Ticket,
    agents: &'a [Agent],
    loads: &HashMap<String, i64>,
    previous: Option<&str>,
    now_ms: i64,
) -> Option<&'a Agent> {
    let load = |a: &Agent| loads.get(&a.servicer_userid).copied().unwrap_or(0);
    // The agent who let this ticket go idle is passed over for a while.
    let passed_over = |a: &Agent| {
        ticket.idle_agent.as_deref() == Some(a.servicer_userid.as_str())
            && ticket.idle_until.is_some_and(|until| now_ms < until)
    };
    let eligible: Vec<&Agent> = agents
        .iter()
        .filter(|a| a.active && a.works(&ticket.grp))
        .filter(|a| !passed_over(a))
        .filter(|a| a.on_duty)
        .filter(|a| load(a) < a.capacity)
        .collect();
    if let Some(prev) = previous {
        if let Some(a) = eligible.iter().find(|a| a.servicer_userid == prev) {
            return Some(a);
        }
    }
    let important =
        ticket.priority() == Priority::Urgent || ticket.tier == CustomerTier::Vip.as_str();
    let pool: Vec<&Agent> = if important && eligible.iter().any(|a| a.senior) {
        eligible.iter().copied().filter(|a| a.senior).collect()
    } else {
        eligible
    };
    pool.into_iter().min_by(|a, b| {
        load(a)
            .cmp(&load(b))
            // On a tie, a senior agent is spared for the urgent and VIP tickets to come.
            .then((a.senior && !important).cmp(&(b.senior && !important)))
            // Never assigned sorts first: None < Some.
            .then(a.last_assigned_at.cmp(&b.last_assigned_at))
            .then(a.servicer_userid.cmp(&b.servicer_userid))
    })
}

impl TicketService {
    /// Hand out queued tickets to eligible agents; returns what was assigned. Run inside a
    /// transaction: it starts by taking the routing turn.
    pub async fn route(&self, conn: &mut AnyConnection) -> Result<Vec<Assignment>, TicketError> {
        store::take_routing_turn(conn).await?;
        let now = self.now_ms();
        // The agents first: with nobody on duty (nights, a shop's day off) routing does not
        // read the queue, which can hold many tickets then, inside its write transaction.
        let mut agents: Vec<Agent> = store::agents(&mut *conn)
            .await?
            .into_iter()
            .map(Agent::from)
            .collect();
        if !agents.iter().any(|a| a.on_duty && a.active) {
            return Ok(Vec::new());
        }
        let queued = store::queued(conn, 1000).await?;
        if queued.is_empty() {
            return Ok(Vec::new());
        }
        let mut loads: HashMap<String, i64> = store::loads(conn).await?.into_iter().collect();
        let mut out = Vec::new();
        for ticket in queued {
            let previous = store::recent_agent(
                conn,
                &ticket.channel,
                &ticket.account,
                &ticket.external_userid,
                now - RETURNING_CUSTOMER_MS,
            )
            .await?;
            let Some(agent) = choose(&ticket, &agents, &loads, previous.as_deref(), now) else {
                continue;
            };
            let agent_id = agent.servicer_userid.clone();
            match self
                .act(conn, &ticket, Action::Assign, "kefu", Some(&agent_id))
                .await
            {
                Ok(t) => {
                    *loads.entry(agent_id.clone()).or_default() += 1;
                    if let Some(a) = agents.iter_mut().find(|a| a.servicer_userid == agent_id) {
                        a.last_assigned_at = Some(now);
                    }
                    out.push(Assignment {
                        ticket: t,
                        agent: agent_id,
                    });
                }
                // Changed since it was read (a person assigned or resolved it): skip it.
                Err(TicketError::Conflict(_) | TicketError::Stale) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, groups: &[&str], senior: bool, last: Option<i64>) -> Agent {
        Agent {
            servicer_userid: id.into(),
            name: id.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            capacity: 2,
            senior,
            on_duty: true,
            active: true,
            last_assigned_at: last,
        }
    }

    fn ticket(grp: &str, priority: Priority, tier: CustomerTier) -> Ticket {
        Ticket {
            id: "t".into(),
            channel: "kf".into(),
            account: "wk".into(),
            external_userid: "wm".into(),
            status: "queued".into(),
            intent: "complaint".into(),
            grp: grp.into(),
            priority: priority.rank(),
            tier: tier.as_str().into(),
            ..Ticket::default()
        }
    }

    #[test]
    fn the_filters_then_the_choice() {
        let mut agents = vec![
            agent("a", &["service"], false, Some(5)),
            agent("b", &["service"], false, Some(1)),
            agent("s", &["service"], true, Some(9)),
            agent("x", &["presale"], false, None),
        ];
        let normal = ticket("service", Priority::Normal, CustomerTier::Normal);
        let loads = HashMap::from([("s".to_string(), 1)]);
        // Least loaded (a, b at 0), tie to the least recently assigned: b.
        assert_eq!(
            choose(&normal, &agents, &loads, None, 0)
                .unwrap()
                .servicer_userid,
            "b"
        );
        // A returning customer goes back to their agent while eligible.
        assert_eq!(
            choose(&normal, &agents, &loads, Some("a"), 0)
                .unwrap()
                .servicer_userid,
            "a"
        );
        // Urgent and VIP tickets go to the senior agent, though more loaded.
        let vip = ticket("service", Priority::High, CustomerTier::Vip);
        assert_eq!(
            choose(&vip, &agents, &loads, None, 0)
                .unwrap()
                .servicer_userid,
            "s"
        );
        // At capacity, off duty, or the wrong group: not eligible.
        let full = HashMap::from([("s".to_string(), 2), ("a".to_string(), 2)]);
        assert_eq!(
            choose(&vip, &agents, &full, None, 0)
                .unwrap()
                .servicer_userid,
            "b"
        );
        agents[1].on_duty = false;
        assert!(choose(&vip, &agents, &full, None, 0).is_none());
        // On a tie in load, a senior agent is spared for what is to come.
        let even = HashMap::new();
        let spare = vec![
            agent("s2", &["service"], true, None),
            agent("n2", &["service"], false, Some(9)),
        ];
        assert_eq!(
            choose(&normal, &spare, &even, None, 0)
                .unwrap()
                .servicer_userid,
            "n2"
        );
        assert_eq!(
            choose(&vip, &spare, &even, None, 0)
                .unwrap()
                .servicer_userid,
            "s2"
        );
        // A general ticket fits any group.
        // An agent who let the ticket go idle is passed over until idle_until.
        let mut idle = ticket("service", Priority::Normal, CustomerTier::Normal);
        idle.idle_agent = Some("b".into());
        idle.idle_until = Some(100);
        agents[1].on_duty = true;
        assert_eq!(
            choose(&idle, &agents, &loads, None, 50)
                .unwrap()
                .servicer_userid,
            "a"
        );
        assert_eq!(
            choose(&idle, &agents, &loads, None, 100)
                .unwrap()
                .servicer_userid,
            "b"
        );
        agents[1].on_duty = false;
        let general = ticket(GENERAL_GROUP, Priority::Normal, CustomerTier::New);
        assert_eq!(
            choose(&general, &agents, &full, None, 0)
                .unwrap()
                .servicer_userid,
            "x"
        );
    }
}
