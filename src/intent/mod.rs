//! Intent classification over the canned-reply library.
//!
//! 1. [`rules`]: explicit triggers (转人工, 投诉, 12315 …) decide at once.
//! 2. Retrieval: a tantivy index, built in memory from the library, holds one document per
//!    sample question and one per reply (title + keywords, and the answer text, with lower
//!    weights); BM25 over [`tokenizer`] tokens finds the candidate replies.
//! 3. Scoring: each candidate question is compared with the message by IDF-weighted token
//!    overlap in both directions; an intent's score is its best candidate's. The confidence
//!    combines that similarity with the margin over the next intent, and `unknown` is the
//!    answer when nothing is similar enough, or when the message is closer to one of the
//!    library's out-of-scope samples (`[out_of_scope]`: weather, stocks, other platforms…)
//!    than to any sample question of a reply.
//!
//! The classifier is immutable; reloading builds a new one and swaps it in (see
//! [`Classifier::build`]), so requests never wait for a rebuild.

mod clauses;
pub mod eval;
pub mod normalize;
mod retrieval;
pub mod rules;
pub mod taxonomy;
pub mod tokenizer;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST};
use tantivy::{doc, Index, ReloadPolicy};

use crate::library::Library;

const TOKENIZER: &str = "kefu_zh";
/// BM25 candidates examined per message.
const CANDIDATES: usize = 48;
const KEYWORD_BOOST: f32 = 0.7;
const ANSWER_BOOST: f32 = 0.15;
/// `QuestionDoc::reply` of an out-of-scope sample.
const OUT_OF_SCOPE: u32 = u32::MAX;
/// An out-of-scope sample decides `unknown` only when it is at least this similar to the
/// message (and more similar than every sample question of a reply).
const OUT_OF_SCOPE_MIN: f32 = 0.25;

/// Share of the nearest sample question in an intent's score; the rest is the intent centroid.
const KNN_WEIGHT: f32 = 0.3;

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
        // Chosen on the dev set with `kefu eval`: the unknown threshold maximises accuracy
        // with `unknown` as a class; the answer threshold keeps wrong confident answers under
        // 2% of in-scope messages while answering about half of all messages at once.
        Thresholds {
            unknown_below: 0.10,
            answer_at: 0.30,
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

struct QuestionDoc {
    reply: u32,
    /// Token ids, sorted and unique.
    tokens: Vec<u32>,
    /// Sum of squared IDF over `tokens`.
    weight: f32,
}

/// Where a tantivy document points: a sample question, or a reply's title/keyword/answer doc.
#[derive(Clone, Copy)]
enum DocTarget {
    Question(u32),
    Reply(u32),
}

pub struct Classifier {
    library: Library,
    retrieval: retrieval::Retrieval,
    /// Per segment, per document id: what the document is. Read once at build time so a
    /// query never opens a fast-field column.
    docs: Vec<Vec<DocTarget>>,
    questions: Vec<QuestionDoc>,
    /// Token text -> id; ids index `idf` and `postings`.
    vocab: HashMap<String, u32>,
    /// Intent-level IDF: a token used by every intent (的, 怎么, 我想) weighs nothing, one
    /// used by two intents (退货) weighs a lot.
    idf: Vec<f32>,
    /// IDF given to tokens the library never uses: they pull similarity down, which is what
    /// makes off-topic messages `unknown`.
    unseen_idf: f32,
    /// Per token id: (intent index, weight in that intent's L2-normalised TF-IDF centroid of
    /// all its questions, titles and keywords).
    postings: Vec<Vec<(u16, f32)>>,
    intents: Vec<String>,
    /// Intent index of each reply.
    reply_intent: Vec<u16>,
    tokenize: tokenizer::TokenizeFn,
    thresholds: Thresholds,
}

/// A message's tokens, resolved against the vocabulary.
struct QueryTokens {
    texts: Vec<String>,
    /// (token id if known, its IDF)
    ids: Vec<(Option<u32>, f32)>,
    /// Known ids, sorted, for membership tests.
    known: Vec<u32>,
    /// Sum of squared IDF.
    weight: f32,
}

impl Classifier {
    /// Build the in-memory index over `library`.
    pub fn build(library: Library, thresholds: Thresholds) -> Result<Classifier, ClassifierError> {
        Self::build_with(library, thresholds, tokenizer::tokens)
    }

    /// Build with another tokenizer (over normalised text), for comparing tokenisations.
    pub fn build_with(
        library: Library,
        thresholds: Thresholds,
        tokenize: tokenizer::TokenizeFn,
    ) -> Result<Classifier, ClassifierError> {
        let mut schema = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let f_q = schema.add_text_field("q", text.clone());
        let f_kw = schema.add_text_field("kw", text.clone());
        let f_ans = schema.add_text_field("ans", text);
        // question index + 1, or 0 for a reply document; and the reply index
        let f_target = schema.add_u64_field("target", FAST);
        let f_reply = schema.add_u64_field("reply", FAST);
        let index = Index::create_in_ram(schema.build());
        index
            .tokenizers()
            .register(TOKENIZER, tokenizer::ZhTokenizer::new(tokenize));
        let mut writer = index.writer_with_num_threads(1, 15_000_000)?;

        let mut intents: Vec<String> = Vec::new();
        let mut reply_intent: Vec<u16> = Vec::with_capacity(library.replies().len());
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut questions: Vec<QuestionDoc> = Vec::new();
        // intent index -> token id -> count
        let mut intent_tf: Vec<HashMap<u32, f32>> = Vec::new();
        for (ri, reply) in library.replies().iter().enumerate() {
            let ii = match intents.iter().position(|i| *i == reply.intent) {
                Some(ii) => ii,
                None => {
                    intents.push(reply.intent.clone());
                    intent_tf.push(HashMap::new());
                    intents.len() - 1
                }
            };
            reply_intent.push(ii as u16);
            let extra = std::iter::once(reply.title.as_str())
                .chain(reply.keywords.iter().map(String::as_str));
            for text in extra {
                for t in tokenize(&normalize::normalize(text)) {
                    let id = intern(t, &mut vocab);
                    *intent_tf[ii].entry(id).or_default() += 1.0;
                }
            }
            for q in &reply.questions {
                let norm = normalize::normalize(q);
                let ids = token_ids(tokenize(&norm), &mut vocab);
                for id in &ids {
                    *intent_tf[ii].entry(*id).or_default() += 1.0;
                }
                writer.add_document(doc!(
                    f_q => norm,
                    f_target => questions.len() as u64 + 1,
                    f_reply => ri as u64,
                ))?;
                questions.push(QuestionDoc {
                    reply: ri as u32,
                    tokens: ids,
                    weight: 0.0,
                });
            }
            let kw = std::iter::once(reply.title.as_str())
                .chain(reply.keywords.iter().map(String::as_str))
                .map(normalize::normalize)
                .collect::<Vec<_>>()
                .join(" ");
            writer.add_document(doc!(
                f_kw => kw,
                f_ans => normalize::normalize(&reply.answer),
                f_target => 0u64,
                f_reply => ri as u64,
            ))?;
        }
        // Out-of-scope samples: question documents of no reply.
        for q in library.out_of_scope() {
            let norm = normalize::normalize(q);
            let ids = token_ids(tokenize(&norm), &mut vocab);
            writer.add_document(doc!(
                f_q => norm,
                f_target => questions.len() as u64 + 1,
                f_reply => 0u64,
            ))?;
            questions.push(QuestionDoc {
                reply: OUT_OF_SCOPE,
                tokens: ids,
                weight: 0.0,
            });
        }
        writer.commit()?;

        let n_intents = intents.len().max(1) as f32;
        let mut df = vec![0u32; vocab.len()];
        for tf in &intent_tf {
            for id in tf.keys() {
                df[*id as usize] += 1;
            }
        }
        let idf: Vec<f32> = df
            .iter()
            .map(|d| ((n_intents + 1.0) / (*d).max(1) as f32).ln())
            .collect();
        let unseen_idf = (n_intents + 1.0).ln();
        let mut postings: Vec<Vec<(u16, f32)>> = vec![Vec::new(); vocab.len()];
        for (ii, tf) in intent_tf.iter().enumerate() {
            let weights: Vec<(u32, f32)> = tf
                .iter()
                .map(|(id, c)| (*id, (1.0 + c.ln()) * idf[*id as usize]))
                .collect();
            let norm = weights
                .iter()
                .map(|(_, w)| w * w)
                .sum::<f32>()
                .sqrt()
                .max(1e-6);
            for (id, w) in weights {
                postings[id as usize].push((ii as u16, w / norm));
            }
        }
        for q in &mut questions {
            q.weight = q.tokens.iter().map(|id| idf[*id as usize].powi(2)).sum();
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = reader.searcher();
        let mut docs = Vec::new();
        for seg in searcher.segment_readers() {
            let target = seg.fast_fields().u64("target")?;
            let reply = seg.fast_fields().u64("reply")?;
            let mut map = Vec::with_capacity(seg.max_doc() as usize);
            for doc in 0..seg.max_doc() {
                let t = target.first(doc).unwrap_or(0);
                let r = reply.first(doc).unwrap_or(0);
                map.push(if t == 0 {
                    DocTarget::Reply(r as u32)
                } else {
                    DocTarget::Question((t - 1) as u32)
                });
            }
            docs.push(map);
        }
        let retrieval = retrieval::Retrieval::new(
            &searcher,
            &[(f_q, 1.0), (f_kw, KEYWORD_BOOST), (f_ans, ANSWER_BOOST)],
        )?;
        Ok(Classifier {
            library,
            retrieval,
            docs,
            questions,
            vocab,
            idf,
            unseen_idf,
            postings,
            intents,
            reply_intent,
            tokenize,
            thresholds,
        })
    }

    pub fn library(&self) -> &Library {
        &self.library
    }

    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Classify a message as one whole (see [`clauses`] for messages of several clauses).
    fn classify_whole(&self, text: &str) -> Classification {
        let norm = normalize::normalize(text);
        let rule = rules::trigger(&norm);
        let query = self.resolve((self.tokenize)(&normalize::strip_filler(&norm)));
        let ranked = self.rank(&query);

        let suggestions: Vec<Suggestion> = ranked
            .replies
            .iter()
            .take(3)
            .map(|(ri, score)| {
                let r = &self.library.replies()[*ri];
                Suggestion {
                    reply_id: r.id.clone(),
                    intent: r.intent.clone(),
                    score: round3(*score),
                }
            })
            .collect();

        if let Some(intent) = rule {
            // The best reply of the triggered intent, if retrieval found one.
            let reply_id = ranked
                .replies
                .iter()
                .map(|(ri, _)| &self.library.replies()[*ri])
                .find(|r| r.intent == intent)
                .or_else(|| self.library.replies().iter().find(|r| r.intent == intent))
                .map(|r| r.id.clone());
            return Classification {
                text: text.to_string(),
                intent: intent.to_string(),
                confidence: 1.0,
                reply_id,
                handoff: taxonomy::get(intent).is_none_or(|i| i.handoff),
                suggestions,
                rule: Some(intent),
                second_intent: None,
                angry: normalize::angry(text),
            };
        }

        let off_topic = ranked.out_of_scope >= OUT_OF_SCOPE_MIN
            && ranked.out_of_scope > ranked.nearest_question;
        let best = ranked
            .best
            .filter(|_| !off_topic)
            .map(|(ii, score, ri)| (ii, calibrate(score, ranked.coverage), ri));
        match best {
            Some((ii, confidence, ri)) if confidence >= self.thresholds.unknown_below => {
                let intent = self.intents[ii].clone();
                let handoff = confidence < self.thresholds.answer_at
                    || taxonomy::get(&intent).is_none_or(|i| i.handoff);
                Classification {
                    text: text.to_string(),
                    reply_id: Some(self.library.replies()[ri].id.clone()),
                    intent,
                    confidence: round3(confidence),
                    handoff,
                    suggestions,
                    rule: None,
                    second_intent: None,
                    angry: normalize::angry(text),
                }
            }
            other => Classification {
                text: text.to_string(),
                intent: taxonomy::UNKNOWN.to_string(),
                confidence: round3(other.map(|b| b.1).unwrap_or(0.0)),
                reply_id: None,
                handoff: true,
                suggestions,
                rule: None,
                second_intent: None,
                angry: normalize::angry(text),
            },
        }
    }

    fn resolve(&self, tokens: Vec<String>) -> QueryTokens {
        let mut texts = tokens;
        texts.sort_unstable();
        texts.dedup();
        let ids: Vec<(Option<u32>, f32)> = texts
            .iter()
            .map(|t| match self.vocab.get(t) {
                Some(id) => (Some(*id), self.idf[*id as usize]),
                None => (None, self.unseen_idf),
            })
            .collect();
        let mut known: Vec<u32> = ids.iter().filter_map(|(id, _)| *id).collect();
        known.sort_unstable();
        let weight = ids.iter().map(|(_, w)| w * w).sum();
        QueryTokens {
            texts,
            ids,
            known,
            weight,
        }
    }

    fn rank(&self, q: &QueryTokens) -> Ranked {
        let mut ranked = Ranked::default();
        if q.texts.is_empty() {
            return ranked;
        }
        // Retrieval uses the selective tokens: single CJK characters match a large part of
        // the index and add cost, not candidates (they still count in the scoring below).
        let selective: Vec<&String> = {
            let multi: Vec<&String> = q
                .texts
                .iter()
                .filter(|t| t.chars().count() > 1 || t.is_ascii())
                .collect();
            if multi.is_empty() {
                q.texts.iter().collect()
            } else {
                multi
            }
        };
        let Ok(top) = self.retrieval.top(&selective, CANDIDATES) else {
            return ranked;
        };
        let q_norm = q.weight.sqrt().max(1e-6);

        // reply -> best similarity to the message
        let mut reply_score: Vec<(usize, f32)> = Vec::with_capacity(top.len());
        let best_bm25 = top.first().map(|(s, _)| *s).unwrap_or(1.0).max(1e-6);
        for (bm25, addr) in top {
            let Some(target) = self
                .docs
                .get(addr.segment_ord as usize)
                .and_then(|d| d.get(addr.doc_id as usize))
            else {
                continue;
            };
            let (ri, sim) = match *target {
                // Title/keyword/answer document: a weaker, BM25-relative signal.
                DocTarget::Reply(ri) => (ri as usize, 0.3 * bm25 / best_bm25),
                DocTarget::Question(qi) => {
                    let Some(qd) = self.questions.get(qi as usize) else {
                        continue;
                    };
                    let shared: f32 = qd
                        .tokens
                        .iter()
                        .filter(|id| q.known.binary_search(id).is_ok())
                        .map(|id| self.idf[*id as usize].powi(2))
                        .sum();
                    let sim = if shared == 0.0 {
                        0.0
                    } else {
                        // Cosine of IDF-weighted token sets.
                        shared / (q_norm * qd.weight.sqrt().max(1e-6))
                    };
                    if qd.reply == OUT_OF_SCOPE {
                        ranked.out_of_scope = ranked.out_of_scope.max(sim);
                        continue;
                    }
                    ranked.nearest_question = ranked.nearest_question.max(sim);
                    (qd.reply as usize, sim)
                }
            };
            match reply_score.iter_mut().find(|(r, _)| *r == ri) {
                Some(e) if sim > e.1 => e.1 = sim,
                Some(_) => {}
                None => reply_score.push((ri, sim)),
            }
        }
        reply_score.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        // Intent score: the best matching sample question, blended with the similarity to
        // everything the intent's replies say (robust to phrasings no sample has).
        let n = self.intents.len();
        let mut centroid = vec![0f32; n];
        for (id, w) in &q.ids {
            if let Some(id) = id {
                for (ii, cw) in &self.postings[*id as usize] {
                    centroid[*ii as usize] += cw * w;
                }
            }
        }
        let mut knn: Vec<Option<(usize, f32)>> = vec![None; n];
        for (ri, s) in &reply_score {
            let ii = self.reply_intent[*ri] as usize;
            if knn[ii].is_none() {
                knn[ii] = Some((*ri, *s));
            }
        }
        let mut best: Option<(usize, f32, usize)> = None;
        for ii in 0..n {
            let knn_score = knn[ii].map(|k| k.1).unwrap_or(0.0);
            let score = KNN_WEIGHT * knn_score + (1.0 - KNN_WEIGHT) * centroid[ii] / q_norm;
            let ri = match knn[ii] {
                Some((ri, _)) => ri,
                None => match self.reply_intent.iter().position(|x| *x as usize == ii) {
                    Some(ri) => ri,
                    None => continue,
                },
            };
            if best.is_none_or(|b| score > b.1) {
                best = Some((ii, score, ri));
            }
        }
        // How much of the message the best intent's vocabulary explains at all.
        if let Some((bi, _, _)) = best {
            let total: f32 = q.ids.iter().map(|(_, w)| w).sum();
            let known: f32 = q
                .ids
                .iter()
                .filter(|(id, _)| {
                    id.is_some_and(|id| {
                        self.postings[id as usize]
                            .iter()
                            .any(|(ii, _)| *ii as usize == bi)
                    })
                })
                .map(|(_, w)| w)
                .sum();
            ranked.coverage = if total > 0.0 { known / total } else { 0.0 };
        }
        ranked.replies = reply_score;
        ranked.best = best;
        ranked
    }
}

#[derive(Default)]
struct Ranked {
    /// (reply index, similarity), best first.
    replies: Vec<(usize, f32)>,
    /// (intent index, score, its best reply) of the best intent.
    best: Option<(usize, f32, usize)>,
    /// Share of the message's IDF mass the best intent's vocabulary contains.
    coverage: f32,
    /// Similarity of the nearest sample question of a reply, and of an out-of-scope sample.
    nearest_question: f32,
    out_of_scope: f32,
}

/// The id of token `t`, added to `vocab` if new.
fn intern(t: String, vocab: &mut HashMap<String, u32>) -> u32 {
    let next = vocab.len() as u32;
    *vocab.entry(t).or_insert(next)
}

/// Ids of `tokens`, sorted and unique (a sample question's token set).
fn token_ids(tokens: Vec<String>, vocab: &mut HashMap<String, u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = tokens.into_iter().map(|t| intern(t, vocab)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Confidence in 0..1 from the best intent's similarity and how much of the message that
/// intent's vocabulary explains. Off-topic messages share a few common words with some
/// intent (帮我, 查一下) but not their content words, so their coverage, and with it the
/// confidence, stays low. Chosen over margin-based variants by `kefu eval` (see BENCHMARKS.md).
fn calibrate(best: f32, coverage: f32) -> f32 {
    (best.max(0.0).sqrt() * coverage).clamp(0.0, 1.0)
}

fn round3(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

/// The classifier in service: read without locking by every request, replaced atomically by
/// a reload. A reload builds the new classifier off to the side; requests keep using the old
/// one until the swap, so none waits and none fails.
pub struct SharedClassifier {
    current: arc_swap::ArcSwap<Classifier>,
    dir: std::path::PathBuf,
    thresholds: Thresholds,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
    #[error(transparent)]
    Index(#[from] ClassifierError),
}

/// What a (re)load produced.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub replies: usize,
    pub questions: usize,
    pub build_ms: u64,
}

impl SharedClassifier {
    /// Load the library in `dir` and build the first classifier.
    pub fn load(
        dir: &std::path::Path,
        thresholds: Thresholds,
    ) -> Result<(Self, LoadReport), ReloadError> {
        let (classifier, report) = Self::build_from(dir, thresholds)?;
        Ok((
            SharedClassifier {
                current: arc_swap::ArcSwap::from_pointee(classifier),
                dir: dir.to_owned(),
                thresholds,
            },
            report,
        ))
    }

    fn build_from(
        dir: &std::path::Path,
        thresholds: Thresholds,
    ) -> Result<(Classifier, LoadReport), ReloadError> {
        let started = std::time::Instant::now();
        let library = crate::library::load(dir)?;
        let replies = library.replies().len();
        let questions = library.replies().iter().map(|r| r.questions.len()).sum();
        let classifier = Classifier::build(library, thresholds)?;
        Ok((
            classifier,
            LoadReport {
                replies,
                questions,
                build_ms: started.elapsed().as_millis() as u64,
            },
        ))
    }

    /// The classifier to use for one request.
    pub fn current(&self) -> Arc<Classifier> {
        self.current.load_full()
    }

    /// Re-read the library and swap in a new classifier. On error the old one stays.
    pub fn reload(&self) -> Result<LoadReport, ReloadError> {
        let (classifier, report) = Self::build_from(&self.dir, self.thresholds)?;
        self.current.store(Arc::new(classifier));
        Ok(report)
    }
}
