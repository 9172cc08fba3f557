//! `serve`'s own terminal UI: in a terminal, `serve` runs the UI over its own admin API (as
//! `codex-helper tui` does over a helper elsewhere), and quitting the UI stops the helper.
//!
//! While the UI owns the screen the helper's log lines go to `<helper home>/logs/serve.log`
//! ([`super::log_file`]) and come back to the terminal when it ends. The UI is a guest: one
//! that cannot start, fails or panics leaves the proxy serving, logging to the terminal again.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::log_file::{self, RotatingFile, StderrRedirect};
use super::log_writer::{LogTarget, Output};
use crate::config::Homes;
use crate::tui::{self, Ended, Mode};

/// How long the helper waits at shutdown for the UI to notice it must stop (it looks every
/// 100 ms); past it the terminal is put back from here.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// Whether `serve` runs the terminal UI: only when a person is at a terminal on both ends
/// (keys come from stdin, the screen is stdout), `serve` runs in the foreground of it (`serve &`
/// would be stopped by the terminal for taking it over), and `--no-tui` did not ask for logs.
pub fn wanted(no_tui: bool, stdin_terminal: bool, stdout_terminal: bool, foreground: bool) -> bool {
    !no_tui && stdin_terminal && stdout_terminal && foreground
}

/// Whether this process is in the foreground of the terminal on stdin (true where that cannot
/// be told).
pub fn in_foreground() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: tcgetpgrp and getpgrp only read the process's state.
        let (terminal, own) = unsafe { (libc::tcgetpgrp(0), libc::getpgrp()) };
        terminal < 0 || terminal == own
    }
    #[cfg(not(unix))]
    true
}

/// The UI running on a thread of its own.
pub struct ServeTui {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl ServeTui {
    /// Starts the UI over the admin API at `admin` (`None` when it did not start: the UI has
    /// nothing to show then). When the user quits, `quit` is notified. `None` when the UI
    /// cannot start; the reason is logged and the logs stay on the terminal.
    pub fn start(
        admin: Option<SocketAddr>,
        homes: &Homes,
        logs: LogTarget,
        quit: Arc<tokio::sync::Notify>,
    ) -> Option<ServeTui> {
        let Some(admin) = admin else {
            tracing::warn!(
                "the terminal UI needs the admin API, which did not start: logging here instead"
            );
            return None;
        };
        let path = log_file::serve_log(homes);
        let guard = match LogsToFile::start(&path, logs) {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!("terminal UI not started: {e:#}; logging here instead");
                return None;
            }
        };
        tracing::info!(
            "terminal UI started (pid {}); log lines go here until it ends",
            std::process::id()
        );
        send_ui_panics_to_the_terminal();
        let stop = Arc::new(AtomicBool::new(false));
        let started = std::thread::Builder::new().name(UI_THREAD.into()).spawn({
            let stop = stop.clone();
            move || {
                let mode = Mode::Serving { log: path };
                let ended = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    tui::run_with(admin, mode, &stop)
                }));
                // Before saying anything: the terminal is the UI's no more.
                drop(guard);
                report(ended, &quit);
            }
        });
        match started {
            Ok(thread) => Some(ServeTui { stop, thread }),
            Err(e) => {
                // The guard went with the closure: logs are on the terminal again.
                tracing::warn!("terminal UI not started: {e}; logging here instead");
                None
            }
        }
    }

    /// Tells the UI to end and waits for it (bounded by [`STOP_WAIT`]); the terminal is put
    /// back either way.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(STOP_WAIT, joined).await.is_err() {
            tui::restore_terminal();
            log_file::restore_stderr();
            tracing::warn!("the terminal UI did not end in time; the terminal was put back");
        }
    }
}

/// The name of the thread the UI runs on.
const UI_THREAD: &str = "tui";

/// A panic of the UI's thread is told on the terminal, not in the log file: descriptor 2 is
/// pointed back before the message is printed (the UI's own hook, installed after this one and
/// so run before it, has already left the alternate screen). Other threads' panics stay in
/// the file, under a UI that keeps running.
fn send_ui_panics_to_the_terminal() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some(UI_THREAD) {
            log_file::restore_stderr();
        }
        previous(info);
    }));
}

/// What the end of the UI means for the helper.
fn report(ended: std::thread::Result<anyhow::Result<Ended>>, quit: &tokio::sync::Notify) {
    match ended {
        Ok(Ok(Ended::Quit)) => {
            tracing::info!("the terminal UI was closed: stopping");
            quit.notify_one();
        }
        Ok(Ok(Ended::Stopped)) => {}
        Ok(Err(e)) => tracing::warn!(
            "the terminal UI stopped: {e:#}; the helper keeps serving and logs here (Ctrl-C stops it)"
        ),
        Err(_) => tracing::warn!(
            "the terminal UI failed (see the panic above); the helper keeps serving and logs here (Ctrl-C stops it)"
        ),
    }
}

/// The log lines and descriptor 2 sent to the log file; both put back on drop (a panic's
/// unwinding included).
struct LogsToFile {
    logs: LogTarget,
    terminal: Option<Output>,
    stderr: Option<StderrRedirect>,
}

impl LogsToFile {
    /// The log lines first (those held go to the terminal), then descriptor 2.
    fn start(path: &std::path::Path, logs: LogTarget) -> anyhow::Result<Self> {
        use anyhow::Context;
        let file = RotatingFile::open(path, log_file::LOG_CAP)?;
        let same_file = file
            .file()
            .try_clone()
            .with_context(|| format!("cannot open {} twice", path.display()))?;
        // Said on the terminal (before it is redirected), and seen there once the UI has ended.
        eprintln!(
            "codex-helper: terminal UI on; logs go to {} meanwhile",
            path.display()
        );
        let mut guard = Self {
            terminal: Some(logs.redirect(Box::new(file))),
            logs,
            stderr: None,
        };
        // On failure the guard's drop puts the log lines back.
        guard.stderr = Some(
            StderrRedirect::start(&same_file)
                .with_context(|| format!("cannot send stderr to {}", path.display()))?,
        );
        Ok(guard)
    }
}

impl Drop for LogsToFile {
    /// Descriptor 2 first, then the log lines (those held go to the file).
    fn drop(&mut self) {
        drop(self.stderr.take());
        if let Some(terminal) = self.terminal.take() {
            self.logs.redirect(terminal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_runs_only_at_a_terminal_on_both_ends_and_without_no_tui() {
        assert!(wanted(false, true, true, true));
        assert!(!wanted(true, true, true, true), "--no-tui");
        assert!(!wanted(false, false, true, true), "stdin is not a terminal");
        assert!(
            !wanted(false, true, false, true),
            "stdout is piped or redirected"
        );
        assert!(
            !wanted(false, true, true, false),
            "`serve &` in the background"
        );
    }
}
