//! Responses the proxy writes itself, when no upstream response can be passed on.

use std::path::Path;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use super::record::{Attempt, AttemptOutcome};
use super::relay_body::ProxyBody;
use super::sse::FailedEvent;

/// Seconds Codex is told to wait when every upstream failed and none said how long to wait.
const DEFAULT_RETRY_AFTER_SECS: u64 = 2;

/// A JSON error in the OpenAI shape (`{"error":{…}}`), so clients print the message.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    json_response(
        status,
        json!({ "error": { "type": "codex_helper_error", "code": code, "message": message } }),
    )
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A request refused before any upstream is tried, with what the client is told.
pub struct Refusal {
    pub status: StatusCode,
    /// A stable name for scripts, e.g. `invalid_content_encoding`.
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn to_response(&self) -> Response<ProxyBody> {
        json_error(self.status, self.code, &self.message)
    }
}

/// The answer when no relay is configured at all.
pub fn no_relay(config_path: &Path) -> Refusal {
    let message = format!(
        "codex-helper has no relay to send this request to. Add one with \
         `codex-helper provider add ID --base-url URL --auth-token-env VAR`, or add a \
         [codex.providers.ID] table with base_url and auth_token_env to {} and restart codex-helper.",
        config_path.display()
    );
    Refusal {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "no_relay_configured",
        message,
    }
}

/// How long Codex should wait before retrying: the shortest `Retry-After` an upstream gave,
/// clamped to 1–60 s.
pub fn retry_after_secs(attempts: &[Attempt]) -> u64 {
    attempts
        .iter()
        .filter_map(|a| match a.outcome {
            AttemptOutcome::FailedStatus {
                retry_after_secs, ..
            } => retry_after_secs,
            _ => None,
        })
        .min()
        .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
        .clamp(1, 60)
}

/// The answer when every candidate failed before sending a response.
///
/// A streaming Codex turn gets HTTP 200 with one `response.failed` event whose code
/// (`rate_limit_exceeded`) Codex retries, and whose message says when (Codex reads
/// "try again in Ns"). Anything else gets a 502 that lists every attempt.
pub fn all_failed(codex_stream: bool, attempts: &[Attempt]) -> Response<ProxyBody> {
    let retry_after = retry_after_secs(attempts);
    let tried: Vec<String> = attempts.iter().map(Attempt::summary).collect();
    let message = format!(
        "codex-helper: every upstream failed ({}); try again in {retry_after}s",
        if tried.is_empty() {
            "no candidate could be tried".to_string()
        } else {
            tried.join("; ")
        }
    );
    if codex_stream {
        let event = FailedEvent {
            code: "rate_limit_exceeded",
            message: &message,
            helper_error: "all_upstreams_failed",
            retry_after_secs: Some(retry_after),
        };
        let mut response = Response::new(ProxyBody::full(event.to_sse()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return response;
    }
    let mut response = json_response(
        StatusCode::BAD_GATEWAY,
        json!({ "error": {
            "type": "codex_helper_error",
            "code": "all_upstreams_failed",
            "message": message,
            "attempts": attempts,
        }}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}
