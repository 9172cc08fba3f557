//! `codex-helper doctor`: what is off in the helper's and Codex's setup, and how to fix it.
//!
//! The command (`cli::doctor`) gathers [`Facts`] at the edges (files, sockets, the ledger,
//! relays' `Date` headers); [`checks::findings`] turns them into [`Finding`]s and is pure, so
//! each finding is unit-tested over plain data.

pub mod checks;
pub mod facts;
pub mod http_date;

pub use checks::findings;
pub use facts::Facts;

use serde::Serialize;

/// How much a finding matters. An `error` makes `doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One thing `doctor` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable, for scripts (`config.invalid`, `proxy.not_running`, …).
    pub id: &'static str,
    pub severity: Severity,
    pub message: String,
    /// What to run or do about it.
    pub fix: Option<String>,
}

/// Whether any finding is an error.
pub fn has_error(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}
