//! Callback crypto cost: verify + decrypt + parse (what every inbound callback pays) and
//! encrypt + sign (every passive reply), for 100 B, 1 KiB and 10 KiB messages.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kefu::crypto::MsgCrypt;
use kefu::wecom::parse_message;

fn message_of(len: usize) -> String {
    let head = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[oShopper]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[";
    let tail = "]]></Content><MsgId>7300000000000000001</MsgId></xml>";
    let mut content = String::new();
    while head.len() + content.len() + tail.len() < len {
        content.push_str(if content.len().is_multiple_of(2) {
            "请问"
        } else {
            "ab"
        });
    }
    format!("{head}{content}{tail}")
}

fn bench(c: &mut Criterion) {
    let crypt = MsgCrypt::new(
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "wx5823bf96d3bd56c7",
    )
    .unwrap();
    let mut inbound = c.benchmark_group("verify_decrypt_parse");
    for len in [100usize, 1024, 10 * 1024] {
        let msg = message_of(len);
        let enc = crypt.encrypt(&msg);
        let sig = crypt.signature("1700000000", "1234567890", &enc);
        inbound.throughput(Throughput::Bytes(msg.len() as u64));
        inbound.bench_with_input(BenchmarkId::from_parameter(len), &enc, |b, enc| {
            b.iter(|| {
                let plain = crypt
                    .verify_and_decrypt(&sig, "1700000000", "1234567890", enc)
                    .unwrap();
                parse_message(&plain).unwrap()
            })
        });
    }
    inbound.finish();

    let mut outbound = c.benchmark_group("encrypt_sign");
    for len in [100usize, 1024, 10 * 1024] {
        let msg = message_of(len);
        outbound.throughput(Throughput::Bytes(msg.len() as u64));
        outbound.bench_with_input(BenchmarkId::from_parameter(len), &msg, |b, msg| {
            b.iter(|| crypt.encrypt_reply(msg, "1700000000", "1234567890"))
        });
    }
    outbound.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
