//! No secret ever reaches a log, an error message or `/metrics`: every secret is configured
//! with a distinctive value, the real binary is driven through its normal and error paths
//! (bad signatures, a bad library reload, a hung store, WeCom API errors, broken
//! configurations), and everything it wrote is searched for them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kefu::crypto::MsgCrypt;
use kefu::simulate::{Faults, Simulator};

use crate::binary::{free_port, signal, BIN};
use crate::common::*;

const WECOM_SECRET: &str = "wecomSecret-Zq81-never-logged";
const WECOM_TOKEN: &str = "wecomToken-Zq81";
const WECOM_AES_KEY: &str = "Zq81WecomAesKeyZq81WecomAesKeyZq81WecomAesA";
const ROBOT_KEY: &str = "robotKey-Zq81-webhook";
const MP_TOKEN_S: &str = "mpToken-Zq81x";
const MP_AES_KEY_S: &str = "Zq81MpAesKeyZq81MpAesKeyZq81MpAesKeyZq81MpA";
const ADMIN: &str = "adminToken-Zq81-long-enough";
const DB_PASSWORD: &str = "dbPass-Zq81-postgres";
/// A wrong corp secret, given to a second run: WeCom refuses it.
const WRONG_SECRET: &str = "wrongSecret-Zq81-also-secret";
const KFID: &str = "wkSecretsTestAccount";

const SECRETS: &[&str] = &[
    WECOM_SECRET,
    WECOM_TOKEN,
    WECOM_AES_KEY,
    ROBOT_KEY,
    MP_TOKEN_S,
    MP_AES_KEY_S,
    ADMIN,
    DB_PASSWORD,
    WRONG_SECRET,
];

/// Everything captured, with where it came from; fails naming the secret and the source.
/// A secret's first 12 characters count too: the broken configurations below hold cut
/// secrets, and part of a secret is still a leak.
fn assert_no_secret(captured: &[(String, String)]) {
    for (source, text) in captured {
        for secret in SECRETS {
            assert!(
                !text.contains(&secret[..12]),
                "{source} contains (part of) the secret {secret:?}:\n{text}"
            );
        }
    }
}

/// `url` with `password` in its user info: `postgres://u@h/db` -> `postgres://u:pw@h/db`.
fn with_password(url: &str, password: &str) -> String {
    match (url.split_once("://"), url.split_once('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (user, host) = rest.split_once('@').unwrap_or((rest, ""));
            let user = user.split(':').next().unwrap_or(user);
            format!("{scheme}://{user}:{password}@{host}")
        }
        _ => url.to_string(),
    }
}

fn copy_replies(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(replies_dir()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// The config file: every secret but the corp secret and the admin token (those come from
/// the environment, as deploy/kefu.env has them).
fn config_file(dir: &Path, port: u16, db_url: &str, api_base: &str) -> PathBuf {
    let replies = dir.join("replies");
    let path = dir.join("kefu.toml");
    std::fs::write(
        &path,
        format!(
            r#"
listen = "127.0.0.1:{port}"
database_url = "{db_url}"
replies_dir = "{}"

[wecom]
corp_id = "{CORP_ID}"
token = "{WECOM_TOKEN}"
encoding_aes_key = "{WECOM_AES_KEY}"
api_base = "{api_base}"
alert_webhook_key = "{ROBOT_KEY}"

[mp]
app_id = "{MP_APP_ID}"
token = "{MP_TOKEN_S}"
encoding_aes_key = "{MP_AES_KEY_S}"

[store]
write_timeout = "1s"

[sla]
hours = ["00:00-24:00"]
"#,
            replies.display()
        ),
    )
    .unwrap();
    path
}

/// `kefu serve` with debug logs of every crate going to `log`.
async fn start_logged(config: &Path, port: u16, secret: &str, log: &Path) -> Child {
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("KEFU_LOG", "debug")
        .env("KEFU_WECOM_SECRET", secret)
        .env("KEFU_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::from(
            std::fs::File::create(log.with_extension("out")).unwrap(),
        ))
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "kefu did not become ready:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Wait until the log says `needle` (the step it marks has run).
async fn wait_for_log(log: &Path, needle: &str) {
    for _ in 0..400 {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(needle)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the log never said {needle:?}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn stop(mut child: Child) {
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

/// Everything `kefu` printed for `args` with `config` (stdout and stderr).
fn run_kefu(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["--config", config.to_str().unwrap()])
        .args(args)
        .envs(env.iter().copied())
        .env("KEFU_LOG", "debug")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_errors_or_metrics() {
    let dir = tempfile::tempdir().unwrap();
    copy_replies(&dir.path().join("replies"));
    let db_url = with_password(&fresh_db(Db::Postgres, dir.path()).await, DB_PASSWORD);
    assert!(db_url.contains(DB_PASSWORD), "{db_url}");
    let wecom = MsgCrypt::new(WECOM_TOKEN, WECOM_AES_KEY, CORP_ID).unwrap();
    let mp = MsgCrypt::new(MP_TOKEN_S, MP_AES_KEY_S, MP_APP_ID).unwrap();
    let sim = Simulator::new(
        MsgCrypt::new(WECOM_TOKEN, WECOM_AES_KEY, CORP_ID).unwrap(),
        WECOM_SECRET,
    );
    let api_base = sim
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let port = free_port();
    let cfg = config_file(dir.path(), port, &db_url, &api_base);
    let log = dir.path().join("run1.log");
    let mut captured: Vec<(String, String)> = Vec::new();

    let child = start_logged(&cfg, port, WECOM_SECRET, &log).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let post = |path: &str, q: String, body: String| {
        http.post(format!("{base}{path}?{q}"))
            .header("content-type", "text/xml")
            .body(body)
            .send()
    };

    // WeCom: a message, then one signed with another token.
    let ts = now_secs();
    let (q, body) = sealed(
        &wecom,
        &text_xml(
            CORP_ID,
            "zhangsan",
            7300000000000005001,
            "我的快递到哪了",
            ts,
        ),
        ts,
    );
    assert_eq!(
        post("/wecom/callback", q, body).await.unwrap().status(),
        200
    );
    let (q, body) = sealed(
        &wecom_crypt(),
        &text_xml(CORP_ID, "zhangsan", 7300000000000005002, "在吗", ts),
        ts,
    );
    assert_eq!(
        post("/wecom/callback", q, body).await.unwrap().status(),
        403
    );

    // Official Account, safe mode: a message, then a bad signature.
    let plain = text_xml(
        MP_APP_ID,
        "oShopper1",
        7300000000000005003,
        "退货地址是哪里",
        ts,
    );
    let encrypt = mp.encrypt(&plain);
    let nonce = "5003";
    let sig = kefu::crypto::sha1_signature(&[MP_TOKEN_S, &ts.to_string(), nonce]);
    let msg_sig = mp.signature(&ts.to_string(), nonce, &encrypt);
    let envelope = format!(
        "<xml><ToUserName><![CDATA[{MP_APP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let q = format!("signature={sig}&timestamp={ts}&nonce={nonce}&openid=oShopper1&encrypt_type=aes&msg_signature={msg_sig}");
    let r = post("/wechat/callback", q.clone(), envelope.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    captured.push((
        "an Official Account passive reply".into(),
        r.text().await.unwrap(),
    ));
    let r = post(
        "/wechat/callback",
        q.replace(&sig, &"0".repeat(40)),
        envelope,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);

    // kf: a pull that works, then WeCom busy until the client gives up.
    sim.shopper_writes(KFID, "wmShopper", "发货了吗", now_secs());
    sim.notify(&format!("{base}/wecom/callback"), KFID, "ENCsecrets1")
        .await;
    wait_for_log(&log, "kf pull").await;
    sim.expire_tokens();
    sim.inject(Faults {
        busy: 1000,
        ..Faults::default()
    });
    sim.shopper_writes(KFID, "wmShopper", "还没到", now_secs());
    sim.notify(&format!("{base}/wecom/callback"), KFID, "ENCsecrets2")
        .await;
    wait_for_log(&log, "kf pull failed").await;
    sim.inject(Faults::default());

    // The admin API: a wrong bearer, the right one, and a library reload that fails, by
    // request and by SIGHUP.
    for bearer in ["wrong-token-of-some-length", &ADMIN[..ADMIN.len() - 1]] {
        let r = http
            .get(format!("{base}/api/outbox/failed"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        captured.push(("a refused API call".into(), r.text().await.unwrap()));
    }
    let r = http
        .post(format!("{base}/api/classify"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"text": "退款多久到账"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let broken = dir.path().join("replies/broken.toml");
    std::fs::write(
        &broken,
        "[[reply]]\nid = \"x\"\nintent = \"no_such_intent\"\n",
    )
    .unwrap();
    let r = http
        .post(format!("{base}/api/replies/reload"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    captured.push(("a refused reload".into(), r.text().await.unwrap()));
    signal(&child, "-HUP");
    wait_for_log(&log, "reply library reload failed").await;
    std::fs::remove_file(&broken).unwrap();

    // A store that does not answer.
    {
        use sqlx::{Connection, Executor};
        let mut lock = sqlx::AnyConnection::connect(&db_url).await.unwrap();
        lock.execute("BEGIN; LOCK TABLE inbound_messages IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let (q, body) = sealed(
            &wecom,
            &text_xml(CORP_ID, "zhangsan", 7300000000000005004, "人呢", ts),
            ts,
        );
        let r = post("/wecom/callback", q, body).await.unwrap();
        assert_eq!(r.status(), 503);
        lock.execute("COMMIT").await.unwrap();
    }

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kefu_wecom_calls_total"), "{metrics}");
    captured.push(("/metrics".into(), metrics));
    stop(child);
    let run1 = std::fs::read_to_string(&log).unwrap();
    for step in [
        "callback refused",
        "could not record a WeCom callback",
        "kf pull failed",
        "reply library reload failed",
    ] {
        assert!(run1.contains(step), "the log covers {step:?}:\n{run1}");
    }
    captured.push(("the first run's log".into(), run1));
    captured.push((
        "the first run's stdout".into(),
        std::fs::read_to_string(log.with_extension("out")).unwrap(),
    ));

    // A second run with a corp secret WeCom refuses. The first run's access token is still
    // stored and good (whether a later step of that run fetched a fresh one depends on
    // timing), so it goes first: the second run must ask WeCom for one with its secret.
    {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&db_url).await.unwrap();
        sqlx::query("DELETE FROM wecom_tokens")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let log2 = dir.path().join("run2.log");
    let child = start_logged(&cfg, port, WRONG_SECRET, &log2).await;
    sim.shopper_writes(KFID, "wmShopper", "在吗", now_secs());
    sim.notify(&format!("{base}/wecom/callback"), KFID, "ENCsecrets3")
        .await;
    wait_for_log(&log2, "40001").await;
    stop(child);
    captured.push((
        "the second run's log".into(),
        std::fs::read_to_string(&log2).unwrap(),
    ));

    // The binary with broken configurations, and the configuration check.
    let good = std::fs::read_to_string(&cfg).unwrap();
    let broken_cfg = dir.path().join("broken.toml");
    let secret_env = [
        ("KEFU_WECOM_SECRET", WECOM_SECRET),
        ("KEFU_ADMIN_TOKEN", ADMIN),
    ];
    for (what, text, env) in [
        (
            "a syntax error on a secret's line",
            good.replace(
                &format!("token = \"{WECOM_TOKEN}\""),
                &format!("token = \"{WECOM_TOKEN}\" oops"),
            ),
            &secret_env[..],
        ),
        (
            "a secret of the wrong shape",
            good.replace(WECOM_AES_KEY, &WECOM_AES_KEY[..30]),
            &secret_env[..],
        ),
        (
            "an admin token too short",
            good.clone(),
            &[("KEFU_ADMIN_TOKEN", &ADMIN[..12])][..],
        ),
        (
            "a database that is not there",
            good.replace(
                &db_url,
                &format!("postgres://kefu:{DB_PASSWORD}@127.0.0.1:1/kefu"),
            ),
            &secret_env[..],
        ),
    ] {
        std::fs::write(&broken_cfg, text).unwrap();
        let (code, out) = run_kefu(&broken_cfg, &["serve"], env);
        assert_ne!(code, Some(0), "{what}: {out}");
        captured.push((format!("kefu serve with {what}"), out));
    }
    let (code, out) = run_kefu(&cfg, &["serve", "--check-config"], &secret_env);
    assert_eq!(code, Some(0), "{out}");
    captured.push(("kefu serve --check-config".into(), out));

    assert_no_secret(&captured);
}
