//! Session identity (`proxy::session::identify`) and the request body facts it reads
//! (`proxy::inspect`).
//!
//! - `inspect` answers only for JSON objects; a `model` span covers exactly the model's JSON
//!   string, and replacing it changes the model and nothing else (every other byte and fact
//!   stays).
//! - `identify` takes the first non-blank session header in its order, else the body's
//!   `prompt_cache_key`, else `metadata.session_id`; an id is never blank nor padded.

use codex_helper::proxy::inspect::{BodyFacts, inspect, replace_model};
use codex_helper::proxy::session::{SessionSource, identify};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::input::Input;

/// Session headers in the order `identify` tries them, and some it must ignore.
const HEADERS: [&str; 7] = [
    "session_id",
    "session-id",
    "conversation_id",
    "thread-id",
    "x-session-id",
    "x-request-id",
    "sessionid",
];

const VALUES: [&str; 6] = ["019a-thread", "  ", "", " padded ", "\tx", "s-1"];

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mut headers = HeaderMap::new();
    for _ in 0..input.below(4) {
        let name = HeaderName::from_static(input.pick(&HEADERS));
        let raw = if input.chance(30) {
            input.bytes(12).to_vec()
        } else {
            input.pick(&VALUES).as_bytes().to_vec()
        };
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            headers.append(name, value);
        }
    }
    let body = if input.byte() % 2 == 0 {
        input.rest().to_vec()
    } else {
        generated_body(&mut input)
    };
    let facts = inspect(&body);
    if let Some(facts) = &facts {
        body_facts_hold(&body, facts);
    }
    let id = identify(&headers, facts.as_ref());
    let from_header = HEADERS[..5].iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?.trim();
        (!value.is_empty()).then(|| (value.to_string(), SessionSource::Header(name)))
    });
    let expected = from_header.or_else(|| {
        let facts = facts.as_ref()?;
        let key = facts.prompt_cache_key.clone();
        key.map(|k| (k, SessionSource::PromptCacheKey)).or_else(|| {
            let meta = facts.metadata_session_id.clone();
            meta.map(|m| (m, SessionSource::MetadataSessionId))
        })
    });
    assert_eq!(id.map(|i| (i.value, i.source)), expected, "{headers:?}");
}

fn body_facts_hold(body: &[u8], facts: &BodyFacts) {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    assert_eq!(first, Some(&b'{'), "facts only from an object");
    for text in [
        &facts.prompt_cache_key,
        &facts.metadata_session_id,
        &facts.service_tier,
        &facts.reasoning_effort,
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            !text.is_empty() && text.trim() == text,
            "{text:?} is blank or padded"
        );
    }
    assert_eq!(
        facts.model.is_some(),
        facts.model_span.is_some(),
        "{facts:?}"
    );
    let (Some(model), Some(span)) = (&facts.model, &facts.model_span) else {
        return;
    };
    let quoted: String = serde_json::from_slice(&body[span.clone()]).expect("the span is a string");
    assert_eq!(&quoted, model, "the span holds the model");

    for replacement in ["gpt-5.1", "", "relay/\"odd\"\n\u{7f}é"] {
        let out = replace_model(body, span.clone(), replacement);
        let quoted = serde_json::to_string(replacement).expect("a string");
        assert_eq!(&out[..span.start], &body[..span.start]);
        assert_eq!(
            &out[span.start..span.start + quoted.len()],
            quoted.as_bytes()
        );
        assert_eq!(&out[span.start + quoted.len()..], &body[span.end..]);
        let again = inspect(&out).expect("still an object");
        let new_span = span.start..span.start + quoted.len();
        let mut expected = BodyFacts {
            model: Some(replacement.to_string()),
            model_span: Some(new_span.clone()),
            ..facts.clone()
        };
        // The members after the model moved by what its value grew or shrank.
        let moved = |member: &Option<std::ops::Range<usize>>| {
            member.clone().map(|r| match r.start >= span.end {
                true => r.start + quoted.len() - span.len()..r.end + quoted.len() - span.len(),
                false => r,
            })
        };
        expected.top.model = Some(new_span);
        expected.top.service_tier = moved(&facts.top.service_tier);
        expected.top.reasoning = moved(&facts.top.reasoning);
        assert_eq!(again, expected, "only the model changed");
    }
}

/// A Responses request body with some of the fields the proxy reads, in any order, with
/// other fields around them.
fn generated_body(input: &mut Input) -> Vec<u8> {
    let text = |input: &mut Input| -> Value {
        match input.byte() % 6 {
            0 => json!(input.pick(&VALUES)),
            1 => json!(String::from_utf8_lossy(input.bytes(10))),
            2 => json!(null),
            3 => json!(input.byte()),
            4 => json!({"id": "x"}),
            _ => json!(["a"]),
        }
    };
    let mut fields: Vec<(&str, Value)> = Vec::new();
    for _ in 0..input.below(8) {
        let field = match input.byte() % 10 {
            0 => ("model", text(input)),
            1 => ("stream", json!(input.chance(50))),
            2 => ("prompt_cache_key", text(input)),
            3 => ("metadata", json!({"session_id": text(input), "other": 1})),
            4 => ("service_tier", text(input)),
            5 => ("reasoning", json!({"effort": text(input)})),
            6 => ("previous_response_id", text(input)),
            7 => (
                "input",
                json!([{"type": "message", "content": "model"}, {"type": "reasoning", "encrypted_content": "gAAA"}]),
            ),
            8 => ("input", json!("hi")),
            _ => ("instructions", json!("\"model\":\"inner\"")),
        };
        if fields.iter().all(|(k, _)| *k != field.0) {
            fields.push(field);
        }
    }
    let mut out = String::from(if input.chance(30) { " \n{" } else { "{" });
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let space = if input.chance(30) { " " } else { "" };
        out.push_str(&format!("{key:?}{space}:{space}{value}"));
    }
    out.push('}');
    // The generated object is valid JSON; the `Map` round trip checks that.
    debug_assert!(
        serde_json::from_str::<Map<String, Value>>(&out).is_ok(),
        "{out}"
    );
    out.into_bytes()
}
