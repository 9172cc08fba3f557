//! The life of one request, as named phases:
//!
//! 0. [`guard::admit`]: refuse browser requests, foreign `Host` names and dot segments.
//! 1. [`read_body`] and [`decode_body`]: the client's bytes, decompressed and capped.
//! 2. [`ClientRequest::prepare`]: what the body says (model, stream flag, relay-bound state)
//!    and the session.
//! 3. plan: the route graph's candidates for this request, and the session's affinity.
//! 4. [`failover`]: select a candidate (health, limits, affinity policy), try it
//!    ([`attempt::try_upstream`]), and retry it, fail over or answer as the retry policy says.
//! 5. [`relay_response`]: stream the chosen answer back through the tap.
//! 6. record: the [`RequestRecord`] is finished once, when the body ends or the reply is
//!    written (its [`RecordGuard`] makes sure of it).
//!
//! Failover happens only before the first byte reaches the client; after that a broken stream
//! is ended with `response.failed` by the relay body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};

use super::attempt::{self, Answer, AnswerBody, Tried};
use super::coding::{self, DecodeError};
use super::guard;
use super::headers::client_response_headers;
use super::inspect::{self, BodyFacts};
use super::loops;
use super::record::AttemptOutcome;
use super::record::{Attempt, CandidateNote, Outcome, RecordGuard, RequestRecord, RouteDecision};
use super::relay_body::{ChunkStream, ProxyBody, RelayBody};
use super::replies::{self, Refusal};
use super::session;
use super::{Plan, ProxyState};
use crate::config::model::{BodyEncodingMode, ProxySettings};
use crate::routing::retry::{Action, Cooldown, FailureClass};
use crate::routing::runtime::Permit;
use crate::routing::select::{self, Choice, Skip};
use crate::routing::{Candidate, RequestView, RouteGraph, Upstream};
use crate::time::now_ms;

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

    record.preset = state.client_preset();
    record.thread_id = parts
        .headers
        .get("thread-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // Phase 0: admit (no browser, a loopback or allowed name, a path that stays in place).
    if let Err(refusal) = guard::admit(&parts, &state.settings.allowed_hosts, &state.instance) {
        return reject(record, refusal);
    }

    // Codex opens a Responses WebSocket first on the built-in provider (and on custom ones
    // with `supports_websockets`). Until the proxy bridges WebSockets, a 426 sends it to HTTP
    // at once; anything else costs it seven handshakes (seconds) per session.
    if is_websocket_upgrade(&parts.headers) {
        return reject(record, replies::websocket_unsupported());
    }

    // Phase 1: body.
    let raw = match read_body(body, &state.settings).await {
        Ok(raw) => raw,
        Err(refusal) => return reject(record, refusal),
    };
    record.bytes_in = raw.len() as u64;
    let (body, body_decoded) = match decode_body(&state, &parts.headers, raw).await {
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
    let plan = state.plan();
    if plan.graph.upstreams.is_empty() {
        return reject(record, replies::no_relay(&state.config_path));
    }

    // Phases 4 and 5.
    failover(&state, &plan, &request, record).await
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::UPGRADE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("websocket"))
    })
}

/// Finishes the record of a request refused before any upstream was tried.
fn reject(mut record: RecordGuard, refusal: Refusal) -> Response<ProxyBody> {
    record.status = Some(refusal.status.as_u16());
    let response = refusal.to_response();
    record.error = Some(refusal.message);
    record.finish(Outcome::Rejected);
    response
}

/// Reads the whole request body, up to `proxy.max_request_body_bytes`, within
/// `proxy.request_body_timeout_ms` (a stalled upload must not hold its connection forever).
async fn read_body<B>(body: B, settings: &ProxySettings) -> Result<Bytes, Refusal>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = settings.max_request_body_bytes;
    let timeout = Duration::from_millis(settings.request_body_timeout_ms);
    let read = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect();
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(Refusal {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "request_body_timeout",
            message: format!(
                "the request body did not arrive within {} ms (proxy.request_body_timeout_ms)",
                timeout.as_millis()
            ),
        }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "request_body_too_large",
            message: format!(
                "request body is larger than proxy.max_request_body_bytes ({limit} bytes)"
            ),
        }),
        Ok(Err(e)) => Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "request_body_read_error",
            message: format!("could not read the request body: {e}"),
        }),
    }
}

/// Undoes the body's `Content-Encoding` (unless in passthrough mode). Returns the body and
/// whether it was decoded.
///
/// Decoding runs on a blocking thread: a body can expand to the decoded-size cap, and the
/// proxy's one event-loop thread must not wait for that. Only a few decodes run at once
/// ([`ProxyState::decode_slots`]), so a crowd of compressed bombs costs a few times the cap,
/// not one cap per connection; a request waits for a slot as long as it may wait for its body.
async fn decode_body(
    state: &ProxyState,
    headers: &HeaderMap,
    raw: Bytes,
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
    let decoded = tokio::task::spawn_blocking(move || coding::decode(raw, &encodings, limit))
        .await
        .map_err(|e| Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            message: format!("decoding the request body failed: {e}"),
        })?;
    drop(slot);
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

/// Phase 4: choose, try, retry or fail over, until a response can go to the client.
async fn failover(
    state: &ProxyState,
    plan: &Plan,
    request: &ClientRequest,
    mut record: RecordGuard,
) -> Response<ProxyBody> {
    let graph = &plan.graph;
    let facts = request.facts.as_ref();
    let view = RequestView {
        method: request.method.as_str(),
        path: request.path_and_query.split('?').next().unwrap_or("/"),
        headers: &request.headers,
        model: facts.and_then(|f| f.model.as_deref()),
        service_tier: facts.and_then(|f| f.service_tier.as_deref()),
        reasoning_effort: facts.and_then(|f| f.reasoning_effort.as_deref()),
    };
    let candidates = graph.candidates(&view);
    let bound = facts.is_some_and(|f| f.relay_bound);
    let session = request.session.as_ref().map(|s| s.value.clone());
    let (affinity, affinity_view) =
        state
            .routing
            .affinity_for(session.as_deref(), graph, &candidates);
    let settings = graph.affinity_settings();
    let mut tried = vec![false; candidates.len()];
    let mut saturated = vec![false; candidates.len()];
    let mut last_failure: Option<String> = None;

    loop {
        let now = now_ms();
        let skips: Vec<Option<Skip>> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                state.routing.skip_reason(
                    &graph.upstreams[c.upstream],
                    view.model,
                    tried[i],
                    saturated[i],
                    now,
                )
            })
            .collect();
        if record.decision.is_none() {
            record.decision = Some(RouteDecision {
                graph_key: graph.key.clone(),
                affinity_policy: graph.affinity_policy,
                affinity: affinity.as_ref().map(|a| a.upstream.clone()),
                relay_bound: bound,
                candidates: candidates
                    .iter()
                    .zip(&skips)
                    .map(|(c, skip)| CandidateNote {
                        upstream: graph.upstreams[c.upstream].key(),
                        group: c.group,
                        route_path: c.route_path.clone(),
                        skip: skip.clone(),
                    })
                    .collect(),
                chosen: None,
                why: None,
                affinity_change: None,
            });
        }
        let (index, why) =
            match select::select(&candidates, &skips, affinity_view, settings, bound, now) {
                Choice::Pick { candidate, why } => (candidate, why),
                Choice::None => return unroutable(request, record, graph, &candidates, &skips),
                Choice::ContinuityBroken { candidate } => {
                    return continuity_broken(
                        request,
                        record,
                        &graph.upstreams[candidates[candidate].upstream],
                        skips[candidate].as_ref(),
                    );
                }
            };
        let upstream = &graph.upstreams[candidates[index].upstream];
        let key = upstream.key();
        let Some(permit) = state.routing.acquire(upstream.limit.as_ref()) else {
            saturated[index] = true;
            continue;
        };
        state.routing.update_health(&key, |h| h.begin(now_ms()));

        // Tries on this endpoint, as the retry policy allows.
        let mut attempt_no = 1;
        loop {
            let started = Instant::now();
            let (outcome, tried_result) =
                attempt::try_upstream(state, plan, request, upstream).await;
            record.attempts.push(Attempt {
                provider: upstream.provider.clone(),
                endpoint: upstream.endpoint.clone(),
                outcome,
                duration_ms: started.elapsed().as_millis() as u64,
            });
            let failure = match tried_result {
                Tried::Answer(answer) => {
                    let answer = translate_catalog(state, request, answer).await;
                    let client_error = !answer.status.is_success();
                    state.routing.update_health(&key, |h| {
                        if client_error {
                            h.on_neutral()
                        } else {
                            h.on_success()
                        }
                    });
                    if !client_error {
                        remember_affinity(
                            state,
                            graph,
                            session.as_deref(),
                            &key,
                            last_failure.as_deref(),
                            &mut record,
                        );
                    }
                    if let Some(decision) = record.decision.as_mut() {
                        decision.chosen = Some(key.clone());
                        decision.why = Some(why);
                    }
                    record.provider = Some(upstream.provider.clone());
                    record.endpoint = Some(upstream.endpoint.clone());
                    record.model_sent = answer.model_sent.clone();
                    record.price_multiplier = upstream.price_multiplier;
                    return relay_response(state, plan, answer, record, permit);
                }
                Tried::Failed(failure) => failure,
            };
            let summary = record
                .attempts
                .last()
                .map(Attempt::summary)
                .unwrap_or_default();
            match plan.retry.decide(&failure, attempt_no, jitter()) {
                Action::RetrySame { delay_ms } => {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    attempt_no += 1;
                }
                Action::Return => {
                    // Only client errors return, and those come back as answers.
                    tried[index] = true;
                    break;
                }
                Action::Failover { cooldown } => {
                    let now = now_ms();
                    let reason = format!("{:?}", failure.class).to_ascii_lowercase();
                    state.routing.update_health(&key, |h| match cooldown {
                        Cooldown::None => h.on_neutral(),
                        Cooldown::Growing => {
                            let ms = plan.retry.cooldown.duration_ms(h.streak);
                            h.on_failover(now, ms, summary.clone());
                        }
                        Cooldown::Fixed(ms) => h.on_failover(now, ms, summary.clone()),
                    });
                    last_failure = Some(reason);
                    tried[index] = true;
                    break;
                }
            }
        }
        drop(permit);
    }
}

/// After a success: bind the session to this endpoint (or note that it stayed).
fn remember_affinity(
    state: &ProxyState,
    graph: &RouteGraph,
    session: Option<&str>,
    upstream: &str,
    last_failure: Option<&str>,
    record: &mut RecordGuard,
) {
    let Some(session) = session else { return };
    let change = state
        .routing
        .affinity
        .lock()
        .expect("affinity lock")
        .record_success(
            session,
            &graph.key,
            upstream,
            now_ms(),
            || match last_failure {
                Some(class) => format!("failover_after_{class}"),
                None => "returned_to_preferred".to_string(),
            },
        );
    if let Some(decision) = record.decision.as_mut() {
        decision.affinity_change = change;
    }
}

/// A number in [0, 1) for backoff jitter, without a random-number dependency.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

/// Nothing can take the request: every candidate is skipped or failed.
fn unroutable(
    request: &ClientRequest,
    mut record: RecordGuard,
    graph: &RouteGraph,
    candidates: &[Candidate],
    skips: &[Option<Skip>],
) -> Response<ProxyBody> {
    let looping: Vec<String> = record
        .attempts
        .iter()
        .filter(|a| {
            matches!(
                a.outcome,
                AttemptOutcome::FailedStatus {
                    class: FailureClass::ForwardingLoop,
                    ..
                }
            )
        })
        .map(|a| format!("{}.{}", a.provider, a.endpoint))
        .collect();
    if !looping.is_empty() {
        let refusal = loops::forwarding_loop(&looping);
        record.status = Some(refusal.status.as_u16());
        let response = refusal.to_response();
        record.error = Some(refusal.message);
        record.finish(Outcome::AllUpstreamsFailed);
        return response;
    }
    let now = now_ms();
    let earliest = skips.iter().flatten().filter_map(Skip::until_ms).min();
    let retry_after = earliest.map(|until| until.saturating_sub(now).div_ceil(1000));
    let skipped: Vec<(String, String)> = candidates
        .iter()
        .zip(skips)
        .filter_map(|(c, skip)| {
            skip.as_ref()
                .filter(|s| **s != Skip::Tried)
                .map(|s| (graph.upstreams[c.upstream].key(), s.describe()))
        })
        .collect();
    let response = replies::unroutable(
        request.codex_stream,
        &record.attempts,
        &skipped,
        retry_after,
    );
    record.status = Some(response.status().as_u16());
    record.error = Some(if record.attempts.is_empty() {
        "no candidate was available".into()
    } else {
        "every upstream failed".into()
    });
    record.finish(Outcome::AllUpstreamsFailed);
    response
}

/// The session's endpoint is unavailable and the request cannot go anywhere else.
fn continuity_broken(
    request: &ClientRequest,
    mut record: RecordGuard,
    upstream: &Upstream,
    skip: Option<&Skip>,
) -> Response<ProxyBody> {
    let reason = skip
        .map(Skip::describe)
        .unwrap_or_else(|| "unavailable".into());
    let retry_after = skip
        .and_then(Skip::until_ms)
        .map(|until| until.saturating_sub(now_ms()).div_ceil(1000));
    let transient = skip.is_some_and(|s| s.is_transient() || *s == Skip::Tried);
    let response = replies::continuity_broken(
        request.codex_stream,
        &upstream.key(),
        &reason,
        transient.then(|| retry_after.unwrap_or(0)),
        &record.attempts,
    );
    record.status = Some(response.status().as_u16());
    record.error = Some(format!(
        "session bound to {} which is {reason}",
        upstream.key()
    ));
    record.finish(Outcome::ContinuityBroken);
    response
}

/// `/models` for Codex: a relay's OpenAI-style list becomes Codex's catalog, built from
/// Codex's own bundled metadata (see [`crate::codex::catalog`]). Anything else, or a failure to
/// get the metadata, passes through as the relay sent it.
async fn translate_catalog(
    state: &ProxyState,
    request: &ClientRequest,
    mut answer: Answer,
) -> Answer {
    let (path, query) = request
        .path_and_query
        .split_once('?')
        .unwrap_or((&request.path_and_query, ""));
    let is_catalog =
        request.method == Method::GET && path.trim_end_matches('/').ends_with("/models");
    let AnswerBody::Whole(bytes) = &answer.body else {
        return answer;
    };
    if !is_catalog || !answer.status.is_success() {
        return answer;
    }
    let Ok(relay) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return answer;
    };
    let client_version = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("client_version="))
        .map(str::to_string);
    let catalog = state.catalog.clone();
    match tokio::task::spawn_blocking(move || catalog.for_version(client_version.as_deref())).await
    {
        Ok(Ok(models)) => {
            if let Some(out) = crate::codex::catalog::translate(&relay, &models) {
                answer.body = AnswerBody::Whole(Bytes::from(out.to_string()));
            }
        }
        Ok(Err(e)) => tracing::warn!("/models passed through untranslated: {e}"),
        Err(e) => tracing::warn!("/models passed through untranslated: {e}"),
    }
    answer
}

/// Phase 5: passes an upstream response to the client, its body through the tap.
fn relay_response(
    state: &ProxyState,
    plan: &Plan,
    answer: Answer,
    mut record: RecordGuard,
    permit: Permit,
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
    let body = RelayBody::new(stream, exact_len, answer.sse, answer.json, idle, record)
        .redacting(plan.redactor.clone())
        .holding(permit);
    let mut reply = Response::new(ProxyBody::Relay(Box::new(body)));
    *reply.status_mut() = answer.status;
    *reply.headers_mut() = headers;
    reply
}
