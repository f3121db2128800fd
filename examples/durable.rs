//! The load test's durable-intake baselines: the least any server that records a callback
//! before answering it must do, on the same runtime settings as kefu.
//!
//! - axum, on the same route as kefu's callback;
//! - one SQLite writer thread (rusqlite, the same libsqlite3 as kefu) that takes everything
//!   queued and commits it as one transaction: WAL, `synchronous=FULL`, so an fsync per
//!   commit;
//! - one row per message with a unique key, in a rowid table with the key's unique index and
//!   nothing else;
//! - the answer only after the commit.
//!
//! Three modes. `raw` (the default, what the targets are measured against) verifies, decrypts,
//! parses and classifies nothing: the key is the query's `timestamp` and `nonce`, which a
//! sender does not repeat, and the row holds the body as received; what it costs is HTTP, the
//! hand-off to the writer and back, and the durable commit. `intake` adds the least an
//! Official Account safe-mode intake must do on top, written directly on the same crates as
//! kefu (RustCrypto, base64, quick-xml) with nothing borrowed from kefu: the timestamp's
//! freshness and both signatures checked (in constant time), the envelope's `Encrypt` found,
//! base64-decoded, AES-256-CBC decrypted and its padding, length and AppID checked, the
//! message's XML (root `<xml>`, no DOCTYPE, well formed) parsed for the fields a
//! shop needs to find it again (MsgId, MsgType, FromUserName, ToUserName, CreateTime), and a
//! row keyed by MsgId holding those and the decrypted XML. It is the floor under kefu's image
//! path: what is left between the two is kefu's own arrangement, not the work.
//!
//! `text` is the least kefu's text path must do: `intake`, plus the message's `Content` read,
//! classified by kefu's own classifier over the shipped reply library (the work itself: a
//! cheaper classifier of the same accuracy would be a better classifier, not a better
//! server), the reply chosen as kefu chooses it (the library's answer when the verdict may be
//! answered at once, else an acknowledgement), stored in the row with the text and the
//! intent, and after the commit answered as a passive reply encrypted with kefu's `MsgCrypt`
//! (AES-256-CBC, base64, the SHA-1 signature). It has none of kefu's HTTP limits, metrics,
//! duplicate answers, tickets or configuration: what is left between it and kefu's text path
//! is kefu's arrangement.
//!
//! `reply` is `text` with the classifier taken out: every message gets the acknowledgement,
//! stored with it and sent back encrypted. No classifier can cost less than nothing, so
//! this is the floor under any text path that records the message and answers it with a
//! passive reply, whatever it classifies with.
//! `cargo run --release --example durable -- 127.0.0.1:18083 /tmp/durable.db [raw|intake|text|reply]`

use aes::cipher::{block_padding::NoPadding, BlockModeDecrypt, KeyIvInit};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use base64::Engine;
use quick_xml::events::Event;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

// The sample kefu.toml's [mp] section, as loadgen signs and encrypts with.
const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const APP_ID: &str = "wx5823bf96d3bd56c7";

/// Up to this many queued rows share one transaction (kefu's writer uses the same bound).
const MAX_BATCH: usize = 256;

struct Job {
    key: String,
    body: axum::body::Bytes,
    /// In `intake` and `text` modes: what was read from the decrypted message.
    message: Option<Message>,
    done: oneshot::Sender<bool>,
}

/// The decrypted message's fields a shop needs to find it again, and its XML.
struct Message {
    msg_type: String,
    from_user: String,
    to_user: String,
    create_time: i64,
    received_at: i64,
    xml: String,
    /// In `text` mode: the shopper's text, its intent and the reply given.
    content: Option<String>,
    intent: Option<String>,
    reply: Option<String>,
}

#[derive(Clone)]
struct Writer(mpsc::Sender<Job>);

/// `intake` mode's state: the writer and the account's AES key.
#[derive(Clone)]
struct Intake {
    writer: Writer,
    key: [u8; 32],
    /// In `text` and `reply` modes: the classifier (`text` only) and the account's crypt for
    /// the passive reply.
    text: Option<std::sync::Arc<(Option<kefu::intent::Classifier>, kefu::crypto::MsgCrypt)>>,
}

/// What the baseline does; each mode does all that the one before it does, but `reply`
/// leaves out `text`'s classifier.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Store the body as received, answer `success`.
    Raw,
    /// Verify, decrypt and parse; store the message's fields.
    Intake,
    /// `Intake`, then classify, store the reply and answer with it encrypted.
    Text,
    /// `Text` without the classifier: every message gets the acknowledgement.
    Reply,
}

/// What `text` mode answers when the verdict is not to be answered at once (kefu's default
/// `[callback] ack_text` in the sample kefu.toml).
const ACK: &str = "您好，消息已收到，客服会尽快为您解答～";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18083".into());
    let path = args.next().unwrap_or_else(|| "bench/out/durable.db".into());
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mode = match args.next().as_deref() {
        None | Some("raw") => Mode::Raw,
        Some("intake") => Mode::Intake,
        Some("text") => Mode::Text,
        Some("reply") => Mode::Reply,
        Some(other) => {
            return Err(format!("unknown mode {other:?}: raw, intake, text or reply").into())
        }
    };
    let conn = rusqlite::Connection::open(&path)?;
    let journal: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(format!("journal_mode is {journal}, not wal").into());
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS intake (key TEXT NOT NULL UNIQUE, body BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS messages (key TEXT NOT NULL UNIQUE, msg_type TEXT NOT NULL,
           from_user TEXT NOT NULL, to_user TEXT NOT NULL, create_time INTEGER NOT NULL,
           received_at INTEGER NOT NULL, xml TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS texts (key TEXT NOT NULL UNIQUE, msg_type TEXT NOT NULL,
           from_user TEXT NOT NULL, to_user TEXT NOT NULL, create_time INTEGER NOT NULL,
           received_at INTEGER NOT NULL, xml TEXT NOT NULL, content TEXT NOT NULL,
           intent TEXT NOT NULL, reply TEXT NOT NULL)",
    )?;
    let (tx, rx) = mpsc::channel::<Job>(4096);
    std::thread::Builder::new()
        .name("durable-writer".into())
        .spawn({
            let rt = tokio::runtime::Handle::current();
            move || writer(conn, rx, rt)
        })?;

    let app = if mode != Mode::Raw {
        let mut key = [0u8; 32];
        // EncodingAESKey is 43 characters of base64 whose last one carries unused bits.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let decoded = lenient.decode(format!("{KEY}="))?;
        key.copy_from_slice(&decoded);
        let text = if matches!(mode, Mode::Text | Mode::Reply) {
            let classifier = if mode == Mode::Text {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("replies");
                let library = kefu::library::load(&dir)?;
                Some(kefu::intent::Classifier::build(
                    library,
                    kefu::intent::Thresholds::default(),
                )?)
            } else {
                None
            };
            let crypt = kefu::crypto::MsgCrypt::new(TOKEN, KEY, APP_ID)?;
            Some(std::sync::Arc::new((classifier, crypt)))
        } else {
            None
        };
        axum::Router::new()
            .route("/wechat/callback", axum::routing::post(intake_decrypt))
            .with_state(Intake {
                writer: Writer(tx),
                key,
                text,
            })
    } else {
        axum::Router::new()
            .route("/wechat/callback", axum::routing::post(intake))
            .with_state(Writer(tx))
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn intake(
    State(writer): State<Writer>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    // The unique key: the sender's timestamp and nonce from the query string.
    let param = |name: &str| {
        query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    };
    let (ts, nonce) = (param("timestamp"), param("nonce"));
    if ts.is_empty() || nonce.is_empty() {
        return (StatusCode::BAD_REQUEST, "no timestamp or nonce");
    }
    let key = format!("{ts}:{nonce}");
    store_and_answer(&writer, key, body, None).await
}

async fn store_and_answer(
    writer: &Writer,
    key: String,
    body: axum::body::Bytes,
    message: Option<Message>,
) -> (StatusCode, &'static str) {
    let (done, wait) = oneshot::channel();
    let job = Job {
        key,
        body,
        message,
        done,
    };
    if writer.0.send(job).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "writer gone");
    }
    match wait.await {
        Ok(true) => (StatusCode::OK, "success"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "not stored"),
    }
}

/// `intake` and `text` modes: verify, decrypt and parse a safe-mode Official Account message,
/// then store it keyed by its MsgId (in `text` mode, with its verdict and reply, and answer
/// with the reply).
async fn intake_decrypt(
    State(state): State<Intake>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let received_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let query = query.as_deref().unwrap_or("");
    let message = match read_message(&state.key, query, &body, state.text.is_some()) {
        Ok(m) => m,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let (key, mut message) = message;
    message.received_at = received_at;
    let Some(text) = state.text.as_deref() else {
        return store_and_answer(&state.writer, key, axum::body::Bytes::new(), Some(message))
            .await
            .into_response();
    };
    // `text` mode: classify, choose the reply, store it with the message, answer with it.
    let (classifier, crypt) = text;
    let Some(content) = message.content.as_deref() else {
        return (StatusCode::BAD_REQUEST, "no Content").into_response();
    };
    let (intent, reply) = match classifier {
        Some(classifier) => {
            let verdict = classifier.verdict(content);
            let reply = match verdict.reply {
                Some(r) if verdict.auto_answer() => classifier.library().render(r, None, None),
                _ => ACK.to_owned(),
            };
            (verdict.intent, reply)
        }
        // `reply` mode: no classifier; every message is acknowledged.
        None => ("unclassified", ACK.to_owned()),
    };
    message.intent = Some(intent.to_owned());
    message.reply = Some(reply.clone());
    let (shopper, account) = (message.from_user.clone(), message.to_user.clone());
    let (status, _) =
        store_and_answer(&state.writer, key, axum::body::Bytes::new(), Some(message)).await;
    if status != StatusCode::OK {
        return (status, "not stored").into_response();
    }
    let now = received_at / 1000;
    let xml = kefu::wecom::xml::text_reply(&shopper, &account, now, &reply);
    let nonce = (received_at as u32).to_string();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/xml; charset=utf-8",
        )],
        crypt.encrypt_reply(&xml, &now.to_string(), &nonce),
    )
        .into_response()
}

fn sha1_hex_matches(parts: &mut [&str], received: &str) -> bool {
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts.iter() {
        h.update(p.as_bytes());
    }
    let mut hex = [0u8; 40];
    for (i, b) in h.finalize().iter().enumerate() {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        hex[2 * i] = DIGITS[(b >> 4) as usize];
        hex[2 * i + 1] = DIGITS[(b & 15) as usize];
    }
    received.len() == 40 && bool::from(hex.ct_eq(received.as_bytes()))
}

/// The message's key (`msg:` and its MsgId) and fields, or why it was refused.
/// With `content` (`text` mode), the message's `Content` too.
fn read_message(
    key: &[u8; 32],
    query: &str,
    body: &[u8],
    content: bool,
) -> Result<(String, Message), &'static str> {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    };
    let (ts, nonce) = (param("timestamp"), param("nonce"));
    // Fresh within the window kefu is run with in the load test (an hour).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match ts.parse::<i64>() {
        Ok(t) if (now - t).abs() <= 3600 => {}
        _ => return Err("stale or bad timestamp"),
    }
    if !sha1_hex_matches(&mut [TOKEN, ts, nonce], param("signature")) {
        return Err("bad signature");
    }
    let body = std::str::from_utf8(body).map_err(|_| "body not UTF-8")?;
    let [encrypt] = fields(body, ["Encrypt"]);
    let encrypt = encrypt.ok_or("no Encrypt")?;
    if !sha1_hex_matches(&mut [TOKEN, ts, nonce, encrypt], param("msg_signature")) {
        return Err("bad msg_signature");
    }
    let mut buf = base64::engine::general_purpose::STANDARD
        .decode(encrypt)
        .map_err(|_| "bad base64")?;
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let plain = cbc::Decryptor::<aes::Aes256>::new(key.into(), &iv.into())
        .decrypt_padded::<NoPadding>(&mut buf)
        .map_err(|_| "bad ciphertext length")?;
    let pad = *plain.last().ok_or("empty")? as usize;
    if !(1..=32).contains(&pad)
        || pad > plain.len()
        || plain[plain.len() - pad..]
            .iter()
            .any(|b| *b as usize != pad)
    {
        return Err("bad padding");
    }
    let plain = &plain[..plain.len() - pad];
    let len_at = plain.get(16..20).ok_or("too short")?;
    let len = u32::from_be_bytes([len_at[0], len_at[1], len_at[2], len_at[3]]) as usize;
    let end = 20usize
        .checked_add(len)
        .filter(|e| *e <= plain.len())
        .ok_or("bad length")?;
    if &plain[end..] != APP_ID.as_bytes() {
        return Err("wrong AppID");
    }
    let xml = std::str::from_utf8(&plain[20..end]).map_err(|_| "message not UTF-8")?;
    const NAMES: [&str; 5] = [
        "MsgId",
        "MsgType",
        "FromUserName",
        "ToUserName",
        "CreateTime",
    ];
    let ([msg_id, msg_type, from_user, to_user, create_time], content) = if content {
        let [a, b, c, d, e, content] = fields(
            xml,
            [NAMES[0], NAMES[1], NAMES[2], NAMES[3], NAMES[4], "Content"],
        );
        ([a, b, c, d, e], content)
    } else {
        (fields(xml, NAMES), None)
    };
    let msg_id = msg_id.ok_or("no MsgId")?;
    let message = Message {
        msg_type: msg_type.ok_or("no MsgType")?.to_owned(),
        from_user: from_user.ok_or("no FromUserName")?.to_owned(),
        to_user: to_user.ok_or("no ToUserName")?.to_owned(),
        create_time: create_time
            .and_then(|t| t.trim().parse().ok())
            .ok_or("no CreateTime")?,
        received_at: 0,
        xml: xml.to_owned(),
        content: content.map(str::to_owned),
        intent: None,
        reply: None,
    };
    Ok((format!("msg:{msg_id}"), message))
}

/// The text (one CDATA section, or one run of plain text, trimmed) of each of `<xml>`'s
/// children named in `names`, borrowed from `xml`, in one pass. All `None` when the XML is
/// malformed, its root is not `<xml>` or it declares a DOCTYPE; `None` for a missing field or
/// one whose text has an entity reference (kefu resolves those; none of the load's have one).
fn fields<'a, const N: usize>(xml: &'a str, names: [&str; N]) -> [Option<&'a str>; N] {
    let mut out = [None; N];
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    let mut at: Option<usize> = None;
    let mut entity = [false; N];
    let borrowed = |c: std::borrow::Cow<'a, str>| match c {
        std::borrow::Cow::Borrowed(b) => Some(b.trim()),
        std::borrow::Cow::Owned(_) => None,
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if depth == 0 && e.name().as_ref() != "xml" {
                    return [None; N];
                }
                depth += 1;
                at = (depth == 2)
                    .then(|| names.iter().position(|n| e.name().as_ref() == *n))
                    .flatten();
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                at = None;
            }
            Ok(Event::CData(c)) => {
                if let Some(i) = at {
                    out[i] = borrowed(c.into_inner());
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(i) = at {
                    // Whitespace around a CDATA section is not the field's text.
                    match borrowed(t.into_inner()) {
                        Some("") => {
                            out[i].get_or_insert("");
                        }
                        Some(text) => out[i] = Some(text),
                        None => entity[i] = true,
                    }
                }
            }
            Ok(Event::GeneralRef(_)) => {
                if let Some(i) = at {
                    entity[i] = true;
                }
            }
            Ok(Event::Eof) => break,
            Ok(Event::DocType(_)) | Err(_) => return [None; N],
            Ok(_) => {}
        }
    }
    for (o, e) in out.iter_mut().zip(entity) {
        if e {
            *o = None;
        }
    }
    out
}

/// Take what is queued (up to [`MAX_BATCH`]), store it in one transaction, answer each job
/// (the wake-ups are left to the runtime, so the writer goes straight back to the queue).
fn writer(mut conn: rusqlite::Connection, mut rx: mpsc::Receiver<Job>, rt: tokio::runtime::Handle) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let stored = store(&mut conn, &batch).is_ok();
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        rt.spawn(async move {
            for job in jobs {
                let _ = job.done.send(stored);
            }
        });
    }
}

fn store(conn: &mut rusqlite::Connection, batch: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO intake (key, body) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        let mut message = tx.prepare_cached(
            "INSERT INTO messages (key, msg_type, from_user, to_user, create_time, received_at, \
             xml) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?;
        let mut text = tx.prepare_cached(
            "INSERT INTO texts (key, msg_type, from_user, to_user, create_time, received_at, \
             xml, content, intent, reply) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT DO NOTHING",
        )?;
        for job in batch {
            match &job.message {
                None => insert.execute((&job.key, &job.body[..]))?,
                Some(
                    m @ Message {
                        content: Some(content),
                        intent: Some(intent),
                        reply: Some(reply),
                        ..
                    },
                ) => text.execute((
                    &job.key,
                    &m.msg_type,
                    &m.from_user,
                    &m.to_user,
                    m.create_time,
                    m.received_at,
                    &m.xml,
                    content,
                    intent,
                    reply,
                ))?,
                Some(m) => message.execute((
                    &job.key,
                    &m.msg_type,
                    &m.from_user,
                    &m.to_user,
                    m.create_time,
                    m.received_at,
                    &m.xml,
                ))?,
            };
        }
    }
    tx.commit()
}
