//! Fitting the confidence thresholds without a labelled set: k-fold cross-validation over the
//! library itself (`kefu calibrate`). Each fold builds the classifier with every k-th sample
//! question (and out-of-scope sample) left out, and classifies the ones left out. The
//! thresholds are then read off those held-out verdicts:
//! - `unknown_below`: the one that gives the best accuracy with `unknown` a class;
//! - `answer_at`: the lowest at which at most [`WRONG_ANSWER_BUDGET`] of the messages
//!   answered at once are wrong.
//!
//! A held-out sample question is shorter and has close siblings left in, so it is not a
//! shopper's message; but it is not a message anybody reports figures on either, which is the
//! point (see BENCHMARKS.md for how the fitted values fare on the blind sets).

use std::fmt::Write as _;

use super::{Classification, Classifier, ClassifierError, Model, Thresholds};
use crate::library::Library;
use crate::taxonomy;

/// Share of wrong answers tolerated among the held-out samples answered at once. It is looser
/// than the product's aim (at most 2% of shoppers' messages answered at once wrongly) because
/// held-out sample questions are harder than messages: a library's samples are written to
/// cover the boundaries between intents (取消订单券还在吗 is a coupon question), and at the
/// same threshold the cross-validated wrong share ran three to six times the one measured on
/// labelled shopper messages (BENCHMARKS.md).
pub const WRONG_ANSWER_BUDGET: f64 = 0.05;

/// Share of off-topic messages a shop's chat is assumed to get when fitting `unknown_below`:
/// the library holds far fewer out-of-scope samples than that, so they are weighted up to it.
pub const OFF_TOPIC_SHARE: f64 = 0.12;

/// Candidate thresholds, in steps of 0.05.
fn grid() -> impl Iterator<Item = f32> {
    (1..=18).map(|i| i as f32 * 0.05)
}

/// One held-out sample and what the classifier built without it made of it (with both
/// thresholds at zero, so the fitting can apply any of them afterwards).
pub struct HeldOut {
    pub intent: String,
    pub result: Classification,
}

/// Classify every sample question and out-of-scope sample of `library` with a classifier
/// built from the other `folds - 1` folds.
pub fn cross_validate(library: &Library, folds: usize) -> Result<Vec<HeldOut>, ClassifierError> {
    cross_validate_model(library, folds, Model::Fused)
}

#[doc(hidden)]
pub fn cross_validate_model(
    library: &Library,
    folds: usize,
    model: Model,
) -> Result<Vec<HeldOut>, ClassifierError> {
    let folds = folds.max(2);
    let mut out = Vec::new();
    for fold in 0..folds {
        let (train, held) = library.split_fold(fold, folds);
        let c = Classifier::build(
            train,
            Thresholds {
                unknown_below: 0.0,
                answer_at: 0.0,
            },
        )?
        .with_model(model);
        for (text, intent) in held {
            out.push(HeldOut {
                result: c.classify(&text),
                intent,
            });
        }
    }
    Ok(out)
}

/// A row of the fitting table.
pub struct Row {
    pub threshold: f32,
    /// Accuracy with `unknown` a class when `unknown_below` is this threshold, out-of-scope
    /// samples weighted to [`OFF_TOPIC_SHARE`].
    pub accuracy: f64,
    /// Share answered at once, and the wrong share among those, when `answer_at` is this.
    pub answered: f64,
    pub wrong_answered: f64,
}

pub struct Fit {
    pub rows: Vec<Row>,
    pub thresholds: Thresholds,
    pub samples: usize,
}

/// The verdict under `unknown_below = t`.
fn verdict(r: &Classification, t: f32) -> &str {
    if r.confidence >= t {
        &r.intent
    } else {
        taxonomy::UNKNOWN
    }
}

pub fn fit(held: &[HeldOut]) -> Fit {
    let n = held.len().max(1) as f64;
    let off_topic = held
        .iter()
        .filter(|h| h.intent == taxonomy::UNKNOWN)
        .count();
    let in_scope = held.len() - off_topic;
    let off_topic_weight = if off_topic == 0 {
        0.0
    } else {
        OFF_TOPIC_SHARE / (1.0 - OFF_TOPIC_SHARE) * in_scope as f64 / off_topic as f64
    };
    let weight = |h: &HeldOut| {
        if h.intent == taxonomy::UNKNOWN {
            off_topic_weight
        } else {
            1.0
        }
    };
    let total_weight: f64 = held.iter().map(weight).sum::<f64>().max(1e-9);
    let rows: Vec<Row> = grid()
        .map(|t| {
            let correct: f64 = held
                .iter()
                .filter(|h| verdict(&h.result, t) == h.intent)
                .map(weight)
                .sum();
            let answered: Vec<&HeldOut> = held
                .iter()
                .filter(|h| {
                    !h.result.handoff
                        && h.result.intent != taxonomy::UNKNOWN
                        && h.result.confidence >= t
                })
                .collect();
            let wrong = answered
                .iter()
                .filter(|h| h.result.intent != h.intent)
                .count();
            Row {
                threshold: t,
                accuracy: correct / total_weight,
                answered: answered.len() as f64 / n,
                wrong_answered: if answered.is_empty() {
                    0.0
                } else {
                    wrong as f64 / answered.len() as f64
                },
            }
        })
        .collect();
    let unknown_below = rows
        .iter()
        .max_by(|a, b| {
            a.accuracy
                .total_cmp(&b.accuracy)
                .then(b.threshold.total_cmp(&a.threshold))
        })
        .map(|r| r.threshold)
        .unwrap_or(0.15);
    let answer_at = rows
        .iter()
        .find(|r| r.threshold >= unknown_below && r.wrong_answered <= WRONG_ANSWER_BUDGET)
        .map(|r| r.threshold)
        .unwrap_or(0.9);
    Fit {
        rows,
        thresholds: Thresholds {
            unknown_below,
            answer_at,
        },
        samples: held.len(),
    }
}

/// Held-out samples the classifier would have answered at once with another intent at
/// `answer_at`, surest first: usually sample questions that fit another intent's replies as
/// well, worth rewording or moving in the library.
pub fn conflicts(held: &[HeldOut], answer_at: f32) -> String {
    let mut wrong: Vec<&HeldOut> = held
        .iter()
        .filter(|h| {
            !h.result.handoff
                && h.result.intent != taxonomy::UNKNOWN
                && h.result.intent != h.intent
                && h.result.confidence >= answer_at
        })
        .collect();
    wrong.sort_by(|a, b| b.result.confidence.total_cmp(&a.result.confidence));
    let mut s = String::new();
    for h in wrong {
        let _ = writeln!(
            s,
            "  {:<16} -> {:<16} {:.2}  {}",
            h.intent, h.result.intent, h.result.confidence, h.result.text
        );
    }
    s
}

impl Fit {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} held-out samples\n\nthreshold  accuracy  answered  wrong among answered",
            self.samples
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:>9.2}  {:>8.3}  {:>7.1}%  {:>5.1}%",
                r.threshold,
                r.accuracy,
                r.answered * 100.0,
                r.wrong_answered * 100.0
            );
        }
        let _ = writeln!(
            s,
            "\n[classifier]\nunknown_below = {:.2}\nanswer_at = {:.2}",
            self.thresholds.unknown_below, self.thresholds.answer_at
        );
        s
    }
}
