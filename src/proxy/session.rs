//! Which Codex session (thread) a request belongs to.
//!
//! Codex 0.171.0 sends `session-id` and `thread-id` headers equal to the thread id, and the same
//! value as the body's `prompt_cache_key`; older clients and other tools use other names.

use http::{HeaderMap, HeaderName};

use super::inspect::BodyFacts;

/// Header names tried in order; the first non-empty value wins. Each is kept both as a
/// `HeaderName` (looked up without parsing the name again) and as the `&'static str` a
/// [`SessionSource::Header`] records.
const SESSION_HEADERS: [(HeaderName, &str); 5] = [
    (HeaderName::from_static("session_id"), "session_id"),
    (HeaderName::from_static("session-id"), "session-id"),
    (
        HeaderName::from_static("conversation_id"),
        "conversation_id",
    ),
    (HeaderName::from_static("thread-id"), "thread-id"),
    (HeaderName::from_static("x-session-id"), "x-session-id"),
];

pub use crate::record::session::{SessionId, SessionSource};

/// Finds the session id: headers first, then the body's `prompt_cache_key`, then
/// `metadata.session_id`.
pub fn identify(headers: &HeaderMap, body: Option<&BodyFacts>) -> Option<SessionId> {
    for (header, name) in SESSION_HEADERS {
        let value = headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        if !value.is_empty() {
            return Some(SessionId {
                value: value.to_string(),
                source: SessionSource::Header(name),
            });
        }
    }
    let body = body?;
    if let Some(key) = &body.prompt_cache_key {
        return Some(SessionId {
            value: key.clone(),
            source: SessionSource::PromptCacheKey,
        });
    }
    body.metadata_session_id.as_ref().map(|id| SessionId {
        value: id.clone(),
        source: SessionSource::MetadataSessionId,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_header_records_its_own_name() {
        for (header, name) in SESSION_HEADERS {
            assert_eq!(header.as_str(), name);
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn each_header_is_a_source_in_order() {
        let all = [
            ("session_id", "a"),
            ("session-id", "b"),
            ("conversation_id", "c"),
            ("thread-id", "d"),
            ("x-session-id", "e"),
        ];
        for skip in 0..all.len() {
            let id = identify(&headers(&all[skip..]), None).unwrap();
            assert_eq!(id.value, all[skip].1);
            assert_eq!(id.source.to_string(), format!("header:{}", all[skip].0));
        }
    }

    #[test]
    fn blank_headers_fall_through_to_the_body() {
        let facts = BodyFacts {
            prompt_cache_key: Some("pck".into()),
            metadata_session_id: Some("meta".into()),
            ..Default::default()
        };
        let id = identify(&headers(&[("session-id", "  ")]), Some(&facts)).unwrap();
        assert_eq!(
            (id.value.as_str(), id.source),
            ("pck", SessionSource::PromptCacheKey)
        );
        let only_meta = BodyFacts {
            metadata_session_id: Some("meta".into()),
            ..Default::default()
        };
        let id = identify(&HeaderMap::new(), Some(&only_meta)).unwrap();
        assert_eq!(id.source.to_string(), "body:metadata.session_id");
        assert_eq!(
            identify(&HeaderMap::new(), Some(&BodyFacts::default())),
            None
        );
    }
}
