//! Intent classification over the canned-reply library.
//!
//! 1. [`rules`]: explicit triggers (转人工, 投诉, 12315 …) decide at once.
//! 2. Retrieval: a tantivy index, built in memory from the library (`build`), holds one
//!    document per sample question and one per reply (title + keywords, and the answer text,
//!    with lower weights); BM25 over [`tokenizer`] tokens finds the candidate replies.
//! 3. Scoring (`rank`): each candidate sample question is compared with the message by the
//!    cosine of their IDF-weighted token sets (a reply's own document counts 0.3 × its BM25
//!    relative to the top hit), and a reply takes its best candidate's similarity. An
//!    intent's retrieval score blends `KNN_WEIGHT` (0.3) × the similarity of its best reply
//!    with 0.7 × the cosine between the message and the intent's centroid.
//! 4. The linear model ([`linear`], trained from the same library at build time) gives each
//!    intent, and `unknown` (the out-of-scope samples), a probability: the likeliest one is
//!    the verdict and its probability the confidence; `unknown` when the out-of-scope class
//!    wins or the confidence is under [`Thresholds::unknown_below`]. The reply is retrieval's
//!    best of that intent. It is answered at once only when the confidence reaches
//!    [`Thresholds::answer_at`] and retrieval's best intent is the same; a message that is
//!    one of the sample questions (cosine >= `EXACT_MATCH`) gets that question's reply.
//!    [`calibrate`] fits both thresholds by cross-validation over the library.
//!
//! The classifier is immutable; reloading builds a new one and swaps it in (see
//! [`SharedClassifier`]), so requests never wait for a rebuild.

mod build;
pub mod calibrate;
mod clauses;
pub mod eval;
mod linear;
pub mod normalize;
mod rank;
mod retrieval;
pub mod rules;
mod shared;
pub mod tokenizer;

use serde::Serialize;

use crate::library::{Library, Reply};
use crate::taxonomy;
use build::DocTarget;
pub use shared::{LoadReport, ReloadError, SharedClassifier};

/// Confidence thresholds (config `[classifier]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Below this confidence the message is `unknown`.
    pub unknown_below: f32,
    /// At or above this confidence a non-handoff intent is answered automatically.
    pub answer_at: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        // Fitted by `kefu calibrate` (cross-validation over the shipped library): the unknown
        // threshold maximises held-out accuracy, the answer threshold is the lowest that keeps
        // held-out wrong answers within its budget (see `calibrate`).
        Thresholds {
            unknown_below: 0.05,
            answer_at: 0.50,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub reply_id: String,
    pub intent: String,
    pub score: f32,
}

/// The result for one message, in the shape `kefu classify` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub text: String,
    pub intent: String,
    pub confidence: f32,
    pub reply_id: Option<String>,
    /// A person must take this one (unknown, low confidence, or a handoff intent).
    pub handoff: bool,
    pub suggestions: Vec<Suggestion>,
    /// The explicit trigger that decided, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    /// Another thing the message confidently asks for, in a clause of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_intent: Option<String>,
    /// The shopper shows anger (an angry WeChat emoticon or emoji).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub angry: bool,
}

impl Classification {
    /// Confident enough, and of an intent the bot may answer.
    pub fn auto_answer(&self) -> bool {
        !self.handoff && self.reply_id.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("building the intent index: {0}")]
    Index(#[from] tantivy::TantivyError),
}

pub struct Classifier {
    library: Library,
    retrieval: retrieval::Retrieval,
    /// Per segment, per document id: what the document is. Read once at build time so a
    /// query never opens a fast-field column.
    docs: Vec<Vec<DocTarget>>,
    questions: build::Questions,
    /// Token text -> id; ids index `idf` and `postings`.
    vocab: build::Vocab,
    /// Intent-level IDF: a token used by every intent (的, 怎么, 我想) weighs nothing, one
    /// used by two intents (退货) weighs a lot.
    idf: Vec<f32>,
    /// Per token id: its IDF squared (a shared token's weight in a cosine's numerator).
    idf_squared: Vec<f32>,
    /// IDF given to tokens the library never uses: they pull similarity down, which is what
    /// makes off-topic messages `unknown`.
    unseen_idf: f32,
    /// Per token id: (intent index, weight in that intent's L2-normalised TF-IDF centroid of
    /// all its questions, titles and keywords).
    postings: Vec<Vec<(u16, f32)>>,
    /// The linear model over the same token ids: one class per intent of `intents`, and
    /// `unknown` (the out-of-scope samples) last.
    linear: linear::Linear,
    intents: Vec<String>,
    /// Intent index of each reply.
    reply_intent: Vec<u16>,
    /// Per intent index: its first reply, if it has any.
    first_reply: Vec<Option<usize>>,
    /// A tokenizer other than [`tokenizer::tokens`], when built with one.
    custom_tokenize: Option<tokenizer::TokenizeFn>,
    thresholds: Thresholds,
    model: Model,
}

/// Which views decide: both (what kefu ships), or one alone, for measuring what each adds
/// (`cargo run --release --example compare_models`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    #[default]
    Fused,
    Retrieval,
    Linear,
}

impl Classifier {
    pub fn library(&self) -> &Library {
        &self.library
    }

    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    #[doc(hidden)]
    pub fn with_model(mut self, model: Model) -> Classifier {
        self.model = model;
        self
    }

    /// What intake needs to answer a message: its intent, confidence and reply, and whether
    /// a person must take it. The same as [`Classifier::classify`]'s fields of those names,
    /// without the suggestions, the second intent or the anger flag, which only an agent's
    /// view of the message uses.
    pub fn verdict(&self, text: &str) -> Verdict<'_> {
        self.judge(text, false).verdict
    }

    /// Classify a message as one whole (see [`clauses`] for messages of several clauses).
    fn classify_whole(&self, text: &str) -> Classification {
        let Judged {
            verdict,
            rule,
            suggestions,
        } = self.judge(text, true);
        Classification {
            text: text.to_string(),
            intent: verdict.intent.to_string(),
            confidence: verdict.confidence,
            reply_id: verdict.reply.map(|r| r.id.clone()),
            handoff: verdict.handoff,
            suggestions: suggestions
                .into_iter()
                .map(|(ri, p)| {
                    let r = &self.library.replies()[ri];
                    Suggestion {
                        reply_id: r.id.clone(),
                        intent: r.intent.clone(),
                        score: round3(p),
                    }
                })
                .collect(),
            rule,
            second_intent: None,
            angry: normalize::angry(text),
        }
    }

    /// The verdict on a message as one whole, and (when `suggest`) the replies to suggest.
    fn judge(&self, text: &str, suggest: bool) -> Judged<'_> {
        let norm = normalize::normalize(text);
        let rule = rules::trigger(&norm);
        let stripped = normalize::strip_filler(&norm);
        let owned: Vec<String>;
        let tokens: Vec<&str> = match self.custom_tokenize {
            Some(tokenize) => {
                owned = tokenize(&stripped);
                owned.iter().map(String::as_str).collect()
            }
            None => {
                let mut tokens = Vec::with_capacity(stripped.len());
                tokenizer::each_token(&stripped, |t| tokens.push(t));
                tokens
            }
        };
        let query = self.resolve(tokens);
        let ranked = self.rank(&query);
        let probs = match self.model {
            Model::Retrieval => {
                // The retrieval view alone: its blended intent scores, each turned into a
                // confidence by its coverage of the message; no out-of-scope class.
                let mut p: Vec<f32> = ranked
                    .intent_scores
                    .iter()
                    .enumerate()
                    .map(|(ii, s)| s.max(0.0).sqrt() * self.coverage(&query, ii))
                    .collect();
                p.push(0.0);
                p
            }
            Model::Fused | Model::Linear => {
                self.linear.probabilities(&query.known, query.texts.len())
            }
        };
        // In-scope intents, most probable first (only the first, unless suggestions are asked
        // for); the out-of-scope class is the last one.
        let unknown_p = probs.get(self.intents.len()).copied().unwrap_or(0.0);
        let by_probability = |a: &usize, b: &usize| probs[*b].total_cmp(&probs[*a]).then(a.cmp(b));
        // Suggestions read the intents in order; the verdict only needs the likeliest.
        let mut order: Vec<usize> = if suggest {
            let mut all: Vec<usize> = (0..self.intents.len()).collect();
            all.sort_unstable_by(by_probability);
            all
        } else {
            (0..self.intents.len())
                .min_by(by_probability)
                .into_iter()
                .collect()
        };
        // A message that is (all but) one of the library's sample questions gets that
        // question's reply, whatever the linear model makes of it: the shop wrote the question
        // for that reply, and may have added it a minute ago with few others like it.
        let exact = ranked
            .replies
            .first()
            .filter(|_| self.model == Model::Fused)
            .filter(|(_, sim)| *sim >= EXACT_MATCH)
            .map(|(ri, sim)| (self.reply_intent[*ri] as usize, *sim));
        if let Some((ii, _)) = exact {
            order.retain(|i| *i != ii);
            order.insert(0, ii);
        }
        // An intent's reply: its best retrieved one, else its first.
        let reply_of = |ii: usize| -> Option<usize> {
            ranked
                .replies
                .iter()
                .map(|(ri, _)| *ri)
                .find(|ri| self.reply_intent[*ri] as usize == ii)
                .or_else(|| self.first_reply.get(ii).copied().flatten())
        };
        let confidence_of = |ii: usize| match exact {
            Some((e, sim)) if e == ii => probs[ii].max(sim),
            _ => probs[ii],
        };
        // The best reply of each likely intent; when fewer than three intents are likely (a
        // clear question), the next replies retrieval found, each scored by its intent's
        // probability times its similarity relative to that intent's best reply.
        let mut picked: Vec<(usize, f32)> = Vec::new();
        if suggest {
            picked.extend(
                order
                    .iter()
                    .filter(|ii| confidence_of(**ii) >= SUGGESTION_FLOOR)
                    .filter_map(|ii| reply_of(*ii).map(|ri| (ri, confidence_of(*ii))))
                    .take(3),
            );
        }
        if suggest && picked.len() < 3 {
            for (ri, sim) in &ranked.replies {
                if picked.len() == 3 {
                    break;
                }
                if *sim < RETRIEVAL_FLOOR || picked.iter().any(|(p, _)| p == ri) {
                    continue;
                }
                let ii = self.reply_intent[*ri] as usize;
                let best_sim = ranked
                    .replies
                    .iter()
                    .find(|(r, _)| self.reply_intent[*r] as usize == ii)
                    .map(|(_, s)| *s)
                    .unwrap_or(*sim)
                    .max(1e-6);
                let score = confidence_of(ii) * (sim / best_sim).min(1.0);
                if score >= SUGGESTION_FLOOR {
                    picked.push((*ri, score));
                }
            }
            picked.sort_by(|a, b| b.1.total_cmp(&a.1));
        }
        if let Some(intent) = rule {
            // The best reply of the triggered intent, if retrieval found one.
            let reply = ranked
                .replies
                .iter()
                .map(|(ri, _)| &self.library.replies()[*ri])
                .find(|r| r.intent == intent)
                .or_else(|| self.library.replies().iter().find(|r| r.intent == intent));
            return Judged {
                verdict: Verdict {
                    intent,
                    confidence: 1.0,
                    reply,
                    handoff: taxonomy::get(intent).is_none_or(|i| i.handoff),
                },
                rule: Some(intent),
                suggestions: picked,
            };
        }

        let best = order
            .first()
            .map(|ii| (*ii, confidence_of(*ii)))
            .filter(|(_, p)| *p >= self.thresholds.unknown_below && *p > unknown_p);
        let verdict = match best.and_then(|(ii, p)| reply_of(ii).map(|ri| (ii, p, ri))) {
            Some((ii, confidence, ri)) => {
                let intent = &self.intents[ii];
                // Answered at once only when both views agree: the linear model's verdict
                // and retrieval's nearest intent.
                let agree = self.model != Model::Fused
                    || exact.is_some()
                    || ranked.best.is_some_and(|(bi, _, _)| bi == ii);
                let handoff = confidence < self.thresholds.answer_at
                    || !agree
                    || taxonomy::get(intent).is_none_or(|i| i.handoff);
                Verdict {
                    intent,
                    confidence: round3(confidence),
                    reply: Some(&self.library.replies()[ri]),
                    handoff,
                }
            }
            None => Verdict {
                intent: taxonomy::UNKNOWN,
                confidence: round3(order.first().map(|ii| probs[*ii]).unwrap_or(0.0)),
                reply: None,
                handoff: true,
            },
        };
        Judged {
            verdict,
            rule: None,
            suggestions: picked,
        }
    }
}

/// What the classifier concludes about a message: what intake needs to answer it.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<'c> {
    /// The intent, or `unknown`.
    pub intent: &'c str,
    pub confidence: f32,
    /// The reply for the intent, when it has one.
    pub reply: Option<&'c Reply>,
    /// A person must take this one (unknown, low confidence, or a handoff intent).
    pub handoff: bool,
}

impl Verdict<'_> {
    /// Confident enough, and of an intent the bot may answer.
    pub fn auto_answer(&self) -> bool {
        !self.handoff && self.reply.is_some()
    }
}

struct Judged<'c> {
    verdict: Verdict<'c>,
    /// The explicit trigger that decided, if any.
    rule: Option<&'static str>,
    /// (reply index, score), best first; empty unless asked for.
    suggestions: Vec<(usize, f32)>,
}

/// Three decimals, and never `-0.0` (which would print as such).
fn round3(x: f32) -> f32 {
    let r = (x * 1000.0).round() / 1000.0;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// Replies retrieval finds less similar than this share no real word with the message.
const RETRIEVAL_FLOOR: f32 = 0.05;

/// Cosine similarity with a sample question at which the message is taken to be that question.
const EXACT_MATCH: f32 = 0.9;

/// Intents the linear model gives less than this probability are not suggested. Above it,
/// every message gets up to three suggestions (the best reply of each of its three likeliest
/// intents), an `unknown` one included, since they are what the agent who takes it sees
/// first.
const SUGGESTION_FLOOR: f32 = 0.02;

#[cfg(test)]
mod round_tests {
    #[test]
    fn confidence_never_prints_as_negative_zero() {
        assert_eq!(super::round3(-0.0001).to_string(), "0");
        assert_eq!(super::round3(-0.0).to_string(), "0");
        assert_eq!(super::round3(0.12345), 0.123);
    }
}

#[cfg(test)]
mod model_tests {
    use super::{Classifier, Model, Thresholds};

    /// The retrieval view alone (a comparison mode) gives a message with no words `unknown`,
    /// as the shipped model does, and still reads a real question.
    #[test]
    fn retrieval_view_alone_takes_a_message_with_no_words() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("replies");
        let library = crate::library::load(&dir).expect("the shipped library loads");
        let classifier = Classifier::build(library, Thresholds::default())
            .expect("the shipped library builds")
            .with_model(Model::Retrieval);
        for text in ["", "？？？", "😀😀", "[捂脸]"] {
            let result = classifier.classify(text);
            assert_eq!(result.intent, "unknown", "{text:?}");
            assert!(result.handoff, "{text:?}");
        }
        assert_eq!(classifier.classify("我的快递到哪了").intent, "tracking");
    }
}
