//! The fault suite: nothing accepted is lost or duplicated under crashes and outages.
//!
//! While a steady stream of kf (WeCom Customer Service) and Official Account messages flows,
//! two replicas of the real `kefu` binary share a PostgreSQL that this test starts itself (its
//! own `initdb` in a temporary folder, its own port); the WeCom simulator answers a share of
//! all calls with -1, 45009, a reset connection or a timeout. Meanwhile the test SIGKILLs and
//! restarts a replica at random five times and stops and restarts its PostgreSQL once. Then
//! the faults stop, kefu is given a bounded time to catch up, and:
//!
//! - every callback answered 200 is stored exactly once (Official Account messages by their
//!   MsgId, kf callbacks by their Token), and every kf message the shoppers wrote is pulled
//!   and stored once;
//! - every fresh shopper message has exactly one answer or one handoff: an answered message
//!   has one `send_msg` row, sent, and WeCom received it exactly once; a handed-over one at
//!   most an acknowledgement, likewise received once;
//! - no history (a message older than kefu's cut-off when first pulled) is answered;
//! - no outbox row is left `sending` (or `pending`);
//! - no replica's log holds a panic.
//!
//! The counts go to stderr and `target/fault-report.txt`. The short run is part of the
//! suite; `KEFU_FAULT_MESSAGES=5000` (see `bench/fault.sh`) makes a long one.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kefu::simulate::{RandomFaults, Simulator};
use rand::seq::SliceRandom;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_kefu");
const KFID: &str = "wkFAULT0000000000000000000000000";
const SECRET: &str = "fault-kf-secret";
const ROBOT: &str = "fault-robot";
/// Confidently answered questions, each asked at most once per shopper (a question asked
/// twice within ten minutes goes to a person).
const QUESTIONS: [&str; 4] = [
    "我的快递到哪了？",
    "可以开发票吗",
    "退款多久到账",
    "付款后多久发货呀",
];
const COMPLAINT: &str = "你们太过分了，我要投诉！";
/// Shoppers this old when first pulled are history.
const HISTORY_AGE_SECS: i64 = 3600;

/// What a run does; the short run is the default, `KEFU_FAULT_MESSAGES` sets a long one.
struct Plan {
    /// Messages in the stream, kf and Official Account alternately.
    messages: usize,
    /// The time between two messages of the stream.
    pace: Duration,
    kills: usize,
    /// Share of WeCom calls that fail.
    fault_share: f64,
    /// How long a "timeout" stalls: longer than kefu's 5 s client timeout.
    stall: Duration,
    /// How long kefu may take to catch up once the faults stop.
    settle: Duration,
}

impl Plan {
    fn from_env() -> Plan {
        let messages = std::env::var("KEFU_FAULT_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(240usize);
        // About 20 s of stream for the short run; a long one runs at ~50 messages a second.
        let pace = if messages <= 400 {
            Duration::from_millis(20_000 / messages.max(1) as u64)
        } else {
            Duration::from_millis(20)
        };
        Plan {
            messages,
            pace,
            kills: 5,
            fault_share: 0.2,
            stall: Duration::from_millis(5_500),
            settle: Duration::from_secs(if messages <= 400 { 40 } else { 180 }),
        }
    }
}

// ------------------------------------------------------------------ PostgreSQL of its own

/// A PostgreSQL server of the test's own: `initdb` in a temporary folder, its own port.
/// When the test runs as root (CI), the server runs as the `postgres` OS user, since
/// `initdb` refuses root.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("KEFU_PG_BIN") {
        return PathBuf::from(dir);
    }
    for version in ["17", "16", "15", "14", "13"] {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    panic!("no PostgreSQL server binaries (initdb, pg_ctl) found; set KEFU_PG_BIN");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    fn start_new() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("kefu-fault-pg")
            .tempdir()
            .unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown the PostgreSQL folder to postgres");
        }
        let pg = Postgres {
            bin: pg_bin(),
            port: free_port(),
            as_postgres,
            dir,
        };
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop as a crash would: every connection dies at once, no checkpoint.
    fn crash(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.crash();
    }
}

// ------------------------------------------------------------------ kefu replicas

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `kefu serve` process: its own port, config file and log (kept across restarts).
struct Replica {
    name: String,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    sim_base: String,
    child: Option<Child>,
}

impl Replica {
    fn new(dir: &Path, n: usize, db_url: &str, sim_base: &str) -> Replica {
        let port = free_port();
        let config = dir.join(format!("kefu-{n}.toml"));
        let toml = config_toml(&format!("127.0.0.1:{port}"), db_url, &replies_dir());
        std::fs::write(&config, toml).unwrap();
        Replica {
            name: format!("kefu-{n}"),
            port,
            config,
            log: dir.join(format!("kefu-{n}.log")),
            sim_base: sim_base.to_string(),
            child: None,
        }
    }

    fn callback(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("KEFU_LOG", "info")
            .env("KEFU_WECOM_SECRET", SECRET)
            .env("KEFU_WECOM_API_BASE", &self.sim_base)
            .env("KEFU_WECOM_ALERT_WEBHOOK_KEY", ROBOT)
            // A replica killed mid-send holds its rows this long; the suite cannot wait the
            // production two minutes.
            .env("KEFU_WECOM_OUTBOX_LEASE_SECS", "10")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Start and wait until ready; a start that fails (the store down) is tried again.
    async fn start(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            self.spawn();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(15) {
                if let Ok(r) = http
                    .get(self.callback("/readyz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    if r.status() == 200 {
                        return;
                    }
                }
                if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                    break; // exited: try again
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.kill();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{} did not become ready", self.name);
    }

    /// SIGKILL: no shutdown at all.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------------ the stream

/// What the stream did, as the senders saw it.
#[derive(Default)]
struct Ledger {
    /// Fresh kf shopper messages (msgids).
    kf_fresh: Vec<String>,
    /// kf shopper messages put in as history.
    kf_history: Vec<String>,
    kf_callbacks: usize,
    /// Tokens of kf callbacks answered 200.
    kf_acked: Vec<String>,
    /// Official Account MsgIds sent, and those answered 200.
    mp_sent: Vec<u64>,
    mp_acked: Vec<u64>,
}

type Shared = Arc<Mutex<Ledger>>;

fn entries(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// Post a `kf_msg_or_event` callback to one replica (WeCom retries to the same URL).
async fn kf_callback(sim: Simulator, url: String, token: String, ledger: Shared) {
    let statuses = sim.notify(&url, KFID, &token).await;
    let mut l = entries(&ledger);
    l.kf_callbacks += 1;
    if statuses.contains(&200) {
        l.kf_acked.push(token);
    }
}

/// An Official Account text message, delivered as WeChat does: up to three attempts (here to
/// any replica, as behind a load balancer), 5 s each.
async fn mp_message(urls: Vec<String>, msg_id: u64, from: String, text: &str, ledger: Shared) {
    let crypt = mp_crypt();
    let ts = now_secs();
    let xml = text_xml("gh_fault_shop", &from, msg_id, text, ts);
    let encrypt = crypt.encrypt(&xml);
    let body = format!("<xml><ToUserName><![CDATA[gh_fault_shop]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    let http = reqwest::Client::new();
    let mut acked = false;
    for attempt in 0..3u64 {
        let nonce = rand::random::<u32>().to_string();
        let query = mp_query(&crypt, &encrypt, ts, &nonce);
        let url = &urls[rand::random_range(0..urls.len())];
        let status = http
            .post(format!("{url}?{query}"))
            .header("content-type", "text/xml")
            .body(body.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 200 {
            acked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
    }
    let mut l = entries(&ledger);
    l.mp_sent.push(msg_id);
    if acked {
        l.mp_acked.push(msg_id);
    }
}

/// The stream: kf and Official Account messages alternately, one every `plan.pace`.
async fn stream(plan: &Plan, sim: &Simulator, ports: &[u16], ledger: &Shared) {
    let wecom: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/wecom/callback"))
        .collect();
    let mp: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/wechat/callback"))
        .collect();
    let mut tasks = Vec::new();
    let (mut kf_n, mut mp_n) = (0usize, 0usize);
    for i in 0..plan.messages {
        tokio::time::sleep(plan.pace).await;
        if i % 2 == 0 {
            let k = kf_n;
            kf_n += 1;
            if k % 25 == 7 {
                // History: written an hour ago, first pulled now.
                let msgid = sim.shopper_writes(
                    KFID,
                    &format!("wmOld{k:05}"),
                    QUESTIONS[0],
                    now_secs() - HISTORY_AGE_SECS,
                );
                entries(ledger).kf_history.push(msgid);
            } else {
                let shopper = k / 4;
                let text = if shopper % 10 == 3 && k % 4 == 0 {
                    COMPLAINT
                } else {
                    QUESTIONS[k % 4]
                };
                let msgid = sim.shopper_writes(KFID, &format!("wmF{shopper:05}"), text, now_secs());
                entries(ledger).kf_fresh.push(msgid);
            }
            let url = wecom[rand::random_range(0..wecom.len())].clone();
            tasks.push(tokio::spawn(kf_callback(
                sim.clone(),
                url,
                format!("ENCfault{k}"),
                ledger.clone(),
            )));
        } else {
            let m = mp_n;
            mp_n += 1;
            tasks.push(tokio::spawn(mp_message(
                mp.clone(),
                7_100_000_000_000_000_000 + m as u64,
                format!("oFault{:05}", m / 4),
                QUESTIONS[m % 4],
                ledger.clone(),
            )));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// What the chaos did: its log, when each kill came, and when PostgreSQL was down.
struct Chaos {
    log: Vec<String>,
    kills: Vec<Instant>,
    outage: Option<(Instant, Instant)>,
}

/// The chaos: `plan.kills` SIGKILLs of a random replica (restarted at once) and one stop of
/// PostgreSQL, at random moments of the stream, one after another. Returns what was done.
async fn chaos(
    plan: &Plan,
    replicas: &mut [Replica],
    pg: &Postgres,
    stream_for: Duration,
) -> Chaos {
    let mut at: Vec<f64> = (0..=plan.kills)
        .map(|_| 0.1 + 0.75 * rand::random::<f64>())
        .collect();
    at.sort_by(f64::total_cmp);
    let mut kinds: Vec<bool> = (0..=plan.kills).map(|i| i == 0).collect(); // true: PostgreSQL
    kinds.shuffle(&mut rand::rng());
    let started = Instant::now();
    let mut log = Vec::new();
    let mut kills = Vec::new();
    let mut outage = None;
    for (when, postgres) in at.into_iter().zip(kinds) {
        let due = stream_for.mul_f64(when);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let t = started.elapsed().as_secs_f64();
        if postgres {
            let stopped = Instant::now();
            pg.crash();
            let down = Duration::from_millis(rand::random_range(1500..3000));
            tokio::time::sleep(down).await;
            pg.start();
            outage = Some((stopped, Instant::now()));
            log.push(format!(
                "{t:6.2}s PostgreSQL stopped (immediate) for {:.1} s",
                down.as_secs_f64()
            ));
        } else {
            let n = rand::random_range(0..replicas.len());
            kills.push(Instant::now());
            replicas[n].kill();
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..500))).await;
            let back = Instant::now();
            replicas[n].start().await;
            log.push(format!(
                "{t:6.2}s {} SIGKILLed, ready again in {:.1} s",
                replicas[n].name,
                back.elapsed().as_secs_f64()
            ));
        }
    }
    Chaos { log, kills, outage }
}

// ------------------------------------------------------------------ the checks

/// What the store holds once kefu has caught up.
struct Stored {
    /// kf shopper messages: msgid -> status.
    kf: HashMap<String, String>,
    /// Outbox rows: (id, api, source_msgid, status).
    outbox: Vec<(String, String, Option<String>, String)>,
    /// Inbound callbacks: (channel, dedup_key) -> status.
    inbound: HashMap<(String, String), String>,
}

async fn read_store(pool: &sqlx::AnyPool) -> sqlx::Result<Stored> {
    let kf: Vec<(String, String)> =
        sqlx::query_as("SELECT msgid, status FROM kf_messages WHERE open_kfid = $1 AND origin = 3")
            .bind(KFID)
            .fetch_all(pool)
            .await?;
    let outbox = sqlx::query_as("SELECT id, api, source_msgid, status FROM outbox")
        .fetch_all(pool)
        .await?;
    let inbound: Vec<(String, String, String)> =
        sqlx::query_as("SELECT channel, dedup_key, status FROM inbound_messages")
            .fetch_all(pool)
            .await?;
    Ok(Stored {
        kf: kf.into_iter().collect(),
        outbox,
        inbound: inbound.into_iter().map(|(c, k, s)| ((c, k), s)).collect(),
    })
}

/// Wait (bounded) until every kf message is pulled and the outbox is empty of work.
async fn settle(pool: &sqlx::AnyPool, ledger: &Shared, within: Duration) -> Duration {
    let started = Instant::now();
    let wanted: Vec<String> = {
        let l = entries(ledger);
        l.kf_fresh.iter().chain(&l.kf_history).cloned().collect()
    };
    while started.elapsed() < within {
        if let Ok(s) = read_store(pool).await {
            let pulled = wanted.iter().all(|m| s.kf.contains_key(m));
            let busy = s
                .outbox
                .iter()
                .any(|(_, _, _, status)| status == "pending" || status == "sending");
            if pulled && !busy {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

#[derive(Default, Debug)]
struct Counts {
    sent: usize,
    acknowledged: usize,
    stored: usize,
    answered: usize,
    handed_over: usize,
    duplicates: usize,
    /// Sent again because a replica was killed between WeCom taking it and recording so.
    resent_after_kill: usize,
    lost: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_accepted_is_lost_or_duplicated_under_crashes_and_outages() {
    sqlx::any::install_default_drivers();
    let plan = Plan::from_env();
    let run_started = Instant::now();
    let pg = Postgres::start_new();
    let dir = tempfile::tempdir().unwrap();

    let sim = Simulator::new(wecom_crypt(), SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_base = sim.spawn(listener).await.unwrap();

    let mut replicas: Vec<Replica> = (0..2)
        .map(|n| Replica::new(dir.path(), n, &pg.url(), &sim_base))
        .collect();
    for r in &mut replicas {
        r.start().await;
    }
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    sim.inject_random(RandomFaults {
        share: plan.fault_share,
        stall: plan.stall,
    });

    // The stream and the chaos run side by side.
    let ledger: Shared = Arc::default();
    let stream_for = plan.pace * plan.messages as u32;
    let streamed = stream(&plan, &sim, &ports, &ledger);
    let chaos_done = chaos(&plan, &mut replicas, &pg, stream_for);
    let (
        (),
        Chaos {
            log: events,
            kills,
            outage,
        },
    ) = tokio::join!(streamed, chaos_done);
    let faults = sim.random_faults();

    // The faults stop; one more shopper message and a callback to each replica, as the
    // stream goes on (a callback answered while the store was down is pulled now).
    sim.inject_random(RandomFaults::default());
    for r in &mut replicas {
        if !r.alive() {
            r.start().await;
        }
    }
    for (n, port) in ports.iter().enumerate() {
        let msgid = sim.shopper_writes(KFID, &format!("wmLast{n}"), QUESTIONS[1], now_secs());
        entries(&ledger).kf_fresh.push(msgid);
        kf_callback(
            sim.clone(),
            format!("http://127.0.0.1:{port}/wecom/callback"),
            format!("ENCdrain{n}"),
            ledger.clone(),
        )
        .await;
    }

    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&pg.url())
        .await
        .unwrap();
    let settled_in = settle(&pool, &ledger, plan.settle).await;
    // Anything still going on would show as a duplicate: give the senders a moment more.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stored = read_store(&pool).await.unwrap();
    let sent_log = sim.sent();
    let l = entries(&ledger);
    let mut problems: Vec<String> = Vec::new();
    let mut counts = Counts::default();

    // Official Account: every MsgId answered 200 stored once, answered or handed over.
    counts.sent += l.mp_sent.len();
    counts.acknowledged += l.mp_acked.len();
    for id in &l.mp_acked {
        match stored.inbound.get(&("mp".to_string(), format!("msg:{id}"))) {
            None => {
                counts.lost += 1;
                problems.push(format!(
                    "Official Account message {id} answered 200, not stored"
                ));
            }
            Some(status) if status == "answered" => counts.answered += 1,
            Some(status) if status == "unresolved" => counts.handed_over += 1,
            Some(status) => problems.push(format!("Official Account message {id} is {status}")),
        }
    }
    counts.stored += l
        .mp_sent
        .iter()
        .filter(|id| {
            stored
                .inbound
                .contains_key(&("mp".to_string(), format!("msg:{id}")))
        })
        .count();

    // kf callbacks answered 200: stored once (by Token).
    for token in &l.kf_acked {
        if !stored
            .inbound
            .contains_key(&("wecom".to_string(), format!("kf:{token}")))
        {
            counts.lost += 1;
            problems.push(format!("kf callback {token} answered 200, not stored"));
        }
    }

    // kf messages: every one the shoppers wrote is pulled and stored once (msgid is the key).
    counts.sent += l.kf_fresh.len() + l.kf_history.len();
    counts.acknowledged += l.kf_fresh.len() + l.kf_history.len();
    let mut sends_per_source: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
    for (id, api, source, status) in &stored.outbox {
        if api == "send_msg" {
            if let Some(source) = source {
                sends_per_source
                    .entry(source.as_str())
                    .or_default()
                    .push((id.as_str(), status.as_str()));
            }
        }
        if status == "pending" || status == "sending" {
            problems.push(format!("outbox row {id} ({api}) left {status}"));
        }
        if status == "failed" {
            problems.push(format!("outbox row {id} ({api}) failed"));
        }
    }
    let mut received: HashMap<&str, usize> = HashMap::new();
    for s in &sent_log {
        if let Some(id) = s.body["msgid"].as_str() {
            *received.entry(id).or_default() += 1;
        }
    }
    let outbox_ids: HashSet<&str> = stored.outbox.iter().map(|r| r.0.as_str()).collect();
    // WeCom does not say it de-duplicates `send_msg` by msgid: a replica killed after
    // WeCom took a message and before it recorded so (a few milliseconds, or until the store
    // is back when it is down) sends it again when the row's lease runs out. Such a repeat is reported apart; any other is a fault.
    let mut first_receipt: HashMap<&str, Instant> = HashMap::new();
    for s in &sent_log {
        if let Some(id) = s.body["msgid"].as_str() {
            first_receipt.entry(id).or_insert(s.at);
        }
    }
    let killed_mid_send = |id: &str| {
        first_receipt.get(id).is_some_and(|first| {
            // A kill just before the simulator read the request (it was on its way) or
            // within a quarter second after; or, when PostgreSQL went down before it could
            // be recorded, before the store was back and reachable again (the sender keeps
            // trying to record it until then, and a kill meanwhile leaves it unrecorded).
            let recorded_by = match outage {
                Some((down, up)) if down <= *first + Duration::from_millis(250) && *first <= up => {
                    up + Duration::from_secs(3)
                }
                _ => *first + Duration::from_millis(250),
            };
            kills
                .iter()
                .any(|k| *k + Duration::from_millis(50) >= *first && *k <= recorded_by)
        })
    };
    for (id, n) in &received {
        if *n > 1 && killed_mid_send(id) {
            counts.resent_after_kill += n - 1;
        } else if *n > 1 {
            counts.duplicates += n - 1;
            problems.push(format!("WeCom received {id} {n} times"));
        }
        if !outbox_ids.contains(id) {
            problems.push(format!("WeCom received {id}, which no outbox row holds"));
        }
    }
    // One answer: a single send_msg row for the message, sent, received once.
    let delivered_once = |msgid: &str, problems: &mut Vec<String>| -> usize {
        let rows = sends_per_source.get(msgid).cloned().unwrap_or_default();
        for (id, status) in &rows {
            if *status == "sent" && received.get(id).copied().unwrap_or(0) == 0 {
                problems.push(format!("outbox row {id} marked sent, never received"));
            }
        }
        rows.len()
    };
    for msgid in &l.kf_fresh {
        let Some(status) = stored.kf.get(msgid) else {
            counts.lost += 1;
            problems.push(format!("kf message {msgid} never stored"));
            continue;
        };
        counts.stored += 1;
        let rows = delivered_once(msgid, &mut problems);
        match status.as_str() {
            "answered" if rows == 1 => counts.answered += 1,
            "answered" => {
                if rows == 0 {
                    counts.lost += 1;
                } else {
                    counts.duplicates += rows - 1;
                }
                problems.push(format!(
                    "kf message {msgid} answered with {rows} send_msg rows"
                ));
            }
            // A handoff: at most an acknowledgement.
            "unresolved" if rows <= 1 => counts.handed_over += 1,
            other => problems.push(format!(
                "kf message {msgid} is {other} with {rows} send_msg rows"
            )),
        }
    }
    for msgid in &l.kf_history {
        let Some(status) = stored.kf.get(msgid) else {
            counts.lost += 1;
            problems.push(format!("kf history message {msgid} never stored"));
            continue;
        };
        counts.stored += 1;
        let rows = delivered_once(msgid, &mut problems);
        if status == "answered" || rows > 0 {
            problems.push(format!(
                "history {msgid} answered: status {status}, {rows} send_msg rows"
            ));
        }
    }

    // No panic in any replica's log.
    let mut log_lines = 0;
    for r in &replicas {
        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
        log_lines += text.lines().count();
        for line in text.lines().filter(|l| l.contains("panicked")) {
            problems.push(format!("{}: {line}", r.name));
        }
    }

    let report = format!(
        "kefu fault suite: {} messages ({} kf incl. {} history, {} Official Account), 2 replicas on a PostgreSQL of its own\n\
         chaos:\n  {}\n\
         WeCom faults while on ({:.0}% of calls): {} busy (-1), {} rate limited (45009), {} resets, {} timeouts ({:.1} s stalls); {} calls passed\n\
         kf callbacks: {} posted, {} answered 200\n\
         messages sent {}, acknowledged {}, stored {}, answered {} (+ {} handed over), duplicates {}, lost {}; re-sent after a kill mid-send {}\n\
         settled {:.1} s after the stream; whole run {:.1} s; {} log lines, problems: {}\n",
        counts_sent_line(&l),
        l.kf_fresh.len() + l.kf_history.len(),
        l.kf_history.len(),
        l.mp_sent.len(),
        events.join("\n  "),
        plan.fault_share * 100.0,
        faults.busy,
        faults.rate_limited,
        faults.reset,
        faults.timeout,
        plan.stall.as_secs_f64(),
        faults.passed,
        l.kf_callbacks,
        l.kf_acked.len(),
        counts.sent,
        counts.acknowledged,
        counts.stored,
        counts.answered,
        counts.handed_over,
        counts.duplicates,
        counts.lost,
        counts.resent_after_kill,
        settled_in.as_secs_f64(),
        run_started.elapsed().as_secs_f64(),
        log_lines,
        problems.len(),
    );
    eprintln!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fault-report.txt");
    let _ = std::fs::write(&out, &report);
    if !problems.is_empty() {
        // Keep the logs for a look.
        let kept = dir.keep();
        panic!(
            "{} problems (logs kept in {}):\n{}",
            problems.len(),
            kept.display(),
            problems
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!((counts.duplicates, counts.lost), (0, 0));
}

fn counts_sent_line(l: &Ledger) -> usize {
    l.kf_fresh.len() + l.kf_history.len() + l.mp_sent.len()
}
