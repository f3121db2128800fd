//! The intent taxonomy: 36 intents in 6 skill groups, plus `unknown`. Kept in
//! `taxonomy/intents.tsv` (id, group, Chinese name, handoff). Both the reply library (which
//! checks every reply names a known intent) and the classifier (handoff intents, `unknown`)
//! read it; it depends on neither.

use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentInfo {
    pub id: &'static str,
    /// Agent skill group used for routing.
    pub group: &'static str,
    pub name_zh: &'static str,
    /// Always goes to a person (after an acknowledgement), however confident.
    pub handoff: bool,
}

pub const UNKNOWN: &str = "unknown";

const TSV: &str = include_str!("taxonomy/intents.tsv");

pub fn all() -> &'static [IntentInfo] {
    static ALL: OnceLock<Vec<IntentInfo>> = OnceLock::new();
    ALL.get_or_init(|| {
        TSV.lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some(IntentInfo {
                    id: f.next()?,
                    group: f.next()?,
                    name_zh: f.next()?,
                    handoff: f.next()? == "yes",
                })
            })
            .collect()
    })
}

pub fn get(id: &str) -> Option<&'static IntentInfo> {
    all().iter().find(|i| i.id == id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn taxonomy_has_36_intents_in_6_groups() {
        let all = super::all();
        assert_eq!(all.len(), 36);
        let mut groups: Vec<_> = all.iter().map(|i| i.group).collect();
        groups.sort();
        groups.dedup();
        assert_eq!(groups.len(), 6);
        assert!(super::get("human_agent").unwrap().handoff);
        assert!(!super::get("tracking").unwrap().handoff);
    }
}
