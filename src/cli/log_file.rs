//! The log file `serve` writes while the terminal UI owns the screen
//! (`<helper home>/logs/serve.log`): log lines written to the terminal then would scribble over
//! the UI, so they go to a file, bounded by rotation (one older file, `serve.log.1`, is kept).
//!
//! Lines that do not go through the logger (a `codex-helper: reloaded …` notice from another
//! thread) are written to file descriptor 2: while the UI runs, that descriptor is pointed at
//! the same file ([`StderrRedirect`]), and pointed back at the terminal when the UI ends, on
//! any path, a panic included ([`restore_stderr`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Homes;

/// Past this size the file is rotated: with the one older file, at most twice this on disk.
pub const LOG_CAP: u64 = 8 << 20;

/// Where `serve` logs while the terminal UI runs.
pub fn serve_log(homes: &Homes) -> PathBuf {
    homes.helper.join("logs").join("serve.log")
}

/// The older file a rotation keeps beside `path` (`serve.log.1`).
fn older(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Whether a file of `len` bytes must be rotated before `more` bytes are appended. An empty
/// file never is, so a single write larger than the cap still lands somewhere.
pub fn must_rotate(len: u64, more: u64, cap: u64) -> bool {
    len > 0 && len.saturating_add(more) > cap
}

/// An append-only log file that rotates itself past [`LOG_CAP`] (or the cap given).
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    cap: u64,
}

impl RotatingFile {
    /// Opens `path` for append (creating its folder, and the file private to the user: logs
    /// name relays and hosts).
    pub fn open(path: &Path, cap: u64) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = crate::files::open_append_private(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            cap,
        })
    }

    /// The file descriptor 2 follows while redirected.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Moves the file to `serve.log.1` (replacing the older one) and starts a new one.
    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, older(&self.path))?;
        self.file = crate::files::open_append_private(&self.path)?;
        follow_stderr(&self.file);
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Measured on disk, not counted: lines written to descriptor 2 land here too.
        let len = self.file.metadata().map_or(0, |m| m.len());
        if must_rotate(len, buf.len() as u64, self.cap) {
            // A rotation that fails (a read-only folder) keeps appending: better than losing lines.
            let _ = self.rotate();
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The terminal's descriptor 2, kept while it points at the log file; -1 when not redirected.
/// A global so a panic hook can put it back.
#[cfg(unix)]
static SAVED_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Descriptor 2 pointed at the log file until [`restore_stderr`] (or the drop of this).
pub struct StderrRedirect(());

impl StderrRedirect {
    /// Points descriptor 2 at `file`, keeping the terminal's to put back.
    pub fn start(file: &File) -> io::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            use std::sync::atomic::Ordering;
            // SAFETY: dup and dup2 only duplicate descriptors this process owns.
            let saved = unsafe { libc::dup(2) };
            if saved < 0 {
                return Err(io::Error::last_os_error());
            }
            if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
                let e = io::Error::last_os_error();
                unsafe { libc::close(saved) };
                return Err(e);
            }
            let previous = SAVED_STDERR.swap(saved, Ordering::SeqCst);
            if previous >= 0 {
                unsafe { libc::close(previous) };
            }
        }
        #[cfg(not(unix))]
        let _ = file;
        Ok(Self(()))
    }
}

impl Drop for StderrRedirect {
    fn drop(&mut self) {
        restore_stderr();
    }
}

/// Points descriptor 2 back at the terminal, if it was redirected; safe to call more than
/// once and from a panic hook.
pub fn restore_stderr() {
    #[cfg(unix)]
    {
        use std::sync::atomic::Ordering;
        let saved = SAVED_STDERR.swap(-1, Ordering::SeqCst);
        if saved >= 0 {
            // SAFETY: `saved` is the descriptor `StderrRedirect::start` duplicated.
            unsafe {
                libc::dup2(saved, 2);
                libc::close(saved);
            }
        }
    }
}

/// After a rotation, descriptor 2 follows the new file, while it is redirected at all.
fn follow_stderr(file: &File) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering;
        if SAVED_STDERR.load(Ordering::SeqCst) >= 0 {
            // SAFETY: duplicates a descriptor this process owns onto 2.
            unsafe { libc::dup2(file.as_raw_fd(), 2) };
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_waits_for_the_cap_and_never_empties_an_empty_file() {
        assert!(
            !must_rotate(0, 100, 10),
            "a first write lands whatever its size"
        );
        assert!(!must_rotate(5, 5, 10));
        assert!(must_rotate(6, 5, 10));
        assert!(!must_rotate(u64::MAX - 1, 0, u64::MAX));
    }

    #[test]
    fn the_file_rotates_past_its_cap_keeping_one_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("serve.log");
        let mut file = RotatingFile::open(&path, 100).unwrap();
        // As the log writer writes: whole lines (batches of them) in one call.
        for i in 0..25 {
            file.write_all(format!("line {i:02} of the log\n").as_bytes())
                .unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let previous = std::fs::read_to_string(older(&path)).unwrap();
        assert!(current.len() <= 100 && previous.len() <= 100);
        assert!(current.ends_with("line 24 of the log\n"), "{current}");
        assert!(
            previous.lines().last().is_some_and(|l| {
                let n: usize = l[5..7].parse().unwrap();
                current.starts_with(&format!("line {:02}", n + 1))
            }),
            "the older file ends where the current one starts:\n{previous}\n--\n{current}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, crate::files::PRIVATE);
        }
    }
}
