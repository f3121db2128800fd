//! The outgoing-content compliance lexicon (12 categories a WeChat shop is audited for).
//! Used by `kefu replies check` on canned answers and, later, on agent-written replies.

use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct RawLexicon {
    category: Vec<Category>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub terms: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
}

/// A flagged term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub category: String,
    pub category_name: String,
    pub term: String,
}

#[derive(Debug, Clone)]
pub struct Lexicon {
    categories: Vec<Category>,
}

/// Full-width ASCII to half-width and lower case, so `ＶＸ` and `Vx` match `vx`.
pub fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

impl Lexicon {
    /// The lexicon shipped with kefu.
    pub fn builtin() -> &'static Lexicon {
        static LEX: OnceLock<Lexicon> = OnceLock::new();
        LEX.get_or_init(|| {
            let raw: RawLexicon =
                toml::from_str(include_str!("lexicon.toml")).expect("built-in lexicon parses");
            Lexicon {
                categories: raw
                    .category
                    .into_iter()
                    .map(|mut c| {
                        c.terms = c.terms.iter().map(|t| fold(t)).collect();
                        c.allow = c.allow.iter().map(|t| fold(t)).collect();
                        c
                    })
                    .collect(),
            }
        })
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// Every term of every category found in `text`.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let folded = fold(text);
        let mut out = Vec::new();
        for c in &self.categories {
            let mut masked = folded.clone();
            for a in &c.allow {
                masked = masked.replace(a.as_str(), &" ".repeat(a.len()));
            }
            for t in &c.terms {
                if masked.contains(t.as_str()) {
                    out.push(Finding {
                        category: c.id.clone(),
                        category_name: c.name.clone(),
                        term: t.clone(),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_twelve_categories() {
        assert_eq!(Lexicon::builtin().categories().len(), 12);
    }

    #[test]
    fn flags_each_kind_and_respects_allow_phrases() {
        let lex = Lexicon::builtin();
        let cats =
            |t: &str| -> Vec<String> { lex.scan(t).into_iter().map(|f| f.category).collect() };
        let terms: Vec<String> = lex
            .scan("全网最低价，销量第一")
            .into_iter()
            .map(|f| f.term)
            .collect();
        assert_eq!(terms, ["最低价", "全网最", "销量第一"]);
        assert!(cats("这款面霜可以祛斑").contains(&"medical_claims".to_string()));
        assert!(cats("亲可以加ＶＸ私聊").contains(&"offplatform_contact".to_string()));
        assert!(cats("直接转账给我就行").contains(&"offplatform_payment".to_string()));
        assert!(cats("给五星好评返现5元").contains(&"review_inducement".to_string()));
        assert!(cats("请把验证码发给我").contains(&"privacy_request".to_string()));
        assert!(
            cats("最快明天发货，最晚48小时").is_empty(),
            "shipping times are fine"
        );
        assert!(cats("滚筒洗衣机，usb 充电").is_empty());
    }
}
