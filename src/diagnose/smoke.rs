//! `relay-live-smoke`: a few small, real model calls that prove what the capability probes
//! could only validate. It spends money, so it runs only with the exact acknowledgement, which
//! is checked before anything is sent. Each case makes one request (or one WebSocket turn) to
//! one endpoint, outside routing, and says what it sent, what came back, pass or fail and why,
//! and the tokens it cost. Output text and image bytes are counted, never kept.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::capabilities::host;
use super::exchange::{Exchanged, Limits, Reply, Sent, exchange, snippet};
use crate::proxy::ProxyState;
use crate::proxy::websocket::{self, Acceptance};
use crate::record::usage::Usage;
use crate::routing::Upstream;
use crate::routing::model_map::map_model;

/// What a user types to say they know the smoke test spends real money.
pub const ACKNOWLEDGEMENT: &str = "run-live-codex-relay-smoke";

/// The prompt text every case sends: fixed, and the only text sent.
const ASK: &str = "Reply with the single word OK.";

/// One smoke case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// Remote compaction v1: `POST /responses/compact` (always run).
    Compaction,
    /// Hosted image generation in a streamed `/responses` (`--image`).
    Image,
    /// Remote compaction v2: a `compaction_trigger` item (`--compact-v2`).
    CompactV2,
    /// One turn over the Responses WebSocket (`--websocket`).
    Websocket,
}

impl Case {
    pub fn as_str(self) -> &'static str {
        match self {
            Case::Compaction => "compaction",
            Case::Image => "image",
            Case::CompactV2 => "compact_v2",
            Case::Websocket => "websocket",
        }
    }
}

/// The cases a run makes: compaction, then each one asked for.
pub fn cases(image: bool, compact_v2: bool, websocket: bool) -> Vec<Case> {
    let mut cases = vec![Case::Compaction];
    cases.extend(image.then_some(Case::Image));
    cases.extend(compact_v2.then_some(Case::CompactV2));
    cases.extend(websocket.then_some(Case::Websocket));
    cases
}

/// Refuses a run without the exact acknowledgement, saying why it is asked for.
pub fn check_acknowledgement(given: Option<&str>) -> Result<(), String> {
    match given.map(str::trim) {
        Some(ACKNOWLEDGEMENT) => Ok(()),
        _ => Err(format!(
            "the live smoke test sends real requests to the relay, which may cost money; \
             nothing was sent. To run it, pass --acknowledgement {ACKNOWLEDGEMENT}"
        )),
    }
}

/// Tokens a case cost, as the relay reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub total: u64,
}

impl From<Usage> for Tokens {
    fn from(usage: Usage) -> Self {
        Tokens {
            input: usage.input_tokens,
            output: usage.output_tokens,
            total: usage.total_tokens,
        }
    }
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: Case,
    pub passed: bool,
    pub sent: Sent,
    pub status: Option<u16>,
    pub ms: u64,
    /// What came back, in words: event and item types, sizes; never text or image bytes.
    pub came_back: String,
    pub reason: String,
    pub tokens: Option<Tokens>,
}

/// One endpoint's smoke run: what `--json` prints and the evidence keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmokeReport {
    pub provider: String,
    pub endpoint: String,
    pub host: String,
    pub requested_model: String,
    /// After the endpoint's model mapping, as routing would send it.
    pub upstream_model: String,
    pub results: Vec<CaseResult>,
    pub passed: bool,
    pub summary: String,
    pub warnings: Vec<String>,
}

/// Where a run is.
pub enum Progress<'a> {
    Started(Case),
    Finished(&'a CaseResult),
}

/// Runs `cases` on `upstream` with `model`, one after the other. The acknowledgement must
/// have been checked ([`check_acknowledgement`]). `progress` is called on the runtime's
/// thread: it must not block.
pub async fn run(
    state: &ProxyState,
    upstream: &Upstream,
    model: &str,
    cases: &[Case],
    limits: Limits,
    progress: &(dyn Fn(Progress<'_>) + Send + Sync),
) -> SmokeReport {
    let upstream_model =
        map_model(&upstream.model_mapping, model).unwrap_or_else(|| model.to_string());
    let mut results = Vec::new();
    for case in cases {
        progress(Progress::Started(*case));
        let result = match case {
            Case::Websocket => websocket_case(state, upstream, &upstream_model, limits).await,
            _ => http_case(state, upstream, *case, &upstream_model, limits).await,
        };
        progress(Progress::Finished(&result));
        results.push(result);
    }
    let passed = results.iter().all(|r| r.passed);
    let names = |pass: bool| {
        let names: Vec<&str> = results
            .iter()
            .filter(|r| r.passed == pass)
            .map(|r| r.case.as_str())
            .collect();
        names.join(", ")
    };
    let summary = match (names(true), names(false)) {
        (ok, bad) if bad.is_empty() => format!("passed: {ok}"),
        (ok, bad) if ok.is_empty() => format!("failed: {bad}"),
        (ok, bad) => format!("passed: {ok}; failed: {bad}"),
    };
    SmokeReport {
        provider: upstream.provider.clone(),
        endpoint: upstream.endpoint.clone(),
        host: host(upstream),
        requested_model: model.to_string(),
        upstream_model,
        results,
        passed,
        summary,
        warnings: vec![
            "sent real requests to the relay: they may have cost money".into(),
            "changed nothing: routing, health, affinity, balances and the ledger were not touched"
                .into(),
        ],
    }
}

/// A case's HTTP request (every case but the WebSocket one).
pub struct CaseRequest {
    pub path: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: Value,
    pub shape: &'static str,
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

fn assistant(text: &str) -> Value {
    json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
}

/// What `case` sends (pure); `None` for the WebSocket case, whose frame is
/// [`websocket_frame`].
pub fn case_request(case: Case, model: &str) -> Option<CaseRequest> {
    Some(match case {
        Case::Compaction => CaseRequest {
            path: "/v1/responses/compact",
            headers: &[],
            body: json!({"model": model, "input": [user(ASK), assistant("OK")],
                "instructions": "Summarize the conversation so far for a later turn.",
                "tools": [], "parallel_tool_calls": false}),
            shape: "two short messages to compact",
        },
        Case::CompactV2 => CaseRequest {
            path: "/v1/responses",
            headers: &[
                ("accept", "text/event-stream"),
                ("x-codex-beta-features", "remote_compaction_v2"),
            ],
            body: json!({"model": model, "input": [user(ASK), assistant("OK"), {"type": "compaction_trigger"}],
                "tools": [], "store": false, "stream": true, "parallel_tool_calls": false}),
            shape: "streaming, two short messages and a compaction_trigger item",
        },
        Case::Websocket => return None,
        Case::Image => CaseRequest {
            path: "/v1/responses",
            headers: &[("accept", "text/event-stream")],
            body: json!({"model": model,
                "instructions": "Use the image_generation tool exactly once.",
                "input": [user("Draw a small plain blue square.")],
                "tools": [{"type": "image_generation", "output_format": "png", "size": "1024x1024", "quality": "low"}],
                "tool_choice": {"type": "image_generation"},
                "store": false, "stream": true, "parallel_tool_calls": false}),
            shape: "streaming, the image_generation tool forced, a one-line drawing request",
        },
    })
}

/// The WebSocket case's one `response.create` frame.
pub fn websocket_frame(model: &str) -> Value {
    json!({"type": "response.create", "model": model, "input": [user(ASK)], "tools": [],
        "store": false, "stream": true, "parallel_tool_calls": false})
}

async fn http_case(
    state: &ProxyState,
    upstream: &Upstream,
    case: Case,
    model: &str,
    limits: Limits,
) -> CaseResult {
    let request = case_request(case, model).expect("an HTTP case");
    let (exchanged, took) = exchange(
        state,
        upstream,
        Method::POST,
        request.path,
        request.headers,
        Some(&request.body),
        limits,
    )
    .await;
    let redactor = super::exchange::scrubber(state);
    let verdict = judge_http(case, &exchanged);
    CaseResult {
        case,
        passed: verdict.passed,
        sent: Sent {
            method: "POST".into(),
            path: request.path.into(),
            shape: request.shape.into(),
        },
        status: verdict.status,
        ms: took.as_millis().try_into().unwrap_or(u64::MAX),
        came_back: redactor.redact(&verdict.came_back).into_owned(),
        reason: redactor.redact(&verdict.reason).into_owned(),
        tokens: verdict.tokens,
    }
}

/// A case's verdict, before timing and redaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub status: Option<u16>,
    pub came_back: String,
    pub reason: String,
    pub tokens: Option<Tokens>,
}

impl Verdict {
    fn failed(
        status: Option<u16>,
        came_back: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Verdict {
            passed: false,
            status,
            came_back: came_back.into(),
            reason: reason.into(),
            tokens: None,
        }
    }
}

/// Judges an HTTP case's answer (pure).
pub fn judge_http(case: Case, exchanged: &Exchanged) -> Verdict {
    let reply = match exchanged {
        Exchanged::Reply(reply) => reply,
        Exchanged::Failed { error, .. } => return Verdict::failed(None, "nothing", error.clone()),
    };
    let status = Some(reply.status);
    if !(200..300).contains(&reply.status) {
        let what = if matches!(reply.status, 401 | 403) {
            "the relay refused the key"
        } else {
            "the relay answered with an error"
        };
        return Verdict::failed(
            status,
            format!("HTTP {}", reply.status),
            format!("{what}: {}", said(reply)),
        );
    }
    if reply.content_type.starts_with("text/html") {
        return Verdict::failed(status, "an HTML page", "not the API: is base_url right?");
    }
    match case {
        Case::Compaction => judge_compaction(reply),
        _ => {
            if !reply.content_type.starts_with("text/event-stream") {
                return Verdict::failed(
                    status,
                    format!("a {} body", short_type(reply)),
                    "not an event stream: Codex reads this answer as a stream",
                );
            }
            let events = sse_events(&reply.body);
            match case {
                Case::CompactV2 => judge_compact_v2(status, &events),
                _ => judge_image(status, &events),
            }
        }
    }
}

fn judge_compaction(reply: &Reply) -> Verdict {
    let status = Some(reply.status);
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else {
        return Verdict::failed(
            status,
            format!("a {} body", short_type(reply)),
            "not JSON: Codex reads the compacted history as JSON",
        );
    };
    let Some(output) = body.get("output").and_then(Value::as_array) else {
        return Verdict::failed(
            status,
            "JSON without `output`",
            "no compacted history came back",
        );
    };
    let compaction = output.iter().any(|i| is_compaction(&i["type"]));
    Verdict {
        passed: true,
        status,
        came_back: format!(
            "{} output items{}",
            output.len(),
            if compaction {
                ", one of them a compaction item"
            } else {
                ""
            }
        ),
        reason: "the relay compacted the conversation".into(),
        tokens: body
            .get("usage")
            .and_then(Usage::from_json)
            .map(Tokens::from),
    }
}

fn judge_compact_v2(status: Option<u16>, events: &[Value]) -> Verdict {
    let seen = event_list(events);
    if let Some(error) = failure(events) {
        return Verdict::failed(status, seen, error);
    }
    let items = done_items(events);
    let compactions = items.iter().filter(|i| is_compaction(&i["type"])).count();
    let completed = completed(events);
    let tokens = completed.and_then(Usage::from_payload).map(Tokens::from);
    let (passed, reason) = match (compactions, completed.is_some()) {
        (1, true) => (
            true,
            "exactly one compaction item, then response.completed".to_string(),
        ),
        (n, true) => (
            false,
            format!("{n} compaction items; Codex needs exactly one (it fails the turn otherwise)"),
        ),
        (_, false) => (
            false,
            "the stream ended without response.completed".to_string(),
        ),
    };
    Verdict {
        passed,
        status,
        came_back: seen,
        reason,
        tokens,
    }
}

fn judge_image(status: Option<u16>, events: &[Value]) -> Verdict {
    let seen = event_list(events);
    if let Some(error) = failure(events) {
        return Verdict::failed(status, seen, error);
    }
    let calls: Vec<&Value> = done_items(events)
        .into_iter()
        .filter(|i| i["type"] == "image_generation_call")
        .collect();
    let bytes = calls
        .iter()
        .filter_map(|c| c["result"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0);
    let completed = completed(events);
    let tokens = completed.and_then(Usage::from_payload).map(Tokens::from);
    let came_back = if calls.is_empty() {
        seen
    } else {
        format!("{seen}; an image of {bytes} base64 bytes (not kept)")
    };
    let (passed, reason) = if bytes > 0 {
        (
            true,
            "the hosted image_generation tool made an image".to_string(),
        )
    } else if calls.is_empty() {
        (
            false,
            "no image_generation_call came back: the relay did not run the tool".to_string(),
        )
    } else {
        (
            false,
            "an image_generation_call without a result".to_string(),
        )
    };
    Verdict {
        passed,
        status,
        came_back,
        reason,
        tokens,
    }
}

async fn websocket_case(
    state: &ProxyState,
    upstream: &Upstream,
    model: &str,
    limits: Limits,
) -> CaseResult {
    let started = Instant::now();
    let frame = websocket_frame(model);
    let verdict = match tokio::time::timeout(
        limits.timeout,
        websocket_turn(state, upstream, &frame, limits.body_cap),
    )
    .await
    {
        Ok(verdict) => verdict,
        Err(_) => Verdict::failed(
            Some(101),
            "no end of the response",
            format!(
                "no response.completed within {} s",
                limits.timeout.as_secs_f64()
            ),
        ),
    };
    let redactor = super::exchange::scrubber(state);
    CaseResult {
        case: Case::Websocket,
        passed: verdict.passed,
        sent: Sent {
            method: "GET".into(),
            path: "/v1/responses".into(),
            shape: "a WebSocket handshake, then one response.create frame with a one-line message"
                .into(),
        },
        status: verdict.status,
        ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        came_back: redactor.redact(&verdict.came_back).into_owned(),
        reason: redactor.redact(&verdict.reason).into_owned(),
        tokens: verdict.tokens,
    }
}

/// The handshake, one frame, and the relay's messages until the response ends.
async fn websocket_turn(
    state: &ProxyState,
    upstream: &Upstream,
    frame: &Value,
    cap: usize,
) -> Verdict {
    let socket = match websocket::handshake(state, upstream).await {
        Ok(socket) => socket,
        Err(Acceptance::Refuses { status }) => {
            return Verdict::failed(
                Some(status),
                format!("HTTP {status}"),
                "the relay refused the WebSocket handshake",
            );
        }
        Err(Acceptance::Unreachable { error }) => return Verdict::failed(None, "nothing", error),
        Err(Acceptance::Accepts) => unreachable!("a refusal is never Accepts"),
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(cap))
        .max_frame_size(Some(cap));
    let mut socket = WebSocketStream::from_raw_socket(socket, Role::Client, Some(config)).await;
    if let Err(e) = socket.send(Message::text(frame.to_string())).await {
        return Verdict::failed(
            Some(101),
            "nothing",
            format!("the frame could not be sent: {e}"),
        );
    }
    let mut events = Vec::new();
    let mut read = 0usize;
    let ended = loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                read += text.len();
                if read > cap {
                    break Some("the relay sent more than the case reads");
                }
                let event: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                let last = matches!(
                    event["type"].as_str(),
                    Some(
                        "response.completed" | "response.failed" | "response.incomplete" | "error"
                    )
                );
                events.push(event);
                if last || events.len() >= MAX_EVENTS {
                    break None;
                }
            }
            Some(Ok(Message::Close(_))) | None => break Some("the relay closed the connection"),
            Some(Ok(_)) => {}
            Some(Err(_)) => break Some("the connection broke"),
        }
    };
    let _ = socket.close(None).await;
    judge_websocket(&events, ended)
}

/// The most events a case reads.
const MAX_EVENTS: usize = 10_000;

/// Judges the WebSocket case's messages (pure); `ended`: why reading stopped early, if it did.
pub fn judge_websocket(events: &[Value], ended: Option<&str>) -> Verdict {
    let status = Some(101);
    let seen = event_list(events);
    if let Some(error) = failure(events) {
        return Verdict::failed(status, seen, error);
    }
    match completed(events) {
        Some(done) => Verdict {
            passed: true,
            status,
            came_back: seen,
            reason: "a whole response over the WebSocket".into(),
            tokens: Usage::from_payload(done).map(Tokens::from),
        },
        None => Verdict::failed(
            status,
            seen,
            ended.unwrap_or("the response did not end").to_string(),
        ),
    }
}

/// The JSON events of an SSE body (`data:` lines; `[DONE]` and non-JSON skipped).
pub fn sse_events(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body);
    let mut events = Vec::new();
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            if let Ok(event) = serde_json::from_str::<Value>(&data) {
                events.push(event);
            }
            data.clear();
        }
    }
    events
}

fn is_compaction(kind: &Value) -> bool {
    kind == "compaction" || kind == "context_compaction"
}

fn done_items(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"])
        .collect()
}

fn completed(events: &[Value]) -> Option<&Value> {
    events.iter().find(|e| e["type"] == "response.completed")
}

/// The error an `error`, `response.failed` or `response.incomplete` event carries.
fn failure(events: &[Value]) -> Option<String> {
    let event = events.iter().find(|e| {
        matches!(
            e["type"].as_str(),
            Some("error" | "response.failed" | "response.incomplete")
        )
    })?;
    let message = event
        .pointer("/error/message")
        .or_else(|| event.pointer("/response/error/message"))
        .or_else(|| event.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("no message");
    Some(format!(
        "{}: {}",
        event["type"].as_str().unwrap_or("error"),
        snippet(message, 200)
    ))
}

/// The event types in order, repeats counted: `response.created, response.output_item.done ×2`.
fn event_list(events: &[Value]) -> String {
    let mut runs: Vec<(String, usize)> = Vec::new();
    for event in events {
        let kind = snippet(event["type"].as_str().unwrap_or("(untyped)"), 60);
        match runs.last_mut() {
            Some((last, n)) if *last == kind => *n += 1,
            _ => runs.push((kind, 1)),
        }
    }
    if runs.is_empty() {
        return "no events".into();
    }
    runs.iter()
        .map(|(k, n)| {
            if *n > 1 {
                format!("{k} ×{n}")
            } else {
                k.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn said(reply: &Reply) -> String {
    let text = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(body) => body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(|| body.to_string(), str::to_string),
        Err(_) => String::from_utf8_lossy(&reply.body).into_owned(),
    };
    let short = snippet(&text, 200);
    if short.is_empty() {
        "no message".into()
    } else {
        short
    }
}

fn short_type(reply: &Reply) -> &str {
    let ct = reply
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if ct.is_empty() { "untyped" } else { ct }
}

/// The default time a case may take: an image can take a while.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reply(status: u16, content_type: &str, body: String) -> Exchanged {
        Exchanged::Reply(Reply {
            status,
            content_type: content_type.into(),
            location_host: None,
            body: Bytes::from(body),
            truncated: false,
        })
    }

    fn sse(events: &[Value]) -> Exchanged {
        let body: String = events
            .iter()
            .map(|e| format!("event: x\ndata: {e}\n\n"))
            .collect();
        reply(200, "text/event-stream", body + "data: [DONE]\n\n")
    }

    fn done(item: Value) -> Value {
        json!({"type": "response.output_item.done", "item": item})
    }

    fn completed_with_usage() -> Value {
        json!({"type": "response.completed", "response": {"id": "r",
            "usage": {"input_tokens": 50, "output_tokens": 10, "total_tokens": 60}}})
    }

    #[test]
    fn the_acknowledgement_must_be_exact() {
        assert!(check_acknowledgement(Some(ACKNOWLEDGEMENT)).is_ok());
        assert!(check_acknowledgement(Some("  run-live-codex-relay-smoke ")).is_ok());
        for wrong in [
            None,
            Some(""),
            Some("yes"),
            Some("run-live-codex-relay-smoke!"),
        ] {
            let error = check_acknowledgement(wrong).unwrap_err();
            assert!(error.contains("nothing was sent") && error.contains(ACKNOWLEDGEMENT));
        }
    }

    #[test]
    fn compaction_runs_always_and_flags_add_their_case() {
        assert_eq!(cases(false, false, false), vec![Case::Compaction]);
        assert_eq!(
            cases(true, true, true),
            vec![
                Case::Compaction,
                Case::Image,
                Case::CompactV2,
                Case::Websocket
            ]
        );
        assert_eq!(
            cases(false, false, true),
            vec![Case::Compaction, Case::Websocket]
        );
    }

    #[test]
    fn compact_v2_needs_exactly_one_compaction_item_and_the_end() {
        let item = json!({"type": "compaction", "id": "cmp_1", "encrypted_content": "x"});
        let good = sse(&[
            json!({"type": "response.created"}),
            done(item.clone()),
            completed_with_usage(),
        ]);
        let v = judge_http(Case::CompactV2, &good);
        assert!(v.passed, "{v:?}");
        assert_eq!(
            v.tokens,
            Some(Tokens {
                input: 50,
                output: 10,
                total: 60
            })
        );
        assert_eq!(
            v.came_back,
            "response.created, response.output_item.done, response.completed"
        );

        let two = sse(&[
            done(item.clone()),
            done(item.clone()),
            completed_with_usage(),
        ]);
        let v = judge_http(Case::CompactV2, &two);
        assert!(!v.passed && v.reason.contains("exactly one"), "{v:?}");
        assert!(v.came_back.contains("×2"));
        let unfinished = sse(&[done(item)]);
        assert!(!judge_http(Case::CompactV2, &unfinished).passed);
        let refused = sse(&[json!({"type": "response.failed",
            "response": {"error": {"message": "compaction_trigger is not supported"}}})]);
        let v = judge_http(Case::CompactV2, &refused);
        assert!(!v.passed && v.reason.contains("not supported"), "{v:?}");
        let json_body = reply(200, "application/json", "{}".into());
        assert!(
            judge_http(Case::CompactV2, &json_body)
                .reason
                .contains("not an event stream")
        );
    }

    #[test]
    fn an_image_must_come_back_and_is_only_counted() {
        let image = done(json!({"type": "image_generation_call", "result": "iVBORw0KGgo="}));
        let v = judge_http(Case::Image, &sse(&[image, completed_with_usage()]));
        assert!(v.passed, "{v:?}");
        assert!(
            v.came_back.contains("12 base64 bytes (not kept)"),
            "{}",
            v.came_back
        );
        assert!(!v.came_back.contains("iVBOR"));
        let text =
            done(json!({"type": "message", "content": [{"type": "output_text", "text": "no"}]}));
        let v = judge_http(Case::Image, &sse(&[text, completed_with_usage()]));
        assert!(
            !v.passed && v.reason.contains("did not run the tool"),
            "{v:?}"
        );
    }

    #[test]
    fn compaction_v1_reads_the_json_history() {
        let body = json!({"output": [{"type": "compaction", "id": "c"}],
            "usage": {"input_tokens": 40, "output_tokens": 8, "total_tokens": 48}});
        let v = judge_http(
            Case::Compaction,
            &reply(200, "application/json", body.to_string()),
        );
        assert!(v.passed);
        assert_eq!(v.came_back, "1 output items, one of them a compaction item");
        assert_eq!(v.tokens.unwrap().total, 48);
        let missing = reply(
            404,
            "application/json",
            json!({"error": {"message": "Invalid URL (POST /v1/responses/compact)"}}).to_string(),
        );
        let v = judge_http(Case::Compaction, &missing);
        assert!(!v.passed && v.reason.contains("Invalid URL"), "{v:?}");
        let refused = reply(401, "application/json", "{}".into());
        assert!(
            judge_http(Case::Compaction, &refused)
                .reason
                .contains("refused the key")
        );
        let page = reply(200, "text/html", "<html></html>".into());
        assert!(!judge_http(Case::Compaction, &page).passed);
    }

    #[test]
    fn a_websocket_turn_passes_on_its_end_and_fails_on_an_error_event() {
        let events = [json!({"type": "response.created"}), completed_with_usage()];
        assert!(judge_websocket(&events, None).passed);
        let error = [json!({"type": "error", "error": {"message": "model not allowed"}})];
        let v = judge_websocket(&error, None);
        assert!(!v.passed && v.reason.contains("model not allowed"));
        let cut = [json!({"type": "response.created"})];
        let v = judge_websocket(&cut, Some("the relay closed the connection"));
        assert!(!v.passed && v.reason.contains("closed"));
    }

    #[test]
    fn cases_send_only_the_fixed_texts() {
        for case in [Case::Compaction, Case::CompactV2, Case::Image] {
            let request = case_request(case, "m").unwrap();
            assert_eq!(request.body["model"], "m");
        }
        assert!(case_request(Case::Websocket, "m").is_none());
        assert_eq!(websocket_frame("m")["type"], "response.create");
    }
}
