//! The life of one request, as named phases, read top to bottom in [`handle`]:
//!
//! 1. **receive**: admit the request ([`guard::admit`]: no browser, a loopback or allowed
//!    name, a path that stays in place), read and decode its body, and identify it (model,
//!    stream flag, relay-bound state, session: [`super::receive`]). Refusals are answered
//!    here, before any relay is contacted.
//! 2. **plan**: the plan in force (route graph, retry policy, profiles; swapped whole on
//!    reload), and the session's overrides applied to the request ([`overrides`]: body
//!    values, a route pin) so that routing and model mapping see what will be sent.
//! 3. **select**: the next candidate ([`Router`]: health, signals, limits, affinity policy),
//!    under a concurrency [`Permit`] and a [`HealthProbe`].
//! 4. **attempt**: build, send and classify one try ([`attempt::try_upstream`]); between
//!    build and send, **4a filter**: the `filter.json` rules on the body, after the relay's
//!    model mapping ([`super::filter`]).
//! 5. **decide**: the retry policy says retry the same endpoint, fail over (back to 3), or
//!    answer ([`attempt_endpoint`]). A client error is answered as the relay sent it.
//! 6. **respond**: shape the answer for Codex ([`translate_catalog`]) and stream it through
//!    the tap ([`relay_response`]), which holds the permit and the probe until the body ends.
//! 7. **record**: the [`RequestRecord`] is finished once, when the body ends or the reply is
//!    written (its [`RecordGuard`] makes sure of it).
//!
//! Failover happens only before the first byte reaches the client; after that a broken stream
//! is ended with `response.failed` by the relay body, and counts against the endpoint's health.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, header};

use super::attempt::{self, Answer, AnswerBody, Tried};
use super::body_budget::BodyHold;
use super::client_key;
use super::guard;
use super::headers::client_response_headers;
use super::health;
use super::images;
use super::loops;
use super::member_limits;
use super::members;
use super::overrides::{self, Overridden};
use super::receive::{ClientRequest, decode_body, read_body};
use super::record::AttemptOutcome;
use super::record::{Attempt, Outcome, RecordGuard, RequestRecord, attempt_on};
use super::relay_body::{ChunkStream, ProxyBody, RelayBody};
use super::replies::{self, Refusal};
use super::router::Router;
use super::team_state;
use super::websocket;
use super::{Plan, ProxyState};
use crate::routing::Upstream;
use crate::routing::retry::{Action, Cooldown, FailureClass};
use crate::routing::runtime::{HealthProbe, Permit};
use crate::routing::select::{Choice, Skip, Why};
use crate::time::now_ms;

/// Handles one client request from start to end. Never fails: every problem becomes a response.
pub async fn handle<B>(state: Arc<ProxyState>, request: Request<B>) -> Response<ProxyBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (mut parts, body) = request.into_parts();
    if let Some(response) = health::answer(&state, &parts.method, parts.uri.path()) {
        return response;
    }
    let mut record = new_record(&state, &parts);
    if let Err(refusal) = authenticate(&state, &mut parts, &mut record).await {
        return refuse_unauthenticated(refusal, record);
    }
    if websocket::is_upgrade(&parts.headers) {
        return upgrade_to_websocket(state, parts, record).await;
    }

    // 1. receive (the body's bytes held of the budget until this function returns, when the
    // request and its body are dropped)
    let (request, _body_hold) = match receive(&state, parts, body, &mut record).await {
        Ok(received) => received,
        Err(refusal) => return refusal.answer(record),
    };
    record.announce();

    // 1b. team mode: the member's own limits (requests a minute, money a day)
    if let Err(response) = member_limits::enforce(&state, request.codex_stream, &mut record).await {
        return response;
    }

    // 2. plan
    let plan = state.plan();
    if plan.graph.upstreams.is_empty() {
        return replies::no_relay(&state.config_path).answer(record);
    }

    // 2b. the session's overrides: body values and a route pin, before routing sees it
    let (request, overridden) = overrides::apply(&state, &plan, request).await;

    // The Images API is served as a Responses call with the hosted image tool.
    if let Some(entry) = images::Entry::of(&request.method, &request.path_and_query) {
        return images_call(&state, &plan, &request, &overridden, entry, record).await;
    }

    // 3–5. select, attempt, decide
    team_state::adopt_team_binding(&state, &plan.graph, &request).await;
    let mut router = Router::new(&state, &plan.graph, &request, &overridden);
    match route(&state, &plan, &request, &mut router, &mut record).await {
        // 6. respond: the body's start gathered first, so the head leaves with it (awaited
        // here, where each turn's poll of this future is cheap)
        Routed::Chosen(chosen) => {
            let mut response = respond(&state, &plan, &request, chosen, record).await;
            if let ProxyBody::Relay(body) = response.body_mut() {
                body.gather_start().await;
            }
            response
        }
        Routed::Nowhere { skips } => unroutable(&request, record, &router, &skips),
        Routed::Bound { upstream, skip } => {
            continuity_broken(&request, record, upstream, skip.as_ref())
        }
    }
}

/// Checks the client key (asked of peers that are not on loopback) and, in team mode, the
/// member's key, naming the member on the record. A key that was checked is taken off the
/// headers, so no relay sees it.
async fn authenticate(
    state: &ProxyState,
    parts: &mut Parts,
    record: &mut RecordGuard,
) -> Result<(), Refusal> {
    let peer = parts.extensions.get::<client_key::Peer>().map(|p| p.0);
    client_key::check(state.client_key.as_ref(), peer, &mut parts.headers)?;
    if let Some(keys) = &state.member_keys {
        let (member, key) = members::check(keys.as_ref(), &mut parts.headers).await?;
        record.user = Some(member);
        // A WebSocket checks it again at each response (see `websocket::bridge`).
        parts.extensions.insert(key);
    }
    Ok(())
}

/// A WebSocket upgrade: admitted as an HTTP request is ([`guard::admit`]: browsers, host,
/// path, forwarding loops; then the member's limits), then answered by
/// [`websocket::upgrade`].
async fn upgrade_to_websocket(
    state: Arc<ProxyState>,
    parts: Parts,
    mut record: RecordGuard,
) -> Response<ProxyBody> {
    if let Err(refusal) = guard::admit(&parts, &state.settings.allowed_hosts, &state.instance) {
        return refusal.answer(record);
    }
    if let Err(response) = member_limits::enforce(&state, false, &mut record).await {
        return response;
    }
    websocket::upgrade(state, parts, record).await
}

/// A refusal for a missing or bad client or member key: with how to authenticate, and when a
/// key check could not be made, when to try again.
fn refuse_unauthenticated(refusal: Refusal, record: RecordGuard) -> Response<ProxyBody> {
    let unavailable = refusal.status == http::StatusCode::SERVICE_UNAVAILABLE;
    let mut response = refusal.answer(record);
    let (name, value) = client_key::challenge();
    response.headers_mut().insert(name, value);
    if unavailable {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(members::UNAVAILABLE_RETRY_AFTER_SECS),
        );
    }
    response
}

/// The record a request starts with: who asked, for what, under which preset.
fn new_record(state: &ProxyState, parts: &Parts) -> RecordGuard {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut record = RecordGuard::new(
        RequestRecord::new(
            state.next_trace_id(),
            parts.method.to_string(),
            parts.uri.path().to_string(),
        ),
        state.sink.clone(),
    );
    record.client = header(header::USER_AGENT.as_str());
    record.thread_id = header("thread-id");
    record.preset = state.client().preset_name();
    record
}

/// Phase 1: admit, read, decode, identify.
async fn receive<B>(
    state: &ProxyState,
    parts: Parts,
    body: B,
    record: &mut RecordGuard,
) -> Result<(ClientRequest, BodyHold), Refusal>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    guard::admit(&parts, &state.settings.allowed_hosts, &state.instance)?;
    let (raw, mut hold) = read_body(body, &state.settings, &state.body_budget).await?;
    record.bytes_in = raw.len() as u64;
    let (body, body_decoded) = decode_body(state, &parts.headers, raw, &mut hold).await?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
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
    Ok((request, hold))
}

/// Where phases 3–5 ended.
// `Chosen` is the common case and moves once per request: not worth a heap allocation.
#[allow(clippy::large_enum_variant)]
enum Routed<'a> {
    /// An answer for the client, with what it holds until its body ends.
    Chosen(Chosen<'a>),
    /// No candidate could take the request (the router says why).
    Nowhere { skips: Vec<Option<Skip>> },
    /// The session's endpoint is unavailable and the request cannot go anywhere else.
    Bound {
        upstream: &'a Upstream,
        skip: Option<Skip>,
    },
}

/// The answer chosen for the client and the endpoint it came from.
struct Chosen<'a> {
    answer: Answer,
    /// Its candidate in the router.
    index: usize,
    upstream: &'a Upstream,
    why: Why,
    permit: Permit,
    /// The endpoint's health verdict, given when the body ends; `None` for an answer that
    /// says nothing about the endpoint (a client error).
    probe: Option<HealthProbe>,
}

/// Phases 3–5: select a candidate, try it as the retry policy allows, and fail over until
/// an answer can go to the client or nothing is left. `router` carries what the request has
/// learned, so a caller that finds the chosen answer unusable can mark it and route again.
async fn route<'a>(
    state: &ProxyState,
    plan: &'a Plan,
    request: &'a ClientRequest,
    router: &mut Router<'a>,
    record: &mut RecordGuard,
) -> Routed<'a> {
    loop {
        let (skips, choice, now) = router.choose(state, record);
        let (index, why) = match choice {
            Choice::Pick { candidate, why } => (candidate, why),
            Choice::None => return Routed::Nowhere { skips },
            Choice::ContinuityBroken { candidate } => {
                let upstream = router.upstream(candidate);
                let skip = skips[candidate].clone();
                return Routed::Bound { upstream, skip };
            }
        };
        let upstream = router.upstream(index);
        let Some((mut permit, probe)) = router.claim(state, plan, index, now) else {
            continue;
        };
        if !router.claim_global(state, index, &mut permit).await {
            continue;
        }
        let (answer, probe) = match attempt_endpoint(state, plan, request, upstream, record).await {
            Verdict::Answered(answer) => {
                remember_affinity(state, router, upstream.key().as_str(), record);
                (answer, Some(probe))
            }
            // A client error judges neither the endpoint nor the session's place.
            Verdict::Returned(answer) => (answer, None),
            Verdict::FailedOver { class, cooldown } => {
                let summary = record
                    .attempts
                    .last()
                    .map(Attempt::summary)
                    .unwrap_or_default();
                probe.failed(cooldown, summary);
                router.tried[index] = true;
                router.last_failure = Some(class);
                continue;
            }
        };
        return Routed::Chosen(Chosen {
            answer,
            index,
            upstream,
            why,
            permit,
            probe,
        });
    }
}

/// How the tries on one endpoint ended.
enum Verdict {
    /// A successful answer.
    Answered(Answer),
    /// An answer passed on as the relay sent it (a client error): it says nothing about the
    /// endpoint's health and binds no session.
    Returned(Answer),
    /// The endpoint failed; the request moves on.
    FailedOver {
        class: FailureClass,
        cooldown: Cooldown,
    },
}

/// Phases 4–5 on one endpoint: try, then retry the same endpoint, answer or fail over as the
/// retry policy decides.
async fn attempt_endpoint(
    state: &ProxyState,
    plan: &Plan,
    request: &ClientRequest,
    upstream: &Upstream,
    record: &mut RecordGuard,
) -> Verdict {
    let mut attempt_no = 1;
    loop {
        let started = Instant::now();
        let (outcome, tried) = attempt::try_upstream(state, plan, request, upstream).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        record
            .attempts
            .push(attempt_on(upstream, outcome, duration_ms));
        let (failure, answer) = match tried {
            Tried::Answer(answer) => return Verdict::Answered(answer),
            Tried::Failed { failure, answer } => (failure, answer),
        };
        match (plan.retry.decide(&failure, attempt_no, jitter()), answer) {
            (Action::RetrySame { delay_ms }, _) => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                attempt_no += 1;
            }
            (Action::Return, Some(answer)) => return Verdict::Returned(answer),
            (Action::Return, None) => {
                let cooldown = Cooldown::None;
                return Verdict::FailedOver {
                    class: failure.class,
                    cooldown,
                };
            }
            (Action::Failover { cooldown }, _) => {
                return Verdict::FailedOver {
                    class: failure.class,
                    cooldown,
                };
            }
        }
    }
}

/// After a success: bind the session to this endpoint (or note that it stayed).
fn remember_affinity(
    state: &ProxyState,
    router: &Router<'_>,
    upstream: &str,
    record: &mut RecordGuard,
) {
    let Some(session) = router.session else {
        return;
    };
    let change = state.routing.affinity.record_success(
        session,
        &router.graph.key,
        upstream,
        now_ms(),
        router.last_failure,
    );
    team_state::share_binding(
        state,
        session,
        &router.graph.key,
        change,
        router.affinity.as_ref(),
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
    router: &Router<'_>,
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
    let earliest = skips.iter().flatten().filter_map(Skip::left_ms).min();
    let retry_after = earliest.map(|left| left.div_ceil(1000));
    let skipped: Vec<(String, String)> = skips
        .iter()
        .enumerate()
        .filter_map(|(i, skip)| {
            skip.as_ref()
                .filter(|s| **s != Skip::Tried)
                .map(|s| (router.upstream(i).key().to_string(), s.describe()))
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
    let retry_after = skip.and_then(Skip::left_ms).map(|left| left.div_ceil(1000));
    let transient = skip.is_some_and(|s| s.is_transient() || *s == Skip::Tried);
    let response = replies::continuity_broken(
        request.codex_stream,
        upstream.key().as_str(),
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

/// Phase 6: the chosen answer, shaped for Codex and streamed back through the tap.
async fn respond(
    state: &ProxyState,
    plan: &Plan,
    request: &ClientRequest,
    chosen: Chosen<'_>,
    mut record: RecordGuard,
) -> Response<ProxyBody> {
    let Chosen {
        answer,
        index: _,
        upstream,
        why,
        permit,
        probe,
    } = chosen;
    let answer = translate_catalog(state, request, answer).await;
    note_chosen(&mut record, upstream, why, answer.model_sent.clone());
    relay_response(state, plan, answer, record, permit, probe)
}

/// The record learns where the request went, why, and with which model.
fn note_chosen(
    record: &mut RecordGuard,
    upstream: &Upstream,
    why: Why,
    model_sent: Option<String>,
) {
    if let Some(decision) = record.decision.as_mut() {
        decision.chosen = Some(upstream.key().to_string());
        decision.why = Some(why);
    }
    record.provider = Some(upstream.provider.clone());
    record.endpoint = Some(upstream.endpoint.clone());
    record.model_sent = model_sent;
    record.price_multiplier = upstream.price_multiplier;
}

/// Phases 3–7 for an Images request ([`images`]): the Responses call that stands for it is
/// routed like any request; its answer is read whole and given in the Images shape, and the
/// proxy's own errors are reshaped to match. Since nothing reaches the client before the
/// whole answer is read, an unusable 2xx (a broken body, no image) fails over too.
async fn images_call(
    state: &ProxyState,
    plan: &Plan,
    request: &ClientRequest,
    overridden: &Overridden,
    entry: images::Entry,
    mut record: RecordGuard,
) -> Response<ProxyBody> {
    let call = match images::Call::new(entry, request).await {
        Ok(call) => call,
        Err(error) => return images::refuse(record, error),
    };
    record.model_requested = call.images_model.clone().or_else(|| {
        let facts = call.request.facts.as_ref();
        facts.and_then(|f| f.model.clone())
    });
    team_state::adopt_team_binding(state, &plan.graph, &call.request).await;
    let mut router = Router::new(state, &plan.graph, &call.request, overridden);
    let mut unusable: Option<images::Unusable> = None;
    loop {
        let routed = route(state, plan, &call.request, &mut router, &mut record).await;
        let chosen = match (routed, unusable.take()) {
            (Routed::Chosen(chosen), _) => chosen,
            // Nowhere left after an unusable answer: that answer's error says most.
            (_, Some(failed)) => return failed.give_up(record, plan),
            (Routed::Nowhere { skips }, None) => {
                return images::reshaped(unroutable(&call.request, record, &router, &skips));
            }
            (Routed::Bound { upstream, skip }, None) => {
                let broken = continuity_broken(&call.request, record, upstream, skip.as_ref());
                return images::reshaped(broken);
            }
        };
        let model_sent = chosen.answer.model_sent.clone();
        note_chosen(&mut record, chosen.upstream, chosen.why, model_sent);
        let (answer, permit, probe) = (chosen.answer, chosen.permit, chosen.probe);
        match call
            .answer(state, plan, answer, permit, probe, record)
            .await
        {
            images::Answered::Done(response) => return response,
            images::Answered::Unusable(back, failed) => {
                router.tried[chosen.index] = true;
                router.last_failure = Some(failed.class);
                record = *back;
                unusable = Some(failed);
            }
        }
    }
}

/// Phase 6, for the client: `/models`, a relay's list becomes the client's own catalog (for
/// Codex, built from its bundled metadata: see [`crate::proxy::ClientSide::catalog`]). Anything
/// else, or a failure to build it, passes through as the relay sent it.
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
    let client = state.client().clone();
    let built =
        tokio::task::spawn_blocking(move || client.catalog(&relay, client_version.as_deref()));
    match built.await {
        Ok(Ok(Some(out))) => answer.body = AnswerBody::Whole(Bytes::from(out.to_string())),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!("/models passed through untranslated: {e}"),
        Err(e) => tracing::warn!("/models passed through untranslated: {e}"),
    }
    answer
}

/// Passes an upstream response to the client, its body through the tap.
fn relay_response(
    state: &ProxyState,
    plan: &Plan,
    answer: Answer,
    mut record: RecordGuard,
    permit: Permit,
    probe: Option<HealthProbe>,
) -> Response<ProxyBody> {
    record.status = Some(answer.status.as_u16());
    let headers = client_response_headers(
        answer.headers,
        answer.body_decoded,
        record.model_requested.as_deref(),
        &plan.redactor,
    );
    let idle = match state.settings.stream_idle_timeout_ms {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    };
    let (stream, exact_len, tapped): (ChunkStream, _, _) = match answer.body {
        AnswerBody::Whole(bytes) => {
            let len = bytes.len() as u64;
            (
                Box::pin(futures_util::stream::once(async move { Ok(bytes) })),
                Some(len),
                None,
            )
        }
        AnswerBody::Stream(stream) => (stream, None, None),
        AnswerBody::Events { stream, tap, read } => (stream, None, Some((tap, read))),
    };
    let body = RelayBody::new(stream, exact_len, answer.sse, answer.json, idle, record)
        .resuming(tapped)
        .redacting(plan.redactor.clone())
        .counted(answer.sse.then(|| state.metrics.streams.track()))
        .holding(permit, probe);
    let mut reply = Response::new(ProxyBody::Relay(Box::new(body)));
    *reply.status_mut() = answer.status;
    *reply.headers_mut() = headers;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::retry::Cooldown;
    use crate::time::Clock;

    /// A proxy state from config text (no sockets are opened) on a manual clock.
    fn state(config: &str, env: &[(&str, &str)]) -> (Arc<ProxyState>, Clock) {
        crate::proxy::install_tls_provider();
        let path = std::path::Path::new("/test/config.toml");
        let loaded = crate::config::load::parse(path, &format!("version = 5\n{config}")).unwrap();
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let plan = Plan::from_config(&loaded, &lookup).unwrap();
        let clock = Clock::manual();
        let state = ProxyState::new(
            plan,
            crate::routing::affinity::AffinityStore::in_memory(),
            loaded.config.proxy.clone(),
            path.to_path_buf(),
            Arc::new(crate::record::NoSink),
        )
        .unwrap()
        .with_clock(clock.clone());
        (Arc::new(state), clock)
    }

    fn turn(session: &str) -> ClientRequest {
        let body = format!(r#"{{"model":"gpt-5.1","stream":true,"prompt_cache_key":"{session}"}}"#);
        ClientRequest::prepare(
            Method::POST,
            "/v1/responses".into(),
            http::HeaderMap::new(),
            Bytes::from(body),
            false,
        )
    }

    const TWO: &str = "[codex.providers.a]\nbase_url = \"http://127.0.0.1:9/v1\"\nauth_token_env = \"A_KEY\"\n[codex.providers.b]\nbase_url = \"http://127.0.0.1:9/v1\"\nlimits = { max_concurrent_requests = 1 }\n[codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"a\", \"b\"]\n";

    #[tokio::test]
    async fn a_decoded_body_takes_what_it_grows_by_from_the_budget() {
        use std::io::Write;
        let config = format!(
            "[proxy]\nmax_request_body_bytes = 1000\nmax_decoded_body_bytes = 100000\nmax_request_bytes_in_flight = 100000\n{TWO}"
        );
        let (state, _) = state(&config, &[]);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&[b' '; 60_000]).unwrap();
        let raw = Bytes::from(gzip.finish().unwrap());
        let mut headers = http::HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let budget = &state.body_budget;

        // Another request holds half the budget: 60,000 decoded bytes no longer fit.
        let mut other = BodyHold::default();
        budget.take(&mut other, 50_000).unwrap();
        let mut hold = BodyHold::default();
        budget.take(&mut hold, raw.len()).unwrap();
        let refused = decode_body(&state, &headers, raw.clone(), &mut hold)
            .await
            .expect_err("over the budget once decoded");
        assert_eq!(refused.code, "request_bodies_over_budget");
        assert_eq!(hold.bytes(), raw.len(), "a refused growth takes nothing");

        drop(other);
        let (body, decoded) = decode_body(&state, &headers, raw, &mut hold)
            .await
            .unwrap_or_else(|_| panic!("fits once the other is done"));
        assert!(decoded);
        assert_eq!((body.len(), hold.bytes()), (60_000, 60_000));
    }

    #[test]
    fn select_sees_every_candidate_and_why_one_is_skipped() {
        let (state, clock) = state(TWO, &[]);
        let plan = state.plan();
        let request = turn("s1");
        let none = Overridden::default();
        let router = Router::new(&state, &plan.graph, &request, &none);
        let skips = router.skips(&state, clock.now());
        let decision = router.decision(&skips);
        let names: Vec<&str> = decision
            .candidates
            .iter()
            .map(|c| c.upstream.as_str())
            .collect();
        assert_eq!(names, ["a.default", "b.default"]);
        assert!(
            matches!(skips[0], Some(Skip::MissingCredential { ref vars }) if vars == &["A_KEY"]),
            "{skips:?}"
        );
        assert!(matches!(
            router.select(&skips, crate::time::now_ms()),
            Choice::Pick {
                candidate: 1,
                why: Why::Failover
            }
        ));
    }

    #[test]
    fn claim_takes_the_slot_and_the_probe_or_says_why_not() {
        let (state, clock) = state(TWO, &[("A_KEY", "k")]);
        let plan = state.plan();
        let request = turn("s1");
        let none = Overridden::default();
        let mut router = Router::new(&state, &plan.graph, &request, &none);
        let now = clock.now();

        // `b` allows one request at a time: a second claim finds the group full.
        let (permit, probe) = router.claim(&state, &plan, 1, now).expect("a free slot");
        assert!(router.claim(&state, &plan, 1, now).is_none());
        assert!(router.saturated[1], "the next selection sees it");
        drop((permit, probe));

        // `a` failed and cooled down; after the cooldown one claim is the probe, and another
        // request cannot claim it until the probe gives its verdict or goes away.
        let (_, probe) = router.claim(&state, &plan, 0, now).unwrap();
        probe.failed(Cooldown::Growing, "HTTP 502".into());
        assert!(
            router.claim(&state, &plan, 0, clock.now()).is_none(),
            "cooling down"
        );
        clock.advance(Duration::from_secs(3_600));
        let (_, probe) = router
            .claim(&state, &plan, 0, clock.now())
            .expect("the probe");
        let none = Overridden::default();
        let mut other = Router::new(&state, &plan.graph, &request, &none);
        assert!(
            other.claim(&state, &plan, 0, clock.now()).is_none(),
            "one probe"
        );
        drop(probe);
        assert!(
            other.claim(&state, &plan, 0, clock.now()).is_some(),
            "given back"
        );
    }

    #[test]
    fn a_new_record_names_the_client_thread_and_preset() {
        let (state, _) = state(TWO, &[]);
        let request = Request::post("/v1/responses")
            .header("user-agent", "codex_exec/0.171.0")
            .header("thread-id", "th-1")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let record = new_record(&state, &parts);
        assert_eq!(record.client.as_deref(), Some("codex_exec/0.171.0"));
        assert_eq!(record.thread_id.as_deref(), Some("th-1"));
        assert_eq!(
            (record.method.as_str(), record.path.as_str()),
            ("POST", "/v1/responses")
        );
        assert!(record.preset.is_none(), "not switched");
    }
}
