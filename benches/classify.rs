//! Classifier speed with the full shipped library: one message at a time over the dev
//! messages (latency and single-core throughput), and building the index from `replies/`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kefu::intent::{Classifier, Thresholds};

fn messages() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dev.tsv");
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .skip(1)
            .filter_map(|l| l.rsplit_once('\t').map(|(t, _)| t.to_string()))
            .collect(),
        // Without the shared folder, a fixed set of shopper questions.
        Err(_) => [
            "我的快递到哪了",
            "怎么开发票",
            "能便宜点吗",
            "退款多久到账",
            "在吗",
            "今天天气真好",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/replies"));
    let library = kefu::library::load(dir).expect("shipped library loads");
    let classifier =
        Classifier::build(library.clone(), Thresholds::default()).expect("index builds");
    let msgs = messages();

    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("dev_messages_one_by_one", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(classifier.classify(m));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("index");
    g.sample_size(10);
    g.bench_function("load_and_build_full_library", |b| {
        b.iter(|| {
            let lib = kefu::library::load(dir).expect("loads");
            Classifier::build(lib, Thresholds::default()).expect("builds")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
