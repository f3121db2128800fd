//! `kefu replies stats`: the library replies agents change most and the answers agents keep
//! writing themselves, from seeded suggestions and ticket messages; through the library
//! function on both stores, and through the real binary (tables, JSON, terminal-safe text).

use std::process::Command;

use kefu::console::reply_stats::{self, AgentAnswer, Options, ReplyRow};
use kefu::store::Store;
use kefu::tickets::store::{self as ticket_store, TicketMessage};

use crate::common::*;
use crate::dashboard::{insert_ticket, sh, suggestion, Seed};

const BIN: &str = env!("CARGO_BIN_EXE_kefu");

async fn message(
    store: &Store,
    ticket: &str,
    author: &str,
    content: &str,
    intent: Option<&str>,
    at: &str,
    reply: Option<&str>,
) {
    let mut conn = store.pool().acquire().await.unwrap();
    ticket_store::insert_message(
        &mut conn,
        &TicketMessage {
            id: format!("tm-{:016x}", rand::random::<u64>()),
            ticket_id: ticket.into(),
            msgid: None,
            author: author.into(),
            agent: (author == "agent").then(|| "li".to_string()),
            content: content.into(),
            intent: intent.map(str::to_string),
            confidence: None,
            at: sh(at),
            reply_id: reply.map(str::to_string),
        },
    )
    .await
    .unwrap();
}

/// Suggestions and agent answers in March 2026, and a few from February.
async fn seed(store: &Store) {
    let pool = store.pool();
    for id in ["r1", "r2", "r3", "r4", "r5", "r6"] {
        insert_ticket(pool, &Seed::new(id, "tracking", "2026-03-02T10:00")).await;
    }
    let mut n = 0;
    let mut show = |reply: &'static str,
                    intent: &'static str,
                    outcome: Option<&'static str>,
                    day: &'static str| {
        n += 1;
        let message = format!("m{n}");
        async move {
            suggestion(pool, "r1", &message, reply, intent, "lily", day, outcome).await;
        }
    };
    let march = "2026-03-03T12:00";
    for (reply, intent, outcomes) in [
        (
            "refund_a",
            "refund_status",
            vec![
                Some("accepted"),
                Some("edited"),
                Some("edited"),
                Some("dismissed"),
            ],
        ),
        (
            "tracking_a",
            "tracking",
            vec![Some("accepted"); 4]
                .into_iter()
                .chain([Some("dismissed")])
                .collect(),
        ),
        // Always dismissed, but shown twice only: not listed.
        (
            "stock_a",
            "stock",
            vec![Some("dismissed"), Some("dismissed")],
        ),
        (
            "refund_b",
            "refund_status",
            vec![Some("edited"), Some("dismissed"), Some("dismissed"), None],
        ),
    ] {
        for o in outcomes {
            show(reply, intent, o, march).await;
        }
    }
    // Dismissed five times in February: gone with --since 2026-03-01.
    for _ in 0..5 {
        show("old_x", "tracking", Some("dismissed"), "2026-02-10T12:00").await;
    }

    // The same answer, written three times in two tickets, with different punctuation.
    message(
        store,
        "r1",
        "customer",
        "快递到哪了",
        Some("tracking"),
        "2026-03-02T10:00",
        None,
    )
    .await;
    message(
        store,
        "r1",
        "agent",
        "亲，已经帮您催促快递了～",
        None,
        "2026-03-02T10:05",
        None,
    )
    .await;
    message(
        store,
        "r2",
        "customer",
        "怎么还没到",
        Some("tracking"),
        "2026-03-02T11:00",
        None,
    )
    .await;
    message(
        store,
        "r2",
        "agent",
        "亲,已经帮您催促快递了",
        None,
        "2026-03-02T11:05",
        None,
    )
    .await;
    message(
        store,
        "r2",
        "customer",
        "退款呢",
        Some("refund_status"),
        "2026-03-02T11:10",
        None,
    )
    .await;
    message(
        store,
        "r2",
        "agent",
        "亲，已经帮您催促快递了。",
        None,
        "2026-03-04T09:00",
        None,
    )
    .await;
    // One with terminal escapes in it, answering two intents once each.
    message(
        store,
        "r3",
        "customer",
        "退款",
        Some("refund_status"),
        "2026-03-02T10:00",
        None,
    )
    .await;
    message(
        store,
        "r3",
        "agent",
        "请稍等\u{1b}[31m片刻\u{7}",
        None,
        "2026-03-02T10:01",
        None,
    )
    .await;
    message(
        store,
        "r4",
        "customer",
        "到哪了",
        Some("tracking"),
        "2026-03-02T10:00",
        None,
    )
    .await;
    message(
        store,
        "r4",
        "agent",
        "请稍等\u{1b}[31m片刻\u{7}",
        None,
        "2026-03-02T10:02",
        None,
    )
    .await;
    // From the library (not written by the agent), once only, or before the period.
    message(
        store,
        "r5",
        "agent",
        "亲，已经帮您催促快递了",
        None,
        "2026-03-02T10:00",
        Some("tracking_a"),
    )
    .await;
    message(
        store,
        "r6",
        "agent",
        "这个只说过一次",
        None,
        "2026-03-02T10:00",
        None,
    )
    .await;
    message(
        store,
        "r6",
        "agent",
        "亲,已经帮您催促快递了",
        None,
        "2026-02-20T10:00",
        None,
    )
    .await;
}

fn options(since: Option<&str>) -> Options {
    Options {
        since_ms: since.map(sh),
        limit: 20,
        min_shown: 3,
        min_tickets: 2,
    }
}

async fn replies_changed_most_and_answers_written_again(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&fresh_db(db, dir.path()).await)
        .await
        .unwrap();
    seed(&store).await;

    let stats = reply_stats::compute(store.pool(), &options(Some("2026-03-01T00:00")))
        .await
        .unwrap();
    // Counts: shown, accepted, edited, dismissed.
    let row = |reply: &str, intent: &str, counts: [u64; 4], share: f64| ReplyRow {
        reply_id: reply.into(),
        intent: intent.into(),
        shown: counts[0],
        accepted: counts[1],
        edited: counts[2],
        dismissed: counts[3],
        edit_or_dismiss_share: Some(share),
    };
    assert_eq!(
        stats.replies,
        [
            row("refund_b", "refund_status", [4, 0, 1, 2], 1.0),
            row("refund_a", "refund_status", [4, 1, 2, 1], 0.75),
            row("tracking_a", "tracking", [5, 4, 0, 1], 0.2),
        ]
    );
    assert_eq!(
        stats.agent_answers,
        [
            AgentAnswer {
                text: "亲,已经帮您催促快递了".into(),
                example: "亲，已经帮您催促快递了。".into(),
                occurrences: 3,
                tickets: 2,
                intent: "tracking".into(),
            },
            AgentAnswer {
                text: "请稍等[31m片刻".into(),
                example: "请稍等[31m片刻".into(),
                occurrences: 2,
                tickets: 2,
                intent: "refund_status".into(),
            },
        ]
    );

    // Without --since, February counts too: old_x tops the list, and the February answer
    // makes a third ticket.
    let all = reply_stats::compute(store.pool(), &options(None))
        .await
        .unwrap();
    assert_eq!(all.replies[0].reply_id, "old_x");
    assert_eq!(all.agent_answers[0].tickets, 3);
    let fewer = reply_stats::compute(
        store.pool(),
        &Options {
            limit: 1,
            min_shown: 5,
            ..options(None)
        },
    )
    .await
    .unwrap();
    assert_eq!(fewer.replies.len(), 1);
    assert_eq!(fewer.replies[0].reply_id, "old_x");
    assert_eq!(fewer.agent_answers.len(), 1);
}

on_both_stores!(replies_changed_most_and_answers_written_again);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_tables_or_json_without_terminal_controls() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(Db::Sqlite, dir.path()).await;
    let store = Store::connect(&url).await.unwrap();
    seed(&store).await;
    store.close().await;
    let cfg = dir.path().join("kefu.toml");
    std::fs::write(&cfg, config_toml("127.0.0.1:0", &url, &replies_dir())).unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(["--config", cfg.to_str().unwrap(), "replies", "stats"])
            .args(args)
            .output()
            .unwrap()
    };

    let out = run(&["--since", "2026-03-01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "since 2026-03-01 (Asia/Shanghai)");
    let row = |id: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_else(|| panic!("{id} in {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("refund_b"),
        ["refund_b", "refund_status", "4", "0", "1", "2", "100.0%"]
    );
    assert_eq!(
        row("tracking_a"),
        ["tracking_a", "tracking", "5", "4", "0", "1", "20.0%"]
    );
    assert!(
        !text.contains("stock_a") && !text.contains("old_x"),
        "{text}"
    );
    assert!(
        text.contains("      2     3  tracking           亲，已经帮您催促快递了。"),
        "{text}"
    );
    assert!(text.contains("请稍等[31m片刻"), "{text}");

    let out = run(&["--json", "--limit", "1", "--min-shown", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["min_shown"], 5);
    assert_eq!(json["replies"].as_array().unwrap().len(), 1);
    assert_eq!(json["replies"][0]["reply_id"], "old_x");
    assert_eq!(json["replies"][0]["edit_or_dismiss_share"], 1.0);
    assert_eq!(json["agent_answers"][0]["tickets"], 3);
    assert_eq!(json["agent_answers"][0]["text"], "亲,已经帮您催促快递了");

    let out = run(&["--since", "March"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected YYYY-MM-DD"));
}
