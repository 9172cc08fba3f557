//! `codex-helper tui`: attaches the terminal UI to the running helper.

use crate::config::Homes;
use crate::running;

#[derive(Debug, clap::Args)]
pub struct TuiArgs {}

pub fn run(_args: TuiArgs) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let Some(admin) = running::find(&homes.running()).and_then(|r| r.admin) else {
        anyhow::bail!("no codex-helper is running; start `codex-helper serve`");
    };
    crate::tui::run(admin)
}
