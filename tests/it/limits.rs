//! The server's limits, as a client sees them: slow headers and trickled bodies are cut,
//! connections past the cap wait their turn, and a shutdown ends within its bound whatever
//! the clients do.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Everything the server sends on `stream` until it closes it, or `None` if it is still
/// open after `within` (far longer than the limit under test).
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

/// One request on a kept-alive connection; the response's status line.
async fn get_status_line(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: kefu\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // /healthz answers a few bytes: the head and body come in one read or two.
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines().next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let app = TestApp::start_with(Db::Sqlite, |c| {
        c.server.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"POST /wecom/callback HTTP/1.1\r\nHost: kefu\r\nContent-")
            .await
            .unwrap();
        slow.push(s);
    }
    // A connection that says nothing at all, and one kept alive after a request.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(
        get_status_line(&mut kept, "/healthz").await,
        "HTTP/1.1 200 OK"
    );

    // Meanwhile everyone else is served.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    for s in slow.iter_mut().chain([&mut silent, &mut kept]) {
        let sent = until_closed(s, Duration::from_secs(20))
            .await
            .expect("the server closes a connection whose headers do not come");
        assert!(!sent.contains(" 200 "), "{sent}");
    }
    assert_eq!(app.count("wecom").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_with_408() {
    let app = TestApp::start_with(Db::Sqlite, |c| {
        c.server.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let ts = now_secs();
    let xml = text_xml(CORP_ID, "zhangsan", 7300000000000000777, "在吗", ts);
    let (q, body) = sealed(&wecom_crypt(), &xml, ts);
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(
        format!(
            "POST /wecom/callback?{q} HTTP/1.1\r\nHost: kefu\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Ten bytes every 200 ms: the whole body would take far longer than the limit.
    let (mut read, mut write) = s.into_split();
    let trickle = tokio::spawn(async move {
        for chunk in body.as_bytes().chunks(10) {
            if write.write_all(chunk).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    });
    let mut answer = String::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), read.read_to_string(&mut answer))
        .await
        .expect("the server answers and closes before the body is complete");
    assert!(closed.is_ok() || !answer.is_empty(), "{closed:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.ends_with("body_timeout"), "{answer}");
    trickle.abort();
    assert_eq!(
        app.count("wecom").await,
        0,
        "nothing of a cut body is stored"
    );

    // A body sent at once is taken as always.
    let (q, body) = sealed(&wecom_crypt(), &xml, ts);
    assert_eq!(
        app.post("/wecom/callback", &q, body).await,
        (200, "success".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_one() {
    let app = TestApp::start_with(Db::Sqlite, |c| {
        c.server.max_connections = 3;
        c.server.header_read_timeout = Duration::from_secs(120);
    })
    .await;
    // Three kept-alive connections hold the three places.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        assert_eq!(get_status_line(&mut s, "/healthz").await, "HTTP/1.1 200 OK");
        held.push(s);
    }
    // A fourth is not served while they are open...
    let mut fourth = TcpStream::connect(app.addr).await.unwrap();
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: kefu\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), fourth.read(&mut buf))
            .await
            .is_err(),
        "a connection past the cap is not served"
    );
    // ... and is as soon as one closes.
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(20), fourth.read(&mut buf))
        .await
        .expect("served once a place is free")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Another connection that holds the inbound table so no one else can write it, until
/// [`release`](StoreLock::release).
struct StoreLock(sqlx::AnyConnection);

impl StoreLock {
    async fn hold(db: Db, url: &str) -> StoreLock {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
        let lock = match db {
            Db::Sqlite => "BEGIN EXCLUSIVE",
            Db::Postgres => "BEGIN; LOCK TABLE inbound_messages IN ACCESS EXCLUSIVE MODE",
        };
        conn.execute(lock).await.unwrap();
        StoreLock(conn)
    }

    async fn release(mut self) {
        use sqlx::Executor;
        self.0.execute("COMMIT").await.unwrap();
    }
}

on_both_stores!(a_hung_store_gets_callbacks_a_503_and_nothing_is_lost);

async fn a_hung_store_gets_callbacks_a_503_and_nothing_is_lost(db: Db) {
    let app = TestApp::start_with(db, |c| {
        c.store_write_timeout = Duration::from_secs(1);
    })
    .await;
    let ts = now_secs();
    let messages: Vec<(String, String)> = (0..2)
        .map(|i| {
            let xml = text_xml(CORP_ID, "lisi", 7300000000000001000 + i, "发货了吗", ts);
            sealed(&wecom_crypt(), &xml, ts)
        })
        .collect();

    let lock = StoreLock::hold(db, &app.state.config.database_url).await;
    for (q, body) in &messages {
        // Answered, and with the status that makes WeCom retry, instead of hanging.
        let answered = tokio::time::timeout(
            Duration::from_secs(20),
            app.post("/wecom/callback", q, body.clone()),
        )
        .await
        .expect("the callback is answered while the store hangs");
        assert_eq!(answered, (503, "store_unavailable".into()));
    }
    lock.release().await;

    // WeCom's retries: each message recorded once, whether or not the first delivery's
    // write went through after its 503.
    for (q, body) in &messages {
        assert_eq!(
            app.post("/wecom/callback", q, body.clone()).await,
            (200, "success".into())
        );
    }
    assert_eq!(app.count("wecom").await, 2);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// A request that is not answered within `request_timeout` gets 503, here behind a store
/// that would have made it wait far longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_answered_in_time_gets_503() {
    let app = TestApp::start_with(Db::Postgres, |c| {
        c.store_write_timeout = Duration::from_secs(600);
        c.server.body_read_timeout = Duration::from_secs(1);
        c.server.request_timeout = Duration::from_secs(1);
    })
    .await;
    let ts = now_secs();
    let xml = text_xml(CORP_ID, "lisi", 7300000000000002000, "发货了吗", ts);
    let (q, body) = sealed(&wecom_crypt(), &xml, ts);
    let lock = StoreLock::hold(Db::Postgres, &app.state.config.database_url).await;
    let answered = tokio::time::timeout(
        Duration::from_secs(20),
        app.post("/wecom/callback", &q, body.clone()),
    )
    .await
    .expect("answered while the store hangs");
    assert_eq!(answered, (503, "request_timeout".into()));
    lock.release().await;
    assert_eq!(
        app.post("/wecom/callback", &q, body).await,
        (200, "success".into())
    );
    assert_eq!(app.count("wecom").await, 1);
}
