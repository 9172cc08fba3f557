//! `filter.json` rules, compiled (pure): each rule's `source` is a byte regex, or the literal
//! text when it is not a valid regex (as the original codex-helper does); rules apply in order.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

/// The most rules one file may hold.
pub const MAX_RULES: usize = 1_000;
/// The longest `source` or `target`.
pub const MAX_PATTERN_BYTES: usize = 64 * 1024;
/// The compiled size one regex may take (the `regex` crate's default is 10 MiB; a filter needs
/// far less, and a thousand rules at the default could take gigabytes).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a rule does with what its `source` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Every match becomes `target` (`$1`, `${name}` name a regex's groups).
    Replace,
    /// Every match is taken out.
    Remove,
}

impl Op {
    /// The name in `filter.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Remove => "remove",
        }
    }
}

/// One rule as written in `filter.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub op: Op,
    pub source: String,
    #[serde(default)]
    pub target: Option<String>,
}

/// The file's shape: a list of rules, or one rule alone.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileShape {
    Many(Vec<serde_json::Value>),
    One(serde_json::Value),
}

/// How a rule's `source` is matched.
#[derive(Debug, Clone)]
enum Matcher {
    Regex(Regex),
    /// Not a valid regex: matched as the bytes written.
    Literal(Vec<u8>),
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    /// Empty for `remove`.
    target: Vec<u8>,
}

/// A file's rules, compiled, ready for any number of bodies.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    /// Rules whose `source` is matched literally because it is not a valid regex (index and
    /// the regex error), said once when the file is loaded.
    pub literal: Vec<(usize, String)>,
}

/// A `filter.json` that cannot be used: which file, which rule (0-based, as in the array),
/// what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(
        "{path}: not valid JSON ({error}); expected a list of {{\"op\", \"source\", \"target\"}} rules"
    )]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{path}: rule {index}: {message}")]
    Rule {
        path: PathBuf,
        index: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

impl Rules {
    /// Compiles the text of `filter.json` at `path` (named in errors).
    pub fn compile(path: &Path, text: &str) -> Result<Self, FilterError> {
        let shape: FileShape = serde_json::from_str(text).map_err(|error| FilterError::Json {
            path: path.to_path_buf(),
            error,
        })?;
        let values = match shape {
            FileShape::Many(values) => values,
            FileShape::One(value) => vec![value],
        };
        if values.len() > MAX_RULES {
            return Err(FilterError::File {
                path: path.to_path_buf(),
                message: format!("{} rules; at most {MAX_RULES} are allowed", values.len()),
            });
        }
        let mut rules = Rules::default();
        for (index, value) in values.into_iter().enumerate() {
            let rule_error = |message: String| FilterError::Rule {
                path: path.to_path_buf(),
                index,
                message,
            };
            let spec: RuleSpec = serde_json::from_value(value)
                .map_err(|e| rule_error(format!("{e} (a rule is {{\"op\": \"replace\"|\"remove\", \"source\": \"…\", \"target\": \"…\"}})")))?;
            let (rule, literal) = compile_rule(&spec).map_err(rule_error)?;
            if let Some(why) = literal {
                rules.literal.push((index, why));
            }
            rules.rules.push(rule);
        }
        Ok(rules)
    }

    /// No rules: bodies pass unchanged.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// `body` with every rule applied in order, or `None` when no rule matched.
    pub fn apply(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut current: Cow<'_, [u8]> = Cow::Borrowed(body);
        let mut changed = false;
        for rule in &self.rules {
            let next = match &rule.matcher {
                Matcher::Regex(regex) => {
                    match regex.replace_all(&current, rule.target.as_slice()) {
                        Cow::Borrowed(_) => None,
                        Cow::Owned(out) => Some(out),
                    }
                }
                Matcher::Literal(literal) => replace_literal(&current, literal, &rule.target),
            };
            if let Some(next) = next {
                current = Cow::Owned(next);
                changed = true;
            }
        }
        changed.then(|| current.into_owned())
    }
}

/// One rule checked and compiled; the second value says why its source is taken literally.
fn compile_rule(spec: &RuleSpec) -> Result<(Rule, Option<String>), String> {
    if spec.source.is_empty() {
        return Err("`source` is empty; it must say what to match".into());
    }
    if spec.source.len() > MAX_PATTERN_BYTES {
        return Err(format!("`source` is longer than {MAX_PATTERN_BYTES} bytes"));
    }
    let target = match (spec.op, &spec.target) {
        (Op::Replace, None) => {
            return Err("`replace` needs a `target` (use \"\" or `remove` to delete)".into());
        }
        (Op::Replace, Some(t)) if t.len() > MAX_PATTERN_BYTES => {
            return Err(format!("`target` is longer than {MAX_PATTERN_BYTES} bytes"));
        }
        (Op::Replace, Some(t)) => t.as_bytes().to_vec(),
        (Op::Remove, Some(t)) if !t.is_empty() => {
            return Err("`remove` takes no `target` (did you mean `replace`?)".into());
        }
        (Op::Remove, _) => Vec::new(),
    };
    let built = RegexBuilder::new(&spec.source)
        .size_limit(REGEX_SIZE_LIMIT)
        .build();
    Ok(match built {
        Ok(regex) if regex.is_match(b"") => {
            return Err(format!(
                "`source` {:?} matches the empty text, so it would {} between every byte",
                spec.source,
                if spec.op == Op::Remove {
                    "remove nothing"
                } else {
                    "insert"
                }
            ));
        }
        Ok(regex) => (
            Rule {
                matcher: Matcher::Regex(regex),
                target,
            },
            None,
        ),
        Err(regex::Error::CompiledTooBig(limit)) => {
            return Err(format!(
                "`source` compiles to more than {limit} bytes; split it into simpler rules"
            ));
        }
        Err(e) => {
            let why = e.to_string();
            let first_line = why.lines().last().unwrap_or_default().trim().to_string();
            (
                Rule {
                    matcher: Matcher::Literal(spec.source.as_bytes().to_vec()),
                    target,
                },
                Some(first_line),
            )
        }
    })
}

/// Every occurrence of `literal` in `body` replaced by `target`, or `None` when there is none.
fn replace_literal(body: &[u8], literal: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    let finder = memchr::memmem::Finder::new(literal);
    let mut at = finder.find_iter(body).peekable();
    at.peek()?;
    let mut out = Vec::with_capacity(body.len());
    let mut last = 0;
    for start in at {
        out.extend_from_slice(&body[last..start]);
        out.extend_from_slice(target);
        last = start + literal.len();
    }
    out.extend_from_slice(&body[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        Rules::compile(Path::new("/h/filter.json"), text).unwrap()
    }

    fn error(text: &str) -> String {
        Rules::compile(Path::new("/h/filter.json"), text)
            .unwrap_err()
            .to_string()
    }

    fn apply(rules: &Rules, body: &str) -> String {
        String::from_utf8(rules.apply(body.as_bytes()).unwrap_or_else(|| body.into())).unwrap()
    }

    #[test]
    fn rules_apply_in_order_and_regex_groups_expand() {
        let r = rules(
            r##"[{"op":"replace","source":"secret-(\\d+)","target":"id-$1"},
                {"op":"remove","source":"id-4"},
                {"op":"replace","source":"id-","target":"#"}]"##,
        );
        assert_eq!(apply(&r, "a secret-12 b secret-42"), "a #12 b 2");
    }

    #[test]
    fn a_single_object_is_one_rule() {
        let r = rules(r#"{"op":"remove","source":"\\s*PLEASE\\s*"}"#);
        assert_eq!(r.len(), 1);
        assert_eq!(apply(&r, "do it PLEASE now"), "do itnow");
    }

    #[test]
    fn nothing_matched_is_none() {
        let r = rules(r#"[{"op":"remove","source":"zzz"}]"#);
        assert!(r.apply(b"abc").is_none());
        assert!(rules("[]").is_empty());
    }

    #[test]
    fn literal_replace_fallback_works_when_regex_invalid() {
        let r = rules(r#"[{"op":"replace","source":"a(b","target":"[$1]"}]"#);
        assert_eq!(r.literal.len(), 1);
        assert_eq!(r.literal[0].0, 0);
        // Literal targets are bytes as written: `$1` is not expanded.
        assert_eq!(apply(&r, "xa(by a(b"), "x[$1]y [$1]");
    }

    #[test]
    fn literal_remove_fallback_works_when_regex_invalid() {
        let r = rules(r#"[{"op":"remove","source":"[unclosed"}]"#);
        assert_eq!(apply(&r, "keep[unclosed this"), "keep this");
    }

    #[test]
    fn bad_rules_say_file_index_and_what_is_wrong() {
        let e = error(r#"[{"op":"remove","source":"a"},{"op":"rewrite","source":"b"}]"#);
        assert!(
            e.starts_with("/h/filter.json: rule 1: unknown variant `rewrite`"),
            "{e}"
        );
        let e = error(r#"[{"op":"replace","source":"a"}]"#);
        assert!(e.contains("rule 0: `replace` needs a `target`"), "{e}");
        let e = error(r#"[{"op":"remove","source":""}]"#);
        assert!(e.contains("rule 0: `source` is empty"), "{e}");
        let e = error(r#"[{"op":"remove","source":"a","target":"b"}]"#);
        assert!(e.contains("rule 0: `remove` takes no `target`"), "{e}");
        let e = error(r#"[{"op":"remove","source":"a","tagret":"b"}]"#);
        assert!(e.contains("rule 0: unknown field `tagret`"), "{e}");
        let e = error(r#"[{"op":"remove"}]"#);
        assert!(e.contains("rule 0: missing field `source`"), "{e}");
        let e = error(r#"[{"op":"remove","source":"x*"}]"#);
        assert!(
            e.contains("rule 0: `source` \"x*\" matches the empty text"),
            "{e}"
        );
        let e = error(r#"[{"op":"remove","source":"a"},]"#);
        assert!(e.starts_with("/h/filter.json: not valid JSON"), "{e}");
        let e = error(r#""just text""#);
        assert!(e.contains("rule 0:"), "{e}");
    }

    #[test]
    fn too_many_rules_are_refused() {
        let one = r#"{"op":"remove","source":"a"}"#;
        let text = format!("[{}]", vec![one; MAX_RULES + 1].join(","));
        assert!(error(&text).contains("at most 1000"));
    }

    #[test]
    fn a_huge_regex_is_refused_with_advice() {
        let e = error(r#"[{"op":"remove","source":"(\\w{100}){100}"}]"#);
        assert!(e.contains("rule 0: `source` compiles to more than"), "{e}");
    }
}
