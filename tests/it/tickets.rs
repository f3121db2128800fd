//! Tickets on SQLite and PostgreSQL, with an injected clock: the SLA clocks in business
//! time (a lunch break, a night, a holiday), the pause while waiting on the shopper, marks
//! recorded once by two replicas, routing by two replicas, the idle-owner timeout.

use std::sync::Arc;

use kefu::clock::{Clock, ManualClock};
use kefu::crm::{CustomerTier, Standing};
use kefu::metrics::Metrics;
use kefu::store::Store;
use kefu::tickets::routing::Agent;
use kefu::tickets::store as ticket_store;
use kefu::tickets::{Action, Incoming, OpenReason, TicketService, TicketSettings, TicketStatus};

use crate::common::*;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// Ticket settings from a `kefu.toml` text (its `[sla]` and `[priority]` sections).
fn settings(toml: &str) -> TicketSettings {
    let config =
        kefu::config::Config::from_sources(toml, std::path::Path::new("t.toml"), |_| None).unwrap();
    config.ticket_settings()
}

/// The shop's calendar: 09:00-12:00 and 13:30-21:00 in Shanghai, closed on 2026-12-03.
const SHOP: &str = r#"
[sla]
hours = ["09:00-12:00", "13:30-21:00"]
holidays = ["2026-12-03"]
"#;

struct Replica {
    store: Store,
    tickets: TicketService,
}

async fn replicas(
    db: Db,
    n: usize,
    toml: &str,
    clock: Arc<ManualClock>,
) -> (Vec<Replica>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(db, dir.path()).await;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Replica {
            store: Store::connect(&url).await.unwrap(),
            tickets: TicketService::new(clock.clone(), settings(toml), Arc::new(Metrics::new())),
        });
    }
    (out, dir)
}

fn standing(tier: CustomerTier) -> Standing {
    Standing {
        tier,
        reasons: vec![format!("tier {}", tier.as_str())],
        raise_priority: false,
    }
}

async fn open(
    r: &Replica,
    customer: &str,
    intent: &str,
    tier: CustomerTier,
) -> kefu::tickets::Ticket {
    let standing = standing(tier);
    let at = r.tickets.now_ms();
    let mut tx = r.store.pool().begin().await.unwrap();
    let t = r
        .tickets
        .open(
            &mut tx,
            &Incoming {
                channel: "kf",
                account: "wk1",
                external_userid: customer,
                customer_name: None,
                msgid: &format!("m-{customer}-{at}"),
                content: "东西坏了",
                intent,
                confidence: Some(0.4),
                at_ms: at,
                standing: &standing,
            },
            OpenReason::Handoff,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    t
}

async fn reload(r: &Replica, id: &str) -> kefu::tickets::Ticket {
    ticket_store::get(r.store.pool(), id)
        .await
        .unwrap()
        .unwrap()
}

async fn act(
    r: &Replica,
    id: &str,
    action: Action,
    agent: Option<&str>,
) -> Result<kefu::tickets::Ticket, kefu::tickets::TicketError> {
    let mut tx = r.store.pool().begin().await.unwrap();
    let t = reload(r, id).await;
    let out = r.tickets.act(&mut tx, &t, action, "sup", agent).await;
    if out.is_ok() {
        tx.commit().await.unwrap();
    }
    out
}

async fn add_agent(r: &Replica, id: &str, groups: &[&str], capacity: i64) {
    let mut tx = r.store.pool().begin().await.unwrap();
    let a = Agent {
        servicer_userid: id.into(),
        name: id.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        capacity,
        senior: false,
        on_duty: true,
        active: true,
        last_assigned_at: None,
    };
    ticket_store::upsert_agent(&mut tx, &a.to_row(0), true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// One replica's SLA watch, in its own transaction.
async fn check(r: &Replica) -> Vec<kefu::tickets::watch::SlaMark> {
    let mut tx = r.store.pool().begin().await.unwrap();
    ticket_store::take_routing_turn(&mut tx).await.unwrap();
    let marks = r.tickets.check_sla(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    marks
}

/// One routing pass on one replica.
async fn route_once(r: &Replica) -> Vec<kefu::tickets::routing::Assignment> {
    let mut tx = r.store.pool().begin().await.unwrap();
    let done = r.tickets.route(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    done
}

/// Routing passes on one replica until it has run 20; returns how many it assigned.
async fn route(r: &Replica) -> usize {
    let mut total = 0;
    for _ in 0..20 {
        let mut tx = r.store.pool().begin().await.unwrap();
        let done = r.tickets.route(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        total += done.len();
        tokio::task::yield_now().await;
    }
    total
}

on_both_stores!(
    sla_clocks_count_business_time_and_stop_while_waiting_on_the_shopper,
    warnings_and_breaches_are_recorded_once_by_two_replicas,
    two_replicas_route_200_tickets_to_5_agents,
    an_idle_owner_loses_the_ticket_and_a_resolved_one_reopens_within_the_window,
    official_account_messages_nobody_could_answer_become_tickets,
    a_backlog_of_unanswered_messages_is_taken_in_batch_by_batch_in_one_pass,
);

/// An Official Account follower writes `text` (safe mode); the callback answers at once.
async fn follower_writes(app: &TestApp, openid: &str, msg_id: u64, text: &str) {
    let crypt = mp_crypt();
    let ts = now_secs();
    let xml = text_xml("gh_shop", openid, msg_id, text, ts);
    let encrypt = crypt.encrypt(&xml);
    let query = mp_query(&crypt, &encrypt, ts, &msg_id.to_string());
    let body = format!("<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    let (status, reply) = app.post("/wechat/callback", &query, body).await;
    assert_eq!(status, 200, "{reply}");
}

async fn sla_clocks_count_business_time_and_stop_while_waiting_on_the_shopper(db: Db) {
    // Wednesday 2 December 2026, 11:50 in Shanghai: ten minutes before lunch.
    let clock = ManualClock::at_secs(ms("2026-12-02T03:50:00Z") / 1000);
    let (rs, _dir) = replicas(db, 1, SHOP, clock.clone()).await;
    let r = &rs[0];
    // A new customer's complaint: high priority, 15 business minutes to a first response,
    // 480 to resolution.
    let t = open(r, "wm-lunch", "complaint", CustomerTier::New).await;
    assert_eq!(t.priority().as_str(), "high");
    assert_eq!(t.status(), TicketStatus::Queued);
    // 10 minutes before lunch, 5 after it (13:30 + 5).
    assert_eq!(t.first_response_due, Some(ms("2026-12-02T05:35:00Z")));
    // 480 minutes: 10 before lunch, 450 from 13:30 to 21:00, then Thursday is a holiday, so
    // the last 20 on Friday from 09:00.
    assert_eq!(t.resolution_due, ms("2026-12-04T01:20:00Z"));

    // Assigned, then waiting on the shopper at 14:00 (40 business minutes used): the clock
    // stops over the night and the holiday.
    clock.set_secs(ms("2026-12-02T06:00:00Z") / 1000);
    act(r, &t.id, Action::Assign, Some("a1")).await.unwrap();
    act(r, &t.id, Action::WaitForCustomer, None).await.unwrap();
    // The shopper answers on Friday at 10:00: the 440 business minutes left run from then
    // (10:00-12:00 is 120, 13:30 + 320 = 18:50).
    clock.set_secs(ms("2026-12-04T02:00:00Z") / 1000);
    let standing = standing(CustomerTier::New);
    let mut tx = r.store.pool().begin().await.unwrap();
    let t = r
        .tickets
        .append(
            &mut tx,
            &Incoming {
                channel: "kf",
                account: "wk1",
                external_userid: "wm-lunch",
                customer_name: None,
                msgid: "m-back",
                content: "照片发你了",
                intent: "unknown",
                confidence: None,
                at_ms: clock.now_ms(),
                standing: &standing,
            },
        )
        .await
        .unwrap()
        .expect("appended to the open ticket");
    tx.commit().await.unwrap();
    assert_eq!(t.status(), TicketStatus::Assigned, "back to its agent");
    assert_eq!(t.resolution_due, ms("2026-12-04T10:50:00Z"));
    assert_eq!(t.paused_at, None);
}

async fn warnings_and_breaches_are_recorded_once_by_two_replicas(db: Db) {
    let clock = ManualClock::at_secs(ms("2026-12-02T02:00:00Z") / 1000); // 10:00 Wednesday
    let (rs, _dir) = replicas(db, 2, SHOP, clock.clone()).await;
    let t = open(&rs[0], "wm-slow", "tracking", CustomerTier::Normal).await;
    // Normal: 30 minutes to a first response, due 10:30.
    assert_eq!(t.first_response_due, Some(ms("2026-12-02T02:30:00Z")));
    // 10:20: two thirds of the way, nothing yet.
    clock.set_secs(ms("2026-12-02T02:20:00Z") / 1000);
    assert!(check(&rs[0]).await.is_empty());
    // 10:25 (83%): a warning, recorded by one replica only.
    clock.set_secs(ms("2026-12-02T02:25:00Z") / 1000);
    let (a, b) = tokio::join!(check(&rs[0]), check(&rs[1]));
    let warnings: Vec<_> = a.iter().chain(b.iter()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(!warnings[0].breach);
    // 10:31: breached; again once, and the warning is not repeated.
    clock.set_secs(ms("2026-12-02T02:31:00Z") / 1000);
    let (a, b) = tokio::join!(check(&rs[0]), check(&rs[1]));
    let marks: Vec<_> = a.iter().chain(b.iter()).collect();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert!(marks[0].breach);
    assert_eq!(marks[0].target.as_str(), "first_response");
    let (a, b) = tokio::join!(check(&rs[0]), check(&rs[1]));
    assert!(a.is_empty() && b.is_empty());
    let history = ticket_store::events(rs[0].store.pool(), &t.id)
        .await
        .unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "sla_warning").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "sla_breach").count(), 1);
    // A second ticket, paused for an hour after 10 minutes: the pause does not count
    // against its target, so the warning waits for 80% of the time actually spent.
    clock.set_secs(ms("2026-12-02T02:00:00Z") / 1000);
    let p = open(&rs[0], "wm-paused", "tracking", CustomerTier::Normal).await;
    add_agent(&rs[0], "a1", &["logistics"], 5).await;
    act(&rs[0], &p.id, Action::Assign, Some("a1"))
        .await
        .unwrap();
    clock.set_secs(ms("2026-12-02T02:10:00Z") / 1000);
    act(&rs[0], &p.id, Action::WaitForCustomer, None)
        .await
        .unwrap();
    clock.set_secs(ms("2026-12-02T03:10:00Z") / 1000);
    let standing = standing(CustomerTier::Normal);
    let mut tx = rs[0].store.pool().begin().await.unwrap();
    rs[0]
        .tickets
        .append(
            &mut tx,
            &Incoming {
                channel: "kf",
                account: "wk1",
                external_userid: "wm-paused",
                customer_name: None,
                msgid: "m-paused-back",
                content: "在吗",
                intent: "unknown",
                confidence: None,
                at_ms: clock.now_ms(),
                standing: &standing,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // 20 minutes were left: due 11:30. At 11:12 (18 left) nothing; at 11:25 (5 left) a
    // warning.
    assert_eq!(
        reload(&rs[0], &p.id).await.first_response_due,
        Some(ms("2026-12-02T03:30:00Z"))
    );
    clock.set_secs(ms("2026-12-02T03:12:00Z") / 1000);
    assert!(check(&rs[0]).await.iter().all(|m| m.ticket_id != p.id));
    clock.set_secs(ms("2026-12-02T03:25:00Z") / 1000);
    let marks = check(&rs[0]).await;
    assert!(
        marks.iter().any(|m| m.ticket_id == p.id && !m.breach),
        "{marks:?}"
    );

    // The breached filter finds the first.
    let filter = ticket_store::Filter {
        breached: Some(true),
        limit: 10,
        ..Default::default()
    };
    let listed = ticket_store::list(rs[0].store.pool(), &filter)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

async fn two_replicas_route_200_tickets_to_5_agents(db: Db) {
    let clock = ManualClock::at_secs(ms("2026-12-02T02:00:00Z") / 1000);
    let (rs, _dir) = replicas(db, 2, SHOP, clock.clone()).await;
    let capacities = [30, 40, 50, 40, 30]; // 190 places for 200 tickets
    for (i, c) in capacities.iter().enumerate() {
        add_agent(&rs[0], &format!("agent{i}"), &["logistics", "service"], *c).await;
    }
    for n in 0..200 {
        let tier = if n % 20 == 0 {
            CustomerTier::Vip
        } else {
            CustomerTier::Normal
        };
        open(&rs[n % 2], &format!("wm{n:03}"), "tracking", tier).await;
    }
    let (a, b) = tokio::join!(route(&rs[0]), route(&rs[1]));
    assert_eq!(a + b, 190, "every place filled, each ticket once");
    let mut conn = rs[0].store.pool().acquire().await.unwrap();
    let loads: std::collections::HashMap<String, i64> = ticket_store::loads(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for (i, c) in capacities.iter().enumerate() {
        assert_eq!(
            loads.get(&format!("agent{i}")),
            Some(c),
            "agent{i} at capacity, not past it"
        );
    }
    let assigned_events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ticket_events WHERE kind = 'assigned'")
            .fetch_one(rs[0].store.pool())
            .await
            .unwrap();
    assert_eq!(assigned_events, 190, "no ticket assigned twice");
    // The 10 left waiting are the last normal tickets: every VIP got a place.
    let filter = ticket_store::Filter {
        status: Some("queued".into()),
        limit: 100,
        ..Default::default()
    };
    let waiting = ticket_store::list(rs[0].store.pool(), &filter)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 10);
    assert!(waiting.iter().all(|t| t.tier == "normal"));
}

async fn an_idle_owner_loses_the_ticket_and_a_resolved_one_reopens_within_the_window(db: Db) {
    let clock = ManualClock::at_secs(ms("2026-12-02T02:00:00Z") / 1000);
    let (rs, _dir) = replicas(db, 1, SHOP, clock.clone()).await;
    let r = &rs[0];
    add_agent(r, "a1", &["logistics"], 5).await;
    let t = open(r, "wm-idle", "tracking", CustomerTier::Normal).await;
    let assigned = route_once(r).await;
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].agent, "a1");
    // Eleven minutes without a word from the agent: back to the queue, in the history.
    clock.set_secs(clock.now_secs() + 11 * 60);
    let mut tx = r.store.pool().begin().await.unwrap();
    let requeued = r.tickets.requeue_idle(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(requeued.len(), 1);
    let t = reload(r, &t.id).await;
    assert_eq!(t.status(), TicketStatus::Queued);
    assert_eq!(t.assignee, None);
    let history = ticket_store::events(r.store.pool(), &t.id).await.unwrap();
    assert!(history
        .iter()
        .any(|e| e.kind == "unassigned" && e.actor == "kefu"));
    // The idle agent is passed over for it: another agent takes it.
    add_agent(r, "a2", &["logistics"], 5).await;
    let assigned = route_once(r).await;
    assert_eq!(assigned.len(), 1);
    assert_eq!(
        assigned[0].agent, "a2",
        "not straight back to the idle agent"
    );
    act(r, &t.id, Action::Unassign, None).await.unwrap();
    let t = reload(r, &t.id).await;

    // Forbidden moves change nothing.
    let err = act(r, &t.id, Action::Reopen, None).await.unwrap_err();
    assert!(err.to_string().contains("queued"), "{err}");
    assert_eq!(reload(r, &t.id).await.version, t.version);

    // Resolved; the shopper writes again two days later: the same ticket reopens.
    act(r, &t.id, Action::Resolve, None).await.unwrap();
    clock.set_secs(clock.now_secs() + 2 * 86_400);
    let again = open(r, "wm-idle", "tracking", CustomerTier::Normal).await;
    assert_eq!(again.id, t.id, "reopened, not a new ticket");
    assert_eq!(again.status(), TicketStatus::Queued);
    // A rating is taken only for a resolved ticket.
    let mut tx = r.store.pool().begin().await.unwrap();
    assert!(!r
        .tickets
        .record_csat(&mut tx, &again, "good")
        .await
        .unwrap());
    tx.commit().await.unwrap();
    // Routed, resolved, and back an hour later: it goes to the agent who served it.
    let assigned = route_once(r).await;
    assert_eq!(assigned.len(), 1);
    let served_by = assigned[0].agent.clone();
    act(r, &t.id, Action::Resolve, None).await.unwrap();
    clock.set_secs(clock.now_secs() + 3600);
    let back = open(r, "wm-idle", "tracking", CustomerTier::Normal).await;
    assert_eq!(back.id, t.id);
    // Make the other agent the less loaded, least recently assigned choice.
    let other = if served_by == "a1" { "a2" } else { "a1" };
    let busy = open(r, "wm-busy", "tracking", CustomerTier::Normal).await;
    act(r, &busy.id, Action::Assign, Some(&served_by))
        .await
        .unwrap();
    let assigned = route_once(r).await;
    assert_eq!(assigned.len(), 1);
    assert_eq!(
        assigned[0].agent, served_by,
        "back to the agent who served them an hour ago, not {other}, though busier"
    );
    // Resolved once more; eight days later a message opens a new ticket.
    act(r, &t.id, Action::Resolve, None).await.unwrap();
    clock.set_secs(clock.now_secs() + 8 * 86_400);
    let newer = open(r, "wm-idle", "tracking", CustomerTier::Normal).await;
    assert_ne!(newer.id, t.id);
    // And the old one is closed by the watch: past the reopen window.
    let mut tx = r.store.pool().begin().await.unwrap();
    assert_eq!(r.tickets.close_expired(&mut tx).await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(reload(r, &t.id).await.status(), TicketStatus::Closed);
}

async fn official_account_messages_nobody_could_answer_become_tickets(db: Db) {
    let app = TestApp::start(db).await;
    let (store, tickets) = (&app.state.store, &app.state.tickets);
    // A confident question is answered and opens nothing; two the bot cannot answer, from
    // one follower, make one ticket with both messages.
    follower_writes(&app, "oFollower1", 7100000000000000001, "付款后多久发货呀").await;
    // A second apart each, so they are taken in in the order they were written.
    app.clock.set_secs(app.clock.now_secs() + 1);
    follower_writes(
        &app,
        "oFollower1",
        7100000000000000002,
        "帮我订一张明天去成都的火车票",
    )
    .await;
    app.clock.set_secs(app.clock.now_secs() + 1);
    follower_writes(
        &app,
        "oFollower1",
        7100000000000000003,
        "我要投诉你们的快递",
    )
    .await;
    kefu::tickets::worker::pass(store, tickets).await.unwrap();
    // A second pass (or a second replica) takes nothing in twice.
    kefu::tickets::worker::pass(store, tickets).await.unwrap();
    let filter = ticket_store::Filter {
        limit: 10,
        ..Default::default()
    };
    let all = ticket_store::list(store.pool(), &filter).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let t = &all[0];
    assert_eq!(
        (t.channel.as_str(), t.external_userid.as_str()),
        ("mp", "oFollower1")
    );
    assert_eq!(t.intent, "unknown");
    assert_eq!(
        t.priority().as_str(),
        "high",
        "raised by the complaint that followed"
    );
    let messages = ticket_store::messages(store.pool(), &t.id).await.unwrap();
    let texts: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        texts,
        ["帮我订一张明天去成都的火车票", "我要投诉你们的快递"]
    );
}

async fn a_backlog_of_unanswered_messages_is_taken_in_batch_by_batch_in_one_pass(db: Db) {
    use kefu::tickets::intake::TAKE_IN_BATCH;
    let app = TestApp::start(db).await;
    let (store, tickets) = (&app.state.store, &app.state.tickets);
    // First, a batch's worth without a sender: nobody to open a ticket for, and they must
    // not hold up the messages behind them.
    for i in 0..TAKE_IN_BATCH {
        follower_writes(&app, "", 7100000000000000000 + i as u64, "帮我订一张火车票").await;
    }
    app.clock.set_secs(app.clock.now_secs() + 1);
    // More than two batches' worth, from as many followers: as many tickets, in one pass.
    let n = 2 * TAKE_IN_BATCH + 5;
    for i in 0..n {
        follower_writes(
            &app,
            &format!("oBacklog{i}"),
            7200000000000000000 + i as u64,
            "帮我订一张明天去成都的火车票",
        )
        .await;
    }
    kefu::tickets::worker::pass(store, tickets).await.unwrap();
    let filter = ticket_store::Filter {
        limit: 500,
        ..Default::default()
    };
    let all = ticket_store::list(store.pool(), &filter).await.unwrap();
    assert_eq!(
        all.len(),
        n,
        "every waiting message has its ticket after one pass"
    );
    // Each message taken in is marked in its ticket's transaction, so the watch's next read
    // finds none of them (only the sender-less ones stay unmarked).
    let unresolved: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT from_user, ticketed_at FROM inbound_messages WHERE status = 'unresolved'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(unresolved.len(), n + TAKE_IN_BATCH);
    for (from, at) in &unresolved {
        assert_eq!(at.is_some(), !from.is_empty(), "{from}: {at:?}");
    }
    // Nothing is taken in twice.
    kefu::tickets::worker::pass(store, tickets).await.unwrap();
    let again = ticket_store::list(store.pool(), &filter).await.unwrap();
    assert_eq!(again.len(), n);
}

/// The watch reads the waiting messages through their own index, not by walking every
/// message of the channel: that walk grew with every message ever stored, inside the
/// transaction intake's writer waits on (tens of milliseconds per batch under load).
#[tokio::test]
async fn the_watch_reads_waiting_messages_through_their_index() {
    let app = TestApp::start(Db::Sqlite).await;
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
        "EXPLAIN QUERY PLAN {}",
        kefu::store::unresolved::UNTICKETED
    ))
    .bind("mp")
    .bind(0i64)
    .bind(20i64)
    .fetch_all(app.state.store.pool())
    .await
    .unwrap();
    let steps: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
    assert!(
        steps
            .iter()
            .any(|s| s.contains("USING INDEX inbound_messages_waiting (channel=?")),
        "{steps:?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("TEMP B-TREE")),
        "{steps:?}"
    );
}
