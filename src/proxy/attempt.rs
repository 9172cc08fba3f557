//! One attempt against one upstream: build the request, send it, and classify what came back
//! before the client sees any of it.
//!
//! A 2xx event stream is held until its first real event (bounded by the first-event
//! timeout), so a `response.failed` inside a 200, an empty stream, or a stall before any
//! output is a failed attempt the failover loop can act on, invisibly to the client.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::clients::{RelayClient, RelayResponse};
use super::coding;
use super::filter;
use super::headers::upstream_request_headers;
use super::inspect;
use super::loops;
use super::receive::ClientRequest;
use super::record::AttemptOutcome;
use super::relay_body::ChunkStream;
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
/// The most of an event stream held back before the line that shows its first real event.
/// What comes before it (`response.created`, `response.in_progress`, keep-alive comments) is a
/// few KiB; a relay that sends more without a real event is failed before the client sees a
/// byte.
pub const HELD_MAX: usize = 512 * 1024;
/// The longest line that may show a stream's first real event: a relay that answers with one
/// whole `response.completed` sends the entire response as that line, so it gets room of its
/// own beside [`HELD_MAX`] (a model's longest output, about 0.5 MB of text, is well under it).
/// While a stream is held, its bytes sit both in the held buffer and, for the unfinished line,
/// in the tap's: a relay can make one held stream take about twice the two limits.
pub const FIRST_EVENT_LINE_MAX: usize = 2 << 20;

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
    /// An event stream held until its first real event. The tap that read the held bytes
    /// (`read` of them, the stream's first) goes on with the rest, so the preamble, whose
    /// `response.created` can carry the whole request back, is not read and parsed twice.
    Events {
        stream: ChunkStream,
        tap: Box<SseTap>,
        read: u64,
    },
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

/// What one try produced: the record of it, and what the retry policy or the client gets.
pub type Attempted = (AttemptOutcome, Tried);

/// Tries `upstream` once: build, send, classify. The model mapping and credential are the
/// upstream's own.
pub async fn try_upstream(
    state: &ProxyState,
    plan: &Plan,
    request: &ClientRequest,
    upstream: &Upstream,
) -> Attempted {
    let (client, outgoing, model_sent) = match build(state, request, upstream) {
        Ok(built) => built,
        Err(early) => return early.into(),
    };
    // 4a. filter: the filter.json rules, after the model mapping
    let outgoing = filter::request(state, outgoing).await;
    let mut response = match send(state, plan, upstream, &client, outgoing).await {
        Ok(response) => response,
        Err(early) => return early.into(),
    };
    let reply = Reply::new(&mut response, model_sent);
    if let Some(failed) = reply.refused_by_proxy(upstream) {
        return failed;
    }
    if !reply.status.is_success() {
        return failed_status(state, plan, reply, response).await;
    }
    // A turn that asked for events gets them or nothing, however the reply is labelled: some
    // relays send events without their content type, others a `200 {"error": …}`.
    if reply.sse || request.needs_events() {
        return held_stream(plan, reply, response).await;
    }
    plain_body(state, request, reply, response).await
}

/// Build: the relay's URL, the body with the model mapped, the relay's credential in place of
/// the client's, the hop header. Returns the client to send it with, the request and the model
/// it names.
fn build(
    state: &ProxyState,
    request: &ClientRequest,
    upstream: &Upstream,
) -> Result<(RelayClient, http::Request<Bytes>, Option<String>), Early> {
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
        state.client().auth(),
    );
    loops::stamp(&mut headers, &request.headers, &state.instance);
    let connect_error = |error: String| Early {
        outcome: AttemptOutcome::ConnectError { error },
        class: FailureClass::Connect,
    };
    let client = state
        .client_for(upstream)
        .map_err(|e| connect_error(format!("{e:#}")))?;
    let mut outgoing = http::Request::builder()
        .method(request.method.clone())
        .uri(url.as_str())
        .body(body)
        .map_err(|e| connect_error(format!("cannot address the relay at {url}: {e}")))?;
    *outgoing.headers_mut() = headers;
    Ok((client, outgoing, model_sent))
}

/// Send, bounded by the header timeout. A failure through an outbound proxy says so.
async fn send(
    state: &ProxyState,
    plan: &Plan,
    upstream: &Upstream,
    client: &RelayClient,
    outgoing: http::Request<Bytes>,
) -> Result<RelayResponse, Early> {
    let header_timeout = Duration::from_millis(state.settings.response_header_timeout_ms);
    match tokio::time::timeout(header_timeout, client.send(outgoing)).await {
        Ok(Ok(response)) => Ok(response),
        Err(_) => Err(timed_out(header_timeout)),
        Ok(Err(e)) => {
            let is_connect = e.connect;
            let mut error = e.message;
            if let Some(proxy) = upstream.outbound.route.proxy() {
                // Whether the proxy or the relay behind it failed, the user must know a proxy
                // was in the way (a CONNECT refused with 403/407 is a connect error too).
                error = format!("through outbound proxy {proxy}: {error}");
            }
            let error = plan.redactor.redact(&error).into_owned();
            Err(if is_connect {
                Early {
                    outcome: AttemptOutcome::ConnectError { error },
                    class: FailureClass::Connect,
                }
            } else {
                Early {
                    outcome: AttemptOutcome::TransportError { error },
                    class: FailureClass::Transport,
                }
            })
        }
    }
}

fn timed_out(header_timeout: Duration) -> Early {
    Early {
        outcome: AttemptOutcome::Timeout {
            after_ms: header_timeout.as_millis() as u64,
        },
        class: FailureClass::HeaderTimeout,
    }
}

/// A try that failed before there was a reply to classify.
struct Early {
    outcome: AttemptOutcome,
    class: FailureClass,
}

impl From<Early> for Attempted {
    fn from(early: Early) -> Self {
        (early.outcome, failed(early.class, None))
    }
}

/// What classifying a response needs from its head.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    content_type: String,
    sse: bool,
    json: bool,
    /// The reply's codings (a coding the proxy cannot undo passes through, header and all).
    codings: Vec<coding::Listed>,
    model_sent: Option<String>,
}

impl Reply {
    /// Takes the response's head; its body is read on from `response`.
    fn new(response: &mut RelayResponse, model_sent: Option<String>) -> Self {
        let headers = std::mem::take(response.headers_mut());
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Self {
            status: response.status(),
            sse: content_type.starts_with("text/event-stream"),
            json: content_type.contains("json"),
            codings: coding::listed(&headers).unwrap_or_default(),
            content_type,
            headers,
            model_sent,
        }
    }

    /// An event stream from now on, whatever the relay called it.
    fn label_as_events(&mut self) {
        if !self.sse {
            self.sse = true;
            self.json = false;
            self.content_type = "text/event-stream".into();
            self.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
        }
    }

    /// What the relay called the reply, for messages (its content type is the relay's too,
    /// so it is cut short).
    fn kind(&self) -> String {
        match self.content_type.as_str() {
            "" => "a reply without a content type".into(),
            other => format!("a reply labelled {}", preview(other)),
        }
    }

    /// The reply as the answer to hand on (the client's, or the failover's last resort).
    fn answer(self, body: AnswerBody) -> Answer {
        Answer {
            status: self.status,
            headers: self.headers,
            body,
            sse: self.sse,
            json: self.json,
            body_decoded: !self.codings.is_empty(),
            model_sent: self.model_sent,
        }
    }

    fn responded(&self) -> AttemptOutcome {
        AttemptOutcome::Responded {
            status: self.status.as_u16(),
        }
    }

    /// A relay never asks for proxy credentials: an HTTP proxy forwarding a plain `http://`
    /// request (no CONNECT) answers 407 itself. Like a refused CONNECT, a connect failure.
    fn refused_by_proxy(&self, upstream: &Upstream) -> Option<Attempted> {
        let proxy = upstream.outbound.route.proxy()?;
        (self.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED).then(|| {
            let error = format!(
                "outbound proxy {proxy} refused the request: HTTP 407 Proxy Authentication Required"
            );
            (
                AttemptOutcome::ConnectError { error },
                failed(FailureClass::Connect, None),
            )
        })
    }
}

/// Classify a non-2xx reply: one the retry policy hands back goes to the client as the relay
/// sent it; anything else is a failure with its class, `Retry-After` and a short preview.
async fn failed_status(
    state: &ProxyState,
    plan: &Plan,
    reply: Reply,
    response: RelayResponse,
) -> Attempted {
    let body = error_body(state, plan, &reply, response).await;
    let body_text = String::from_utf8_lossy(&body);
    let header = |name: header::HeaderName| reply.headers.get(name).and_then(|v| v.to_str().ok());
    let class = classify_status(
        reply.status.as_u16(),
        header(header::SERVER),
        reply.headers.contains_key("cf-ray"),
        &reply.content_type,
        &body_text,
    );
    let failure = Failure {
        class,
        retry_after_ms: retry_after_ms(header(header::RETRY_AFTER)),
        status: Some(reply.status.as_u16()),
    };
    // A reply the retry policy may hand back is kept whole (a client error, or what
    // `[retry]` lists send back as it is).
    if plan.retry.hands_back_at_once(&failure) {
        let responded = reply.responded();
        let answer = Some(reply.answer(AnswerBody::Whole(body)));
        return (responded, Tried::Failed { failure, answer });
    }
    let outcome = AttemptOutcome::FailedStatus {
        status: reply.status.as_u16(),
        class,
        retry_after_secs: failure.retry_after_ms.map(|ms| ms.div_ceil(1000)),
        body_preview: match class {
            FailureClass::Redirect => plan
                .redactor
                .redact(&redirect_preview(header(header::LOCATION)))
                .into_owned(),
            _ => preview(&body_text),
        },
    };
    let answer = plan
        .retry
        .may_hand_back(&failure)
        .then(|| reply.answer(AnswerBody::Whole(body)));
    (outcome, Tried::Failed { failure, answer })
}

/// A failed reply's body: at most [`ERROR_BODY_MAX`], read under the header timeout, with
/// credentials masked (some relays echo the request's headers, our key among them).
async fn error_body(
    state: &ProxyState,
    plan: &Plan,
    reply: &Reply,
    response: RelayResponse,
) -> Bytes {
    let header_timeout = Duration::from_millis(state.settings.response_header_timeout_ms);
    let mut body = BytesMut::new();
    let stream = body_stream(response, &reply.codings);
    let read = coding::read_capped(stream, &mut body, ERROR_BODY_MAX);
    let _ = tokio::time::timeout(header_timeout, read).await;
    body.truncate(ERROR_BODY_MAX);
    let body = body.freeze();
    match plan.redactor.redact_bytes(&body) {
        std::borrow::Cow::Borrowed(_) => body,
        std::borrow::Cow::Owned(masked) => Bytes::from(masked),
    }
}

/// Classify a 2xx event stream by its first real event (see [`hold_until_first_event`]). A
/// reply not labelled as one (to a turn that needs events) is one if events are found in it,
/// and is then labelled so for the client.
async fn held_stream(plan: &Plan, mut reply: Reply, response: RelayResponse) -> Attempted {
    let timeout = Duration::from_millis(plan.retry.first_event_timeout_ms);
    let stream = body_stream(response, &reply.codings);
    match hold_until_first_event(stream, timeout).await {
        Held::Ready { stream, tap, read } => {
            reply.label_as_events();
            (
                reply.responded(),
                Tried::Answer(reply.answer(AnswerBody::Events { stream, tap, read })),
            )
        }
        Held::Failed { class, detail } => {
            let detail = match reply.sse {
                true => detail,
                false => format!("{} to a streaming request: {detail}", reply.kind()),
            };
            (
                AttemptOutcome::FailedStream {
                    status: reply.status.as_u16(),
                    class,
                    detail: plan.redactor.redact(&detail).into_owned(),
                },
                failed(class, None),
            )
        }
    }
}

/// Any other 2xx body: empty, small (read whole here), or streamed.
async fn plain_body(
    state: &ProxyState,
    request: &ClientRequest,
    reply: Reply,
    response: RelayResponse,
) -> Attempted {
    // An answer without a body (204, 304, a reply to HEAD, `Content-Length: 0`) is complete
    // as it is: there is nothing to read or wait for.
    let bodiless = request.method == Method::HEAD
        || matches!(
            reply.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        )
        || content_length(&reply.headers) == Some(0);
    if bodiless {
        let responded = reply.responded();
        let answer = reply.answer(AnswerBody::Whole(Bytes::new()));
        return (responded, Tried::Answer(answer));
    }
    // A small, complete body is read here, before the client has seen anything: it goes out
    // in one write with its length, and a connection that breaks while reading it can still
    // fail over. Other bodies stream.
    let small = content_length(&reply.headers).is_some_and(|len| len <= WHOLE_BODY_MAX);
    if !small || !reply.codings.is_empty() {
        let stream = body_stream(response, &reply.codings);
        return (
            reply.responded(),
            Tried::Answer(reply.answer(AnswerBody::Stream(stream))),
        );
    }
    let header_timeout = Duration::from_millis(state.settings.response_header_timeout_ms);
    let mut bytes = BytesMut::new();
    let read = coding::read_capped(response.into_body(), &mut bytes, WHOLE_BODY_MAX as usize);
    match tokio::time::timeout(header_timeout, read).await {
        Ok(Ok(())) => (
            reply.responded(),
            Tried::Answer(reply.answer(AnswerBody::Whole(bytes.freeze()))),
        ),
        Ok(Err(e)) => {
            let error = e.to_string();
            (
                AttemptOutcome::TransportError { error },
                failed(FailureClass::Transport, None),
            )
        }
        Err(_) => timed_out(header_timeout).into(),
    }
}

fn failed(class: FailureClass, retry_after_ms: Option<u64>) -> Tried {
    Tried::Failed {
        failure: Failure {
            class,
            retry_after_ms,
            status: None,
        },
        answer: None,
    }
}

enum Held {
    /// The stream, with the `read` bytes read so far put back in front, and the tap that
    /// read them.
    Ready {
        stream: ChunkStream,
        tap: Box<SseTap>,
        read: u64,
    },
    Failed {
        class: FailureClass,
        detail: String,
    },
}

/// Reads an event stream until its first real event. Preamble events (`response.created`,
/// `response.in_progress`) and comments are kept and sent on with the rest, up to
/// [`HELD_MAX`] bytes before the line that shows the event, and that line up to
/// [`FIRST_EVENT_LINE_MAX`]: past either the attempt has failed.
async fn hold_until_first_event(mut stream: ChunkStream, timeout: Duration) -> Held {
    let mut tap = SseTap::default();
    let mut held = BytesMut::new();
    let read = read_to_first_event(&mut stream, &mut tap, &mut held);
    match tokio::time::timeout(timeout, read).await {
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
                Some(super::sse::Terminal::Failed { code, message }) => format!(
                    "response.failed in a 200 stream: {} {}",
                    code.as_deref().unwrap_or("-"),
                    message.as_deref().unwrap_or("")
                ),
                _ => "response.failed in a 200 stream".into(),
            };
            Held::Failed {
                class: FailureClass::FailedInStream,
                detail,
            }
        }
        Ok(Ok(())) => {
            tap.shrink();
            let read = held.len() as u64;
            let head = futures_util::stream::once(async move { Ok(held.freeze()) });
            Held::Ready {
                stream: Box::pin(head.chain(stream)),
                tap: Box::new(tap),
                read,
            }
        }
    }
}

/// Reads into `held` (shown to `tap`) until the first real event, or the failure that came
/// first: a break, an end, or more than the limits allow without one.
///
/// The limits are checked on where the bytes sit in the stream, never on how much one read
/// brought, so a relay's stream gets the same verdict however the network splits it.
async fn read_to_first_event(
    stream: &mut ChunkStream,
    tap: &mut SseTap,
    held: &mut BytesMut,
) -> Result<(), Held> {
    let failed = |class, detail: String| Err(Held::Failed { class, detail });
    loop {
        match stream.next().await {
            Some(Ok(chunk)) => {
                tap.feed(&chunk);
                held.extend_from_slice(&chunk);
                let (before, line) = match &tap.first_event_line {
                    Some(at) => (at.start, at.end - at.start),
                    None => tap.unfinished(),
                };
                if let Some(detail) = too_much_held(before, line) {
                    return failed(FailureClass::PreambleTooLarge, detail);
                }
                if tap.first_event.is_some() {
                    return Ok(());
                }
            }
            Some(Err(e)) => {
                let detail = format!("stream broke before its first event: {e}");
                return failed(FailureClass::Transport, detail);
            }
            None => {
                let mut detail = String::from("the stream ended before any event");
                if !held.is_empty() {
                    // What came instead (a relay's `{"error": …}`), its start: enough to preview.
                    let start = &held[..held.len().min(4 * ERROR_PREVIEW_CHARS)];
                    detail = format!("{detail}: {}", preview(&String::from_utf8_lossy(start)));
                }
                return failed(FailureClass::EmptyStream, detail);
            }
        }
    }
}

/// Why a stream's start is more than may be held, if it is: `before` bytes ahead of the line
/// that shows (or may show) its first real event, and `line` bytes of that line.
fn too_much_held(before: u64, line: u64) -> Option<String> {
    if before > HELD_MAX as u64 {
        Some(format!(
            "more than {} KiB before the stream's first event",
            HELD_MAX / 1024
        ))
    } else if line > FIRST_EVENT_LINE_MAX as u64 {
        Some(format!(
            "a line of more than {} MiB before the stream's first event was known",
            FIRST_EVENT_LINE_MAX >> 20
        ))
    } else {
        None
    }
}

/// What a redirect's record says instead of its (empty) body: where it pointed, the origin
/// only (a query could hold a token), and that it was not followed.
fn redirect_preview(location: Option<&str>) -> String {
    let origin = location
        .and_then(|l| l.parse::<http::Uri>().ok())
        .and_then(|uri| Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?)));
    match origin {
        Some(origin) => format!("a redirect to {origin}, not followed (is base_url right?)"),
        None => "a redirect, not followed (is base_url right?)".into(),
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
fn body_stream(response: RelayResponse, codings: &[coding::Listed]) -> ChunkStream {
    coding::decode_stream(response.into_body(), codings, coding::REPLY_DECODED_MAX)
}

/// The length the relay announced for its body.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first real event of `size` bytes of text, as a relay writes it.
    fn big_event(size: usize) -> Vec<u8> {
        let text = "h".repeat(size);
        format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":\"{text}\"}}\n\n"
        )
        .into_bytes()
    }

    async fn read_in(chunks: Vec<Vec<u8>>) -> Result<usize, Held> {
        let mut stream: ChunkStream = Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from(c))),
        ));
        let (mut tap, mut held) = (SseTap::default(), BytesMut::new());
        read_to_first_event(&mut stream, &mut tap, &mut held).await?;
        Ok(held.len())
    }

    /// `bytes` read whole, then in reads of each size given.
    async fn read_split(bytes: &[u8], sizes: &[usize]) -> Vec<Result<usize, Held>> {
        let mut verdicts = vec![read_in(vec![bytes.to_vec()]).await];
        for size in sizes {
            verdicts.push(read_in(bytes.chunks(*size).map(<[u8]>::to_vec).collect()).await);
        }
        verdicts
    }

    /// A verdict as a test failure shows it.
    fn shown(verdict: &Result<usize, Held>) -> String {
        match verdict {
            Ok(n) => format!("held {n} bytes"),
            Err(Held::Failed { class, detail }) => format!("failed ({}): {detail}", class.as_str()),
            Err(Held::Ready { .. }) => "ready".into(),
        }
    }

    fn too_large(verdict: &Result<usize, Held>) -> bool {
        matches!(
            verdict,
            Err(Held::Failed {
                class: FailureClass::PreambleTooLarge,
                ..
            })
        )
    }

    /// Keep-alive comments, then `response.created` padded to `size` bytes in all.
    fn preamble(size: usize) -> Vec<u8> {
        let mut bytes = b": keep-alive\n\n".to_vec();
        let head = b"event: response.created\ndata: {\"type\":\"response.created\",\"pad\":\"";
        let tail = b"\"}\n\n";
        bytes.extend_from_slice(head);
        bytes.resize(size - tail.len(), b'p');
        bytes.extend_from_slice(tail);
        bytes
    }

    #[tokio::test]
    async fn a_first_event_past_the_preamble_cap_is_served_however_the_reads_split_it() {
        // One whole `response.completed`-sized event: over HELD_MAX, under its line's limit.
        let event = big_event(HELD_MAX + 100 * 1024);
        let mut stream = preamble(HELD_MAX - 1024);
        stream.extend_from_slice(&event);
        for bytes in [&event, &stream] {
            for verdict in read_split(bytes, &[HELD_MAX - 10, 200 * 1024, 4096]).await {
                assert!(
                    matches!(verdict, Ok(n) if n == bytes.len()),
                    "{}",
                    shown(&verdict)
                );
            }
        }
    }

    #[tokio::test]
    async fn a_preamble_past_the_cap_fails_however_the_reads_split_it() {
        let mut stream = preamble(HELD_MAX + 1);
        stream.extend_from_slice(&big_event(10));
        // Comments alone, in many lines or in one.
        let comments = b": ppp\n".repeat(HELD_MAX / 6 + 1);
        let one_comment = [&b":"[..], &vec![b'p'; HELD_MAX + 1]].concat();
        for bytes in [&stream, &comments, &one_comment] {
            for verdict in read_split(bytes, &[HELD_MAX - 10, 200 * 1024, 4096]).await {
                assert!(too_large(&verdict), "{}", shown(&verdict));
            }
        }
    }

    #[tokio::test]
    async fn a_first_event_line_past_its_limit_fails_however_the_reads_split_it() {
        let event = big_event(FIRST_EVENT_LINE_MAX + 1024);
        for verdict in read_split(&event, &[FIRST_EVENT_LINE_MAX - 10, 1 << 20]).await {
            assert!(too_large(&verdict), "{}", shown(&verdict));
        }
        let Err(Held::Failed { detail, .. }) = read_in(vec![event]).await else {
            unreachable!()
        };
        assert!(detail.contains("a line of more than 2 MiB"), "{detail}");
    }

    #[tokio::test]
    async fn each_limit_is_inclusive_to_the_byte() {
        let event = big_event(10);
        let event_line = event.iter().position(|b| *b == b'\n').unwrap() + 1;
        // The bytes ahead of the first event's `data:` line: exactly HELD_MAX, then one more.
        for (over, ahead) in [(false, HELD_MAX), (true, HELD_MAX + 1)] {
            let mut stream = preamble(ahead - event_line);
            stream.extend_from_slice(&event);
            for verdict in read_split(&stream, &[HELD_MAX, 4096]).await {
                assert_eq!(too_large(&verdict), over, "{ahead}: {}", shown(&verdict));
            }
        }
        // The `data:` line itself, its line break included: exactly the limit, then one more.
        let data_line = |text: usize| big_event(text).len() - event_line - 1;
        let fits = FIRST_EVENT_LINE_MAX - data_line(0);
        for (over, text) in [(false, fits), (true, fits + 1)] {
            assert_eq!(data_line(text), FIRST_EVENT_LINE_MAX + usize::from(over));
            for verdict in read_split(&big_event(text), &[1 << 20]).await {
                assert_eq!(too_large(&verdict), over, "{text}: {}", shown(&verdict));
            }
        }
    }
}
