//! Building a [`Classifier`] from the library: the in-memory tantivy index (one document per
//! sample question and one per reply, for BM25 retrieval) and the scoring tables beside it:
//! the token vocabulary, the intent-level IDF, each sample question's token set and each
//! intent's L2-normalised TF-IDF centroid as postings per token. Everything is computed once
//! here; [`super::rank`] only reads it.

use std::collections::HashMap;

/// Token text -> id. Looked up for every token of every message: a fast hash of short strings.
pub(super) type Vocab = rustc_hash::FxHashMap<String, u32>;

use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST};
use tantivy::{doc, Index, ReloadPolicy};

use super::{linear, normalize, retrieval, tokenizer, Classifier, ClassifierError, Thresholds};
use crate::library::Library;

const TOKENIZER: &str = "kefu_zh";
const KEYWORD_BOOST: f32 = 0.7;
const ANSWER_BOOST: f32 = 0.15;
/// `QuestionDoc::reply` of an out-of-scope sample.
pub(super) const OUT_OF_SCOPE: u32 = u32::MAX;

pub(super) struct QuestionDoc {
    pub(super) reply: u32,
    /// Token ids, sorted and unique.
    pub(super) tokens: Vec<u32>,
    /// Sum of squared IDF over `tokens`.
    pub(super) weight: f32,
}

/// The sample questions as ranking reads them: one small entry each, and all their token ids
/// in one array, so that comparing a message with its candidates walks little memory.
#[derive(Default)]
pub(super) struct Questions {
    pub(super) entries: Vec<QuestionEntry>,
    /// Every question's token ids, question after question (each one's sorted and unique).
    pub(super) tokens: Vec<u32>,
}

#[derive(Clone, Copy)]
pub(super) struct QuestionEntry {
    pub(super) reply: u32,
    /// The question's token ids: `tokens[start..end]` of [`Questions`].
    pub(super) start: u32,
    pub(super) end: u32,
    /// The length of its IDF-weighted token set: `sqrt(weight)`, at least 1e-6.
    pub(super) norm: f32,
}

impl Questions {
    fn pack(questions: Vec<QuestionDoc>) -> Questions {
        let mut packed = Questions::default();
        for q in questions {
            let start = packed.tokens.len() as u32;
            packed.tokens.extend_from_slice(&q.tokens);
            packed.entries.push(QuestionEntry {
                reply: q.reply,
                start,
                end: packed.tokens.len() as u32,
                norm: q.weight.sqrt().max(1e-6),
            });
        }
        packed
    }

    /// Question `qi`'s entry and token ids.
    pub(super) fn get(&self, qi: usize) -> Option<(&QuestionEntry, &[u32])> {
        let e = self.entries.get(qi)?;
        let tokens = self.tokens.get(e.start as usize..e.end as usize)?;
        Some((e, tokens))
    }
}

/// Where a tantivy document points: a sample question, or a reply's title/keyword/answer doc.
#[derive(Clone, Copy)]
pub(super) enum DocTarget {
    Question(u32),
    Reply(u32),
}

impl Classifier {
    /// Build the in-memory index over `library`.
    pub fn build(library: Library, thresholds: Thresholds) -> Result<Classifier, ClassifierError> {
        Self::assemble(library, thresholds, None)
    }

    /// Build with another tokenizer (over normalised text), for comparing tokenisations.
    pub fn build_with(
        library: Library,
        thresholds: Thresholds,
        tokenize: tokenizer::TokenizeFn,
    ) -> Result<Classifier, ClassifierError> {
        Self::assemble(library, thresholds, Some(tokenize))
    }

    /// `custom`: a tokenizer other than [`tokenizer::tokens`], whose tokens a message's are
    /// then read with too.
    fn assemble(
        library: Library,
        thresholds: Thresholds,
        custom: Option<tokenizer::TokenizeFn>,
    ) -> Result<Classifier, ClassifierError> {
        let tokenize = custom.unwrap_or(tokenizer::tokens);
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
        let mut vocab = Vocab::default();
        let mut questions: Vec<QuestionDoc> = Vec::new();
        // Training samples of the linear model; their classes are intent indexes, and the
        // out-of-scope samples' class (one past the last intent) is fixed once all are known.
        let mut samples: Vec<linear::Sample> = Vec::new();
        // Each text is normalised once, here, for both the index and the model.
        let mut sample = |norm: &str, class: u16, vocab: &mut Vocab| {
            let ids = token_ids(tokenize(&normalize::strip_filler(norm)), vocab);
            samples.push(linear::Sample {
                distinct: ids.len(),
                ids,
                class,
            });
        };
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
            // The title, then the keywords.
            let extra: Vec<String> = std::iter::once(reply.title.as_str())
                .chain(reply.keywords.iter().map(String::as_str))
                .map(normalize::normalize)
                .collect();
            let question_norms: Vec<String> = reply
                .questions
                .iter()
                .map(|q| normalize::normalize(q))
                .collect();
            sample(&extra[0], ii as u16, &mut vocab);
            for norm in &question_norms {
                sample(norm, ii as u16, &mut vocab);
            }
            for text in &extra {
                for t in tokenize(text) {
                    let id = intern(t, &mut vocab);
                    *intent_tf[ii].entry(id).or_default() += 1.0;
                }
            }
            for norm in question_norms {
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
            let kw = extra.join(" ");
            writer.add_document(doc!(
                f_kw => kw,
                f_ans => normalize::normalize(&reply.answer),
                f_target => 0u64,
                f_reply => ri as u64,
            ))?;
        }
        // Out-of-scope samples: question documents of no reply.
        let unknown_class = intents.len() as u16;
        for q in library.out_of_scope() {
            let norm = normalize::normalize(q);
            sample(&norm, unknown_class, &mut vocab);
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
        let linear = linear::Linear::train(&samples, intents.len() + 1, vocab.len());

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
        let mut first_reply = vec![None; intents.len()];
        for (ri, ii) in reply_intent.iter().enumerate() {
            if let Some(slot @ None) = first_reply.get_mut(*ii as usize) {
                *slot = Some(ri);
            }
        }
        let idf_squared = idf.iter().map(|w| w.powi(2)).collect();
        Ok(Classifier {
            library,
            retrieval,
            docs,
            questions: Questions::pack(questions),
            vocab,
            idf,
            idf_squared,
            unseen_idf,
            postings,
            linear,
            intents,
            reply_intent,
            first_reply,
            custom_tokenize: custom,
            thresholds,
            model: super::Model::default(),
        })
    }
}

/// The id of token `t`, added to `vocab` if new.
fn intern(t: String, vocab: &mut Vocab) -> u32 {
    let next = vocab.len() as u32;
    *vocab.entry(t).or_insert(next)
}

/// Ids of `tokens`, sorted and unique (a sample question's token set).
fn token_ids(tokens: Vec<String>, vocab: &mut Vocab) -> Vec<u32> {
    let mut ids: Vec<u32> = tokens.into_iter().map(|t| intern(t, vocab)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
