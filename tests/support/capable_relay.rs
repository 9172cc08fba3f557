//! A mock relay with a configurable capability profile, for tests of relay diagnostics and
//! live smoke tests.
//!
//! Real relays differ in what they support for Codex: some list models the Codex way, some the
//! OpenAI way, some not at all or behind an HTML login page; some lack `/responses` (Chat
//! Completions only), `/responses/compact`, remote compaction v2, the hosted image tool or the
//! Responses WebSocket; some accept a request and never answer. A [`Profile`] picks one such
//! relay, and the mock refuses what it lacks the way OpenAI's API does (a JSON error in
//! OpenAI's shape), so a probe can tell "unsupported" from "broken".
//!
//! Every HTTP request and every WebSocket text frame is recorded in order ([`CapableRelay::seen`]).

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// How the relay answers `GET /v1/models`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Models {
    /// Codex's own catalog shape: `{"models":[{"slug":…}, …]}`.
    Codex,
    /// OpenAI's list shape: `{"object":"list","data":[{"id":…}, …]}`.
    OpenAi,
    /// No such endpoint: 404.
    Missing,
    /// A 200 HTML login page, as relays behind a web front end give.
    Html,
}

/// What the relay supports.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The only accepted credential, as `Authorization: Bearer <key>`.
    pub key: &'static str,
    pub models: Models,
    /// false: `/responses` does not exist (a Chat-Completions-only relay).
    pub responses: bool,
    /// `POST /v1/responses/compact` exists.
    pub compact_v1: bool,
    /// `/responses` accepts a `compaction_trigger` input item (remote compaction v2).
    pub compact_v2: bool,
    /// `/responses` accepts the hosted `image_generation` tool.
    pub image: bool,
    /// `GET /v1/responses` upgrades to the Responses WebSocket.
    pub websocket: bool,
    /// Every request is read and never answered.
    pub stall: bool,
    /// `/responses` checks the model before anything else (as New API's routing does), so
    /// a request without one never reaches the feature checks.
    pub model_first: bool,
    /// A refused key is quoted back in the 401's message (some relays do).
    pub echo_key: bool,
}

impl Profile {
    /// Supports everything, Codex-style `/models`.
    pub fn full(key: &'static str) -> Self {
        Self {
            key,
            models: Models::Codex,
            responses: true,
            compact_v1: true,
            compact_v2: true,
            image: true,
            websocket: true,
            stall: false,
            model_first: false,
            echo_key: false,
        }
    }
}

/// One request (or WebSocket frame) as the relay received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The HTTP method, or `WS` for a WebSocket text frame.
    pub method: String,
    /// The URL path without the query (`/v1/responses` for a WebSocket frame).
    pub path: String,
    /// The request's headers (empty for a WebSocket frame).
    pub headers: HeaderMap,
    /// The body (or frame) as JSON; `Null` when there is none or it is not JSON.
    pub body: Value,
}

/// The state the server task and the tests share.
struct State {
    profile: Profile,
    seen: Mutex<Vec<Seen>>,
    /// Numbers `resp_mock_N` (HTTP and WebSocket responses alike), from 1.
    responses: AtomicU64,
    /// Numbers `resp_compact_N`, from 1.
    compactions: AtomicU64,
    /// Upgraded WebSocket connections: hyper hands them off outside the connection's task,
    /// so they are kept here to be aborted with the relay.
    sockets: Mutex<JoinSet<()>>,
}

impl State {
    fn record(&self, method: &str, path: &str, headers: HeaderMap, body: Value) {
        self.seen.lock().unwrap().push(Seen {
            method: method.to_string(),
            path: path.to_string(),
            headers,
            body,
        });
    }
}

/// A running mock relay on an ephemeral loopback port.
pub struct CapableRelay {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl CapableRelay {
    /// Starts a relay with `profile` on `127.0.0.1:0`.
    pub async fn start(profile: Profile) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            profile,
            seen: Mutex::new(Vec::new()),
            responses: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            sockets: Mutex::new(JoinSet::new()),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in this set, so aborting the server task closes them too
            // (including stalled ones).
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = shared.clone();
                let service = service_fn(move |request| handle(state.clone(), request));
                connections.spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, state, task }
    }

    /// `http://<addr>/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every HTTP request, in order (a WebSocket handshake is a `GET /v1/responses`), and each
    /// WebSocket text frame as `method: "WS"` with the frame's JSON as body.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl Drop for CapableRelay {
    /// Stops accepting and drops every open connection, stalled and upgraded ones too, so a
    /// client waiting on the relay sees the connection close instead of hanging.
    fn drop(&mut self) {
        self.task.abort();
        self.state.sockets.lock().unwrap().abort_all();
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Answers one HTTP request: stall, then auth, then the route.
async fn handle(
    state: Arc<State>,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let upgrade = wants_websocket(request.headers()).then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    if state.profile.stall {
        state.record(&method, &path, parts.headers.clone(), Value::Null);
        std::future::pending::<()>().await;
    }
    // A body that breaks while read is recorded as no body; the route then refuses it.
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::from_slice::<Value>(&bytes).ok();
    state.record(
        &method,
        &path,
        parts.headers.clone(),
        json.clone().unwrap_or(Value::Null),
    );

    if !authorized(&parts.headers, state.profile.key) {
        let given = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let message = if state.profile.echo_key {
            format!("Incorrect API key provided: {given}. Check your token.")
        } else {
            "Incorrect API key provided.".to_string()
        };
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            &message,
            None,
            Some("invalid_api_key"),
        ));
    }
    let json_body = |answer: fn(&State, &Value) -> Response<Body>| match &json {
        Some(body) => answer(&state, body),
        None => unparsable(),
    };
    let reply = match (&parts.method, path.as_str(), upgrade) {
        (&Method::GET, "/v1/models", _) => models(state.profile.models),
        (&Method::GET, "/v1/responses", Some(upgrade)) => {
            websocket(&state, &parts.headers, upgrade, &method, &path)
        }
        (&Method::POST, "/v1/responses", _) if state.profile.responses => json_body(responses),
        (&Method::POST, "/v1/responses/compact", _) if state.profile.compact_v1 => {
            json_body(compact)
        }
        (&Method::POST, "/v1/chat/completions", _) => json_body(chat),
        _ => invalid_url(&method, &path),
    };
    Ok(reply)
}

/// Whether a request asks to upgrade to a WebSocket.
fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Exactly one `Authorization` header, and it is `Bearer <key>`.
fn authorized(headers: &HeaderMap, key: &str) -> bool {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let expected = format!("Bearer {key}");
    match (values.next(), values.next()) {
        (Some(value), None) => value.as_bytes() == expected.as_bytes(),
        _ => false,
    }
}

/// `GET /v1/models` in the shape the profile says.
fn models(shape: Models) -> Response<Body> {
    match shape {
        Models::Codex => {
            let entry = |slug: &str, display: &str, priority: u64| {
                json!({"slug": slug, "display_name": display, "supported_reasoning_levels": [],
                    "shell_type": "shell_command", "visibility": "list", "supported_in_api": true,
                    "priority": priority, "base_instructions": "", "support_verbosity": false,
                    "truncation_policy": {"mode": "bytes", "limit": 10000},
                    "experimental_supported_tools": [], "input_modalities": ["text", "image"]})
            };
            let list =
                json!({"models": [entry("gpt-5.1", "GPT-5.1", 1), entry("gpt-5.5", "GPT-5.5", 2)]});
            json_reply(StatusCode::OK, &list)
        }
        Models::OpenAi => {
            let entry = |id: &str| json!({"id": id, "object": "model", "owned_by": "relay"});
            let list = json!({"object": "list", "data": [entry("gpt-5.1"), entry("gpt-5.5")]});
            json_reply(StatusCode::OK, &list)
        }
        Models::Missing => invalid_url("GET", "/v1/models"),
        Models::Html => {
            let page = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\
                <body><h1>Sign in to the relay</h1><form method=\"post\" action=\"/login\">\
                <input name=\"user\"><input name=\"password\" type=\"password\">\
                <button>Sign in</button></form></body></html>\n";
            reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from(page),
            )
        }
    }
}

/// `POST /v1/responses`: refuses what the profile lacks, then answers with one output item.
fn responses(state: &State, body: &Value) -> Response<Body> {
    let input = body["input"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let trigger = input
        .iter()
        .position(|item| item["type"] == "compaction_trigger");
    let image = body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["type"] == "image_generation"));
    if state.profile.model_first && body["model"].is_null() {
        return missing("model");
    }
    // Item and tool types are checked before the model, as OpenAI's validation does.
    let mut items = vec![
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
    ];
    if state.profile.compact_v2 {
        items.push("compaction_trigger");
    }
    let unknown_item = input.iter().enumerate().find_map(|(n, item)| {
        let kind = item["type"].as_str()?;
        (!items.contains(&kind)).then(|| (n, kind.to_string()))
    });
    if let Some((n, kind)) = unknown_item {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid value: '{kind}'. Supported values are: {}.",
                items
                    .iter()
                    .map(|i| format!("'{i}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(&format!("input[{n}].type")),
            Some("invalid_value"),
        );
    }
    let mut tools = vec!["function", "web_search"];
    if state.profile.image {
        tools.push("image_generation");
    }
    let unknown_tool = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["type"].as_str())
        .find(|kind| !tools.contains(kind));
    if let Some(kind) = unknown_tool {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Hosted tool '{kind}' is not supported by this relay."),
            Some("tools"),
            Some("unsupported_tool"),
        );
    }
    if body["model"].is_null() {
        return missing("model");
    }
    let n = state.responses.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("resp_mock_{n}");
    let model = &body["model"];
    let item = if trigger.is_some() {
        compaction_item()
    } else if image {
        json!({"type": "image_generation_call", "id": "ig_1", "status": "completed",
            "result": "iVBORw0KGgo="})
    } else {
        message_item()
    };
    if body["stream"] != true {
        let response = json!({"id": id, "object": "response", "model": model,
            "status": "completed", "output": [item], "usage": usage(50, 10)});
        return json_reply(StatusCode::OK, &response);
    }
    let events = [
        json!({"type": "response.created", "sequence_number": 0,
            "response": {"id": id, "object": "response", "model": model, "status": "in_progress",
                "output": []}}),
        json!({"type": "response.output_item.done", "sequence_number": 1, "output_index": 0,
            "item": item}),
        json!({"type": "response.completed", "sequence_number": 2,
            "response": {"id": id, "object": "response", "model": model, "status": "completed",
                "output": [item], "usage": usage(50, 10)}}),
    ];
    let chunks = events.map(|event| {
        let kind = event["type"].as_str().unwrap_or_default();
        Ok::<_, Infallible>(Frame::data(Bytes::from(format!(
            "event: {kind}\ndata: {event}\n\n"
        ))))
    });
    // One chunk per event, like a relay's stream (no Content-Length).
    let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync();
    with_content_type(Response::new(body), "text/event-stream")
}

/// `POST /v1/responses/compact` (remote compaction v1).
fn compact(state: &State, body: &Value) -> Response<Body> {
    if body["model"].is_null() {
        return missing("model");
    }
    let n = state.compactions.fetch_add(1, Ordering::Relaxed) + 1;
    let reply = json!({"id": format!("resp_compact_{n}"), "object": "response.compaction",
        "output": [compaction_item()], "usage": usage(40, 8)});
    json_reply(StatusCode::OK, &reply)
}

/// `POST /v1/chat/completions`: a minimal completion.
fn chat(_state: &State, body: &Value) -> Response<Body> {
    for required in ["model", "messages"] {
        if body[required].is_null() {
            return missing(required);
        }
    }
    let reply = json!({"id": "chatcmpl_1", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "OK"},
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}});
    json_reply(StatusCode::OK, &reply)
}

/// `GET /v1/responses` with `Upgrade: websocket`: 101 and a Responses WebSocket, or 404 when
/// the profile has none (a relay that does not know the route, so no upgrade).
fn websocket(
    state: &Arc<State>,
    headers: &HeaderMap,
    upgrade: OnUpgrade,
    method: &str,
    path: &str,
) -> Response<Body> {
    if !state.profile.websocket {
        return invalid_url(method, path);
    }
    let Some(key) = headers.get(http::header::SEC_WEBSOCKET_KEY) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Missing Sec-WebSocket-Key.",
            None,
            None,
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let mut sockets = state.sockets.lock().unwrap();
    while sockets.try_join_next().is_some() {}
    sockets.spawn(serve_socket(state.clone(), upgrade));
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Empty::new().boxed_unsync())
        .unwrap()
}

/// The upgraded connection: each `response.create` frame gets `response.created`, one text
/// delta and `response.completed`; a frame that is not JSON gets an `error` frame. Pings are
/// answered and a close is echoed by tungstenite while the loop reads.
async fn serve_socket(state: Arc<State>, upgrade: OnUpgrade) {
    let Ok(io) = upgrade.await else { return };
    let mut socket = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    // Reading on after a close lets tungstenite send its close reply; the stream then ends.
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let frame = serde_json::from_str::<Value>(text.as_str()).ok();
        let body = frame.clone().unwrap_or(Value::Null);
        state.record("WS", "/v1/responses", HeaderMap::new(), body);
        let events = match frame {
            None => vec![json!({"type": "error", "error": {"message": "bad frame"}})],
            Some(frame) if frame["type"] == "response.create" => {
                let n = state.responses.fetch_add(1, Ordering::Relaxed) + 1;
                let id = format!("resp_mock_{n}");
                let model = &frame["model"];
                vec![
                    json!({"type": "response.created",
                        "response": {"id": id, "model": model, "status": "in_progress"}}),
                    json!({"type": "response.output_text.delta", "item_id": "msg_1",
                        "output_index": 0, "content_index": 0, "delta": "OK"}),
                    json!({"type": "response.completed",
                        "response": {"id": id, "model": model, "status": "completed",
                            "output": [message_item()], "usage": usage(50, 10)}}),
                ]
            }
            Some(_) => Vec::new(),
        };
        for event in events {
            if socket.send(Message::text(event.to_string())).await.is_err() {
                return;
            }
        }
    }
}

fn message_item() -> Value {
    json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": "OK"}]})
}

fn compaction_item() -> Value {
    json!({"type": "compaction", "id": "cmp_1", "encrypted_content": "opaque-summary"})
}

fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output})
}

/// A 404 for a route the relay does not have, worded as OpenAI words it.
fn invalid_url(method: &str, path: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {path})"),
        None,
        None,
    )
}

fn missing(parameter: &str) -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        &format!("Missing required parameter: '{parameter}'."),
        Some(parameter),
        Some("missing_required_parameter"),
    )
}

fn unparsable() -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        "We could not parse the JSON body of your request.",
        None,
        None,
    )
}

/// An error in OpenAI's shape; `param` and `code` are `null` when not given.
fn error(
    status: StatusCode,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": "invalid_request_error",
        "param": param, "code": code}});
    json_reply(status, &body)
}

fn json_reply(status: StatusCode, body: &Value) -> Response<Body> {
    reply(status, "application/json", Bytes::from(body.to_string()))
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut reply = with_content_type(Response::new(Full::new(body).boxed_unsync()), content_type);
    *reply.status_mut() = status;
    reply
}

fn with_content_type(mut reply: Response<Body>, content_type: &'static str) -> Response<Body> {
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    reply
}
