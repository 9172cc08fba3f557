//! The life of one request, as named phases:
//!
//! 1. [`read_body`] and [`decode_body`]: the client's bytes, decompressed and capped.
//! 2. [`ClientRequest::prepare`]: what the body says (model, stream flag) and the session.
//! 3. plan: the route plan's candidates, in order.
//! 4. for each candidate, [`try_upstream`]: build the request, send it, classify the answer;
//!    a connect error, a timeout before headers, a 5xx or a 429 moves on to the next one.
//! 5. [`relay_response`]: stream the chosen answer back through the tap.
//! 6. record: the [`RequestRecord`] is finished when the body ends (or by the reply writers).
//!
//! Failover happens only before the first byte reaches the client; after that a broken stream
//! is ended with `response.failed` by the relay body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use tokio_util::io::{ReaderStream, StreamReader};

use super::ProxyState;
use super::decode::{self, DecodeError};
use super::headers::{client_response_headers, upstream_request_headers};
use super::inspect::{self, BodyFacts};
use super::record::{Attempt, AttemptOutcome, Outcome, RecordGuard, RequestRecord};
use super::relay_body::{ChunkStream, ProxyBody, RelayBody, error_chain};
use super::replies::{self, Refusal};
use super::session;
use crate::config::model::BodyEncodingMode;
use crate::routing::Upstream;
use crate::routing::model_map::{map_model, supports_model};

/// How much of a failed upstream body is kept for the attempt record.
const ERROR_PREVIEW_CHARS: usize = 300;
/// How much of a failed upstream body is read at most (the rest is dropped with the connection).
const ERROR_BODY_MAX: usize = 64 * 1024;

/// Handles one client request from start to end. Never fails: every problem becomes a response.
pub async fn handle<B>(state: Arc<ProxyState>, request: Request<B>) -> Response<ProxyBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut record = RecordGuard::new(
        RequestRecord::new(
            state.next_trace_id(),
            parts.method.to_string(),
            parts.uri.path().to_string(),
        ),
        state.sink.clone(),
    );
    record.client = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // Phase 1: body.
    let raw = match read_body(body, state.settings.max_request_body_bytes).await {
        Ok(raw) => raw,
        Err(refusal) => return reject(record, refusal),
    };
    let mode = state.settings.request_body_encoding;
    let (body, body_decoded) = match decode_body(
        &parts.headers,
        raw,
        mode,
        state.settings.max_decoded_body_bytes,
    )
    .await
    {
        Ok(decoded) => decoded,
        Err(refusal) => return reject(record, refusal),
    };

    // Phase 2: what the request is.
    let request = ClientRequest::prepare(
        parts.method,
        path_and_query,
        parts.headers,
        body,
        body_decoded,
    );
    record.session = request.session.clone();
    record.streaming = request.streaming;
    record.model_requested = request.facts.as_ref().and_then(|f| f.model.clone());

    // Phase 3: plan.
    let candidates = &state.plan.candidates;
    if candidates.is_empty() {
        return reject(record, replies::no_relay(&state.config_path));
    }

    // Phase 4: try each candidate until one answers.
    for upstream in candidates {
        let started = Instant::now();
        let (outcome, answer) = try_upstream(&state, &request, upstream).await;
        record.attempts.push(Attempt {
            provider: upstream.provider.clone(),
            endpoint: upstream.endpoint.clone(),
            outcome,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        if let Some(answer) = answer {
            record.provider = Some(upstream.provider.clone());
            record.endpoint = Some(upstream.endpoint.clone());
            record.model_sent = answer.model_sent.clone();
            // Phase 5: relay.
            return relay_response(&state, answer, record);
        }
    }

    // Every candidate failed.
    let response = replies::all_failed(request.codex_stream, &record.attempts);
    record.status = Some(response.status().as_u16());
    record.error = Some("every upstream failed".into());
    record.finish(Outcome::AllUpstreamsFailed);
    response
}

/// Finishes the record of a request refused before any upstream was tried.
fn reject(mut record: RecordGuard, refusal: Refusal) -> Response<ProxyBody> {
    record.status = Some(refusal.status.as_u16());
    let response = refusal.to_response();
    record.error = Some(refusal.message);
    record.finish(Outcome::Rejected);
    response
}

/// Reads the whole request body, up to `limit` bytes.
async fn read_body<B>(body: B, limit: u64) -> Result<Bytes, Refusal>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "request_body_too_large",
            message: format!(
                "request body is larger than proxy.max_request_body_bytes ({limit} bytes)"
            ),
        }),
        Err(e) => Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "request_body_read_error",
            message: format!("could not read the request body: {e}"),
        }),
    }
}

/// Undoes the body's `Content-Encoding` (unless in passthrough mode). Returns the body and
/// whether it was decoded. Decoding runs on a blocking thread: a body can expand to the
/// decoded-size cap, and the proxy's one event-loop thread must not wait for that.
async fn decode_body(
    headers: &HeaderMap,
    raw: Bytes,
    mode: BodyEncodingMode,
    limit: u64,
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
    if mode == BodyEncodingMode::Passthrough {
        return Ok((raw, false));
    }
    let encodings = decode::listed_encodings(headers).map_err(refusal)?;
    if encodings.is_empty() {
        return Ok((raw, false));
    }
    let decoded =
        tokio::task::spawn_blocking(move || decode::decode(raw, &encodings, limit as usize))
            .await
            .map_err(|e| Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal_error",
                message: format!("decoding the request body failed: {e}"),
            })?;
    decoded.map(|body| (body, true)).map_err(refusal)
}

/// The client's request after phases 1–2.
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
    pub fn prepare(
        method: Method,
        path_and_query: String,
        headers: HeaderMap,
        body: Bytes,
        body_decoded: bool,
    ) -> Self {
        let still_encoded =
            !body_decoded && !decode::listed_encodings(&headers).is_ok_and(|e| e.is_empty());
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

/// Tries one candidate. Returns the attempt's outcome and, when the response is to be passed
/// to the client, the response with the model sent upstream.
async fn try_upstream(
    state: &ProxyState,
    request: &ClientRequest,
    upstream: &Upstream,
) -> (AttemptOutcome, Option<Answer>) {
    if let Some(var) = upstream.credential.missing_env.first() {
        let reason = format!("environment variable {var} is not set");
        return (AttemptOutcome::Skipped { reason }, None);
    }
    let requested = request.facts.as_ref().and_then(|f| f.model.as_deref());
    if let Some(model) = requested {
        if !supports_model(&upstream.supported_models, &upstream.model_mapping, model) {
            let reason = format!("model {model} is not in supported_models");
            return (AttemptOutcome::Skipped { reason }, None);
        }
    }

    // Build.
    let mapped = requested.and_then(|m| map_model(&upstream.model_mapping, m));
    let span = request.facts.as_ref().and_then(|f| f.model_span.clone());
    let body = match (&mapped, span) {
        (Some(model), Some(span)) => inspect::replace_model(&request.body, span, model),
        _ => request.body.clone(),
    };
    let model_sent = mapped.or_else(|| requested.map(str::to_string));
    let url = upstream.base_url.join(&request.path_and_query);
    let headers =
        upstream_request_headers(&request.headers, &upstream.credential, request.body_decoded);
    let outgoing = state
        .client
        .request(request.method.clone(), url)
        .headers(headers)
        .body(body);

    // Send, bounded by the header timeout.
    let header_timeout = Duration::from_millis(state.settings.response_header_timeout_ms);
    let response = match tokio::time::timeout(header_timeout, outgoing.send()).await {
        Err(_) => {
            return (
                AttemptOutcome::Timeout {
                    after_ms: header_timeout.as_millis() as u64,
                },
                None,
            );
        }
        Ok(Err(e)) => {
            let is_connect = e.is_connect();
            let error = error_chain(&e.without_url());
            let outcome = if is_connect {
                AttemptOutcome::ConnectError { error }
            } else {
                AttemptOutcome::TransportError { error }
            };
            return (outcome, None);
        }
        Ok(Ok(response)) => response,
    };

    // Classify.
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after_secs = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body_preview = error_preview(response).await;
        return (
            AttemptOutcome::FailedStatus {
                status: status.as_u16(),
                retry_after_secs,
                body_preview,
            },
            None,
        );
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let sse = content_type.starts_with("text/event-stream");
    let json = content_type.contains("json");
    let codec = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .and_then(Codec::parse);
    let headers = response.headers().clone();
    // A small, complete body is read here, before the client has seen anything: it goes out
    // in one write with its length, and a connection that breaks while reading it can still
    // fail over. Streams are never held back.
    let small = response
        .content_length()
        .is_some_and(|len| len <= WHOLE_BODY_MAX);
    let body = if small && !sse && codec.is_none() && request.method != Method::HEAD {
        match tokio::time::timeout(header_timeout, response.bytes()).await {
            Ok(Ok(bytes)) => AnswerBody::Whole(bytes),
            Ok(Err(e)) => {
                let error = error_chain(&e.without_url());
                return (AttemptOutcome::TransportError { error }, None);
            }
            Err(_) => {
                let after_ms = header_timeout.as_millis() as u64;
                return (AttemptOutcome::Timeout { after_ms }, None);
            }
        }
    } else {
        AnswerBody::Stream(body_stream(response, codec))
    };
    let answer = Answer {
        status,
        headers,
        body,
        sse,
        json,
        body_decoded: codec.is_some(),
        model_sent,
    };
    (
        AttemptOutcome::Responded {
            status: status.as_u16(),
        },
        Some(answer),
    )
}

/// Bodies up to this size with a known length are read whole before answering.
const WHOLE_BODY_MAX: u64 = 256 * 1024;

/// An upstream response chosen to go to the client.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: AnswerBody,
    sse: bool,
    json: bool,
    /// The proxy undoes the upstream's `Content-Encoding`.
    body_decoded: bool,
    model_sent: Option<String>,
}

enum AnswerBody {
    Whole(Bytes),
    Stream(ChunkStream),
}

/// A short, single-line preview of a failed upstream body.
async fn error_preview(response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    let read = async {
        while let Ok(Some(chunk)) = stream.try_next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let text = String::from_utf8_lossy(&body);
    let mut preview: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = preview.char_indices().nth(ERROR_PREVIEW_CHARS) {
        preview.truncate(cut);
        preview.push('…');
    }
    preview
}

/// Phase 5: passes an upstream response to the client, its body through the tap.
fn relay_response(
    state: &ProxyState,
    answer: Answer,
    mut record: RecordGuard,
) -> Response<ProxyBody> {
    record.status = Some(answer.status.as_u16());
    let headers = client_response_headers(
        &answer.headers,
        answer.body_decoded,
        record.model_requested.as_deref(),
    );
    let idle = match state.settings.stream_idle_timeout_ms {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    };
    let (stream, exact_len): (ChunkStream, _) = match answer.body {
        AnswerBody::Whole(bytes) => {
            let len = bytes.len() as u64;
            (
                Box::pin(futures_util::stream::once(async move { Ok(bytes) })),
                Some(len),
            )
        }
        AnswerBody::Stream(stream) => (stream, None),
    };
    let body = RelayBody::new(stream, exact_len, answer.sse, answer.json, idle, record);
    let mut reply = Response::new(ProxyBody::Relay(Box::new(body)));
    *reply.status_mut() = answer.status;
    *reply.headers_mut() = headers;
    reply
}

/// A response `Content-Encoding` the proxy undoes. The proxy asks upstreams for `identity`,
/// but some compress anyway; decoding lets the tap read usage and lets a broken stream be
/// ended with a readable event.
#[derive(Debug, Clone, Copy)]
enum Codec {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Codec {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "deflate" => Some(Self::Deflate),
            "br" => Some(Self::Brotli),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }
}

fn body_stream(response: reqwest::Response, codec: Option<Codec>) -> ChunkStream {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
    let raw = response
        .bytes_stream()
        .map_err(|e| std::io::Error::other(error_chain(&e.without_url())));
    let Some(codec) = codec else {
        return Box::pin(raw);
    };
    let reader = StreamReader::new(raw);
    const CHUNK: usize = 16 * 1024;
    match codec {
        Codec::Gzip => Box::pin(ReaderStream::with_capacity(GzipDecoder::new(reader), CHUNK)),
        Codec::Deflate => Box::pin(ReaderStream::with_capacity(ZlibDecoder::new(reader), CHUNK)),
        Codec::Brotli => Box::pin(ReaderStream::with_capacity(
            BrotliDecoder::new(reader),
            CHUNK,
        )),
        Codec::Zstd => Box::pin(ReaderStream::with_capacity(ZstdDecoder::new(reader), CHUNK)),
    }
}
