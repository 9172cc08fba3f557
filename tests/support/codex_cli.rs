//! The real Codex CLI for end-to-end tests: where `scripts/test` installs the pinned version,
//! and the settings that keep it on loopback (`reference/codex-protocol.md` §12).

use std::path::PathBuf;

/// The Codex version the end-to-end tests are written against.
pub const CODEX_VERSION: &str = "0.171.0";

/// The Codex binary: `CODEX_E2E_BIN`, or the one `scripts/test` installs.
pub fn bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CODEX_E2E_BIN") {
        return PathBuf::from(bin);
    }
    let bin =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/codex-cli/node_modules/.bin/codex");
    assert!(
        bin.exists(),
        "the Codex CLI is not installed at {}: run `scripts/test` (it installs @openai/codex@{CODEX_VERSION}), \
         or `npm ci --prefix tools/codex-cli`",
        bin.display()
    );
    bin
}

/// Codex's `config.toml`: nothing leaves loopback, and its only provider, `helper`, is at
/// `base` (the proxy, or the user's relay before `switch on`), keyed by `CODEX_HELPER_E2E_KEY`.
pub fn loopback_config(base: &str) -> String {
    format!(
        r#"model = "gpt-5.1"
model_provider = "helper"
approval_policy = "never"
sandbox_mode = "read-only"
check_for_update_on_startup = false
chatgpt_base_url = "{base}/backend-api/"
web_search = "disabled"

[analytics]
enabled = false

[features]
plugins = false
apps = false
remote_plugin = false

# my relay
[model_providers.helper]
name = "codex-helper"
base_url = "{base}/v1"
wire_api = "responses"
env_key = "CODEX_HELPER_E2E_KEY"
"#
    )
}

/// How long one Codex run may take.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a Codex run printed, and whether it succeeded.
pub struct CodexRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs Codex with `home` as its `CODEX_HOME` (and `HOME`), in `work`, with only `PATH` and
/// `env` from the environment, bounded by [`RUN_LIMIT`].
pub async fn run_codex_at(
    home: &std::path::Path,
    work: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> CodexRun {
    let mut command = tokio::process::Command::new(bin());
    command
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CODEX_HOME", home)
        .env("CODEX_HELPER_E2E_KEY", "e2e-client-key")
        .env("RUST_LOG", "error")
        // After `env_clear`, or they would be wiped.
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("codex exec did not finish in time")
        .expect("codex exec could not be started");
    CodexRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
