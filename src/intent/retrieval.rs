//! Candidate retrieval: the top documents by boosted BM25 over several fields, read straight
//! from the tantivy index's postings.
//!
//! The result is what a `BooleanQuery` of boosted `TermQuery` clauses (one per token and
//! field, all `Should`) ranked by `TopDocs` returns, ties in ascending document order. It is
//! computed term by term into a score array instead: with a few dozen short clauses over a
//! few thousand documents, building per-clause weights and scorers cost more than scoring.
//! Each term's contributions (its boosted BM25 score in each document) are computed once when
//! the classifier is built, so a query does no dictionary lookup or postings decoding.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::Postings;
use tantivy::query::{Bm25StatisticsProvider, Bm25Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocSet, InvertedIndexReader, Searcher, Term, TERMINATED};

/// A term's postings in one field as BM25 contributions: each (document number, counted across
/// the segments in order, and its boosted score), in the order tantivy's postings list them.
type Contributions = Box<[(u32, f32)]>;

pub(super) struct Retrieval {
    /// Term text -> its contributions in each field, in the order of the fields (empty where
    /// a field does not have the term): one look-up per token for all the fields.
    terms: rustc_hash::FxHashMap<Box<str>, Box<[Contributions]>>,
    fields: usize,
    /// The number of each segment's first document, ascending.
    segment_starts: Vec<u32>,
    /// Document numbers in all the segments (each segment's `max_doc`, summed).
    doc_numbers: usize,
}

/// BM25's IDF, as tantivy computes it: ln(1 + (N - n + 0.5) / (n + 0.5)).
fn idf(doc_freq: u64, total_docs: u64) -> f32 {
    let x = (total_docs as f32 - doc_freq as f32 + 0.5) / (doc_freq as f32 + 0.5);
    (1.0 + x).ln()
}

/// A document's place in the ranking as one integer, smaller first: the score, highest first
/// in `f32::total_cmp`'s order, then the document number (documents are numbered segment by
/// segment, so that is `DocAddress`'s order), as a `TopDocs` collector breaks ties.
fn rank_key(score: f32, doc: u32) -> u64 {
    // `total_cmp`'s own mapping of an f32 to an integer of the same order, made unsigned.
    let bits = score.to_bits() as i32;
    let ordered = (bits ^ (((bits >> 31) as u32) >> 1) as i32) as u32 ^ 0x8000_0000;
    (u64::from(!ordered) << 32) | u64::from(doc)
}

/// The score and document of a [`rank_key`].
fn from_rank_key(key: u64) -> (f32, u32) {
    let ordered = !((key >> 32) as u32) ^ 0x8000_0000;
    let bits = ordered as i32;
    let bits = bits ^ (((bits >> 31) as u32) >> 1) as i32;
    (f32::from_bits(bits as u32), key as u32)
}

/// Per-thread buffers of [`Retrieval::top`], kept between queries so that none allocates them.
#[derive(Default)]
struct Scratch {
    /// Per document: its score so far. Zero between queries (a query resets what it touched).
    scores: Vec<f32>,
    /// The documents this query has given a score, in the order they first got one (while
    /// scoring, entries past the ones kept are scratch).
    touched: Vec<u32>,
    /// Each touched document as a [`rank_key`].
    hits: Vec<u64>,
}

impl Retrieval {
    /// Read every term of every field once and keep its contribution to each document's
    /// score: the index never changes after the build, so a query only adds them up.
    pub(super) fn new(searcher: &Searcher, fields: &[(Field, f32)]) -> tantivy::Result<Retrieval> {
        let total_docs = searcher.total_num_docs()?.max(1);
        let mut segment_starts = Vec::new();
        let mut next_start = 0u32;
        for seg in searcher.segment_readers() {
            segment_starts.push(next_start);
            next_start = next_start.saturating_add(seg.max_doc());
        }
        let mut terms: rustc_hash::FxHashMap<Box<str>, Vec<Contributions>> =
            rustc_hash::FxHashMap::default();
        for (fi, &(field, boost)) in fields.iter().enumerate() {
            let avg = searcher.total_num_tokens(field)? as f32 / total_docs as f32;
            // BM25 weight of a term found in one document of the field; other terms' scores
            // are this one's scaled by their IDF (the length normalisation is the field's).
            let unit = Bm25Weight::for_one_term_without_explain(1, total_docs, avg);
            let unit_idf = idf(1, total_docs);
            let mut postings: Vec<Arc<InvertedIndexReader>> = Vec::new();
            let mut norms: Vec<FieldNormReader> = Vec::new();
            let mut texts: BTreeSet<String> = BTreeSet::new();
            for seg in searcher.segment_readers() {
                let inv = seg.inverted_index(field)?;
                let mut stream = inv.terms().stream()?;
                while stream.advance() {
                    if let Ok(t) = std::str::from_utf8(stream.key()) {
                        texts.insert(t.to_owned());
                    }
                }
                postings.push(inv);
                norms.push(seg.get_fieldnorms_reader(field)?);
            }
            let mut infos = Vec::with_capacity(postings.len());
            for text in texts {
                let term = Term::from_field_text(field, &text);
                infos.clear();
                let mut doc_freq = 0u64;
                for inv in &postings {
                    let info = inv.get_term_info(&term)?;
                    doc_freq += info.as_ref().map_or(0, |i| i.doc_freq as u64);
                    infos.push(info);
                }
                if doc_freq == 0 {
                    continue;
                }
                let scale = boost * idf(doc_freq, total_docs) / unit_idf;
                let mut contributions = Vec::with_capacity(doc_freq as usize);
                for (seg, info) in infos.iter().enumerate() {
                    let Some(info) = info else { continue };
                    let start = segment_starts.get(seg).copied().unwrap_or(0);
                    let mut docs = postings[seg]
                        .read_postings_from_terminfo(info, IndexRecordOption::WithFreqs)?;
                    let mut doc = docs.doc();
                    while doc != TERMINATED {
                        let s = unit.score(norms[seg].fieldnorm_id(doc), docs.term_freq());
                        contributions.push((start + doc, s * scale));
                        doc = docs.advance();
                    }
                }
                let per_field = terms.entry(text.into_boxed_str()).or_default();
                per_field.resize_with(fields.len(), Default::default);
                per_field[fi] = contributions.into_boxed_slice();
            }
        }
        let terms = terms
            .into_iter()
            .map(|(t, mut per_field)| {
                per_field.resize_with(fields.len(), Default::default);
                (t, per_field.into_boxed_slice())
            })
            .collect();
        Ok(Retrieval {
            terms,
            fields: fields.len(),
            segment_starts,
            doc_numbers: next_start as usize,
        })
    }

    /// The `limit` best documents for `tokens`, best first.
    pub(super) fn top(&self, tokens: &[&str], limit: usize) -> Vec<(f32, DocAddress)> {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
        }
        SCRATCH.with_borrow_mut(|scratch| {
            if scratch.scores.len() != self.doc_numbers {
                scratch.scores = vec![0.0; self.doc_numbers];
            }
            self.top_into(scratch, tokens, limit)
        })
    }

    fn top_into(
        &self,
        scratch: &mut Scratch,
        tokens: &[&str],
        limit: usize,
    ) -> Vec<(f32, DocAddress)> {
        let Scratch {
            scores,
            touched,
            hits,
        } = scratch;
        touched.clear();
        hits.clear();
        let found: Vec<&[Contributions]> = tokens
            .iter()
            .filter_map(|t| self.terms.get(*t).map(|per_field| &per_field[..]))
            .collect();
        // Room for every contribution, so that each document is written down unconditionally
        // and kept only if it had no score yet: no branch on what the scores hold.
        let most: usize = found
            .iter()
            .flat_map(|per_field| per_field.iter().map(|c| c.len()))
            .sum();
        touched.resize(most, 0);
        let mut kept = 0;
        // Field by field, term by term, document by document: the order tantivy's boolean
        // query adds them in, so the sums are the same to the last bit.
        for fi in 0..self.fields {
            for per_field in &found {
                let Some(contributions) = per_field.get(fi) else {
                    continue;
                };
                for &(doc, c) in contributions.iter() {
                    let Some(slot) = scores.get_mut(doc as usize) else {
                        continue;
                    };
                    if let Some(t) = touched.get_mut(kept) {
                        *t = doc;
                    }
                    kept += usize::from(*slot == 0.0);
                    *slot += c;
                }
            }
        }
        touched.truncate(kept);
        hits.extend(touched.iter().filter_map(|doc| {
            scores
                .get_mut(*doc as usize)
                .map(|slot| rank_key(std::mem::take(slot), *doc))
        }));
        if hits.len() > limit {
            hits.select_nth_unstable(limit);
            hits.truncate(limit);
        }
        hits.sort_unstable();
        hits.iter()
            .map(|&key| {
                let (score, doc) = from_rank_key(key);
                (score, self.address(doc))
            })
            .collect()
    }

    /// The segment and segment-local number of document `doc`.
    fn address(&self, doc: u32) -> DocAddress {
        let seg = self
            .segment_starts
            .partition_point(|start| *start <= doc)
            .saturating_sub(1);
        let start = self.segment_starts.get(seg).copied().unwrap_or(0);
        DocAddress::new(seg as u32, doc - start)
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
    use tantivy::schema::{Schema, TextOptions, STRING};
    use tantivy::{doc, Index};

    use super::*;

    /// The integer key orders as `total_cmp` (descending) then the document, and gives both back.
    #[test]
    fn rank_keys_order_as_total_cmp_then_document() {
        let scores = [
            0.0f32,
            -0.0,
            1.5,
            1.5000001,
            f32::MIN_POSITIVE,
            -2.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            3.25e-30,
        ];
        let mut pairs: Vec<(f32, u32)> = Vec::new();
        for (i, s) in scores.iter().enumerate() {
            pairs.push((*s, i as u32));
            pairs.push((*s, 1000 - i as u32));
        }
        for &(s, d) in &pairs {
            let (s2, d2) = from_rank_key(rank_key(s, d));
            assert_eq!((s.to_bits(), d), (s2.to_bits(), d2));
        }
        let mut by_cmp = pairs.clone();
        by_cmp.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut by_key = pairs.clone();
        by_key.sort_by_key(|(s, d)| rank_key(*s, *d));
        let bits = |v: &[(f32, u32)]| v.iter().map(|(s, d)| (s.to_bits(), *d)).collect::<Vec<_>>();
        assert_eq!(bits(&by_cmp), bits(&by_key));
    }

    /// The same ranking, scores and tie order as tantivy's own boolean query and collector.
    #[test]
    fn ranks_like_a_boolean_query_with_top_docs() {
        let mut schema = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            tantivy::schema::TextFieldIndexing::default()
                .set_tokenizer("whitespace")
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let a = schema.add_text_field("a", text.clone());
        let b = schema.add_text_field("b", text);
        let _id = schema.add_text_field("id", STRING);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let words = [
            "退款", "发货", "快递", "优惠", "发票", "尺码", "颜色", "售后",
        ];
        // Several segments, documents of varied lengths and repeated terms, and ties.
        for seg in 0..3u64 {
            for i in 0..60u64 {
                let pick = |k: u64| words[((i * 7 + k * 3 + seg) % words.len() as u64) as usize];
                let body_a = (0..(i % 5 + 1)).map(pick).collect::<Vec<_>>().join(" ");
                let body_b = (0..(i % 3))
                    .map(|k| pick(k + 11))
                    .collect::<Vec<_>>()
                    .join(" ");
                writer.add_document(doc!(a => body_a, b => body_b)).unwrap();
            }
            writer.commit().unwrap();
        }
        let reader = index.reader().unwrap();
        let searcher = reader.searcher();
        assert!(searcher.segment_readers().len() > 1);
        let fields = [(a, 1.0), (b, 0.7)];
        let retrieval = Retrieval::new(&searcher, &fields).unwrap();

        for query in [
            vec!["退款"],
            vec!["发货", "快递", "没有的词"],
            words.to_vec(),
        ] {
            let tokens: Vec<String> = query.iter().map(|s| s.to_string()).collect();
            let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for t in &tokens {
                for (field, boost) in fields {
                    let tq = TermQuery::new(
                        Term::from_field_text(field, t),
                        IndexRecordOption::WithFreqs,
                    );
                    clauses.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(tq), boost)),
                    ));
                }
            }
            let query_all = BooleanQuery::new(clauses);
            for limit in [1, 10, 48, 500] {
                let expected = searcher
                    .search(&query_all, &TopDocs::with_limit(limit).order_by_score())
                    .unwrap();
                let got = retrieval.top(&query, limit);
                assert_eq!(got.len(), expected.len(), "{query:?} limit {limit}");
                let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * y.abs();
                for ((gs, _), (es, _)) in got.iter().zip(&expected) {
                    assert!(close(*gs, *es), "{query:?}: {gs} vs {es}");
                }
                // The same documents, in the same order, up to ties that summing the same
                // scores in another order can turn either way.
                let cutoff = expected.last().map_or(0.0, |e| e.0);
                for (i, (es, ed)) in expected.iter().enumerate() {
                    let tied = |j: usize| expected.get(j).is_some_and(|e| close(e.0, *es));
                    if close(*es, cutoff) || tied(i + 1) || (i > 0 && tied(i - 1)) {
                        assert!(
                            got.iter().any(|(gs, gd)| gd == ed && close(*gs, *es))
                                || close(*es, cutoff)
                        );
                    } else {
                        assert_eq!(got[i].1, *ed, "{query:?} limit {limit} at {i}");
                    }
                }
            }
        }
    }
}
