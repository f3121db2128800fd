//! An agent's free reply against the compliance lexicon before it goes out: a term of a
//! blocking category stops it, a term of a warning category (`[console] compliance_warn`)
//! asks the agent to confirm.

use serde::Serialize;

use crate::library::lexicon::{Finding, Lexicon};

/// One flagged term, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub category: String,
    pub category_name: String,
    pub term: String,
}

impl From<Finding> for Flag {
    fn from(f: Finding) -> Self {
        Flag {
            category: f.category,
            category_name: f.category_name,
            term: f.term,
        }
    }
}

/// What the check says of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// Only warning categories: sent once the agent confirms.
    Warn(Vec<Flag>),
    /// At least one blocking category: never sent. The blocking flags first.
    Block(Vec<Flag>),
}

/// Check `text`; `warn_only` lists the categories that warn instead of blocking.
pub fn check(text: &str, warn_only: &[String]) -> Verdict {
    let findings = Lexicon::builtin().scan(text);
    if findings.is_empty() {
        return Verdict::Clean;
    }
    let (warn, block): (Vec<Flag>, Vec<Flag>) = findings
        .into_iter()
        .map(Flag::from)
        .partition(|f| warn_only.contains(&f.category));
    if block.is_empty() {
        Verdict::Warn(warn)
    } else {
        Verdict::Block(block.into_iter().chain(warn).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_by_default_and_warns_when_configured() {
        assert_eq!(check("好的，马上为您处理退款", &[]), Verdict::Clean);
        let Verdict::Block(flags) = check("加我微信私下转账更便宜", &[]) else {
            panic!("an off-platform payment must be blocked");
        };
        assert!(
            flags.iter().any(|f| f.category == "offplatform_payment"),
            "{flags:?}"
        );
        let warn_only: Vec<String> = flags.iter().map(|f| f.category.clone()).collect();
        assert!(matches!(
            check("加我微信私下转账更便宜", &warn_only),
            Verdict::Warn(_)
        ));
    }
}
