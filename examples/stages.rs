//! What each stage of an Official Account callback costs on one idle core, outside the
//! server: the work `POST /wechat/callback` does on a runtime thread besides HTTP, the
//! middleware and the hand-off to the writer. It reads the load test's own requests
//! (`bench/load.sh` writes them with the `loadgen` example), so the figures belong beside
//! that run's CPU per request.
//! `cargo run --release --example stages -- [TEXT_REQUESTS] [IMAGE_REQUESTS] [N]`

use std::hint::black_box;
use std::time::Instant;

use kefu::crypto::{signature_of_matches, MsgCrypt};
use kefu::intent::{Classifier, Thresholds};
use kefu::wecom::xml::text_reply;
use kefu::wecom::{parse_envelope, parse_message};

// kefu's own allocator, so allocation costs what it costs in the server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The sample kefu.toml's [mp] section, as loadgen uses.
const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const APP_ID: &str = "wx5823bf96d3bd56c7";

struct Request {
    raw_query: String,
    query: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn param(&self, name: &str) -> &str {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A decrypted text message, with the library reply intake would answer it with.
struct Text<'a> {
    content: String,
    from: String,
    to: String,
    reply: Option<&'a kefu::library::Reply>,
}

fn read(path: &str, n: usize) -> Vec<Request> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e} (run the loadgen example first)");
        std::process::exit(2)
    });
    text.lines()
        .take(n)
        .filter_map(|l| l.split_once('\t'))
        .map(|(q, b)| Request {
            raw_query: q.to_owned(),
            query: serde_urlencoded::from_str(q).unwrap_or_default(),
            body: b.to_owned(),
        })
        .collect()
}

/// Run `f` over every item once, then `rounds` times timed; print and return µs per item.
fn time<R, T>(label: &str, reqs: &[R], rounds: usize, mut f: impl FnMut(&R) -> T) -> f64 {
    // One round first, untimed: the first touch of the classifier's tables faults them in.
    for r in reqs {
        black_box(f(r));
    }
    let started = Instant::now();
    for _ in 0..rounds {
        for r in reqs {
            black_box(f(r));
        }
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / (rounds * reqs.len()) as f64;
    println!("{label:<58} {us:>8.2} µs");
    us
}

fn main() {
    let mut args = std::env::args().skip(1);
    let text_path = args
        .next()
        .unwrap_or_else(|| "bench/out/requests.tsv".into());
    let image_path = args.next().unwrap_or_else(|| "bench/out/images.tsv".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let texts = read(&text_path, n);
    let images = read(&image_path, n);
    let crypt = MsgCrypt::new(TOKEN, KEY, APP_ID).expect("sample key");
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/replies"));
    let library = kefu::library::load(dir).expect("shipped library loads");
    let classifier = Classifier::build(library, Thresholds::default()).expect("index builds");
    let rounds = 5;
    println!(
        "{} text and {} image requests, {rounds} rounds, one core",
        texts.len(),
        images.len()
    );

    // Intake, every message: the query, both signatures, the envelope, AES, the XML.
    let intake = |r: &Request| {
        // As intake reads them: pairs borrowed from the query, a signature compared on the stack.
        let q = form_urlencoded::parse(r.raw_query.as_bytes()).count();
        let (ts, nonce) = (r.param("timestamp"), r.param("nonce"));
        let plain_ok = signature_of_matches([TOKEN, ts, nonce], r.param("signature"));
        let env = parse_envelope(&r.body).expect("envelope");
        let plain = crypt
            .verify_and_decrypt(r.param("msg_signature"), ts, nonce, &env.encrypt)
            .expect("signed");
        let msg = parse_message(&plain).expect("message");
        let key = msg.dedup_key(&plain);
        (q, plain_ok, msg, key)
    };
    let image_intake = time(
        "image: query, signatures, decrypt, parse",
        &images,
        rounds,
        intake,
    );
    let text_intake = time(
        "text:  query, signatures, decrypt, parse",
        &texts,
        rounds,
        intake,
    );

    // Text only: what the classifier decides, and the passive reply.
    let contents: Vec<Text> = texts
        .iter()
        .map(|r| {
            let (_, _, msg, _) = intake(r);
            let content = msg.text().unwrap_or("").to_owned();
            // The reply intake would send: the library's, when the verdict answers.
            let v = classifier.verdict(&content);
            let reply = v.reply.filter(|_| v.auto_answer());
            Text {
                from: msg.from_user.clone().unwrap_or_default(),
                to: msg.to_user.clone(),
                content,
                reply,
            }
        })
        .collect();
    let verdict = time(
        "text:  classifier verdict (intake's)",
        &contents,
        rounds,
        |r| {
            let v = classifier.verdict(&r.content);
            (v.intent.len(), v.confidence, v.reply.map(|r| r.id.len()))
        },
    );
    time(
        "text:  whole classification (the console's)",
        &contents,
        rounds,
        |r| classifier.classify(&r.content),
    );
    let reply = time(
        "text:  the reply rendered, in XML, encrypted and signed",
        &contents,
        rounds,
        |r| {
            let text = match r.reply {
                Some(reply) => classifier.library().render(reply, None, None),
                None => "收到啦，客服马上来".to_owned(),
            };
            let xml = text_reply(&r.from, &r.to, 1_700_000_000, &text);
            crypt.encrypt_reply(&xml, "1700000000", "1234567890")
        },
    );
    println!(
        "sum of the stages: image {image_intake:.1} µs; text {:.1} µs (intake {text_intake:.1}, verdict {verdict:.1}, reply {reply:.1})",
        text_intake + verdict + reply
    );
}
