//! Finding a runnable Codex binary for the `/models` catalog translation.
//!
//! A helper started by a service manager, or a Codex installed through npm, a version manager
//! or Homebrew, often has no `codex` on the proxy's own `PATH`; without one, the catalog goes
//! through untranslated and Codex falls back to its built-in metadata. `switch on` searches
//! the usual places, records what it found in the switch state, and `serve` uses that.
//!
//! [`candidates`] (pure) orders the places to look; [`discover`] looks (bounded: `npm prefix -g`
//! and each `--version` have a time limit).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long `codex --version` may take before a candidate counts as not runnable.
pub const VERSION_LIMIT: Duration = Duration::from_secs(5);

/// How long `npm prefix -g` may take (npm is slow to start, and may hang on a broken config).
const NPM_LIMIT: Duration = Duration::from_secs(5);

/// At most this many candidates are run (`--version`), so a long `PATH` stays bounded.
const MAX_RUNS: usize = 12;

/// Where a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `[proxy] codex_binary` in the helper's config.
    Configured,
    /// A folder of `PATH`.
    Path,
    /// `npm prefix -g`'s `bin`.
    NpmGlobal,
    /// One of the usual install folders (`~/.local/bin`, Homebrew, Volta, nvm …).
    InstallDir,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Configured => "configured",
            Origin::Path => "path",
            Origin::NpmGlobal => "npm_global",
            Origin::InstallDir => "install_dir",
        }
    }
}

/// A Codex binary that ran, as recorded in the switch state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodexBinary {
    pub path: PathBuf,
    /// What `--version` said (`0.171.0`).
    pub version: String,
    pub origin: Origin,
}

/// What the search starts from (the environment and the file system, read by the caller).
#[derive(Debug, Clone, Default)]
pub struct SearchPlaces {
    /// `PATH`'s folders, in order.
    pub path_dirs: Vec<PathBuf>,
    pub home: Option<PathBuf>,
    /// `npm prefix -g`, when npm answered.
    pub npm_prefix: Option<PathBuf>,
    /// `~/.nvm/versions/node/*/bin`, newest first.
    pub nvm_bins: Vec<PathBuf>,
}

/// The executable's file name on this system.
fn file_name() -> &'static str {
    if cfg!(windows) { "codex.cmd" } else { "codex" }
}

/// Every place to look, in order (`PATH` first: what the user's shell runs), each once.
pub fn candidates(places: &SearchPlaces) -> Vec<(PathBuf, Origin)> {
    let mut out: Vec<(PathBuf, Origin)> = Vec::new();
    let mut push = |dir: &Path, origin: Origin| {
        let path = dir.join(file_name());
        if !out.iter().any(|(p, _)| *p == path) {
            out.push((path, origin));
        }
    };
    for dir in places.path_dirs.iter().filter(|d| d.is_absolute()) {
        push(dir, Origin::Path);
    }
    if let Some(prefix) = &places.npm_prefix {
        // npm puts global binaries in `<prefix>/bin` on Unix and in `<prefix>` on Windows.
        push(&prefix.join("bin"), Origin::NpmGlobal);
        push(prefix, Origin::NpmGlobal);
    }
    if let Some(home) = &places.home {
        for rel in [
            ".local/bin",
            ".npm-global/bin",
            ".volta/bin",
            ".bun/bin",
            ".cargo/bin",
            ".local/share/pnpm",
            "Library/pnpm",
        ] {
            push(&home.join(rel), Origin::InstallDir);
        }
    }
    for dir in &places.nvm_bins {
        push(dir, Origin::InstallDir);
    }
    for dir in ["/opt/homebrew/bin", "/usr/local/bin", "/usr/bin"] {
        push(Path::new(dir), Origin::InstallDir);
    }
    out
}

/// Reads the places to look from the environment: `PATH`, `HOME`, npm's global prefix (run
/// with a time limit) and nvm's installed versions.
pub fn places_from_env() -> SearchPlaces {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let nvm_root = std::env::var_os("NVM_DIR")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".nvm")));
    let mut nvm_bins: Vec<PathBuf> = nvm_root
        .and_then(|root| std::fs::read_dir(root.join("versions").join("node")).ok())
        .into_iter()
        .flatten()
        .flatten()
        .take(64)
        .map(|entry| entry.path().join("bin"))
        .collect();
    // Newest first, by name (`v22.3.0` after `v20.1.0` as text is close enough for a search).
    nvm_bins.sort();
    nvm_bins.reverse();
    SearchPlaces {
        path_dirs,
        home,
        npm_prefix: npm_prefix(),
        nvm_bins,
    }
}

/// `npm prefix -g`, or `None` when npm is missing, fails, or takes longer than [`NPM_LIMIT`].
fn npm_prefix() -> Option<PathBuf> {
    let text = super::version::run_bounded(Path::new("npm"), &["prefix", "-g"], NPM_LIMIT)?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| PathBuf::from(line))
}

/// The first candidate that is an executable file and answers `--version` in time.
pub fn discover(places: &SearchPlaces) -> Option<CodexBinary> {
    candidates(places)
        .into_iter()
        .filter(|(path, _)| is_executable(path))
        .take(MAX_RUNS)
        .find_map(|(path, origin)| probe(&path, origin))
}

/// `path` as a Codex binary, when it runs and says its version.
pub fn probe(path: &Path, origin: Origin) -> Option<CodexBinary> {
    let version = super::version::installed(path, VERSION_LIMIT)?;
    Some(CodexBinary {
        path: path.to_path_buf(),
        version,
        origin,
    })
}

/// Which binary to use for the catalog when the config names one: `[proxy] codex_binary`
/// other than the default `codex` is the user's choice and wins over any search.
pub fn configured(codex_binary: &str) -> Option<PathBuf> {
    let trimmed = codex_binary.trim();
    (!trimmed.is_empty() && trimmed != "codex").then(|| PathBuf::from(trimmed))
}

/// The binary the proxy asks: the configured one, else the one recorded at `switch on` while
/// it still runs, else a fresh search. `None` when nothing runnable was found. Blocking.
pub fn for_catalog(codex_binary: &str, recorded: Option<&CodexBinary>) -> Option<CodexBinary> {
    if let Some(path) = configured(codex_binary) {
        return probe(&path, Origin::Configured);
    }
    if let Some(recorded) = recorded
        && let Some(found) = probe(&recorded.path, recorded.origin)
    {
        return Some(found);
    }
    discover(&places_from_env())
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_comes_first_then_npm_then_the_usual_folders_each_once() {
        let places = SearchPlaces {
            path_dirs: vec![
                "/usr/local/bin".into(),
                "relative/bin".into(),
                "/home/u/.local/bin".into(),
            ],
            home: Some("/home/u".into()),
            npm_prefix: Some("/home/u/.npm-global".into()),
            nvm_bins: vec!["/home/u/.nvm/versions/node/v22.1.0/bin".into()],
        };
        let found = candidates(&places);
        let names: Vec<(String, Origin)> = found
            .iter()
            .map(|(p, o)| (p.display().to_string(), *o))
            .collect();
        assert_eq!(names[0], ("/usr/local/bin/codex".into(), Origin::Path));
        assert_eq!(names[1], ("/home/u/.local/bin/codex".into(), Origin::Path));
        assert_eq!(
            names[2],
            ("/home/u/.npm-global/bin/codex".into(), Origin::NpmGlobal)
        );
        assert!(
            !names.iter().any(|(p, _)| p.starts_with("relative")),
            "a relative PATH entry depends on the working folder: skipped"
        );
        let count = |wanted: &str| names.iter().filter(|(p, _)| p == wanted).count();
        assert_eq!(count("/usr/local/bin/codex"), 1, "listed once");
        assert_eq!(count("/home/u/.npm-global/bin/codex"), 1);
        for wanted in [
            "/home/u/.volta/bin/codex",
            "/home/u/.bun/bin/codex",
            "/opt/homebrew/bin/codex",
            "/home/u/.nvm/versions/node/v22.1.0/bin/codex",
        ] {
            assert_eq!(count(wanted), 1, "{wanted} in {names:?}");
        }
    }

    #[test]
    fn only_a_non_default_binary_counts_as_configured() {
        assert_eq!(configured("codex"), None);
        assert_eq!(configured("  "), None);
        assert_eq!(
            configured("/opt/codex/bin/codex"),
            Some("/opt/codex/bin/codex".into())
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_first_runnable_candidate_wins_and_broken_ones_are_passed_over() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let make = |sub: &str, body: &str, mode: u32| {
            let folder = dir.path().join(sub);
            std::fs::create_dir_all(&folder).unwrap();
            let path = folder.join("codex");
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            folder
        };
        let not_executable = make("a", "echo 'codex-cli 1.0.0'", 0o644);
        let failing = make("b", "exit 3", 0o755);
        let good = make("c", "echo 'codex-cli 0.171.0'", 0o755);
        let places = SearchPlaces {
            path_dirs: vec![not_executable, failing, dir.path().join("missing")],
            npm_prefix: Some(good.parent().unwrap().join("c-prefix")),
            nvm_bins: vec![good.clone()],
            home: None,
        };
        let found = discover(&places).expect("found");
        assert_eq!(found.path, good.join("codex"));
        assert_eq!(found.version, "0.171.0");
        assert_eq!(found.origin, Origin::InstallDir);
    }
}
