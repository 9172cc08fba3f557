//! Finding rollout files: `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`, newest
//! first, from their names and modification times alone (no file is opened).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Serialize;

/// The most files looked at; past it the oldest are left out (and the listing says so).
pub const MAX_FILES: usize = 200_000;
/// How deep the dated folders go, with room to spare.
const MAX_DEPTH: usize = 5;

/// One rollout file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutFile {
    pub path: PathBuf,
    /// The thread id in the file name.
    pub name_id: String,
    /// Last modified, ms since the epoch: when the thread was last used (a resumed thread keeps
    /// its old name but its file changes).
    pub modified_ms: u64,
}

/// The rollout files found, most recently modified first.
#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<RolloutFile>,
    /// More files than [`MAX_FILES`] existed.
    pub truncated: bool,
}

/// `rollout-YYYY-MM-DDThh-mm-ss-<id>.jsonl` → `(time part, id)`.
pub fn split_name(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_prefix("rollout-")?.strip_suffix(".jsonl")?;
    const TIME_LEN: usize = "YYYY-MM-DDThh-mm-ss".len();
    let time = stem.get(..TIME_LEN)?;
    let id = stem.get(TIME_LEN..)?.strip_prefix('-')?;
    let shaped = time.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 | 13 | 16 => b == b'-',
        10 => b == b'T',
        _ => b.is_ascii_digit(),
    });
    (shaped && !id.is_empty()).then_some((time, id))
}

/// Every rollout under `codex_home/sessions`, most recently modified first (then by name,
/// newest first).
pub fn find(codex_home: &Path) -> Found {
    let mut found = Found::default();
    collect(&codex_home.join("sessions"), 0, &mut found);
    found.files.sort_by(|a, b| {
        b.modified_ms
            .cmp(&a.modified_ms)
            .then_with(|| b.path.file_name().cmp(&a.path.file_name()))
    });
    found
}

fn collect(dir: &Path, depth: usize, found: &mut Found) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if found.files.len() >= MAX_FILES {
            found.truncated = true;
            return;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            if depth < MAX_DEPTH {
                collect(&path, depth + 1, found);
            }
            continue;
        }
        let name = entry.file_name();
        let Some((_, id)) = name.to_str().and_then(split_name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        found.files.push(RolloutFile {
            name_id: id.to_string(),
            path,
            modified_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_time_and_id() {
        assert_eq!(
            split_name("rollout-2026-11-30T09-05-01-0199a1b2-4c3d-7e5f-8a9b-0c1d2e3f4a5b.jsonl"),
            Some((
                "2026-11-30T09-05-01",
                "0199a1b2-4c3d-7e5f-8a9b-0c1d2e3f4a5b"
            ))
        );
        assert_eq!(split_name("rollout-2026-11-30T09-05-01.jsonl"), None);
        assert_eq!(split_name("rollout-2026-11-30 09-05-01-x.jsonl"), None);
        assert_eq!(split_name("notes-2026-11-30T09-05-01-x.jsonl"), None);
        assert_eq!(split_name("rollout-2026-11-30T09-05-01-x.json"), None);
    }
}
