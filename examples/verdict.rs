//! The classifier's verdict, timed message by message, with warm caches or with the caches
//! cooled between messages, as a loaded server's are (its other work runs between two
//! messages). `stages` times the verdict warm only.
//! `cargo run --release --example verdict -- [ROUNDS] [TSV] [EVICT_KB]`
//! (default: 200 rounds of tests/fixtures/dev.tsv's messages, nothing evicted; the first
//! column of the TSV is the message, and its first line a header). With EVICT_KB, that much
//! memory is written before each message, outside the timing.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use kefu::intent::{Classifier, Thresholds};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let path = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dev.tsv").into());
    let evict_kb: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("replies");
    let classifier = Classifier::build(kefu::library::load(&dir)?, Thresholds::default())?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let messages: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .filter(|m| !m.is_empty())
        .collect();
    if messages.is_empty() {
        return Err(format!("{path}: no messages").into());
    }

    let mut junk = vec![0u64; evict_kb * 128];
    let mut spent = std::time::Duration::ZERO;
    let mut n = 0usize;
    for _ in 0..rounds {
        for m in &messages {
            // Write every cache line of the buffer: what the classifier had cached is gone.
            for (i, j) in junk.iter_mut().enumerate().step_by(8) {
                *j = j.wrapping_add(i as u64);
            }
            std::hint::black_box(&junk);
            let started = std::time::Instant::now();
            std::hint::black_box(classifier.verdict(m));
            spent += started.elapsed();
            n += 1;
        }
    }
    println!(
        "{n} verdicts over {} messages, {:.2} µs each ({evict_kb} KB written between two)",
        messages.len(),
        spent.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
