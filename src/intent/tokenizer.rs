//! Chinese-aware tokens for the tantivy index: CJK text becomes its single characters plus
//! overlapping character bigrams (so 退款 matches 退款 and 款 still counts for 款项), ASCII
//! words and numbers stay whole. No dictionary is needed, typos cost one bigram not a word,
//! and measured on the dev set it beat word segmentation (see BENCHMARKS.md).

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

use super::normalize::is_cjk;

/// Tokens of already-normalised text.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    each_token(text, |t| out.push(t.to_owned()));
    out
}

/// The same tokens as [`tokens`], in the same order, as slices of `text`: a CJK character and
/// the pair it starts, and a run of other characters, are each contiguous in the text. The
/// classifier reads a message's tokens this way, allocating nothing per token.
pub fn each_token<'a>(text: &'a str, mut emit: impl FnMut(&'a str)) {
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        // Byte ranges: the current run of CJK characters' start, and of other characters'.
        let mut cjk_prev: Option<usize> = None;
        let mut other_from: Option<usize> = None;
        for (at, c) in word.char_indices() {
            if is_cjk(c) {
                if let Some(from) = other_from.take() {
                    emit(&word[from..at]);
                }
                if let Some(prev) = cjk_prev {
                    // The character before this one: its pair with this one follows it.
                    emit(&word[prev..at + c.len_utf8()]);
                }
                emit(&word[at..at + c.len_utf8()]);
                cjk_prev = Some(at);
            } else {
                cjk_prev = None;
                other_from.get_or_insert(at);
            }
        }
        if let Some(from) = other_from {
            emit(&word[from..]);
        }
    }
}

/// A tokenizer over normalised text.
pub type TokenizeFn = fn(&str) -> Vec<String>;

/// The tantivy tokenizer registered as `kefu_zh`. Text given to the index is normalised first.
#[derive(Clone)]
pub struct ZhTokenizer {
    buf: Vec<Token>,
    tokenize: TokenizeFn,
}

impl Default for ZhTokenizer {
    fn default() -> Self {
        Self::new(tokens)
    }
}

impl ZhTokenizer {
    pub fn new(tokenize: TokenizeFn) -> Self {
        ZhTokenizer {
            buf: Vec::new(),
            tokenize,
        }
    }
}

pub struct ZhTokenStream<'a> {
    tokens: &'a mut Vec<Token>,
    index: usize,
}

impl Tokenizer for ZhTokenizer {
    type TokenStream<'a> = ZhTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ZhTokenStream<'a> {
        self.buf.clear();
        for (position, t) in (self.tokenize)(text).into_iter().enumerate() {
            self.buf.push(Token {
                offset_from: 0,
                offset_to: 0,
                position,
                text: t,
                position_length: 1,
            });
        }
        ZhTokenStream {
            tokens: &mut self.buf,
            index: 0,
        }
    }
}

impl TokenStream for ZhTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.index < self.tokens.len() {
            self.index += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.index - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.index - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn unigrams_bigrams_and_ascii_words() {
        assert_eq!(tokens("退款 xl码"), ["退", "退款", "款", "xl", "码"]);
        assert_eq!(tokens("到哪了"), ["到", "到哪", "哪", "哪了", "了"]);
        assert!(tokens("").is_empty());
        assert_eq!(
            tokens("s码ok吗 12a号码 ，"),
            ["s", "码", "ok", "吗", "12a", "号", "号码", "码", "，"]
        );
    }
}
