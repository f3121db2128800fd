//! A WeCom simulator: the `qyapi.weixin.qq.com` endpoints kefu calls, with their JSON shapes
//! and error codes, kept in memory — plus shoppers who write to a kf account, after which the
//! simulator encrypts and posts `kf_msg_or_event` callbacks to kefu exactly as WeCom does
//! (including retries when kefu does not answer 200).
//!
//! Used by the integration tests and by `kefu demo`; it never talks to the real WeCom.
//! Fault injection: tokens that expire early, "system busy" (-1), rate limits (45009), slow
//! answers and dropped connections — counted ([`Faults`]), or at random for a share of all
//! calls ([`RandomFaults`]).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::crypto::MsgCrypt;

/// Faults to inject into the next calls.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Answer this many calls with errcode -1 (system busy).
    pub busy: u32,
    /// Answer this many calls with errcode 45009 (frequency limit).
    pub rate_limited: u32,
    /// Close this many connections without an answer.
    pub drop: u32,
    /// Delay every answer by this long.
    pub slow: Duration,
}

/// Faults for a share of all calls, chosen at random: each faulty call is answered with
/// -1 (system busy) or 45009 (frequency limit), has its connection reset, or stalls for
/// `stall` and then has its connection cut (a timeout, when `stall` is longer than the
/// client waits). None of them takes effect: the call is refused before the simulator acts
/// on it, as if the request never arrived. (A real timeout may also come after WeCom acted.)
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomFaults {
    /// The share of calls that fail, 0.0 to 1.0.
    pub share: f64,
    /// How long a "timeout" call stalls before its connection is cut.
    pub stall: Duration,
}

/// How many calls each random fault took (see [`Simulator::random_faults`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultTally {
    pub busy: u64,
    pub rate_limited: u64,
    pub reset: u64,
    pub timeout: u64,
    /// Calls the simulator answered normally while random faults were on.
    pub passed: u64,
}

/// One message in a kf account's history, as `sync_msg` returns it.
#[derive(Debug, Clone)]
struct KfRecord {
    seq: u64,
    body: Value,
}

/// What kefu sent through `send_msg` / `send_msg_on_event`.
#[derive(Debug, Clone)]
pub struct Sent {
    pub api: &'static str,
    pub body: Value,
    /// When the simulator took it.
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, Instant>,
    kf: HashMap<String, Vec<KfRecord>>,
    next_seq: u64,
    sent: Vec<Sent>,
    /// (open_kfid, external_userid) -> (state, servicer)
    sessions: HashMap<(String, String), (u8, String)>,
    customers: HashMap<String, Value>,
    contacts: HashMap<String, Value>,
    webhooks: Vec<Value>,
    faults: Faults,
    welcome_codes: HashMap<String, bool>,
    /// (open_kfid, external_userid) -> (send_time of the shopper's last message, messages
    /// sent to them since): WeCom allows 5 within 48 hours of each shopper message.
    quota: HashMap<(String, String), (i64, u32)>,
    /// `send_msg` calls refused, with the error code (for tests to count).
    refused: Vec<(Value, i64)>,
    random: RandomFaults,
    tally: FaultTally,
}

/// Messages the API may send after each shopper message, and for how long.
pub const SEND_QUOTA: u32 = 5;
pub const SEND_WINDOW_SECS: i64 = 48 * 3600;

/// The simulator's shared state; cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Mutex<Inner>>,
    pub corp_id: String,
    pub secret: String,
    token_ttl: Arc<Mutex<Duration>>,
    gettoken_calls: Arc<AtomicU64>,
    crypt: Arc<MsgCrypt>,
    http: reqwest::Client,
}

fn ok(extra: Value) -> Response {
    let mut v = json!({"errcode": 0, "errmsg": "ok"});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    Json(v).into_response()
}

fn err(code: i64, msg: &str) -> Response {
    Json(json!({"errcode": code, "errmsg": msg})).into_response()
}

impl Simulator {
    /// A simulator for a corp whose callback uses `crypt` (token, AES key, corp id).
    pub fn new(crypt: MsgCrypt, secret: &str) -> Simulator {
        Simulator {
            corp_id: crypt.receive_id().to_string(),
            inner: Arc::new(Mutex::new(Inner::default())),
            secret: secret.to_string(),
            token_ttl: Arc::new(Mutex::new(Duration::from_secs(7200))),
            gettoken_calls: Arc::new(AtomicU64::new(0)),
            crypt: Arc::new(crypt),
            http: reqwest::Client::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock only happens in a failing test; keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/cgi-bin/gettoken", get(gettoken))
            .route("/cgi-bin/kf/sync_msg", post(sync_msg))
            .route("/cgi-bin/kf/send_msg", post(send_msg))
            .route("/cgi-bin/kf/send_msg_on_event", post(send_msg_on_event))
            .route("/cgi-bin/kf/service_state/get", post(service_state_get))
            .route("/cgi-bin/kf/service_state/trans", post(service_state_trans))
            .route("/cgi-bin/kf/customer/batchget", post(customer_batchget))
            .route(
                "/cgi-bin/kf/account/list",
                get(account_list).post(account_list),
            )
            .route("/cgi-bin/kf/servicer/list", get(servicer_list))
            .route("/cgi-bin/externalcontact/get", get(externalcontact_get))
            .route("/cgi-bin/webhook/send", post(webhook_send))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                random_fault,
            ))
            .with_state(self.clone())
    }

    /// Serve on `listener` in the background; returns the base URL. Connections can be reset
    /// by random faults (see [`Simulator::inject_random`]).
    pub async fn spawn(&self, listener: TcpListener) -> std::io::Result<String> {
        let addr = listener.local_addr()?;
        let app = self
            .router()
            .into_make_service_with_connect_info::<CutSwitch>();
        tokio::spawn(async move {
            let _ = axum::serve(CutListener(listener), app).await;
        });
        Ok(format!("http://{addr}"))
    }

    // ------------------------------------------------------------ scenario controls

    pub fn set_token_ttl(&self, ttl: Duration) {
        *self.token_ttl.lock().unwrap_or_else(|p| p.into_inner()) = ttl;
    }

    /// Invalidate every issued token now (WeCom answers 42001 until a new one is fetched).
    pub fn expire_tokens(&self) {
        let mut g = self.lock();
        let past = Instant::now() - Duration::from_secs(1);
        for exp in g.tokens.values_mut() {
            *exp = past;
        }
    }

    pub fn gettoken_calls(&self) -> u64 {
        self.gettoken_calls.load(Ordering::SeqCst)
    }

    pub fn inject(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Fail a share of all calls from now on, at random (a share of 0 stops it).
    pub fn inject_random(&self, faults: RandomFaults) {
        self.lock().random = faults;
    }

    /// How many calls each random fault has taken so far.
    pub fn random_faults(&self) -> FaultTally {
        self.lock().tally
    }

    pub fn add_customer(&self, external_userid: &str, nickname: &str, tags: &[(&str, &str)]) {
        let mut g = self.lock();
        g.customers.insert(
            external_userid.to_string(),
            json!({"external_userid": external_userid, "nickname": nickname, "avatar": "", "gender": 0, "unionid": ""}),
        );
        if !tags.is_empty() {
            let tags: Vec<Value> = tags
                .iter()
                .map(|(group, name)| json!({"group_name": group, "tag_name": name, "tag_id": format!("et{name}"), "type": 1}))
                .collect();
            g.contacts.insert(
                external_userid.to_string(),
                json!({
                    "external_contact": {"external_userid": external_userid, "name": nickname, "type": 1, "gender": 0},
                    "follow_user": [{"userid": "agent01", "remark": "", "createtime": 1700000000, "tags": tags}]
                }),
            );
        }
    }

    /// The unionid `kf/customer/batchget` gives a customer added with [`Simulator::add_customer`]
    /// (as when the kf account is bound to the shop's Open Platform account).
    pub fn set_unionid(&self, external_userid: &str, unionid: &str) {
        if let Some(c) = self.lock().customers.get_mut(external_userid) {
            c["unionid"] = json!(unionid);
        }
    }

    /// Everything kefu sent to shoppers so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    pub fn webhooks(&self) -> Vec<Value> {
        self.lock().webhooks.clone()
    }

    pub fn session_state(&self, open_kfid: &str, external_userid: &str) -> u8 {
        self.lock()
            .sessions
            .get(&(open_kfid.to_string(), external_userid.to_string()))
            .map(|s| s.0)
            .unwrap_or(0)
    }

    /// Put a session in any state (e.g. 4, ended by WeCom's timeout).
    pub fn set_session(&self, open_kfid: &str, external_userid: &str, state: u8) {
        self.lock().sessions.insert(
            (open_kfid.to_string(), external_userid.to_string()),
            (state, String::new()),
        );
    }

    /// A human agent takes the session (state 3), as from the WeCom client.
    pub fn agent_takes(&self, open_kfid: &str, external_userid: &str, servicer: &str) {
        self.lock().sessions.insert(
            (open_kfid.to_string(), external_userid.to_string()),
            (3, servicer.to_string()),
        );
    }

    /// Put any message or event into a kf account's history (msgid and open_kfid are set).
    pub fn push_raw(&self, open_kfid: &str, body: Value) -> String {
        format!("sim_msg_{}", self.push(open_kfid, body))
    }

    fn push(&self, open_kfid: &str, mut body: Value) -> u64 {
        let mut g = self.lock();
        g.next_seq += 1;
        let seq = g.next_seq;
        if let Some(o) = body.as_object_mut() {
            o.insert("msgid".into(), json!(format!("sim_msg_{seq}")));
            o.insert("open_kfid".into(), json!(open_kfid));
        }
        // A shopper's message restarts the send quota, and reopens an ended session as new.
        if body["origin"].as_i64() == Some(3) {
            if let Some(user) = body["external_userid"].as_str() {
                let key = (open_kfid.to_string(), user.to_string());
                let at = body["send_time"].as_i64().unwrap_or(0);
                g.quota.insert(key.clone(), (at, 0));
                if g.sessions.get(&key).is_some_and(|s| s.0 == 4) {
                    g.sessions.insert(key, (0, String::new()));
                }
            }
        }
        g.kf.entry(open_kfid.to_string())
            .or_default()
            .push(KfRecord { seq, body });
        seq
    }

    /// `send_msg` calls WeCom refused, with their error codes.
    pub fn refused(&self) -> Vec<(Value, i64)> {
        self.lock().refused.clone()
    }

    /// How many more messages the API may send to this shopper now (0 past the 48 hours).
    pub fn quota_left(&self, open_kfid: &str, external_userid: &str) -> u32 {
        let key = (open_kfid.to_string(), external_userid.to_string());
        match self.lock().quota.get(&key) {
            Some((at, used)) if unix_now() - at <= SEND_WINDOW_SECS => {
                SEND_QUOTA.saturating_sub(*used)
            }
            _ => 0,
        }
    }

    /// A shopper writes `text`; the message waits in the kf account until pulled.
    pub fn shopper_writes(
        &self,
        open_kfid: &str,
        external_userid: &str,
        text: &str,
        send_time: i64,
    ) -> String {
        let seq = self.push(
            open_kfid,
            json!({"external_userid": external_userid, "send_time": send_time, "origin": 3,
                   "servicer_userid": "", "msgtype": "text", "text": {"content": text}}),
        );
        format!("sim_msg_{seq}")
    }

    /// A shopper opens the chat: an `enter_session` event with a welcome code.
    pub fn shopper_enters(&self, open_kfid: &str, external_userid: &str, send_time: i64) -> String {
        let code = format!("welcome_{}", self.lock().next_seq + 1);
        self.lock().welcome_codes.insert(code.clone(), false);
        self.push(
            open_kfid,
            json!({"external_userid": external_userid, "send_time": send_time, "origin": 4, "msgtype": "event",
                   "event": {"event_type": "enter_session", "open_kfid": open_kfid, "external_userid": external_userid,
                             "scene": "", "scene_param": "", "welcome_code": code}}),
        );
        code
    }

    /// An agent writes to the shopper from the WeCom app (origin 5).
    pub fn agent_writes(
        &self,
        open_kfid: &str,
        external_userid: &str,
        servicer_userid: &str,
        text: &str,
        send_time: i64,
    ) -> String {
        self.push_raw(
            open_kfid,
            json!({"external_userid": external_userid, "send_time": send_time, "origin": 5,
                   "servicer_userid": servicer_userid, "msgtype": "text", "text": {"content": text}}),
        )
    }

    /// The agent ends the session in the WeCom app: state 4, and a `session_status_change`
    /// event (change_type 3) whose `msg_code` allows one `send_msg_on_event` (the survey).
    /// Returns the code.
    pub fn agent_ends(
        &self,
        open_kfid: &str,
        external_userid: &str,
        servicer_userid: &str,
        send_time: i64,
    ) -> String {
        let code = format!("end_{}", self.lock().next_seq + 1);
        {
            let mut g = self.lock();
            g.welcome_codes.insert(code.clone(), false);
            g.sessions.insert(
                (open_kfid.to_string(), external_userid.to_string()),
                (4, String::new()),
            );
        }
        self.push_raw(
            open_kfid,
            json!({"send_time": send_time, "origin": 4, "msgtype": "event",
                   "event": {"event_type": "session_status_change", "open_kfid": open_kfid,
                             "external_userid": external_userid, "change_type": 3,
                             "old_servicer_userid": servicer_userid, "msg_code": code}}),
        );
        code
    }

    /// The shopper clicks an item of a menu kefu sent (`menu_id`): a text message with it.
    pub fn shopper_clicks(
        &self,
        open_kfid: &str,
        external_userid: &str,
        menu_id: &str,
        content: &str,
        send_time: i64,
    ) -> String {
        self.push_raw(
            open_kfid,
            json!({"external_userid": external_userid, "send_time": send_time, "origin": 3,
                   "servicer_userid": "", "msgtype": "text",
                   "text": {"content": content, "menu_id": menu_id}}),
        )
    }

    /// An agent goes on duty (`on_duty`, status 1) or off duty (status 2) in the WeCom client:
    /// a `servicer_status_change` event in the account's history.
    pub fn servicer_status(
        &self,
        open_kfid: &str,
        servicer_userid: &str,
        on_duty: bool,
        send_time: i64,
    ) -> String {
        let status = if on_duty { 1 } else { 2 };
        self.push_raw(
            open_kfid,
            json!({"send_time": send_time, "origin": 4, "msgtype": "event",
                   "event": {"event_type": "servicer_status_change", "open_kfid": open_kfid,
                             "servicer_userid": servicer_userid, "status": status, "stop_type": 0}}),
        )
    }

    /// Post a `kf_msg_or_event` callback to kefu, encrypted and signed, retrying as WeCom
    /// does (up to 3 deliveries) while kefu does not answer 200. Returns the statuses seen.
    pub async fn notify(&self, callback_url: &str, open_kfid: &str, token: &str) -> Vec<u16> {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let xml = format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>",
            self.corp_id
        );
        let mut statuses = Vec::new();
        for attempt in 0..3 {
            let nonce = format!("{}", rand::random::<u32>());
            let encrypt = self.crypt.encrypt(&xml);
            let sig = self.crypt.signature(&ts.to_string(), &nonce, &encrypt);
            let body = format!(
                "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>",
                self.corp_id
            );
            let res = self
                .http
                .post(format!(
                    "{callback_url}?msg_signature={sig}&timestamp={ts}&nonce={nonce}"
                ))
                .header("content-type", "text/xml")
                .body(body)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            let status = res.map(|r| r.status().as_u16()).unwrap_or(0);
            statuses.push(status);
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
        }
        statuses
    }

    /// Check the token and apply injected faults. `Err` is the response to give instead.
    async fn gate(&self, access_token: Option<&str>) -> Result<(), Response> {
        let (slow, fault) = {
            let mut g = self.lock();
            let slow = g.faults.slow;
            let fault = if g.faults.drop > 0 {
                g.faults.drop -= 1;
                Some(0)
            } else if g.faults.busy > 0 {
                g.faults.busy -= 1;
                Some(-1)
            } else if g.faults.rate_limited > 0 {
                g.faults.rate_limited -= 1;
                Some(45009)
            } else {
                None
            };
            (slow, fault)
        };
        if !slow.is_zero() {
            tokio::time::sleep(slow).await;
        }
        match fault {
            // A dropped connection: the client sees a broken response.
            Some(0) => return Err((StatusCode::BAD_GATEWAY, "connection reset").into_response()),
            Some(-1) => return Err(err(-1, "system busy")),
            Some(code) => return Err(err(code, "api freq out of limit")),
            None => {}
        }
        if let Some(tok) = access_token {
            let g = self.lock();
            match g.tokens.get(tok) {
                None => return Err(err(40014, "invalid access_token")),
                Some(exp) if *exp <= Instant::now() => {
                    return Err(err(42001, "access_token expired"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The random fault a call gets, if any.
enum RandomFault {
    Busy,
    RateLimited,
    Reset,
    Timeout(Duration),
}

impl Simulator {
    fn draw_random_fault(&self) -> Option<RandomFault> {
        let mut g = self.lock();
        let random = g.random;
        if random.share <= 0.0 {
            return None;
        }
        if rand::random::<f64>() >= random.share {
            g.tally.passed += 1;
            return None;
        }
        Some(match rand::random_range(0..4u8) {
            0 => {
                g.tally.busy += 1;
                RandomFault::Busy
            }
            1 => {
                g.tally.rate_limited += 1;
                RandomFault::RateLimited
            }
            2 => {
                g.tally.reset += 1;
                RandomFault::Reset
            }
            _ => {
                g.tally.timeout += 1;
                RandomFault::Timeout(random.stall)
            }
        })
    }
}

/// Middleware: a random fault, decided before the endpoint sees the call.
async fn random_fault(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    let cut = request
        .extensions()
        .get::<ConnectInfo<CutSwitch>>()
        .map(|c| c.0.clone());
    let reset = |cut: Option<CutSwitch>| {
        if let Some(c) = cut {
            c.0.store(true, Ordering::SeqCst);
        }
        // Never written when the connection is cut; a router served without `spawn` has no
        // switch and answers like a dropped proxy connection instead.
        (StatusCode::BAD_GATEWAY, "connection reset").into_response()
    };
    match sim.draw_random_fault() {
        None => next.run(request).await,
        Some(RandomFault::Busy) => err(-1, "system busy"),
        Some(RandomFault::RateLimited) => err(45009, "api freq out of limit"),
        Some(RandomFault::Reset) => reset(cut),
        Some(RandomFault::Timeout(stall)) => {
            tokio::time::sleep(stall).await;
            reset(cut)
        }
    }
}

/// A handle on one accepted connection: once set, the connection fails every read and write,
/// and is closed with a reset (zero linger).
#[derive(Clone)]
struct CutSwitch(Arc<AtomicBool>);

/// A TCP connection the simulator can cut from inside a handler.
struct CutStream {
    inner: TcpStream,
    cut: Arc<AtomicBool>,
}

impl CutStream {
    /// The error of a cut connection; it will close with a reset, not an orderly close.
    fn cut(&self) -> Option<io::Error> {
        if !self.cut.load(Ordering::SeqCst) {
            return None;
        }
        let _ = self.inner.set_zero_linger();
        Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "cut by the simulator",
        ))
    }
}

impl AsyncRead for CutStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.cut() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.cut() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.cut() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The simulator's listener: every connection gets a [`CutSwitch`].
struct CutListener(TcpListener);

impl axum::serve::Listener for CutListener {
    type Io = CutStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((inner, addr)) => {
                    let cut = Arc::new(AtomicBool::new(false));
                    return (CutStream { inner, cut }, addr);
                }
                // Out of file descriptors and the like: wait a little, as axum does.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, CutListener>> for CutSwitch {
    fn connect_info(stream: IncomingStream<'_, CutListener>) -> Self {
        CutSwitch(stream.io().cut.clone())
    }
}

type Q = Query<HashMap<String, String>>;

async fn gettoken(State(sim): State<Simulator>, Query(q): Q) -> Response {
    if let Err(r) = sim.gate(None).await {
        return r;
    }
    if q.get("corpid") != Some(&sim.corp_id) {
        return err(40013, "invalid corpid");
    }
    if q.get("corpsecret") != Some(&sim.secret) {
        return err(40001, "invalid secret");
    }
    sim.gettoken_calls.fetch_add(1, Ordering::SeqCst);
    let ttl = *sim.token_ttl.lock().unwrap_or_else(|p| p.into_inner());
    let token = format!("SIMTOKEN{:016x}", rand::random::<u64>());
    sim.lock()
        .tokens
        .insert(token.clone(), Instant::now() + ttl);
    ok(json!({"access_token": token, "expires_in": ttl.as_secs()}))
}

macro_rules! gated {
    ($sim:expr, $q:expr) => {
        if let Err(r) = $sim
            .gate(Some(
                $q.get("access_token").map(String::as_str).unwrap_or(""),
            ))
            .await
        {
            return r;
        }
    };
}

async fn sync_msg(State(sim): State<Simulator>, Query(q): Q, Json(body): Json<Value>) -> Response {
    gated!(sim, q);
    let Some(open_kfid) = body["open_kfid"].as_str() else {
        return err(40003, "invalid open_kfid");
    };
    let after: u64 = body["cursor"]
        .as_str()
        .and_then(|c| c.strip_prefix("c"))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit = body["limit"].as_u64().unwrap_or(1000).clamp(1, 1000) as usize;
    let g = sim.lock();
    let all: Vec<&KfRecord> =
        g.kf.get(open_kfid)
            .map(|v| v.iter().filter(|r| r.seq > after).collect())
            .unwrap_or_default();
    let page: Vec<Value> = all.iter().take(limit).map(|r| r.body.clone()).collect();
    let last = all.iter().take(limit).map(|r| r.seq).max().unwrap_or(after);
    ok(
        json!({"next_cursor": format!("c{last}"), "has_more": if all.len() > limit {1} else {0}, "msg_list": page}),
    )
}

async fn send_msg(State(sim): State<Simulator>, Query(q): Q, Json(body): Json<Value>) -> Response {
    gated!(sim, q);
    let (Some(touser), Some(open_kfid)) = (body["touser"].as_str(), body["open_kfid"].as_str())
    else {
        return err(40003, "invalid touser or open_kfid");
    };
    let key = (open_kfid.to_string(), touser.to_string());
    let mut g = sim.lock();
    // Only while the session is new (0) or with the smart assistant (1).
    let state = g.sessions.get(&key).map(|s| s.0).unwrap_or(0);
    if state > 1 {
        g.refused.push((body.clone(), 95018));
        return err(95018, "session status invalid");
    }
    // At most 5 messages within 48 hours of the shopper's last message. (The code WeCom gives
    // for an exhausted quota is not published; this one is the simulator's.)
    let within = g
        .quota
        .get(&key)
        .filter(|(at, used)| unix_now() - at <= SEND_WINDOW_SECS && *used < SEND_QUOTA)
        .is_some();
    if !within {
        g.refused.push((body.clone(), 95001));
        return err(95001, "send quota exhausted or 48 hours passed");
    }
    if let Some(q) = g.quota.get_mut(&key) {
        q.1 += 1;
    }
    let msgid = body["msgid"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sim_out_{}", g.sent.len() + 1));
    g.sent.push(Sent {
        api: "send_msg",
        body: body.clone(),
        at: Instant::now(),
    });
    ok(json!({"msgid": msgid}))
}

async fn send_msg_on_event(
    State(sim): State<Simulator>,
    Query(q): Q,
    Json(body): Json<Value>,
) -> Response {
    gated!(sim, q);
    let code = body["code"].as_str().unwrap_or("").to_string();
    let mut g = sim.lock();
    match g.welcome_codes.get(&code) {
        None => return err(95012, "invalid code"),
        Some(true) => return err(95013, "code already used"),
        Some(false) => {}
    }
    g.welcome_codes.insert(code, true);
    g.sent.push(Sent {
        api: "send_msg_on_event",
        body: body.clone(),
        at: Instant::now(),
    });
    ok(json!({"msgid": body["msgid"].as_str().unwrap_or("sim_welcome")}))
}

async fn service_state_get(
    State(sim): State<Simulator>,
    Query(q): Q,
    Json(body): Json<Value>,
) -> Response {
    gated!(sim, q);
    let key = session_key(&body);
    let (state, servicer) = sim
        .lock()
        .sessions
        .get(&key)
        .cloned()
        .unwrap_or((0, String::new()));
    ok(json!({"service_state": state, "servicer_userid": servicer}))
}

fn session_key(body: &Value) -> (String, String) {
    (
        body["open_kfid"].as_str().unwrap_or("").to_string(),
        body["external_userid"].as_str().unwrap_or("").to_string(),
    )
}

/// Legal session transitions (0 new, 1 bot, 2 pool, 3 agent, 4 ended). Moving to 1 when
/// already there is harmless; an ended session only starts again when the shopper writes.
fn legal(from: u8, to: u8) -> bool {
    matches!(
        (from, to),
        (0, 1..=3) | (1, 1..=4) | (2, 3) | (2, 4) | (3, 3) | (3, 4)
    )
}

async fn service_state_trans(
    State(sim): State<Simulator>,
    Query(q): Q,
    Json(body): Json<Value>,
) -> Response {
    gated!(sim, q);
    let key = session_key(&body);
    let to = body["service_state"].as_u64().unwrap_or(99) as u8;
    let servicer = body["servicer_userid"].as_str().unwrap_or("").to_string();
    let mut g = sim.lock();
    let from = g.sessions.get(&key).map(|s| s.0).unwrap_or(0);
    if !legal(from, to) {
        return err(95016, "invalid service_state transition");
    }
    if to == 3 && servicer.is_empty() {
        return err(95014, "servicer_userid required");
    }
    g.sessions.insert(key, (to, servicer));
    ok(json!({"msg_code": format!("msgcode_{}", rand::random::<u32>())}))
}

async fn customer_batchget(
    State(sim): State<Simulator>,
    Query(q): Q,
    Json(body): Json<Value>,
) -> Response {
    gated!(sim, q);
    let g = sim.lock();
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    for id in body["external_userid_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = id.as_str().unwrap_or("").to_string();
        match g.customers.get(&id) {
            Some(c) => found.push(c.clone()),
            None => invalid.push(json!(id)),
        }
    }
    ok(json!({"customer_list": found, "invalid_external_userid": invalid}))
}

async fn account_list(State(sim): State<Simulator>, Query(q): Q) -> Response {
    gated!(sim, q);
    let g = sim.lock();
    let accounts: Vec<Value> =
        g.kf.keys()
            .map(|k| json!({"open_kfid": k, "name": "好物小铺客服", "avatar": ""}))
            .collect();
    ok(json!({"account_list": accounts}))
}

async fn servicer_list(State(sim): State<Simulator>, Query(q): Q) -> Response {
    gated!(sim, q);
    ok(
        json!({"servicer_list": [{"userid": "agent01", "status": 0}, {"userid": "agent02", "status": 1}]}),
    )
}

async fn externalcontact_get(State(sim): State<Simulator>, Query(q): Q) -> Response {
    gated!(sim, q);
    let id = q.get("external_userid").cloned().unwrap_or_default();
    match sim.lock().contacts.get(&id) {
        Some(c) => ok(c.clone()),
        None => err(84061, "not external contact"),
    }
}

async fn webhook_send(
    State(sim): State<Simulator>,
    Query(q): Q,
    Json(body): Json<Value>,
) -> Response {
    if let Err(r) = sim.gate(None).await {
        return r;
    }
    if q.get("key").is_none_or(|k| k.is_empty()) {
        return err(93000, "invalid webhook url");
    }
    sim.lock().webhooks.push(body);
    ok(json!({}))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::legal;

    #[test]
    fn session_transitions_follow_the_documented_table() {
        assert!(legal(0, 1) && legal(1, 1) && legal(1, 2) && legal(2, 3) && legal(3, 4));
        assert!(!legal(2, 1) && !legal(3, 1) && !legal(0, 4));
        // An ended session starts again only when the shopper writes.
        assert!((0..=4).all(|to| !legal(4, to)));
    }
}
