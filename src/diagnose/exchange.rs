//! One diagnostic request to one endpoint, and its answer read whole: the relay's own
//! credential and outbound route, no redirect followed, no content coding asked for, the
//! whole exchange bounded in time and the body capped. Every text that leaves here (errors,
//! snippets) has the configured secrets and the endpoint's own key masked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, header};
use serde::Serialize;
use serde_json::Value;

use crate::proxy::ProxyState;
use crate::proxy::coding::read_capped;
use crate::proxy::headers::upstream_request_headers;
use crate::redact::Redactor;
use crate::routing::Upstream;

/// How long and how much one exchange may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub body_cap: usize,
}

/// What a diagnostic sent, as the evidence keeps it: never a credential or header value, only
/// the method, path and what the body was for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Sent {
    pub method: String,
    pub path: String,
    /// The body's shape in words (`"no model: a validation probe"`); the fixed probe texts are
    /// the only text ever sent.
    pub shape: String,
}

/// A relay's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// Where a redirect pointed (its host only).
    pub location_host: Option<String>,
    /// At most the cap; `truncated` says whether more came.
    pub body: Bytes,
    pub truncated: bool,
}

/// How an exchange ended.
#[derive(Debug, Clone)]
pub enum Exchanged {
    Reply(Reply),
    /// No answer: the connection failed or the time ran out.
    Failed {
        error: String,
        timed_out: bool,
    },
}

/// One request to `upstream` at `path` (a Codex path such as `/v1/responses`, joined to the
/// base URL as the proxy joins it) with `extra` headers and an optional JSON body.
pub async fn exchange(
    state: &ProxyState,
    upstream: &Upstream,
    method: Method,
    path: &str,
    extra: &[(&'static str, &'static str)],
    body: Option<&Value>,
    limits: Limits,
) -> (Exchanged, Duration) {
    let started = Instant::now();
    let scrub = scrubber(state);
    let exchanged = match tokio::time::timeout(
        limits.timeout,
        send(state, upstream, method, path, extra, body, limits.body_cap),
    )
    .await
    {
        Ok(Ok(reply)) => Exchanged::Reply(reply),
        Ok(Err(error)) => Exchanged::Failed {
            error: scrub.redact(&error).into_owned(),
            timed_out: false,
        },
        Err(_) => Exchanged::Failed {
            error: format!(
                "no complete answer within {} s",
                limits.timeout.as_secs_f64()
            ),
            timed_out: true,
        },
    };
    (exchanged, started.elapsed())
}

/// Masks every configured secret: the plan's redactor knows each relay's key and each
/// outbound proxy's password.
pub fn scrubber(state: &ProxyState) -> Arc<Redactor> {
    state.plan().redactor.clone()
}

async fn send(
    state: &ProxyState,
    upstream: &Upstream,
    method: Method,
    path: &str,
    extra: &[(&'static str, &'static str)],
    body: Option<&Value>,
    cap: usize,
) -> Result<Reply, String> {
    let client = state.client_for(upstream).map_err(|e| format!("{e:#}"))?;
    // The relay's own key, set by the one writer of relay credentials (identity asked for).
    let mut headers = upstream_request_headers(
        &HeaderMap::new(),
        &upstream.credential,
        false,
        state.client().auth(),
    );
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("codex-helper/", env!("CARGO_PKG_VERSION"))),
    );
    for (name, value) in extra {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    let bytes = match body {
        Some(body) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(upstream.base_url.join(path))
        .body(bytes)
        .map_err(|_| "the relay's URL is not usable".to_string())?;
    *request.headers_mut() = headers;
    let response = client
        .send(request)
        .await
        .map_err(|e| format!("cannot reach the relay: {}", e.message))?;
    let (head, stream) = response.into_parts();
    let content_type = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let location_host = head
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.parse::<http::Uri>().ok())
        .and_then(|uri| uri.host().map(str::to_string));
    let mut body = BytesMut::new();
    read_capped(stream, &mut body, cap)
        .await
        .map_err(|e| format!("the answer broke off: {e}"))?;
    let truncated = body.len() > cap;
    body.truncate(cap);
    Ok(Reply {
        status: head.status.as_u16(),
        content_type,
        location_host,
        body: body.freeze(),
        truncated,
    })
}

/// At most `chars` characters of `text` on one line, control characters dropped.
pub fn snippet(text: &str, chars: usize) -> String {
    let joined = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut kept: String = joined.chars().take(chars).collect();
    if joined.chars().nth(chars).is_some() {
        kept.push('…');
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_one_short_line() {
        assert_eq!(snippet("a\n\tb\u{7}c  d", 10), "a b c d");
        assert_eq!(snippet("abcdef", 3), "abc…");
        assert_eq!(snippet("", 3), "");
    }
}
