//! Messages of several clauses: what else they ask for.
//!
//! Shoppers tell a story before they ask ("我昨天买的卫衣，快递到哪了"), and sometimes ask two
//! things at once ("快递到哪了？另外能开发票吗"). The verdict stays the whole message's:
//! choosing the surest clause instead was measured on the dev set and lost (fragments score
//! high on little evidence; see BENCHMARKS.md). Each clause that asks something is scored
//! on its own as well, and one that confidently asks for another intent is reported as
//! `second_intent`, so the agent sees both requests.

use std::sync::OnceLock;

use super::normalize::{self, Phrases};
use super::{taxonomy, Classification, Classifier};

/// Below this many characters a message is taken to ask one thing.
const SPLIT_FROM_CHARS: usize = 12;
/// At most this many clauses are scored on their own (the last ones: requests are usually at
/// the end), so a very long message costs a bounded amount of work.
const MAX_CLAUSES: usize = 6;

/// Words and marks that make a clause a question or a request.
const ASKING: &[&str] = &[
    "吗",
    "呢",
    "么",
    "怎",
    "什么",
    "多久",
    "多少",
    "哪",
    "几",
    "能不能",
    "能否",
    "可不可以",
    "可以",
    "是否",
    "有没有",
    "要不要",
    "会不会",
    "是不是",
    "为什么",
    "咋",
    "啥",
    "帮我",
    "麻烦",
    "请",
    "给我",
    "想要",
    "我要",
    "希望",
    "?",
    "？",
];

/// The clauses of a message: split at sentence and clause punctuation, and at spaces between
/// words, keeping each clause's closing mark (a `？` says it asks). Empty pieces are dropped.
pub(super) fn clauses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        let ends = matches!(
            c,
            '，' | ','
                | '。'
                | '.'
                | '！'
                | '!'
                | '？'
                | '?'
                | '；'
                | ';'
                | '～'
                | '~'
                | '\n'
                | '\r'
                | '\t'
                | ' '
                | '　'
                | '、'
        );
        if ends {
            if matches!(c, '？' | '?') {
                current.push(c);
            }
            if current
                .trim()
                .chars()
                .any(|c| normalize::is_cjk(c) || c.is_alphanumeric())
            {
                out.push(std::mem::take(&mut current));
            } else {
                current.clear();
            }
        } else {
            current.push(c);
        }
    }
    if current
        .chars()
        .any(|c| normalize::is_cjk(c) || c.is_alphanumeric())
    {
        out.push(current);
    }
    out
}

fn asks(clause: &str) -> bool {
    static PHRASES: OnceLock<Phrases> = OnceLock::new();
    let asking = normalize::phrases_of(&PHRASES, ASKING.iter().copied());
    asking.any_in(clause) || asking.any_in(&normalize::normalize(clause))
}

impl Classifier {
    /// Classify one shopper message: the verdict is the whole message's; a message of
    /// several clauses also reports what another clause asks for, when it asks confidently.
    pub fn classify(&self, text: &str) -> Classification {
        let mut whole = self.classify_whole(text);
        let parts = clauses(text);
        if parts.len() < 2 || text.chars().count() < SPLIT_FROM_CHARS {
            return whole;
        }
        let parts = &parts[parts.len().saturating_sub(MAX_CLAUSES)..];
        whole.second_intent = parts
            .iter()
            .filter(|p| asks(p))
            .map(|p| self.classify_whole(p))
            .filter(|c| {
                c.intent != whole.intent
                    && c.intent != taxonomy::UNKNOWN
                    && c.confidence >= self.thresholds().answer_at
            })
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
            .map(|c| c.intent);
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::clauses;

    #[test]
    fn clauses_split_at_punctuation_and_spaces_and_keep_question_marks() {
        assert_eq!(
            clauses("我昨天买的卫衣，快递到哪了？"),
            vec!["我昨天买的卫衣", "快递到哪了？"]
        );
        assert_eq!(clauses("在吗 我要退货!!"), vec!["在吗", "我要退货"]);
        assert_eq!(clauses("，，。"), Vec::<String>::new());
        assert_eq!(clauses("没有标点的一句话"), vec!["没有标点的一句话"]);
    }
}
