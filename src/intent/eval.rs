//! `kefu eval`: accuracy of the classifier over `text<TAB>intent` lines.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use super::Classifier;
use crate::taxonomy;

#[derive(Debug, Clone)]
pub struct Example {
    pub line: usize,
    pub text: String,
    pub intent: String,
}

/// Parse a TSV of `text<TAB>intent`; a header line `text<TAB>intent` is skipped. Lines that
/// are malformed or name an intent outside the taxonomy are errors with their line number.
pub fn parse_tsv(content: &str) -> Result<Vec<Example>, String> {
    let mut out = Vec::new();
    for (i, line) in content.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() || (i == 0 && line.trim() == "text\tintent") {
            continue;
        }
        let (text, intent) = line
            .rsplit_once('\t')
            .ok_or_else(|| format!("line {line_no}: expected text<TAB>intent"))?;
        let intent = intent.trim();
        if intent != taxonomy::UNKNOWN && taxonomy::get(intent).is_none() {
            return Err(format!("line {line_no}: unknown intent `{intent}`"));
        }
        out.push(Example {
            line: line_no,
            text: text.to_string(),
            intent: intent.to_string(),
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub total: usize,
    pub correct: usize,
    /// In-scope messages (gold is not unknown) answered with a wrong intent at or above the
    /// auto-answer threshold.
    pub wrong_confident: usize,
    pub in_scope: usize,
    pub auto_answered: usize,
    pub auto_answered_correct: usize,
    /// (gold, predicted) -> count, for mistakes.
    pub confusions: BTreeMap<(String, String), usize>,
    /// intent -> (true positives, predicted, gold)
    pub per_intent: BTreeMap<String, (usize, usize, usize)>,
    pub latencies_us: Vec<f64>,
    pub mistakes: Vec<(usize, String, String, String, f32)>,
}

impl Report {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    pub fn wrong_confident_rate(&self) -> f64 {
        self.wrong_confident as f64 / self.in_scope.max(1) as f64
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies_us.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[idx]
    }

    pub fn render(&self, show_mistakes: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "messages            {}", self.total);
        let _ = writeln!(
            s,
            "accuracy            {:.4}  (unknown counted as a class)",
            self.accuracy()
        );
        let _ = writeln!(
            s,
            "wrong & confident   {:.4}  ({} of {} in-scope messages auto-answered with a wrong intent)",
            self.wrong_confident_rate(),
            self.wrong_confident,
            self.in_scope
        );
        let _ = writeln!(
            s,
            "auto-answered       {:.4}  ({} of {}; {:.4} of them correct)",
            self.auto_answered as f64 / self.total.max(1) as f64,
            self.auto_answered,
            self.total,
            self.auto_answered_correct as f64 / self.auto_answered.max(1) as f64
        );
        let _ = writeln!(
            s,
            "latency             p50 {:.0} µs, p99 {:.0} µs",
            self.percentile(0.5),
            self.percentile(0.99)
        );
        let _ = writeln!(
            s,
            "\n{:<18} {:>9} {:>9} {:>9} {:>6}",
            "intent", "precision", "recall", "f1", "n"
        );
        for (intent, (tp, pred, gold)) in &self.per_intent {
            let p = *tp as f64 / (*pred).max(1) as f64;
            let r = *tp as f64 / (*gold).max(1) as f64;
            let f = if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            };
            let _ = writeln!(s, "{intent:<18} {p:>9.3} {r:>9.3} {f:>9.3} {gold:>6}");
        }
        let mut conf: Vec<_> = self.confusions.iter().collect();
        conf.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(s, "\nconfusions (gold -> predicted)");
        for ((g, p), n) in conf.iter().take(15) {
            let _ = writeln!(s, "  {n:>3}  {g} -> {p}");
        }
        if show_mistakes {
            let _ = writeln!(s, "\nmistakes");
            for (line, text, gold, pred, c) in &self.mistakes {
                let _ = writeln!(s, "  {line:>4}  {gold:<16} -> {pred:<16} {c:.2}  {text}");
            }
        }
        s
    }
}

pub fn evaluate(classifier: &Classifier, examples: &[Example]) -> Report {
    let mut r = Report {
        total: examples.len(),
        ..Default::default()
    };
    let answer_at = classifier.thresholds().answer_at;
    for ex in examples {
        let started = Instant::now();
        let c = classifier.classify(&ex.text);
        r.latencies_us.push(started.elapsed().as_secs_f64() * 1e6);
        let ok = c.intent == ex.intent;
        if ok {
            r.correct += 1;
        } else {
            *r.confusions
                .entry((ex.intent.clone(), c.intent.clone()))
                .or_default() += 1;
            r.mistakes.push((
                ex.line,
                ex.text.clone(),
                ex.intent.clone(),
                c.intent.clone(),
                c.confidence,
            ));
        }
        if ex.intent != taxonomy::UNKNOWN {
            r.in_scope += 1;
            if !ok && c.intent != taxonomy::UNKNOWN && c.confidence >= answer_at {
                r.wrong_confident += 1;
            }
        }
        if c.auto_answer() {
            r.auto_answered += 1;
            if ok {
                r.auto_answered_correct += 1;
            }
        }
        r.per_intent.entry(ex.intent.clone()).or_default().2 += 1;
        r.per_intent.entry(c.intent.clone()).or_default().1 += 1;
        if ok {
            r.per_intent.entry(c.intent.clone()).or_default().0 += 1;
        }
    }
    r
}
