//! The callback endpoints, as WeCom and WeChat use them, on SQLite and on PostgreSQL.

use crate::common::*;

on_both_stores!(
    wecom_url_verification_answers_the_official_sample,
    wecom_message_is_recorded_once_and_its_retries_dropped,
    kf_event_is_recorded_and_deduplicated_on_its_token,
    every_message_type_is_stored_including_unknown_ones,
    official_account_text_gets_an_encrypted_passive_reply_once,
    official_account_messages_with_and_without_a_verdict_alternate_and_all_are_stored,
    official_account_plaintext_mode_and_url_verification,
    bad_input_gets_a_specific_4xx_and_changes_nothing,
    concurrent_deliveries_with_retries_store_each_message_once,
    health_readiness_and_metrics,
);

async fn wecom_url_verification_answers_the_official_sample(db: Db) {
    let app = TestApp::start(db).await;
    app.clock.set_secs(1409659589);
    // echostr as WeCom sends it: URL-encoded base64.
    let q = "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D";
    let r = app
        .http
        .get(app.url(&format!("/wecom/callback?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "1616140317555161061");

    // A sender that forgot to encode '+' still verifies.
    let q_plus = q.replace("%2B", "+");
    let r = app
        .http
        .get(app.url(&format!("/wecom/callback?{q_plus}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "1616140317555161061");

    // One changed signature character fails.
    let bad = q.replace("5c45ff5e", "5c45ff5f");
    let r = app
        .http
        .get(app.url(&format!("/wecom/callback?{bad}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "bad_signature");
}

async fn wecom_message_is_recorded_once_and_its_retries_dropped(db: Db) {
    let app = TestApp::start(db).await;
    let ts = now_secs();
    let xml = text_xml(
        CORP_ID,
        "zhangsan",
        7300000000000000001,
        "我的快递到哪了？",
        ts,
    );
    let (q, body) = sealed(&wecom_crypt(), &xml, ts);
    for attempt in 0..3 {
        let (status, text) = app.post("/wecom/callback", &q, body.clone()).await;
        assert_eq!(
            (status, text.as_str()),
            (200, "success"),
            "attempt {attempt}"
        );
    }
    // A replay with a fresh envelope (new nonce, new random prefix) is the same message.
    let (q2, body2) = sealed(&wecom_crypt(), &xml, ts);
    assert_eq!(app.post("/wecom/callback", &q2, body2).await.0, 200);

    assert_eq!(app.count("wecom").await, 1);
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "kefu_callback_duplicates_dropped_total{channel=\"wecom\"}"
        ),
        3.0
    );
    let (content, from): (String, String) = sqlx::query_as(
        "SELECT content, from_user FROM inbound_messages WHERE dedup_key = 'msg:7300000000000000001'",
    )
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(
        (content.as_str(), from.as_str()),
        ("我的快递到哪了？", "zhangsan")
    );
}

fn kf_event_xml(token: &str, ts: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q]]></OpenKfId></xml>"
    )
}

async fn kf_event_is_recorded_and_deduplicated_on_its_token(db: Db) {
    let app = TestApp::start(db).await;
    let ts = now_secs();
    for token in [
        "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR",
        "ENCAnother",
        "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR",
    ] {
        let (q, body) = sealed(&wecom_crypt(), &kf_event_xml(token, ts), ts);
        assert_eq!(
            app.post("/wecom/callback", &q, body).await,
            (200, "success".into())
        );
    }
    assert_eq!(app.count("wecom").await, 2);
    let (event, status): (String, String) = sqlx::query_as(
        "SELECT event, status FROM inbound_messages WHERE dedup_key = 'kf:ENCAnother'",
    )
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(
        (event.as_str(), status.as_str()),
        ("kf_msg_or_event", "received")
    );
}

async fn every_message_type_is_stored_including_unknown_ones(db: Db) {
    let app = TestApp::start(db).await;
    let ts = now_secs();
    let head = |t: &str, id: u64| {
        format!("<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>lisi</FromUserName><CreateTime>{ts}</CreateTime><MsgType>{t}</MsgType><MsgId>{id}</MsgId>")
    };
    let msgs = [
        format!("{}<PicUrl>http://p/1.jpg</PicUrl><MediaId>m1</MediaId></xml>", head("image", 11)),
        format!("{}<MediaId>m2</MediaId><Format>amr</Format></xml>", head("voice", 12)),
        format!("{}<MediaId>m3</MediaId><ThumbMediaId>t3</ThumbMediaId></xml>", head("video", 13)),
        format!("{}<Location_X>23.13</Location_X><Location_Y>113.27</Location_Y><Scale>15</Scale><Label>广州</Label></xml>", head("location", 14)),
        format!("{}<Title>商品</Title><Description>d</Description><Url>http://x</Url></xml>", head("link", 15)),
        format!("{}<Whatever>x</Whatever></xml>", head("brand_new_type", 16)),
        format!("<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>lisi</FromUserName><CreateTime>{ts}</CreateTime><MsgType>event</MsgType><Event>enter_agent</Event><AgentID>1</AgentID></xml>"),
    ];
    for m in &msgs {
        let (q, body) = sealed(&wecom_crypt(), m, ts);
        assert_eq!(app.post("/wecom/callback", &q, body).await.0, 200, "{m}");
    }
    let types: Vec<String> =
        sqlx::query_scalar("SELECT msg_type FROM inbound_messages ORDER BY msg_type")
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(
        types,
        [
            "brand_new_type",
            "event",
            "image",
            "link",
            "location",
            "video",
            "voice"
        ]
    );
}

/// Messages with no verdict (an image: no intent, no confidence) and classified text take
/// turns, and each is stored with what it has: a NULL confidence or the classifier's.
async fn official_account_messages_with_and_without_a_verdict_alternate_and_all_are_stored(db: Db) {
    let app = TestApp::start(db).await;
    let crypt = mp_crypt();
    let ts = now_secs();
    for i in 0..6u64 {
        let xml = if i % 2 == 0 {
            format!("<xml><ToUserName>gh_shop</ToUserName><FromUserName>oShopper{i}</FromUserName><CreateTime>{ts}</CreateTime><MsgType>image</MsgType><PicUrl>http://p/{i}.jpg</PicUrl><MediaId>m{i}</MediaId><MsgId>{}</MsgId></xml>", 6200000000000000000 + i)
        } else {
            text_xml(
                "gh_shop",
                &format!("oShopper{i}"),
                6200000000000000000 + i,
                "付款后多久发货呀",
                ts,
            )
        };
        let encrypt = crypt.encrypt(&xml);
        let nonce = format!("n{i}");
        let query = mp_query(&crypt, &encrypt, ts, &nonce);
        let body = format!("<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
        let (status, reply) = app.post("/wechat/callback", &query, body).await;
        assert_eq!(status, 200, "message {i}: {reply}");
    }
    let rows: Vec<(String, Option<f64>)> = sqlx::query_as(
        "SELECT msg_type, confidence FROM inbound_messages WHERE channel = 'mp' ORDER BY dedup_key",
    )
    .fetch_all(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    for (msg_type, confidence) in &rows {
        match msg_type.as_str() {
            "image" => assert_eq!(*confidence, None),
            _ => assert!(confidence.is_some_and(|c| c > 0.0 && c <= 1.0), "{rows:?}"),
        }
    }
}

async fn official_account_text_gets_an_encrypted_passive_reply_once(db: Db) {
    let app = TestApp::start(db).await;
    let crypt = mp_crypt();
    let ts = now_secs();
    let xml = text_xml(
        "gh_shop",
        "oShopper1",
        6100000000000000001,
        "付款后多久发货呀",
        ts,
    );
    let encrypt = crypt.encrypt(&xml);
    let nonce = "55667788";
    let query = mp_query(&crypt, &encrypt, ts, nonce);
    let body = format!("<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");

    let started = std::time::Instant::now();
    let (status, reply) = app.post("/wechat/callback", &query, body.clone()).await;
    assert!(started.elapsed().as_secs() < 5, "inside the 5 s window");
    assert_eq!(status, 200, "{reply}");
    let enc = cdata_field(&reply, "Encrypt").expect("encrypted reply");
    let sig = cdata_field(&reply, "MsgSignature").unwrap();
    let rts = plain_field(&reply, "TimeStamp").unwrap();
    let rnonce = cdata_field(&reply, "Nonce").unwrap();
    let inner = crypt.verify_and_decrypt(&sig, &rts, &rnonce, &enc).unwrap();
    // A confident shipping-time question gets its canned answer, shop facts filled in.
    let content = cdata_field(&inner, "Content").unwrap();
    assert!(
        content.contains("48小时内发货") && !content.contains("{{"),
        "{content}"
    );
    assert_eq!(
        cdata_field(&inner, "ToUserName").as_deref(),
        Some("oShopper1")
    );
    assert_eq!(
        cdata_field(&inner, "FromUserName").as_deref(),
        Some("gh_shop")
    );

    // WeChat retries: same answer, nothing new stored.
    let (status, reply2) = app.post("/wechat/callback", &query, body).await;
    assert_eq!(status, 200);
    let enc2 = cdata_field(&reply2, "Encrypt").unwrap();
    let again = crypt.decrypt(&enc2).unwrap();
    assert!(again.contains("48小时内发货"), "{again}");
    assert_eq!(app.count("mp").await, 1);
    let (status, intent): (String, String) =
        sqlx::query_as("SELECT status, intent FROM inbound_messages")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), intent.as_str()),
        ("answered", "shipping_time")
    );

    // Something the library does not cover: an acknowledgement, and it waits for a person.
    let xml = text_xml(
        "gh_shop",
        "oShopper1",
        6100000000000000002,
        "帮我订一张去成都的火车票",
        ts,
    );
    let encrypt = crypt.encrypt(&xml);
    let body = format!("<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    let (status, reply) = app
        .post(
            "/wechat/callback",
            &mp_query(&crypt, &encrypt, ts, nonce),
            body,
        )
        .await;
    assert_eq!(status, 200);
    let inner = crypt
        .decrypt(&cdata_field(&reply, "Encrypt").unwrap())
        .unwrap();
    assert_eq!(
        cdata_field(&inner, "Content").as_deref(),
        Some("收到啦，客服马上来")
    );
    let (status, intent): (String, String) = sqlx::query_as(
        "SELECT status, intent FROM inbound_messages WHERE dedup_key = 'msg:6100000000000000002'",
    )
    .fetch_one(app.state.store.pool())
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), intent.as_str()),
        ("unresolved", "unknown")
    );
}

async fn official_account_plaintext_mode_and_url_verification(db: Db) {
    // An account without an EncodingAESKey runs in plaintext mode.
    let app = TestApp::start_with(db, |c| {
        c.mp.as_mut().expect("[mp] configured").encoding_aes_key = None;
    })
    .await;
    let ts = now_secs();
    let sig = kefu::crypto::sha1_signature(&[MP_TOKEN, &ts.to_string(), "42"]);
    let r = app
        .http
        .get(app.url(&format!(
            "/wechat/callback?signature={sig}&timestamp={ts}&nonce=42&echostr=abc123"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "abc123");

    let xml = text_xml("gh_shop", "oShopper2", 99, "<b>qwertyuiop</b>]]>", ts);
    let (status, reply) = app
        .post(
            "/wechat/callback",
            &format!("signature={sig}&timestamp={ts}&nonce=42&openid=oShopper2"),
            xml,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        cdata_field(&reply, "Content").as_deref(),
        Some("收到啦，客服马上来")
    );
    assert_eq!(
        cdata_field(&reply, "ToUserName").as_deref(),
        Some("oShopper2")
    );
    let content: String = sqlx::query_scalar("SELECT content FROM inbound_messages")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    // The CDATA section ends at the first `]]>`; the stray `]]>` after it is text.
    assert_eq!(
        content, "<b>qwertyuiop</b>]]>",
        "customer text stored exactly as sent"
    );

    // The same signed query again: with the same body it is WeChat's retry (answered, stored
    // once); with another body it is a replay, refused.
    let retry = text_xml("gh_shop", "oShopper2", 99, "<b>qwertyuiop</b>]]>", ts);
    let query = format!("signature={sig}&timestamp={ts}&nonce=42&openid=oShopper2");
    assert_eq!(app.post("/wechat/callback", &query, retry).await.0, 200);
    let forged = text_xml("gh_shop", "oShopper9", 4242, "我要退款到这个账户", ts);
    let (status, reason) = app.post("/wechat/callback", &query, forged).await;
    assert_eq!((status, reason.as_str()), (403, "replayed"));
    assert_eq!(app.count("mp").await, 1);

    // Without a signature a plaintext body is refused.
    let xml = text_xml("gh_shop", "oShopper2", 100, "hi", ts);
    let (status, reason) = app
        .post("/wechat/callback", &format!("timestamp={ts}&nonce=42"), xml)
        .await;
    assert_eq!((status, reason.as_str()), (400, "missing_param"));
    assert_eq!(app.count("mp").await, 1);
}

const V_TS: i64 = 1700000000;
const V_NONCE: &str = "1234567890";

async fn bad_input_gets_a_specific_4xx_and_changes_nothing(db: Db) {
    let app = TestApp::start(db).await;
    let c = wecom_crypt();
    let now = now_secs();
    let good_xml = text_xml(CORP_ID, "u", 1, "hi", now);

    // Published negative vectors (valid signatures over broken ciphertexts) at their own time.
    let vectors = [
        ("sKqRbbiSUnDhFHOvPjtUMd2aKGsnO1wGUhhgmucZyOoIM2G+JuTcG3m932brsR3vHRQv3eZH9pw7FaFrXlEnfw==", 400, "bad_padding"),
        ("sKqRbbiSUnDhFHOvPjtUMd2aKGsnO1wGUhhgmucZyOoHHBtcYZhtbSUhE9jrNG28ire9HzG8Ul/yamXZcMm0Vg==", 400, "bad_padding"),
        ("sKqRbbiSUnDhFHOvPjtUMd3wpnMxu6Hw8Fbs9OHMo9fnQOmxIfI+S07V1aNvYHF7lgAHXmZUUYcL/zkQvCTJBg==", 400, "length_past_end"),
        ("sKqRbbiSUnDhFHOvPjtUMXpetsoCvsaT4eFI89MmDwD7DXobFg6st5aLC50gwDzS0Yu1YccLdUKwDu8wn6aJtg==", 403, "receive_id_mismatch"),
        ("sKqRbbiSUnDhFHOvPjtUMXpetsoCvsaT4eFI89MmDwD7DXobFg6st5aLC50gwDzS0Yu1YccLdUKwDu8=", 400, "bad_ciphertext_length"),
        ("not/base64*!", 400, "bad_base64"),
    ];
    app.clock.set_secs(V_TS);
    for (enc, status, reason) in vectors {
        let (q, body) = sealed_raw(&c, enc, V_TS, V_NONCE);
        assert_eq!(
            app.post("/wecom/callback", &q, body).await,
            (status, reason.to_string()),
            "{reason}"
        );
    }
    app.clock.set_secs(now);

    let other_corp = kefu::crypto::MsgCrypt::new(TOKEN, AES_KEY, "wwSomeoneElse0000").unwrap();
    let (q_ok, body_ok) = sealed(&c, &good_xml, now);
    let (q_stale, body_stale) = sealed(&c, &good_xml, now - 301);
    let (q_future, body_future) = sealed(&c, &good_xml, now + 301);
    // At the ends of the range, where now − timestamp would overflow.
    let (q_min, body_min) = sealed(&c, &good_xml, i64::MIN);
    let (q_max, body_max) = sealed(&c, &good_xml, i64::MAX);
    let (q_corp, body_corp) = sealed(&other_corp, &good_xml, now);
    let (q_inner, body_inner) = sealed(&c, "<xml><MsgType>text</MsgType", now);
    let (q_nofield, body_nofield) = sealed(
        &c,
        &format!("<xml><CreateTime>{now}</CreateTime></xml>"),
        now,
    );
    let bad_sig = q_ok.replacen("msg_signature=", "msg_signature=0", 1);
    let cases: Vec<(&str, String, String, &str, u16, &str)> = vec![
        ("no query", String::new(), body_ok.clone(), "text/xml", 400, "missing_param"),
        ("no signature", format!("timestamp={now}&nonce=1"), body_ok.clone(), "text/xml", 400, "missing_param"),
        ("wrong signature", bad_sig, body_ok.clone(), "text/xml", 403, "bad_signature"),
        ("stale", q_stale, body_stale, "text/xml", 403, "stale_timestamp"),
        ("future", q_future, body_future, "text/xml", 403, "stale_timestamp"),
        ("earliest timestamp", q_min, body_min, "text/xml", 403, "stale_timestamp"),
        ("latest timestamp", q_max, body_max, "text/xml", 403, "stale_timestamp"),
        ("bad timestamp", q_ok.replace(&format!("timestamp={now}"), "timestamp=yesterday"), body_ok.clone(), "text/xml", 400, "bad_timestamp"),
        ("receive id", q_corp, body_corp, "text/xml", 403, "receive_id_mismatch"),
        ("broken envelope", q_ok.clone(), "<xml><Encrypt>".into(), "text/xml", 400, "malformed_xml"),
        ("no Encrypt", q_ok.clone(), "<xml><ToUserName>x</ToUserName></xml>".into(), "text/xml", 400, "missing_field"),
        ("broken inner xml", q_inner, body_inner, "text/xml", 400, "malformed_xml"),
        ("inner missing MsgType", q_nofield, body_nofield, "text/xml", 400, "missing_field"),
        ("huge body", q_ok.clone(), format!("<xml><Encrypt>{}</Encrypt></xml>", "A".repeat(70 * 1024)), "text/xml", 413, "body_too_large"),
        ("json", q_ok.clone(), body_ok.clone(), "application/json", 415, "unsupported_content_type"),
        ("doctype", q_ok.clone(), "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Encrypt>&e;</Encrypt></xml>".into(), "text/xml", 400, "malformed_xml"),
    ];
    for (name, q, body, ct, status, reason) in cases {
        let r = app
            .http
            .post(app.url(&format!("/wecom/callback?{q}")))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        assert_eq!(r.text().await.unwrap(), reason, "{name}");
    }
    let r = app
        .http
        .put(app.url("/wecom/callback"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.text().await.unwrap(), "method_not_allowed");

    // Official Account safe mode refuses a plaintext body and a missing msg_signature.
    let ts = now.to_string();
    let sig = kefu::crypto::sha1_signature(&[MP_TOKEN, &ts, "1"]);
    let (s, reason) = app
        .post(
            "/wechat/callback",
            &format!("signature={sig}&timestamp={ts}&nonce=1"),
            text_xml("gh", "o", 5, "x", now),
        )
        .await;
    assert_eq!((s, reason.as_str()), (400, "unsupported_encrypt_type"));
    let (s, reason) = app
        .post(
            "/wechat/callback",
            &format!("signature={sig}&timestamp={ts}&nonce=1&encrypt_type=aes"),
            body_ok.clone(),
        )
        .await;
    assert_eq!((s, reason.as_str()), (400, "missing_param"));

    // Nothing reached the store, and every refusal is counted by reason.
    assert_eq!(app.count("wecom").await, 0);
    assert_eq!(app.count("mp").await, 0);
    let m = app.metrics().await;
    for (reason, n) in [
        ("bad_padding", 2.0),
        ("bad_signature", 1.0),
        ("stale_timestamp", 4.0),
        ("body_too_large", 1.0),
        ("receive_id_mismatch", 2.0),
    ] {
        assert_eq!(
            metric(
                &m,
                &format!(
                    "kefu_callback_rejects_total{{route=\"/wecom/callback\",reason=\"{reason}\"}}"
                )
            ),
            n,
            "{reason}\n{m}"
        );
    }
    // The good message still goes through afterwards.
    assert_eq!(
        app.post("/wecom/callback", &q_ok, body_ok).await,
        (200, "success".into())
    );
    assert_eq!(app.count("wecom").await, 1);
}

async fn concurrent_deliveries_with_retries_store_each_message_once(db: Db) {
    let app = std::sync::Arc::new(TestApp::start(db).await);
    let ts = now_secs();
    let mut tasks = Vec::new();
    // 200 distinct messages, each delivered twice at the same time (a retry racing the first).
    for i in 0..200u64 {
        for _ in 0..2 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let xml = text_xml(CORP_ID, &format!("user{i}"), 8_000_000 + i, "还有货吗", ts);
                let (q, body) = sealed(&wecom_crypt(), &xml, ts);
                app.post("/wecom/callback", &q, body).await.0
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(app.count("wecom").await, 200);
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "kefu_callback_duplicates_dropped_total{channel=\"wecom\"}"
        ),
        200.0
    );
}

async fn health_readiness_and_metrics(db: Db) {
    let app = TestApp::start(db).await;
    let get = |p: &str| app.http.get(app.url(p)).send();
    assert_eq!(get("/healthz").await.unwrap().text().await.unwrap(), "ok");
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 200);
    let (q, body) = sealed(
        &wecom_crypt(),
        &text_xml(CORP_ID, "u", 77, "hi", now_secs()),
        now_secs(),
    );
    app.post("/wecom/callback", &q, body).await;
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "kefu_http_requests_total{route=\"/wecom/callback\",outcome=\"ok\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(
        m.contains("kefu_http_request_duration_seconds_bucket{le="),
        "{m}"
    );
    // A POST takes the direct way in to its handler, any other method the router's: both
    // count under the one route, as when every request went through the router.
    let r = app
        .http
        .put(app.url("/wecom/callback"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "kefu_http_requests_total{route=\"/wecom/callback\",outcome=\"rejected\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "kefu_http_request_duration_seconds_count{route=\"/wecom/callback\"}"
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "kefu_messages_recorded_total{channel=\"wecom\",msg_type=\"text\"}"
        ),
        1.0
    );
    assert!(
        !m.contains(TOKEN) && !m.contains(AES_KEY),
        "no secrets in metrics"
    );
    // A message type WeChat does not have is counted as `other`: senders cannot grow the
    // label set.
    let odd = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[u]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[zz_made_up_1]]></MsgType><MsgId>78</MsgId></xml>".replace("<CreateTime>1<", &format!("<CreateTime>{}<", now_secs()));
    let (q, body) = sealed(&wecom_crypt(), &odd, now_secs());
    assert_eq!(app.post("/wecom/callback", &q, body).await.0, 200);
    let m = app.metrics().await;
    assert!(!m.contains("zz_made_up_1"), "{m}");
    assert_eq!(
        metric(
            &m,
            "kefu_messages_recorded_total{channel=\"wecom\",msg_type=\"other\"}"
        ),
        1.0
    );

    // The page is what it says it is, and a real OpenMetrics parser reads all of it.
    let r = get("/metrics").await.unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let families = parse_openmetrics(&r.text().await.unwrap());
    for family in [
        "kefu_http_requests",
        "kefu_http_request_duration_seconds",
        "kefu_messages_recorded",
    ] {
        assert!(
            families[family]["samples"].as_u64().unwrap() > 0,
            "{families}"
        );
    }
    assert_eq!(families["kefu_http_requests"]["type"], "counter");
    assert_eq!(
        families["kefu_http_request_duration_seconds"]["type"],
        "histogram"
    );

    // Readiness follows the store.
    app.state.store.close().await;
    assert_eq!(get("/readyz").await.unwrap().status(), 503);
}

/// The families of an OpenMetrics page as prometheus_client's parser reads them (see
/// `tests/peers/openmetrics_check.py`); fails the test if it cannot parse the page.
fn parse_openmetrics(page: &str) -> serde_json::Value {
    use std::io::Write;
    let python = std::env::var("KEFU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/openmetrics_check.py"
    );
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the page: {}\n{page}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
