//! `codex-helper codex …`: diagnosing relays for Codex.

use clap::Subcommand;

use super::{diagnose, evidence};

#[derive(Debug, Subcommand)]
pub enum CodexCommand {
    /// What a relay supports for Codex, and which preset to use with it.
    ///
    /// Probes each enabled endpoint directly (outside routing; nothing is spent: every probe
    /// is a request without a model, which a relay validates but does not run): its model
    /// list, the Responses API, remote compaction v1 and v2, the Responses WebSocket, and
    /// with --image hosted image generation. Then says which presets would work and
    /// recommends one. It never switches anything.
    #[command(name = "relay-capabilities")]
    Capabilities(diagnose::CapabilitiesArgs),
    /// Prove a relay's support with a few small real model calls (they may cost money).
    ///
    /// Runs the compaction case, plus one case per flag (--image, --compact-v2,
    /// --websocket), on one endpoint; says what each case sent, what came back, pass or fail
    /// and why, and the tokens it cost. Refuses to run without
    /// --acknowledgement run-live-codex-relay-smoke.
    #[command(name = "relay-live-smoke")]
    LiveSmoke(diagnose::SmokeArgs),
    /// Read the relay diagnostics evidence log, newest first.
    ///
    /// Relay diagnostics leave one record per run and endpoint in
    /// ~/.codex-helper/logs/codex_relay_evidence.jsonl (rotated at 8 MiB, three old files
    /// kept): when it ran, against which relay and model, and what it found. Only classified
    /// results are kept, never a key or a prompt, so a record can be shown to a relay's
    /// operator.
    #[command(name = "relay-evidence")]
    Evidence(evidence::EvidenceArgs),
}

pub fn run(command: CodexCommand) -> anyhow::Result<()> {
    match command {
        CodexCommand::Capabilities(args) => diagnose::capabilities(args),
        CodexCommand::LiveSmoke(args) => diagnose::live_smoke(args),
        CodexCommand::Evidence(args) => evidence::run(args),
    }
}
