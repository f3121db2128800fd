//! Ranking a message against the built classifier. [`Classifier::resolve`] maps its tokens to
//! vocabulary ids and IDF weights; [`Classifier::rank`] retrieves BM25 candidates and scores
//! them: a sample question by the cosine of IDF-weighted token sets, a reply by its best
//! candidate, and an intent by blending `KNN_WEIGHT` (0.3) × its best reply's similarity with
//! 0.7 × the cosine between the message and the intent's centroid. The best intent is the
//! retrieval view's verdict; the linear model's must agree with it for an answer at once.

use super::build::{DocTarget, OUT_OF_SCOPE};
use super::Classifier;

/// BM25 candidates examined per message.
const CANDIDATES: usize = 48;

/// Share of the intent's best reply similarity (its nearest sample question, as a rule) in its
/// score; the rest (`1.0 - KNN_WEIGHT`) is the cosine with the intent's centroid.
const KNN_WEIGHT: f32 = 0.3;

/// A message's tokens, resolved against the vocabulary.
pub(super) struct QueryTokens<'a> {
    /// Sorted and unique.
    pub(super) texts: Vec<&'a str>,
    /// (token id if known, its IDF)
    pub(super) ids: Vec<(Option<u32>, f32)>,
    /// Known ids, sorted, for membership tests.
    pub(super) known: Vec<u32>,
    /// Sum of squared IDF.
    pub(super) weight: f32,
}

impl Classifier {
    pub(super) fn resolve<'a>(&self, tokens: Vec<&'a str>) -> QueryTokens<'a> {
        let mut texts = tokens;
        texts.sort_unstable();
        texts.dedup();
        let ids: Vec<(Option<u32>, f32)> = texts
            .iter()
            .map(|t| match self.vocab.get(*t) {
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

    pub(super) fn rank(&self, q: &QueryTokens) -> Ranked {
        let n = self.intents.len();
        let mut ranked = Ranked {
            // Every intent scores zero until the message's tokens say otherwise (a message
            // with none keeps these).
            intent_scores: vec![0.0; n],
            ..Ranked::default()
        };
        if q.texts.is_empty() {
            return ranked;
        }
        // Retrieval uses the selective tokens: single CJK characters match a large part of
        // the index and add cost, not candidates (they still count in the scoring below).
        let selective: Vec<&str> = {
            let multi: Vec<&str> = q
                .texts
                .iter()
                .copied()
                .filter(|t| t.chars().count() > 1 || t.is_ascii())
                .collect();
            if multi.is_empty() {
                q.texts.clone()
            } else {
                multi
            }
        };
        let top = self.retrieval.top(&selective, CANDIDATES);
        let known = KnownIds::take_marked(&q.known, self.idf.len());
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
                    let Some((question, tokens)) = self.questions.get(qi as usize) else {
                        continue;
                    };
                    if question.reply == OUT_OF_SCOPE {
                        continue;
                    }
                    // Sum of squared IDF over the tokens the question shares with the
                    // message, in the question's order.
                    let mut shared = -0.0f32;
                    for id in tokens {
                        let w = self.idf_squared.get(*id as usize).copied().unwrap_or(0.0);
                        // Adding zero for a token not shared changes nothing (a sum left at
                        // zero scores zero whatever its sign), and leaves nothing to predict.
                        shared += if known.contains(*id) { w } else { 0.0 };
                    }
                    let sim = if shared == 0.0 {
                        0.0
                    } else {
                        // Cosine of IDF-weighted token sets.
                        shared / (q_norm * question.norm)
                    };
                    (question.reply as usize, sim)
                }
            };
            match reply_score.iter_mut().find(|(r, _)| *r == ri) {
                Some(e) if sim > e.1 => e.1 = sim,
                Some(_) => {}
                None => reply_score.push((ri, sim)),
            }
        }
        known.put_back();
        // Each reply is listed once, so the order is total and an unstable sort gives it.
        reply_score.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        // Intent score: KNN_WEIGHT × its best reply's similarity (from `reply_score`), plus
        // (1 - KNN_WEIGHT) × the cosine with its centroid, everything the intent's replies say
        // (robust to phrasings no sample has).
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
                None => match self.first_reply.get(ii).copied().flatten() {
                    Some(ri) => ri,
                    None => continue,
                },
            };
            ranked.intent_scores[ii] = score;
            if best.is_none_or(|b| score > b.1) {
                best = Some((ii, score, ri));
            }
        }
        ranked.replies = reply_score;
        ranked.best = best;
        ranked
    }
}

/// The message's known token ids, for membership tests that cost one read: an array over the
/// vocabulary holding, for each id, the number of the last query that had it. Kept per thread
/// between queries, so that none allocates or clears it.
#[derive(Default)]
struct KnownIds {
    marks: Vec<u32>,
    query: u32,
}

thread_local! {
    static KNOWN: std::cell::RefCell<KnownIds> = std::cell::RefCell::new(KnownIds::default());
}

impl KnownIds {
    /// This thread's array, marked with `known` (ids under `vocab`); give it back with
    /// [`KnownIds::put_back`].
    fn take_marked(known: &[u32], vocab: usize) -> KnownIds {
        let mut k = KNOWN.take();
        k.query = k.query.wrapping_add(1);
        if k.marks.len() != vocab || k.query == 0 {
            // A new vocabulary, or the query count wrapped: start again from nothing.
            k.marks.clear();
            k.marks.resize(vocab, 0);
            k.query = 1;
        }
        for id in known {
            if let Some(m) = k.marks.get_mut(*id as usize) {
                *m = k.query;
            }
        }
        k
    }

    fn contains(&self, id: u32) -> bool {
        self.marks.get(id as usize) == Some(&self.query)
    }

    fn put_back(self) {
        KNOWN.set(self);
    }
}

#[derive(Default)]
pub(super) struct Ranked {
    /// (reply index, similarity), best first.
    pub(super) replies: Vec<(usize, f32)>,
    /// (intent index, score, its best reply) of the best intent.
    pub(super) best: Option<(usize, f32, usize)>,
    /// Per intent index: its blended score.
    pub(super) intent_scores: Vec<f32>,
}

impl Classifier {
    /// Share of the message's IDF mass that intent `ii`'s vocabulary contains (the retrieval
    /// view's confidence, when it is used alone, is `sqrt(score) × coverage`).
    pub(super) fn coverage(&self, q: &QueryTokens, ii: usize) -> f32 {
        let total: f32 = q.ids.iter().map(|(_, w)| w).sum();
        let known: f32 = q
            .ids
            .iter()
            .filter(|(id, _)| {
                id.is_some_and(|id| {
                    self.postings[id as usize]
                        .iter()
                        .any(|(i, _)| *i as usize == ii)
                })
            })
            .map(|(_, w)| w)
            .sum();
        if total > 0.0 {
            known / total
        } else {
            0.0
        }
    }
}
