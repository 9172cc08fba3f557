//! The Responses WebSocket transport (`GET …/responses` with `Upgrade: websocket`), bridged to
//! a relay that speaks it.
//!
//! The connection is routed like an HTTP request, at the handshake: the session from the
//! handshake headers, the model from Codex's `x-codex-turn-metadata`. The proxy answers the
//! client's upgrade only once a relay has accepted its own, so until then it fails over as
//! for HTTP (connect error, 5xx, 429, timeout). A relay that refuses WebSockets (404, 405,
//! 426, any answer but 101) is remembered for a while and the client gets 426 at once: Codex
//! then uses HTTP straight away instead of retrying the handshake for seconds.
//!
//! After the handshake, frames pass both ways as they arrive. `response.create` frames have
//! their model mapped; the relay's events are read for usage, and every response on the
//! connection is one record (one ledger row). A relay that breaks the connection ends the
//! client's with an `error` event and a close, never silently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::clients::UpgradedIo;
use super::headers::upstream_request_headers;
use super::inspect;
use super::loops;
use super::receive::ClientRequest;
use super::record::{Attempt, AttemptOutcome, Outcome, RecordGuard, RequestRecord};
use super::relay_body::ProxyBody;
use super::replies;
use super::router::Router;
use super::{Plan, ProxyState};
use crate::record::usage::Usage;
use crate::routing::Upstream;
use crate::routing::model_map::map_model;
use crate::routing::retry::{Cooldown, FailureClass, classify_status};
use crate::routing::runtime::{HealthProbe, Permit};
use crate::routing::select::Choice;
use crate::time::{Millis, now_ms};

/// How long a relay that refused a WebSocket handshake gets 426s without being asked again.
const REFUSAL_MEMORY_MS: Millis = 10 * 60 * 1000;
/// The largest message either side may send (a `response.create` carries the whole input).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Relays that refused the WebSocket transport, until when (on the proxy's clock).
#[derive(Debug, Default)]
pub struct Refusals(Mutex<HashMap<String, Millis>>);

impl Refusals {
    fn refused(&self, endpoint: &str, now: Millis) -> bool {
        let map = self.0.lock().expect("websocket refusals lock");
        map.get(endpoint).is_some_and(|until| now < *until)
    }

    fn remember(&self, endpoint: &str, now: Millis) {
        let mut map = self.0.lock().expect("websocket refusals lock");
        map.retain(|_, until| now < *until);
        map.insert(endpoint.to_string(), now.saturating_add(REFUSAL_MEMORY_MS));
    }
}

/// Whether `headers` ask to switch to WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::UPGRADE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    })
}

/// Answers a WebSocket upgrade: 101 once a relay has accepted its own handshake (the bridge
/// then runs in the background), or 426 / an error otherwise.
pub async fn upgrade(
    state: Arc<ProxyState>,
    parts: Parts,
    mut record: RecordGuard,
) -> Response<ProxyBody> {
    let path = parts.uri.path();
    let key = parts.headers.get("sec-websocket-key").cloned();
    let Some(key) = key.filter(|_| parts.method == Method::GET && path.ends_with("/responses"))
    else {
        return replies::websocket_unsupported().answer(record);
    };
    let plan = state.plan();
    if plan.graph.upstreams.is_empty() {
        return replies::no_relay(&state.config_path).answer(record);
    }
    let request = handshake_request(&parts);
    record.session = request.session.clone();
    record.streaming = true;
    record.model_requested = request.facts.as_ref().and_then(|f| f.model.clone());
    let Some(connected) = connect(&state, &plan, &request, &mut record).await else {
        return replies::websocket_unsupported().answer(record);
    };
    let accept = derive_accept_key(key.as_bytes());
    let client = hyper::upgrade::on(Request::from_parts(parts, ()));
    let (bridge, relay) = Bridge::new(&state, record, connected);
    tokio::spawn(async move {
        match client.await {
            Ok(client) => bridge.run(client, relay).await,
            Err(e) => tracing::debug!("the client's WebSocket upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(ProxyBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}

/// The handshake as a request to route: its headers, and the model Codex names in
/// `x-codex-turn-metadata` (the frames with the real body come only after the handshake).
fn handshake_request(parts: &Parts) -> ClientRequest {
    let model = parts
        .headers
        .get("x-codex-turn-metadata")
        .and_then(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok())
        .and_then(|m| m.get("model").and_then(Value::as_str).map(str::to_string));
    let body = model.map_or_else(Bytes::new, |m| {
        Bytes::from(serde_json::json!({ "model": m }).to_string())
    });
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    ClientRequest::prepare(
        Method::GET,
        path.to_string(),
        parts.headers.clone(),
        body,
        false,
    )
}

/// A relay's accepted WebSocket, with what the connection holds until it ends.
struct Connected {
    socket: Box<dyn UpgradedIo>,
    upstream: Upstream,
    permit: Permit,
    probe: HealthProbe,
    /// The only candidate the request had.
    alone: bool,
}

/// Selects a relay and opens its WebSocket, failing over as an HTTP request would. `None`
/// when the client should use HTTP: the chosen relay refuses WebSockets (now or recently),
/// or none could be reached.
async fn connect(
    state: &ProxyState,
    plan: &Plan,
    request: &ClientRequest,
    record: &mut RecordGuard,
) -> Option<Connected> {
    let mut router = Router::new(state, &plan.graph, request);
    loop {
        let (_, choice, now) = router.choose(state, record);
        let (index, why) = match choice {
            Choice::Pick { candidate, why } => (candidate, why),
            Choice::None | Choice::ContinuityBroken { .. } => return None,
        };
        let upstream = router.upstream(index);
        if state
            .websocket_refusals
            .refused(upstream.key().as_str(), now)
        {
            return None;
        }
        let (permit, probe) = router.claim(state, plan, index, now)?;
        let started = Instant::now();
        match open(state, upstream, request).await {
            Ok(socket) => {
                if let Some(decision) = record.decision.as_mut() {
                    decision.chosen = Some(upstream.key().to_string());
                    decision.why = Some(why);
                }
                return Some(Connected {
                    socket,
                    upstream: upstream.clone(),
                    permit,
                    probe,
                    alone: router.tried.len() == 1,
                });
            }
            Err(Opened::Refused { status }) => {
                // Not the relay's health: it answers, just not this transport.
                drop(probe);
                state
                    .websocket_refusals
                    .remember(upstream.key().as_str(), now);
                tracing::info!(
                    "relay {} refused the WebSocket transport (HTTP {status}); Codex is told to use HTTP",
                    upstream.key()
                );
                return None;
            }
            Err(Opened::Failed { outcome, class }) => {
                let attempt = Attempt {
                    provider: upstream.provider.clone(),
                    endpoint: upstream.endpoint.clone(),
                    outcome,
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                probe.failed(Cooldown::Growing, attempt.summary());
                record.attempts.push(attempt);
                router.tried[index] = true;
                router.last_failure = Some(class);
            }
        }
    }
}

/// Whether a relay accepts the Responses WebSocket transport, as one handshake finds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Acceptance {
    Accepts,
    /// It answered the handshake with this status.
    Refuses {
        status: u16,
    },
    /// The handshake failed; the relay may be down.
    Unreachable {
        error: String,
    },
}

/// Tries the handshake on `upstream` (with the helper's credential) and closes the socket at
/// once: for `switch status`, which tells the user whether the transport can be used.
pub async fn probe(state: &ProxyState, upstream: &Upstream) -> Acceptance {
    let mut headers = HeaderMap::new();
    headers.insert(
        "openai-beta",
        HeaderValue::from_static("responses_websockets=2026-02-06"),
    );
    let request = ClientRequest::prepare(
        Method::GET,
        "/v1/responses".to_string(),
        headers,
        Bytes::new(),
        false,
    );
    match open(state, upstream, &request).await {
        Ok(socket) => {
            drop(socket);
            Acceptance::Accepts
        }
        Err(Opened::Refused { status }) => Acceptance::Refuses { status },
        Err(Opened::Failed { outcome, .. }) => Acceptance::Unreachable {
            error: Attempt {
                provider: upstream.provider.clone(),
                endpoint: upstream.endpoint.clone(),
                outcome,
                duration_ms: 0,
            }
            .summary(),
        },
    }
}

/// Why a relay's WebSocket did not open.
enum Opened {
    /// It answered, but not with 101: it does not speak the transport.
    Refused { status: u16 },
    /// No answer, or one that says try elsewhere (5xx, 429).
    Failed {
        outcome: AttemptOutcome,
        class: FailureClass,
    },
}

/// Sends the handshake to `upstream` (the helper's credential in place of the client's).
async fn open(
    state: &ProxyState,
    upstream: &Upstream,
    request: &ClientRequest,
) -> Result<Box<dyn UpgradedIo>, Opened> {
    let failed = |outcome, class| Opened::Failed { outcome, class };
    let mut headers = upstream_request_headers(
        &request.headers,
        &upstream.credential,
        false,
        state.client().auth(),
    );
    loops::stamp(&mut headers, &request.headers, &state.instance);
    for name in ["sec-websocket-extensions", "sec-websocket-key"] {
        headers.remove(name);
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    if let Ok(key) = HeaderValue::from_str(&key) {
        headers.insert("sec-websocket-key", key);
    }
    let url = upstream.base_url.join(&request.path_and_query);
    let mut builder = Request::get(&url);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let Ok(handshake) = builder.body(Bytes::new()) else {
        return Err(failed(
            AttemptOutcome::ConnectError {
                error: "the relay's URL is not usable for a WebSocket".into(),
            },
            FailureClass::Connect,
        ));
    };
    let client = state.websocket_client(upstream).map_err(|e| {
        failed(
            AttemptOutcome::ConnectError {
                error: format!("{e:#}"),
            },
            FailureClass::Connect,
        )
    })?;
    let timeout = Duration::from_millis(state.settings.response_header_timeout_ms);
    let (status, socket) = match tokio::time::timeout(timeout, client.handshake(handshake)).await {
        Err(_) => {
            return Err(failed(
                AttemptOutcome::Timeout {
                    after_ms: timeout.as_millis() as u64,
                },
                FailureClass::HeaderTimeout,
            ));
        }
        Ok(Err(e)) if e.connect => {
            return Err(failed(
                AttemptOutcome::ConnectError { error: e.message },
                FailureClass::Connect,
            ));
        }
        Ok(Err(e)) => {
            return Err(failed(
                AttemptOutcome::TransportError { error: e.message },
                FailureClass::Transport,
            ));
        }
        Ok(Ok(answer)) => answer,
    };
    match socket {
        Some(socket) => Ok(socket),
        None if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
            let class = classify_status(status.as_u16(), None, false, "", "");
            Err(failed(
                AttemptOutcome::FailedStatus {
                    status: status.as_u16(),
                    class,
                    retry_after_secs: None,
                    body_preview: String::new(),
                },
                class,
            ))
        }
        None => Err(Opened::Refused {
            status: status.as_u16(),
        }),
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// One bridged connection: its relay, and the record of the response in progress.
struct Bridge {
    state: Arc<ProxyState>,
    upstream: Upstream,
    permit: Permit,
    probe: HealthProbe,
    alone: bool,
    /// The handshake's record: what every response's record starts from.
    template: RequestRecord,
    /// The response in progress, and when its `response.create` was sent.
    current: Option<(RecordGuard, Instant)>,
}

impl Bridge {
    fn new(
        state: &Arc<ProxyState>,
        mut handshake: RecordGuard,
        connected: Connected,
    ) -> (Self, Box<dyn UpgradedIo>) {
        let Connected {
            socket,
            upstream,
            permit,
            probe,
            alone,
        } = connected;
        handshake.provider = Some(upstream.provider.clone());
        handshake.endpoint = Some(upstream.endpoint.clone());
        handshake.price_multiplier = upstream.price_multiplier;
        handshake.status = Some(101);
        // The handshake is not a response: it leaves no row of its own.
        let template = handshake.unrecorded();
        let bridge = Bridge {
            state: state.clone(),
            upstream,
            permit,
            probe,
            alone,
            template,
            current: None,
        };
        (bridge, socket)
    }

    async fn run(mut self, client: Upgraded, relay: Box<dyn UpgradedIo>) {
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(config()))
                .await;
        let relay = WebSocketStream::from_raw_socket(relay, Role::Client, Some(config())).await;
        let (mut to_client, mut from_client) = client.split();
        let (mut to_relay, mut from_relay) = relay.split();
        let idle = match self.state.settings.stream_idle_timeout_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        let mut last_from_relay = Instant::now();
        let broke = loop {
            // Only a response in progress waits on the relay; between turns the socket may idle.
            let silent = idle.filter(|_| self.current.is_some());
            let deadline = silent.map(|idle| last_from_relay + idle);
            tokio::select! {
                () = sleep_until(deadline), if deadline.is_some() => {
                    break Some(format!(
                        "no message from the relay for {} s in a response",
                        silent.unwrap_or_default().as_secs()
                    ));
                }
                message = from_client.next() => match message {
                    Some(Ok(message)) => {
                        let closing = message.is_close();
                        let message = self.on_client_message(message);
                        if to_relay.send(message).await.is_err() || closing {
                            break None;
                        }
                    }
                    // The client went away: so does the relay connection.
                    Some(Err(_)) | None => {
                        let _ = to_relay.close().await;
                        break None;
                    }
                },
                message = from_relay.next() => match message {
                    Some(Ok(message)) => {
                        last_from_relay = Instant::now();
                        let closing = message.is_close();
                        self.on_relay_message(&message);
                        if to_client.send(message).await.is_err() || closing {
                            break None;
                        }
                    }
                    Some(Err(e)) => break Some(e.to_string()),
                    None => break Some("the relay closed the connection".to_string()),
                },
            }
        };
        match broke {
            Some(error) => {
                // A response in progress fails visibly, then the connection closes cleanly.
                if self.current.is_some() {
                    let event = failure_event(&error);
                    let _ = to_client.send(Message::text(event)).await;
                }
                let _ = to_client
                    .send(Message::Close(Some(CloseFrame {
                        code: 1011.into(),
                        reason: "relay connection lost".into(),
                    })))
                    .await;
                self.end_current(Outcome::UpstreamStreamError, Some(error.clone()));
                // A lone relay is not cooled down: that would leave its sessions nowhere to go.
                let cooldown = if self.alone {
                    Cooldown::None
                } else {
                    Cooldown::Growing
                };
                self.probe
                    .failed(cooldown, format!("{}: {error}", self.upstream.key()));
            }
            None => {
                self.end_current(Outcome::ClientDisconnected, None);
                self.probe.succeeded();
            }
        }
        drop(self.permit);
    }

    /// A client message on its way to the relay: a `response.create` starts a response's
    /// record and has its model mapped.
    fn on_client_message(&mut self, message: Message) -> Message {
        let Message::Text(text) = &message else {
            return message;
        };
        let bytes = text.as_bytes();
        let Some(head) = head(bytes).filter(|h| h.kind == "response.create") else {
            return message;
        };
        let facts = inspect::inspect(bytes);
        let requested = facts.as_ref().and_then(|f| f.model.clone());
        let mapped = requested
            .as_deref()
            .and_then(|m| map_model(&self.upstream.model_mapping, m));
        self.end_current(Outcome::ClientDisconnected, None);
        // A prewarm (`generate: false`) makes no output and costs nothing: not a turn.
        if head.generate != Some(false) {
            self.start_record(requested.clone(), mapped.clone());
        }
        match (mapped, facts.and_then(|f| f.model_span)) {
            (Some(model), Some(span)) => {
                let body = inspect::replace_model(bytes, span, &model);
                match String::from_utf8(body.to_vec()) {
                    Ok(text) => Message::text(text),
                    Err(_) => message,
                }
            }
            _ => message,
        }
    }

    fn start_record(&mut self, requested: Option<String>, mapped: Option<String>) {
        let mut record = RecordGuard::new(
            RequestRecord {
                trace_id: self.state.next_trace_id(),
                started: Instant::now(),
                started_at_ms: now_ms(),
                model_requested: requested.clone(),
                model_sent: mapped.clone().or(requested),
                ..self.template.clone()
            },
            self.state.sink.clone(),
        );
        record.status = Some(200);
        self.current = Some((record, Instant::now()));
    }

    /// A relay message on its way to the client: read for the response's first event, usage
    /// and end.
    fn on_relay_message(&mut self, message: &Message) {
        let Message::Text(text) = message else { return };
        let Some((record, sent)) = self.current.as_mut() else {
            return;
        };
        if record.ttfb.is_none() {
            record.ttfb = Some(sent.elapsed());
        }
        let Some(head) = head(text.as_bytes()) else {
            return;
        };
        let outcome = match head.kind.as_str() {
            "response.completed" | "response.incomplete" => Outcome::Completed,
            "response.failed" | "error" => Outcome::FailedInStream,
            _ => return,
        };
        let event: Option<Value> = serde_json::from_str(text.as_str()).ok();
        if let Some(event) = &event {
            record.usage = Usage::from_payload(event);
            record.model_answered = event
                .pointer("/response/model")
                .and_then(Value::as_str)
                .map(str::to_string);
            if outcome == Outcome::FailedInStream {
                record.error = event
                    .pointer("/error/message")
                    .or_else(|| event.pointer("/response/error/message"))
                    .and_then(Value::as_str)
                    .map(|m| m.chars().take(300).collect());
            }
        }
        self.end_current(outcome, None);
    }

    fn end_current(&mut self, outcome: Outcome, error: Option<String>) {
        if let Some((mut record, _)) = self.current.take() {
            if error.is_some() {
                record.error = error;
            }
            record.finish(outcome);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// What the bridge reads of a message: its `type` and `generate` (false for a prewarm).
struct Head {
    kind: String,
    generate: Option<bool>,
}

/// A message's [`Head`], read without building the whole value.
fn head(bytes: &[u8]) -> Option<Head> {
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<std::borrow::Cow<'a, str>>,
        generate: Option<bool>,
    }
    let typed = serde_json::from_slice::<Typed>(bytes).ok()?;
    Some(Head {
        kind: typed.kind?.into_owned(),
        generate: typed.generate,
    })
}

/// The event that tells Codex the response failed because the relay's connection broke.
fn failure_event(error: &str) -> String {
    serde_json::json!({
        "type": "error",
        "status": 502,
        "error": {
            "type": "server_error",
            "code": "relay_connection_lost",
            "message": format!("codex-helper: the relay's WebSocket broke: {error}"),
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_are_recognised_in_any_case() {
        let mut headers = HeaderMap::new();
        assert!(!is_upgrade(&headers));
        headers.insert(header::UPGRADE, "WebSocket".parse().unwrap());
        assert!(is_upgrade(&headers));
    }

    #[test]
    fn a_refusal_is_remembered_for_a_while() {
        let refusals = Refusals::default();
        refusals.remember("a.default", 1_000);
        assert!(refusals.refused("a.default", 1_000 + REFUSAL_MEMORY_MS - 1));
        assert!(!refusals.refused("a.default", 1_000 + REFUSAL_MEMORY_MS));
        assert!(!refusals.refused("b.default", 1_000));
    }

    #[test]
    fn heads_are_read_without_the_rest() {
        let prewarm = head(br#"{"type":"response.create","input":[],"generate":false}"#).unwrap();
        assert_eq!(
            (prewarm.kind.as_str(), prewarm.generate),
            ("response.create", Some(false))
        );
        assert!(head(b"not json").is_none());
        assert!(head(br#"{"input":[]}"#).is_none());
    }
}
