//! Relay diagnostics: what a relay really supports for Codex, proven without spending
//! (`capabilities`) or with a few small, acknowledged model calls (`smoke`), each run kept
//! as sanitized evidence (`evidence`).
//!
//! Diagnostics talk to one endpoint directly, through its own outbound route and with its own
//! credential, but outside routing: nothing here touches health, affinity, limits, balances or
//! the ledger, and nothing reads the evidence back into a decision. Every probe has a timeout
//! and a body cap, follows no redirect, and treats an HTML page or a non-JSON 200 as a failure.
//!
//! [`relay_capabilities`] and [`relay_live_smoke`] are the two operations as the commands, the
//! admin API and the TUI run them: targets chosen, progress reported, evidence written.

pub mod capabilities;
pub mod evidence;
pub mod exchange;
pub mod probe;
pub mod recommend;
pub mod smoke;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::Serialize;

use self::capabilities::EndpointReport;
use self::evidence::{EvidenceKind, EvidenceLog, EvidenceRecord};
use self::exchange::Limits;
use self::smoke::{Case, SmokeReport};
use crate::proxy::ProxyState;
use crate::routing::Upstream;

/// What a run needs besides its question.
pub struct Context<'a> {
    /// A state built for the run (`ProxyState::for_command`): its plan, clients, redactor.
    pub state: &'a ProxyState,
    /// Where the evidence goes.
    pub evidence: EvidenceLog,
    /// The Codex binary, asked for its version for the evidence.
    pub codex_binary: PathBuf,
}

/// Which endpoints: all enabled ones, one provider's, or one endpoint.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub provider: Option<String>,
    pub endpoint: Option<String>,
}

/// Where a run's evidence went.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceNote {
    pub path: String,
    /// The records written, one per endpoint.
    pub ids: Vec<String>,
    /// Why it could not be written, if it could not (the run's result stands).
    pub error: Option<String>,
}

/// Probes the targets at once and writes their evidence.
pub async fn relay_capabilities(
    ctx: &Context<'_>,
    targets: &Targets,
    options: &capabilities::Options,
    progress: &(dyn Fn(capabilities::Progress<'_>) + Send + Sync),
) -> anyhow::Result<(Vec<EndpointReport>, EvidenceNote)> {
    let upstreams = chosen(&ctx.state.plan().graph.upstreams, targets)?;
    let reports = capabilities::run(ctx.state, &upstreams, options, progress).await;
    let entries = reports
        .iter()
        .map(|r| Entry::of(&r.provider, &r.endpoint, &r.host, r))
        .collect();
    let note = write_evidence(
        ctx,
        EvidenceKind::Capabilities,
        options.model.clone(),
        entries,
    )
    .await;
    Ok((reports, note))
}

/// The live smoke test on one endpoint. Refuses, before anything is sent, without the exact
/// acknowledgement ([`smoke::ACKNOWLEDGEMENT`]), without a model, or with more than one
/// endpoint targeted.
pub async fn relay_live_smoke(
    ctx: &Context<'_>,
    acknowledgement: Option<&str>,
    targets: &Targets,
    model: &str,
    cases: &[Case],
    limits: Limits,
    progress: &(dyn Fn(smoke::Progress<'_>) + Send + Sync),
) -> anyhow::Result<(SmokeReport, EvidenceNote)> {
    smoke::check_acknowledgement(acknowledgement).map_err(anyhow::Error::msg)?;
    let model = model.trim();
    if model.is_empty() {
        bail!("the live smoke test needs a model to call");
    }
    let upstreams = chosen(&ctx.state.plan().graph.upstreams, targets)?;
    let [upstream] = upstreams.as_slice() else {
        let names: Vec<String> = upstreams.iter().map(|u| u.key().to_string()).collect();
        bail!(
            "the live smoke test runs on one endpoint at a time; choose one with --provider (and --endpoint): {}",
            names.join(", ")
        );
    };
    if !upstream.credential.missing_env.is_empty() {
        bail!(
            "{}: its key's environment variable {} is not set; nothing was sent",
            upstream.key(),
            upstream.credential.missing_env.join(", ")
        );
    }
    let report = smoke::run(ctx.state, upstream, model, cases, limits, progress).await;
    let entries = vec![Entry::of(
        &report.provider,
        &report.endpoint,
        &report.host,
        &report,
    )];
    let note = write_evidence(
        ctx,
        EvidenceKind::LiveSmoke,
        Some(model.to_string()),
        entries,
    )
    .await;
    Ok((report, note))
}

/// The enabled endpoints `targets` names; an error that lists them when it names none.
pub fn chosen(upstreams: &[Upstream], targets: &Targets) -> anyhow::Result<Vec<Upstream>> {
    let (provider, endpoint) = (targets.provider.as_deref(), targets.endpoint.as_deref());
    if endpoint.is_some() && provider.is_none() {
        bail!("an endpoint is named within a provider: give the provider too");
    }
    let chosen: Vec<Upstream> = upstreams
        .iter()
        .filter(|u| provider.is_none_or(|p| u.provider == p))
        .filter(|u| endpoint.is_none_or(|e| u.endpoint == e))
        .cloned()
        .collect();
    if chosen.is_empty() {
        let asked = match (provider, endpoint) {
            (Some(p), Some(e)) => format!("no enabled endpoint {p}.{e}"),
            (Some(p), None) => format!("no enabled provider `{p}`"),
            _ => "no enabled relay endpoint".to_string(),
        };
        let all: Vec<String> = upstreams.iter().map(|u| u.key().to_string()).collect();
        let known = if all.is_empty() {
            "none is configured (see `codex-helper provider add`)".to_string()
        } else {
            format!("enabled: {}", all.join(", "))
        };
        bail!("{asked}; {known}");
    }
    Ok(chosen)
}

/// One endpoint's record to write.
struct Entry {
    provider: String,
    endpoint: String,
    host: String,
    payload: serde_json::Value,
}

impl Entry {
    fn of(provider: &str, endpoint: &str, host: &str, report: &impl Serialize) -> Self {
        Entry {
            provider: provider.into(),
            endpoint: endpoint.into(),
            host: host.into(),
            payload: serde_json::to_value(report).unwrap_or_default(),
        }
    }
}

/// Appends one record per entry (on a blocking thread: a file, and `codex --version`); a
/// failure is noted, never fatal.
async fn write_evidence(
    ctx: &Context<'_>,
    kind: EvidenceKind,
    model: Option<String>,
    entries: Vec<Entry>,
) -> EvidenceNote {
    let log = ctx.evidence.clone();
    let binary = ctx.codex_binary.clone();
    let redactor = exchange::scrubber(ctx.state);
    let path = log.path().display().to_string();
    let written = tokio::task::spawn_blocking(move || {
        let codex_version = crate::codex::version::installed(&binary, Duration::from_secs(5));
        let mut ids = Vec::new();
        let mut error = None;
        for entry in entries {
            let at_ms = crate::time::now_ms();
            let record = EvidenceRecord {
                schema_version: evidence::SCHEMA_VERSION,
                id: evidence::new_id(at_ms),
                at_ms,
                kind,
                helper_version: env!("CARGO_PKG_VERSION").into(),
                codex_version: codex_version.clone(),
                provider: entry.provider,
                endpoint: entry.endpoint,
                host: entry.host,
                model: model.clone(),
                payload: entry.payload,
            };
            match log.append(&record, &redactor) {
                Ok(()) => ids.push(record.id),
                Err(e) => error = Some(format!("{e:#}")),
            }
        }
        (ids, error)
    })
    .await;
    let (ids, error) = written.unwrap_or_else(|e| (Vec::new(), Some(e.to_string())));
    EvidenceNote { path, ids, error }
}
