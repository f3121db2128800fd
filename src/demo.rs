//! `kefu demo`: the whole WeCom Customer Service loop on this machine, with no WeCom
//! account. It starts the WeCom simulator and kefu (on the configured store, the embedded
//! SQLite file by default), plays a few scripted shoppers — a VIP among them — and prints
//! what each one wrote and what the shop answered, then keeps serving so you can look around.

use crate::console::Role;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::clock::SystemClock;
use crate::config::{Config, WecomConfig};
use crate::crypto::MsgCrypt;
use crate::simulate::Simulator;
use crate::store::KfMessageStatus;

const KFID: &str = "wkDEMO0000000000000000000000000000";
const CORP_ID: &str = "wwdemo0000000001";
const TOKEN: &str = "demoToken";
const AES_KEY: &str = "kefuDemoEncodingAESKey0123456789abcdefghijk";
const SECRET: &str = "demo-kf-secret";

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn shown(body: &Value) -> String {
    match body["msgtype"].as_str() {
        Some("msgmenu") => {
            let m = &body["msgmenu"];
            let items: Vec<String> = m["list"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["click"]["content"].as_str().map(|c| format!("[{c}]")))
                .collect();
            format!(
                "{} {}",
                m["head_content"].as_str().unwrap_or(""),
                items.join(" ")
            )
        }
        _ => body["text"]["content"].as_str().unwrap_or("").to_string(),
    }
}

/// Run the demo. With `once`, stop after the script (used by the tests).
pub async fn run(mut config: Config, once: bool) -> anyhow::Result<()> {
    // The simulator plays WeCom; kefu is pointed at it.
    let crypt = MsgCrypt::new(TOKEN, AES_KEY, CORP_ID).context("demo credentials")?;
    let sim = Simulator::new(crypt, SECRET);
    let sim_base = sim
        .spawn(
            TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding the simulator")?,
        )
        .await?;
    config.wecom = Some(WecomConfig {
        corp_id: CORP_ID.into(),
        token: TOKEN.into(),
        encoding_aes_key: AES_KEY.into(),
        secret: Some(SECRET.into()),
        api_base: sim_base.clone(),
        // The simulator's group robot stands in for the supervisors' chat.
        alert_webhook_key: Some("demo-supervisors".into()),
        outbox_lease: Duration::from_secs(crate::config::DEFAULT_OUTBOX_LEASE_SECS),
    });
    if config.tickets.agents.is_empty() {
        // Two agents: a senior one who takes VIPs and urgent tickets, and one for sales and
        // orders.
        config.tickets.agents = vec![
            crate::tickets::routing::Agent::new(
                "li",
                "李敏 (senior)",
                &["service", "aftersale", "logistics"],
                true,
            ),
            crate::tickets::routing::Agent::new(
                "zhang",
                "张伟",
                &["presale", "order", "logistics", "account"],
                false,
            ),
        ];
    }
    let listen = config.listen;
    let db = crate::config::redact_url(&config.database_url);
    let state = crate::server::build(config, Arc::new(SystemClock)).await?;
    let kf = state.kf.clone().context("kf loop")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    kf.spawn_workers(Duration::from_secs(30), stopped);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen} (set KEFU_LISTEN to use another port)"))?;
    let addr = listener.local_addr()?;
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        crate::server::serve(server_state, listener, crate::server::shutdown_signal()).await
    });
    let callback = format!("http://{addr}/wecom/callback");

    println!("kefu demo — WeCom simulator at {sim_base}, kefu at http://{addr}, store {db}\n");
    sim.add_customer("wmDemoVIP", "王女士", &[("客户等级", "VIP")]);
    sim.add_customer("wmDemoLin", "小林", &[]);
    sim.add_customer("wmDemoZhao", "赵先生", &[]);

    // A newcomer opens the chat: the welcome menu.
    sim.shopper_enters(KFID, "wmDemoNew", now_secs());
    sim.notify(
        &callback,
        KFID,
        &format!("ENCdemo{}", rand::random::<u32>()),
    )
    .await;
    wait_for(&sim, |s| s.iter().any(|m| m.api == "send_msg_on_event")).await;
    if let Some(w) = sim.sent().iter().find(|m| m.api == "send_msg_on_event") {
        println!("新访客 进入会话\n  kefu  → {}\n", shown(&w.body));
    }

    let script: [(&str, &str, &str); 7] = [
        ("wmDemoVIP", "王女士 (VIP)", "满多少包邮啊？"),
        ("wmDemoLin", "小林", "我昨天买的卫衣，快递到哪了"),
        ("wmDemoLin", "小林", "什么时候能发货呀"),
        ("wmDemoZhao", "赵先生", "收到的杯子是碎的！！"),
        ("wmDemoZhao", "赵先生", "我要投诉，12315见"),
        ("wmDemoLin", "小林", "帮我订一张明天去成都的火车票"),
        (
            "wmDemoVIP",
            "王女士 (VIP)",
            "上周买的大衣掉色严重，你们客服一直不回，我要投诉",
        ),
    ];
    for (who, name, text) in script {
        let before = sim.sent().len();
        let msgid = sim.shopper_writes(KFID, who, text, now_secs());
        sim.notify(
            &callback,
            KFID,
            &format!("ENCdemo{}", rand::random::<u32>()),
        )
        .await;
        wait_for(&sim, |s| s.len() > before).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        println!("{name}: {text}");
        for m in sim.sent().iter().skip(before) {
            if m.api == "send_msg" && m.body["touser"] == who {
                println!("  kefu  → {}", shown(&m.body));
            }
        }
        let outcome = crate::store::kf::message_outcome(state.store.pool(), &msgid.into())
            .await
            .ok()
            .flatten();
        if let Some(o) = outcome {
            let (intent, conf) = (o.intent, o.confidence.unwrap_or(0.0));
            if o.status == Some(KfMessageStatus::Answered) {
                println!("  (intent {intent}, confidence {conf:.2}: answered at once)");
            } else {
                println!(
                    "  (intent {intent}, confidence {conf:.2}: handed to a person — a ticket)"
                );
            }
        }
        println!();
    }

    show_tickets(&state).await;
    add_demo_users(&state).await;

    let counts = crate::store::kf::status_counts(state.store.pool())
        .await
        .unwrap_or_default();
    let (answered, unresolved) = (counts.answered, counts.unresolved);
    println!("answered by the bot: {answered}, waiting for a person: {unresolved}");
    println!("Look around:");
    println!("  curl http://{addr}/metrics");
    if let Some(token) = &state.config.admin_token {
        let _ = token; // never printed
        println!("  curl -H \"Authorization: Bearer $KEFU_ADMIN_TOKEN\" http://{addr}/api/tickets");
    } else {
        println!("  the tickets API (GET /api/tickets) needs admin_token set (KEFU_ADMIN_TOKEN)");
    }
    println!("  echo '退货地址是哪里' | cargo run --release -- classify");
    println!("\nThe console: http://{addr}/console/ (demo logins, for this demo store only)");
    for (name, role, password) in DEMO_USERS.iter().map(|u| (u.0, u.1.as_str(), u.4)) {
        println!("  {name:<6} {password:<16} ({role})");
    }
    println!("  the store: {db} (tables kf_messages, outbox, kf_sessions, inbound_messages)");
    if once {
        let _ = stop.send(true);
        server.abort();
        return Ok(());
    }
    println!("\nkefu keeps running; Ctrl-C to stop.");
    let result = server.await.context("server task")?;
    let _ = stop.send(true);
    result
}

/// The demo's console users: name, role, servicer, groups, password. The agents are the
/// demo's two servicers.
type DemoUser = (
    &'static str,
    Role,
    Option<&'static str>,
    &'static [&'static str],
    &'static str,
);
const DEMO_USERS: [DemoUser; 3] = [
    (
        "li",
        Role::Agent,
        Some("li"),
        &["service", "aftersale", "logistics"],
        "demo-li-2026",
    ),
    (
        "zhang",
        Role::Agent,
        Some("zhang"),
        &["presale", "order", "logistics", "account"],
        "demo-zhang-2026",
    ),
    ("lead", Role::Supervisor, None, &[], "demo-lead-2026"),
];

/// Create the demo's console users, unless the store has them from an earlier run.
async fn add_demo_users(state: &crate::web::AppState) {
    for (name, role, servicer, groups, password) in DEMO_USERS {
        let new = crate::console::NewUser {
            name: name.into(),
            role,
            servicer_userid: servicer.map(str::to_string),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            password: password.into(),
        };
        match crate::console::add_user(&state.store, new, state.clock.now_ms()).await {
            Ok(()) | Err(crate::console::UserError::Exists(_)) => {}
            Err(e) => eprintln!("demo user {name}: {e}"),
        }
    }
}

/// The ticket queue as a supervisor sees it (most urgent first), once routing has run.
async fn show_tickets(state: &crate::web::AppState) {
    use crate::tickets::store::{self as ticket_store, Filter};
    let filter = Filter {
        limit: 50,
        ..Filter::default()
    };
    let started = Instant::now();
    let mut tickets = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        tickets = ticket_store::list(state.store.pool(), &filter)
            .await
            .unwrap_or_default();
        if !tickets.is_empty() && tickets.iter().all(|t| t.assignee.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("Tickets, most urgent first (GET /api/tickets):");
    for t in &tickets {
        let who = t
            .customer_name
            .clone()
            .unwrap_or_else(|| t.external_userid.clone());
        println!(
            "  {:<7} {:<6} {:<8} {:<15} {:<13} → {}  ({})",
            t.priority().as_str(),
            t.tier,
            who,
            t.intent,
            t.reason,
            t.assignee.as_deref().unwrap_or("waiting in the queue"),
            t.tier_reasons().join("; ")
        );
    }
    println!();
}

async fn wait_for(sim: &Simulator, ready: impl Fn(&[crate::simulate::Sent]) -> bool) {
    let started = Instant::now();
    while !ready(&sim.sent()) && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `kefu simulate`: the WeCom simulator on its own, for trying a kefu you run yourself.
/// Prints the `[wecom]` settings that point kefu at it, then turns each stdin line
/// (`external_userid text`, or just text) into a shopper message and a callback to
/// `callback`, and prints what kefu sent back.
pub async fn simulate(listen: std::net::SocketAddr, callback: String) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let crypt = MsgCrypt::new(TOKEN, AES_KEY, CORP_ID).context("simulator credentials")?;
    let sim = Simulator::new(crypt, SECRET);
    let base = sim
        .spawn(
            TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?,
        )
        .await?;
    println!("WeCom simulator at {base}. Point kefu at it with:\n");
    println!("[wecom]\ncorp_id = \"{CORP_ID}\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\nsecret = \"{SECRET}\"\napi_base = \"{base}\"\n");
    println!("Then type shopper messages (`wmSomeone 我的快递到哪了`, or just the text); callbacks go to {callback}.");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (who, text) = match line.split_once(' ') {
            Some((w, t)) if w.starts_with("wm") => (w.to_string(), t.to_string()),
            _ => ("wmShopper".to_string(), line.to_string()),
        };
        let before = sim.sent().len();
        sim.shopper_writes(KFID, &who, &text, now_secs());
        let statuses = sim
            .notify(&callback, KFID, &format!("ENCsim{}", rand::random::<u32>()))
            .await;
        println!("  callback answered {statuses:?}");
        wait_for(&sim, |s| s.len() > before).await;
        for m in sim.sent().iter().skip(before) {
            println!(
                "  kefu → {}: {}",
                m.body["touser"].as_str().unwrap_or("(welcome)"),
                shown(&m.body)
            );
        }
    }
    Ok(())
}
