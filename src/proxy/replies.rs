//! Responses the proxy writes itself, when no upstream response can be passed on.

use std::path::Path;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use super::record::{Attempt, AttemptOutcome, Outcome, RecordGuard};
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

pub fn json_response(status: StatusCode, body: serde_json::Value) -> Response<ProxyBody> {
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
    /// Answers with this refusal and finishes `record` as rejected, with its status and why.
    pub fn answer(self, mut record: RecordGuard) -> Response<ProxyBody> {
        record.status = Some(self.status.as_u16());
        let response = self.to_response();
        record.error = Some(self.message);
        record.finish(Outcome::Rejected);
        response
    }

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

/// The answer to a WebSocket upgrade the proxy cannot bridge: 426, which Codex takes as "use
/// HTTP" at once.
pub fn websocket_unsupported() -> Refusal {
    Refusal {
        status: StatusCode::UPGRADE_REQUIRED,
        code: "websocket_not_supported",
        message: "the relay does not accept the Responses WebSocket transport (or none can be \
                  reached); use HTTP (Codex falls back to it by itself)"
            .into(),
    }
}

/// How long Codex should wait before retrying: `hint` (from cooldowns) or the shortest
/// `Retry-After` an upstream gave, clamped to 1–60 s.
fn retry_after_secs(hint: Option<u64>, attempts: &[Attempt]) -> u64 {
    let from_upstreams = attempts
        .iter()
        .filter_map(|a| match a.outcome {
            AttemptOutcome::FailedStatus {
                retry_after_secs, ..
            } => retry_after_secs,
            _ => None,
        })
        .min();
    hint.or(from_upstreams)
        .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
        .clamp(1, 60)
}

/// A `response.failed` event Codex retries (`rate_limit_exceeded`), as a whole SSE reply.
pub(super) fn retryable_event(
    message: &str,
    helper_error: &str,
    retry_after: u64,
) -> Response<ProxyBody> {
    let event = FailedEvent {
        code: "rate_limit_exceeded",
        message,
        helper_error,
        retry_after_secs: Some(retry_after),
    };
    let mut response = Response::new(ProxyBody::full(event.to_sse()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The answer when no candidate could take the request: every one was skipped (cooldown,
/// limits, credentials, …) or failed.
///
/// A streaming Codex turn gets HTTP 200 with one `response.failed` event whose code
/// (`rate_limit_exceeded`) Codex retries, and whose message says when (Codex reads
/// "try again in Ns"). Anything else gets a 502 when upstreams were tried and failed, or a 503
/// when none could be tried, with `Retry-After` and a JSON body listing every attempt and
/// every skipped candidate with its reason.
pub fn unroutable(
    codex_stream: bool,
    attempts: &[Attempt],
    skipped: &[(String, String)],
    retry_hint: Option<u64>,
) -> Response<ProxyBody> {
    let retry_after = retry_after_secs(retry_hint, attempts);
    let mut parts: Vec<String> = attempts.iter().map(Attempt::summary).collect();
    parts.extend(
        skipped
            .iter()
            .map(|(upstream, why)| format!("{upstream}: {why}")),
    );
    let (code, what) = if attempts.is_empty() {
        ("route_unavailable", "no upstream is available")
    } else {
        ("all_upstreams_failed", "every upstream failed")
    };
    let message = format!(
        "codex-helper: {what} ({}); try again in {retry_after}s",
        if parts.is_empty() {
            "no candidate for this request".to_string()
        } else {
            parts.join("; ")
        }
    );
    if codex_stream {
        return retryable_event(&message, code, retry_after);
    }
    let status = if attempts.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_GATEWAY
    };
    let skipped: Vec<serde_json::Value> = skipped
        .iter()
        .map(|(upstream, why)| json!({ "upstream": upstream, "reason": why }))
        .collect();
    let mut response = json_response(
        status,
        json!({ "error": {
            "type": "codex_helper_error",
            "code": code,
            "message": message,
            "attempts": attempts,
            "skipped": skipped,
        }}),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// The answer when the session's relay is unavailable and the request carries state no other
/// relay can read (or the affinity policy is `hard`). `retry_after` is set when the reason
/// passes with time: Codex is then asked to retry; otherwise the error is final.
pub fn continuity_broken(
    codex_stream: bool,
    upstream: &str,
    reason: &str,
    retry_after: Option<u64>,
    attempts: &[Attempt],
) -> Response<ProxyBody> {
    let code = "session_relay_unavailable";
    match retry_after {
        Some(hint) => {
            let secs = retry_after_secs(Some(hint), attempts);
            let message = format!(
                "codex-helper: this session is bound to relay {upstream}, which is {reason}; its state cannot move to another relay, so the request waits for it: try again in {secs}s"
            );
            if codex_stream {
                return retryable_event(&message, code, secs);
            }
            let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, code, &message);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
        None => {
            let message = format!(
                "codex-helper: this session is bound to relay {upstream}, which is {reason}; its state cannot move to another relay. Fix that relay, or start a new session."
            );
            json_error(StatusCode::CONFLICT, code, &message)
        }
    }
}
