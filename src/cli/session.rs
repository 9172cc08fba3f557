//! `codex-helper session …`: Codex's recorded threads.

use anyhow::bail;

use super::codex_sessions::{self, BrowseCommand};
use crate::codex::redirect::BUILTIN_OPENAI;
use crate::codex::{sessions, text};
use crate::config::Homes;

#[derive(Debug, clap::Subcommand)]
pub enum SessionCommand {
    /// Move threads from one provider id to another, so `codex resume` lists them under the
    /// provider in force (e.g. threads an older codex-helper tagged `codex_proxy`).
    ///
    /// Rewrites only the provider id in each rollout's first line and in Codex's thread
    /// index; copies of everything changed go to ~/.codex-helper/backups/ first. Run it while
    /// Codex is closed: a rollout Codex is writing to is left as it is.
    Retag {
        /// The provider id the threads have now.
        #[arg(long)]
        from: String,
        /// The provider id they should have (one configured in Codex's config.toml, or `openai`).
        #[arg(long)]
        to: String,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Browse(BrowseCommand),
}

pub fn run(command: SessionCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    match command {
        SessionCommand::Browse(command) => codex_sessions::run(&homes, command),
        SessionCommand::Retag {
            from,
            to,
            dry_run,
            json,
        } => {
            check_provider_known(&homes, &to)?;
            let report = sessions::retag(
                &homes.codex,
                &from,
                &to,
                dry_run,
                &homes.helper.join("backups"),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            let n = report.rollouts.len();
            if dry_run {
                println!(
                    "Would retag {n} thread(s) from `{from}` to `{to}` ({} row(s) of Codex's thread index):",
                    report.index_rows
                );
                for rollout in &report.rollouts {
                    println!("  {}  {}", rollout.thread_id, rollout.path.display());
                }
                return Ok(());
            }
            println!(
                "Retagged {n} thread(s) from `{from}` to `{to}` ({} row(s) of Codex's thread index).",
                report.index_rows
            );
            if let Some(backup) = &report.backup {
                println!("Copies of the originals: {}", backup.display());
            }
            for (path, why) in &report.skipped {
                println!("  left as it was: {} ({why})", path.display());
            }
            Ok(())
        }
    }
}

/// Threads tagged with a provider Codex does not know cannot be resumed ("no longer
/// configured"): refuse to make more of them.
fn check_provider_known(homes: &Homes, id: &str) -> anyhow::Result<()> {
    if id == BUILTIN_OPENAI {
        return Ok(());
    }
    let config = homes.codex_config();
    let (_, text) = text::read(&config)?;
    let doc: toml::Table = toml::from_str(text.as_deref().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{} is not valid TOML: {e}", config.display()))?;
    let providers = doc.get("model_providers").and_then(|p| p.as_table());
    if providers.is_some_and(|p| p.contains_key(id)) {
        return Ok(());
    }
    let known: Vec<String> = std::iter::once(BUILTIN_OPENAI.to_string())
        .chain(providers.into_iter().flat_map(|p| p.keys().cloned()))
        .collect();
    bail!(
        "provider `{id}` is not configured in {}, so Codex could not resume threads tagged with it; known: {}",
        config.display(),
        known.join(", ")
    )
}
