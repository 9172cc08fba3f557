//! The original codex-helper's `version = 5` retry keys: `[retry.upstream]`,
//! `[retry.provider]`, status lists and class lists.
//!
//! They are parsed here so an existing file loads as it is; `routing::retry::rules` gives them
//! their meaning. Status lists are read in every form the original accepted and users write:
//! `"429,500-599,524"`, a single number, or an array of numbers and range strings.

use std::fmt;

use serde::Deserialize;

/// `[retry.upstream]` (tries on the same endpoint) or `[retry.provider]` (moving on to the
/// next candidate).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryLayerConfig {
    /// Tries in this layer. `upstream`: tries on one endpoint (1 = no retry).
    /// `provider`: read, but as in the original's route-graph configs every candidate is
    /// tried until one answers.
    pub max_attempts: Option<u32>,
    /// First wait between tries on one endpoint; doubles each try.
    pub backoff_ms: Option<u64>,
    /// The longest such wait.
    pub backoff_max_ms: Option<u64>,
    /// Random extra wait, 0 to this, added to each backoff.
    pub jitter_ms: Option<u64>,
    /// HTTP statuses this layer acts on, e.g. `"429,500-599"` or `[429, "500-599"]`.
    pub on_status: Option<StatusList>,
    /// Failure classes this layer acts on (the original's names, e.g.
    /// `upstream_transport_error`, or this helper's, e.g. `rate_limited`).
    #[schemars(with = "Option<Vec<ClassName>>")]
    pub on_class: Option<Vec<String>>,
    /// `failover` or `same_upstream`: read, without effect (as in the original's route-graph
    /// configs, where the layers alone decide).
    pub strategy: Option<RetryStrategy>,
}

/// Every failure class name a list may hold: the original's, then this helper's
/// (`routing::retry::FailureClass` names; a test there keeps the two in step). Checked when
/// the retry policy is built; listed here for the JSON Schema, so editors complete them.
pub const CLASS_NAMES: [&str; 20] = [
    "upstream_transport_error",
    "routing_mismatch_capability",
    "client_error_non_retryable",
    "connect",
    "transport",
    "header_timeout",
    "first_event_timeout",
    "rate_limited",
    "server_error",
    "auth",
    "cloudflare_timeout",
    "cloudflare_challenge",
    "unsupported_model",
    "client_error",
    "failed_in_stream",
    "empty_stream",
    "forwarding_loop",
    "preamble_too_large",
    "image_generation_missing_result",
    "redirect",
];

/// A class name, for the schema only (the config keeps the text and names it in errors).
pub struct ClassName;

impl schemars::JsonSchema for ClassName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FailureClassName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A failure class: the original's (upstream_transport_error, routing_mismatch_capability, client_error_non_retryable) or this helper's.",
            "enum": CLASS_NAMES
        })
    }
}

/// `strategy` of a retry layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryStrategy {
    Failover,
    SameUpstream,
}

/// A set of HTTP statuses: single codes and inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusList {
    ranges: Vec<(u16, u16)>,
}

impl StatusList {
    /// Parses `"429,500-599, 524"`: codes and `LOW-HIGH` ranges, comma-separated.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            list.push_part(part)?;
        }
        Ok(list)
    }

    fn push_part(&mut self, part: &str) -> Result<(), String> {
        let code = |s: &str| -> Result<u16, String> {
            match s.trim().parse::<u16>() {
                Ok(n) if (100..=599).contains(&n) => Ok(n),
                _ => Err(format!(
                    "`{s}` is not an HTTP status (100 to 599); write codes and ranges like \"429,500-599\""
                )),
            }
        };
        let range = match part.split_once('-') {
            Some((low, high)) => (code(low)?, code(high)?),
            None => {
                let n = code(part)?;
                (n, n)
            }
        };
        if range.0 > range.1 {
            return Err(format!(
                "range `{part}` is empty (its start is above its end)"
            ));
        }
        self.ranges.push(range);
        Ok(())
    }

    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

impl fmt::Display for StatusList {
    /// The original's spelling: `429,500-599`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|&(low, high)| {
                if low == high {
                    low.to_string()
                } else {
                    format!("{low}-{high}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Item {
            Code(i64),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(Item),
            Many(Vec<Item>),
        }
        let invalid = |e: String| serde::de::Error::custom(e);
        let items = match Form::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected a status list: a string like \"429,500-599\", a number, or an array such as [429, \"500-599\"]",
            )
        })? {
            Form::One(item) => vec![item],
            Form::Many(items) => items,
        };
        let mut list = StatusList::default();
        for item in items {
            match item {
                Item::Code(n) => list.push_part(&n.to_string()).map_err(invalid)?,
                Item::Text(text) => {
                    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        list.push_part(part).map_err(invalid)?;
                    }
                }
            }
        }
        Ok(list)
    }
}

impl schemars::JsonSchema for StatusList {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusList".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let item = serde_json::json!({
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": STATUS_PATTERN }
            ]
        });
        schemars::json_schema!({
            "description": "HTTP statuses: \"429,500-599\", a number, or an array of numbers and range strings.",
            "anyOf": [
                item.clone(),
                { "type": "array", "items": item }
            ]
        })
    }
}

/// Codes and ranges, comma-separated (the schema's check; the loader's is exact).
const STATUS_PATTERN: &str = r"^\s*[1-5][0-9]{2}(\s*-\s*[1-5][0-9]{2})?(\s*,\s*[1-5][0-9]{2}(\s*-\s*[1-5][0-9]{2})?)*\s*,?\s*$";

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        s: StatusList,
    }

    fn read(text: &str) -> Result<StatusList, String> {
        toml::from_str::<Probe>(text)
            .map(|p| p.s)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn status_lists_in_every_form() {
        for text in [
            r#"s = "429,500-599,524""#,
            r#"s = [429, "500-599", 524]"#,
            r#"s = ["429", "500-599,524"]"#,
        ] {
            let list = read(text).unwrap();
            for code in [429, 500, 524, 599] {
                assert!(list.contains(code), "{text}: {code}");
            }
            for code in [400, 428, 430, 499, 413] {
                assert!(!list.contains(code), "{text}: {code}");
            }
        }
        assert!(read("s = 404").unwrap().contains(404));
        assert!(read(r#"s = """#).unwrap().is_empty());
        assert_eq!(
            read(r#"s = " 429 , 500-599""#).unwrap().to_string(),
            "429,500-599"
        );
    }

    #[test]
    fn bad_status_lists_say_what_is_wrong() {
        let e = read(r#"s = "429,5xx""#).unwrap_err();
        assert!(e.contains("`5xx` is not an HTTP status"), "{e}");
        let e = read(r#"s = "599-500""#).unwrap_err();
        assert!(e.contains("is empty"), "{e}");
        let e = read("s = 42").unwrap_err();
        assert!(e.contains("`42` is not an HTTP status"), "{e}");
        let e = read("s = true").unwrap_err();
        assert!(e.contains("expected a status list"), "{e}");
    }
}
