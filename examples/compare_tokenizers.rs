//! Accuracy of the classifier with different tokenisations, everything else fixed:
//! `cargo run --release --features jieba --example compare_tokenizers -- tests/fixtures/dev.tsv`

use std::sync::OnceLock;

use kefu::intent::{eval, tokenizer, Classifier, Thresholds};

fn jieba() -> &'static jieba_rs::Jieba {
    static J: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    J.get_or_init(jieba_rs::Jieba::new)
}

fn words(text: &str) -> Vec<String> {
    jieba()
        .cut(text, true)
        .into_iter()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn words_and_chars(text: &str) -> Vec<String> {
    let mut out = words(text);
    out.extend(
        text.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_string()),
    );
    out
}

fn words_and_ngrams(text: &str) -> Vec<String> {
    let mut out = words(text);
    out.extend(tokenizer::tokens(text));
    out
}

fn main() {
    let file = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/dev.tsv".into());
    let text = std::fs::read_to_string(&file).expect("eval file");
    let examples = eval::parse_tsv(&text).expect("eval file parses");
    let library = kefu::library::load(std::path::Path::new("replies")).expect("library");
    let variants: [(&str, tokenizer::TokenizeFn); 4] = [
        ("char unigrams + bigrams (shipped)", tokenizer::tokens),
        ("jieba words", words),
        ("jieba words + char unigrams", words_and_chars),
        ("jieba words + unigrams + bigrams", words_and_ngrams),
    ];
    for (name, f) in variants {
        let c = Classifier::build_with(library.clone(), Thresholds::default(), f).expect("builds");
        let r = eval::evaluate(&c, &examples);
        println!(
            "{name:<36} accuracy {:.4}  wrong&confident {:.4}",
            r.accuracy(),
            r.wrong_confident_rate()
        );
    }
}
