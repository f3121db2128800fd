//! The supervisors' dashboard over HTTP: a week of tickets, shopper messages and suggestions
//! with known times, ratings and breaches, read back as the page's tables and as CSV (exact
//! figures), the period's edges in the shop's time zone, who may see it, bad periods, an
//! empty period, and CSV cells that must not become spreadsheet formulas.

use std::collections::HashMap;

use kefu::console::{self, NewUser, Role};
use kefu::tickets::store::{self as ticket_store, AgentRow};
use kefu::tickets::Ticket;
use sqlx::AnyPool;

use crate::common::*;

const PASSWORD: &str = "correct horse battery";

/// Unix ms of an RFC 3339 instant.
pub fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// Shanghai local time `YYYY-MM-DDTHH:MM` as unix ms.
pub fn sh(local: &str) -> i64 {
    ms(&format!("{local}:00+08:00"))
}

/// A ticket as the dashboard sees it: opened at a Shanghai time, answered and ended so many
/// minutes later.
pub struct Seed {
    pub id: &'static str,
    pub intent: &'static str,
    pub tier: &'static str,
    pub agent: Option<&'static str>,
    pub opened: &'static str,
    pub first_response_min: Option<i64>,
    pub resolved_min: Option<i64>,
    /// Closed without being resolved, this many minutes after opening.
    pub closed_min: Option<i64>,
    pub csat: Option<&'static str>,
}

impl Seed {
    pub const fn new(id: &'static str, intent: &'static str, opened: &'static str) -> Seed {
        Seed {
            id,
            intent,
            tier: "normal",
            agent: None,
            opened,
            first_response_min: None,
            resolved_min: None,
            closed_min: None,
            csat: None,
        }
    }
}

/// Insert the ticket as stored, with no open key: the background passes leave it alone.
pub async fn insert_ticket(pool: &AnyPool, s: &Seed) {
    let opened = sh(s.opened);
    let after = |min: Option<i64>| min.map(|m| opened + m * 60_000);
    let resolved_at = after(s.resolved_min);
    let closed_at = after(s.closed_min).or(resolved_at.map(|r| r + 60_000));
    let t = Ticket {
        id: s.id.into(),
        channel: "kf".into(),
        account: "wk1".into(),
        external_userid: format!("c-{}", s.id),
        status: if closed_at.is_some() {
            "closed"
        } else if s.agent.is_some() {
            "assigned"
        } else {
            "new"
        }
        .into(),
        reason: "handoff".into(),
        intent: s.intent.into(),
        grp: kefu::taxonomy::get(s.intent)
            .map_or("general", |i| i.group)
            .into(),
        priority: 2,
        tier: s.tier.into(),
        tier_reasons: "[]".into(),
        assignee: s.agent.map(str::to_string),
        opened_at: opened,
        updated_at: opened,
        first_response_at: after(s.first_response_min),
        sla_started_at: opened,
        resolution_due: opened + 86_400_000,
        resolved_at,
        closed_at,
        csat: s.csat.map(str::to_string),
        csat_agent: s.csat.and(s.agent).map(str::to_string),
        version: 1,
        ..Ticket::default()
    };
    let mut conn = pool.acquire().await.unwrap();
    ticket_store::insert(&mut conn, &t).await.unwrap();
}

async fn mark(pool: &AnyPool, ticket: &str, target: &str, kind: &str) {
    let mut conn = pool.acquire().await.unwrap();
    assert!(
        ticket_store::insert_mark(&mut conn, ticket, target, kind, 1, 2, 3)
            .await
            .unwrap()
    );
}

/// A suggestion shown at a Shanghai time; `outcome` none while open.
#[allow(clippy::too_many_arguments)]
pub async fn suggestion(
    pool: &AnyPool,
    ticket: &str,
    message: &str,
    reply: &str,
    intent: &str,
    agent: &str,
    shown: &str,
    outcome: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO suggestions (ticket_id, message_id, reply_id, intent, slot, agent, \
         shown_at, outcome, decided_by, decided_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9)",
    )
    .bind(ticket)
    .bind(message)
    .bind(reply)
    .bind(intent)
    .bind(agent)
    .bind(sh(shown))
    .bind(outcome)
    .bind(outcome.map(|_| agent))
    .bind(outcome.map(|_| sh(shown) + 1000))
    .execute(pool)
    .await
    .unwrap();
}

/// `n` kf messages of `origin` received at a Shanghai time.
async fn kf_messages(
    pool: &AnyPool,
    n: usize,
    origin: i64,
    intent: Option<&str>,
    status: &str,
    at: &str,
) {
    for _ in 0..n {
        sqlx::query(
            "INSERT INTO kf_messages (msgid, open_kfid, external_userid, origin, msgtype, \
             content, send_time, raw_json, received_at, status, intent) \
             VALUES ($1, 'wk1', 'c1', $2, 'text', '在吗', 0, '{}', $3, $4, $5)",
        )
        .bind(format!("kf-{:016x}", rand::random::<u64>()))
        .bind(origin)
        .bind(sh(at))
        .bind(status)
        .bind(intent)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// An Official Account message received at a Shanghai time.
async fn mp_message(pool: &AnyPool, msg_type: &str, intent: Option<&str>, status: &str, at: &str) {
    sqlx::query(
        "INSERT INTO inbound_messages (id, channel, dedup_key, msg_type, from_user, to_user, \
         create_time, raw_xml, received_at, status, intent) \
         VALUES ($1, 'mp', $1, $2, 'oShopper1', 'shop', 0, '<xml/>', $3, $4, $5)",
    )
    .bind(format!("mp-{:016x}", rand::random::<u64>()))
    .bind(msg_type)
    .bind(sh(at))
    .bind(status)
    .bind(intent)
    .execute(pool)
    .await
    .unwrap();
}

async fn add_user(app: &TestApp, name: &str, role: Role, servicer: Option<&str>) {
    console::add_user(
        &app.state.store,
        NewUser {
            name: name.into(),
            role,
            servicer_userid: servicer.map(str::to_string),
            groups: vec![],
            password: PASSWORD.into(),
        },
        0,
    )
    .await
    .unwrap();
}

async fn add_agent(pool: &AnyPool, id: &str, name: &str) {
    let mut conn = pool.acquire().await.unwrap();
    ticket_store::upsert_agent(
        &mut conn,
        &AgentRow {
            servicer_userid: id.into(),
            name: name.into(),
            groups: "[]".into(),
            capacity: 5,
            senior: 0,
            on_duty: 0,
            active: 1,
            last_assigned_at: None,
            updated_at: 0,
        },
        true,
    )
    .await
    .unwrap();
}

/// A logged-in console user: their session cookie.
struct Console<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookie: String,
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

    /// The text of each `<td>` of the table row `data-row="{dimension}:{value}"`.
    fn row(&self, dimension: &str, value: &str) -> Vec<String> {
        let key = format!("data-row=\"{dimension}:{value}\"");
        let start = self
            .body
            .find(&key)
            .unwrap_or_else(|| panic!("no row {key}"));
        let end = self.body[start..].find("</tr>").unwrap() + start;
        self.body[start..end]
            .split("<td>")
            .skip(1)
            .map(|c| c.split("</td>").next().unwrap().to_string())
            .collect()
    }

    /// The value cell of the overall figure `name`.
    fn figure(&self, name: &str) -> String {
        let key = format!("data-figure=\"{name}\"");
        let start = self
            .body
            .find(&key)
            .unwrap_or_else(|| panic!("no figure {key}"));
        let rest = &self.body[start..];
        let cell = rest.find("<td>").unwrap() + 4;
        rest[cell..cell + rest[cell..].find("</td>").unwrap()].to_string()
    }
}

/// The value of a `Set-Cookie` for `name` among `resp`'s headers.
fn cookie_from(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get_all("set-cookie").iter().find_map(|v| {
        let pair = v.to_str().ok()?.split(';').next()?;
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn login<'a>(app: &'a TestApp, name: &str) -> Console<'a> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http.get(app.url("/console/login")).send().await.unwrap();
    let login_cookie = cookie_from(&form, "kefu_login").unwrap();
    let body = form.text().await.unwrap();
    let start = body.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &body[start..start + body[start..].find('"').unwrap()];
    let resp = http
        .post(app.url("/console/login"))
        .header("cookie", format!("kefu_login={login_cookie}"))
        .form(&[("name", name), ("password", PASSWORD), ("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{name} logs in");
    let session = cookie_from(&resp, "kefu_session").unwrap();
    Console {
        app,
        http,
        cookie: format!("kefu_session={session}"),
    }
}

impl Console<'_> {
    async fn get(&self, path: &str) -> Page {
        let r = self
            .http
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }
}

const WEEK: &str = "from=2026-03-02&to=2026-03-08";

/// The week of 2026-03-02 in Shanghai, and a little on either side of it.
async fn seed_week(app: &TestApp) {
    let pool = app.state.store.pool();
    add_user(app, "boss", Role::Supervisor, None).await;
    add_user(app, "lily", Role::Agent, Some("li")).await;
    add_user(app, "wang", Role::Agent, Some("wang")).await;
    add_agent(pool, "li", "李丽").await;
    add_agent(pool, "wang", "王五").await;
    let tickets = [
        Seed {
            agent: Some("li"),
            first_response_min: Some(2),
            resolved_min: Some(30),
            csat: Some("good"),
            ..Seed::new("t1", "refund_status", "2026-03-02T10:00")
        },
        Seed {
            tier: "vip",
            agent: Some("li"),
            first_response_min: Some(10),
            resolved_min: Some(60),
            csat: Some("bad"),
            ..Seed::new("t2", "refund_status", "2026-03-03T10:00")
        },
        // The last half hour of the period, closed without a resolution.
        Seed {
            agent: Some("wang"),
            first_response_min: Some(4),
            closed_min: Some(20),
            csat: Some("good"),
            ..Seed::new("t3", "tracking", "2026-03-08T23:30")
        },
        Seed {
            agent: Some("wang"),
            first_response_min: Some(6),
            ..Seed::new("t4", "tracking", "2026-03-05T09:00")
        },
        Seed {
            tier: "vip",
            ..Seed::new("t5", "stock", "2026-03-06T12:00")
        },
        // Outside: a minute before the period, and its first minute after.
        Seed {
            agent: Some("li"),
            first_response_min: Some(1),
            resolved_min: Some(1),
            csat: Some("bad"),
            ..Seed::new("t0", "refund_status", "2026-03-01T23:59")
        },
        Seed {
            agent: Some("wang"),
            first_response_min: Some(100),
            csat: Some("bad"),
            ..Seed::new("t9", "tracking", "2026-03-09T00:00")
        },
    ];
    for t in &tickets {
        insert_ticket(pool, t).await;
    }
    mark(pool, "t2", "first_response", "warning").await;
    mark(pool, "t2", "first_response", "breach").await;
    mark(pool, "t3", "resolution", "warning").await;
    mark(pool, "t4", "resolution", "breach").await;
    mark(pool, "t4", "next_response", "breach").await;
    mark(pool, "t0", "resolution", "breach").await;

    // Shopper messages: kf from the customer (origin 3) ...
    kf_messages(pool, 3, 3, Some("tracking"), "answered", "2026-03-04T11:00").await;
    kf_messages(
        pool,
        1,
        3,
        Some("refund_status"),
        "unresolved",
        "2026-03-04T11:00",
    )
    .await;
    kf_messages(
        pool,
        1,
        3,
        Some("refund_status"),
        "agent",
        "2026-03-04T11:00",
    )
    .await;
    // ... but not a survey click, a recalled message, an agent's, or one the day after.
    kf_messages(pool, 1, 3, None, "recorded", "2026-03-04T11:00").await;
    kf_messages(pool, 1, 3, Some("tracking"), "recalled", "2026-03-04T11:00").await;
    kf_messages(pool, 1, 5, None, "recorded", "2026-03-04T11:00").await;
    kf_messages(pool, 1, 3, Some("tracking"), "answered", "2026-03-09T00:30").await;
    // Official Account: text answered or not, an image nobody answered; an event is no message.
    mp_message(
        pool,
        "text",
        Some("tracking"),
        "answered",
        "2026-03-02T08:00",
    )
    .await;
    mp_message(
        pool,
        "text",
        Some("refund_status"),
        "unresolved",
        "2026-03-02T08:00",
    )
    .await;
    mp_message(pool, "image", None, "received", "2026-03-02T08:00").await;
    mp_message(pool, "event", None, "received", "2026-03-02T08:00").await;

    // Suggestions, decided by the console user they were shown to.
    let s = |t, m, r, i, a, o| suggestion(pool, t, m, r, i, a, "2026-03-03T12:00", o);
    s(
        "t1",
        "m1",
        "refund_a",
        "refund_status",
        "lily",
        Some("accepted"),
    )
    .await;
    s(
        "t1",
        "m1",
        "refund_b",
        "refund_status",
        "lily",
        Some("dismissed"),
    )
    .await;
    s(
        "t2",
        "m2",
        "refund_a",
        "refund_status",
        "lily",
        Some("edited"),
    )
    .await;
    s(
        "t3",
        "m3",
        "tracking_a",
        "tracking",
        "wang",
        Some("accepted"),
    )
    .await;
    s("t3", "m3", "tracking_b", "tracking", "wang", None).await;
    s(
        "t4",
        "m4",
        "tracking_a",
        "tracking",
        "boss",
        Some("dismissed"),
    )
    .await;
    suggestion(
        pool,
        "t9",
        "m9",
        "tracking_a",
        "tracking",
        "wang",
        "2026-03-09T01:00",
        Some("accepted"),
    )
    .await;
}

/// Every row of the week's CSV, as the figures work out by hand.
const WEEK_CSV: &str = "\
dimension,value,tickets,first_response_p50_min,first_response_p90_min,first_responded,resolution_p50_min,resolution_p90_min,resolved,sla_breached,sla_attained_share,shopper_messages,auto_answered,auto_answer_share,suggestions_decided,suggestions_accepted,suggestions_edited,suggestions_dismissed,suggestion_acceptance_share,suggestion_accepted_as_is_share,csat_good_share,csat_ratings
overall,all,5,4.0,10.0,4,30.0,60.0,3,2,0.6000,8,4,0.5000,5,2,1,2,0.6000,0.4000,0.6667,3
intent,tracking,2,4.0,6.0,2,20.0,20.0,1,1,0.5000,4,4,1.0000,2,1,0,1,0.5000,0.5000,1.0000,1
intent,refund_status,2,2.0,10.0,2,30.0,60.0,2,1,0.5000,3,0,0.0000,3,1,1,1,0.6667,0.3333,0.5000,2
intent,stock,1,,,0,,,0,0,1.0000,0,0,,0,0,0,0,,,,0
intent,unknown,0,,,0,,,0,0,,1,0,0.0000,0,0,0,0,,,,0
group,logistics,2,4.0,6.0,2,20.0,20.0,1,1,0.5000,4,4,1.0000,2,1,0,1,0.5000,0.5000,1.0000,1
group,aftersale,2,2.0,10.0,2,30.0,60.0,2,1,0.5000,3,0,0.0000,3,1,1,1,0.6667,0.3333,0.5000,2
group,presale,1,,,0,,,0,0,1.0000,0,0,,0,0,0,0,,,,0
group,general,0,,,0,,,0,0,,1,0,0.0000,0,0,0,0,,,,0
tier,normal,3,4.0,6.0,3,20.0,30.0,2,1,0.6667,,,,4,2,0,2,0.5000,0.5000,1.0000,2
tier,vip,2,10.0,10.0,1,60.0,60.0,1,1,0.5000,,,,1,0,1,0,1.0000,0.0000,0.0000,1
agent,li,2,2.0,10.0,2,30.0,60.0,2,1,0.5000,,,,3,1,1,1,0.6667,0.3333,0.5000,2
agent,wang,2,4.0,6.0,2,20.0,20.0,1,1,0.5000,,,,1,1,0,0,1.0000,1.0000,1.0000,1
agent,(none),1,,,0,,,0,0,1.0000,,,,0,0,0,0,,,,0
agent,boss,0,,,0,,,0,0,,,,,1,0,0,1,0.0000,0.0000,,0
";

async fn supervisors_read_a_weeks_figures_as_tables_charts_and_csv(db: Db) {
    let app = TestApp::start(db).await;
    seed_week(&app).await;
    let boss = login(&app, "boss").await;

    let csv = boss.get(&format!("/console/dashboard.csv?{WEEK}")).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert_eq!(csv.header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        csv.header("content-disposition"),
        "attachment; filename=\"kefu-dashboard-2026-03-02-2026-03-08.csv\""
    );
    let got: Vec<&str> = csv.body.lines().collect();
    let want: Vec<&str> = WEEK_CSV.lines().collect();
    assert_eq!(got, want);
    assert!(csv.body.ends_with("\r\n"), "RFC 4180 line ends");

    let page = boss.get(&format!("/console/dashboard?{WEEK}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let b = &page.body;
    for (figure, value) in [
        ("tickets", "5"),
        ("first_response_p50", "4.0"),
        ("first_response_p90", "10.0"),
        ("resolution_p50", "30.0"),
        ("resolution_p90", "60.0"),
        ("sla_attained", "60.0%"),
        ("auto_answered", "50.0%"),
        ("suggestion_acceptance", "60.0%"),
        ("suggestion_as_is", "40.0%"),
        ("csat_good", "66.7%"),
    ] {
        assert_eq!(page.figure(figure), value, "{figure}");
    }
    assert!(b.contains("4 of 8 shopper messages"), "{b}");
    assert!(b.contains("3 ratings"), "{b}");
    // Columns: tickets, first response p50 / p90, resolution p50 / p90, SLA, auto-answered,
    // suggestions accepted, as is, CSAT good, ratings.
    let cells = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        page.row("agent", "li"),
        cells(&[
            "2",
            "2.0",
            "10.0",
            "30.0",
            "60.0",
            "50.0%",
            "not applicable",
            "66.7%",
            "33.3%",
            "50.0%",
            "2"
        ])
    );
    assert_eq!(
        page.row("agent", "(none)"),
        cells(&[
            "1",
            "none yet",
            "none yet",
            "none yet",
            "none yet",
            "100.0%",
            "not applicable",
            "none decided",
            "none decided",
            "no ratings",
            "0"
        ])
    );
    assert_eq!(
        page.row("intent", "unknown"),
        cells(&[
            "0",
            "no tickets",
            "no tickets",
            "no tickets",
            "no tickets",
            "no tickets",
            "0.0%",
            "none decided",
            "none decided",
            "no ratings",
            "0"
        ])
    );
    assert_eq!(page.row("group", "logistics")[6], "100.0%");
    assert_eq!(page.row("tier", "vip")[0], "2");
    // Readable names beside the ids.
    assert!(b.contains("li <span class=\"label\">李丽</span>"), "{b}");
    assert!(b.contains("refund_status <span class=\"label\">"), "{b}");
    // Bars drawn on the server, labelled for screen readers; no script, no inline style.
    for dim in ["group", "tier", "agent"] {
        assert!(
            b.contains(&format!("aria-labelledby=\"chart-{dim}\"")),
            "a chart by {dim}"
        );
    }
    assert!(!b.contains("aria-labelledby=\"chart-intent\""));
    assert!(b.contains("<rect "), "{b}");
    assert!(b.contains("李丽 (li)"), "{b}");
    // No inline script (a `<script src>` of the console's own is allowed) and no inline style.
    assert_eq!(
        b.matches("<script").count(),
        b.matches("<script src=\"/console/static/").count(),
        "{b}"
    );
    assert!(!b.contains("style="), "{b}");
    assert!(!b.contains("NaN"));
    assert!(page
        .header("content-security-policy")
        .starts_with("default-src 'self'; script-src 'self'"));
    assert!(b.contains(&format!(
        "href=\"/console/dashboard.csv?{}\"",
        WEEK.replace('&', "&amp;")
    )));
}

async fn the_default_period_is_the_last_seven_days_and_an_empty_one_says_so(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "boss", Role::Supervisor, None).await;
    let boss = login(&app, "boss").await;
    let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let now = {
        use kefu::clock::Clock;
        app.clock.now_ms()
    };
    let today = shanghai
        .to_datetime(jiff::Timestamp::from_millisecond(now).unwrap())
        .date();
    let week_ago = today
        .checked_sub(jiff::SignedDuration::from_hours(6 * 24))
        .unwrap();
    let page = boss.get("/console/dashboard").await;
    assert_eq!(page.status, 200);
    assert!(page
        .body
        .contains(&format!("name=\"from\" value=\"{week_ago}\"")));
    assert!(page
        .body
        .contains(&format!("name=\"to\" value=\"{today}\"")));
    assert!(page.body.contains("in Asia&#x2f;Shanghai"), "{}", page.body);

    let page = boss.get("/console/dashboard?from=&to=2020-01-07").await;
    assert_eq!(page.status, 200);
    assert!(page
        .body
        .contains("<strong>No tickets</strong> were opened"));
    assert_eq!(page.figure("first_response_p50"), "no tickets");
    assert_eq!(page.figure("sla_attained"), "no tickets");
    assert_eq!(page.figure("auto_answered"), "no messages");
    assert_eq!(page.figure("csat_good"), "no ratings");
    assert!(!page.body.contains("NaN"));
    let csv = boss
        .get("/console/dashboard.csv?from=2020-01-01&to=2020-01-07")
        .await;
    assert_eq!(
        csv.body.lines().collect::<Vec<_>>()[1..],
        ["overall,all,0,,,0,,,0,0,,0,0,,0,0,0,0,,,,0"]
    );
}

async fn agents_are_refused_and_bad_periods_are_400(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "boss", Role::Supervisor, None).await;
    add_user(&app, "lily", Role::Agent, Some("li")).await;
    let lily = login(&app, "lily").await;
    for path in [
        "/console/dashboard",
        "/console/dashboard.csv",
        "/console/dashboard?from=nonsense",
    ] {
        let p = lily.get(path).await;
        assert_eq!(p.status, 403, "{path}");
        assert!(!p.body.contains("overall"), "{path}");
    }
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anonymous
        .get(app.url("/console/dashboard.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    let boss = login(&app, "boss").await;
    for (query, reason) in [
        (
            "from=2026-13-01",
            "`from` must be a date written YYYY-MM-DD",
        ),
        ("to=yesterday", "`to` must be a date written YYYY-MM-DD"),
        ("from=2026-03-02T00:00", "YYYY-MM-DD"),
        ("from=2026-02-30", "YYYY-MM-DD"),
        ("from=2026-03-09&to=2026-03-01", "is after `to`"),
        ("from=2025-01-01&to=2026-12-31", "at most 366 days"),
        ("to=9999-12-31", "outside the supported dates"),
        ("from=2026-03-01&from=2026-03-02", "does not parse"),
    ] {
        for path in ["/console/dashboard", "/console/dashboard.csv"] {
            let p = boss.get(&format!("{path}?{query}")).await;
            assert_eq!(p.status, 400, "{path}?{query}");
            assert!(p.body.contains(reason), "{query}: {}", p.body);
            assert!(p.header("content-type").starts_with("text/plain"));
        }
    }
    assert_eq!(
        boss.get("/console/dashboard?from=2025-03-09&to=2026-03-09")
            .await
            .status,
        200,
        "366 days"
    );
}

async fn csv_cells_from_data_cannot_become_formulas(db: Db) {
    let app = TestApp::start(db).await;
    add_user(&app, "boss", Role::Supervisor, None).await;
    let pool = app.state.store.pool();
    let evil_agent = "=HYPERLINK(\"http://evil.example\",\"x\")";
    for (id, agent, tier) in [
        ("e1", evil_agent, "@SUM(1+1)"),
        ("e2", "+8613800000000", "-1"),
        ("e3", "\tli", "normal"),
    ] {
        insert_ticket(
            pool,
            &Seed {
                agent: Some(agent),
                tier,
                ..Seed::new(id, "tracking", "2026-03-03T10:00")
            },
        )
        .await;
    }
    let boss = login(&app, "boss").await;
    let csv = boss.get(&format!("/console/dashboard.csv?{WEEK}")).await;
    assert_eq!(csv.status, 200);
    let mut values: HashMap<String, Vec<String>> = HashMap::new();
    let mut reader = ::csv::Reader::from_reader(csv.body.as_bytes());
    for record in reader.records() {
        let record = record.unwrap();
        values
            .entry(record[0].to_string())
            .or_default()
            .push(record[1].to_string());
    }
    let mut agents = values["agent"].clone();
    agents.sort();
    assert_eq!(
        agents,
        [
            "'\tli",
            "'+8613800000000",
            "'=HYPERLINK(\"http://evil.example\",\"x\")"
        ]
    );
    let mut tiers = values["tier"].clone();
    tiers.sort();
    assert_eq!(tiers, ["'-1", "'@SUM(1+1)", "normal"]);
    // The quotes inside were doubled and the cell quoted: the row still has every column.
    assert!(csv
        .body
        .contains("agent,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",1,"));
    // On the page the same values are inert text.
    let page = boss.get(&format!("/console/dashboard?{WEEK}")).await;
    assert!(page
        .body
        .contains("=HYPERLINK(&quot;http:&#x2f;&#x2f;evil.example&quot;,&quot;x&quot;)"));
}

on_both_stores!(
    supervisors_read_a_weeks_figures_as_tables_charts_and_csv,
    the_default_period_is_the_last_seven_days_and_an_empty_one_says_so,
    agents_are_refused_and_bad_periods_are_400,
    csv_cells_from_data_cannot_become_formulas,
);
