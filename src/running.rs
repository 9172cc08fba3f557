//! The running-serve file (`state/serve.json`): a running `serve` writes its pid and
//! addresses there, so other commands (`balance refresh`, later the console) can reach it
//! instead of working beside it on their own.
//!
//! A leaf. The file is only a hint: a crashed `serve` leaves it behind, so [`find`] trusts it
//! only while the pid it names is alive, and commands still fall back when the address does
//! not answer.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Longest file [`find`] reads: the real one is a few hundred bytes.
const READ_MAX: u64 = 64 * 1024;

/// What a running `serve` announces about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningServe {
    pub pid: u32,
    /// Where Codex's requests go.
    pub proxy: SocketAddr,
    /// The admin API (`crate::admin`), when this serve runs one.
    pub admin: Option<SocketAddr>,
    /// When it started, epoch ms.
    pub started_ms: u64,
    /// The helper's version (`CARGO_PKG_VERSION`).
    #[serde(default)]
    pub version: String,
    /// Whether it runs detached (`serve --resident`), logging to `log`.
    #[serde(default)]
    pub resident: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<std::path::PathBuf>,
    /// The arguments it was started with (no secrets: those come from the environment), so
    /// `daemon restart` starts it the same way.
    #[serde(default)]
    pub args: Vec<String>,
}

/// Writes `running` to `path` (atomically, mode 0600, creating the folder).
pub fn announce(path: &Path, running: &RunningServe) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_vec_pretty(running)?;
    crate::files::write_atomic(path, &json, crate::files::PRIVATE)
}

/// Removes the file at `path` if it still names `pid`: a newer `serve` that started meanwhile
/// keeps its own announcement. Best effort: a file that cannot be removed is only a stale hint.
pub fn withdraw(path: &Path, pid: u32) {
    if read(path).is_some_and(|r| r.pid == pid) {
        let _ = std::fs::remove_file(path);
    }
}

/// The serve announced at `path`, if the file is there, readable, and its pid is alive.
pub fn find(path: &Path) -> Option<RunningServe> {
    read(path).filter(|r| pid_alive(r.pid))
}

/// The announcement at `path` whatever its pid's state (`None` when missing, too big or
/// unreadable).
fn read(path: &Path) -> Option<RunningServe> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = Vec::new();
    file.take(READ_MAX + 1).read_to_end(&mut text).ok()?;
    if text.len() as u64 > READ_MAX {
        return None;
    }
    serde_json::from_slice(&text).ok()
}

/// Whether a process with this id exists. A pid reused by another program reads as alive; the
/// caller's connection attempt then fails and it falls back.
fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            // 0 and negative ids name process groups, not a process.
            return false;
        }
        // SAFETY: signal 0 sends nothing; it only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } == 0 {
            return true;
        }
        // EPERM: it exists but belongs to another user.
        std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(pid: u32) -> RunningServe {
        RunningServe {
            pid,
            proxy: "127.0.0.1:3211".parse().unwrap(),
            admin: Some("127.0.0.1:40000".parse().unwrap()),
            started_ms: 1_700_000_000_000,
            version: "0.1.0".into(),
            resident: false,
            log: None,
            args: Vec::new(),
        }
    }

    #[test]
    fn an_announcement_is_found_while_its_process_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("serve.json");
        assert_eq!(find(&path), None, "no file");
        let me = serve(std::process::id());
        announce(&path, &me).unwrap();
        assert_eq!(find(&path), Some(me));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_dead_pid_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.json");
        // A child that has exited and been reaped: its pid names no process (until reused).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        announce(&path, &serve(pid)).unwrap();
        assert_eq!(find(&path), None);
        announce(&path, &serve(0)).unwrap();
        assert_eq!(find(&path), None, "pid 0 is a process group, not a serve");
    }

    #[test]
    fn withdraw_removes_only_its_own_announcement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.json");
        announce(&path, &serve(std::process::id())).unwrap();
        withdraw(&path, std::process::id() + 1);
        assert!(path.exists(), "a newer serve's file is kept");
        withdraw(&path, std::process::id());
        assert!(!path.exists());
        withdraw(&path, std::process::id());
    }

    #[test]
    fn unreadable_or_oversized_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.json");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(find(&path), None);
        let mut big = serde_json::to_string(&serve(std::process::id())).unwrap();
        big.push_str(&" ".repeat(READ_MAX as usize));
        std::fs::write(&path, big).unwrap();
        assert_eq!(find(&path), None, "capped at 64 KiB");
    }
}
