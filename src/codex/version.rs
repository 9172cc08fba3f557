//! The installed Codex's version, for the record of a diagnostic: asked of the binary with a
//! time limit, since a wrapper script may hang or leave a child holding its output open.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The most of `--version`'s output read.
const OUTPUT_MAX: u64 = 4096;

/// `codex --version`'s version (`0.171.0`), or `None` when it cannot be run in `limit`.
pub fn installed(binary: &Path, limit: Duration) -> Option<String> {
    let text = run_bounded(binary, &["--version"], limit)?;
    let version = text.split_whitespace().last()?;
    // Only a version-shaped word: nothing else a wrapper prints is kept.
    let shaped = version.len() <= 40
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    shaped.then(|| version.to_string())
}

/// Runs `binary args`, stdin closed, and returns the first [`OUTPUT_MAX`] bytes of its
/// standard output, or `None` when it cannot be started or does not finish writing in `limit`.
pub fn run_bounded(binary: &Path, args: &[&str], limit: Duration) -> Option<String> {
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // Its own process group, so that a wrapper's children go with it on a timeout.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().ok()?;
    let stdout = child.stdout.take()?;
    // The read happens on its own thread: it ends when every holder of the pipe closes it,
    // which a lingering grandchild may never do. Past the limit it is abandoned.
    let (sent, read) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.take(OUTPUT_MAX).read_to_string(&mut text);
        let _ = sent.send(text);
    });
    let text = read.recv_timeout(limit).ok();
    stop(&mut child);
    text
}

/// Ends the child and its process group, and reaps it.
fn stop(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals the process group this function created; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_missing_binary_has_no_version() {
        let missing = Path::new("/nonexistent/codex-binary");
        assert_eq!(installed(missing, Duration::from_secs(1)), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_wrapper_is_read_and_one_that_hangs_is_cut_off() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let good = script("good", "echo 'codex-cli 0.171.0'");
        assert_eq!(
            installed(&good, Duration::from_secs(5)).as_deref(),
            Some("0.171.0")
        );
        // Prints, then leaves a child holding stdout open for a minute.
        let lingering = script("lingering", "echo 'codex-cli 9.9.9'; sleep 60 &\nwait");
        let started = Instant::now();
        assert_eq!(installed(&lingering, Duration::from_millis(300)), None);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let noisy = script("noisy", "echo 'not a version: <b>'");
        assert_eq!(installed(&noisy, Duration::from_secs(5)), None);
    }
}
