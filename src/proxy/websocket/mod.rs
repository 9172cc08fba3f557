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

mod bridge;
mod deflate;
mod frame;
mod negotiate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use self::bridge::Bridge;
use self::deflate::Deflated;
use super::clients::UpgradedIo;
use super::headers::{client_response_headers, upstream_request_headers};
use super::loops;
use super::overrides::{self, Overridden};
use super::receive::ClientRequest;
use super::record::{AttemptOutcome, RecordGuard, attempt_on};
use super::relay_body::ProxyBody;
use super::replies;
use super::router::Router;
use super::{Plan, ProxyState};
use crate::redact::Redactor;
use crate::routing::Upstream;
use crate::routing::retry::{Cooldown, FailureClass, classify_status};
use crate::routing::runtime::{HealthProbe, Permit};
use crate::routing::select::Choice;
use crate::time::Millis;

/// How long a relay that refused a WebSocket handshake gets 426s without being asked again.
const REFUSAL_MEMORY_MS: Millis = 10 * 60 * 1000;
/// The largest message either side may send (a `response.create` carries the whole input).
pub(super) const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Relays that refused the WebSocket transport, until when (on the proxy's clock), by
/// endpoint and the path the client asked for: a handshake to a path the relay does not serve
/// (a local client can ask for any) says nothing of the one Codex uses.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<HashMap<(String, String), Millis>>);

/// The most refusals remembered at once. Past it a refusal is not remembered: the next
/// handshake to that path asks the relay again.
const MAX_REFUSALS: usize = 256;

impl Refusals {
    fn refused(&self, endpoint: &str, path: &str, now: Millis) -> bool {
        let map = self.0.lock().expect("websocket refusals lock");
        let key = (endpoint.to_string(), path.to_string());
        map.get(&key).is_some_and(|until| now < *until)
    }

    /// `endpoint` answered the handshake for `path` with `status`, not 101: it is not asked
    /// again for a while.
    fn remember(&self, endpoint: &str, path: &str, status: u16, now: Millis) {
        tracing::info!(
            "relay {endpoint} refused the WebSocket transport (HTTP {status}); Codex is told to use HTTP"
        );
        let mut map = self.0.lock().expect("websocket refusals lock");
        map.retain(|_, until| now < *until);
        if map.len() < MAX_REFUSALS {
            let key = (endpoint.to_string(), path.to_string());
            map.insert(key, now.saturating_add(REFUSAL_MEMORY_MS));
        }
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
    record.announce();
    // The session's overrides: its pin routes the connection (as set when it opens); its
    // values patch each `response.create` (as set when that is sent).
    let applied = overrides::resolve(&state, &plan, &request);
    let overridden = applied.as_ref().map(Overridden::pin_of).unwrap_or_default();
    let session = request.session.as_ref().map(|s| s.value.clone());
    let Some(mut connected) = connect(&state, &plan, &request, &overridden, &mut record).await
    else {
        return replies::websocket_unsupported().answer(record);
    };
    let relay_headers = std::mem::take(&mut connected.headers);
    let model = record.model_requested.as_deref();
    let (headers, deflate) =
        switching_headers(relay_headers, &parts.headers, &key, model, &plan.redactor);
    let member_key = parts
        .extensions
        .get::<crate::proxy::members::PresentedKey>()
        .cloned();
    let client = hyper::upgrade::on(Request::from_parts(parts, ()));
    let (bridge, relay) = Bridge::new(&state, record, connected, session);
    let bridge = bridge.with_member_key(member_key);
    let open = state.metrics.websockets.track();
    tokio::spawn(async move {
        let _open = open;
        match client.await {
            Ok(client) => {
                let client = TokioIo::new(client);
                let client: Box<dyn UpgradedIo> = match deflate {
                    Some(agreed) => Box::new(Deflated::new(client, agreed, MAX_MESSAGE_BYTES)),
                    None => Box::new(client),
                };
                bridge.run(client, relay).await
            }
            Err(e) => tracing::debug!("the client's WebSocket upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(ProxyBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = headers;
    response
}

/// The client's `101` headers, and the compression agreed with the client. The relay's
/// answer headers (the model, rate limits, turn state) reach Codex as they would over HTTP;
/// the handshake's own are the proxy's, per side.
fn switching_headers(
    relay: HeaderMap,
    client: &HeaderMap,
    key: &HeaderValue,
    model: Option<&str>,
    redactor: &Redactor,
) -> (HeaderMap, Option<negotiate::Deflate>) {
    let mut headers = client_response_headers(relay, false, model, redactor);
    for name in WEBSOCKET_HEADERS {
        headers.remove(name);
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert("sec-websocket-accept", accept);
    }
    let deflate = negotiate::accept_offer(client).map(|(agreed, answer)| {
        headers.insert("sec-websocket-extensions", answer);
        agreed
    });
    (headers, deflate)
}

/// The handshake headers that belong to one side's connection.
const WEBSOCKET_HEADERS: [&str; 4] = [
    "sec-websocket-accept",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-version",
];

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
    /// The relay's answer headers, as sent.
    headers: HeaderMap,
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
    overridden: &Overridden,
    record: &mut RecordGuard,
) -> Option<Connected> {
    super::team_state::adopt_team_binding(state, &plan.graph, request).await;
    let mut router = Router::new(state, &plan.graph, request, overridden);
    loop {
        let (_, choice, now) = router.choose(state, record);
        let (index, why) = match choice {
            Choice::Pick { candidate, why } => (candidate, why),
            Choice::None | Choice::ContinuityBroken { .. } => return None,
        };
        let upstream = router.upstream(index);
        let path = request.path_and_query.split('?').next().unwrap_or_default();
        let refusals = &state.websocket_refusals;
        if refusals.refused(upstream.key().as_str(), path, now) {
            return None;
        }
        let (mut permit, probe) = router.claim(state, plan, index, now)?;
        if !router.claim_global(state, index, &mut permit).await {
            return None;
        }
        let started = Instant::now();
        match open(state, upstream, request).await {
            Ok(Opened { socket, headers }) => {
                if let Some(decision) = record.decision.as_mut() {
                    decision.chosen = Some(upstream.key().to_string());
                    decision.why = Some(why);
                }
                return Some(Connected {
                    socket,
                    headers,
                    upstream: upstream.clone(),
                    permit,
                    probe,
                    alone: router.tried.len() == 1,
                });
            }
            Err(NotOpened::Refused { status }) => {
                // Not the relay's health: it answers, just not this transport.
                drop(probe);
                refusals.remember(upstream.key().as_str(), path, status, now);
                return None;
            }
            Err(NotOpened::Failed { outcome, class }) => {
                let duration_ms = started.elapsed().as_millis() as u64;
                let attempt = attempt_on(upstream, outcome, duration_ms);
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
    match handshake(state, upstream).await {
        Ok(socket) => {
            drop(socket);
            Acceptance::Accepts
        }
        Err(refused) => refused,
    }
}

/// Opens a WebSocket to `upstream` as Codex's handshake would (with the helper's credential),
/// outside routing: for diagnostics. Deflate is agreed as for a bridged connection, so the
/// socket reads and writes plain frames.
pub async fn handshake(
    state: &ProxyState,
    upstream: &Upstream,
) -> Result<Box<dyn UpgradedIo>, Acceptance> {
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
        Ok(opened) => Ok(opened.socket),
        Err(NotOpened::Refused { status }) => Err(Acceptance::Refuses { status }),
        Err(NotOpened::Failed { outcome, .. }) => Err(Acceptance::Unreachable {
            error: attempt_on(upstream, outcome, 0).summary(),
        }),
    }
}

/// A relay's open WebSocket: its socket (inflating and deflating when the relay agreed to
/// permessage-deflate) and the headers it answered with.
struct Opened {
    socket: Box<dyn UpgradedIo>,
    headers: HeaderMap,
}

/// Why a relay's WebSocket did not open.
enum NotOpened {
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
) -> Result<Opened, NotOpened> {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let url = upstream.base_url.join(&request.path_and_query);
    let mut builder = Request::get(&url);
    if let Some(h) = builder.headers_mut() {
        *h = handshake_headers(state, upstream, request, &key);
    }
    let Ok(handshake) = builder.body(Bytes::new()) else {
        let error = "the relay's URL is not usable for a WebSocket".into();
        return Err(connect_failed(error));
    };
    let client = state
        .websocket_client(upstream)
        .map_err(|e| connect_failed(format!("{e:#}")))?;
    let timeout = Duration::from_millis(state.settings.response_header_timeout_ms);
    let (status, answer, socket) =
        match tokio::time::timeout(timeout, client.handshake(handshake)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.connect => return Err(connect_failed(e.message)),
            Ok(Err(e)) => return Err(transport_failed(e.message)),
            Err(_) => {
                let after_ms = timeout.as_millis() as u64;
                return Err(NotOpened::Failed {
                    outcome: AttemptOutcome::Timeout { after_ms },
                    class: FailureClass::HeaderTimeout,
                });
            }
        };
    match socket {
        Some(socket) => verify_switch(socket, answer, &key),
        None => Err(not_switched(status)),
    }
}

/// The handshake's headers for the relay: the client's, with the helper's credential and
/// loop stamp, and this side's own WebSocket key and deflate offer.
fn handshake_headers(
    state: &ProxyState,
    upstream: &Upstream,
    request: &ClientRequest,
    key: &str,
) -> HeaderMap {
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
    headers.insert(
        "sec-websocket-extensions",
        HeaderValue::from_static(negotiate::OFFER),
    );
    if let Ok(key) = HeaderValue::from_str(key) {
        headers.insert("sec-websocket-key", key);
    }
    headers
}

/// A relay's `101`: its socket, once its accept key matches `key`, inflating and deflating
/// when it agreed to permessage-deflate.
fn verify_switch(
    socket: Box<dyn UpgradedIo>,
    answer: HeaderMap,
    key: &str,
) -> Result<Opened, NotOpened> {
    let accept = answer
        .get("sec-websocket-accept")
        .map(HeaderValue::as_bytes);
    if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        let error = "the relay's WebSocket handshake answer does not match its key";
        return Err(transport_failed(error.into()));
    }
    let socket: Box<dyn UpgradedIo> =
        match negotiate::read_answer(&answer).map_err(transport_failed)? {
            Some(agreed) => Box::new(Deflated::new(socket, agreed, MAX_MESSAGE_BYTES)),
            None => socket,
        };
    Ok(Opened {
        socket,
        headers: answer,
    })
}

/// A relay's answer other than `101`. One that says try elsewhere (5xx, 429, a redirect,
/// which is not followed) fails over as over HTTP; any other refuses the transport.
fn not_switched(status: StatusCode) -> NotOpened {
    let class = classify_status(status.as_u16(), None, false, "", "");
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || class == FailureClass::Redirect
    {
        let outcome = AttemptOutcome::FailedStatus {
            status: status.as_u16(),
            class,
            retry_after_secs: None,
            body_preview: String::new(),
        };
        return NotOpened::Failed { outcome, class };
    }
    NotOpened::Refused {
        status: status.as_u16(),
    }
}

/// The relay could not be reached (or its URL or route not used): fail over.
fn connect_failed(error: String) -> NotOpened {
    NotOpened::Failed {
        outcome: AttemptOutcome::ConnectError { error },
        class: FailureClass::Connect,
    }
}

/// The handshake broke or its answer was wrong: fail over.
fn transport_failed(error: String) -> NotOpened {
    NotOpened::Failed {
        outcome: AttemptOutcome::TransportError { error },
        class: FailureClass::Transport,
    }
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
    fn a_refusal_is_remembered_for_a_while_for_its_endpoint_and_path() {
        let refusals = Refusals::default();
        let path = "/v1/responses";
        refusals.remember("a.default", path, 404, 1_000);
        assert!(refusals.refused("a.default", path, 1_000 + REFUSAL_MEMORY_MS - 1));
        assert!(!refusals.refused("a.default", path, 1_000 + REFUSAL_MEMORY_MS));
        assert!(!refusals.refused("b.default", path, 1_000));
        // A refusal at a path Codex does not use leaves Codex's path alone.
        refusals.remember("c.default", "/v1/other/responses", 404, 1_000);
        assert!(refusals.refused("c.default", "/v1/other/responses", 1_000));
        assert!(!refusals.refused("c.default", path, 1_000));
    }

    #[test]
    fn refusals_past_the_cap_are_not_remembered_and_expired_ones_make_room() {
        let refusals = Refusals::default();
        for n in 0..MAX_REFUSALS + 10 {
            refusals.remember("a.default", &format!("/{n}/responses"), 404, 1_000);
        }
        assert_eq!(refusals.0.lock().unwrap().len(), MAX_REFUSALS);
        assert!(!refusals.refused("a.default", "/300/responses", 1_000));
        let later = 1_000 + REFUSAL_MEMORY_MS;
        refusals.remember("a.default", "/v1/responses", 404, later);
        assert!(refusals.refused("a.default", "/v1/responses", later));
        assert_eq!(refusals.0.lock().unwrap().len(), 1);
    }
}
