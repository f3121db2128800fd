//! The real `kefu` binary: configuration checks, restarts between a message and its retry,
//! graceful shutdown.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kefu");

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, port: u16, db_url: &str, replies: &str) -> std::path::PathBuf {
    let path = dir.join("kefu.toml");
    let toml = config_toml(&format!("127.0.0.1:{port}"), db_url, replies);
    std::fs::write(&path, toml).unwrap();
    path
}

async fn start(config: &Path, port: u16) -> Child {
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("KEFU_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("kefu did not become ready on port {port}");
}

pub(crate) fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn post(port: u16, q: &str, body: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/wecom/callback?{q}"))
        .header("content-type", "text/xml")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn restart_between_message_and_retry(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(db, dir.path()).await;
    let port = free_port();
    let cfg = write_config(dir.path(), port, &url, &replies_dir());

    let ts = now_secs();
    let xml = text_xml(
        CORP_ID,
        "wangwu",
        7300000000000000042,
        "退款什么时候到账",
        ts,
    );
    let (q, body) = sealed(&wecom_crypt(), &xml, ts);

    let mut first = start(&cfg, port).await;
    assert_eq!(post(port, &q, &body).await, (200, "success".into()));
    // The harshest restart: the process is killed, no shutdown at all.
    signal(&first, "-KILL");
    first.wait().unwrap();

    let mut second = start(&cfg, port).await;
    assert_eq!(post(port, &q, &body).await, (200, "success".into()));
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            "kefu_callback_duplicates_dropped_total{channel=\"wecom\"}"
        ),
        1.0,
        "{metrics}"
    );
    signal(&second, "-TERM");
    let status = second.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let store = kefu::store::Store::connect(&url).await.unwrap();
    assert_eq!(store.count_inbound("wecom").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_between_message_and_retry_sqlite() {
    restart_between_message_and_retry(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_between_message_and_retry_postgres() {
    restart_between_message_and_retry(Db::Postgres).await
}

#[test]
fn check_config_names_the_bad_key_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kefu.toml");
    std::fs::write(
        &cfg,
        "[wecom]\ncorp_id = \"ww1\"\ntoken = \"t\"\nencoding_aes_key = \"abc\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "serve", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wecom.encoding_aes_key") && err.contains("43"),
        "{err}"
    );

    // The environment fixes it; the check passes and says what is configured.
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "serve", "--check-config"])
        .env("KEFU_WECOM_ENCODING_AES_KEY", AES_KEY)
        .env(
            "KEFU_DATABASE_URL",
            format!("sqlite://{}/db/kefu.db", dir.path().display()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("wecom configured"), "{text}");
    assert!(!text.contains(AES_KEY), "secrets are not printed");
    assert!(
        !dir.path().join("db").exists(),
        "a config check touches no store"
    );

    // A config file given explicitly must exist.
    let out = Command::new(BIN)
        .args([
            "--config",
            "/nonexistent/kefu.toml",
            "serve",
            "--check-config",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_creates_the_sqlite_folder_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("nested/data/kefu.db");
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        &format!("sqlite://{}", db_path.display()),
        &replies_dir(),
    );
    let mut child = start(&cfg, port).await;
    assert!(db_path.exists());
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_reply_library() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("replies");
    std::fs::create_dir_all(&lib).unwrap();
    for entry in std::fs::read_dir(replies_dir()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, lib.join(p.file_name().unwrap())).unwrap();
    }
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        &format!("sqlite://{}/kefu.db", dir.path().display()),
        &lib.display().to_string(),
    );
    let mut child = start(&cfg, port).await;
    let classify = || async {
        let v: serde_json::Value = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/classify"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"text": "紫水晶手链开过光吗"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["reply_id"].as_str().map(str::to_owned)
    };
    assert_ne!(classify().await.as_deref(), Some("product_info.crystal"));

    let mut presale = std::fs::read_to_string(lib.join("presale.toml")).unwrap();
    presale.push_str("\n[[reply]]\nid = \"product_info.crystal\"\nintent = \"product_info\"\ntitle = \"水晶饰品\"\nanswer = \"水晶饰品为天然水晶，材质见详情页～\"\nquestions = [\"紫水晶手链开过光吗\", \"水晶手链是天然的吗\"]\n");
    std::fs::write(lib.join("presale.toml"), presale).unwrap();
    signal(&child, "-HUP");
    let mut reloaded = false;
    for _ in 0..100 {
        if classify().await.as_deref() == Some("product_info.crystal") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    assert!(reloaded, "SIGHUP reloaded the library");
}

#[test]
fn the_demo_runs_the_kf_loop_with_no_wecom_account() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--once"])
        .current_dir(dir.path())
        .env("KEFU_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("KEFU_REPLIES_DIR", replies_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The welcome menu, the VIP's own wording, a complaint handed to a person.
    assert!(text.contains("欢迎来到好物小铺"), "{text}");
    assert!(text.contains("王女士您好，您是VIP会员"), "{text}");
    assert!(
        text.contains("intent complaint, confidence 1.00: handed to a person"),
        "{text}"
    );
    // Tickets: the VIP's complaint heads the queue and goes to the senior agent.
    let queue: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Tickets, most urgent first"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(queue.len(), 3, "{text}");
    assert!(
        queue[0].contains("urgent") && queue[0].contains("王女士") && queue[0].contains("→ li"),
        "{text}"
    );
    assert!(
        dir.path().join("data/kefu.db").exists(),
        "the embedded SQLite default"
    );
}

/// `kefu user …` with `input` on stdin: (exit code, stdout, stderr).
fn kefu_user(db_url: &str, args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .env("KEFU_DATABASE_URL", db_url)
        .env_remove("KEFU_CONFIG")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Users added, listed and disabled through the binary; the server logs them in.
async fn console_users_from_the_command_line(db: Db) {
    let app = TestApp::start(db).await;
    let url = app.state.config.database_url.clone();
    let password = "s3cret-password-from-stdin";
    let (code, out, err) = kefu_user(
        &url,
        &[
            "add",
            "--name",
            "li",
            "--role",
            "agent",
            "--servicer-id",
            "li",
            "--groups",
            "aftersale,service",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(password) && !err.contains(password));

    // Bad input: a clear message, a failing exit code, nothing added.
    for (args, input, says) in [
        (
            vec![
                "add",
                "--name",
                "wang",
                "--role",
                "agent",
                "--servicer-id",
                "w",
                "--groups",
                "sales",
                "--password-stdin",
            ],
            "long enough password\n",
            "unknown skill group \"sales\"",
        ),
        (
            vec![
                "add",
                "--name",
                "wang wu",
                "--role",
                "supervisor",
                "--password-stdin",
            ],
            "long enough password\n",
            "user name",
        ),
        (
            vec![
                "add",
                "--name",
                "wang",
                "--role",
                "agent",
                "--password-stdin",
            ],
            "long enough password\n",
            "--servicer-id",
        ),
        (
            vec![
                "add",
                "--name",
                "wang",
                "--role",
                "supervisor",
                "--password-stdin",
            ],
            "short\n",
            "at least 10 characters",
        ),
        (
            vec![
                "add",
                "--name",
                "wang",
                "--role",
                "supervisor",
                "--password-stdin",
            ],
            "",
            "no password on stdin",
        ),
        (
            vec![
                "add",
                "--name",
                "li",
                "--role",
                "supervisor",
                "--password-stdin",
            ],
            "long enough password\n",
            "exists already",
        ),
        (vec!["disable", "nobody"], "", "no user \"nobody\""),
    ] {
        let (code, out, err) = kefu_user(&url, &args, input);
        assert_ne!(code, 0, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, out, _) = kefu_user(&url, &["list"], "");
    assert_eq!(code, 0);
    assert_eq!(out, "li\tagent\tli\taftersale,service\tactive\n");
    assert!(!out.contains("argon2"), "hashes are never printed");

    // The password given on stdin logs in.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http.get(app.url("/console/login")).send().await.unwrap();
    let cookie = form.headers()["set-cookie"].to_str().unwrap().to_string();
    let pair = cookie.split(';').next().unwrap().to_string();
    let csrf = pair.split_once('=').unwrap().1.to_string();
    let login = |pw: &'static str| {
        http.post(app.url("/console/login"))
            .header("cookie", pair.clone())
            .form(&[("name", "li"), ("password", pw), ("csrf", &csrf)])
            .send()
    };
    let r = login("s3cret-password-from-stdin").await.unwrap();
    assert_eq!(r.status(), 303);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("kefu_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let home = |s: String| http.get(app.url("/console/")).header("cookie", s).send();
    assert_eq!(home(session.clone()).await.unwrap().status(), 200);

    // Disabled from the command line: the open session ends, login is refused.
    let (code, out, err) = kefu_user(&url, &["disable", "li"], "");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(home(session).await.unwrap().status(), 303);
    assert_eq!(
        login("s3cret-password-from-stdin").await.unwrap().status(),
        401
    );
    let (_, out, _) = kefu_user(&url, &["list"], "");
    assert_eq!(out, "li\tagent\tli\taftersale,service\tdisabled\n");
}

on_both_stores!(console_users_from_the_command_line);

/// 3,000 clients send half a request header and stop, another is in the middle of a body:
/// SIGTERM still ends the process within `shutdown_timeout`, long before the header timeout
/// would have let them go, and the process says it stopped cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_within_its_bound_whatever_slow_clients_do() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        &format!("sqlite://{}/kefu.db", dir.path().display()),
        &replies_dir(),
    );
    let mut toml = std::fs::read_to_string(&cfg).unwrap();
    toml.push_str(
        "\n[server]\nheader_read_timeout = \"5m\"\nbody_read_timeout = \"5m\"\nrequest_timeout = \"5m\"\nmax_connections = 4000\nshutdown_timeout = \"2s\"\n",
    );
    std::fs::write(&cfg, toml).unwrap();
    let mut child = start(&cfg, port).await;

    let mut slow = Vec::new();
    for batch in 0..6 {
        let conns = (0..500).map(|_| async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            s.write_all(b"POST /wecom/callback HTTP/1.1\r\nHost: kefu\r\nX-Wait")
                .await?;
            Ok::<_, std::io::Error>(s)
        });
        for s in futures_util::future::join_all(conns).await {
            slow.push(s.unwrap_or_else(|e| panic!("batch {batch}: {e}")));
        }
    }
    // A signed callback whose body stops after a few bytes: the handler is reading it.
    let ts = now_secs();
    let (q, _) = sealed(
        &wecom_crypt(),
        &text_xml(CORP_ID, "zhangsan", 7300000000000000901, "在吗", ts),
        ts,
    );
    let mut mid_body = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    mid_body
        .write_all(
            format!("POST /wecom/callback?{q} HTTP/1.1\r\nHost: kefu\r\nContent-Length: 5000\r\n\r\n<xml>")
                .as_bytes(),
        )
        .await
        .unwrap();
    // The server is not starved by them.
    let r = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    signal(&child, "-TERM");
    let mut exited = None;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("kefu still running 15 s after SIGTERM with shutdown_timeout = 2s");
    };
    assert!(
        status.success(),
        "a bounded shutdown still exits 0, got {status}"
    );
    // Every slow client finds its connection closed.
    let mut buf = [0u8; 16];
    for s in slow.iter_mut().take(20).chain([&mut mid_body]) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed by the process's exit")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}
