//! Resident mode: `serve --resident` starts the helper detached from the terminal (a new
//! session, `setsid`), logging to `<helper home>/logs/resident.log` (rotated by size, one
//! older file kept), and returns once it announces itself in `state/serve.json` (pid, start
//! time, addresses, version, log, arguments; written atomically by `serve`).
//!
//! The detached process is the same binary re-run with the same arguments, `--resident`
//! replaced by the hidden `--detached`; one `serve` per home is enforced by
//! [`serve_lock`](super::serve_lock), which also tells `daemon status|stop` whether the
//! announced pid is really a running helper.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::log_file::{LOG_CAP, must_rotate};
use super::serve_lock;
use crate::config::Homes;
use crate::running::{self, RunningServe};

/// How long `serve --resident` waits for the detached helper to announce itself.
pub const START_LIMIT: Duration = Duration::from_secs(30);
/// How often the detached helper checks its log's size.
const ROTATE_POLL: Duration = Duration::from_secs(2);
/// How long a new `serve` waits for a helper that is exiting to release the home.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The resident helper's log file.
pub fn log_path(homes: &Homes) -> PathBuf {
    homes.helper.join("logs").join("resident.log")
}

/// Takes the home's lock for this `serve`, or refuses: a helper already runs there (said with
/// its pid and addresses).
pub fn lock_home(homes: &Homes) -> anyhow::Result<serve_lock::ServeLock> {
    match serve_lock::acquire(&serve_lock::path(homes), LOCK_WAIT)? {
        Some(lock) => Ok(lock),
        None => anyhow::bail!("{}", already_running(homes)),
    }
}

/// What a refused start says: who runs, where, and what to do.
fn already_running(homes: &Homes) -> String {
    let who = match running::find(&homes.running()) {
        Some(r) => format!(
            " (pid {}, proxy http://{}{})",
            r.pid,
            r.proxy,
            r.admin
                .map(|a| format!(", console {}", crate::admin::console_url(a)))
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    format!(
        "a codex-helper is already running on {}{who}; stop it with `codex-helper daemon stop`, or use another CODEX_HELPER_HOME",
        homes.helper.display()
    )
}

/// The arguments of the detached process: the caller's, `--resident` replaced by
/// `--detached`, and `--no-tui` (it has no terminal) (pure).
pub fn detached_args(args: &[String]) -> Vec<String> {
    let mut out: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a.as_str(), "--resident" | "--detached"))
        .cloned()
        .collect();
    if !out.iter().any(|a| a == "--no-tui") {
        out.push("--no-tui".into());
    }
    out.push("--detached".into());
    out
}

/// The arguments a helper records for `daemon restart`: its own, without `--detached` (pure).
pub fn recorded_args(args: &[String]) -> Vec<String> {
    args.iter()
        .filter(|a| !matches!(a.as_str(), "--resident" | "--detached"))
        .cloned()
        .collect()
}

/// This process's arguments (after the program name).
pub fn own_args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// `serve --resident`: starts the detached helper and waits until it announces itself.
pub fn start(homes: &Homes, args: &[String]) -> anyhow::Result<()> {
    if serve_lock::is_held(&serve_lock::path(homes)) {
        anyhow::bail!("{}", already_running(homes));
    }
    let log = log_path(homes);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let out = crate::files::open_append_private(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let start_offset = out.metadata().map_or(0, |m| m.len());
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut command = std::process::Command::new(exe);
    command
        .args(detached_args(args))
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; it only makes the child a session leader, so
        // closing the terminal or the shell that started it does not end it.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .context("cannot start the resident helper")?;
    let pid = child.id();
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Some(running) = running::find(&homes.running()).filter(|r| r.pid == pid) {
            print_started(&running, &log);
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the resident helper exited ({status}) before listening:\n{}",
                tail(&log, start_offset)
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "the resident helper did not start within {} s (stopped):\n{}",
                START_LIMIT.as_secs(),
                tail(&log, start_offset)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn print_started(running: &RunningServe, log: &Path) {
    println!(
        "codex-helper is running in the background: pid {}, proxy http://{}{}",
        running.pid,
        running.proxy,
        running
            .admin
            .map(|a| format!(", console {}", crate::admin::console_url(a)))
            .unwrap_or_default()
    );
    println!(
        "log: {} — `codex-helper daemon status|stop|restart`, `codex-helper tui` to watch it",
        log.display()
    );
}

/// The last lines the log got since `offset` (what a failed start said), at most 4 KiB.
fn tail(log: &Path, offset: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let from = (offset as usize).min(text.len());
    let new = &text[from..];
    let start = new.len().saturating_sub(4096);
    String::from_utf8_lossy(&new[start..])
        .trim_end()
        .to_string()
}

/// In the detached helper: a thread that rotates its log (descriptors 1 and 2) past
/// [`LOG_CAP`], keeping one older file (`resident.log.1`). It runs until the process ends.
pub fn rotate_log(log: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("log-rotate".into())
        .spawn(move || {
            loop {
                std::thread::sleep(ROTATE_POLL);
                let len = std::fs::metadata(&log).map_or(0, |m| m.len());
                if must_rotate(len, 0, LOG_CAP) {
                    let _ = rotate(&log, &[1, 2]);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("the resident log will not be rotated: {e}");
    }
}

/// Moves `log` to `log.1` and points `descriptors` (1 and 2) at a new `log`.
fn rotate(log: &Path, descriptors: &[i32]) -> std::io::Result<()> {
    let mut older = log.as_os_str().to_owned();
    older.push(".1");
    std::fs::rename(log, PathBuf::from(older))?;
    let file = crate::files::open_append_private(log)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        for fd in descriptors {
            // SAFETY: duplicates a descriptor this process owns onto one it owns.
            unsafe { libc::dup2(file.as_raw_fd(), *fd) };
        }
    }
    #[cfg(not(unix))]
    let _ = (file, descriptors);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_detached_process_gets_the_same_arguments_without_a_terminal() {
        assert_eq!(
            detached_args(&strings(&["serve", "--resident", "--port", "4000"])),
            strings(&["serve", "--port", "4000", "--no-tui", "--detached"])
        );
        assert_eq!(
            detached_args(&strings(&["serve", "--no-tui", "--resident"])),
            strings(&["serve", "--no-tui", "--detached"]),
            "--no-tui once (clap refuses it twice)"
        );
        let recorded = recorded_args(&strings(&[
            "serve",
            "--port",
            "4000",
            "--no-tui",
            "--detached",
        ]));
        assert_eq!(recorded, strings(&["serve", "--port", "4000", "--no-tui"]));
        let mut again = recorded.clone();
        again.push("--resident".into());
        assert_eq!(
            detached_args(&again),
            strings(&["serve", "--port", "4000", "--no-tui", "--detached"]),
            "a restart starts it the same way"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_rotation_keeps_one_older_file_and_moves_the_descriptors() {
        use std::io::Write;
        use std::os::fd::{AsRawFd, FromRawFd};
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("resident.log");
        let first = crate::files::open_append_private(&log).unwrap();
        (&first).write_all(b"old lines\n").unwrap();
        // A descriptor standing for 1 and 2 (the test harness's own must stay as they are).
        // SAFETY: dup of a descriptor this test owns.
        let fd = unsafe { libc::dup(first.as_raw_fd()) };
        rotate(&log, &[fd]).unwrap();
        // SAFETY: `fd` is this test's, now pointing at the new file.
        let mut moved = unsafe { std::fs::File::from_raw_fd(fd) };
        moved.write_all(b"new line\n").unwrap();
        let older = dir.path().join("resident.log.1");
        assert_eq!(std::fs::read_to_string(older).unwrap(), "old lines\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "new line\n");
    }
}
