//! One attempt against one upstream: build the request, send it, and classify what came back
//! before the client sees any of it.
//!
//! A 2xx event stream is held until its first real event (bounded by the first-event
//! timeout), so a `response.failed` inside a 200, an empty stream, or a stall before any
//! output is a failed attempt the failover loop can act on, invisibly to the client.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, Method, StatusCode, header};

use super::coding;
use super::headers::upstream_request_headers;
use super::inspect;
use super::loops;
use super::receive::ClientRequest;
use super::record::AttemptOutcome;
use super::relay_body::{ChunkStream, error_chain};
use super::sse::{FirstEvent, SseTap};
use super::{Plan, ProxyState};
use crate::routing::Upstream;
use crate::routing::model_map::map_model;
use crate::routing::retry::{Failure, FailureClass, classify_status, retry_after_ms};

/// How much of a failed upstream body is kept for the attempt record.
const ERROR_PREVIEW_CHARS: usize = 300;
/// Error bodies are read up to this size (a client error is passed on whole).
const ERROR_BODY_MAX: usize = 1 << 20;
/// Bodies up to this size with a known length are read whole before answering.
const WHOLE_BODY_MAX: u64 = 256 * 1024;
/// The most of an event stream held back while waiting for its first real event. What comes
/// before it (`response.created`, `response.in_progress`, keep-alive comments) is a few KiB;
/// a relay that sends more without a real event is failed before the client sees a byte.
pub const HELD_MAX: usize = 512 * 1024;

/// An upstream response chosen to go to the client.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: AnswerBody,
    pub sse: bool,
    pub json: bool,
    /// The proxy undid the upstream's `Content-Encoding`.
    pub body_decoded: bool,
    pub model_sent: Option<String>,
}

pub enum AnswerBody {
    Whole(Bytes),
    Stream(ChunkStream),
}

/// How an attempt ended.
pub enum Tried {
    /// A successful response for the client.
    Answer(Answer),
    /// A failure the retry policy decides about. `answer` is the relay's reply when it can be
    /// passed on as it is, should the policy say so (a client error).
    Failed {
        failure: Failure,
        answer: Option<Answer>,
    },
}

/// Tries `upstream` once. The model mapping and credential are the upstream's own.
pub async fn try_upstream(
    state: &ProxyState,
    plan: &Plan,
    request: &ClientRequest,
    upstream: &Upstream,
) -> (AttemptOutcome, Tried) {
    let first_event_timeout = Duration::from_millis(plan.retry.first_event_timeout_ms);
    // Build.
    let requested = request.facts.as_ref().and_then(|f| f.model.as_deref());
    let mapped = requested.and_then(|m| map_model(&upstream.model_mapping, m));
    let span = request.facts.as_ref().and_then(|f| f.model_span.clone());
    let body = match (&mapped, span) {
        (Some(model), Some(span)) => inspect::replace_model(&request.body, span, model),
        _ => request.body.clone(),
    };
    let model_sent = mapped.or_else(|| requested.map(str::to_string));
    let url = upstream.base_url.join(&request.path_and_query);
    let mut headers = upstream_request_headers(
        &request.headers,
        &upstream.credential,
        request.body_decoded,
        state.strips_client_auth(),
    );
    loops::stamp(&mut headers, &request.headers, &state.instance);
    let proxy = upstream.outbound.route.proxy();
    let client = match state.client_for(upstream) {
        Ok(client) => client,
        Err(e) => {
            return (
                AttemptOutcome::ConnectError {
                    error: format!("{e:#}"),
                },
                failed(FailureClass::Connect, None),
            );
        }
    };
    let outgoing = client
        .request(request.method.clone(), url)
        .headers(headers)
        .body(body);

    // Send, bounded by the header timeout.
    let header_timeout = Duration::from_millis(state.settings.response_header_timeout_ms);
    let response = match tokio::time::timeout(header_timeout, outgoing.send()).await {
        Err(_) => {
            let after_ms = header_timeout.as_millis() as u64;
            return (
                AttemptOutcome::Timeout { after_ms },
                failed(FailureClass::HeaderTimeout, None),
            );
        }
        Ok(Err(e)) => {
            let is_connect = e.is_connect();
            let mut error = error_chain(&e.without_url());
            if let Some(proxy) = proxy {
                // Whether the proxy or the relay behind it failed, the user must know a proxy
                // was in the way (a CONNECT refused with 403/407 is a connect error too).
                error = format!("through outbound proxy {proxy}: {error}");
            }
            let error = plan.redactor.redact(&error).into_owned();
            return if is_connect {
                (
                    AttemptOutcome::ConnectError { error },
                    failed(FailureClass::Connect, None),
                )
            } else {
                (
                    AttemptOutcome::TransportError { error },
                    failed(FailureClass::Transport, None),
                )
            };
        }
        Ok(Ok(response)) => response,
    };

    // Classify.
    let status = response.status();
    let headers = response.headers().clone();
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = text(header::CONTENT_TYPE);
    let sse = content_type.starts_with("text/event-stream");
    let json = content_type.contains("json");
    // A coding the proxy cannot undo passes through as the relay sent it, header and all.
    let codings = coding::listed(&headers).unwrap_or_default();
    let answer = |body: AnswerBody| Answer {
        status,
        headers: headers.clone(),
        body,
        sse,
        json,
        body_decoded: !codings.is_empty(),
        model_sent: model_sent.clone(),
    };
    let responded = AttemptOutcome::Responded {
        status: status.as_u16(),
    };

    // A relay never asks for proxy credentials: an HTTP proxy forwarding a plain `http://`
    // request (no CONNECT) answers 407 itself. Like a refused CONNECT, that is a connect failure.
    if let Some(proxy) = proxy.filter(|_| status == StatusCode::PROXY_AUTHENTICATION_REQUIRED) {
        return (
            AttemptOutcome::ConnectError {
                error: format!(
                    "outbound proxy {proxy} refused the request: HTTP 407 Proxy Authentication Required"
                ),
            },
            failed(FailureClass::Connect, None),
        );
    }

    if !status.is_success() {
        let mut body = BytesMut::new();
        let read = coding::read_capped(body_stream(response, &codings), &mut body, ERROR_BODY_MAX);
        let _ = tokio::time::timeout(header_timeout, read).await;
        body.truncate(ERROR_BODY_MAX);
        let body = body.freeze();
        // Some relays echo the request's headers, our key among them.
        let body = match plan.redactor.redact_bytes(&body) {
            std::borrow::Cow::Borrowed(_) => body,
            std::borrow::Cow::Owned(masked) => Bytes::from(masked),
        };
        let body_text = String::from_utf8_lossy(&body);
        let class = classify_status(
            status.as_u16(),
            headers.get(header::SERVER).and_then(|v| v.to_str().ok()),
            headers.contains_key("cf-ray"),
            &content_type,
            &body_text,
        );
        if class == FailureClass::ClientError {
            let failure = Failure {
                class,
                retry_after_ms: None,
            };
            let answer = Some(answer(AnswerBody::Whole(body)));
            return (responded, Tried::Failed { failure, answer });
        }
        let retry_after = retry_after_ms(
            headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let outcome = AttemptOutcome::FailedStatus {
            status: status.as_u16(),
            class,
            retry_after_secs: retry_after.map(|ms| ms.div_ceil(1000)),
            body_preview: preview(&body_text),
        };
        return (outcome, failed(class, retry_after));
    }

    if sse {
        return match hold_until_first_event(body_stream(response, &codings), first_event_timeout)
            .await
        {
            Held::Ready(stream) => (responded, Tried::Answer(answer(AnswerBody::Stream(stream)))),
            Held::Failed { class, detail } => (
                AttemptOutcome::FailedStream {
                    status: status.as_u16(),
                    class,
                    detail: plan.redactor.redact(&detail).into_owned(),
                },
                failed(class, None),
            ),
        };
    }

    // An answer without a body (204, 304, a reply to HEAD, `Content-Length: 0`) is complete
    // as it is: there is nothing to read or wait for.
    let bodiless = request.method == Method::HEAD
        || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
        || response.content_length() == Some(0);
    if bodiless {
        return (
            responded,
            Tried::Answer(answer(AnswerBody::Whole(Bytes::new()))),
        );
    }

    // A small, complete body is read here, before the client has seen anything: it goes out
    // in one write with its length, and a connection that breaks while reading it can still
    // fail over. Other bodies stream.
    let small = response
        .content_length()
        .is_some_and(|len| len <= WHOLE_BODY_MAX);
    if small && codings.is_empty() {
        return match tokio::time::timeout(header_timeout, response.bytes()).await {
            Ok(Ok(bytes)) => (responded, Tried::Answer(answer(AnswerBody::Whole(bytes)))),
            Ok(Err(e)) => {
                let error = error_chain(&e.without_url());
                (
                    AttemptOutcome::TransportError { error },
                    failed(FailureClass::Transport, None),
                )
            }
            Err(_) => {
                let after_ms = header_timeout.as_millis() as u64;
                (
                    AttemptOutcome::Timeout { after_ms },
                    failed(FailureClass::HeaderTimeout, None),
                )
            }
        };
    }
    (
        responded,
        Tried::Answer(answer(AnswerBody::Stream(body_stream(response, &codings)))),
    )
}

fn failed(class: FailureClass, retry_after_ms: Option<u64>) -> Tried {
    Tried::Failed {
        failure: Failure {
            class,
            retry_after_ms,
        },
        answer: None,
    }
}

enum Held {
    /// The stream, with the bytes read so far put back in front.
    Ready(ChunkStream),
    Failed {
        class: FailureClass,
        detail: String,
    },
}

/// Reads an event stream until its first real event. Preamble events (`response.created`,
/// `response.in_progress`) and comments are kept and sent on with the rest, up to
/// [`HELD_MAX`] bytes (plus the chunk that went over): past that the attempt has failed.
async fn hold_until_first_event(mut stream: ChunkStream, timeout: Duration) -> Held {
    let mut tap = SseTap::default();
    let mut held = BytesMut::new();
    let wait = async {
        loop {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    tap.feed(&chunk);
                    held.extend_from_slice(&chunk);
                    if tap.first_event.is_some() {
                        return Ok(());
                    }
                    if held.len() > HELD_MAX {
                        return Err(Held::Failed {
                            class: FailureClass::PreambleTooLarge,
                            detail: format!(
                                "more than {} KiB before the stream's first event",
                                HELD_MAX / 1024
                            ),
                        });
                    }
                }
                Some(Err(e)) => {
                    return Err(Held::Failed {
                        class: FailureClass::Transport,
                        detail: format!("stream broke before its first event: {e}"),
                    });
                }
                None => {
                    return Err(Held::Failed {
                        class: FailureClass::EmptyStream,
                        detail: "the stream ended before any event".into(),
                    });
                }
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Err(_) => Held::Failed {
            class: FailureClass::FirstEventTimeout,
            detail: format!(
                "no event within {} ms (retry.first_event_timeout_ms)",
                timeout.as_millis()
            ),
        },
        Ok(Err(failed)) => failed,
        Ok(Ok(())) if tap.first_event == Some(FirstEvent::Failed) => {
            let detail = match &tap.terminal {
                Some(super::sse::Terminal::Failed { code, message }) => {
                    format!(
                        "response.failed in a 200 stream: {} {}",
                        code.as_deref().unwrap_or("-"),
                        message.as_deref().unwrap_or("")
                    )
                }
                _ => "response.failed in a 200 stream".into(),
            };
            Held::Failed {
                class: FailureClass::FailedInStream,
                detail,
            }
        }
        Ok(Ok(())) => {
            let head = futures_util::stream::once(async move { Ok(held.freeze()) });
            Held::Ready(Box::pin(head.chain(stream)))
        }
    }
}

/// A short, single-line preview of a failed upstream body.
fn preview(text: &str) -> String {
    let mut preview: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = preview.char_indices().nth(ERROR_PREVIEW_CHARS) {
        preview.truncate(cut);
        preview.push('…');
    }
    preview
}

/// The relay's body, its content codings undone (see [`coding::decode_stream`]).
fn body_stream(response: reqwest::Response, codings: &[coding::Listed]) -> ChunkStream {
    let raw = response
        .bytes_stream()
        .map_err(|e| std::io::Error::other(error_chain(&e.without_url())));
    coding::decode_stream(Box::pin(raw), codings, coding::REPLY_DECODED_MAX)
}
