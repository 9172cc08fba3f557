//! What the proxy reads from a JSON request body, without taking the body apart.
//!
//! Only a handful of top-level fields matter (model, stream flag, session keys). They are read
//! with borrowed serde views so unrelated content is skipped, not copied, and the byte ranges
//! of the values a mapping or an override may replace are kept ([`TopLevel`]), so exactly
//! those bytes change and the body is not parsed again to find them.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::routing::overrides::{TopLevel, span_in};

/// Facts read from a JSON object body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFacts {
    pub model: Option<String>,
    /// Byte range of the `model` value (quotes included) in the body.
    pub model_span: Option<Range<usize>>,
    pub stream: Option<bool>,
    pub prompt_cache_key: Option<String>,
    pub metadata_session_id: Option<String>,
    pub service_tier: Option<String>,
    /// `reasoning.effort`.
    pub reasoning_effort: Option<String>,
    /// The request carries state only the relay that made it can read: a
    /// `previous_response_id`, a `compaction_trigger` item, or items with `encrypted_content`.
    pub relay_bound: bool,
    /// Where the object opens and the values an override may set sit.
    pub top: TopLevel,
}

#[derive(Deserialize)]
struct View<'a> {
    /// Raw, `null` included, for its span ([`raw`]).
    #[serde(default, borrow, deserialize_with = "raw")]
    model: Option<&'a RawValue>,
    stream: Option<bool>,
    #[serde(borrow)]
    prompt_cache_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metadata: Option<MetadataView<'a>>,
    #[serde(default, borrow, deserialize_with = "raw")]
    service_tier: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "raw")]
    reasoning: Option<&'a RawValue>,
    previous_response_id: Option<IgnoredAny>,
    input: Option<InputState>,
}

/// A member's raw value whatever it is: as an `Option` field, `null` would read as absent and
/// lose its span (an override must replace a `null`, not add a second member beside it).
fn raw<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// `raw` read as `T` (`null` as `None`); an error when it is something else, as a typed field
/// of the view would have been.
fn typed<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Result<Option<T>, ()> {
    match raw {
        Some(raw) => serde_json::from_str::<Option<T>>(raw.get()).map_err(|_| ()),
        None => Ok(None),
    }
}

#[derive(Deserialize)]
struct ReasoningView<'a> {
    #[serde(borrow)]
    effort: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ItemView<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    encrypted_content: Option<IgnoredAny>,
}

/// What `input` says about relay-bound state; `input` may be a string or a list of items.
#[derive(Default)]
struct InputState {
    relay_bound: bool,
}

impl<'de> Deserialize<'de> for InputState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = InputState;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of input items")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<InputState, A::Error> {
                let mut state = InputState::default();
                while let Some(item) = seq.next_element::<Option<ItemView<'de>>>()? {
                    let Some(item) = item else { continue };
                    state.relay_bound |= item.encrypted_content.is_some()
                        || item.kind.as_deref() == Some("compaction_trigger");
                }
                Ok(state)
            }
            fn visit_str<E>(self, _: &str) -> Result<InputState, E> {
                Ok(InputState::default())
            }
            fn visit_unit<E>(self) -> Result<InputState, E> {
                Ok(InputState::default())
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

#[derive(Deserialize)]
struct MetadataView<'a> {
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
}

/// Reads the facts from `body` if it is a JSON object; `None` for anything else.
pub fn inspect(body: &[u8]) -> Option<BodyFacts> {
    let brace = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body[brace] != b'{' {
        return None;
    }
    let view: View<'_> = serde_json::from_slice(body).ok()?;
    let span = |raw: Option<&RawValue>| raw.map(|raw| span_in(body, raw.get()));
    let top = TopLevel {
        open: brace + 1,
        empty: body[brace + 1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'}'),
        model: span(view.model),
        service_tier: span(view.service_tier),
        reasoning: span(view.reasoning),
    };
    // A non-string model is not mapped: no `model_span`, so a mapping rewrites nothing (an
    // override still replaces it, at `top.model`).
    let model: Option<String> = view
        .model
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    let service_tier: Option<Cow<'_, str>> = typed(view.service_tier).ok()?;
    let reasoning: Option<ReasoningView<'_>> = typed(view.reasoning).ok()?;
    let text = |v: Option<Cow<'_, str>>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    Some(BodyFacts {
        model_span: model.as_ref().and(top.model.clone()),
        model,
        stream: view.stream,
        prompt_cache_key: text(view.prompt_cache_key),
        metadata_session_id: text(view.metadata.and_then(|m| m.session_id)),
        service_tier: text(service_tier),
        reasoning_effort: text(reasoning.and_then(|r| r.effort)),
        relay_bound: view.previous_response_id.is_some()
            || view.input.is_some_and(|i| i.relay_bound),
        top,
    })
}

/// The body with the bytes in `span` replaced by `model` as a JSON string. Every other byte
/// stays as the client sent it.
pub fn replace_model(body: &[u8], span: Range<usize>, model: &str) -> Bytes {
    let quoted = serde_json::to_string(model).expect("a string always serialises");
    let mut out = BytesMut::with_capacity(body.len() - span.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_that_matter() {
        let body = br#" {"input":[{"model":"inner"}],"model" : "gpt-5.1","stream":true,
            "prompt_cache_key":"019a-thread","metadata":{"session_id":" s-1 "}}"#;
        let facts = inspect(body).unwrap();
        assert_eq!(facts.model.as_deref(), Some("gpt-5.1"));
        assert_eq!(&body[facts.model_span.clone().unwrap()], br#""gpt-5.1""#);
        assert_eq!(facts.stream, Some(true));
        assert_eq!(facts.prompt_cache_key.as_deref(), Some("019a-thread"));
        assert_eq!(facts.metadata_session_id.as_deref(), Some("s-1"));
    }

    #[test]
    fn relay_bound_state_is_recognised() {
        let bound = [
            r#"{"input":[{"type":"message"},{"type":"compaction_trigger"}]}"#,
            r#"{"input":[{"type":"reasoning","encrypted_content":"gAAA"}]}"#,
            r#"{"previous_response_id":"resp_1","input":[]}"#,
        ];
        for body in bound {
            assert!(inspect(body.as_bytes()).unwrap().relay_bound, "{body}");
        }
        let free = [
            r#"{"input":"hi","include":["reasoning.encrypted_content"]}"#,
            r#"{"input":[{"type":"message","encrypted_content":null}, null],"previous_response_id":null}"#,
            r#"{"model":"x"}"#,
        ];
        for body in free {
            assert!(!inspect(body.as_bytes()).unwrap().relay_bound, "{body}");
        }
        let facts =
            inspect(br#"{"service_tier":"flex","reasoning":{"effort":"high","summary":"auto"}}"#)
                .unwrap();
        assert_eq!(
            (
                facts.service_tier.as_deref(),
                facts.reasoning_effort.as_deref()
            ),
            (Some("flex"), Some("high"))
        );
    }

    #[test]
    fn non_objects_and_broken_json_give_nothing() {
        assert_eq!(inspect(b"[\"gpt\", true]"), None);
        assert_eq!(inspect(b"{\"model\":"), None);
        assert_eq!(inspect(b""), None);
        assert_eq!(inspect(b"model=gpt"), None);
    }

    #[test]
    fn replacing_the_model_keeps_every_other_byte() {
        let body = br#"{ "z":1,  "model":"gpt-5\u002e1",
  "input":"x\"model\":\"no\""}"#;
        let facts = inspect(body).unwrap();
        assert_eq!(facts.model.as_deref(), Some("gpt-5.1"));
        let out = replace_model(body, facts.model_span.unwrap(), "relay/\"gpt\"");
        let expected = br#"{ "z":1,  "model":"relay/\"gpt\"",
  "input":"x\"model\":\"no\""}"#;
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn the_spans_an_override_needs_are_kept_null_included() {
        let body = br#" { "service_tier" : null, "reasoning": {"effort":"low"}, "model":"m" }"#;
        let facts = inspect(body).unwrap();
        let at = |span: Option<Range<usize>>| &body[span.unwrap()];
        assert_eq!(at(facts.top.service_tier.clone()), b"null");
        assert_eq!(at(facts.top.reasoning.clone()), br#"{"effort":"low"}"#);
        assert_eq!(at(facts.top.model.clone()), br#""m""#);
        assert_eq!((facts.top.open, facts.top.empty), (2, false));
        assert_eq!(facts.service_tier, None);
        assert_eq!(facts.reasoning_effort.as_deref(), Some("low"));
        let empty = inspect(b" {\n} ").unwrap();
        assert_eq!((empty.top.open, empty.top.empty), (2, true));
        assert_eq!(empty.top.model, None);
        // A value of the wrong type is refused as before: no facts at all. So is a member
        // given twice, which a patch at these spans relies on (it would edit one of the two).
        assert_eq!(inspect(br#"{"model":"a","model":"b"}"#), None);
        assert_eq!(inspect(br#"{"service_tier":5}"#), None);
        assert_eq!(inspect(br#"{"reasoning":"high"}"#), None);
    }

    #[test]
    fn a_non_string_model_is_not_rewritable() {
        let facts = inspect(br#"{"model":{"id":"x"}}"#).unwrap();
        assert_eq!(facts.model, None);
        assert_eq!(facts.model_span, None);
    }
}
