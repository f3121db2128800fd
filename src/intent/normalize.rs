//! Text normalisation before tokenising, applied alike to library questions and to shopper
//! messages: full-width to half-width, lower case, common traditional characters to
//! simplified, emoji and punctuation to spaces, and order, tracking and phone numbers masked
//! (as the words 单号 / 手机号, which is also what a shopper means by them).

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

use crate::library::lexicon::fold;

/// A list of phrases searched in one pass: which of them, in list order, a text contains.
/// What the phrase tables here (and [`super::rules`], [`super::clauses`]) need, at the cost of
/// one scan of the text instead of one search per phrase.
pub(super) struct Phrases(AhoCorasick);

impl Phrases {
    pub(super) fn new<'a>(phrases: impl IntoIterator<Item = &'a str>) -> Phrases {
        Phrases(AhoCorasick::new(phrases).expect("phrase tables are small and valid"))
    }

    /// Whether `text` contains any of the phrases.
    pub(super) fn any_in(&self, text: &str) -> bool {
        self.0.is_match(text)
    }

    /// The index of the first phrase in list order, at or after `from`, that `text` contains.
    pub(super) fn first_in(&self, text: &str, from: usize) -> Option<usize> {
        self.0
            .find_overlapping_iter(text)
            .map(|m| m.pattern().as_usize())
            .filter(|i| *i >= from)
            .min()
    }
}

/// Replace every occurrence of each pair's first string by its second, pair after pair in
/// order (a replacement can make a later pair match). Pairs the text does not contain are
/// skipped without a search of their own.
/// `pair(i)` is phrase `i` and what it becomes.
fn replace_in_order<'a>(
    mut text: String,
    phrases: &Phrases,
    pair: impl Fn(usize) -> (&'a str, &'a str),
) -> String {
    let mut from = 0;
    while let Some(i) = phrases.first_in(&text, from) {
        let (find, put) = pair(i);
        text = text.replace(find, put);
        from = i + 1;
    }
    text
}

/// The phrases of a table, built once.
pub(super) fn phrases_of<'a>(
    cell: &'static OnceLock<Phrases>,
    table: impl IntoIterator<Item = &'a str>,
) -> &'static Phrases {
    cell.get_or_init(|| Phrases::new(table))
}

/// Traditional -> simplified for the characters shoppers actually type in shop questions.
const T2S: &str = "貨货們们請请問问嗎吗運运費费換换單单訂订發发號号碼码價价優优麼么個个還还這这裡里裏里沒没點点時时間间會会員员積积錢钱買买賣卖東东說说話话謝谢幫帮給给從从開开關关為为對对應应該该無无後后實实質质壞坏錯错預预購购團团與与戶户綁绑機机帳账賬账稅税專专聯联繫系係系線线塊块種种類类顏颜長长寬宽褲裤紅红藍蓝綠绿黃黄過过進进達达遞递郵邮區区裝装損损補补贈赠禮礼試试評评論论語语讓让護护膚肤藥药療疗電电腦脑氣气樣样麵面臺台處处經经據据認认識识證证驗验帶带兩两張张歡欢週周內内誤误額额頁页鏈链結结續续約约動动態态狀状況况尋寻態态辦办麼么嗨嗨紀纪録录錄录覺觉讀读寫写參参與与館馆劃划擇择則则邊边隻只雙双條条衝冲廠厂庫库؟?";

fn t2s(c: char) -> char {
    static MAP: OnceLock<rustc_hash::FxHashMap<char, char>> = OnceLock::new();
    if c.is_ascii() {
        return c;
    }
    let map = MAP.get_or_init(|| {
        let chars: Vec<char> = T2S.chars().collect();
        chars
            .chunks(2)
            .filter(|p| p.len() == 2)
            .map(|p| (p[0], p[1]))
            .collect()
    });
    *map.get(&c).unwrap_or(&c)
}

pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

/// Colloquial spellings, common typos and regional words mapped to the words the library
/// uses, applied after script and width folding. Longest first where they overlap.
const SYNONYMS: &[(&str, &str)] = &[
    ("咋整", "怎么办"),
    ("咋办", "怎么办"),
    ("咋弄", "怎么弄"),
    ("咋回事", "怎么回事"),
    ("咋", "怎么"),
    ("怎样", "怎么"),
    ("如何", "怎么"),
    ("啥时候", "什么时候"),
    ("几时", "什么时候"),
    ("多会儿", "什么时候"),
    ("啥", "什么"),
    ("神马", "什么"),
    ("俺", "我"),
    ("偶", "我"),
    ("木有", "没有"),
    ("没得", "没有"),
    ("在麻", "在吗"),
    ("在嘛", "在吗"),
    ("在么", "在吗"),
    ("优惠卷", "优惠券"),
    ("的卷", "的券"),
    ("张卷", "张券"),
    ("卷为", "券为"),
    ("卷用", "券用"),
    ("卷呢", "券呢"),
    ("领卷", "领券"),
    ("订金", "定金"),
    ("付钱", "付款"),
    ("给钱", "付款"),
    ("交钱", "付款"),
    ("撤销订单", "取消订单"),
    ("撤单", "取消订单"),
    ("撤掉", "取消"),
    ("撤销", "取消"),
    ("退订", "取消"),
    ("报修", "维修"),
    ("返修", "维修"),
    ("修理", "维修"),
    ("助力", "帮砍"),
    ("返利", "返现"),
    ("提成", "佣金"),
    ("包月", "自动续费"),
    ("免密扣款", "自动扣费"),
    ("免密支付", "自动扣费"),
    ("代扣", "自动扣费"),
    ("丰巢", "快递柜"),
    ("菜鸟驿站", "驿站"),
    ("快递小哥", "快递员"),
    ("派件员", "快递员"),
    ("码子", "尺码"),
];

/// Product nouns of a general shop (apparel, beauty, fresh food, small electronics, home).
/// They name *what* a question is about, not *which* question it is, so they become the one
/// word 商品 — like order numbers become 单号 — and an unfamiliar product does not make a
/// familiar question look off-topic. Longest first where they overlap.
const PRODUCTS: &[&str] = &[
    "连衣裙",
    "半身裙",
    "羽绒服",
    "牛仔裤",
    "运动鞋",
    "高跟鞋",
    "打底衫",
    "毛衣",
    "卫衣",
    "衬衫",
    "外套",
    "大衣",
    "风衣",
    "t恤",
    "短袖",
    "长袖",
    "裤子",
    "裙子",
    "鞋子",
    "靴子",
    "拖鞋",
    "袜子",
    "内衣",
    "睡衣",
    "帽子",
    "围巾",
    "手套",
    "包包",
    "背包",
    "钱包",
    "面霜",
    "乳液",
    "精华液",
    "精华",
    "面膜",
    "口红",
    "粉底液",
    "防晒霜",
    "洗面奶",
    "护手霜",
    "香水",
    "洗发水",
    "沐浴露",
    "眼霜",
    "电饭煲",
    "吹风机",
    "充电宝",
    "充电器",
    "数据线",
    "耳机",
    "音箱",
    "台灯",
    "加湿器",
    "空气炸锅",
    "扫地机",
    "电动牙刷",
    "手机壳",
    "杯子",
    "水杯",
    "保温杯",
    "碗",
    "盘子",
    "锅",
    "枕头",
    "被子",
    "床单",
    "四件套",
    "毛巾",
    "猫砂",
    "狗粮",
    "猫粮",
    "零食",
    "坚果",
    "牛肉干",
    "水果",
    "车厘子",
    "草莓",
    "橙子",
    "苹果",
    "芒果",
    "榴莲",
    "大闸蟹",
    "海鲜",
    "牛奶",
    "茶叶",
    "咖啡",
];

/// Cantonese words shoppers from Hong Kong and Guangdong write, as the Mandarin the library
/// uses; applied after traditional characters became simplified. Longest first.
const CANTONESE: &[(&str, &str)] = &[
    ("系咪", "是不是"),
    ("系唔系", "是不是"),
    ("有冇", "有没有"),
    ("唔该", "麻烦"),
    ("乜嘢", "什么"),
    ("咩嘢", "什么"),
    ("点解", "为什么"),
    ("点样", "怎么"),
    ("点算", "怎么办"),
    ("边度", "哪里"),
    ("边个", "哪个"),
    ("而家", "现在"),
    ("几耐", "多久"),
    ("收唔到", "没收到"),
    ("唔见", "丢了"),
    ("冇", "没有"),
    ("咩", "什么"),
    ("嘅", "的"),
    ("咗", "了"),
    ("喺", "在"),
    ("揾", "找"),
    ("啲", "些"),
    ("俾", "给"),
    ("佢", "他"),
    ("唔", "不"),
];

/// WeChat's emoticon codes (`[捂脸]`, `[OK]`) are what the app shows as a small picture, not
/// words: they are kept out of matching. These ones (and the emoji below) say the shopper is
/// angry, which [`angry`] reports.
const ANGRY_CODES: &[&str] = &[
    "[发怒]", "[怒]", "[抓狂]", "[咒骂]", "[鄙视]", "[白眼]", "[敲打]", "[炸弹]",
];
const ANGRY_EMOJI: &[char] = &['😡', '😠', '🤬', '💢', '👿', '😤', '🖕'];

/// Whether the message shows anger in an emoticon code or an emoji.
pub fn angry(text: &str) -> bool {
    static CODES: OnceLock<Phrases> = OnceLock::new();
    text.chars().any(|c| ANGRY_EMOJI.contains(&c))
        || phrases_of(&CODES, ANGRY_CODES.iter().copied()).any_in(text)
}

/// Remove WeChat emoticon codes: a `[`, one to six letters or CJK characters, a `]`.
fn strip_emoticon_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let code_len = after
            .char_indices()
            .take(7)
            .find(|(_, c)| *c == ']')
            .map(|(i, _)| i)
            .filter(|i| *i > 0)
            .filter(|i| after[..*i].chars().all(|c| is_cjk(c) || c.is_alphabetic()));
        match code_len {
            Some(len) => {
                out.push(' ');
                rest = &after[len + 1..];
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Traditional characters (and Taiwan's usual words) as simplified, with a table of the
/// characters shoppers type most as a backstop.
fn simplify(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    // OpenCC's Taiwan tables read a bare 么 as 幺 (yāo); shoppers mean the 么 of 什么 and
    // 怎么, which is what 麼 becomes.
    let text = text.replace('么', "麼");
    hanconv::tw2sp(&text).chars().map(t2s).collect()
}

/// Normalise a message. The output contains CJK characters, ASCII letters and digits,
/// and single spaces.
pub fn normalize(text: &str) -> String {
    let folded = simplify(&strip_emoticon_codes(&fold(text)));
    let mut cleaned = String::with_capacity(folded.len());
    for c in folded.chars() {
        let c = t2s(c);
        if is_cjk(c) || c.is_ascii_alphanumeric() {
            cleaned.push(c);
        } else if !cleaned.ends_with(' ') {
            // Punctuation, emoji, symbols, whitespace: a word boundary.
            cleaned.push(' ');
        }
    }
    static CANTONESE_PHRASES: OnceLock<Phrases> = OnceLock::new();
    static SYNONYM_PHRASES: OnceLock<Phrases> = OnceLock::new();
    static PRODUCT_PHRASES: OnceLock<Phrases> = OnceLock::new();
    let text = mask_numbers(cleaned.trim());
    let cantonese = phrases_of(&CANTONESE_PHRASES, CANTONESE.iter().map(|p| p.0));
    let text = replace_in_order(text, cantonese, |i| CANTONESE[i]);
    let synonyms = phrases_of(&SYNONYM_PHRASES, SYNONYMS.iter().map(|p| p.0));
    let text = replace_in_order(text, synonyms, |i| SYNONYMS[i]);
    let products = phrases_of(&PRODUCT_PHRASES, PRODUCTS.iter().copied());
    replace_in_order(text, products, |i| (PRODUCTS[i], "商品"))
}

/// Politeness and filler that carry no intent when anything else is said ("亲，在吗，我的
/// 快递到哪了" is about the parcel). Removed before scoring unless nothing else is left.
const FILLER: &[&str] = &[
    "亲亲",
    "亲爱的",
    "你好",
    "您好",
    "在吗",
    "在不在",
    "请问一下",
    "请问",
    "麻烦你",
    "麻烦",
    "谢谢",
    "哈喽",
    "客服",
    "老板",
    "宝子",
    "打扰一下",
    "问一下",
    "问下",
    "想问问",
    "想问",
    "我想问",
    "亲",
];

/// What [`mask_numbers`] puts for an order or tracking number and for a mobile number: the
/// shopper gives one with any request, so for scoring it is dropped, with its label.
const SLOTS: &[&str] = &["单号", "手机号"];
const SLOT_LABELS: &[&str] = &[
    "订单编号",
    "订单号",
    "单号",
    "订单",
    "手机号码",
    "手机号",
    "电话",
    "手机",
    "号码",
];

/// Drop filler and number slots from normalised text if at least two CJK characters (or one
/// ASCII word) remain.
pub fn strip_filler(normalized: &str) -> String {
    static FILLER_PHRASES: OnceLock<Phrases> = OnceLock::new();
    let filler = phrases_of(&FILLER_PHRASES, FILLER.iter().copied());
    let out = replace_in_order(normalized.to_string(), filler, |i| (FILLER[i], " "));
    // Sentence-final particles (呀, 啊, 呢 …) at the end of a phrase carry tone, not meaning.
    const PARTICLES: &[char] = &[
        '呀', '啊', '呢', '吧', '哦', '哈', '嘛', '啦', '呗', '滴', '噢',
    ];
    let words: Vec<&str> = out.split_whitespace().collect();
    let out = words
        .iter()
        .enumerate()
        .filter(|(_, w)| !SLOTS.contains(w))
        .map(|(i, w)| {
            // The label in front of a slot ("订单号 单号") says no more than the slot does.
            if words.get(i + 1).is_some_and(|next| SLOTS.contains(next)) {
                SLOT_LABELS
                    .iter()
                    .find_map(|l| w.strip_suffix(l))
                    .unwrap_or(w)
            } else {
                w
            }
        })
        .map(|w| w.trim_end_matches(PARTICLES))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let substance = out.chars().filter(|c| is_cjk(*c)).count() >= 2
        || out.split(' ').any(|w| w.len() >= 2 && w.is_ascii());
    if substance {
        out
    } else {
        normalized.to_string()
    }
}

/// Replace runs that look like order / tracking numbers or mobile numbers with what they
/// are, and body measurements with their slot: a weight (`55kg`, `100斤`, `50公斤`) becomes
/// 体重 and a height (`165cm`, `165厘米`, or a bare 140–199 beside a weight) becomes 身高,
/// which is how a size question reads whatever the numbers.
fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let has_weight = has_weight(&chars);
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            let digits = run.bytes().filter(u8::is_ascii_digit).count();
            let all_digits = digits == run.len();
            let number: Option<u32> = run
                .strip_suffix("kg")
                .or_else(|| run.strip_suffix("cm"))
                .unwrap_or(&run)
                .parse()
                .ok();
            // A unit may follow after one space ("110 斤").
            let gap = usize::from(chars.get(i) == Some(&' '));
            let unit_after = |unit: &str| {
                chars[i + gap..]
                    .iter()
                    .take(unit.chars().count())
                    .copied()
                    .eq(unit.chars())
            };
            let word = if run.len() == 11 && digits == 11 && run.starts_with('1') {
                " 手机号 ".to_string()
            } else if digits >= 6 && run.len() >= 8 {
                " 单号 ".to_string()
            } else if number.is_some() && run.ends_with("kg") {
                " 体重 ".to_string()
            } else if number.is_some() && run.ends_with("cm") {
                " 身高 ".to_string()
            } else if all_digits && (unit_after("公斤") || unit_after("斤")) {
                i += gap + if unit_after("公斤") { 2 } else { 1 };
                " 体重 ".to_string()
            } else if all_digits && unit_after("厘米") {
                i += gap + 2;
                " 身高 ".to_string()
            } else if all_digits && has_weight && number.is_some_and(|n| (140..200).contains(&n)) {
                " 身高 ".to_string()
            } else {
                format!(" {run} ")
            };
            out.push_str(&word);
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the text gives a weight: digits followed by kg, 斤 or 公斤.
fn has_weight(chars: &[char]) -> bool {
    chars.iter().enumerate().any(|(i, c)| {
        let at = if chars.get(i + 1) == Some(&' ') {
            i + 2
        } else {
            i + 1
        };
        c.is_ascii_digit()
            && match chars.get(at) {
                Some('斤') | Some('公') => true,
                Some('k') => chars.get(at + 1) == Some(&'g'),
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalises_width_case_script_emoji_and_numbers() {
        assert_eq!(normalize("ＸＬ碼還有嗎？？？😭😭"), "xl 码还有吗");
        assert_eq!(
            normalize("Y20241001234 这个单处理了吗"),
            "单号 这个单处理了吗"
        );
        assert_eq!(normalize("SF1234567890123到哪了!!!"), "单号 到哪了");
        assert_eq!(normalize("换绑13812345678"), "换绑 手机号");
        assert_eq!(normalize("158 100斤选S还是M"), "身高 体重 选 s 还是 m");
        assert_eq!(normalize("身高165 55kg穿多大"), "身高 身高 体重 穿多大");
        assert_eq!(normalize("165cm 110 斤"), "身高 体重");
        assert_eq!(normalize("买了3件 一共299"), "买了 3 件 一共 299");
        assert_eq!(normalize("   "), "");
        assert_eq!(normalize("优惠卷咋用"), "优惠券怎么用");
    }

    #[test]
    fn traditional_cantonese_and_emoticon_codes() {
        assert_eq!(
            normalize("親，請問我的包裹什麼時候到？"),
            "亲 请问我的包裹什么时候到"
        );
        assert_eq!(normalize("軟體"), "软件");
        assert_eq!(
            normalize("我嘅貨幾時到？係咪寄咗"),
            "我的货什么时候到 是不是寄了"
        );
        assert_eq!(normalize("[捂脸][捂脸]尺码不对"), "尺码不对");
        assert_eq!(normalize("[OK]好的"), "好的");
        // Brackets around anything else are only punctuation.
        assert_eq!(normalize("[订单12345678]"), "订单 单号");
        assert!(super::angry("又发错了[发怒]"));
        assert!(super::angry("气死了😡"));
        assert!(!super::angry("[捂脸]发错了"));
    }

    #[test]
    fn filler_goes_only_when_something_else_is_said() {
        use super::strip_filler;
        assert_eq!(strip_filler("亲 在吗 我的快递到哪了"), "我的快递到哪了");
        assert_eq!(strip_filler("在吗"), "在吗");
        // a number slot and its label carry no intent; a label that says more stays
        assert_eq!(
            strip_filler(&normalize("订单号 6612340987 什么时候能发呀")),
            "什么时候能发"
        );
        assert_eq!(
            strip_filler(&normalize("帮我查下快递单号SF1234567890")),
            "帮我查下快递"
        );
        assert_eq!(strip_filler(&normalize("13812345678")), "手机号");
        assert_eq!(normalize("怎么还没到，什麼時候"), "怎么还没到 什么时候");
        assert_eq!(strip_filler("你好"), "你好");
    }
}
