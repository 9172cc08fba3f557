//! Files the helper writes, its own and Codex's: atomically, keeping what the user set up.
//!
//! Every such file goes through [`write_atomic`] (or [`write_backup`]): those files may hold
//! secrets and may be set up by the user or a dotfile manager (modes, owners, symlinks), and a
//! rewrite must keep all of that. A leaf: the config, Codex's files, the affinity state and
//! the catalog cache all use it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};

/// The mode of a new file that may hold a secret: the helper's own files, Codex's
/// `auth.json` and the switch state.
pub const PRIVATE: u32 = 0o600;

/// The mode of a new file meant to be shared like any config (Codex's `config.toml`).
pub const SHARED: u32 = 0o644;

/// Writes `contents` to `path` atomically, so a crash leaves either the old or the new file,
/// and keeps what the user set up around it:
///
/// - a symlink (or a chain of them) is followed and its final target replaced, the links
///   stay; a dangling link gets its target created;
/// - the existing file keeps its mode, and its owner and group where the system allows; a
///   new file gets `new_mode` (see [`PRIVATE`], [`SHARED`]);
/// - the temporary file has the final mode from the moment it exists, so a secret is never
///   readable by others, not even for an instant;
/// - a file without any write bit is refused (see [`ensure_writable`]).
pub fn write_atomic(path: &Path, contents: &[u8], new_mode: u32) -> anyhow::Result<()> {
    let target = resolve_link(path)?;
    let perms = match existing(&target)? {
        Some(meta) => {
            refuse_read_only(path, &target, &meta)?;
            Perms::of(&meta)
        }
        None => Perms::new(new_mode),
    };
    replace(&target, contents, perms)
        .with_context(|| format!("cannot write {}", shown(path, &target)))
}

/// Writes `contents`, the previous text of `original`, to the backup file `path`. The backup
/// takes exactly `original`'s mode and owner: a copy of a secret is as secret as the secret,
/// whatever an older backup had. A read-only old backup is replaced: it is the helper's own.
pub fn write_backup(path: &Path, contents: &[u8], original: &Path) -> anyhow::Result<()> {
    let target = resolve_link(path)?;
    let meta = std::fs::metadata(original)
        .with_context(|| format!("cannot read the permissions of {}", original.display()))?;
    replace(&target, contents, Perms::of(&meta))
        .with_context(|| format!("cannot write {}", shown(path, &target)))
}

/// Refuses, naming the file and the fix, when `path` (through its links) exists without any
/// write bit: a user who made a config read-only meant it. Checked on the mode bits, not with
/// `access(2)`, so running as root does not override the user's intent. Callers that write
/// several files check them all first, so a refusal leaves nothing half done.
pub fn ensure_writable(path: &Path) -> anyhow::Result<()> {
    let target = resolve_link(path)?;
    match existing(&target)? {
        Some(meta) => refuse_read_only(path, &target, &meta),
        None => Ok(()),
    }
}

/// The file `path` finally names: symlinks are followed, also a chain of them and a dangling
/// last link (whose target path is returned, to be created). Writing there, instead of
/// renaming over `path`, keeps the links a dotfile manager set up.
pub fn resolve_link(path: &Path) -> anyhow::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)
                    .with_context(|| format!("cannot read the link {}", current.display()))?;
                current = parent_dir(&current).join(target);
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", current.display())),
        }
    }
    bail!(
        "{} is a chain of more than 40 symbolic links (a loop?); point it at a file",
        path.display()
    )
}

/// `path`, and the file it links to when that is another one, for messages.
fn shown(path: &Path, target: &Path) -> String {
    if path == target {
        path.display().to_string()
    } else {
        format!("{} (linked from {})", target.display(), path.display())
    }
}

fn existing(target: &Path) -> anyhow::Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(target) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", target.display())),
    }
}

fn refuse_read_only(path: &Path, target: &Path, meta: &std::fs::Metadata) -> anyhow::Result<()> {
    let perms = Perms::of(meta);
    if meta.is_file() && perms.mode & 0o222 == 0 {
        bail!(
            "{} is read-only (mode {:04o}), so codex-helper left it unchanged. \
             To let codex-helper edit it, run `chmod u+w {}` and try again.",
            shown(path, target),
            perms.mode,
            target.display()
        );
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Mode, and owner when the file exists, of a file being written.
#[derive(Debug, Clone, Copy)]
struct Perms {
    mode: u32,
    owner: Option<(u32, u32)>,
}

impl Perms {
    fn new(mode: u32) -> Self {
        Self { mode, owner: None }
    }

    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            mode: meta.mode() & 0o7777,
            owner: Some((meta.uid(), meta.gid())),
        }
    }

    #[cfg(not(unix))]
    fn of(meta: &std::fs::Metadata) -> Self {
        let mode = if meta.permissions().readonly() {
            0o444
        } else {
            0o644
        };
        Self::new(mode)
    }

    /// Creates the temporary file with the final mode (the umask may only take bits away).
    #[cfg(unix)]
    fn create(&self, tmp: &Path) -> std::io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.mode & 0o777)
            .open(tmp)
    }

    #[cfg(not(unix))]
    fn create(&self, tmp: &Path) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
    }

    /// Gives the open file its owner (where allowed: only root may give a file away), then
    /// the exact mode, which the umask may have narrowed and `chown` may have cleared bits of.
    #[cfg(unix)]
    fn apply(&self, file: &File) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if let Some((uid, gid)) = self.owner {
            match std::os::unix::fs::fchown(file, Some(uid), Some(gid)) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                other => other?,
            }
        }
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))
    }

    #[cfg(not(unix))]
    fn apply(&self, _file: &File) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a temporary file beside `target` (same folder, so the rename is atomic), with
/// `perms` before any byte is in it, syncs it, renames it over `target`, then syncs the folder
/// so the rename itself survives a crash.
fn replace(target: &Path, contents: &[u8], perms: Perms) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = parent_dir(target);
    std::fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    // A leftover of a crashed process that had the same id.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = perms.create(&tmp)?;
        perms.apply(&file)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        // Some file systems cannot sync a folder; the rename is done either way.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The folder holds exactly these names: no temporary file is left behind.
    fn assert_names(dir: &Path, expected: &[&str]) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_new_file_gets_the_callers_mode_and_an_existing_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("state/secret.toml");
        write_atomic(&secret, b"auth_token = \"s\"\n", PRIVATE).unwrap();
        assert_eq!(mode(&secret), 0o600, "not the umask's 0644");
        assert_eq!(std::fs::read(&secret).unwrap(), b"auth_token = \"s\"\n");

        let shared = dir.path().join("shared.toml");
        std::fs::write(&shared, "old").unwrap();
        set_mode(&shared, 0o640);
        write_atomic(&shared, b"new", PRIVATE).unwrap();
        assert_eq!(
            (mode(&shared), std::fs::read(&shared).unwrap()),
            (0o640, b"new".to_vec())
        );
        assert_names(dir.path(), &["shared.toml", "state"]);
    }

    #[test]
    fn a_backup_takes_the_mode_of_the_file_it_backs_up() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let backup = dir.path().join("config.toml.bak");
        std::fs::write(&config, "secret").unwrap();
        set_mode(&config, 0o600);
        std::fs::write(&backup, "stale").unwrap();
        set_mode(&backup, 0o444);
        write_backup(&backup, b"secret", &config).unwrap();
        assert_eq!(mode(&backup), 0o600);
        assert_eq!(std::fs::read(&backup).unwrap(), b"secret");
    }

    #[test]
    fn a_symlink_chain_is_written_through_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dotfiles = dir.path().join("dotfiles");
        std::fs::create_dir(&dotfiles).unwrap();
        let real = dotfiles.join("config.toml");
        std::fs::write(&real, "old").unwrap();
        set_mode(&real, 0o600);
        let middle = dir.path().join("middle.toml");
        symlink("dotfiles/config.toml", &middle).unwrap();
        let link = dir.path().join("config.toml");
        symlink(&middle, &link).unwrap();

        write_atomic(&link, b"new", SHARED).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::symlink_metadata(&middle)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert_eq!(mode(&real), 0o600);
        assert_names(&dotfiles, &["config.toml"]);
    }

    #[test]
    fn a_dangling_link_gets_its_target_created() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("config.toml");
        symlink("elsewhere/real.toml", &link).unwrap();
        write_atomic(&link, b"new", PRIVATE).unwrap();
        let real = dir.path().join("elsewhere/real.toml");
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert_eq!(mode(&real), 0o600);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_link_loop_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        symlink("b", &a).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let err = format!("{:#}", write_atomic(&a, b"x", PRIVATE).unwrap_err());
        assert!(err.contains("more than 40 symbolic links"), "{err}");
    }

    #[test]
    fn a_read_only_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "keep").unwrap();
        set_mode(&config, 0o444);
        let err = format!("{:#}", write_atomic(&config, b"new", PRIVATE).unwrap_err());
        assert!(err.contains("is read-only (mode 0444)"), "{err}");
        assert!(
            err.contains(&format!("chmod u+w {}", config.display())),
            "{err}"
        );
        assert!(ensure_writable(&config).is_err());
        assert_eq!(std::fs::read(&config).unwrap(), b"keep");
        assert_eq!(mode(&config), 0o444);
        assert_names(dir.path(), &["config.toml"]);

        // Through a link, the message names both.
        let link = dir.path().join("link.toml");
        symlink(&config, &link).unwrap();
        let err = format!("{:#}", write_atomic(&link, b"new", PRIVATE).unwrap_err());
        assert!(err.contains("(linked from "), "{err}");
    }
}

/// Opens `path` for append, creating it private to the user (logs and evidence name relays,
/// hosts and what they answered, which is the user's business only).
pub fn open_append_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE);
    }
    options.open(path)
}
