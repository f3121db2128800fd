//! Arbitrary query strings and bodies at both callback URLs, as a hostile client sends
//! them: every one is refused with a 4xx that names its reason, none is a 5xx, and nothing
//! is stored. `KEFU_FUZZ_HTTP_CASES` sets the number of requests per store (default 400).

use rand::RngExt;

use crate::common::*;

const KEYS: &[&str] = &[
    "signature",
    "msg_signature",
    "timestamp",
    "nonce",
    "echostr",
    "encrypt_type",
    "openid",
];

fn random_text(rng: &mut impl rand::Rng, max: usize) -> String {
    let len = rng.random_range(0..=max);
    match rng.random_range(0..3) {
        // Arbitrary bytes, as lossy text.
        0 => {
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // Digits: timestamps near and far, overflowing ones.
        1 => (0..len.min(25))
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect(),
        // Printable ASCII with the characters that matter to parsers.
        _ => (0..len)
            .map(|_| {
                *b"abcXYZ019<>&%=;/]]![CDATA[-+ "
                    .get(rng.random_range(0..30))
                    .unwrap_or(&b'a') as char
            })
            .collect(),
    }
}

fn random_query(rng: &mut impl rand::Rng) -> String {
    let n = rng.random_range(0..7);
    let pairs: Vec<(String, String)> = (0..n)
        .map(|_| {
            let key = if rng.random_bool(0.85) {
                KEYS[rng.random_range(0..KEYS.len())].to_string()
            } else {
                random_text(rng, 12)
            };
            (key, random_text(rng, 60))
        })
        .collect();
    let mut q = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if rng.random_bool(0.1) {
        // Broken percent-encoding and stray separators.
        q.push_str("&%zz=%&&=");
    }
    q
}

fn random_body(rng: &mut impl rand::Rng) -> Vec<u8> {
    match rng.random_range(0..3) {
        0 => (0..rng.random_range(0..2000)).map(|_| rng.random()).collect(),
        1 => format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt><MsgType>{}</MsgType></xml>",
            random_text(rng, 30),
            random_text(rng, 200),
            random_text(rng, 10)
        )
        .into_bytes(),
        _ => random_text(rng, 300).into_bytes(),
    }
}

on_both_stores!(arbitrary_callback_requests_are_refused_with_a_reason);

async fn arbitrary_callback_requests_are_refused_with_a_reason(db: Db) {
    let app = TestApp::start(db).await;
    let cases: usize = std::env::var("KEFU_FUZZ_HTTP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mut rng = rand::rng();
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..cases {
        let path = if i % 2 == 0 {
            "/wecom/callback"
        } else {
            "/wechat/callback"
        };
        let query = random_query(&mut rng);
        let url = app.url(&format!("{path}?{query}"));
        let req = if rng.random_bool(0.3) {
            app.http.get(url)
        } else {
            app.http
                .post(url)
                .header("content-type", "text/xml")
                .body(random_body(&mut rng))
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(
            (400..500).contains(&status),
            "{path}?{query} answered {status}: {body}"
        );
        assert!(
            !body.trim().is_empty(),
            "{path}?{query}: {status} without a reason"
        );
        *statuses.entry(status).or_insert(0) += 1;
    }
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbound_messages")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing unsigned is stored ({statuses:?})");
}
