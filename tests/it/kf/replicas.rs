//! Replicas: several kf services on one database and one WeCom, as a scaled-out deployment
//! runs them.

use super::*;

/// `n` kf services on one database and one WeCom, as replicas would run, each with its
/// outbox sender and poller running until the returned sender is dropped.
async fn replicas(
    n: usize,
    url: &str,
    base: &str,
    ack: &str,
) -> (
    Vec<Arc<kefu::channel::kf::KfService>>,
    tokio::sync::watch::Sender<bool>,
) {
    use kefu::channel::kf::KfService;
    use kefu::clock::SystemClock;
    use kefu::config::AckTexts;
    use kefu::intent::{SharedClassifier, Thresholds};
    use kefu::metrics::Metrics;
    use kefu::store::Store;
    use kefu::wecom::api::{RetryPolicy, WecomClient};

    let mut replicas = Vec::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for _ in 0..n {
        let store = Store::connect(url).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let clock: kefu::clock::SharedClock = Arc::new(SystemClock);
        let client = WecomClient::new(
            base,
            CORP_ID,
            SECRET,
            Some(store.clone()),
            metrics.clone(),
            clock.clone(),
            RetryPolicy::default(),
        )
        .unwrap();
        let (classifier, _) =
            SharedClassifier::load(std::path::Path::new(&replies_dir()), Thresholds::default())
                .unwrap();
        let kf = KfService::new(
            store,
            Arc::new(client),
            Arc::new(classifier),
            clock.clone(),
            AckTexts::new(ack),
            // WeCom's pending pool hands the chats out: no agents in kefu.
            Arc::new(kefu::tickets::TicketService::new(
                clock,
                kefu::tickets::TicketSettings {
                    agents_reply_in: kefu::tickets::ReplyMode::Wecom,
                    sla: kefu::tickets::SlaSettings::always_open(),
                    ..Default::default()
                },
                Arc::new(Metrics::new()),
            )),
            None,
        );
        kf.spawn_workers(Duration::from_millis(100), stopped.clone());
        replicas.push(kf);
    }
    (replicas, stop)
}

on_both_stores!(a_burst_of_handed_over_shoppers_all_hear_that_a_person_is_coming);

/// 60 shoppers complain, pulled in three batches of 20 by two replicas, then each writes
/// again. WeCom takes `send_msg` only before a session reaches the pending pool, so each
/// shopper's acknowledgement must go out before the move to the pool, and nothing may be
/// sent once they are in it.
async fn a_burst_of_handed_over_shoppers_all_hear_that_a_person_is_coming(db: Db) {
    let (sim, base) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(db, dir.path()).await;
    let (replicas, _stop) = replicas(2, &url, &base, "收到，客服马上来").await;
    let shopper = |n: usize| format!("wmBurst{n:02}");

    for batch in 0..3 {
        for i in 0..20 {
            sim.shopper_writes(
                KFID,
                &shopper(batch * 20 + i),
                "你们太过分了，我要投诉！",
                now_secs(),
            );
        }
        replicas[batch % 2]
            .pull(KFID, Some("ENCburst"))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while (0..60).any(|n| sim.session_state(KFID, &shopper(n)) != 2) {
        assert!(
            Instant::now() < deadline,
            "not every shopper reached the pending pool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each writes again while waiting for a person: nothing may be sent into the pool.
    for batch in 0..3 {
        for i in 0..20 {
            sim.shopper_writes(
                KFID,
                &shopper(batch * 20 + i),
                "人呢？怎么还没人理我",
                now_secs(),
            );
        }
        replicas[(batch + 1) % 2]
            .pull(KFID, Some("ENCagain"))
            .await
            .unwrap();
    }
    for kf in &replicas {
        kf.send_due().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused: Vec<String> = sim
        .refused()
        .iter()
        .map(|(body, code)| format!("{} ({code})", body["touser"]))
        .collect();
    assert!(
        refused.is_empty(),
        "WeCom refused {} sends: {refused:?}",
        refused.len()
    );
    let sent = sim.sent();
    for n in 0..60 {
        let to: Vec<_> = sent
            .iter()
            .filter(|s| s.body["touser"] == shopper(n))
            .collect();
        assert_eq!(
            to.len(),
            1,
            "{}: one acknowledgement, delivered",
            shopper(n)
        );
        assert_eq!(text_of(&to[0].body), "收到，客服马上来");
        assert_eq!(sim.session_state(KFID, &shopper(n)), 2);
    }
    // Both messages of every shopper wait for a person; no outbox row failed.
    let store = kefu::store::Store::connect(&url).await.unwrap();
    let unresolved: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM kf_messages WHERE status = 'unresolved'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(unresolved, 120);
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(failed, 0);
}

/// Two replicas share one PostgreSQL and one WeCom. Callbacks land on either; both pull and
/// both run an outbox sender. 1,000 shopper messages from 250 shoppers (4 each, within
/// WeCom's 5 sends per shopper message): every one stored once and answered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_process_1000_messages_once() {
    let (sim, base) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(Db::Postgres, dir.path()).await;
    let (replicas, _stop) = replicas(2, &url, &base, "收到").await;
    let questions = [
        "我的快递到哪了？",
        "可以开发票吗",
        "退款多久到账",
        "付款后多久发货呀",
    ];
    let started = Instant::now();
    let mut pulls = Vec::new();
    for batch in 0..20 {
        for i in 0..50 {
            let n = batch * 50 + i;
            sim.shopper_writes(
                KFID,
                &format!("wm{:03}", n % 250),
                // Each shopper asks four different questions: a question asked twice within
                // ten minutes would go to a person.
                questions[n / 250],
                now_secs(),
            );
        }
        // The callback for this batch lands on one replica, the next on the other; the
        // pollers of both run too.
        let kf = replicas[batch % 2].clone();
        pulls.push(tokio::spawn(async move {
            kf.pull(KFID, Some("ENCbatch")).await.unwrap()
        }));
    }
    for p in pulls {
        p.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.sent().len() < 1000 {
        assert!(
            Instant::now() < deadline,
            "only {} of 1000 answered",
            sim.sent().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    // Let both replicas run a while longer: nothing may be sent twice.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sent = sim.sent();
    assert_eq!(sent.len(), 1000, "each message answered exactly once");
    let mut ids: Vec<String> = sent
        .iter()
        .map(|s| s.body["msgid"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "no outbox row sent twice");
    let store = kefu::store::Store::connect(&url).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kf_messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 1000, "none lost, none stored twice");
    let answered_twice: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT source_msgid FROM outbox GROUP BY source_msgid HAVING COUNT(*) > 1) t",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(answered_twice, 0);
    eprintln!(
        "two replicas: 1000 messages pulled, classified and answered in {:.2} s ({:.0} messages/s)",
        elapsed.as_secs_f64(),
        1000.0 / elapsed.as_secs_f64()
    );
}
