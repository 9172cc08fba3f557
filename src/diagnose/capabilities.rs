//! `relay-capabilities`: every probe on each endpoint, concurrently, then the preset fit and
//! the recommendation. Spends nothing (validation probes only) and changes nothing.

use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::exchange::{Limits, Sent, exchange};
use super::probe::{self, Basis, Probe, ProbeResult, Support};
use super::recommend::{self, Confidence, PresetFit, Recommendation};
use crate::codex::preset::{Compaction, Preset};
use crate::proxy::ProxyState;
use crate::proxy::websocket::{self, Acceptance};
use crate::routing::Upstream;

/// What to ask and what to judge it against.
#[derive(Debug, Clone)]
pub struct Options {
    /// The model to look up in `/models`, if any (probes never send one).
    pub model: Option<String>,
    /// The compaction the official presets would use.
    pub compaction: Compaction,
    /// Also probe hosted image generation.
    pub image: bool,
    /// The preset in force, to say whether the recommendation changes it.
    pub current: Option<Preset>,
    pub limits: Limits,
}

/// One endpoint's findings: what `--json` prints per endpoint and the evidence keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    pub provider: String,
    pub endpoint: String,
    /// The relay's host (and port): never a path, query or userinfo.
    pub host: String,
    pub probes: Vec<ProbeResult>,
    pub presets: Vec<PresetFit>,
    pub recommendation: Recommendation,
    /// The verdict in one line.
    pub summary: String,
}

/// Where a run is.
pub enum Progress<'a> {
    /// Probing of this endpoint begins.
    Started(&'a Upstream),
    /// This endpoint is done.
    Finished(&'a EndpointReport),
}

/// Probes every endpoint in `upstreams` at once; reports in the same order. `progress` is
/// called on the runtime's thread: it must not block (queue, don't write to a slow pipe).
pub async fn run(
    state: &ProxyState,
    upstreams: &[Upstream],
    options: &Options,
    progress: &(dyn Fn(Progress<'_>) + Send + Sync),
) -> Vec<EndpointReport> {
    join_all(upstreams.iter().map(|upstream| async move {
        progress(Progress::Started(upstream));
        let report = endpoint(state, upstream, options).await;
        progress(Progress::Finished(&report));
        report
    }))
    .await
}

/// The host of `upstream` as the evidence and reports show it.
pub fn host(upstream: &Upstream) -> String {
    let url = &upstream.base_url;
    let default_port = if url.scheme() == "https" { 443 } else { 80 };
    if url.port() == default_port {
        url.host().to_string()
    } else {
        format!("{}:{}", url.host(), url.port())
    }
}

async fn endpoint(state: &ProxyState, upstream: &Upstream, options: &Options) -> EndpointReport {
    let mut probes = Vec::new();
    if upstream.credential.missing_env.is_empty() {
        let mut asked = vec![
            Probe::Models,
            Probe::Responses,
            Probe::CompactV1,
            Probe::CompactV2,
        ];
        if options.image {
            asked.push(Probe::ImageGeneration);
        }
        let features: Vec<Probe> = asked
            .iter()
            .copied()
            .filter(|p| probe::control(*p).is_some())
            .collect();
        let http = join_all(
            asked
                .into_iter()
                .map(|p| http_probe(state, upstream, p, options)),
        );
        let (mut results, ws, controls) = tokio::join!(
            http,
            websocket_probe(state, upstream, options),
            controls(state, upstream, &features, options)
        );
        results.push(ws);
        if let Some(plain) = results
            .iter()
            .find(|r| r.probe == Probe::Responses)
            .cloned()
        {
            for (feature, refused) in controls {
                if let Some(result) = results.iter_mut().find(|r| r.probe == feature) {
                    probe::judge_unreached(result, &plain, refused);
                }
            }
        }
        // Without `/responses`, ask whether it speaks Chat Completions instead, to say why
        // Codex cannot use it.
        let missing = results
            .iter()
            .any(|r| r.probe == Probe::Responses && r.support == Support::Unsupported);
        if missing {
            results.push(http_probe(state, upstream, Probe::ChatCompletions, options).await);
        }
        probes = results;
    }
    let presets = recommend::fits(options.compaction, &probes);
    let (recommendation, summary) = if upstream.credential.missing_env.is_empty() {
        let recommendation = recommend::recommend(&presets, &probes, options.current);
        let summary = recommend::verdict(&recommendation, &presets);
        (recommendation, summary)
    } else {
        let why = format!(
            "its key's environment variable {} is not set, so nothing was sent",
            upstream.credential.missing_env.join(", ")
        );
        let recommendation = Recommendation {
            preset: None,
            confidence: Confidence::High,
            current: options.current,
            changes_current: false,
            reasons: vec![why.clone()],
        };
        (recommendation, format!("not probed: {why}"))
    };
    EndpointReport {
        provider: upstream.provider.clone(),
        endpoint: upstream.endpoint.clone(),
        host: host(upstream),
        probes,
        presets,
        recommendation,
        summary,
    }
}

/// Whether each feature probe's control was refused (see [`probe::control`]).
async fn controls(
    state: &ProxyState,
    upstream: &Upstream,
    features: &[Probe],
    options: &Options,
) -> Vec<(Probe, bool)> {
    join_all(features.iter().filter_map(|feature| {
        let (request, unknown) = probe::control(*feature)?;
        Some(async move {
            let (exchanged, _) = send(state, upstream, &request, options.limits).await;
            (*feature, probe::control_refused(&exchanged, unknown))
        })
    }))
    .await
}

/// Sends one probe's request.
async fn send(
    state: &ProxyState,
    upstream: &Upstream,
    request: &probe::Request,
    limits: Limits,
) -> (super::exchange::Exchanged, Duration) {
    let body = request.body.as_ref();
    let method = request.method.clone();
    exchange(
        state,
        upstream,
        method,
        request.path,
        request.headers,
        body,
        limits,
    )
    .await
}

async fn http_probe(
    state: &ProxyState,
    upstream: &Upstream,
    which: Probe,
    options: &Options,
) -> ProbeResult {
    let request = probe::request(which).expect("an HTTP probe");
    let (exchanged, took) = send(state, upstream, &request, options.limits).await;
    let (support, basis, status, reason, catalog) =
        probe::classify(which, &exchanged, options.model.as_deref());
    // Relay text (an error may quote the key) never leaves unmasked.
    let reason = super::exchange::scrubber(state)
        .redact(&reason)
        .into_owned();
    ProbeResult {
        probe: which,
        support,
        basis,
        status,
        ms: millis(took),
        reason,
        sent: request.sent(),
        catalog,
    }
}

async fn websocket_probe(
    state: &ProxyState,
    upstream: &Upstream,
    options: &Options,
) -> ProbeResult {
    let started = std::time::Instant::now();
    let timeout = options.limits.timeout;
    let acceptance = match tokio::time::timeout(timeout, websocket::probe(state, upstream)).await {
        Ok(acceptance) => acceptance,
        Err(_) => Acceptance::Unreachable {
            error: format!("no handshake answer within {} s", timeout.as_secs_f64()),
        },
    };
    let (support, basis, status, reason) = match acceptance {
        Acceptance::Accepts => (
            Support::Supported,
            Basis::Answered,
            Some(101),
            "the relay accepted the handshake".to_string(),
        ),
        Acceptance::Refuses { status } if status == 401 || status == 403 => (
            Support::AuthFailed,
            Basis::Refused,
            Some(status),
            format!("HTTP {status}: the relay refused the key"),
        ),
        Acceptance::Refuses { status } => (
            Support::Unsupported,
            Basis::Refused,
            Some(status),
            format!(
                "HTTP {status} instead of 101: Codex will use HTTP (the proxy tells it at once)"
            ),
        ),
        Acceptance::Unreachable { error } => {
            let error = super::exchange::scrubber(state).redact(&error).into_owned();
            (Support::Error, Basis::Inconclusive, None, error)
        }
    };
    ProbeResult {
        probe: Probe::Websocket,
        support,
        basis,
        status,
        ms: millis(started.elapsed()),
        reason,
        sent: Sent {
            method: "GET".into(),
            path: "/v1/responses".into(),
            shape: "a WebSocket handshake (openai-beta: responses_websockets=2026-02-06), closed at once".into(),
        },
        catalog: None,
    }
}

fn millis(took: Duration) -> u64 {
    took.as_millis().try_into().unwrap_or(u64::MAX)
}
