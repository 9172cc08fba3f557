//! The evidence log, `~/.codex-helper/logs/codex_relay_evidence.jsonl`: one JSON record per
//! diagnostic or live-smoke run and endpoint, for the user to show a relay's support. Only
//! classified results go in (statuses, timings, shapes, short redacted reasons): never a key,
//! a token, an account id, or prompt text beyond the fixed probes. Nothing reads it back into
//! a routing decision.

use serde::{Deserialize, Serialize};

/// The record format's version.
pub const SCHEMA_VERSION: u32 = 1;

/// Which operation a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// `codex relay-capabilities`.
    Capabilities,
    /// `codex relay-live-smoke`.
    LiveSmoke,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Capabilities => "capabilities",
            EvidenceKind::LiveSmoke => "live_smoke",
        }
    }
}

/// One run against one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    pub schema_version: u32,
    /// Unique per record (time and a random part), for a user to refer to.
    pub id: String,
    /// When the run ended, epoch milliseconds.
    pub at_ms: u64,
    pub kind: EvidenceKind,
    /// This helper's version.
    pub helper_version: String,
    /// `codex --version`'s version, when Codex could be run.
    pub codex_version: Option<String>,
    pub provider: String,
    pub endpoint: String,
    /// The relay's host (and port when not the scheme's): never its path, query or userinfo.
    pub host: String,
    /// The model the run asked about or used, if any.
    pub model: Option<String>,
    /// The run's report for this endpoint, as the command's `--json` prints it.
    pub payload: serde_json::Value,
}
