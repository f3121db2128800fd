//! WeCom Customer Service end to end through the simulator: a shopper writes, WeCom calls
//! back, kefu pulls, decides and answers through the outbox — on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use kefu::simulate::Simulator;
use serde_json::{json, Value};

mod browser;
mod replicas;
mod tickets;

const KFID: &str = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q";
const SECRET: &str = "kf-secret";
/// The supervisors' group robot.
const ROBOT: &str = "robot-key-supervisors";

struct Kf {
    app: TestApp,
    sim: Simulator,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn simulator() -> (Simulator, String) {
    let sim = Simulator::new(wecom_crypt(), SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = sim.spawn(listener).await.unwrap();
    (sim, base)
}

/// kefu with the simulator as WeCom; agents answer in WeCom and, with no agents configured
/// in kefu, WeCom's pending pool hands chats out.
async fn start_with(
    db: Db,
    url: Option<String>,
    wecom: Option<(Simulator, String)>,
    workers: bool,
) -> Kf {
    start_configured(db, url, wecom, workers, |c| {
        c.tickets.agents_reply_in = kefu::tickets::ReplyMode::Wecom;
    })
    .await
}

/// kefu with the simulator as WeCom, its configuration changed by `edit`.
async fn start_configured(
    db: Db,
    url: Option<String>,
    wecom: Option<(Simulator, String)>,
    workers: bool,
    edit: impl FnOnce(&mut kefu::config::Config) + Send + 'static,
) -> Kf {
    let (sim, base) = match wecom {
        Some(w) => w,
        None => simulator().await,
    };
    let app = TestApp::start_with(db, move |c| {
        let wecom = c.wecom.as_mut().expect("[wecom] configured");
        wecom.secret = Some(SECRET.into());
        wecom.api_base = base.trim_end_matches('/').to_owned();
        wecom.alert_webhook_key = Some(ROBOT.into());
        if let Some(url) = url {
            c.database_url = url;
        }
        edit(c);
    })
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if workers {
        app.state
            .kf
            .as_ref()
            .expect("kf configured")
            .spawn_workers(Duration::from_secs(3600), stopped);
    }
    Kf {
        app,
        sim,
        _stop: stop,
    }
}

async fn start(db: Db) -> Kf {
    start_with(db, None, None, true).await
}

impl Kf {
    fn callback(&self) -> String {
        self.app.url("/wecom/callback")
    }

    async fn says(&self, who: &str, text: &str) -> String {
        let msgid = self.sim.shopper_writes(KFID, who, text, now_secs());
        let statuses = self
            .sim
            .notify(&self.callback(), KFID, &format!("ENC{msgid}"))
            .await;
        assert_eq!(statuses, [200]);
        msgid
    }

    fn sent_to(&self, who: &str) -> Vec<Value> {
        self.sim
            .sent()
            .into_iter()
            .filter(|s| s.api == "send_msg" && s.body["touser"] == who)
            .map(|s| s.body)
            .collect()
    }

    async fn until(&self, what: &str, mut check: impl FnMut(&Kf) -> bool) {
        let started = Instant::now();
        while !check(self) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn status_of(&self, msgid: &str) -> String {
        sqlx::query_scalar("SELECT status FROM kf_messages WHERE msgid = $1")
            .bind(msgid)
            .fetch_one(self.app.state.store.pool())
            .await
            .unwrap()
    }
}

fn text_of(body: &Value) -> String {
    body["text"]["content"]
        .as_str()
        .or_else(|| body["msgmenu"]["head_content"].as_str())
        .unwrap_or("")
        .to_string()
}

on_both_stores!(
    a_confident_question_is_answered_once_even_when_the_callback_repeats,
    a_complaint_is_acknowledged_and_handed_to_the_pending_pool,
    the_bot_stays_quiet_while_an_agent_holds_the_session,
    a_crash_between_pull_and_send_sends_exactly_once,
    an_expired_token_is_refreshed_and_the_answer_still_goes_out,
);

async fn a_confident_question_is_answered_once_even_when_the_callback_repeats(db: Db) {
    let kf = start(db).await;
    kf.sim.add_customer("wmLi", "李四", &[]);
    let msgid = kf.says("wmLi", "我的快递到哪了？").await;
    kf.until("the answer", |k| k.sent_to("wmLi").len() == 1)
        .await;
    let answer = &kf.sent_to("wmLi")[0];
    assert!(
        text_of(answer).contains("李四您好"),
        "nickname from kf/customer/batchget: {answer}"
    );
    assert!(text_of(answer).contains("物流"), "{answer}");
    // The reply defines a follow-up menu, so it goes out as msgmenu.
    assert_eq!(answer["msgtype"], "msgmenu");
    assert_eq!(kf.status_of(&msgid).await, "answered");

    // WeCom repeats the same callback (same Token): recorded once, nothing sent again.
    let statuses = kf
        .sim
        .notify(&kf.callback(), KFID, &format!("ENC{msgid}"))
        .await;
    assert_eq!(statuses, [200]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    kf.app.state.kf.as_ref().unwrap().send_due().await.unwrap();
    assert_eq!(kf.sent_to("wmLi").len(), 1);
    assert_eq!(kf.app.count("wecom").await, 1);

    // A click on the menu comes back as text with menu_id, answered with that reply.
    let menu_item = answer["msgmenu"]["list"][0]["click"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let clicked = kf.sim.push_raw(
        KFID,
        json!({"external_userid": "wmLi", "send_time": now_secs(), "origin": 3, "msgtype": "text",
               "text": {"content": "物流不更新怎么办", "menu_id": menu_item}}),
    );
    kf.sim.notify(&kf.callback(), KFID, "ENCclick").await;
    kf.until("the menu answer", |k| k.sent_to("wmLi").len() == 2)
        .await;
    let reply_id: String = sqlx::query_scalar("SELECT reply_id FROM kf_messages WHERE msgid = $1")
        .bind(&clicked)
        .fetch_one(kf.app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(reply_id, menu_item);
}

async fn a_complaint_is_acknowledged_and_handed_to_the_pending_pool(db: Db) {
    let kf = start(db).await;
    let msgid = kf.says("wmAngry", "你们太过分了，我要投诉！").await;
    kf.until("the acknowledgement", |k| k.sent_to("wmAngry").len() == 1)
        .await;
    assert_eq!(text_of(&kf.sent_to("wmAngry")[0]), "收到啦，客服马上来");
    kf.until("the transfer", |k| {
        k.sim.session_state(KFID, "wmAngry") == 2
    })
    .await;
    assert_eq!(kf.status_of(&msgid).await, "unresolved");
    let intent: String = sqlx::query_scalar("SELECT intent FROM kf_messages WHERE msgid = $1")
        .bind(&msgid)
        .fetch_one(kf.app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(intent, "complaint");
}

async fn the_bot_stays_quiet_while_an_agent_holds_the_session(db: Db) {
    let kf = start(db).await;
    // An agent takes the session from the pool: WeCom reports it as an event.
    kf.sim.agent_takes(KFID, "wmHeld", "agent01");
    kf.sim.push_raw(
        KFID,
        json!({"send_time": now_secs(), "origin": 4, "msgtype": "event",
               "event": {"event_type": "session_status_change", "open_kfid": KFID, "external_userid": "wmHeld",
                         "change_type": 1, "old_servicer_userid": "", "new_servicer_userid": "agent01", "msg_code": "mc"}}),
    );
    let msgid = kf.says("wmHeld", "我的快递到哪了").await;
    kf.until("the pull", |_| true).await;
    let started = Instant::now();
    loop {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM kf_messages WHERE msgid = $1")
                .bind(&msgid)
                .fetch_optional(kf.app.state.store.pool())
                .await
                .unwrap();
        if let Some(s) = status {
            assert_eq!(s, "agent");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kf.app.state.kf.as_ref().unwrap().send_due().await.unwrap();
    assert!(
        kf.sent_to("wmHeld").is_empty(),
        "no bot answer while a person holds the session"
    );
}

async fn a_crash_between_pull_and_send_sends_exactly_once(db: Db) {
    // First process: pulls and commits the answer to the outbox, then stops before sending.
    let (sim, base) = simulator().await;
    let first = start_with(db, None, Some((sim.clone(), base.clone())), false).await;
    let url: String = first.app.state.config.database_url.clone();
    let msgid = sim.shopper_writes(KFID, "wmCrash", "退款多久到账", now_secs());
    first
        .app
        .state
        .kf
        .as_ref()
        .unwrap()
        .pull(KFID, Some("ENCx"))
        .await
        .unwrap();
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
        .fetch_one(first.app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(pending, 1);
    assert!(sim.sent().is_empty());
    // `first` sends nothing from here on (it has no outbox worker); it is kept only because
    // its temporary folder holds the SQLite file the second process opens.

    // Second process on the same store and the same WeCom: sends it once, and never again.
    let second = start_with(db, Some(url), Some((sim.clone(), base)), true).await;
    second
        .until("the answer after restart", |k| {
            k.sent_to("wmCrash").len() == 1
        })
        .await;
    let svc = second.app.state.kf.as_ref().unwrap().clone();
    for _ in 0..3 {
        svc.send_due().await.unwrap();
        svc.pull(KFID, None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(second.sent_to("wmCrash").len(), 1, "sent exactly once");
    assert_eq!(second.status_of(&msgid).await, "answered");
    let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
        .fetch_one(second.app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(sent, 1);
}

async fn an_expired_token_is_refreshed_and_the_answer_still_goes_out(db: Db) {
    let kf = start(db).await;
    kf.says("wmTok", "可以开发票吗").await;
    kf.until("first answer", |k| k.sent_to("wmTok").len() == 1)
        .await;
    kf.sim.expire_tokens();
    kf.says("wmTok", "发票抬头写错了能重开吗").await;
    kf.until("second answer", |k| k.sent_to("wmTok").len() == 2)
        .await;
    assert_eq!(kf.sim.gettoken_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vip_customers_get_the_vip_wording_and_newcomers_a_welcome() {
    let kf = start(Db::Sqlite).await;
    kf.sim
        .add_customer("wmVip", "王女士", &[("客户等级", "VIP")]);
    kf.says("wmVip", "满多少包邮啊").await;
    kf.until("the VIP answer", |k| k.sent_to("wmVip").len() == 1)
        .await;
    assert!(
        text_of(&kf.sent_to("wmVip")[0]).contains("VIP会员"),
        "{}",
        kf.sent_to("wmVip")[0]
    );

    let code = kf.sim.shopper_enters(KFID, "wmNew", now_secs());
    kf.sim.notify(&kf.callback(), KFID, "ENCenter").await;
    kf.until("the welcome", |k| {
        k.sim.sent().iter().any(|s| s.api == "send_msg_on_event")
    })
    .await;
    let welcome = kf
        .sim
        .sent()
        .into_iter()
        .find(|s| s.api == "send_msg_on_event")
        .unwrap()
        .body;
    assert_eq!(welcome["code"], code);
    assert_eq!(welcome["msgtype"], "msgmenu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_history_is_recorded_but_never_answered_by_the_bot() {
    let kf = start(Db::Sqlite).await;
    let old = kf
        .sim
        .shopper_writes(KFID, "wmOld", "我的快递到哪了", now_secs() - 2 * 24 * 3600);
    kf.sim.notify(&kf.callback(), KFID, "ENCold").await;
    let started = Instant::now();
    while kf.app.state.store.pool().is_closed() || {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kf_messages")
            .fetch_one(kf.app.state.store.pool())
            .await
            .unwrap();
        n == 0
    } {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        kf.status_of(&old).await,
        "unresolved",
        "an old message is for a person"
    );
    kf.app.state.kf.as_ref().unwrap().send_due().await.unwrap();
    assert!(kf.sent_to("wmOld").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_messages_refused_for_good_are_listed_for_supervisors() {
    let kf = start_with(Db::Sqlite, None, None, false).await;
    let svc = kf.app.state.kf.as_ref().unwrap().clone();
    kf.sim
        .shopper_writes(KFID, "wmEnded", "我的快递到哪了", now_secs());
    svc.pull(KFID, Some("ENCe")).await.unwrap();
    // The session ended on WeCom's side before we answered: send_msg is refused (95018),
    // a permanent error, so it is not retried blindly.
    kf.sim.set_session(KFID, "wmEnded", 4);
    svc.send_due().await.unwrap();
    assert!(kf.sent_to("wmEnded").is_empty());
    let v: Value = kf
        .app
        .http
        .get(kf.app.url("/api/outbox/failed"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{v}");
    assert!(
        failed[0]["last_error"].as_str().unwrap().contains("95018"),
        "{v}"
    );
    assert_eq!(failed[0]["payload"]["touser"], "wmEnded");

    // Supervisors' group robot is told once, with whom and why but not the message text.
    svc.send_due().await.unwrap();
    let alerts = kf.sim.webhooks();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let text = alerts[0]["markdown"]["content"].as_str().unwrap();
    assert!(text.contains("1 条消息发送失败"), "{text}");
    assert!(text.contains("wmEnded") && text.contains("95018"), "{text}");
    assert!(
        !text.contains("快递"),
        "the shop's answer is not copied into the alert: {text}"
    );
    svc.send_due().await.unwrap();
    assert_eq!(kf.sim.webhooks().len(), 1, "one alert per failure");
}

/// WeCom is busy when the acknowledgement goes out: it waits for its retry, and the move to
/// the pending pool written after it waits too, so the shopper still hears it.
/// The callback for a brand-new kf account was lost, so kefu has no cursor for it: the
/// safety-net poller still finds the account in WeCom's account list and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_finds_an_account_whose_first_pull_never_happened() {
    let kf = start_with(Db::Sqlite, None, None, false).await;
    let svc = kf.app.state.kf.as_ref().unwrap().clone();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let _workers = svc.spawn_workers(Duration::from_millis(200), stopped);
    kf.sim
        .shopper_writes(KFID, "wmFirst", "我的快递到哪了？", now_secs());
    kf.until("the poller's answer", |k| k.sent_to("wmFirst").len() == 1)
        .await;
}

/// A row another replica is sending is not reset by a replica that starts; once that
/// sender's lease has run out (it died, or could not record the result), any sender takes
/// the row again and it goes out once. A row taken back as often as it may be tried fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_row_is_left_to_its_sender_until_its_lease_runs_out() {
    let kf = start_with(Db::Sqlite, None, None, false).await;
    let svc = kf.app.state.kf.as_ref().unwrap().clone();
    let pool = kf.app.state.store.pool().clone();
    kf.sim
        .shopper_writes(KFID, "wmLease", "我的快递到哪了？", now_secs());
    svc.pull(KFID, Some("ENCl")).await.unwrap();
    // Another replica claimed the answer a moment ago and is still sending it.
    sqlx::query("UPDATE outbox SET status = 'sending', attempts = 1, lease_until = $1")
        .bind((now_secs() + 60) * 1000)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(svc.recover().await.unwrap(), 0, "a live lease is not reset");
    svc.send_due().await.unwrap();
    assert!(kf.sent_to("wmLease").is_empty(), "nor taken over");

    // That replica is gone: past its lease the row is taken again, and sent once.
    kf.app.clock.set_secs(now_secs() + 121);
    svc.send_due().await.unwrap();
    svc.send_due().await.unwrap();
    assert_eq!(kf.sent_to("wmLease").len(), 1);
    let status: String = sqlx::query_scalar("SELECT status FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "sent");

    // A row whose senders kept vanishing stops being tried once its attempts are spent.
    kf.sim
        .shopper_writes(KFID, "wmLost", "我的快递到哪了？", now_secs());
    svc.pull(KFID, Some("ENCl2")).await.unwrap();
    sqlx::query("UPDATE outbox SET status = 'sending', attempts = 6, lease_until = 0 WHERE status = 'pending'")
        .execute(&pool)
        .await
        .unwrap();
    svc.send_due().await.unwrap();
    assert!(kf.sent_to("wmLost").is_empty());
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM outbox WHERE payload LIKE '%wmLost%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(error.contains("no outcome recorded"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_acknowledgement_holds_back_the_move_to_the_pending_pool() {
    let kf = start_with(Db::Sqlite, None, None, false).await;
    let svc = kf.app.state.kf.as_ref().unwrap().clone();
    kf.sim
        .shopper_writes(KFID, "wmWait", "你们太过分了，我要投诉！", now_secs());
    svc.pull(KFID, Some("ENCw")).await.unwrap();
    // Busy for every attempt the client makes of this one call.
    kf.sim.inject(kefu::simulate::Faults {
        busy: 5,
        ..Default::default()
    });
    svc.send_due().await.unwrap();
    assert!(kf.sent_to("wmWait").is_empty());
    assert_eq!(
        kf.sim.session_state(KFID, "wmWait"),
        0,
        "the move to the pool waits behind the acknowledgement"
    );
    // Nothing more goes out until the acknowledgement's retry is due, a second later.
    svc.send_due().await.unwrap();
    assert_eq!(kf.sim.session_state(KFID, "wmWait"), 0);
    kf.app.clock.set_secs(now_secs() + 2);
    svc.send_due().await.unwrap();
    assert_eq!(kf.sent_to("wmWait").len(), 1);
    assert_eq!(kf.sim.session_state(KFID, "wmWait"), 2);
    assert!(kf.sim.refused().is_empty(), "{:?}", kf.sim.refused());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recalled_message_is_not_answered_and_a_failed_delivery_is_recorded() {
    let kf = start_with(Db::Sqlite, None, None, false).await;
    let svc = kf.app.state.kf.as_ref().unwrap().clone();
    // The shopper asks, then recalls it before the answer went out.
    let asked = kf
        .sim
        .shopper_writes(KFID, "wmRecall", "我的快递到哪了", now_secs());
    svc.pull(KFID, Some("ENCr1")).await.unwrap();
    kf.sim.push_raw(
        KFID,
        json!({"send_time": now_secs(), "origin": 4, "msgtype": "event",
               "event": {"event_type": "user_recall_msg", "open_kfid": KFID, "external_userid": "wmRecall", "recall_msgid": asked}}),
    );
    svc.pull(KFID, Some("ENCr2")).await.unwrap();
    svc.send_due().await.unwrap();
    assert!(
        kf.sent_to("wmRecall").is_empty(),
        "no answer to a recalled message"
    );
    assert_eq!(kf.status_of(&asked).await, "recalled");

    // An answer that was sent but not delivered: WeCom reports msg_send_fail.
    kf.sim
        .shopper_writes(KFID, "wmFail", "可以开发票吗", now_secs());
    svc.pull(KFID, Some("ENCf1")).await.unwrap();
    svc.send_due().await.unwrap();
    let sent = kf.sent_to("wmFail");
    assert_eq!(sent.len(), 1);
    let out_id = sent[0]["msgid"].as_str().unwrap().to_string();
    kf.sim.push_raw(
        KFID,
        json!({"send_time": now_secs(), "origin": 4, "msgtype": "event",
               "event": {"event_type": "msg_send_fail", "open_kfid": KFID, "external_userid": "wmFail", "fail_msgid": out_id, "fail_type": 13}}),
    );
    svc.pull(KFID, Some("ENCf2")).await.unwrap();
    let (status, err): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM outbox WHERE id = $1")
            .bind(&out_id)
            .fetch_one(kf.app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(err.contains("fail_type 13"), "{err}");
    svc.send_due().await.unwrap();
    let alerts = kf.sim.webhooks();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let text = alerts[0]["markdown"]["content"].as_str().unwrap();
    assert!(text.contains("未送达") && text.contains("wmFail"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_are_told_when_every_agent_is_off_duty() {
    let kf = start_with(Db::Sqlite, None, None, false).await;
    let svc = kf.app.state.kf.as_ref().unwrap().clone();
    let ask = |who: &'static str| {
        let kf = &kf;
        let svc = svc.clone();
        async move {
            kf.sim.shopper_writes(KFID, who, "我要投诉你们", now_secs());
            svc.pull(KFID, None).await.unwrap();
            svc.send_due().await.unwrap();
            let sent = kf.sent_to(who);
            assert_eq!(sent.len(), 1, "one acknowledgement to {who}");
            text_of(&sent[0])
        }
    };
    // Nothing known about the agents: the usual acknowledgement.
    assert_eq!(ask("wmA").await, "收到啦，客服马上来");

    // Both agents of the account go off duty: shoppers are told nobody is there right now.
    kf.sim
        .servicer_status(KFID, "agent_zhang", false, now_secs());
    kf.sim
        .servicer_status(KFID, "agent_wang", false, now_secs());
    svc.pull(KFID, None).await.unwrap();
    assert_eq!(ask("wmB").await, kefu::config::DEFAULT_OFFLINE_ACK_TEXT);

    // One comes back on duty: the usual acknowledgement again.
    kf.sim.servicer_status(KFID, "agent_wang", true, now_secs());
    svc.pull(KFID, None).await.unwrap();
    assert_eq!(ask("wmC").await, "收到啦，客服马上来");
    let on_duty: Vec<String> = sqlx::query_scalar(
        "SELECT servicer_userid FROM kf_servicers WHERE open_kfid = $1 AND status = 1",
    )
    .bind(KFID)
    .fetch_all(kf.app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(on_duty, ["agent_wang"]);
}

#[tokio::test]
async fn the_simulator_retries_a_callback_kefu_did_not_take() {
    use std::sync::atomic::{AtomicU32, Ordering};
    // A callback endpoint that fails its first delivery, like kefu with its store down.
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move || {
            let h = h.clone();
            async move {
                if h.fetch_add(1, Ordering::SeqCst) == 0 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (sim, _) = simulator().await;
    let statuses = sim
        .notify(&format!("http://{addr}/cb"), KFID, "ENCretry")
        .await;
    assert_eq!(statuses, [503, 200]);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// Pull locks are per kf account and forgotten once no pull holds or waits for them: the map
/// does not grow with every account ever named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_locks_are_forgotten_after_the_pull() {
    let kf = start_with(Db::Sqlite, None, None, false).await;
    let service = kf.app.state.kf.clone().expect("kf configured");
    let pulls: Vec<_> = (0..20)
        .map(|i| {
            let s = service.clone();
            tokio::spawn(async move { s.pull(format!("wkAccount{}", i % 5), None).await })
        })
        .collect();
    for p in pulls {
        p.await.unwrap().unwrap();
    }
    assert_eq!(service.pull_locks_held().await, 0);
}

/// One pull takes at most `max_pages` pages; a larger backlog comes with the next pull, from
/// the saved cursor, and nothing is lost or taken twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_stops_at_its_page_cap_and_the_next_one_goes_on() {
    let kf = start_with(Db::Sqlite, None, None, false).await;
    let service = kf.app.state.kf.clone().expect("kf configured");
    service.set_paging(kefu::channel::kf::Paging {
        page_size: 10,
        max_pages: 3,
    });
    for i in 0..45 {
        kf.sim
            .shopper_writes(KFID, &format!("wmBacklog{i}"), "在吗", now_secs());
    }
    let first = service.pull(KFID, None).await.unwrap();
    assert_eq!(
        (first.pages, first.new_messages, first.capped),
        (3, 30, true)
    );
    let second = service.pull(KFID, None).await.unwrap();
    assert_eq!(
        (second.pages, second.new_messages, second.capped),
        (2, 15, false)
    );
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kf_messages")
        .fetch_one(kf.app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 45);
}

/// While WeCom is slow to answer `sync_msg`, a pull holds no database connection: on
/// PostgreSQL every connection of the pool can still be taken (callbacks need them), and
/// the pull then records its page as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_holds_no_connection_while_wecom_is_slow() {
    let kf = start_with(Db::Postgres, None, None, false).await;
    let service = kf.app.state.kf.clone().expect("kf configured");
    // A first pull fetches the access token (its fetch is single-flight across replicas,
    // through the store, once every two hours).
    service.pull(KFID, None).await.unwrap();
    kf.sim
        .shopper_writes(KFID, "wmSlow", "退货地址是哪里", now_secs());
    kf.sim.inject(kefu::simulate::Faults {
        slow: Duration::from_millis(1500),
        ..Default::default()
    });
    let pull = tokio::spawn(async move { service.pull(KFID, None).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pool = kf.app.state.store.pool().clone();
    let max = pool.options().get_max_connections() as usize;
    let mut held = Vec::new();
    for _ in 0..max {
        match tokio::time::timeout(Duration::from_millis(500), pool.acquire()).await {
            Ok(Ok(c)) => held.push(c),
            _ => break,
        }
    }
    assert_eq!(
        held.len(),
        max,
        "a connection was held across the call to WeCom"
    );
    drop(held);
    kf.sim.inject(kefu::simulate::Faults::default());
    let report = pull.await.unwrap().unwrap();
    assert_eq!(report.new_messages, 1, "{report:?}");
    assert_eq!(kf.status_of_any("wmSlow").await.len(), 1);
}

impl Kf {
    /// The statuses of a shopper's recorded messages.
    async fn status_of_any(&self, who: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT status FROM kf_messages WHERE external_userid = $1")
            .bind(who)
            .fetch_all(self.app.state.store.pool())
            .await
            .unwrap()
    }
}
