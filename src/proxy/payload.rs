//! The few fields of a relay's Responses API payload (a JSON reply, or one SSE event's data)
//! the proxy reads: the event type, model, service tier, usage and error. Everything else (a
//! `response.completed` carries the whole answer) is skipped by the parser instead of being
//! built into a `serde_json::Value` tree and thrown away.
//!
//! Reading is as lenient as walking a `Value` was: a field of an unexpected type reads as
//! absent, never as a failed parse of the whole payload.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::record::usage::Usage;

/// What one payload says, at its top level or in its `response` object.
#[derive(Debug, Default, PartialEq)]
pub struct Payload {
    /// `type` (an SSE event's).
    pub kind: Option<String>,
    pub model: Option<String>,
    pub service_tier: Option<String>,
    pub usage: Option<Value>,
    pub error: Option<Value>,
    /// `code` and `message` at this level (an `error` event may carry them outside `error`).
    pub code: Option<Value>,
    pub message: Option<Value>,
    /// `response` (top level only).
    pub response: Option<Box<Payload>>,
}

impl Payload {
    /// Reads `data`; `None` when it is not JSON.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_slice(data);
        let payload = Level { top: true }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(payload)
    }

    /// `response.usage`, else the top-level `usage` (as [`Usage::from_payload`] reads them).
    pub fn usage(&self) -> Option<Usage> {
        self.response
            .as_ref()
            .and_then(|r| r.usage.as_ref())
            .and_then(Usage::from_json)
            .or_else(|| self.usage.as_ref().and_then(Usage::from_json))
    }

    /// The error an `error` event carries: `error.code` and `error.message` as text, or this
    /// level's own `code` and `message` when there is no `error`.
    pub fn error_event(&self) -> (Option<String>, Option<String>) {
        match &self.error {
            Some(error) => error_fields(Some(error)),
            None => (text_of(self.code.as_ref()), text_of(self.message.as_ref())),
        }
    }

    /// The error a `response.failed` event carries: `response.error`'s code and message.
    pub fn failed_response(&self) -> (Option<String>, Option<String>) {
        error_fields(self.response.as_ref().and_then(|r| r.error.as_ref()))
    }
}

/// An error object's `code` and `message` as text.
fn error_fields(error: Option<&Value>) -> (Option<String>, Option<String>) {
    (
        text_of(error.and_then(|e| e.get("code"))),
        text_of(error.and_then(|e| e.get("message"))),
    )
}

fn text_of(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_string)
}

/// Reads one level: the top, or `response` inside it.
struct Level {
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Level {
    type Value = Payload;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Payload, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A string field's text; any other JSON reads as absent.
fn text(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The most of one member's JSON read into a `Value`. Real ones (a usage object, an error, a
/// model name) are well under a kilobyte, and a tree costs many times its text: a relay's
/// 16 MiB `usage` array would take hundreds of MiB. A bigger member reads as absent.
const MEMBER_MAX: usize = 64 << 10;

/// The next member's value, if it is at most [`MEMBER_MAX`] of JSON; skipped (read as
/// absent) otherwise. The value is first taken as its raw text, which costs nothing more.
fn small<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Value>, A::Error> {
    let raw: &'de RawValue = map.next_value()?;
    let json = raw.get();
    Ok((json.len() <= MEMBER_MAX)
        .then(|| serde_json::from_str(json).ok())
        .flatten())
}

impl<'de> Visitor<'de> for Level {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut payload = Payload::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => payload.kind = text(small(&mut map)?),
                "model" => payload.model = text(small(&mut map)?),
                "service_tier" => payload.service_tier = text(small(&mut map)?),
                "usage" => payload.usage = small(&mut map)?,
                "error" => payload.error = small(&mut map)?,
                "code" => payload.code = small(&mut map)?,
                "message" => payload.message = small(&mut map)?,
                "response" if self.top => {
                    payload.response = Some(Box::new(map.next_value_seed(Level { top: false })?))
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(payload)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Payload::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Payload, E> {
        Ok(Payload::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Payload, E> {
        Ok(Payload::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Payload, E> {
        Ok(Payload::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Payload, E> {
        Ok(Payload::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Payload, E> {
        Ok(Payload::default())
    }

    fn visit_unit<E>(self) -> Result<Payload, E> {
        Ok(Payload::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Usage, type, `response.model`, `response.service_tier`, and the error's code and message.
    type Read = (
        Option<Usage>,
        Option<String>,
        Option<String>,
        Option<String>,
        (Option<String>, Option<String>),
    );

    /// What the proxy read before, from a `Value` tree.
    fn by_value(data: &str) -> Option<Read> {
        let v: Value = serde_json::from_str(data).ok()?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let error = match v.get("type").and_then(Value::as_str) {
            Some("response.failed") => v.pointer("/response/error").unwrap_or(&Value::Null),
            _ => v.get("error").unwrap_or(&v),
        };
        Some((
            Usage::from_payload(&v),
            text(v.get("type")),
            text(v.pointer("/response/model")),
            text(v.pointer("/response/service_tier")),
            (text(error.get("code")), text(error.get("message"))),
        ))
    }

    fn by_payload(data: &str) -> Option<Read> {
        let p = Payload::parse(data.as_bytes())?;
        let inner = p.response.as_deref();
        Some((
            p.usage(),
            p.kind.clone(),
            inner.and_then(|r| r.model.clone()),
            inner.and_then(|r| r.service_tier.clone()),
            match p.kind.as_deref() {
                Some("response.failed") => p.failed_response(),
                _ => p.error_event(),
            },
        ))
    }

    #[test]
    fn a_member_over_64_kib_reads_as_absent_instead_of_becoming_a_tree() {
        // A usage object padded inside with spaces to `len` bytes of JSON.
        let usage = |len: usize| {
            let (head, tail) = (r#"{"input_tokens":10,"#, r#""output_tokens":2}"#);
            format!("{head}{}{tail}", " ".repeat(len - head.len() - tail.len()))
        };
        let (at, over) = (usage(MEMBER_MAX), usage(MEMBER_MAX + 1));
        for (member, read) in [(&at, true), (&over, false)] {
            let data =
                format!(r#"{{"type":"response.completed","response":{{"usage":{member}}}}}"#);
            let payload = Payload::parse(data.as_bytes()).unwrap();
            assert_eq!(payload.usage().is_some(), read, "{} bytes", member.len());
            assert_eq!(payload.kind.as_deref(), Some("response.completed"));
        }
        // A relay's endless array where usage or an error's message belongs.
        let zeros = vec!["0"; 200_000].join(",");
        for member in ["usage", "error", "message", "code", "model"] {
            let data = format!(r#"{{"type":"x","{member}":[{zeros}]}}"#);
            let payload = Payload::parse(data.as_bytes()).unwrap();
            assert_eq!(
                payload,
                Payload {
                    kind: Some("x".into()),
                    ..Payload::default()
                },
                "{member}"
            );
        }
    }

    #[test]
    fn reads_what_a_value_tree_gave_and_skips_the_rest() {
        let completed = json!({"type":"response.completed","sequence_number":9,"response":{
            "id":"r","model":"gpt-5.1","service_tier":"flex","output":[{"type":"message","content":[{"text":"hi \"there\""}]}],
            "usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":"3","total_tokens":13}}});
        let cases = [
            completed.to_string(),
            json!({"type":"response.failed","response":{"error":{"code":"server_error","message":"boom"}}}).to_string(),
            json!({"type":"response.failed","response":{"code":"not_here"},"message":"nor here"}).to_string(),
            json!({"type":"error","code":"rate_limit_exceeded","message":"slow down"}).to_string(),
            json!({"type":"error","error":{"code":42,"message":"odd"}}).to_string(),
            json!({"model":"m","service_tier":"default","usage":{"prompt_tokens":7,"completion_tokens":2}}).to_string(),
            // Fields of unexpected types read as absent, not as a failed parse.
            json!({"type":7,"response":"not an object","usage":[1,2]}).to_string(),
            json!({"response":{"model":["x"],"service_tier":null,"usage":{"input_tokens":-1}}}).to_string(),
            json!([1, {"type":"x"}]).to_string(),
            "\"text\"".to_string(),
            "null".to_string(),
        ];
        for data in &cases {
            assert_eq!(by_payload(data), by_value(data), "{data}");
        }
        let p = Payload::parse(completed.to_string().as_bytes()).unwrap();
        assert_eq!(p.usage().unwrap().cached_input_tokens, 4);
        assert_eq!(p.response.unwrap().model.as_deref(), Some("gpt-5.1"));
        for bad in ["{\"type\":", "{} trailing", "", "data: {}"] {
            assert_eq!(Payload::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn the_last_of_a_repeated_key_wins_as_in_a_value() {
        let data =
            r#"{"type":"a","type":"response.completed","response":{"model":"x","model":"y"}}"#;
        assert_eq!(by_payload(data), by_value(data));
    }
}
