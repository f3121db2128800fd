//! Tickets end to end: a shopper writes through the simulated WeCom, kefu opens a ticket,
//! routes it to an agent, and the agent works it through the JSON API (console mode) or in
//! the WeCom app (wecom mode), down to the satisfaction rating.

use super::*;
use kefu::tickets::routing::Agent;
use kefu::tickets::ReplyMode;

pub(super) fn agent(id: &str, groups: &[&str], senior: bool) -> Agent {
    Agent::new(id, id, groups, senior)
}

pub(super) async fn start_mode(db: Db, mode: ReplyMode, agents: Vec<Agent>) -> Kf {
    start_configured(db, None, None, true, move |c| {
        c.tickets.agents_reply_in = mode;
        c.tickets.agents = agents;
    })
    .await
}

impl Kf {
    /// A JSON API call with the admin token: (status, body).
    pub(super) async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = self.app.url(path);
        let req = match method {
            "GET" => self.app.http.get(url),
            _ => self.app.http.post(url),
        }
        .bearer_auth(ADMIN_TOKEN);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(super) async fn ticket_of(&self, who: &str) -> Option<Value> {
        let (status, body) = self
            .api("GET", &format!("/api/tickets?customer={who}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["tickets"].as_array()?.first().cloned()
    }

    /// Wait until the customer's ticket satisfies `check`; returns it.
    pub(super) async fn ticket_until(
        &self,
        who: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            if let Some(t) = self.ticket_of(who).await {
                if check(&t) {
                    return t;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    pub(super) async fn deliver(&self, msgid: &str) {
        let statuses = self
            .sim
            .notify(&self.callback(), KFID, &format!("ENC{msgid}"))
            .await;
        assert_eq!(statuses, [200]);
    }
}

on_both_stores!(
    in_console_mode_an_agent_answers_a_complaint_from_kefu_and_the_shopper_rates_it,
    in_wecom_mode_the_session_moves_to_the_agent_whose_replies_count,
);

async fn in_console_mode_an_agent_answers_a_complaint_from_kefu_and_the_shopper_rates_it(db: Db) {
    let kf = start_mode(
        db,
        ReplyMode::Console,
        vec![agent("li", &["service", "aftersale"], true)],
    )
    .await;
    kf.says("wmAngry", "你们这质量太差了，我要投诉！").await;
    // A ticket, routed to the only agent; the shopper hears a person is coming, and the
    // session stays with the API (state 1), where kefu can still write.
    let t = kf
        .ticket_until("wmAngry", "the ticket to be assigned", |t| {
            t["status"] == "assigned"
        })
        .await;
    assert_eq!(t["assignee"], "li");
    assert_eq!(t["intent"], "complaint");
    assert_eq!(t["group"], "service");
    assert!(
        t["first_response_due"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z')),
        "{t}"
    );
    kf.until("the acknowledgement", |k| {
        k.sent_to("wmAngry")
            .iter()
            .any(|b| text_of(b) == "收到啦，客服马上来")
    })
    .await;
    kf.until("the session to be with the API (state 1)", |k| {
        k.sim.session_state(KFID, "wmAngry") == 1
    })
    .await;
    let id = t["id"].as_str().unwrap().to_string();

    // Refusals change nothing: an unknown ticket, a forbidden move, a bad field.
    let (status, _) = kf.api("POST", "/api/tickets/nope/resolve", None).await;
    assert_eq!(status, 404);
    let (status, body) = kf
        .api("POST", &format!("/api/tickets/{id}/reopen"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["status"], "assigned", "{body}");
    let (status, body) = kf
        .api(
            "POST",
            &format!("/api/tickets/{id}/assign"),
            Some(json!({"agent": "ghost"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "agent");
    let (status, body) = kf.api("GET", "/api/tickets?priority=soon", None).await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "priority");
    assert_eq!(kf.ticket_of("wmAngry").await.unwrap()["status"], "assigned");

    // Agents change at runtime; fields left out keep their values.
    let (status, body) = kf
        .api(
            "POST",
            "/api/agents",
            Some(json!({"servicer_userid": "li", "capacity": 3})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"], json!(["service", "aftersale"]));
    assert_eq!(body["on_duty"], true);
    let (status, _) = kf
        .api(
            "POST",
            "/api/agents",
            Some(json!({"servicer_userid": "zhao", "groups": ["service"], "on_duty": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = kf
        .api(
            "POST",
            "/api/agents",
            Some(json!({"servicer_userid": "x", "groups": ["nope"]})),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("groups")));
    // An agent off duty is not given the ticket by hand unless forced.
    let (status, body) = kf
        .api(
            "POST",
            &format!("/api/tickets/{id}/assign"),
            Some(json!({"agent": "zhao"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("off duty"),
        "{body}"
    );
    let (_, agents) = kf.api("GET", "/api/agents", None).await;
    let li = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["servicer_userid"] == "li")
        .unwrap()
        .clone();
    assert_eq!(
        (li["capacity"].as_i64(), li["load"].as_i64()),
        (Some(3), Some(1))
    );
    // A reply is sent by an agent.
    let (status, body) = kf
        .api(
            "POST",
            &format!("/api/tickets/{id}/reply"),
            Some(json!({"text": "您好"})),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("actor")));

    // The agent answers from the console: through the outbox to kf/send_msg.
    let (status, body) = kf
        .api(
            "POST",
            &format!("/api/tickets/{id}/reply"),
            Some(json!({"actor": "li", "text": "非常抱歉，我马上为您处理"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["quota_left"], 3,
        "acknowledgement and reply used 2 of 5"
    );
    kf.until("the agent's reply", |k| {
        k.sent_to("wmAngry")
            .iter()
            .any(|b| text_of(b) == "非常抱歉，我马上为您处理")
    })
    .await;
    let t = kf.ticket_of("wmAngry").await.unwrap();
    assert!(
        t["first_response_at"].is_string(),
        "the first response is on record: {t}"
    );
    // Someone takes the chat in the WeCom app behind kefu's back: WeCom refuses the next
    // reply (95018), and the agent reads why on the ticket.
    kf.sim.set_session(KFID, "wmAngry", 3);
    let (status, _) = kf
        .api(
            "POST",
            &format!("/api/tickets/{id}/reply"),
            Some(json!({"actor": "li", "text": "还在吗"})),
        )
        .await;
    assert_eq!(status, 200, "queued: kefu could not know");
    let started = Instant::now();
    loop {
        let (_, shown) = kf.api("GET", &format!("/api/tickets/{id}"), None).await;
        let failed = shown["history"].as_array().unwrap().iter().any(|h| {
            h["kind"] == "reply_failed"
                && h["detail"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("95018"))
        });
        if failed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no reply_failed: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    kf.sim.set_session(KFID, "wmAngry", 1);

    // Resolved: the shopper gets the survey and rates once.
    let (status, body) = kf
        .api(
            "POST",
            &format!("/api/tickets/{id}/resolve"),
            Some(json!({"actor": "li"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "resolved");
    kf.until("the survey", |k| {
        k.sent_to("wmAngry")
            .iter()
            .any(|b| b["msgtype"] == "msgmenu")
    })
    .await;
    let survey = kf
        .sent_to("wmAngry")
        .into_iter()
        .find(|b| b["msgtype"] == "msgmenu")
        .unwrap();
    let items = survey["msgmenu"]["list"].as_array().unwrap();
    let good = items
        .iter()
        .find(|i| i["click"]["content"] == "满意")
        .unwrap()["click"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = items
        .iter()
        .find(|i| i["click"]["content"] == "不满意")
        .unwrap()["click"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let click = kf
        .sim
        .shopper_clicks(KFID, "wmAngry", &good, "满意", now_secs());
    kf.deliver(&click).await;
    let again = kf
        .sim
        .shopper_clicks(KFID, "wmAngry", &bad, "不满意", now_secs());
    kf.deliver(&again).await;
    // The callback only says there is something new: wait until kefu has pulled both.
    let started = Instant::now();
    loop {
        let pulled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kf_messages WHERE msgid = $1")
            .bind(&again)
            .fetch_one(kf.app.state.store.pool())
            .await
            .unwrap();
        if pulled == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the clicks were not pulled"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (_, shown) = kf.api("GET", &format!("/api/tickets/{id}"), None).await;
    assert_eq!(
        shown["csat"], "good",
        "the first rating counts, once: {shown}"
    );
    assert_eq!(
        shown["status"], "resolved",
        "a rating does not reopen the ticket"
    );
    let history: Vec<(String, String)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["kind"].as_str().unwrap().to_string(),
                h["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let kinds: Vec<&str> = history.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "queued",
            "assigned",
            "replied",
            "replied",
            "reply_failed",
            "resolved",
            "csat"
        ],
        "{history:?}"
    );
    assert!(history.contains(&("replied".into(), "li".into())));
    assert!(history.contains(&("assigned".into(), "kefu".into())));
    // The messages of the ticket: the shopper's, then the agent's.
    let authors: Vec<&str> = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["author"].as_str().unwrap())
        .collect();
    assert_eq!(authors, ["customer", "agent", "agent"]);
    let refused: Vec<i64> = kf.sim.refused().iter().map(|(_, code)| *code).collect();
    assert_eq!(refused, [95018], "only the reply sent behind kefu's back");
}

async fn in_wecom_mode_the_session_moves_to_the_agent_whose_replies_count(db: Db) {
    let kf = start_mode(
        db,
        ReplyMode::Wecom,
        vec![agent("wang", &["aftersale"], false)],
    )
    .await;
    kf.says("wmBroken", "收到的杯子碎了，怎么办").await;
    let t = kf
        .ticket_until("wmBroken", "the ticket to be assigned", |t| {
            t["status"] == "assigned"
        })
        .await;
    assert_eq!(t["assignee"], "wang");
    // The session goes to the agent in WeCom (state 3).
    kf.until("the session to move to the agent", |k| {
        k.sim.session_state(KFID, "wmBroken") == 3
    })
    .await;
    // The agent answers in the WeCom app: it counts as the first response.
    let reply = kf
        .sim
        .agent_writes(KFID, "wmBroken", "wang", "您好，请拍照给我看看", now_secs());
    kf.deliver(&reply).await;
    let t = kf
        .ticket_until("wmBroken", "the agent's reply on record", |t| {
            t["first_response_at"].is_string()
        })
        .await;
    assert_eq!(t["status"], "assigned");
    // The agent ends the session: the ticket is resolved and the survey goes out with the
    // event's code.
    let code = kf.sim.agent_ends(KFID, "wmBroken", "wang", now_secs());
    let ended = kf.sim.push_raw(
        KFID,
        json!({"origin": 4, "msgtype": "event", "send_time": now_secs(),
        "event": {"event_type": "noop"}}),
    );
    kf.deliver(&ended).await;
    kf.ticket_until("wmBroken", "the ticket to be resolved", |t| {
        t["status"] == "resolved"
    })
    .await;
    kf.until("the survey on the end-of-session code", |k| {
        k.sim.sent().iter().any(|s| {
            s.api == "send_msg_on_event"
                && s.body["code"] == code.as_str()
                && s.body["msgtype"] == "msgmenu"
        })
    })
    .await;
    assert!(kf.sim.refused().is_empty(), "{:?}", kf.sim.refused());
}
