//! Where the helper and Codex keep their files.
//!
//! Both homes are resolved once at start-up from the environment and then passed around as
//! plain paths, so tests can point them at temporary folders without touching globals.
//! Files are written through [`crate::files`].

use std::path::PathBuf;

/// The two folders the helper works with.
#[derive(Debug, Clone)]
pub struct Homes {
    /// `~/.codex-helper`, or `$CODEX_HELPER_HOME`.
    pub helper: PathBuf,
    /// `~/.codex`, or `$CODEX_HOME`.
    pub codex: PathBuf,
}

impl Homes {
    /// Resolves both homes from `CODEX_HELPER_HOME`, `CODEX_HOME` and `HOME`.
    pub fn from_env() -> anyhow::Result<Self> {
        let user_home = || -> anyhow::Result<PathBuf> {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "cannot find the home folder: HOME is not set (set CODEX_HELPER_HOME and CODEX_HOME instead)"
                    )
                })
        };
        let helper = match std::env::var_os("CODEX_HELPER_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => user_home()?.join(".codex-helper"),
        };
        let codex = match std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => user_home()?.join(".codex"),
        };
        Ok(Self { helper, codex })
    }

    /// The helper's own config file.
    pub fn helper_config(&self) -> PathBuf {
        self.helper.join("config.toml")
    }

    /// The request ledger.
    pub fn ledger(&self) -> PathBuf {
        self.helper.join("ledger.sqlite3")
    }

    /// The latest balance snapshot per relay endpoint (`balance::store`).
    pub fn balances(&self) -> PathBuf {
        self.helper.join("balances.sqlite3")
    }

    /// Balance adapters, in the original codex-helper's format (`balance::providers`).
    pub fn usage_providers(&self) -> PathBuf {
        self.helper.join("usage_providers.json")
    }

    /// Local price overrides.
    pub fn pricing_overrides(&self) -> PathBuf {
        self.helper.join("pricing_overrides.toml")
    }

    /// Written by a running `serve`: its pid and addresses, so commands can reach it.
    pub fn running(&self) -> PathBuf {
        self.helper.join("state").join("serve.json")
    }

    /// Where session affinity is kept across restarts.
    pub fn affinity_state(&self) -> PathBuf {
        self.helper.join("state").join("session-affinity.json")
    }

    /// Cooldowns kept across a restart (`routing::cooldowns`).
    pub fn cooldowns(&self) -> PathBuf {
        self.helper.join("state").join("cooldowns.json")
    }

    /// Relay diagnostics' evidence, one JSON record per run (`diagnose::evidence`).
    pub fn relay_evidence(&self) -> PathBuf {
        self.helper.join("logs").join("codex_relay_evidence.jsonl")
    }

    /// Codex's config file.
    pub fn codex_config(&self) -> PathBuf {
        self.codex.join("config.toml")
    }
}
