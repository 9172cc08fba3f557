//! `codex relay-capabilities` and `codex relay-live-smoke`: what a relay supports for Codex,
//! told from probes that spend nothing or proven by a few small acknowledged calls; each run
//! leaves one evidence record per endpoint (see `diagnose::evidence`).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use crate::codex::preset::{Compaction, Preset};
use crate::codex::switch::{CodexFiles, status};
use crate::config::{Homes, LoadedConfig};
use crate::diagnose::capabilities::{self, EndpointReport, Options, Progress};
use crate::diagnose::evidence::{self, EvidenceKind, EvidenceLog, EvidenceRecord};
use crate::diagnose::exchange::Limits;
use crate::diagnose::probe::{Basis, Support};
use crate::diagnose::recommend::Fit;
use crate::diagnose::smoke::{self, SmokeReport};
use crate::proxy::ProxyState;
use crate::routing::Upstream;

/// The JSON format's version: bumped only for changes a script would notice.
const API_VERSION: u32 = 1;
/// The most a probe reads of an answer.
const PROBE_BODY_CAP: usize = 2 << 20;
/// The most a smoke case reads of an answer (an image is large).
const SMOKE_BODY_CAP: usize = 16 << 20;

#[derive(Debug, Args)]
pub struct CapabilitiesArgs {
    /// Judge against this preset as the one in use (default: the one `switch on` put in
    /// force, else the config's).
    #[arg(long)]
    preset: Option<String>,
    /// The compaction the official presets would use: auto, local, remote-v1, remote-v2
    /// (default: the config's).
    #[arg(long)]
    compaction: Option<String>,
    /// A model to look for in the relay's model list (probes never send one).
    #[arg(long)]
    model: Option<String>,
    /// Probe this provider's endpoints only (default: every enabled endpoint).
    #[arg(long)]
    provider: Option<String>,
    /// With --provider: this endpoint only.
    #[arg(long, requires = "provider")]
    endpoint: Option<String>,
    /// Also probe hosted image generation (needed by the imagegen presets).
    #[arg(long)]
    image: bool,
    /// Seconds each probe may take.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout_secs: u64,
    /// Print the report as JSON (format documented in docs/relay-diagnostics.md).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// Required, exactly `run-live-codex-relay-smoke`: the test spends real money.
    #[arg(long)]
    acknowledgement: Option<String>,
    /// The model to call (the endpoint's model mapping applies, as in routing).
    #[arg(long)]
    model: String,
    /// Also generate one small image with the hosted image_generation tool.
    #[arg(long)]
    image: bool,
    /// Also run one turn over the Responses WebSocket.
    #[arg(long)]
    websocket: bool,
    /// Also run remote compaction v2 (a compaction_trigger item).
    #[arg(long)]
    compact_v2: bool,
    /// The provider to test (required when more than one endpoint is enabled).
    #[arg(long)]
    provider: Option<String>,
    /// With --provider: this endpoint.
    #[arg(long, requires = "provider")]
    endpoint: Option<String>,
    /// Seconds each case may take.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout_secs: u64,
    /// Print the report as JSON (format documented in docs/relay-diagnostics.md).
    #[arg(long)]
    json: bool,
}

/// `--json` of `relay-capabilities`.
#[derive(Serialize)]
struct CapabilitiesOutput<'a> {
    api_version: u32,
    model: Option<&'a str>,
    compaction: Compaction,
    current_preset: Option<Preset>,
    endpoints: &'a [EndpointReport],
    evidence: EvidenceNote,
}

/// `--json` of `relay-live-smoke`.
#[derive(Serialize)]
struct SmokeOutput<'a> {
    api_version: u32,
    #[serde(flatten)]
    report: &'a SmokeReport,
    evidence: EvidenceNote,
}

/// Where the run's evidence went.
#[derive(Serialize)]
struct EvidenceNote {
    path: String,
    /// Record ids written, one per endpoint.
    ids: Vec<String>,
    /// Why it could not be written, if it could not (the run itself stands).
    error: Option<String>,
}

pub fn capabilities(args: CapabilitiesArgs) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let loaded = super::existing_config(&homes)?;
    let (config_preset, _, config_compaction) = match &loaded.config.codex.client_patch {
        Some(patch) => patch
            .resolve()
            .map_err(anyhow::Error::msg)
            .context("[codex.client_patch]")?,
        None => Default::default(),
    };
    let current = match args.preset.as_deref() {
        Some(p) => Preset::parse(p).map_err(anyhow::Error::msg)?,
        None => switched_preset(&homes).unwrap_or(config_preset),
    };
    let compaction = match args.compaction.as_deref() {
        Some(c) => Compaction::parse(c).map_err(anyhow::Error::msg)?,
        None => config_compaction,
    };
    let state = ProxyState::for_command(&loaded)?;
    let plan = state.plan();
    let targets = targets(
        &plan.graph.upstreams,
        args.provider.as_deref(),
        args.endpoint.as_deref(),
    )?;
    let options = Options {
        model: args.model.clone(),
        compaction,
        image: args.image,
        current: Some(current),
        limits: Limits {
            timeout: Duration::from_secs(args.timeout_secs),
            body_cap: PROBE_BODY_CAP,
        },
    };
    eprintln!(
        "codex-helper: probing {} endpoint{} (validation probes only: nothing is spent)…",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" }
    );
    let progress = |p: Progress<'_>| {
        if let Progress::Finished(report) = p {
            eprintln!(
                "  {}/{} ({}): {}",
                report.provider, report.endpoint, report.host, report.summary
            );
        }
    };
    let reports = super::block_on(capabilities::run(&state, &targets, &options, &progress))?;
    let payloads = reports
        .iter()
        .map(|r| {
            (
                r.provider.as_str(),
                r.endpoint.as_str(),
                r.host.as_str(),
                serde_json::to_value(r),
            )
        })
        .collect::<Vec<_>>();
    let evidence = write_evidence(
        &homes,
        &loaded,
        &state,
        EvidenceKind::Capabilities,
        args.model.as_deref(),
        payloads,
    );
    if args.json {
        let output = CapabilitiesOutput {
            api_version: API_VERSION,
            model: args.model.as_deref(),
            compaction,
            current_preset: Some(current),
            endpoints: &reports,
            evidence,
        };
        println!("{}", serde_json::to_string_pretty(&output)?);
        return Ok(());
    }
    for report in &reports {
        print_capabilities(report);
    }
    print_evidence(&evidence);
    Ok(())
}

pub fn live_smoke(args: SmokeArgs) -> anyhow::Result<()> {
    // Before anything else, and before any network: no acknowledgement, no requests.
    smoke::check_acknowledgement(args.acknowledgement.as_deref()).map_err(anyhow::Error::msg)?;
    let model = args.model.trim();
    if model.is_empty() {
        bail!("--model must name a model");
    }
    let homes = Homes::from_env()?;
    let loaded = super::existing_config(&homes)?;
    let state = ProxyState::for_command(&loaded)?;
    let plan = state.plan();
    let targets = targets(
        &plan.graph.upstreams,
        args.provider.as_deref(),
        args.endpoint.as_deref(),
    )?;
    let [upstream] = targets.as_slice() else {
        let names: Vec<String> = targets.iter().map(|u| u.key().to_string()).collect();
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
    let cases = smoke::cases(args.image, args.compact_v2, args.websocket);
    eprintln!(
        "codex-helper: live smoke on {} with {model}: {} (real requests, which may cost money)",
        upstream.key(),
        cases
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let progress = |p: smoke::Progress<'_>| {
        if let smoke::Progress::Finished(result) = p {
            eprintln!(
                "  {}: {}",
                result.case.as_str(),
                if result.passed { "passed" } else { "failed" }
            );
        }
    };
    let limits = Limits {
        timeout: Duration::from_secs(args.timeout_secs),
        body_cap: SMOKE_BODY_CAP,
    };
    let report = super::block_on(smoke::run(
        &state, upstream, model, &cases, limits, &progress,
    ))?;
    let evidence = write_evidence(
        &homes,
        &loaded,
        &state,
        EvidenceKind::LiveSmoke,
        Some(model),
        vec![(
            report.provider.as_str(),
            report.endpoint.as_str(),
            report.host.as_str(),
            serde_json::to_value(&report),
        )],
    );
    if args.json {
        let output = SmokeOutput {
            api_version: API_VERSION,
            report: &report,
            evidence,
        };
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        print_smoke(&report);
        print_evidence(&evidence);
    }
    if !report.passed {
        bail!("the live smoke test failed: {}", report.summary);
    }
    Ok(())
}

/// The preset `switch on` put in force, when Codex is switched on.
fn switched_preset(homes: &Homes) -> Option<Preset> {
    let status = status(&CodexFiles::new(&homes.codex)).ok()?;
    status.enabled.then_some(status.preset).flatten()
}

/// The enabled endpoints to probe: all, one provider's, or one endpoint.
fn targets(
    upstreams: &[Upstream],
    provider: Option<&str>,
    endpoint: Option<&str>,
) -> anyhow::Result<Vec<Upstream>> {
    let all: Vec<String> = upstreams.iter().map(|u| u.key().to_string()).collect();
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
        let known = if all.is_empty() {
            "none is configured (see `codex-helper provider add`)".to_string()
        } else {
            format!("enabled: {}", all.join(", "))
        };
        bail!("{asked}; {known}");
    }
    Ok(chosen)
}

/// Appends one record per endpoint; a failure is reported, never fatal.
fn write_evidence(
    homes: &Homes,
    loaded: &LoadedConfig,
    state: &ProxyState,
    kind: EvidenceKind,
    model: Option<&str>,
    payloads: Vec<(&str, &str, &str, serde_json::Result<serde_json::Value>)>,
) -> EvidenceNote {
    let path = homes.relay_evidence();
    let log = EvidenceLog::new(path.clone());
    let binary = std::path::PathBuf::from(&loaded.config.proxy.codex_binary);
    let codex_version = crate::codex::version::installed(&binary, Duration::from_secs(5));
    let redactor = crate::diagnose::exchange::scrubber(state);
    let mut ids = Vec::new();
    let mut error = None;
    for (provider, endpoint, host, payload) in payloads {
        let at_ms = crate::time::now_ms();
        let record = EvidenceRecord {
            schema_version: evidence::SCHEMA_VERSION,
            id: evidence::new_id(at_ms),
            at_ms,
            kind,
            helper_version: env!("CARGO_PKG_VERSION").into(),
            codex_version: codex_version.clone(),
            provider: provider.into(),
            endpoint: endpoint.into(),
            host: host.into(),
            model: model.map(str::to_string),
            payload: payload.unwrap_or_default(),
        };
        match log.append(&record, &redactor) {
            Ok(()) => ids.push(record.id),
            Err(e) => error = Some(format!("{e:#}")),
        }
    }
    if let Some(e) = &error {
        eprintln!("codex-helper: the evidence could not be written: {e}");
    }
    EvidenceNote {
        path: path.display().to_string(),
        ids,
        error,
    }
}

fn print_capabilities(report: &EndpointReport) {
    println!("{}/{}  {}", report.provider, report.endpoint, report.host);
    if !report.probes.is_empty() {
        println!(
            "  {:<18}{:<13}{:<8}{:>7}  why",
            "probe", "result", "status", "ms"
        );
    }
    for probe in &report.probes {
        let result = match (probe.support, probe.basis) {
            (Support::Supported, Basis::Validated) => "supported*",
            (support, _) => support.as_str(),
        };
        let status = probe.status.map_or("-".to_string(), |s| s.to_string());
        println!(
            "  {:<18}{:<13}{:<8}{:>7}  {}",
            probe.probe.as_str(),
            result,
            status,
            probe.ms,
            probe.reason
        );
    }
    if report
        .probes
        .iter()
        .any(|p| p.support == Support::Supported && p.basis == Basis::Validated)
    {
        println!("  * validated, not exercised: `codex relay-live-smoke` proves it");
    }
    let presets: Vec<String> = report
        .presets
        .iter()
        .map(|f| {
            let fit = match f.fit {
                Fit::Works => "works",
                Fit::Fails => "fails",
                Fit::Unproven => "unproven",
            };
            format!("{} {fit}", f.preset)
        })
        .collect();
    if !report.probes.is_empty() {
        println!("  presets: {}", presets.join(" · "));
    }
    println!("  verdict: {}", report.summary);
    for reason in &report.recommendation.reasons {
        println!("    - {reason}");
    }
    if report.recommendation.changes_current
        && let (Some(now), Some(to)) = (report.recommendation.current, report.recommendation.preset)
    {
        println!("  to switch from {now}: codex-helper switch on --preset {to}");
    }
    println!();
}

fn print_smoke(report: &SmokeReport) {
    println!(
        "{}/{}  {}  model {} (sent as {})",
        report.provider,
        report.endpoint,
        report.host,
        report.requested_model,
        report.upstream_model
    );
    for result in &report.results {
        let status = result.status.map_or("-".to_string(), |s| s.to_string());
        let tokens = result
            .tokens
            .map_or("tokens: not reported".to_string(), |t| {
                format!(
                    "tokens: {} in, {} out, {} total",
                    t.input, t.output, t.total
                )
            });
        println!(
            "  {}: {} (HTTP {status}, {} ms, {tokens})",
            result.case.as_str(),
            if result.passed { "PASSED" } else { "FAILED" },
            result.ms
        );
        println!(
            "    sent: {} {} ({})",
            result.sent.method, result.sent.path, result.sent.shape
        );
        println!("    came back: {}", result.came_back);
        println!("    why: {}", result.reason);
    }
    println!("  {}", report.summary);
    for warning in &report.warnings {
        println!("  note: {warning}");
    }
}

fn print_evidence(evidence: &EvidenceNote) {
    match &evidence.error {
        None => {
            let n = evidence.ids.len();
            let records = if n == 1 { "record" } else { "records" };
            println!("Evidence: {} ({n} {records} added)", evidence.path);
        }
        Some(e) => println!("Evidence: not written ({e})"),
    }
}
