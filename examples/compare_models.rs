//! What each view of the classifier gives alone and fused, each with its thresholds fitted by
//! cross-validation over the library (as `kefu calibrate` does):
//! `cargo run --release --example compare_models -- FILE.tsv [FILE.tsv …]`
//! Prints one markdown row per model and file.

use kefu::intent::calibrate::{cross_validate_model, fit};
use kefu::intent::{eval, Classifier, Model, Thresholds};
use kefu::taxonomy::UNKNOWN;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let library = kefu::library::load(std::path::Path::new("replies"))?;
    println!("| model | thresholds (unknown_below / answer_at) | file | accuracy | in-scope / unknown recall | >25 chars | answered at once | wrong among answered | gold in top 3 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let former = Thresholds {
        unknown_below: 0.10,
        answer_at: 0.30,
    };
    for (name, model, fixed) in [
        (
            "retrieval alone, its former thresholds",
            Model::Retrieval,
            Some(former),
        ),
        ("retrieval alone", Model::Retrieval, None),
        ("linear alone", Model::Linear, None),
        ("fused (shipped)", Model::Fused, None),
    ] {
        let thresholds = match fixed {
            Some(t) => t,
            None => fit(&cross_validate_model(&library, 5, model)?).thresholds,
        };
        let c = Classifier::build(library.clone(), thresholds)?.with_model(model);
        for f in &files {
            let examples = eval::parse_tsv(&std::fs::read_to_string(f)?)?;
            let mut n = [0usize; 12];
            // all, correct, in-scope, correct, unknown, correct, long, correct, answered,
            // wrong, top-3 hits
            for e in &examples {
                let r = c.classify(&e.text);
                let ok = usize::from(r.intent == e.intent);
                n[0] += 1;
                n[1] += ok;
                if e.intent == UNKNOWN {
                    n[4] += 1;
                    n[5] += ok;
                } else {
                    n[2] += 1;
                    n[3] += ok;
                    n[10] +=
                        usize::from(r.suggestions.iter().take(3).any(|s| s.intent == e.intent));
                }
                if e.text.chars().count() > 25 {
                    n[6] += 1;
                    n[7] += ok;
                }
                if !r.handoff {
                    n[8] += 1;
                    n[9] += 1 - ok;
                }
            }
            let share = |a: usize, b: usize| {
                if b == 0 {
                    f64::NAN
                } else {
                    a as f64 / b as f64
                }
            };
            println!(
                "| {name} | {:.2} / {:.2} | {} | {:.3} | {:.3} / {:.3} | {:.3} ({}) | {:.1}% | {:.1}% ({} of {}) | {:.3} |",
                thresholds.unknown_below,
                thresholds.answer_at,
                std::path::Path::new(f).file_stem().and_then(|s| s.to_str()).unwrap_or(f),
                share(n[1], n[0]),
                share(n[3], n[2]),
                share(n[5], n[4]),
                share(n[7], n[6]),
                n[6],
                100.0 * share(n[8], n[0]),
                100.0 * share(n[9], n[8]),
                n[9],
                n[8],
                share(n[10], n[2]),
            );
        }
    }
    Ok(())
}
