//! Test harness: spawn kefu on a random port against a real database (a fresh SQLite file or
//! a fresh PostgreSQL database per test) and talk to it like WeCom does.

/// Run one `async fn scenario(db: Db)` on each backend as its own test.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Db::Postgres).await
            }
        }
    )*};
}

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use kefu::clock::ManualClock;
use kefu::config::Config;
use kefu::crypto::MsgCrypt;
use kefu::web::AppState;
use sqlx::Connection;
use tokio::net::TcpListener;

pub const TOKEN: &str = "QDG6eK";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
pub const CORP_ID: &str = "wx5823bf96d3bd56c7";
pub const MP_APP_ID: &str = "wxmpapp000000001";
pub const MP_TOKEN: &str = "mptoken";
pub const MP_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub fn pg_admin_url() -> String {
    std::env::var("KEFU_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database URL of the given kind. SQLite files live in `dir`.
pub async fn fresh_db(db: Db, dir: &Path) -> String {
    match db {
        Db::Sqlite => format!("sqlite://{}/kefu.db", dir.display()),
        Db::Postgres => {
            sqlx::any::install_default_drivers();
            let admin = pg_admin_url();
            let name = format!("kefu_t_{:016x}", rand::random::<u64>());
            let mut conn = sqlx::AnyConnection::connect(&admin)
                .await
                .expect("PostgreSQL must be reachable for the tests (KEFU_TEST_PG_URL)");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    }
}

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn replies_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/replies").to_string()
}

/// The `kefu.toml` of the tests: both channels configured, the shipped reply library.
pub fn config_toml(listen: &str, database_url: &str, replies_dir: &str) -> String {
    format!(
        r#"
listen = "{listen}"
database_url = "{database_url}"
replies_dir = "{replies_dir}"
admin_token = "{ADMIN_TOKEN}"

[wecom]
corp_id = "{CORP_ID}"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"

[mp]
app_id = "{MP_APP_ID}"
token = "{MP_TOKEN}"
encoding_aes_key = "{MP_AES_KEY}"

[callback]
timestamp_tolerance_secs = 300
ack_text = "收到啦，客服马上来"

# Open around the clock, so tests behave the same whenever they run; tests of the calendar
# set their own.
[sla]
hours = ["00:00-24:00"]
"#
    )
}

/// [`config_toml`] on any free port, loaded as kefu loads it.
pub fn base_config(database_url: &str) -> Config {
    let toml = config_toml("127.0.0.1:0", database_url, &replies_dir());
    Config::from_sources(&toml, Path::new("test.toml"), |_| None).unwrap()
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn start(db: Db) -> TestApp {
        Self::start_with(db, |_| {}).await
    }

    /// Start with [`base_config`] on a fresh database, changed by `edit`.
    pub async fn start_with(db: Db, edit: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_db(db, dir.path()).await;
        let mut config = base_config(&url);
        edit(&mut config);
        let clock = ManualClock::at_secs(now_secs());
        let state = kefu::server::build(config, clock.clone()).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serve_state = state.clone();
        tokio::spawn(async move {
            kefu::server::serve(serve_state, listener, std::future::pending())
                .await
                .unwrap();
        });
        TestApp {
            addr,
            state,
            clock,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub async fn count(&self, channel: &str) -> i64 {
        self.state.store.count_inbound(channel).await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Post `body` to `path` with the given query; returns (status, body).
    pub async fn post(&self, path: &str, query: &str, body: String) -> (u16, String) {
        let r = self
            .http
            .post(self.url(&format!("{path}?{query}")))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn wecom_crypt() -> MsgCrypt {
    MsgCrypt::new(TOKEN, AES_KEY, CORP_ID).unwrap()
}

pub fn mp_crypt() -> MsgCrypt {
    MsgCrypt::new(MP_TOKEN, MP_AES_KEY, MP_APP_ID).unwrap()
}

/// A callback as WeCom sends it: (query string, envelope body).
pub fn sealed(crypt: &MsgCrypt, plain_xml: &str, ts: i64) -> (String, String) {
    let nonce = rand::random::<u32>().to_string();
    let encrypt = crypt.encrypt(plain_xml);
    sealed_raw(crypt, &encrypt, ts, &nonce)
}

pub fn sealed_raw(crypt: &MsgCrypt, encrypt: &str, ts: i64, nonce: &str) -> (String, String) {
    let sig = crypt.signature(&ts.to_string(), nonce, encrypt);
    let query = format!("msg_signature={sig}&timestamp={ts}&nonce={nonce}");
    let body = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>",
        crypt.receive_id()
    );
    (query, body)
}

/// Official Account safe-mode query: plain `signature` plus `msg_signature`.
pub fn mp_query(crypt: &MsgCrypt, encrypt: &str, ts: i64, nonce: &str) -> String {
    let sig = kefu::crypto::sha1_signature(&[MP_TOKEN, &ts.to_string(), nonce]);
    let msg_sig = crypt.signature(&ts.to_string(), nonce, encrypt);
    format!("signature={sig}&timestamp={ts}&nonce={nonce}&openid=oShopper1&encrypt_type=aes&msg_signature={msg_sig}")
}

pub fn text_xml(to: &str, from: &str, msg_id: u64, content: &str, ts: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

/// The value of a counter line in Prometheus text, e.g. `kefu_callback_duplicates_dropped_total{channel="mp"}`.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Pull a CDATA field out of an XML string.
pub fn cdata_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}><![CDATA[");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find("]]>")? + start;
    Some(xml[start..end].to_string())
}

pub fn plain_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}
