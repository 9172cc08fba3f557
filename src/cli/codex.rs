//! `codex-helper codex …`: diagnosing relays for Codex.

use clap::Subcommand;

use super::evidence;

#[derive(Debug, Subcommand)]
pub enum CodexCommand {
    /// Read the relay diagnostics evidence log, newest first.
    ///
    /// Relay diagnostics leave one record per run and endpoint in
    /// ~/.codex-helper/logs/codex_relay_evidence.jsonl (rotated at 8 MiB, three old files
    /// kept): when it ran, against which relay and model, and what it found. Only classified
    /// results are kept, never a key or a prompt, so a record can be shown to a relay's
    /// operator.
    RelayEvidence(evidence::EvidenceArgs),
}

pub fn run(command: CodexCommand) -> anyhow::Result<()> {
    match command {
        CodexCommand::RelayEvidence(args) => evidence::run(args),
    }
}
