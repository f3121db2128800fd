//! The console's queue page with 1,000 open tickets: `GET /console/` for a supervisor (every
//! ticket, filters, bulk actions) and the queue fragment the page fetches on each live
//! change, over loopback HTTP against a kefu on a temporary SQLite store.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use kefu::clock::SystemClock;
use kefu::config::Config;
use kefu::console::{self, NewUser, Role};
use kefu::crm::{CustomerTier, Standing};
use kefu::tickets::{Incoming, OpenReason};

const TICKETS: usize = 1000;

fn config(dir: &std::path::Path) -> Config {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{}/kefu.db\"\nreplies_dir = \"{}/replies\"\n",
        dir.display(),
        env!("CARGO_MANIFEST_DIR")
    );
    Config::from_sources(&toml, std::path::Path::new("bench.toml"), |_| None).expect("config")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, cookie) = rt.block_on(async {
        let state = kefu::server::build(config(dir.path()), Arc::new(SystemClock))
            .await
            .expect("kefu");
        let intents = [
            "return_request",
            "damaged_item",
            "tracking",
            "complaint",
            "invoice",
        ];
        let tiers = [
            CustomerTier::Vip,
            CustomerTier::High,
            CustomerTier::Normal,
            CustomerTier::New,
        ];
        let now = state.clock.now_ms();
        let mut tx = state.store.pool().begin().await.expect("tx");
        for i in 0..TICKETS {
            let standing = Standing {
                tier: tiers[i % tiers.len()],
                reasons: vec![format!("{} orders on record", i % 17)],
                raise_priority: i % 50 == 0,
            };
            let customer = format!("wmBench{i:04}");
            let msgid = format!("bench-{i}");
            let content = format!("第{i}位顾客：收到的东西有问题，麻烦尽快处理一下，谢谢");
            state
                .tickets
                .open(
                    &mut tx,
                    &Incoming {
                        channel: "kf",
                        account: "wkBench",
                        external_userid: &customer,
                        customer_name: Some(&customer),
                        msgid: &msgid,
                        content: &content,
                        intent: intents[i % intents.len()],
                        confidence: Some(0.3),
                        at_ms: now - (i as i64) * 1000,
                        standing: &standing,
                    },
                    OpenReason::Handoff,
                )
                .await
                .expect("ticket");
        }
        tx.commit().await.expect("commit");
        console::add_user(
            &state.store,
            NewUser {
                name: "lead".into(),
                role: Role::Supervisor,
                servicer_userid: None,
                groups: vec![],
                password: "bench-password-1".into(),
            },
            now,
        )
        .await
        .expect("user");
        let token = console::new_token();
        let mut conn = state.store.pool().acquire().await.expect("conn");
        console::store::insert_session(
            &mut conn,
            &console::token_hash(&token),
            "lead",
            "csrf",
            now,
        )
        .await
        .expect("session");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(kefu::server::serve(state, listener, std::future::pending()));
        (format!("http://{addr}"), format!("kefu_session={token}"))
    });
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let req = http.get(format!("{url}{path}")).header("cookie", &cookie);
        rt.block_on(async {
            let resp = req.send().await.expect("response");
            assert_eq!(resp.status(), 200);
            resp.bytes().await.expect("body").len()
        })
    };
    let size = get("/console/");
    assert!(
        size > TICKETS * 200,
        "the page lists every ticket ({size} bytes)"
    );
    let mut g = c.benchmark_group("console_queue_1000_open");
    g.sample_size(30);
    g.bench_function("supervisor_page", |b| b.iter(|| get("/console/")));
    g.bench_function("queue_fragment", |b| {
        b.iter(|| get("/console/fragments/queue"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
