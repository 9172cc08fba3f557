//! The installed Codex's version, for the record of a diagnostic: asked of the binary with a
//! time limit, since a wrapper script may hang.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `codex --version`'s version (`0.171.0`), or `None` when it cannot be run in `limit`.
pub fn installed(binary: &Path, limit: Duration) -> Option<String> {
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let output = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().last()?;
    // Only a version-shaped word: nothing else a wrapper prints is kept.
    let shaped = version.len() <= 40
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    shaped.then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_has_no_version() {
        let missing = Path::new("/nonexistent/codex-binary");
        assert_eq!(installed(missing, Duration::from_secs(1)), None);
    }
}
