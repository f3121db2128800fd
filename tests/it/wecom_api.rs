//! The WeCom API client against the simulator: token caching and refresh, retries on
//! transient errors, no retries on permanent ones, one token shared by replicas.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use kefu::clock::SystemClock;
use kefu::metrics::Metrics;
use kefu::simulate::{Faults, Simulator};
use kefu::store::Store;
use kefu::wecom::api::{RetryPolicy, WecomClient};

const SECRET: &str = "kf-secret-for-tests";

async fn simulator() -> (Simulator, String) {
    let sim = Simulator::new(wecom_crypt(), SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = sim.spawn(listener).await.unwrap();
    (sim, base)
}

fn client(base: &str, store: Option<Store>, metrics: Arc<Metrics>) -> WecomClient {
    WecomClient::new(
        base,
        CORP_ID,
        SECRET,
        store,
        metrics,
        Arc::new(SystemClock),
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(5),
            timeout: Duration::from_secs(2),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn token_is_fetched_once_and_reused() {
    let (sim, base) = simulator().await;
    let c = Arc::new(client(&base, None, Arc::new(Metrics::new())));
    // Twenty concurrent calls, one gettoken: the refresh is single-flight.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.account_list().await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(sim.gettoken_calls(), 1);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_retried() {
    let (sim, base) = simulator().await;
    let metrics = Arc::new(Metrics::new());
    let c = client(&base, None, metrics.clone());
    c.account_list().await.unwrap();
    sim.expire_tokens();
    let v = c.servicer_list("wk1").await.unwrap();
    assert_eq!(v["servicer_list"][0]["userid"], "agent01");
    assert_eq!(sim.gettoken_calls(), 2);
    let m = metrics.encode();
    assert_eq!(
        metric(
            &m,
            "kefu_wecom_calls_total{api=\"kf/servicer/list\",outcome=\"errcode_42001\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "kefu_wecom_calls_total{api=\"kf/servicer/list\",outcome=\"ok\"}"
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn transient_errors_are_retried_with_backoff() {
    let (sim, base) = simulator().await;
    let c = client(&base, None, Arc::new(Metrics::new()));
    c.account_list().await.unwrap();
    sim.inject(Faults {
        busy: 1,
        rate_limited: 1,
        drop: 1,
        ..Default::default()
    });
    c.account_list()
        .await
        .expect("succeeds after busy, rate limit and a dropped connection");

    // More failures than the budget: the error surfaces.
    sim.inject(Faults {
        busy: 10,
        ..Default::default()
    });
    let e = c.account_list().await.unwrap_err();
    assert_eq!(e.code(), Some(-1));
}

#[tokio::test]
async fn permanent_errors_are_not_retried_and_secrets_stay_out_of_errors() {
    let (sim, base) = simulator().await;
    let metrics = Arc::new(Metrics::new());
    let c = client(&base, None, metrics.clone());
    // 0 -> 4 is not a legal session transition.
    let e = c
        .service_state_trans("wk1", "wm1", 4, "")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(95016));
    let m = metrics.encode();
    assert_eq!(
        metric(
            &m,
            "kefu_wecom_calls_total{api=\"kf/service_state/trans\",outcome=\"errcode_95016\"}"
        ),
        1.0
    );

    // Wrong secret: a configuration error, reported without the secret or a token.
    let bad = WecomClient::new(
        &base,
        CORP_ID,
        "wrong-secret",
        None,
        metrics,
        Arc::new(SystemClock),
        RetryPolicy::default(),
    )
    .unwrap();
    let e = bad.account_list().await.unwrap_err();
    assert_eq!(e.code(), Some(40001));
    assert!(!e.to_string().contains("wrong-secret"));
    assert_eq!(sim.gettoken_calls(), 1, "only the good client got a token");
}

#[tokio::test]
async fn kf_calls_have_the_documented_shapes() {
    let (sim, base) = simulator().await;
    let c = client(&base, None, Arc::new(Metrics::new()));
    sim.add_customer("wmVIP", "李四", &[("客户等级", "VIP")]);
    sim.add_customer("wmPlain", "张三", &[]);
    for i in 0..5 {
        sim.shopper_writes("wkShop", "wmVIP", &format!("消息{i}"), now_secs() - 10 + i);
    }
    let page = c.sync_msg("wkShop", None, Some("tok"), 2).await.unwrap();
    assert_eq!(page["has_more"], 1);
    assert_eq!(page["msg_list"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = c.sync_msg("wkShop", Some(&cursor), None, 10).await.unwrap();
    assert_eq!(rest["has_more"], 0);
    assert_eq!(rest["msg_list"][0]["text"]["content"], "消息2");

    let customers = c.customer_batchget(&["wmVIP", "wmNobody"]).await.unwrap();
    assert_eq!(customers["customer_list"][0]["nickname"], "李四");
    assert_eq!(customers["invalid_external_userid"][0], "wmNobody");
    let contact = c.externalcontact_get("wmVIP").await.unwrap();
    assert_eq!(contact["follow_user"][0]["tags"][0]["tag_name"], "VIP");
    assert_eq!(
        c.externalcontact_get("wmPlain").await.unwrap_err().code(),
        Some(84061)
    );

    c.service_state_trans("wkShop", "wmVIP", 1, "")
        .await
        .unwrap();
    let st = c.service_state_get("wkShop", "wmVIP").await.unwrap();
    assert_eq!(st["service_state"], 1);
    let sent = c
        .send_msg(&serde_json::json!({"touser": "wmVIP", "open_kfid": "wkShop", "msgid": "out1", "msgtype": "text", "text": {"content": "您好"}}))
        .await
        .unwrap();
    assert_eq!(sent["msgid"], "out1");
    assert_eq!(sim.sent().len(), 1);
    c.webhook_send(
        "robot-key",
        &serde_json::json!({"msgtype": "text", "text": {"content": "SLA"}}),
    )
    .await
    .unwrap();
    assert_eq!(sim.webhooks().len(), 1);
}

/// WeCom's rules for `send_msg`: only while the session is new (0) or with the bot (1), at
/// most 5 messages after each shopper message, within 48 hours; an ended session starts
/// again when the shopper writes.
#[tokio::test]
async fn the_simulator_enforces_the_send_rules() {
    let (sim, base) = simulator().await;
    let c = client(&base, None, Arc::new(Metrics::new()));
    let text = |to: &str| serde_json::json!({"touser": to, "open_kfid": "wkShop", "msgtype": "text", "text": {"content": "您好"}});
    // Nobody has written: nothing may be sent.
    assert_eq!(
        c.send_msg(&text("wmQuiet")).await.unwrap_err().code(),
        Some(95001)
    );

    sim.shopper_writes("wkShop", "wmA", "在吗", now_secs());
    for _ in 0..5 {
        c.send_msg(&text("wmA")).await.unwrap();
    }
    assert_eq!(sim.quota_left("wkShop", "wmA"), 0);
    assert_eq!(
        c.send_msg(&text("wmA")).await.unwrap_err().code(),
        Some(95001)
    );
    // Writing again restarts the quota.
    sim.shopper_writes("wkShop", "wmA", "还在吗", now_secs());
    assert_eq!(sim.quota_left("wkShop", "wmA"), 5);
    c.send_msg(&text("wmA")).await.unwrap();

    // A message two days old leaves no window.
    sim.shopper_writes("wkShop", "wmOld", "在吗", now_secs() - 49 * 3600);
    assert_eq!(
        c.send_msg(&text("wmOld")).await.unwrap_err().code(),
        Some(95001)
    );

    // In the pending pool (2), with an agent (3) or ended (4): 95018.
    sim.shopper_writes("wkShop", "wmB", "人工", now_secs());
    c.service_state_trans("wkShop", "wmB", 2, "").await.unwrap();
    assert_eq!(
        c.send_msg(&text("wmB")).await.unwrap_err().code(),
        Some(95018)
    );
    c.service_state_trans("wkShop", "wmB", 3, "agent01")
        .await
        .unwrap();
    assert_eq!(
        c.send_msg(&text("wmB")).await.unwrap_err().code(),
        Some(95018)
    );
    c.service_state_trans("wkShop", "wmB", 4, "").await.unwrap();
    assert_eq!(
        c.send_msg(&text("wmB")).await.unwrap_err().code(),
        Some(95018)
    );
    // An ended session cannot be moved; the shopper writing again makes it new.
    assert_eq!(
        c.service_state_trans("wkShop", "wmB", 1, "")
            .await
            .unwrap_err()
            .code(),
        Some(95016)
    );
    sim.shopper_writes("wkShop", "wmB", "又是我", now_secs());
    assert_eq!(sim.session_state("wkShop", "wmB"), 0);
    c.send_msg(&text("wmB")).await.unwrap();
    assert_eq!(sim.refused().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_one_token() {
    let (sim, base) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(Db::Postgres, dir.path()).await;
    let mut tasks = Vec::new();
    // Three "replicas", each with its own client and pool, calling at once.
    for _ in 0..3 {
        let store = Store::connect(&url).await.unwrap();
        let c = Arc::new(client(&base, Some(store), Arc::new(Metrics::new())));
        for _ in 0..5 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move { c.account_list().await.unwrap() }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(sim.gettoken_calls(), 1, "one gettoken for all replicas");

    // After expiry, again exactly one refresh across replicas.
    sim.expire_tokens();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let store = Store::connect(&url).await.unwrap();
        let c = Arc::new(client(&base, Some(store), Arc::new(Metrics::new())));
        tasks.push(tokio::spawn(async move { c.account_list().await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(sim.gettoken_calls(), 2);
}

#[tokio::test]
async fn answers_slower_than_the_timeout_fail_as_network_errors() {
    let (sim, base) = simulator().await;
    let metrics = Arc::new(Metrics::new());
    let c = WecomClient::new(
        &base,
        CORP_ID,
        SECRET,
        None,
        metrics.clone(),
        Arc::new(SystemClock),
        RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(5),
            timeout: Duration::from_millis(100),
        },
    )
    .unwrap();
    sim.inject(Faults {
        slow: Duration::from_millis(400),
        ..Default::default()
    });
    let e = c.account_list().await.unwrap_err();
    assert!(e.to_string().contains("network error: timeout"), "{e}");
    assert_eq!(
        metric(
            &metrics.encode(),
            "kefu_wecom_calls_total{api=\"gettoken\",outcome=\"network\"}"
        ),
        2.0
    );
    sim.inject(Faults::default());
    c.account_list()
        .await
        .expect("fine once WeCom is fast again");
}

/// An API base that answers with a redirect: the client does not follow it, so the corp
/// secret and tokens in the URL never reach the place it points to.
#[tokio::test]
async fn redirects_are_not_followed() {
    use axum::http::{header, StatusCode};
    use std::sync::atomic::{AtomicU64, Ordering};
    let reached = Arc::new(AtomicU64::new(0));
    let target = {
        let reached = reached.clone();
        axum::Router::new().fallback(move || {
            reached.fetch_add(1, Ordering::SeqCst);
            async { "{\"errcode\":0,\"access_token\":\"stolen\",\"expires_in\":7200}" }
        })
    };
    let target_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(target_listener, target).await });
    let redirecting = axum::Router::new().fallback(move |uri: axum::http::Uri| async move {
        (
            StatusCode::FOUND,
            [(header::LOCATION, format!("http://{target_addr}{uri}"))],
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirecting).await });

    let metrics = Arc::new(Metrics::new());
    let c = client(&base, None, metrics);
    let e = c.access_token(None).await.unwrap_err();
    assert!(e.to_string().contains("302"), "{e}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}
