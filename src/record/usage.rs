//! Token usage as relays report it.
//!
//! Responses API (`input_tokens`, `input_tokens_details.cached_tokens`, …), Chat Completions
//! (`prompt_tokens`, `prompt_tokens_details.cached_tokens`, …) and a few relay dialects
//! (`cached_input_tokens`, `cache_read_input_tokens`) are read; numbers may be numeric strings.
//! Cached tokens are counted inside input tokens, as Codex counts them.

use serde::Serialize;
use serde_json::Value;

/// The largest count believed. A response's input is at most a context window (a few million
/// tokens today); a relay that reports more is wrong or hostile, and its figures would price
/// one request at billions of dollars, lock a team member out of their budget, or overflow a
/// sum.
pub const MAX_TOKENS: u64 = 100_000_000;

/// Tokens of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    /// Reads a usage object; `None` when it has neither input nor output counts, or when any
    /// count is over [`MAX_TOKENS`] (the whole report is then not believed).
    pub fn from_json(usage: &Value) -> Option<Self> {
        let input = first(usage, &[&["input_tokens"], &["prompt_tokens"]]);
        let output = first(usage, &[&["output_tokens"], &["completion_tokens"]]);
        if input.is_none() && output.is_none() {
            return None;
        }
        let (input, output) = (input.unwrap_or(0), output.unwrap_or(0));
        let cached = first(
            usage,
            &[
                &["input_tokens_details", "cached_tokens"],
                &["input_token_details", "cached_tokens"],
                &["prompt_tokens_details", "cached_tokens"],
                &["cached_input_tokens"],
                &["cache_read_input_tokens"],
                &["cache_read_tokens"],
            ],
        )
        .unwrap_or(0);
        let reasoning = first(
            usage,
            &[
                &["output_tokens_details", "reasoning_tokens"],
                &["completion_tokens_details", "reasoning_tokens"],
                &["reasoning_tokens"],
                &["reasoning_output_tokens"],
            ],
        )
        .unwrap_or(0);
        let total = first(usage, &[&["total_tokens"]]).unwrap_or(input.saturating_add(output));
        [input, cached, output, reasoning, total]
            .iter()
            .all(|n| *n <= MAX_TOKENS)
            .then_some(Self {
                input_tokens: input,
                cached_input_tokens: cached,
                output_tokens: output,
                reasoning_tokens: reasoning,
                total_tokens: total,
            })
    }

    /// Finds usage in an SSE event or a JSON response: `response.usage` (as in
    /// `response.completed`) or a top-level `usage`.
    pub fn from_payload(payload: &Value) -> Option<Self> {
        payload
            .get("response")
            .and_then(|r| r.get("usage"))
            .and_then(Self::from_json)
            .or_else(|| payload.get("usage").and_then(Self::from_json))
    }
}

/// The first path that holds a count (a non-negative integer or a numeric string).
fn first(value: &Value, paths: &[&[&str]]) -> Option<u64> {
    paths.iter().find_map(|path| {
        let v = path.iter().try_fold(value, |v, key| v.get(key))?;
        match v {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn implausible_counts_are_not_believed() {
        let at_most = json!({"usage":{"input_tokens":MAX_TOKENS,"output_tokens":1,"total_tokens":MAX_TOKENS}});
        assert_eq!(
            Usage::from_payload(&at_most).map(|u| u.input_tokens),
            Some(MAX_TOKENS)
        );
        for usage in [
            // Its derived total used to wrap to 0 (and panic where overflow is checked).
            json!({"input_tokens":u64::MAX,"output_tokens":1}),
            json!({"input_tokens":1e30,"output_tokens":1}),
            json!({"input_tokens":"100000001","output_tokens":1}),
            json!({"input_tokens":10,"output_tokens":1,"total_tokens":1e12}),
            json!({"input_tokens":10,"output_tokens":1,"input_tokens_details":{"cached_tokens":1e12}}),
            json!({"input_tokens":10,"output_tokens":1,"reasoning_tokens":MAX_TOKENS + 1}),
        ] {
            assert_eq!(Usage::from_json(&usage), None, "{usage}");
        }
    }

    #[test]
    fn responses_api_shape() {
        let event = json!({"type":"response.completed","response":{"id":"r","usage":{
            "input_tokens":1200,"input_tokens_details":{"cached_tokens":1000},
            "output_tokens":5,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":1205}}});
        assert_eq!(
            Usage::from_payload(&event),
            Some(Usage {
                input_tokens: 1200,
                cached_input_tokens: 1000,
                output_tokens: 5,
                reasoning_tokens: 3,
                total_tokens: 1205
            })
        );
    }

    #[test]
    fn chat_shape_with_numeric_strings_and_derived_total() {
        let body = json!({"usage":{"prompt_tokens":"100","completion_tokens":20,
            "prompt_tokens_details":{"cached_tokens":"40"},
            "completion_tokens_details":{"reasoning_tokens":7}}});
        let usage = Usage::from_payload(&body).unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.cached_input_tokens,
                usage.output_tokens
            ),
            (100, 40, 20)
        );
        assert_eq!((usage.reasoning_tokens, usage.total_tokens), (7, 120));
    }

    #[test]
    fn relay_dialects_for_cached_tokens() {
        let a = json!({"usage":{"input_tokens":10,"output_tokens":1,"cached_input_tokens":4}});
        let b = json!({"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":6}});
        assert_eq!(Usage::from_payload(&a).unwrap().cached_input_tokens, 4);
        assert_eq!(Usage::from_payload(&b).unwrap().cached_input_tokens, 6);
    }

    #[test]
    fn missing_or_unrecognised_usage() {
        assert_eq!(Usage::from_payload(&json!({"response":{"id":"r"}})), None);
        assert_eq!(Usage::from_payload(&json!({"usage":{"foo":1}})), None);
        assert_eq!(
            Usage::from_payload(&json!({"response":{"usage":null}})),
            None
        );
    }
}
