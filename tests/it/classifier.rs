//! The reply library and classifier as a shop uses them: checking the library, the CLI,
//! answering Official Account questions, and reloading the library while traffic flows.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kefu");

fn copy_library(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(replies_dir()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn the_shipped_library_passes_its_own_check() {
    let out = Command::new(BIN)
        .args(["replies", "check"])
        .env("KEFU_REPLIES_DIR", replies_dir())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: usize = text
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(replies >= 500, "{text}");
    assert!(text.contains("36 of 36 intents covered: ok"), "{text}");
}

#[test]
fn replies_check_names_file_and_line_for_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.toml"),
        "[shop]\nshop_name = \"测试店\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        r#"[[reply]]
id = "a.one"
intent = "tracking"
title = "t"
answer = "{{nickname}}您好，{{shop_name}}帮您查"
questions = ["快递到哪了"]

[[reply]]
id = "a.one"
intent = "tracking"
title = "dup"
answer = "x"
questions = ["物流呢"]

[[reply]]
id = "a.two"
intent = "no_such_intent"
title = "t"
answer = "满{{free_shipping}}包邮"
questions = ["快递到哪了"]

[[reply]]
id = "a.three"
intent = "promotion"
title = "t"
answer = "   "
questions = ["有活动吗"]

[[reply]]
id = "a.four"
intent = "promotion"
title = "t"
answer = "全网最低价，加微信私聊"
questions = ["便宜吗"]
menu = ["a.missing"]
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        "[out_of_scope]\nquestions = [\n  \"明天天气怎么样\",\n  \"快递到哪了\",\n  \" \",\n]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["replies", "check"])
        .env("KEFU_REPLIES_DIR", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for (file, line, needle) in [
        ("a.toml", 9, "duplicate id `a.one`"),
        ("a.toml", 17, "unknown intent `no_such_intent`"),
        (
            "a.toml",
            19,
            "undefined template variable `{{free_shipping}}`",
        ),
        (
            "a.toml",
            20,
            "is under `no_such_intent` here and under `tracking`",
        ),
        ("a.toml", 26, "empty answer in `a.three`"),
        ("a.toml", 30, "contains `最低价`"),
        ("a.toml", 30, "加微信"),
        ("a.toml", 35, "menu refers to unknown reply id `a.missing`"),
        ("b.toml", 4, "is out of scope here and under `tracking`"),
        ("b.toml", 5, "empty out-of-scope question"),
    ] {
        let want = format!("{}:{line}: ", dir.path().join(file).display());
        assert!(
            text.lines()
                .any(|l| l.starts_with(&want) && l.contains(needle)),
            "expected `{want}…{needle}` in:\n{text}"
        );
    }
    assert!(text.contains("intent `greeting` has no replies"), "{text}");
}

/// What `kefu classify` prints for `input` (one message a line), with the shipped library.
fn classify_cli(input: String) -> String {
    let mut child = Command::new(BIN)
        .arg("classify")
        .env("KEFU_REPLIES_DIR", replies_dir())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Fed from a thread: a long input would otherwise fill the pipes both ways.
    let feed = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    feed.join().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// `kefu calibrate` cross-validates over the shipped library and prints the thresholds it
/// fits; the defaults are those values, and its table says how they were read off.
#[test]
fn calibrate_fits_the_default_thresholds_on_the_shipped_library() {
    let out = Command::new(BIN)
        .args(["calibrate", "--folds", "5", "--mistakes"])
        .env("KEFU_REPLIES_DIR", replies_dir())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let value = |key: &str| -> f32 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .parse()
            .unwrap()
    };
    let defaults = kefu::intent::Thresholds::default();
    assert_eq!(value("unknown_below"), defaults.unknown_below, "{text}");
    assert_eq!(value("answer_at"), defaults.answer_at, "{text}");
    assert!(text.contains("held-out samples"), "{text}");
    // the wrong share among held-out samples answered at once falls as the threshold rises
    let rows: Vec<(f32, f32)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[2].ends_with('%')).then(|| {
                (
                    f[0].parse().unwrap(),
                    f[3].trim_end_matches('%').parse().unwrap(),
                )
            })
        })
        .collect();
    assert!(rows.len() >= 10, "{text}");
    assert!(rows.last().unwrap().1 < rows.first().unwrap().1, "{text}");
    assert!(
        text.contains("answered at once with another intent"),
        "{text}"
    );
}

#[test]
fn classify_cli_prints_one_json_object_per_line() {
    let out = classify_cli(
        "我的快递到哪了？\n转人工！！\n帮我订一张去成都的火车票\n\"<script>\"\n".to_string(),
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for l in &lines {
        for key in [
            "text",
            "intent",
            "confidence",
            "reply_id",
            "handoff",
            "suggestions",
        ] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
        let c = l["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
    }
    assert_eq!(lines[0]["intent"], "tracking");
    assert_eq!(lines[0]["handoff"], false);
    assert!(lines[0]["reply_id"]
        .as_str()
        .unwrap()
        .starts_with("tracking."));
    assert_eq!(lines[0]["suggestions"].as_array().unwrap().len(), 3);
    assert_eq!(lines[1]["intent"], "human_agent");
    assert_eq!(lines[1]["handoff"], true);
    assert_eq!(lines[2]["intent"], "unknown");
    assert_eq!(lines[2]["handoff"], true);
    assert_eq!(lines[3]["text"], "\"<script>\"");
}

/// `kefu classify` over every labelled set gives exactly the output pinned in
/// `tests/fixtures/classify_pinned/`: a dependency upgrade or a refactor that moves one score
/// by a thousandth shows here. A deliberate change to the classifier re-pins the files with
/// `KEFU_PIN_CLASSIFY=1 cargo nextest run classify_output` and says why in its commit.
#[test]
fn classify_output_is_unchanged_over_every_labelled_set() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let sets = [
        ("dev", "dev.tsv"),
        ("holdout", "holdout.tsv"),
        ("elders_voice", "blind/elders_voice.tsv"),
        ("slang_mixed", "blind/slang_mixed.tsv"),
        ("stories_traditional", "blind/stories_traditional.tsv"),
    ];
    let pin = std::env::var_os("KEFU_PIN_CLASSIFY").is_some();
    for (name, file) in sets {
        let labelled = std::fs::read_to_string(format!("{fixtures}/{file}")).unwrap();
        let texts: String = labelled
            .lines()
            .skip(1)
            .map(|l| format!("{}\n", l.split('\t').next().unwrap()))
            .collect();
        let got = classify_cli(texts);
        let pinned = format!("{fixtures}/classify_pinned/{name}.jsonl");
        if pin {
            std::fs::write(&pinned, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&pinned).unwrap();
        let first_difference = expected.lines().zip(got.lines()).find(|(e, g)| e != g);
        assert!(
            got == expected,
            "{name}: classify output changed; first difference:\n{first_difference:?}"
        );
    }
}

/// What intake answers with (`Classifier::verdict`) is what `kefu classify` prints for the
/// same message: intent, confidence, reply and whether a person must take it.
#[test]
fn intake_verdict_agrees_with_classify_on_every_labelled_message() {
    let root = env!("CARGO_MANIFEST_DIR");
    let library = kefu::library::load(&Path::new(root).join("replies")).unwrap();
    let c = kefu::intent::Classifier::build(library, kefu::intent::Thresholds::default()).unwrap();
    let mut files = vec![
        format!("{root}/tests/fixtures/dev.tsv"),
        format!("{root}/tests/fixtures/holdout.tsv"),
    ];
    for entry in std::fs::read_dir(format!("{root}/tests/fixtures/blind")).unwrap() {
        files.push(entry.unwrap().path().display().to_string());
    }
    let mut checked = 0;
    let mut answered = 0;
    for file in files {
        let labelled = std::fs::read_to_string(&file).unwrap();
        for text in labelled
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').next())
        {
            let full = c.classify(text);
            let v = c.verdict(text);
            assert_eq!(v.intent, full.intent, "{text}");
            assert_eq!(v.confidence, full.confidence, "{text}");
            assert_eq!(
                v.reply.map(|r| r.id.as_str()),
                full.reply_id.as_deref(),
                "{text}"
            );
            assert_eq!(v.handoff, full.handoff, "{text}");
            assert_eq!(v.auto_answer(), full.auto_answer(), "{text}");
            checked += 1;
            answered += usize::from(v.auto_answer());
        }
    }
    assert!(
        checked > 1500 && answered > 500,
        "{checked} checked, {answered} answered"
    );
}

#[test]
fn eval_cli_reports_accuracy_per_intent_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("mini.tsv");
    std::fs::write(
        &tsv,
        "text\tintent\n我的快递到哪了\ttracking\n怎么开发票\tinvoice\n今天天气真好\tunknown\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["eval", tsv.to_str().unwrap()])
        .env("KEFU_REPLIES_DIR", replies_dir())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("messages            3"), "{text}");
    assert!(text.contains("accuracy"), "{text}");
    assert!(text.contains("latency             p50"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("tracking")), "{text}");

    std::fs::write(&tsv, "hello\tnot_an_intent\n").unwrap();
    let out = Command::new(BIN)
        .args(["eval", tsv.to_str().unwrap()])
        .env("KEFU_REPLIES_DIR", replies_dir())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: unknown intent `not_an_intent`"));
}

async fn ask(app: &TestApp, msg_id: u64, text: &str) -> (u16, Option<String>) {
    let crypt = mp_crypt();
    let ts = now_secs();
    let xml = text_xml("gh_shop", "oShopper9", msg_id, text, ts);
    let encrypt = crypt.encrypt(&xml);
    let body = format!("<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>");
    let (status, reply) = app
        .post(
            "/wechat/callback",
            &mp_query(&crypt, &encrypt, ts, "1"),
            body,
        )
        .await;
    let content = cdata_field(&reply, "Encrypt")
        .and_then(|e| crypt.decrypt(&e).ok())
        .and_then(|inner| cdata_field(&inner, "Content"));
    (status, content)
}

async fn reload(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app
        .http
        .post(app.url("/api/replies/reload"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request_and_swaps_the_answers() {
    let lib = tempfile::tempdir().unwrap();
    copy_library(lib.path());
    let app =
        Arc::new(TestApp::start_with(Db::Sqlite, |c| c.replies_dir = lib.path().to_owned()).await);
    let (_, before) = ask(&app, 1, "付款后多久发货").await;
    assert!(before.unwrap().contains("48小时内发货"));

    // Shoppers keep asking while the library is edited and reloaded ten times.
    let next_id = Arc::new(AtomicU64::new(100));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (app, next_id, stop) = (app.clone(), next_id.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let (status, content) = ask(&app, id, "付款后多久发货").await;
                assert_eq!(status, 200, "request {id} failed during a reload");
                let content = content.expect("an answer");
                assert!(content.contains("发货"), "{content}");
                sent += 1;
            }
            sent
        }));
    }
    let logistics = lib.path().join("logistics.toml");
    let original = std::fs::read_to_string(&logistics).unwrap();
    for i in 0..10 {
        let edited = original.replace(
            "现货商品付款后{{ship_within_hours}}小时内发货",
            &format!("现货商品付款后{{{{ship_within_hours}}}}小时内发货（第{i}版）"),
        );
        std::fs::write(&logistics, edited).unwrap();
        let (status, body) = reload(&app, ADMIN_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["report"]["replies"].as_u64().unwrap() >= 500);
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 1;
    for w in workers {
        total += w.await.unwrap();
    }
    assert!(total > 10, "load ran: {total} requests");
    assert_eq!(app.count("mp").await as u64, total, "every request stored");

    let (_, after) = ask(&app, 99_999, "付款后多久发货").await;
    assert!(
        after.unwrap().contains("（第9版）"),
        "the last reload is what answers now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_library_is_refused_and_the_running_one_stays() {
    let lib = tempfile::tempdir().unwrap();
    copy_library(lib.path());
    let app = TestApp::start_with(Db::Sqlite, |c| c.replies_dir = lib.path().to_owned()).await;

    // No token, wrong token.
    assert_eq!(
        app.http
            .post(app.url("/api/replies/reload"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(reload(&app, "wrong").await.0, 401);

    std::fs::write(
        lib.path().join("zz_broken.toml"),
        "[[reply]]\nid = \"x.y\"\nintent = \"nope\"\ntitle = \"t\"\nanswer = \"a\"\nquestions = [\"q\"]\n",
    )
    .unwrap();
    let (status, body) = reload(&app, ADMIN_TOKEN).await;
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p
            .as_str()
            .unwrap()
            .contains("zz_broken.toml:3: unknown intent `nope`")),
        "{body}"
    );

    let (status, content) = ask(&app, 5, "我的快递到哪了").await;
    assert_eq!(status, 200);
    assert!(
        content.unwrap().contains("物流"),
        "the previous library still answers"
    );

    let r = app
        .http
        .post(app.url("/api/classify"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"text": "怎么开发票"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["intent"], "invoice");
}

/// Classify a labelled file with the shipped library and check the issue's targets.
fn meets_targets(path: &str, min_accuracy: f64) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let examples = kefu::intent::eval::parse_tsv(&text).unwrap();
    let library = kefu::library::load(Path::new(&replies_dir())).unwrap();
    let c = kefu::intent::Classifier::build(library, kefu::intent::Thresholds::default()).unwrap();
    let r = kefu::intent::eval::evaluate(&c, &examples);
    assert!(
        r.accuracy() >= min_accuracy,
        "accuracy {:.4}\n{}",
        r.accuracy(),
        r.render(true)
    );
    assert!(
        r.wrong_confident_rate() < 0.03,
        "wrong & confident {:.4}",
        r.wrong_confident_rate()
    );
}

/// The issue's targets on the labelled dev set: accuracy ≥ 0.93 with `unknown` as a class,
/// fewer than 3% of in-scope messages answered with a wrong intent at high confidence.
#[test]
fn dev_set_meets_the_accuracy_targets() {
    meets_targets(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dev.tsv"),
        0.93,
    );
}

/// Messages written apart from the library and never used for tuning: a guard against
/// fitting the dev set.
#[test]
fn held_out_messages_are_classified_as_well() {
    meets_targets(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/holdout.tsv"),
        0.9,
    );
}

/// Requests that are not for the shop at all, worded unlike the out-of-scope samples, are
/// `unknown` (a person sees them) even when they share a shop word or two; shop questions
/// next to them are still recognised.
#[test]
fn off_topic_requests_are_unknown_and_shop_questions_are_not() {
    let library = kefu::library::load(Path::new(&replies_dir())).unwrap();
    assert!(library.out_of_scope().len() >= 100);
    let c = kefu::intent::Classifier::build(library, kefu::intent::Thresholds::default()).unwrap();
    for text in [
        "帮我查一下高铁票",
        "你们公司招客服吗",
        "推荐一款好玩的手机游戏",
        "电脑开机就蓝屏",
        "打印机怎么连手机",
        "你们那边房价多少",
    ] {
        let got = c.classify(text);
        assert_eq!(got.intent, "unknown", "{text}: {got:?}");
        assert!(got.handoff && !got.auto_answer(), "{text}");
    }
    for (text, intent) in [
        ("帮我查一下快递到哪了", "tracking"),
        ("这款手机壳还有货吗", "stock"),
        ("电脑包可以开发票吗", "invoice"),
    ] {
        assert_eq!(c.classify(text).intent, intent, "{text}");
    }
}
