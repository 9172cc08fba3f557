//! `codex relay-capabilities` and `codex relay-live-smoke`: what a relay supports for Codex,
//! told from probes that spend nothing or proven by a few small acknowledged calls; each run
//! leaves one evidence record per endpoint (see `diagnose::evidence`).

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;

use crate::codex::preset::{Compaction, Preset};
use crate::codex::switch::{CodexFiles, status};
use crate::config::{Homes, LoadedConfig};
use crate::diagnose::capabilities::{EndpointReport, Options, Progress};
use crate::diagnose::evidence::EvidenceLog;
use crate::diagnose::exchange::Limits;
use crate::diagnose::probe::{Basis, Support};
use crate::diagnose::recommend::Fit;
use crate::diagnose::smoke::{self, SmokeReport};
use crate::diagnose::{self, Context, EvidenceNote, Targets};
use crate::proxy::ProxyState;

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
    let ctx = context(&homes, &loaded, &state);
    let targets = Targets {
        provider: args.provider.clone(),
        endpoint: args.endpoint.clone(),
    };
    let count = diagnose::chosen(&state.plan().graph.upstreams, &targets)?.len();
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
        count,
        if count == 1 { "" } else { "s" }
    );
    let progress = |p: Progress<'_>| {
        if let Progress::Finished(report) = p {
            eprintln!(
                "  {}/{} ({}): {}",
                report.provider, report.endpoint, report.host, report.summary
            );
        }
    };
    let (reports, evidence) = super::block_on(diagnose::relay_capabilities(
        &ctx, &targets, &options, &progress,
    ))??;
    if let Some(e) = &evidence.error {
        eprintln!("codex-helper: the evidence could not be written: {e}");
    }
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
    let homes = Homes::from_env()?;
    let loaded = super::existing_config(&homes)?;
    let state = ProxyState::for_command(&loaded)?;
    let ctx = context(&homes, &loaded, &state);
    let targets = Targets {
        provider: args.provider.clone(),
        endpoint: args.endpoint.clone(),
    };
    let cases = smoke::cases(args.image, args.compact_v2, args.websocket);
    eprintln!(
        "codex-helper: live smoke with {}: {} (real requests, which may cost money)",
        args.model.trim(),
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
    let (report, evidence) = super::block_on(diagnose::relay_live_smoke(
        &ctx,
        args.acknowledgement.as_deref(),
        &targets,
        &args.model,
        &cases,
        limits,
        &progress,
    ))??;
    if let Some(e) = &evidence.error {
        eprintln!("codex-helper: the evidence could not be written: {e}");
    }
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

/// What the library's runs need: the state, the evidence log, the Codex binary.
fn context<'a>(homes: &Homes, loaded: &LoadedConfig, state: &'a ProxyState) -> Context<'a> {
    Context {
        state,
        evidence: EvidenceLog::new(homes.relay_evidence()),
        codex_binary: std::path::PathBuf::from(&loaded.config.proxy.codex_binary),
    }
}

/// The preset `switch on` put in force, when Codex is switched on.
fn switched_preset(homes: &Homes) -> Option<Preset> {
    let status = status(&CodexFiles::new(&homes.codex)).ok()?;
    status.enabled.then_some(status.preset).flatten()
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
