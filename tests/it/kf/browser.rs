//! The console in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver), against kefu and the simulated WeCom, as agents and supervisors use it.
//! Every test saves a screenshot of each view it passes through in
//! `target/browser-artifacts/`; the live-latency test writes its figures there too.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use kefu::console::{self, NewUser, Role};
use kefu::tickets::ReplyMode;

use super::tickets::{agent, start_mode};
use super::*;

const PASSWORD: &str = "browser-test-password";

/// A chromedriver process on a port of its own, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin} ({e}): the browser tests need Chromium and chromedriver (tests/setup.sh installs them)")
        });
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A fresh headless Chromium window (its own profile, so its own cookies).
async fn browser(d: &Driver) -> Client {
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1440,900", "--lang=zh-CN"],
        },
    });
    let caps = caps.as_object().unwrap().clone();
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a WebDriver session")
}

fn artifact(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifact(&format!("{name}.png")), png).unwrap();
}

async fn add_user(kf: &Kf, name: &str, role: Role, servicer: Option<&str>, groups: &[&str]) {
    console::add_user(
        &kf.app.state.store,
        NewUser {
            name: name.into(),
            role,
            servicer_userid: servicer.map(str::to_string),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            password: PASSWORD.into(),
        },
        kf.app.state.clock.now_ms(),
    )
    .await
    .unwrap();
}

/// Log in through the login page; the workspace opens.
async fn login(c: &Client, kf: &Kf, name: &str) {
    c.goto(&kf.app.url("/console/login")).await.unwrap();
    c.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    click(c, "form.login button").await;
    element(c, "#workspace").await;
    // The live feed is connected (its `hello` arrived).
    until_js(
        c,
        "return document.querySelector('#live.on') !== null",
        "the live feed",
    )
    .await;
}

async fn element(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
}

/// Wait until `script` (a function body returning a boolean) is true in the page.
async fn until_js(c: &Client, script: &str, what: &str) {
    let started = Instant::now();
    loop {
        if c.execute(script, vec![]).await.unwrap() == Value::Bool(true) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The recorded outcome of each suggestion shown for a ticket, by slot.
async fn outcomes(kf: &Kf, ticket: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT slot, outcome FROM suggestions WHERE ticket_id = $1 ORDER BY slot")
        .bind(ticket)
        .fetch_all(kf.app.state.store.pool())
        .await
        .unwrap()
}

/// Click the element `css` names.
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} to click: {e}"))
        .click()
        .await
        .unwrap();
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Press one key, as a person does, wherever the focus is.
async fn press(c: &Client, key: char) {
    c.perform_actions(
        KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key }),
    )
    .await
    .unwrap();
}

/// Open the first ticket of the queue by clicking it; returns its id.
async fn open_first_ticket(c: &Client) -> String {
    let started = Instant::now();
    loop {
        // The live queue may redraw between finding the link and clicking it: find it again.
        let link = element(c, "#queue a[data-open]").await;
        if let Ok(Some(id)) = link.attr("data-open").await {
            if link.click().await.is_ok() {
                element(c, &format!("#ticket[data-ticket='{id}']")).await;
                return id;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "cannot open a ticket"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn setup(agents: &[(&str, &[&str])]) -> Kf {
    let kf = start_mode(
        Db::Sqlite,
        ReplyMode::Console,
        agents
            .iter()
            .map(|(id, groups)| agent(id, groups, false))
            .collect(),
    )
    .await;
    for (id, groups) in agents {
        add_user(&kf, id, Role::Agent, Some(id), groups).await;
    }
    kf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_the_ticket_arrive_and_sends_suggestion_two_with_the_keyboard() {
    let kf = setup(&[("li", &["aftersale", "service"])]).await;
    let d = driver().await;
    let c = browser(&d).await;
    login(&c, &kf, "li").await;
    shot(&c, "agent-queue-empty").await;

    kf.says("wmCup", "收到的杯子是碎的，怎么办").await;
    // The ticket appears in the open page: no reload.
    js(&c, "window.__sameDocument = true; return true").await;
    let id = open_first_ticket(&c).await;
    assert_eq!(js(&c, "return window.__sameDocument === true").await, true);
    shot(&c, "agent-ticket").await;

    let second = element(&c, ".suggestion[data-slot='2'] .text").await;
    let text = second.text().await.unwrap();
    assert!(!text.is_empty());
    press(&c, '2').await;
    let typed = js(&c, "return document.getElementById('reply-text').value").await;
    assert_eq!(
        typed,
        Value::String(text.clone()),
        "key 2 picks suggestion 2"
    );
    shot(&c, "agent-suggestion-picked").await;
    press(&c, char::from(Key::Enter)).await;

    kf.until(
        "the suggestion to reach the shopper through send_msg",
        |k| k.sent_to("wmCup").iter().any(|b| text_of(b) == text),
    )
    .await;
    until_js(
        &c,
        "return document.querySelector('#messages li.from-agent') !== null",
        "the agent's reply in the chat",
    )
    .await;
    shot(&c, "agent-replied").await;

    // Recorded: suggestion 2 accepted as is.
    let rows = outcomes(&kf, &id).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (slot, outcome) in rows {
        // The other two were passed over, not judged.
        let expected = if slot == 2 { "accepted" } else { "passed" };
        assert_eq!(outcome, expected, "slot {slot}");
    }
    let reply_id: Option<String> = sqlx::query_scalar(
        "SELECT reply_id FROM ticket_messages WHERE ticket_id = $1 AND author = 'agent'",
    )
    .bind(&id)
    .fetch_one(kf.app.state.store.pool())
    .await
    .unwrap();
    assert!(
        reply_id.is_some(),
        "the message remembers its library reply"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_who_edits_a_suggestion_into_a_blocked_term_is_stopped_with_the_reason() {
    let kf = setup(&[("li", &["aftersale", "service"])]).await;
    let d = driver().await;
    let c = browser(&d).await;
    login(&c, &kf, "li").await;
    kf.says("wmCup", "收到的杯子是碎的，怎么办").await;
    open_first_ticket(&c).await;
    element(&c, ".suggestion[data-slot='1']").await;
    kf.until("the acknowledgement", |k| k.sent_to("wmCup").len() == 1)
        .await;
    let sent_before = kf.sent_to("wmCup").len();

    press(&c, '1').await;
    let area = c.find(Locator::Css("#reply-text")).await.unwrap();
    area.send_keys("，退款太慢的话加我微信私下转账")
        .await
        .unwrap();
    press(&c, char::from(Key::Enter)).await;
    until_js(
        &c,
        "return document.querySelector('#reply-error.blocked')?.textContent.length > 0",
        "the refusal",
    )
    .await;
    let reason = c
        .find(Locator::Css("#reply-error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(reason.contains("Not sent"), "{reason}");
    assert!(
        reason.contains("私下转账") || reason.contains("加我微信"),
        "the term is named: {reason}"
    );
    assert!(
        reason.contains("站外交易") || reason.contains("导流站外"),
        "the category is named: {reason}"
    );
    // The agent's text stays for them to fix; nothing went out.
    let kept = js(&c, "return document.getElementById('reply-text').value").await;
    assert!(kept.as_str().unwrap().contains("私下转账"));
    shot(&c, "agent-blocked-term").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kf.sent_to("wmCup").len(), sent_before);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_reassigns_a_ticket_and_the_other_agent_sees_it_without_reloading() {
    let kf = setup(&[
        ("li", &["aftersale", "service"]),
        ("zhang", &["presale", "order"]),
    ])
    .await;
    add_user(&kf, "lead", Role::Supervisor, None, &[]).await;
    kf.says("wmCup", "收到的杯子是碎的，怎么办").await;
    let t = kf
        .ticket_until("wmCup", "the ticket to go to li", |t| t["assignee"] == "li")
        .await;
    let id = t["id"].as_str().unwrap().to_string();

    let d = driver().await;
    let zhang = browser(&d).await;
    login(&zhang, &kf, "zhang").await;
    element(&zhang, "#queue tr.empty").await;
    js(&zhang, "window.__sameDocument = true; return true").await;
    shot(&zhang, "agent-before-reassignment").await;

    let lead = browser(&d).await;
    login(&lead, &kf, "lead").await;
    element(&lead, &format!("#queue tr[data-ticket='{id}']")).await;
    shot(&lead, "supervisor-queues").await;
    click(&lead, &format!("input[name=ticket][value='{id}']")).await;
    click(&lead, "#bulk-action option[value=assign]").await;
    click(&lead, "#bulk-agent option[value=zhang]").await;
    click(&lead, "#bulk-go").await;
    element(&lead, "#workspace").await;
    shot(&lead, "supervisor-after-reassignment").await;

    // Zhang's open page shows it, live.
    let row = element(&zhang, &format!("#queue tr[data-ticket='{id}']")).await;
    assert!(row.text().await.unwrap().contains("zhang"));
    assert_eq!(
        js(&zhang, "return window.__sameDocument === true").await,
        true,
        "the page was not reloaded"
    );
    shot(&zhang, "agent-after-reassignment").await;
    assert_eq!(kf.ticket_of("wmCup").await.unwrap()["assignee"], "zhang");

    // The supervisor's other views: agents with their load, and the dashboard.
    lead.goto(&kf.app.url("/console/agents")).await.unwrap();
    let agents = element(&lead, "table.agents").await.text().await.unwrap();
    assert!(
        agents.contains("zhang") && agents.contains("1 / "),
        "{agents}"
    );
    shot(&lead, "supervisor-agents").await;
    lead.goto(&kf.app.url("/console/dashboard")).await.unwrap();
    element(&lead, "svg").await;
    shot(&lead, "supervisor-dashboard").await;
    // An agent is refused the supervisor's pages.
    zhang.goto(&kf.app.url("/console/dashboard")).await.unwrap();
    let refused = element(&zhang, "body").await.text().await.unwrap();
    assert!(refused.contains("supervisors only"), "{refused}");
    zhang.close().await.unwrap();
    lead.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_open_or_answer_another_groups_ticket() {
    let kf = setup(&[
        ("li", &["aftersale", "service"]),
        ("zhang", &["presale", "order"]),
    ])
    .await;
    kf.says("wmCup", "收到的杯子是碎的，怎么办").await;
    let t = kf
        .ticket_until("wmCup", "the ticket to go to li", |t| t["assignee"] == "li")
        .await;
    let id = t["id"].as_str().unwrap().to_string();
    // The acknowledgement goes out on its own, perhaps after the ticket is assigned.
    kf.until("the acknowledgement", |k| k.sent_to("wmCup").len() == 1)
        .await;
    let sent_before = kf.sent_to("wmCup").len();

    let d = driver().await;
    let c = browser(&d).await;
    login(&c, &kf, "zhang").await;
    element(&c, "#queue tr.empty").await;
    // The ticket's page, asked for by address: refused.
    c.goto(&kf.app.url(&format!("/console/tickets/{id}")))
        .await
        .unwrap();
    let body = c
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("neither yours"), "{body}");
    shot(&c, "agent-forbidden-ticket").await;
    // A reply and a supervisor's action sent from the agent's own page: 403, nothing changes.
    c.goto(&kf.app.url("/console/")).await.unwrap();
    element(&c, "#workspace").await;
    let statuses = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('meta[name=csrf-token]').content;
             const post = (url, body) => fetch(url, {method: 'POST', headers: {'X-CSRF-Token': csrf},
                 body: new URLSearchParams(body)}).then(r => r.status);
             Promise.all([
               post(arguments[0], {text: '您好，我来处理'}),
               post('/console/bulk', {ticket: arguments[1], action: 'close'}),
               fetch(arguments[2]).then(r => r.status),
             ]).then(done);",
            vec![
                json!(format!("/console/tickets/{id}/reply")),
                json!(id),
                json!(format!("/console/fragments/tickets/{id}")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(statuses, json!([403, 403, 403]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(kf.sent_to("wmCup").len(), sent_before);
    let t = kf.ticket_of("wmCup").await.unwrap();
    assert_eq!(
        (t["assignee"].as_str(), t["status"].as_str()),
        (Some("li"), Some("assigned"))
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_image_and_link_messages_stay_inert_text() {
    let kf = setup(&[("li", &["aftersale", "service"])]).await;
    kf.says("wmXss", "收到的杯子是碎的，怎么办").await;
    let messages = [
        "<script>window.__xss = 1</script>",
        "<img src=x onerror=\"window.__xss = 2\">",
        "<a href=\"javascript:window.__xss = 3\">查看订单</a>",
    ];
    for m in messages {
        kf.says("wmXss", m).await;
    }
    kf.ticket_until("wmXss", "the ticket", |t| t["assignee"] == "li")
        .await;
    let d = driver().await;
    let c = browser(&d).await;
    login(&c, &kf, "li").await;
    open_first_ticket(&c).await;
    until_js(
        &c,
        "return document.querySelectorAll('#messages li.from-customer').length >= 3",
        "the three messages",
    )
    .await;
    shot(&c, "agent-xss-inert").await;
    let shown: Vec<String> = serde_json::from_value(
        js(
            &c,
            "return [...document.querySelectorAll('#messages li.from-customer .content')].map(e => e.textContent)",
        )
        .await,
    )
    .unwrap();
    for m in messages {
        assert!(
            shown.iter().any(|s| s == m),
            "{m} is shown as text: {shown:?}"
        );
    }
    // Clicking the "link" text does nothing either.
    c.find(Locator::XPath("//p[contains(., '查看订单')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = js(
        &c,
        "return [window.__xss === undefined,
                 document.querySelectorAll('#messages img, #messages script, #messages a').length]",
    )
    .await;
    assert_eq!(state, json!([true, 0]));
    c.close().await.unwrap();
}

/// A shopper's message reaching the agent's open page with its suggestions, over the event
/// stream: the figure for BENCHMARKS.md (printed and saved, not asserted on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_messages_reach_the_open_page_with_suggestions() {
    let kf = setup(&[("li", &["aftersale", "service", "logistics"])]).await;
    kf.says("wmLive", "收到的杯子是碎的，怎么办").await;
    kf.ticket_until("wmLive", "the ticket", |t| t["assignee"] == "li")
        .await;
    let d = driver().await;
    let c = browser(&d).await;
    login(&c, &kf, "li").await;
    open_first_ticket(&c).await;
    // Each message's arrival time in the page: when it is in the chat and the suggestions
    // for it are shown.
    js(
        &c,
        "window.__seen = {};
         new MutationObserver(() => {
           const t = document.getElementById('ticket');
           const last = [...document.querySelectorAll('#messages li.from-customer .content')].pop();
           if (t && last && document.querySelector('.suggestion') && !(last.textContent in window.__seen)) {
             window.__seen[last.textContent] = Date.now();
           }
         }).observe(document.getElementById('panel'), {childList: true, subtree: true});
         return true",
    )
    .await;
    let texts = [
        "快递到哪了",
        "什么时候发货",
        "能退款吗",
        "杯子还是碎的",
        "运费谁出",
        "换一个新的可以吗",
        "多久能到",
        "我要退货",
        "退款进度",
        "怎么联系快递",
        "发票怎么开",
        "可以改地址吗",
        "还没收到货",
        "包装也坏了",
        "图片发你了",
        "今天能处理吗",
        "有赠品吗",
        "能补发吗",
        "等了好久了",
        "质量太差了",
    ];
    let mut latencies = Vec::new();
    for (i, base) in texts.iter().enumerate() {
        let text = format!("{base}（{i}）");
        let sent_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        kf.says("wmLive", &text).await;
        let check = format!("return window.__seen[{}] !== undefined", json!(text));
        until_js(&c, &check, &format!("message {text} in the page")).await;
        let seen = js(&c, &format!("return window.__seen[{}]", json!(text)))
            .await
            .as_i64()
            .unwrap();
        latencies.push(seen - sent_ms);
    }
    latencies.sort_unstable();
    let p = |q: f64| latencies[((q * latencies.len() as f64).ceil() as usize).saturating_sub(1)];
    let report = format!(
        "shopper message -> agent's open page with suggestions, {} messages: p50 {} ms, p95 {} ms, max {} ms\n",
        latencies.len(),
        p(0.5),
        p(0.95),
        latencies[latencies.len() - 1]
    );
    eprint!("{report}");
    std::fs::write(artifact("live-latency.txt"), report).unwrap();
    shot(&c, "agent-live-chat").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_wecom_mode_the_page_offers_suggestions_to_copy_and_marks_the_agents_reply() {
    let kf = start_mode(
        Db::Sqlite,
        ReplyMode::Wecom,
        vec![agent("li", &["aftersale", "service"], false)],
    )
    .await;
    add_user(
        &kf,
        "li",
        Role::Agent,
        Some("li"),
        &["aftersale", "service"],
    )
    .await;
    kf.says("wmCup", "收到的杯子是碎的，怎么办").await;
    let t = kf
        .ticket_until("wmCup", "the ticket to go to li", |t| t["assignee"] == "li")
        .await;
    let id = t["id"].as_str().unwrap().to_string();
    let d = driver().await;
    let c = browser(&d).await;
    login(&c, &kf, "li").await;
    open_first_ticket(&c).await;
    // Suggestions to copy; no reply box: the agent answers in the WeCom app.
    let first = element(&c, ".suggestion[data-slot='1'] .text").await;
    let text = first.text().await.unwrap();
    element(&c, ".suggestion[data-slot='1'] button[data-action=copy]").await;
    assert!(c.find(Locator::Css("#reply-text")).await.is_err());
    shot(&c, "agent-wecom-mode").await;

    // The agent pastes suggestion 1 into WeCom: the reply appears, and it counts as accepted.
    let msgid = kf.sim.agent_writes(KFID, "wmCup", "li", &text, now_secs());
    kf.deliver(&msgid).await;
    until_js(
        &c,
        "return document.querySelector('#messages li.from-agent') !== null
            && document.querySelector(\".suggestion[data-slot='1'].outcome-accepted\") !== null",
        "the agent's WeCom reply, marked as suggestion 1",
    )
    .await;
    shot(&c, "agent-wecom-mode-replied").await;
    let outcomes = outcomes(&kf, &id).await;
    assert_eq!(outcomes[0], (1, "accepted".to_string()), "{outcomes:?}");
    assert!(
        outcomes[1..].iter().all(|(_, o)| o == "passed"),
        "{outcomes:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warned_term_asks_the_agent_to_confirm_and_the_keys_move_and_resolve() {
    let kf = start_configured(Db::Sqlite, None, None, true, |c| {
        c.tickets.agents_reply_in = ReplyMode::Console;
        c.tickets.agents = vec![agent("li", &["aftersale", "service"], false)];
        c.console.compliance_warn = vec!["absolute_claims".into()];
    })
    .await;
    add_user(
        &kf,
        "li",
        Role::Agent,
        Some("li"),
        &["aftersale", "service"],
    )
    .await;
    kf.says("wmCup", "收到的杯子是碎的，怎么办").await;
    kf.ticket_until("wmCup", "the ticket to go to li", |t| t["assignee"] == "li")
        .await;
    let d = driver().await;
    let c = browser(&d).await;
    login(&c, &kf, "li").await;
    element(&c, "#queue a[data-open]").await;
    // J opens the first ticket of the queue.
    press(&c, 'j').await;
    element(&c, "#ticket").await;
    let area = element(&c, "#reply-text").await;
    area.send_keys("给您换全网最好的一款").await.unwrap();
    press(&c, char::from(Key::Enter)).await;
    until_js(
        &c,
        "return document.querySelector('#reply-error.warning button') !== null",
        "the warning with its confirm button",
    )
    .await;
    let warning = element(&c, "#reply-error").await.text().await.unwrap();
    assert!(
        warning.contains("最好") && warning.contains("absolute_claims"),
        "{warning}"
    );
    shot(&c, "agent-warned-term").await;
    assert!(kf
        .sent_to("wmCup")
        .iter()
        .all(|b| !text_of(b).contains("全网最好")));
    click(&c, "#reply-error button").await;
    kf.until("the confirmed reply to reach the shopper", |k| {
        k.sent_to("wmCup")
            .iter()
            .any(|b| text_of(b) == "给您换全网最好的一款")
    })
    .await;
    // R resolves the open ticket (focus out of the reply box first, as a person would).
    until_js(
        &c,
        "return document.querySelector('#messages li.from-agent') !== null",
        "the reply in the chat",
    )
    .await;
    js(&c, "document.activeElement.blur(); return true").await;
    press(&c, 'r').await;
    kf.ticket_until("wmCup", "the ticket to be resolved", |t| {
        t["status"] == "resolved"
    })
    .await;
    c.close().await.unwrap();
}
