//! Deterministic triggers: phrases that name what the shopper wants so plainly that no
//! score should overrule them. Matched on normalised text.

use std::sync::OnceLock;

use super::normalize::{phrases_of, Phrases};

/// (intent, phrases). Order matters: the first intent with a match wins.
const RULES: &[(&str, &[&str])] = &[
    (
        "complaint",
        &[
            "投诉",
            "12315",
            "消协",
            "消费者协会",
            "工商局",
            "市场监管",
            "举报你们",
            "曝光你们",
            "找你们领导",
            "找你们老板",
            "叫你们经理",
        ],
    ),
    (
        "human_agent",
        &[
            "转人工",
            "人工客服",
            "人工服务",
            "找人工",
            "要人工",
            "接人工",
            "真人客服",
            "人工在吗",
            "人工呢",
            "是机器人吗",
            "别用机器人",
            "找真人",
            "活人",
        ],
    ),
];

/// Asking *when* people are available is a service-hours question, not a handoff request.
const HOURS_WORDS: &[&str] = &[
    "几点",
    "什么时间",
    "什么时候",
    "上班",
    "下班",
    "在线时间",
    "工作时间",
];

/// The intent a trigger phrase decides, if any.
pub fn trigger(normalized: &str) -> Option<&'static str> {
    static PHRASES: OnceLock<Vec<Phrases>> = OnceLock::new();
    static HOURS: OnceLock<Phrases> = OnceLock::new();
    let phrases = PHRASES.get_or_init(|| {
        RULES
            .iter()
            .map(|(_, phrases)| Phrases::new(phrases.iter().copied()))
            .collect()
    });
    let compact: String = normalized.chars().filter(|c| *c != ' ').collect();
    let hours = || phrases_of(&HOURS, HOURS_WORDS.iter().copied()).any_in(&compact);
    RULES
        .iter()
        .zip(phrases)
        .find(|((intent, _), phrases)| {
            phrases.any_in(&compact) && (*intent != "human_agent" || !hours())
        })
        .map(|((intent, _), _)| *intent)
}

#[cfg(test)]
mod tests {
    use super::trigger;

    #[test]
    fn explicit_triggers() {
        assert_eq!(trigger("转 人工"), Some("human_agent"));
        assert_eq!(trigger("我要打12315投诉你们"), Some("complaint"));
        assert_eq!(trigger("快递到哪了"), None);
        assert_eq!(
            trigger("人工客服几点上班"),
            None,
            "a service-hours question"
        );
    }
}
