//! One `serve` per helper home: an exclusive `flock` on `state/serve.lock`, held for the life of
//! the process. The kernel drops it when the process ends however it ends, so a stale
//! `serve.json` (a crash, `kill -9`) never blocks the next start, and a live one always does.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Homes;

/// The lock file of a helper home.
pub fn path(homes: &Homes) -> PathBuf {
    homes.helper.join("state").join("serve.lock")
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

/// Takes the lock at `path`, waiting up to `wait` for a helper that is exiting (a stop that
/// was just asked for). `Ok(None)`: another process holds it.
pub fn acquire(path: &Path, wait: Duration) -> anyhow::Result<Option<ServeLock>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = crate::files::open_append_private(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        if try_lock(&file)? {
            return Ok(Some(ServeLock { _file: file }));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a process holds the lock at `path` now (a running helper on that home).
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    // Taken and given back at once when free; the probe's own descriptor closes here.
    !try_lock(&file).unwrap_or(true)
}

/// Waits up to `limit` for the lock at `path` to be released; whether it was.
pub fn wait_released(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while is_held(path) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[cfg(unix)]
fn try_lock(file: &File) -> anyhow::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this process owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e).context("cannot lock the helper home")
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> anyhow::Result<bool> {
    Ok(true)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("serve.lock");
        assert!(!is_held(&path), "no file yet");
        let lock = acquire(&path, Duration::ZERO).unwrap().expect("free");
        assert!(is_held(&path));
        assert!(
            acquire(&path, Duration::from_millis(100))
                .unwrap()
                .is_none()
        );
        drop(lock);
        // Released at once, but a child another test forks in the meantime shares the open
        // file until its exec closes it (close-on-exec): waited for, bounded.
        assert!(wait_released(&path, Duration::from_secs(5)));
        assert!(acquire(&path, Duration::ZERO).unwrap().is_some());
    }
}
