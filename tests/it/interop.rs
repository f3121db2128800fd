//! Interop with an independent WXBizMsgCrypt implementation: wechatpy (PyPI), driven through
//! `tests/peers/wechatpy_peer.py`. It encrypts and we decrypt, we encrypt and it decrypts,
//! both at the crypto level and through the running server.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::common::*;
use serde_json::{json, Value};

struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start() -> Peer {
        let python = std::env::var("KEFU_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/wechatpy_peer.py");
        let mut child = Command::new(&python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python}: {e} (the test command installs wechatpy)")
            });
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("peer answered {line:?}: is wechatpy installed?"));
        v
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Messages of many lengths (0 .. 10 KiB), Chinese and ASCII, to hit every padding length.
fn samples() -> Vec<String> {
    let pool: Vec<char> = "你好请问快递到哪了退款尺码abcXYZ 0123<>&\"'😀"
        .chars()
        .collect();
    let mut out = vec![String::new(), "x".repeat(26), "我".repeat(4000)];
    let mut s: u64 = 0x9E3779B97F4A7C15;
    for i in 0..120 {
        let target = if i < 64 { i } else { (i * 83) % 10_240 };
        let mut m = String::new();
        while m.len() < target {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            m.push(pool[(s % pool.len() as u64) as usize]);
        }
        out.push(m);
    }
    out
}

#[test]
fn wechatpy_encrypts_and_kefu_decrypts() {
    let mut peer = Peer::start();
    let ours = wecom_crypt();
    for (i, msg) in samples().into_iter().enumerate() {
        let nonce = format!("n{i}");
        let ts = (1_700_000_000 + i).to_string();
        let r = peer.call(
            json!({"op": "encrypt", "token": TOKEN, "key": AES_KEY, "id": CORP_ID,
            "msg": msg, "nonce": nonce, "timestamp": ts}),
        );
        let xml = r["xml"].as_str().unwrap_or_else(|| panic!("{r}"));
        let enc = cdata_field(xml, "Encrypt").unwrap();
        let sig = cdata_field(xml, "MsgSignature").unwrap();
        assert_eq!(
            ours.verify_and_decrypt(&sig, &ts, &nonce, &enc).unwrap(),
            msg,
            "sample {i}"
        );
    }
}

#[test]
fn kefu_encrypts_and_wechatpy_decrypts() {
    let mut peer = Peer::start();
    let ours = wecom_crypt();
    for (i, msg) in samples().into_iter().enumerate() {
        let ts = (1_700_000_000 + i).to_string();
        let xml = ours.encrypt_reply(&msg, &ts, "abc");
        let r = peer.call(json!({"op": "decrypt", "token": TOKEN, "key": AES_KEY, "id": CORP_ID,
            "xml": xml, "signature": cdata_field(&xml, "MsgSignature").unwrap(), "timestamp": ts, "nonce": "abc"}));
        assert_eq!(r["msg"].as_str(), Some(msg.as_str()), "sample {i}: {r}");
    }
    // And the peer refuses what we would refuse: a receive id that is not its own.
    let other = kefu::crypto::MsgCrypt::new(TOKEN, AES_KEY, "wwSomeoneElse0000").unwrap();
    let xml = other.encrypt_reply("hi", "1", "n");
    let r = peer.call(json!({"op": "decrypt", "token": TOKEN, "key": AES_KEY, "id": CORP_ID,
        "xml": xml, "signature": cdata_field(&xml, "MsgSignature").unwrap(), "timestamp": "1", "nonce": "n"}));
    assert!(r["error"].is_string(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_account_round_trip_through_the_server_with_wechatpy() {
    let app = TestApp::start(Db::Sqlite).await;
    let mut peer = Peer::start();
    let ts = now_secs();
    let msg = text_xml(
        "gh_shop",
        "oWechatpy",
        6200000000000000001,
        "请问支持七天无理由退货吗？😀",
        ts,
    );
    let nonce = "987654";
    let r = peer.call(
        json!({"op": "encrypt", "token": MP_TOKEN, "key": MP_AES_KEY, "id": MP_APP_ID,
        "msg": msg, "nonce": nonce, "timestamp": ts.to_string()}),
    );
    let envelope = r["xml"].as_str().unwrap().to_string();
    let msg_sig = cdata_field(&envelope, "MsgSignature").unwrap();
    let sig = kefu::crypto::sha1_signature(&[MP_TOKEN, &ts.to_string(), nonce]);
    let q = format!("signature={sig}&timestamp={ts}&nonce={nonce}&openid=oWechatpy&encrypt_type=aes&msg_signature={msg_sig}");
    let (status, reply) = app.post("/wechat/callback", &q, envelope).await;
    assert_eq!(status, 200, "{reply}");

    // wechatpy opens our encrypted passive reply.
    let r = peer.call(json!({"op": "decrypt", "token": MP_TOKEN, "key": MP_AES_KEY, "id": MP_APP_ID,
        "xml": reply, "signature": cdata_field(&reply, "MsgSignature").unwrap(),
        "timestamp": plain_field(&reply, "TimeStamp").unwrap(), "nonce": cdata_field(&reply, "Nonce").unwrap()}));
    let inner = r["msg"].as_str().unwrap_or_else(|| panic!("{r}"));
    let content = cdata_field(inner, "Content").unwrap();
    assert!(
        content.contains("7天无理由退货"),
        "the return-policy answer: {content}"
    );
    assert_eq!(
        cdata_field(inner, "ToUserName").as_deref(),
        Some("oWechatpy")
    );
    let stored: String = sqlx::query_scalar("SELECT content FROM inbound_messages")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(stored, "请问支持七天无理由退货吗？😀");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_url_verification_interops_both_ways() {
    let app = TestApp::start(Db::Sqlite).await;
    let mut peer = Peer::start();
    let ts = now_secs().to_string();
    // Our echostr, checked by wechatpy's enterprise crypto.
    let ours = wecom_crypt();
    let echostr = ours.encrypt("8843928373");
    let sig = ours.signature(&ts, "77", &echostr);
    let r = peer.call(
        json!({"op": "verify_url", "token": TOKEN, "key": AES_KEY, "id": CORP_ID,
        "signature": sig, "timestamp": ts, "nonce": "77", "echostr": echostr}),
    );
    assert_eq!(r["msg"].as_str(), Some("8843928373"), "{r}");

    // wechatpy's ciphertext, answered by our server.
    let r = peer.call(
        json!({"op": "encrypt", "token": TOKEN, "key": AES_KEY, "id": CORP_ID,
        "msg": "5927377162", "nonce": "78", "timestamp": ts}),
    );
    let xml = r["xml"].as_str().unwrap();
    let enc = cdata_field(xml, "Encrypt").unwrap();
    let sig = cdata_field(xml, "MsgSignature").unwrap();
    let q = serde_urlencoded::to_string([
        ("msg_signature", sig.as_str()),
        ("timestamp", ts.as_str()),
        ("nonce", "78"),
        ("echostr", enc.as_str()),
    ])
    .unwrap();
    let body = app
        .http
        .get(app.url(&format!("/wecom/callback?{q}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "5927377162");
}
