//! What `doctor` looks at, as plain data (gathered by `cli::doctor_facts`).

use std::path::PathBuf;

use crate::codex::discover::CodexBinary;

/// Everything the checks read.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub config_path: PathBuf,
    pub config: ConfigFacts,
    pub codex: CodexFacts,
    pub codex_binary: BinaryFacts,
    /// The port the helper serves on (or would): checked for another program holding it.
    pub port: PortFacts,
    pub ledger: Option<LedgerFacts>,
    /// `None` with `--offline`.
    pub clock: Option<Vec<ClockFacts>>,
}

/// The helper's config file.
#[derive(Debug, Clone, Default)]
pub enum ConfigFacts {
    #[default]
    Missing,
    /// It does not load (the loader's message: file, key, what is allowed).
    Invalid(String),
    Loaded(LoadedFacts),
}

#[derive(Debug, Clone, Default)]
pub struct LoadedFacts {
    /// Keys of the original codex-helper that are read but not acted on.
    pub ignored_keys: Vec<String>,
    /// `(relay endpoint, variable)` for each credential variable that is not set.
    pub missing_env: Vec<(String, String)>,
    /// Dotted keys holding a secret written in the file (`codex.providers.x.auth_token`).
    pub inline_secrets: Vec<String>,
    /// The file's permission bits (Unix).
    pub mode: Option<u32>,
}

/// Codex's side: whether it points at a helper, and where the switch drifted.
#[derive(Debug, Clone, Default)]
pub struct CodexFacts {
    /// Codex's `base_url` while it points at a helper on this machine.
    pub helper_url: Option<String>,
    /// `switch status`'s drift sentences.
    pub drift: Vec<String>,
    /// Codex's config or switch state could not be read.
    pub unreadable: Option<String>,
}

/// The Codex binary the proxy asks for the `/models` catalog.
#[derive(Debug, Clone, Default)]
pub enum BinaryFacts {
    Found(CodexBinary),
    /// `[proxy] codex_binary` names a binary that does not run.
    ConfiguredNotRunnable(PathBuf),
    #[default]
    NotFound,
}

/// The helper's port and who listens there.
#[derive(Debug, Clone, Default)]
pub struct PortFacts {
    pub port: u16,
    /// Something accepts connections on 127.0.0.1:port.
    pub in_use: bool,
    /// The helper running on this home serves on that port.
    pub ours: bool,
    /// Which process holds it, when it can be seen (`pid 12 (nginx)`).
    pub owner: Option<String>,
}

/// The request ledger.
#[derive(Debug, Clone)]
pub struct LedgerFacts {
    pub store: LedgerStoreFacts,
    /// Rows the running helper could not write, when one runs.
    pub lost_rows: Option<u64>,
}

/// Where the ledger is, and how it answered.
#[derive(Debug, Clone)]
pub enum LedgerStoreFacts {
    /// The SQLite file.
    File {
        path: PathBuf,
        size_bytes: u64,
        /// `PRAGMA quick_check`'s answer (`ok` when sound), or why it could not run.
        quick_check: Result<String, String>,
    },
    /// The PostgreSQL ledger of `[ledger] url`.
    Postgres {
        /// `host:port/db` (never the password), or `[ledger] url` when it cannot be read.
        shown: String,
        /// How long ago (ms) the newest row started (`None`: no rows yet), or why the
        /// database could not be read.
        newest_age_ms: Result<Option<u64>, String>,
        /// Rows waiting in the spool for the database, and the spool's size.
        spooled_rows: u64,
        spool_bytes: u64,
    },
}

/// One relay's clock, from its `Date` header.
#[derive(Debug, Clone)]
pub struct ClockFacts {
    pub relay: String,
    /// The relay's time minus ours, ms; or why it could not be read.
    pub skew_ms: Result<i64, String>,
}
