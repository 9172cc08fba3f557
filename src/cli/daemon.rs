//! `codex-helper daemon status|stop|restart`: the helper running on this home (resident or
//! in a terminal), found through `state/serve.json` and trusted only while the home's lock
//! ([`serve_lock`](super::serve_lock)) is held, so a reused pid is never signalled.

use std::time::Duration;

use serde::Serialize;

use super::{resident, serve_lock};
use crate::config::Homes;
use crate::running::{self, RunningServe};

/// How long `stop` waits for the helper to switch Codex back, save its state and exit.
const STOP_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Subcommand)]
pub enum DaemonCommand {
    /// Whether a helper runs on this home: pid, addresses, version, uptime, log (exit 1 when none).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop it (as Ctrl-C would: Codex switched back, affinity and cooldowns saved).
    Stop,
    /// Stop it and start it again in the background with the options it was started with
    /// (affinity, cooldowns and balances are kept; a helper started in a terminal comes back
    /// in the background).
    Restart,
}

/// `daemon status --json`.
#[derive(Debug, Serialize)]
struct DaemonStatus {
    running: bool,
    #[serde(flatten)]
    serve: Option<RunningServe>,
    admin_url: Option<String>,
    uptime_secs: Option<u64>,
}

pub fn run(command: DaemonCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    match command {
        DaemonCommand::Status { json } => status(&homes, json),
        DaemonCommand::Stop => {
            let stopped = stop(&homes)?;
            println!("stopped codex-helper (pid {})", stopped.pid);
            Ok(())
        }
        DaemonCommand::Restart => {
            let stopped = stop(&homes)?;
            println!("stopped codex-helper (pid {})", stopped.pid);
            let mut args = stopped.args.clone();
            if args.is_empty() {
                args.push("serve".into());
            }
            args.push("--resident".into());
            resident::start(&homes, &args)
        }
    }
}

/// The helper running on `homes`, if one does (the lock held and its announcement readable).
fn running_helper(homes: &Homes) -> Option<RunningServe> {
    if !serve_lock::is_held(&serve_lock::path(homes)) {
        return None;
    }
    running::find(&homes.running())
}

fn status(homes: &Homes, json: bool) -> anyhow::Result<()> {
    let serve = running_helper(homes);
    let report = DaemonStatus {
        running: serve.is_some(),
        admin_url: serve
            .as_ref()
            .and_then(|s| s.admin)
            .map(crate::admin::console_url),
        uptime_secs: serve
            .as_ref()
            .map(|s| crate::time::now_ms().saturating_sub(s.started_ms) / 1000),
        serve,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(s) = &report.serve {
        println!(
            "codex-helper {} is running{}: pid {}, proxy http://{}, up {} s",
            s.version,
            if s.resident { " in the background" } else { "" },
            s.pid,
            s.proxy,
            report.uptime_secs.unwrap_or(0)
        );
        if let Some(url) = &report.admin_url {
            println!("console: {url}");
        }
        if let Some(log) = &s.log {
            println!("log: {}", log.display());
        }
    }
    if report.running {
        Ok(())
    } else {
        anyhow::bail!("{}", not_running(homes))
    }
}

/// Why no helper was found: none runs, or one holds the home without having announced itself
/// yet (still starting, or its announcement was removed).
fn not_running(homes: &Homes) -> String {
    if serve_lock::is_held(&serve_lock::path(homes)) {
        format!(
            "a codex-helper holds {} but has not announced itself in {} (still starting?); try again in a moment",
            homes.helper.display(),
            homes.running().display()
        )
    } else {
        format!(
            "no codex-helper is running on {}; start one with `codex-helper serve --resident`",
            homes.helper.display()
        )
    }
}

/// Stops the helper on `homes` (SIGTERM, then waits for the home's lock); what it was.
fn stop(homes: &Homes) -> anyhow::Result<RunningServe> {
    let Some(serve) = running_helper(homes) else {
        anyhow::bail!("{}", not_running(homes));
    };
    terminate(serve.pid)?;
    if !serve_lock::wait_released(&serve_lock::path(homes), STOP_LIMIT) {
        anyhow::bail!(
            "codex-helper (pid {}) did not stop within {} s; `kill -9 {}` ends it without switching Codex back",
            serve.pid,
            STOP_LIMIT.as_secs(),
            serve.pid
        );
    }
    // The lock goes a moment before the process: its last log lines are still flushed.
    let deadline = std::time::Instant::now() + EXIT_LIMIT;
    while !gone(serve.pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(serve)
}

/// How long `stop` waits, after the lock is released, for the process itself to end.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

/// Whether the process `pid` has ended (a zombie waiting for its parent counts as ended).
fn gone(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(id) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 sends nothing; it only checks that the process exists.
        if unsafe { libc::kill(id, 0) } != 0 {
            return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        }
        // Linux: the state after the command name in /proc/PID/stat; `Z` is a zombie.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(") ")
                    .map(|(_, rest)| rest.starts_with('Z'))
            })
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(unix)]
fn terminate(pid: u32) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| anyhow::anyhow!("the announced pid {pid} is not a process id"))?;
    // SAFETY: sends SIGTERM to one process; no memory is involved.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!("cannot stop codex-helper (pid {pid}): {e}");
    }
    Ok(())
}

#[cfg(not(unix))]
fn terminate(pid: u32) -> anyhow::Result<()> {
    anyhow::bail!(
        "stopping a helper (pid {pid}) is only supported on Unix; stop it from its terminal"
    )
}
