//! The first phases of a request: receive (the body, capped and timed), decode (its
//! `Content-Encoding`), identify (what the body says: model, stream flag, relay-bound state,
//! session). Their result is a [`ClientRequest`] the later phases only read.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::BodyExt;

use super::ProxyState;
use super::body_budget::{BodyBudget, BodyHold, OverBudget};
use super::coding::{self, DecodeError};
use super::inspect::{self, BodyFacts};
use super::replies::Refusal;
use super::session;
use crate::config::model::{BodyEncodingMode, ProxySettings};

/// Reads the whole request body, up to `proxy.max_request_body_bytes`, within
/// `proxy.request_body_timeout_ms` (a stalled upload must not hold its connection forever),
/// taking its bytes from `budget` as they arrive; the hold gives them back when dropped.
pub async fn read_body<B>(
    body: B,
    settings: &ProxySettings,
    budget: &BodyBudget,
) -> Result<(Bytes, BodyHold), Refusal>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = usize::try_from(settings.max_request_body_bytes).unwrap_or(usize::MAX);
    let timeout = Duration::from_millis(settings.request_body_timeout_ms);
    let too_large = || Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "request_body_too_large",
        message: format!(
            "request body is larger than proxy.max_request_body_bytes ({limit} bytes)"
        ),
    };
    // A `Content-Length` past the cap is refused before a byte of the body is read.
    if usize::try_from(body.size_hint().lower()).map_or(true, |least| least > limit) {
        return Err(too_large());
    }
    let read = async {
        let mut body = std::pin::pin!(body);
        let (mut chunks, mut length, mut hold) = (Vec::new(), 0, BodyHold::default());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "request_body_read_error",
                message: format!("could not read the request body: {e}"),
            })?;
            // Trailers say nothing the proxy forwards.
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            length += chunk.len();
            if length > limit {
                return Err(too_large());
            }
            budget.take(&mut hold, chunk.len()).map_err(over_budget)?;
            chunks.push(chunk);
        }
        Ok((joined(chunks, length), hold))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(Refusal {
                status: StatusCode::REQUEST_TIMEOUT,
                code: "request_body_timeout",
                message: format!(
                    "the request body did not arrive within {} ms (proxy.request_body_timeout_ms)",
                    timeout.as_millis()
                ),
            })
        })
}

/// The chunks of a body as one buffer (the one chunk itself when there is only one).
fn joined(mut chunks: Vec<Bytes>, length: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut whole = bytes::BytesMut::with_capacity(length);
    for chunk in chunks {
        whole.extend_from_slice(&chunk);
    }
    whole.freeze()
}

fn over_budget(over: OverBudget) -> Refusal {
    Refusal {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "request_bodies_over_budget",
        message: over.to_string(),
    }
}

/// Undoes the body's `Content-Encoding` (unless in passthrough mode). Returns the body and
/// whether it was decoded.
///
/// Decoding runs on a blocking thread: a body can expand to the decoded-size cap, and the
/// proxy's event-loop threads must not wait for that. Only a few decodes run at once
/// ([`ProxyState::decode_slots`]), which bounds the CPU a crowd of compressed bombs takes; a
/// request waits for a slot as long as it may wait for its body. The slots do not bound the
/// memory of decoded bodies afterwards: what a decoded body adds to its raw one is taken from
/// the budget that `hold` holds from (see [`super::body_budget`]).
pub async fn decode_body(
    state: &ProxyState,
    headers: &HeaderMap,
    raw: Bytes,
    hold: &mut BodyHold,
) -> Result<(Bytes, bool), Refusal> {
    let refusal = |e: DecodeError| {
        let (status, code) = match e {
            DecodeError::TooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "request_body_too_large")
            }
            _ => (StatusCode::BAD_REQUEST, "invalid_content_encoding"),
        };
        Refusal {
            status,
            code,
            message: e.to_string(),
        }
    };
    if state.settings.request_body_encoding == BodyEncodingMode::Passthrough {
        return Ok((raw, false));
    }
    let encodings = coding::listed(headers).map_err(refusal)?;
    if encodings.is_empty() {
        return Ok((raw, false));
    }
    let wait = Duration::from_millis(state.settings.request_body_timeout_ms);
    let Ok(Ok(slot)) = tokio::time::timeout(wait, state.decode_slots.acquire()).await else {
        return Err(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "decoder_busy",
            message: format!(
                "codex-helper is busy decompressing other request bodies; none finished within {} ms",
                wait.as_millis()
            ),
        });
    };
    let limit = usize::try_from(state.settings.max_decoded_body_bytes).unwrap_or(usize::MAX);
    let raw_length = raw.len();
    let decoded = tokio::task::spawn_blocking(move || coding::decode(raw, &encodings, limit))
        .await
        .map_err(|e| Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            message: format!("decoding the request body failed: {e}"),
        })?;
    drop(slot);
    let body = decoded.map_err(refusal)?;
    state
        .body_budget
        .take(hold, body.len().saturating_sub(raw_length))
        .map_err(over_budget)?;
    Ok((body, true))
}

/// The client's request once received, decoded and identified.
pub struct ClientRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// True when the proxy removed a `Content-Encoding`.
    pub body_decoded: bool,
    /// Present when the body is a readable JSON object.
    pub facts: Option<BodyFacts>,
    pub session: Option<session::SessionId>,
    /// The client asked for an event stream.
    pub streaming: bool,
    /// A streaming Codex turn (`POST …/responses`): failures are answered as `response.failed`.
    pub codex_stream: bool,
}

impl ClientRequest {
    /// A Codex turn whose body says `"stream": true`: only an event stream answers it (a
    /// client that merely accepts one may also take JSON).
    pub fn needs_events(&self) -> bool {
        self.codex_stream && self.facts.as_ref().and_then(|f| f.stream) == Some(true)
    }

    pub fn prepare(
        method: Method,
        path_and_query: String,
        headers: HeaderMap,
        body: Bytes,
        body_decoded: bool,
    ) -> Self {
        let still_encoded = !body_decoded && !coding::listed(&headers).is_ok_and(|e| e.is_empty());
        let facts = if still_encoded {
            None
        } else {
            inspect::inspect(&body)
        };
        let session = session::identify(&headers, facts.as_ref());
        let accepts_sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("text/event-stream")));
        let streaming = accepts_sse || facts.as_ref().and_then(|f| f.stream) == Some(true);
        let path = path_and_query.split('?').next().unwrap_or_default();
        let codex_stream = streaming
            && method == Method::POST
            && path.trim_end_matches('/').ends_with("/responses");
        Self {
            method,
            path_and_query,
            headers,
            body,
            body_decoded,
            facts,
            session,
            streaming,
            codex_stream,
        }
    }
}
