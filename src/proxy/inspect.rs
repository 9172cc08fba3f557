//! What the proxy reads from a JSON request body, without taking the body apart.
//!
//! Only a handful of top-level fields matter (model, stream flag, session keys). They are read
//! with borrowed serde views so unrelated content is skipped, not copied, and the `model`
//! value's byte range is kept so a mapping can replace exactly those bytes.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

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
}

#[derive(Deserialize)]
struct View<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    stream: Option<bool>,
    #[serde(borrow)]
    prompt_cache_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metadata: Option<MetadataView<'a>>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<ReasoningView<'a>>,
    previous_response_id: Option<IgnoredAny>,
    input: Option<InputState>,
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
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let view: View<'_> = serde_json::from_slice(body).ok()?;
    let (model, model_span) = match view.model {
        Some(raw) => {
            let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
            let span = start..start + raw.get().len();
            (serde_json::from_str::<String>(raw.get()).ok(), Some(span))
        }
        None => (None, None),
    };
    let text = |v: Option<Cow<'_, str>>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    Some(BodyFacts {
        // A non-string model is left alone: no span, so nothing is rewritten.
        model_span: model.as_ref().and(model_span),
        model,
        stream: view.stream,
        prompt_cache_key: text(view.prompt_cache_key),
        metadata_session_id: text(view.metadata.and_then(|m| m.session_id)),
        service_tier: text(view.service_tier),
        reasoning_effort: text(view.reasoning.and_then(|r| r.effort)),
        relay_bound: view.previous_response_id.is_some()
            || view.input.is_some_and(|i| i.relay_bound),
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
    fn a_non_string_model_is_not_rewritable() {
        let facts = inspect(br#"{"model":{"id":"x"}}"#).unwrap();
        assert_eq!(facts.model, None);
        assert_eq!(facts.model_span, None);
    }
}
