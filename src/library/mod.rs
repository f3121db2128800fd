//! The canned-reply library (`replies/`): TOML files people edit and review like code, one
//! per intent group, plus `shop.toml`, the shop profile whose facts fill answer templates.
//!
//! [`load`] reads and validates the whole folder. Every problem is a [`Diagnostic`] with file
//! and line; the server refuses to start (or to reload) with errors, and `kefu replies check`
//! prints them.

pub mod lexicon;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::taxonomy;
use lexicon::Lexicon;

/// Variables filled from the customer record rather than the shop profile.
pub const CUSTOMER_VARIABLES: &[&str] = &["nickname", "tier_name"];

/// The tiers an answer may have a variant for.
pub const TIERS: &[&str] = &["vip", "svip", "new"];

pub const SHOP_FILE: &str = "shop.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("cannot read the reply library at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the reply library has {} problem(s):\n{}", .0.len(), .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// One canned reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub id: String,
    pub intent: String,
    pub title: String,
    /// Template with `{{variables}}`.
    pub answer: String,
    pub questions: Vec<String>,
    pub keywords: Vec<String>,
    /// Tier -> answer template for that tier (e.g. a VIP wording).
    pub variants: BTreeMap<String, String>,
    /// Reply ids offered as a follow-up menu.
    pub menu: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Library {
    replies: Vec<Reply>,
    out_of_scope: Vec<String>,
    by_id: HashMap<String, usize>,
    shop: BTreeMap<String, String>,
}

impl Library {
    /// Fold `fold` of `folds` for cross-validation: this library without every `folds`-th
    /// sample question and out-of-scope sample (counted across the whole library, so each
    /// reply loses about one in `folds`), and what was left out as (text, intent) pairs.
    pub fn split_fold(&self, fold: usize, folds: usize) -> (Library, Vec<(String, String)>) {
        let mut train = self.clone();
        let mut held = Vec::new();
        let mut n = 0usize;
        // Keep what is not in this fold; what is goes to `held` under `intent`.
        let mut split = |questions: &mut Vec<String>, intent: &str| {
            questions.retain(|q| {
                let out = n % folds == fold;
                n += 1;
                if out {
                    held.push((q.clone(), intent.to_string()));
                }
                !out
            });
        };
        for reply in &mut train.replies {
            split(&mut reply.questions, &reply.intent);
        }
        split(&mut train.out_of_scope, crate::taxonomy::UNKNOWN);
        (train, held)
    }

    pub fn replies(&self) -> &[Reply] {
        &self.replies
    }

    /// Sample messages that no reply should answer.
    pub fn out_of_scope(&self) -> &[String] {
        &self.out_of_scope
    }

    pub fn get(&self, id: &str) -> Option<&Reply> {
        self.by_id.get(id).map(|i| &self.replies[*i])
    }

    pub fn shop(&self) -> &BTreeMap<String, String> {
        &self.shop
    }

    /// Render a reply's answer for a customer: the tier's variant if there is one, with shop
    /// facts and the customer's nickname filled in.
    pub fn render(&self, reply: &Reply, tier: Option<&str>, nickname: Option<&str>) -> String {
        let template = tier
            .and_then(|t| reply.variants.get(t))
            .unwrap_or(&reply.answer);
        template::render(template, |name| match name {
            "nickname" => Some(nickname.unwrap_or("亲").to_string()),
            "tier_name" => Some(
                match tier {
                    Some("vip") => "VIP会员",
                    Some("svip") => "SVIP会员",
                    _ => "会员",
                }
                .to_string(),
            ),
            other => self.shop.get(other).cloned(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    reply: Vec<RawReply>,
    out_of_scope: Option<RawOutOfScope>,
}

/// Messages that are not for the shop at all (general knowledge, other services, chit-chat
/// about the bot): the classifier answers `unknown` when a message is closer to one of these
/// than to any sample question.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutOfScope {
    questions: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReply {
    id: Spanned<String>,
    intent: Spanned<String>,
    title: Spanned<String>,
    answer: Spanned<String>,
    #[serde(default)]
    questions: Vec<Spanned<String>>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    variants: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    menu: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShop {
    shop: BTreeMap<String, toml::Value>,
}

fn line_of(text: &str, offset: usize) -> usize {
    LineIndex::new(text).line(offset)
}

/// Where a file's lines start, so that the line of each of its thousands of sample questions
/// is a binary search rather than a count from the top.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        LineIndex(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// The 1-based line of byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|nl| *nl < offset) + 1
    }
}

/// How out-of-scope samples are named in diagnostics.
const OUT_OF_SCOPE: &str = "out_of_scope";

/// Where each sample question (normalised) first appeared, and whose it is: an intent, or
/// [`OUT_OF_SCOPE`].
#[derive(Default)]
struct QuestionsSeen(HashMap<String, (String, PathBuf, usize)>);

impl QuestionsSeen {
    /// Record `norm` as `owner`'s. If it first appeared under another owner, that owner and
    /// where.
    fn claim(
        &mut self,
        norm: String,
        owner: &str,
        file: &Path,
        line: usize,
    ) -> Option<(String, PathBuf, usize)> {
        match self.0.get(&norm) {
            Some(first) if first.0 != owner => Some(first.clone()),
            Some(_) => None,
            None => {
                self.0
                    .insert(norm, (owner.to_string(), file.to_path_buf(), line));
                None
            }
        }
    }
}

/// Load and validate the library in `dir`. Returns the library when there are no errors.
pub fn load(dir: &Path) -> Result<Library, LibraryError> {
    let (lib, diags) = load_with_diagnostics(dir)?;
    if diags.is_empty() {
        Ok(lib)
    } else {
        Err(LibraryError::Invalid(diags))
    }
}

/// Load everything that parses and report every problem found.
pub fn load_with_diagnostics(dir: &Path) -> Result<(Library, Vec<Diagnostic>), LibraryError> {
    let io = |source| LibraryError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();

    let mut diags = Vec::new();
    let mut lib = Library::default();

    let shop_path = dir.join(SHOP_FILE);
    match std::fs::read_to_string(&shop_path) {
        Ok(text) => match toml::from_str::<RawShop>(&text) {
            Ok(raw) => {
                for (k, v) in raw.shop {
                    let s = match v {
                        toml::Value::String(s) => s,
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Float(f) => f.to_string(),
                        toml::Value::Boolean(b) => b.to_string(),
                        _ => {
                            diags.push(Diagnostic {
                                file: shop_path.clone(),
                                line: 1,
                                message: format!("shop fact `{k}` must be a string or a number"),
                            });
                            continue;
                        }
                    };
                    lib.shop.insert(k, s);
                }
            }
            Err(e) => diags.push(Diagnostic {
                file: shop_path.clone(),
                line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
                message: format!("shop profile does not parse: {}", e.message()),
            }),
        },
        Err(_) => diags.push(Diagnostic {
            file: shop_path.clone(),
            line: 1,
            message: "missing shop profile (a [shop] table of the facts answers refer to)".into(),
        }),
    }

    // question text (normalised) -> (intent, file, line) of its first appearance
    let mut questions_seen = QuestionsSeen::default();
    let mut pending_menus: Vec<(PathBuf, usize, String)> = Vec::new();
    let lexicon = Lexicon::builtin();

    for file in files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != SHOP_FILE))
    {
        let text = std::fs::read_to_string(file).map_err(|source| LibraryError::Io {
            path: file.clone(),
            source,
        })?;
        let lines = LineIndex::new(&text);
        let raw: RawFile = match toml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                diags.push(Diagnostic {
                    file: file.clone(),
                    line: e.span().map(|s| lines.line(s.start)).unwrap_or(1),
                    message: format!("does not parse: {}", e.message()),
                });
                continue;
            }
        };
        for q in raw.out_of_scope.iter().flat_map(|o| &o.questions) {
            let norm = crate::intent::normalize::normalize(q.get_ref());
            let line = lines.line(q.span().start);
            if norm.trim().is_empty() {
                diags.push(Diagnostic {
                    file: file.clone(),
                    line,
                    message: "empty out-of-scope question".into(),
                });
                continue;
            }
            if let Some((other, f, l)) = questions_seen.claim(norm, OUT_OF_SCOPE, file, line) {
                diags.push(Diagnostic {
                    file: file.clone(),
                    line,
                    message: format!(
                        "question {:?} is out of scope here and under `{other}` at {}:{l}",
                        q.get_ref(),
                        f.display()
                    ),
                });
            }
            lib.out_of_scope.push(q.get_ref().trim().to_string());
        }
        for r in raw.reply {
            let line = lines.line(r.id.span().start);
            let mut diag = |span_start: usize, message: String| {
                diags.push(Diagnostic {
                    file: file.clone(),
                    line: lines.line(span_start),
                    message,
                })
            };
            let id = r.id.get_ref().trim().to_string();
            if id.is_empty() {
                diag(r.id.span().start, "empty id".into());
                continue;
            }
            if let Some(prev) = lib.by_id.get(&id).map(|i| &lib.replies[*i]) {
                diag(
                    r.id.span().start,
                    format!(
                        "duplicate id `{id}` (first at {}:{})",
                        prev.file.display(),
                        prev.line
                    ),
                );
                continue;
            }
            let intent = r.intent.get_ref().trim().to_string();
            if taxonomy::get(&intent).is_none() {
                diag(
                    r.intent.span().start,
                    format!("unknown intent `{intent}` in `{id}`"),
                );
            }
            if r.answer.get_ref().trim().is_empty() {
                diag(r.answer.span().start, format!("empty answer in `{id}`"));
            }
            if r.questions.is_empty() {
                diag(r.id.span().start, format!("`{id}` has no sample questions"));
            }
            let templates = std::iter::once(&r.answer).chain(r.variants.values());
            for t in templates {
                for (_, name) in template::variables(t.get_ref()) {
                    if !CUSTOMER_VARIABLES.contains(&name) && !lib.shop.contains_key(name) {
                        diag(
                            t.span().start,
                            format!("undefined template variable `{{{{{name}}}}}` in `{id}` (not in {SHOP_FILE} nor a customer field)"),
                        );
                    }
                }
            }
            for (tier, t) in &r.variants {
                if t.get_ref().trim().is_empty() {
                    diag(
                        t.span().start,
                        format!("empty {tier} answer variant in `{id}`"),
                    );
                }
            }
            for tier in r.variants.keys() {
                if !TIERS.contains(&tier.as_str()) {
                    diag(
                        r.id.span().start,
                        format!("unknown tier `{tier}` in `{id}` (expected one of {TIERS:?})"),
                    );
                }
            }
            let mut questions = Vec::with_capacity(r.questions.len());
            for q in &r.questions {
                let norm = crate::intent::normalize::normalize(q.get_ref());
                if norm.trim().is_empty() {
                    diag(q.span().start, format!("empty question in `{id}`"));
                    continue;
                }
                let line = lines.line(q.span().start);
                if let Some((other_intent, f, l)) = questions_seen.claim(norm, &intent, file, line)
                {
                    diag(
                        q.span().start,
                        format!(
                            "question {:?} is under `{intent}` here and under `{other_intent}` at {}:{l}",
                            q.get_ref(),
                            f.display()
                        ),
                    );
                }
                questions.push(q.get_ref().trim().to_string());
            }
            for m in &r.menu {
                pending_menus.push((
                    file.clone(),
                    lines.line(m.span().start),
                    m.get_ref().clone(),
                ));
            }
            let reply = Reply {
                id: id.clone(),
                intent,
                title: r.title.get_ref().trim().to_string(),
                answer: r.answer.get_ref().trim().to_string(),
                questions,
                keywords: r.keywords,
                variants: r
                    .variants
                    .into_iter()
                    .map(|(k, v)| (k, v.into_inner().trim().to_string()))
                    .collect(),
                menu: r.menu.into_iter().map(|m| m.into_inner()).collect(),
                file: file.clone(),
                line,
            };
            // Compliance: what the shopper would actually read, shop facts included.
            for tier in std::iter::once(None).chain(reply.variants.keys().map(|k| Some(k.as_str())))
            {
                let rendered = lib.render(&reply, tier, Some("顾客"));
                for f in lexicon.scan(&rendered) {
                    diags.push(Diagnostic {
                        file: file.clone(),
                        line,
                        message: format!(
                            "answer of `{id}`{} contains `{}`: {} ({})",
                            tier.map(|t| format!(" ({t} variant)")).unwrap_or_default(),
                            f.term,
                            f.category_name,
                            f.category
                        ),
                    });
                }
            }
            lib.by_id.insert(id, lib.replies.len());
            lib.replies.push(reply);
        }
    }
    for (file, line, target) in pending_menus {
        if !lib.by_id.contains_key(&target) {
            diags.push(Diagnostic {
                file,
                line,
                message: format!("menu refers to unknown reply id `{target}`"),
            });
        }
    }
    if lib.replies.is_empty() && diags.is_empty() {
        diags.push(Diagnostic {
            file: dir.to_owned(),
            line: 1,
            message: "no replies found".into(),
        });
    }
    Ok((lib, diags))
}
