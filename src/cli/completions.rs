//! `completions SHELL` (clap_complete) and `man` (clap_mangen): both generated from the
//! command definitions themselves, so they always list the commands this binary has.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory, ValueEnum};

use super::Cli;

/// The shells completions are made for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `codex-helper completions bash > ~/.local/share/bash-completion/completions/codex-helper`.
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (`codex-helper.1`, `codex-helper-serve.1`, …) into this
    /// folder instead of printing the main page.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The binary's name as the user typed it (`codex-helper` or its alias `ch`).
fn bin_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|name| name == "ch")
        .unwrap_or_else(|| "codex-helper".into())
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    write_completions(args.shell, &bin_name(), &mut out);
    out.flush().context("writing the completions")
}

/// The completion script for `shell`, for the command named `name`.
pub fn write_completions(shell: Shell, name: &str, out: &mut dyn Write) {
    use clap_complete::Shell as S;
    let shell = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Powershell => S::PowerShell,
        Shell::Elvish => S::Elvish,
    };
    clap_complete::generate(shell, &mut Cli::command(), name, out);
}

pub fn man(args: ManArgs) -> anyhow::Result<()> {
    let command = Cli::command();
    match args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("writing the man page")?;
            out.flush().context("writing the man page")
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            eprintln!("codex-helper: man pages written to {}", dir.display());
            Ok(())
        }
    }
}
