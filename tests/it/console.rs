//! The console's accounts and safety, over HTTP as a browser would use it: login and
//! logout, the generic login error, the rate limit, CSRF and cross-site refusals, idle and
//! absolute expiry, disabled users, who may see which ticket, and inert customer text.

use std::collections::HashMap;

use kefu::console::{self, NewUser, Role};
use kefu::crm::{CustomerTier, Standing};
use kefu::tickets::store::{self as ticket_store, TicketMessage};
use kefu::tickets::{Action, Incoming, OpenReason, Ticket};

use crate::common::*;

const PASSWORD: &str = "correct horse battery";
const CSP: &str = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'";

/// A browser: its own cookie jar, redirects not followed (tests look at them).
struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The value of the hidden `csrf` field of the page's form.
    fn csrf(&self) -> String {
        let start = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_string()
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let r = req
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let page = Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: String::new(),
        };
        for c in page.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            body: r.text().await.unwrap(),
            ..page
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(self.app.url(path));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut req = self.http.post(self.app.url(path)).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// Open the login page and submit it.
    async fn login(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200);
        let csrf = form.csrf();
        self.post(
            "/console/login",
            &[("name", name), ("password", password), ("csrf", &csrf)],
            &[],
        )
        .await
    }
}

async fn add_user(app: &TestApp, name: &str, role: Role, servicer: Option<&str>, groups: &[&str]) {
    console::add_user(
        &app.state.store,
        NewUser {
            name: name.into(),
            role,
            servicer_userid: servicer.map(str::to_string),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            password: PASSWORD.into(),
        },
        app.clock_ms(),
    )
    .await
    .unwrap();
}

trait ClockMs {
    fn clock_ms(&self) -> i64;
}

impl ClockMs for TestApp {
    fn clock_ms(&self) -> i64 {
        use kefu::clock::Clock;
        self.clock.now_ms()
    }
}

/// A ticket of `intent` opened by a shopper's message `content`.
async fn open_ticket(app: &TestApp, customer: &str, intent: &str, content: &str) -> Ticket {
    let standing = Standing {
        tier: CustomerTier::Normal,
        reasons: vec!["no orders on record".into()],
        raise_priority: false,
    };
    let mut tx = app.state.store.pool().begin().await.unwrap();
    let t = app
        .state
        .tickets
        .open(
            &mut tx,
            &Incoming {
                channel: "kf",
                account: "wk1",
                external_userid: customer,
                customer_name: None,
                msgid: &format!("m-{customer}"),
                content,
                intent,
                confidence: Some(0.3),
                at_ms: app.clock_ms(),
                standing: &standing,
            },
            OpenReason::Handoff,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    t
}

async fn login_logout_and_one_error_for_every_bad_login(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "li", Role::Agent, Some("li"), &["aftersale"]).await;
    add_user(&app, "zhao", Role::Agent, Some("zhao"), &["presale"]).await;
    console::disable_user(&app.state.store, "zhao", app.clock_ms())
        .await
        .unwrap();
    let mut b = Browser::new(&app);

    // Not logged in: the console sends you to the login page.
    let p = b.get("/console/").await;
    assert_eq!((p.status, p.header("location")), (303, "/console/login"));

    // A wrong password, an unknown name and a disabled account look the same.
    let mut bodies = Vec::new();
    for (name, password) in [
        ("li", "wrong password!"),
        ("nobody", PASSWORD),
        ("zhao", PASSWORD),
    ] {
        let p = b.login(name, password).await;
        assert_eq!(p.status, 401, "{name}");
        assert!(p.body.contains("Wrong name or password."), "{}", p.body);
        assert!(!b.cookies.contains_key("kefu_session"));
        bodies.push(
            p.body
                .replace(&p.csrf(), "")
                .replace(&format!("value=\"{name}\""), ""),
        );
    }
    assert_eq!(
        bodies[0], bodies[1],
        "unknown name answers like a wrong password"
    );
    assert_eq!(
        bodies[0], bodies[2],
        "a disabled account answers like a wrong password"
    );
    let m = app.metrics().await;
    for reason in ["bad_password", "unknown_user", "disabled"] {
        assert_eq!(
            metric(
                &m,
                &format!("kefu_console_login_failures_total{{reason=\"{reason}\"}}")
            ),
            1.0,
            "{m}"
        );
    }

    let p = b.login("li", PASSWORD).await;
    assert_eq!((p.status, p.header("location")), (303, "/console/"));
    let cookie = p
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("kefu_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http without public_url: {cookie}"
    );
    let token = b.cookies["kefu_session"].clone();
    // Only a hash of the token is stored.
    let stored: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM console_sessions")
        .fetch_all(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].0, token);

    let home = b.get("/console/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("li (agent: aftersale)"), "{}", home.body);

    // Logout needs the session's CSRF token: without it nothing happens.
    let p = b.post("/console/logout", &[], &[]).await;
    assert_eq!(p.status, 403);
    assert_eq!(b.get("/console/").await.status, 200, "still logged in");
    let p = b
        .post("/console/logout", &[("csrf", &home.csrf())], &[])
        .await;
    assert_eq!((p.status, p.header("location")), (303, "/console/login"));
    // The old cookie opens nothing any more, even replayed.
    b.cookies.insert("kefu_session".into(), token);
    assert_eq!(b.get("/console/").await.status, 303);
}

async fn failed_logins_are_rate_limited_per_account_and_address(db: Db) {
    let app = TestApp::start_with(db, |c| c.console.login_failures_per_address = 8).await;
    add_user(&app, "li", Role::Agent, Some("li"), &["aftersale"]).await;
    add_user(&app, "wang", Role::Agent, Some("wang"), &["presale"]).await;
    let mut b = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(b.login("li", "not the password").await.status, 401);
    }
    // The sixth try is refused before the password is looked at, even the right one.
    let p = b.login("li", PASSWORD).await;
    assert_eq!(p.status, 429, "{}", p.body);
    let retry: i64 = p.header("retry-after").parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(p.body.contains("Too many failed logins"), "{}", p.body);
    assert!(!b.cookies.contains_key("kefu_session"));
    // Another account from the same address is not locked yet ...
    assert_eq!(b.login("wang", PASSWORD).await.status, 303);
    let mut b = Browser::new(&app);
    // ... until the address has had its 8 failures.
    for _ in 0..3 {
        assert_eq!(b.login("wang", "not the password").await.status, 401);
    }
    assert_eq!(b.login("wang", PASSWORD).await.status, 429);
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "kefu_console_login_failures_total{reason=\"rate_limited\"}"
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "kefu_console_login_failures_total{reason=\"bad_password\"}"
        ),
        8.0,
        "{m}"
    );
    // Fifteen minutes later the window has passed.
    app.clock.set_secs(now_secs() + 15 * 60 + 1);
    assert_eq!(b.login("li", PASSWORD).await.status, 303);
}

async fn csrf_and_cross_site_requests_are_refused(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "li", Role::Agent, Some("li"), &["aftersale"]).await;
    let mut b = Browser::new(&app);

    // The login form's own token: a login without it (or with another) is refused.
    let form = b.get("/console/login").await;
    let p = b
        .post(
            "/console/login",
            &[("name", "li"), ("password", PASSWORD), ("csrf", "forged")],
            &[],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(!b.cookies.contains_key("kefu_session"));
    // A cross-site login attempt, right token and all.
    let form2 = b.get("/console/login").await;
    let p = b
        .post(
            "/console/login",
            &[
                ("name", "li"),
                ("password", PASSWORD),
                ("csrf", &form2.csrf()),
            ],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(!b.cookies.contains_key("kefu_session"));
    drop(form);

    // Logged in, from kefu's own origin (what a browser sends).
    let own = format!("http://{}", app.addr);
    let form = b.get("/console/login").await;
    let p = b
        .post(
            "/console/login",
            &[
                ("name", "li"),
                ("password", PASSWORD),
                ("csrf", &form.csrf()),
            ],
            &[("origin", &own), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(p.status, 303);
    let home = b.get("/console/").await;
    let csrf = home.csrf();

    // Logout is the state-changing request here: each refusal leaves the session alive.
    for (form, headers) in [
        (vec![("csrf", "wrong")], vec![]),
        (vec![], vec![("x-csrf-token", "wrong")]),
        (
            vec![("csrf", csrf.as_str())],
            vec![("origin", "https://evil.example")],
        ),
        (vec![("csrf", csrf.as_str())], vec![("origin", "null")]),
        (
            vec![("csrf", csrf.as_str())],
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            vec![("csrf", csrf.as_str())],
            vec![("sec-fetch-site", "same-site")],
        ),
    ] {
        let p = b.post("/console/logout", &form, &headers).await;
        assert_eq!(p.status, 403, "{form:?} {headers:?}");
        assert_eq!(b.get("/console/").await.status, 200, "{form:?} {headers:?}");
    }
    // The header form of the token, as fetch calls send it, from our own origin.
    let p = b
        .post(
            "/console/logout",
            &[],
            &[("x-csrf-token", csrf.as_str()), ("origin", &own)],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(b.get("/console/").await.status, 303);
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "kefu_console_login_failures_total{reason=\"bad_csrf\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "kefu_console_login_failures_total{reason=\"cross_site\"}"
        ),
        1.0
    );
}

async fn sessions_end_when_idle_too_long_or_too_old_or_disabled(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "li", Role::Agent, Some("li"), &["aftersale"]).await;
    add_user(&app, "boss", Role::Supervisor, None, &[]).await;
    let t0 = now_secs();
    app.clock.set_secs(t0);
    let mut li = Browser::new(&app);
    assert_eq!(li.login("li", PASSWORD).await.status, 303);
    // Each request restarts the 8-hour idle clock ...
    for hours in [7, 14, 21] {
        app.clock.set_secs(t0 + hours * 3600);
        assert_eq!(li.get("/console/").await.status, 200, "after {hours} h");
    }
    // ... but a session lasts 24 hours at most.
    app.clock.set_secs(t0 + 24 * 3600 + 1);
    assert_eq!(li.get("/console/").await.status, 303);

    assert_eq!(li.login("li", PASSWORD).await.status, 303);
    app.clock.set_secs(t0 + 24 * 3600 + 8 * 3600 - 10);
    assert_eq!(li.get("/console/").await.status, 200, "idle just under 8 h");
    app.clock.set_secs(t0 + 24 * 3600 + 16 * 3600);
    assert_eq!(li.get("/console/").await.status, 303, "idle 8 h");

    // Disabling a user ends their open session at once.
    let mut boss = Browser::new(&app);
    assert_eq!(boss.login("boss", PASSWORD).await.status, 303);
    assert_eq!(boss.get("/console/agents").await.status, 200);
    console::disable_user(&app.state.store, "boss", app.clock_ms())
        .await
        .unwrap();
    let p = boss.get("/console/agents").await;
    assert_eq!((p.status, p.header("location")), (303, "/console/login"));
    assert_eq!(boss.login("boss", PASSWORD).await.status, 401);
}

async fn agents_see_only_their_groups_and_own_tickets(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "li", Role::Agent, Some("li"), &["aftersale"]).await;
    add_user(&app, "wang", Role::Agent, Some("wang"), &["presale"]).await;
    add_user(&app, "boss", Role::Supervisor, None, &[]).await;
    let returns = open_ticket(&app, "c-returns", "return_request", "我要退货").await;
    let stock = open_ticket(&app, "c-stock", "stock", "什么时候补货").await;
    let (mut li, mut wang, mut boss) = (Browser::new(&app), Browser::new(&app), Browser::new(&app));
    for (b, name) in [(&mut li, "li"), (&mut wang, "wang"), (&mut boss, "boss")] {
        assert_eq!(b.login(name, PASSWORD).await.status, 303);
    }
    let page = |id: &str| format!("/console/tickets/{id}");

    let home = li.get("/console/").await;
    assert!(
        home.body.contains(&returns.id) && home.body.contains("我要退货"),
        "{}",
        home.body
    );
    assert!(
        !home.body.contains(&stock.id),
        "another group's ticket is not listed"
    );
    assert_eq!(li.get(&page(&returns.id)).await.status, 200);
    let p = li.get(&page(&stock.id)).await;
    assert_eq!(p.status, 403);
    assert!(!p.body.contains("什么时候补货"));
    assert_eq!(li.get("/console/tickets/no-such-ticket").await.status, 404);

    let home = wang.get("/console/").await;
    assert!(home.body.contains(&stock.id) && !home.body.contains(&returns.id));
    assert_eq!(wang.get(&page(&returns.id)).await.status, 403);

    // Supervisors see everything; agents may not open the supervisors' pages.
    let home = boss.get("/console/").await;
    assert!(home.body.contains(&stock.id) && home.body.contains(&returns.id));
    assert_eq!(boss.get(&page(&stock.id)).await.status, 200);
    for b in [&mut li, &mut wang] {
        let p = b.get("/console/agents").await;
        assert_eq!(p.status, 403);
        assert!(p.header("content-security-policy").starts_with(CSP));
    }
    let p = boss.get("/console/agents").await;
    assert_eq!(p.status, 200);
    assert!(boss
        .get("/console/")
        .await
        .body
        .contains("href=\"/console/agents\""));
    assert!(
        !li.get("/console/").await.body.contains("/console/agents"),
        "agents get no link"
    );
}

async fn customer_text_is_escaped_and_scripts_are_forbidden(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "li", Role::Agent, Some("li"), &["aftersale"]).await;
    let script = "<script>alert(1)</script>";
    let img = "<img src=x onerror=alert(1)>";
    let link = "<a href=\"javascript:alert(1)\">查看订单</a>";
    let t = open_ticket(&app, "c-xss", "return_request", script).await;
    for (i, content) in [img, link].into_iter().enumerate() {
        let mut conn = app.state.store.pool().acquire().await.unwrap();
        ticket_store::insert_message(
            &mut conn,
            &TicketMessage {
                id: format!("xss-{i}"),
                ticket_id: t.id.clone(),
                msgid: None,
                author: "customer".into(),
                agent: None,
                content: content.into(),
                intent: None,
                confidence: None,
                at: app.clock_ms() + 1 + i as i64,
                reply_id: None,
            },
        )
        .await
        .unwrap();
    }
    let mut li = Browser::new(&app);
    assert!(li.login("li", PASSWORD).await.status == 303);
    let home = li.get("/console/").await;
    let p = li.get(&format!("/console/tickets/{}", t.id)).await;
    assert_eq!(p.status, 200);
    for page in [&home, &p] {
        assert!(!page.body.contains(script), "{}", page.body);
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;"),
            "{}",
            page.body
        );
        assert!(page.header("content-security-policy").starts_with(CSP));
        assert!(!page
            .header("content-security-policy")
            .contains("unsafe-inline"));
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("referrer-policy"), "same-origin");
    }
    assert!(!p.body.contains("<img"), "{}", p.body);
    assert!(
        p.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        p.body
    );
    assert!(!p.body.contains("href=\"javascript:"), "{}", p.body);
    assert!(
        p.body
            .contains("&lt;a href=&quot;javascript:alert(1)&quot;&gt;"),
        "{}",
        p.body
    );
    // Nothing on the page runs inline: the one script element is the console's own file.
    let own = "<script src=\"/console/static/console.js\" defer></script>";
    assert_eq!(p.body.matches("<script").count(), 1, "{}", p.body);
    assert!(p.body.contains(own));
    // The login page is covered too.
    let login = Browser::new(&app).get("/console/login").await;
    assert!(login.header("content-security-policy").starts_with(CSP));
}

async fn cookies_are_secure_and_origin_is_public_url_under_https(db: Db) {
    let app = TestApp::start_with(db, |c| {
        c.public_url = Some("https://kefu.example.com".into());
    })
    .await;
    add_user(&app, "li", Role::Agent, Some("li"), &["aftersale"]).await;
    let mut b = Browser::new(&app);
    let form = b.get("/console/login").await;
    assert!(form.set_cookies().iter().all(|c| c.contains("; Secure")));
    // The Host header's origin is not kefu's public one.
    let own_host = format!("http://{}", app.addr);
    let p = b
        .post(
            "/console/login",
            &[
                ("name", "li"),
                ("password", PASSWORD),
                ("csrf", &form.csrf()),
            ],
            &[("origin", &own_host)],
        )
        .await;
    assert_eq!(p.status, 403);
    let form = b.get("/console/login").await;
    let p = b
        .post(
            "/console/login",
            &[
                ("name", "li"),
                ("password", PASSWORD),
                ("csrf", &form.csrf()),
            ],
            &[("origin", "https://kefu.example.com")],
        )
        .await;
    assert_eq!(p.status, 303);
    let cookie = p
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("kefu_session="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

on_both_stores!(
    an_open_event_stream_does_not_hold_up_shutdown,
    login_logout_and_one_error_for_every_bad_login,
    failed_logins_are_rate_limited_per_account_and_address,
    csrf_and_cross_site_requests_are_refused,
    sessions_end_when_idle_too_long_or_too_old_or_disabled,
    agents_see_only_their_groups_and_own_tickets,
    customer_text_is_escaped_and_scripts_are_forbidden,
    cookies_are_secure_and_origin_is_public_url_under_https,
    the_event_stream_says_hello_then_names_the_changes_each_user_may_see,
);

/// Read a server-sent event stream until an event of `kind` whose data contains `needle`,
/// for at most `within`; the events' raw text up to there, or `None`.
async fn read_event(
    resp: &mut reqwest::Response,
    kind: &str,
    needle: &str,
    within: std::time::Duration,
) -> Option<String> {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk()).await.ok()?;
        seen.push_str(&String::from_utf8_lossy(&chunk.ok()??));
        let found = seen.split("\n\n").any(|e| {
            e.lines().any(|l| l == format!("event: {kind}"))
                && e.lines()
                    .any(|l| l.starts_with("data:") && l.contains(needle))
        });
        if found {
            return Some(seen);
        }
    }
}

async fn the_event_stream_says_hello_then_names_the_changes_each_user_may_see(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "li", Role::Agent, Some("li"), &["aftersale"]).await;
    add_user(&app, "zhang", Role::Agent, Some("zhang"), &["presale"]).await;
    add_user(&app, "lead", Role::Supervisor, None, &[]).await;
    add_user(&app, "wang", Role::Agent, Some("wang"), &["aftersale"]).await;
    let t = open_ticket(&app, "c-live", "return_request", "我要退货").await;
    let mut streams = Vec::new();
    for name in ["li", "zhang", "lead", "wang"] {
        let mut b = Browser::new(&app);
        assert_eq!(b.login(name, PASSWORD).await.status, 303);
        let mut resp = b
            .http
            .get(app.url("/console/events"))
            .header("cookie", b.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        // Every (re)connection starts with hello: the page reloads what it shows.
        assert!(
            read_event(&mut resp, "hello", "{}", std::time::Duration::from_secs(5))
                .await
                .is_some(),
            "{name} gets hello"
        );
        streams.push((name, resp));
    }
    // The ticket is assigned to li: li and the supervisor hear of it, and so does wang,
    // from whose group's queue it goes; zhang (another group) does not. The event names
    // the ticket, never the customer's words.
    let mut tx = app.state.store.pool().begin().await.unwrap();
    app.state
        .tickets
        .act(&mut tx, &t, Action::Assign, "admin", Some("li"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for (name, resp) in &mut streams {
        let got = read_event(
            resp,
            "ticket",
            &t.id,
            std::time::Duration::from_millis(if *name == "zhang" { 700 } else { 5000 }),
        )
        .await;
        if *name == "zhang" {
            assert!(got.is_none(), "zhang must not hear of li's ticket: {got:?}");
        } else {
            let got = got.unwrap_or_else(|| panic!("{name} hears of the assignment"));
            assert!(got.contains("\"assignee\":\"li\""), "{got}");
            assert!(!got.contains("我要退货"), "{got}");
        }
    }
}

async fn an_open_event_stream_does_not_hold_up_shutdown(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(db, dir.path()).await;
    let state = kefu::server::build(
        base_config(&url),
        kefu::clock::ManualClock::at_secs(now_secs()),
    )
    .await
    .unwrap();
    console::add_user(
        &state.store,
        NewUser {
            name: "li".into(),
            role: Role::Agent,
            servicer_userid: Some("li".into()),
            groups: vec!["aftersale".into()],
            password: PASSWORD.into(),
        },
        state.clock.now_ms(),
    )
    .await
    .unwrap();
    let token = console::new_token();
    let mut conn = state.store.pool().acquire().await.unwrap();
    console::store::insert_session(
        &mut conn,
        &console::token_hash(&token),
        "li",
        "csrf",
        state.clock.now_ms(),
    )
    .await
    .unwrap();
    drop(conn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kefu::server::serve(state, listener, async move {
        let _ = stopped.await;
    }));
    let mut resp = reqwest::Client::new()
        .get(format!("http://{addr}/console/events"))
        .header("cookie", format!("kefu_session={token}"))
        .send()
        .await
        .unwrap();
    assert!(
        read_event(&mut resp, "hello", "{}", std::time::Duration::from_secs(5))
            .await
            .is_some()
    );
    stop.send(()).unwrap();
    // The stream ends and the server stops, though the page never closed it.
    let done = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
    let rest = tokio::time::timeout(std::time::Duration::from_secs(2), resp.chunk()).await;
    assert!(
        matches!(rest, Ok(Ok(None)) | Ok(Err(_))),
        "the stream ended: {rest:?}"
    );
}
