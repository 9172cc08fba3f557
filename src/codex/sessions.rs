//! Codex's recorded threads: which provider each one is tagged with, and moving threads from
//! one provider id to another (`session retag`).
//!
//! Codex 0.171.0 keeps each thread in a rollout file
//! (`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-…-<id>.jsonl`, or `archived_sessions/`) whose first
//! line is a `session_meta` record with `payload.model_provider`, and indexes the threads in
//! `$CODEX_HOME/state_<N>.sqlite` (`threads.model_provider`). `resume` and the session picker
//! list only threads of the provider in force, and refuse a thread whose provider is not
//! configured. Retagging changes exactly the provider id in both places: the rest of each
//! rollout is kept byte for byte, the file is replaced atomically (mode kept), and a copy of
//! everything changed is kept first.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::files::{PRIVATE, write_atomic};

/// The longest `session_meta` line read (it carries the ~25k-character base instructions).
const META_LINE_MAX: u64 = 4 << 20;
/// How deep the rollout folders go (`sessions/YYYY/MM/DD`), with room to spare.
const MAX_DEPTH: usize = 6;

/// One thread's rollout file and the provider it is tagged with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollout {
    pub path: PathBuf,
    pub thread_id: String,
    pub provider: String,
}

/// Every rollout under `codex_home` whose first line is a readable `session_meta`.
pub fn rollouts(codex_home: &Path) -> Vec<Rollout> {
    let mut found = Vec::new();
    for folder in ["sessions", "archived_sessions"] {
        collect(&codex_home.join(folder), 0, &mut found);
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

fn collect(dir: &Path, depth: usize, found: &mut Vec<Rollout>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth < MAX_DEPTH {
            collect(&path, depth + 1, found);
        } else if kind.is_file() && is_rollout_name(&path) {
            if let Some(rollout) = read_meta(&path) {
                found.push(rollout);
            }
        }
    }
}

fn is_rollout_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("rollout-") && n.ends_with(".jsonl"))
}

/// The thread id and provider of a rollout, from its first line.
fn read_meta(path: &Path) -> Option<Rollout> {
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    BufReader::new(file.take(META_LINE_MAX))
        .read_line(&mut line)
        .ok()?;
    let (thread_id, provider) = meta_fields(&line)?;
    Some(Rollout {
        path: path.to_path_buf(),
        thread_id,
        provider,
    })
}

/// `(payload.id, payload.model_provider)` of a `session_meta` line.
fn meta_fields(line: &str) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(line.trim_end()).ok()?;
    if value.get("type")?.as_str()? != "session_meta" {
        return None;
    }
    let payload = value.get("payload")?;
    Some((
        payload.get("id")?.as_str()?.to_string(),
        payload.get("model_provider")?.as_str()?.to_string(),
    ))
}

/// Whether any thread is tagged with `provider`.
pub fn any_tagged(codex_home: &Path, provider: &str) -> bool {
    rollouts(codex_home).iter().any(|r| r.provider == provider)
}

/// What `session retag` did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetagReport {
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    /// Rollouts retagged (or to be).
    pub rollouts: Vec<Rollout>,
    /// Rows of Codex's thread index updated (or to be).
    pub index_rows: usize,
    /// Rollouts left as they were, and why.
    pub skipped: Vec<(PathBuf, String)>,
    /// Where the copies of the changed files are.
    pub backup: Option<PathBuf>,
}

/// The first line of `text` with its `"model_provider":"<from>"` changed to `to`, or `None`
/// when the line is not a `session_meta` of `from` written the way Codex writes it.
fn retag_first_line(text: &str, from: &str, to: &str) -> Option<String> {
    let end = text.find('\n').unwrap_or(text.len());
    let (line, rest) = text.split_at(end);
    let (_, provider) = meta_fields(line)?;
    if provider != from {
        return None;
    }
    let quote = |s: &str| serde_json::to_string(s).ok();
    let old = format!("\"model_provider\":{}", quote(from)?);
    let new = format!("\"model_provider\":{}", quote(to)?);
    if line.matches(&old).count() != 1 {
        return None;
    }
    let changed = line.replacen(&old, &new, 1);
    // The payload's own field changed, and nothing else.
    (meta_fields(&changed)?.1 == to).then(|| format!("{changed}{rest}"))
}

/// Moves every thread tagged `from` to `to`: the rollouts' `session_meta` and Codex's thread
/// index. With `dry_run`, only says what would change. Copies of the changed files go to a new
/// folder under `backup_root` first.
pub fn retag(
    codex_home: &Path,
    from: &str,
    to: &str,
    dry_run: bool,
    backup_root: &Path,
) -> anyhow::Result<RetagReport> {
    if from == to {
        bail!("--from and --to are the same provider (`{from}`)");
    }
    let mut report = RetagReport {
        from: from.to_string(),
        to: to.to_string(),
        dry_run,
        ..Default::default()
    };
    let tagged: Vec<Rollout> = rollouts(codex_home)
        .into_iter()
        .filter(|r| r.provider == from)
        .collect();
    let indexes = thread_indexes(codex_home);
    if dry_run {
        report.index_rows = indexes
            .iter()
            .map(|db| count_rows(db, from, &tagged).unwrap_or(0))
            .sum();
        report.rollouts = tagged;
        return Ok(report);
    }
    if tagged.is_empty() {
        return Ok(report);
    }
    let backup = backup_root.join(format!("retag-{}", crate::time::now_ms()));
    std::fs::create_dir_all(&backup)
        .with_context(|| format!("cannot create the backup folder {}", backup.display()))?;
    for db in &indexes {
        backup_database(db, &backup.join(db.file_name().unwrap_or_default()))?;
    }
    for rollout in tagged {
        match retag_file(&rollout.path, codex_home, from, to, &backup) {
            Ok(()) => report.rollouts.push(Rollout {
                provider: to.to_string(),
                ..rollout
            }),
            Err(e) => report.skipped.push((rollout.path, format!("{e:#}"))),
        }
    }
    for db in &indexes {
        report.index_rows += update_rows(db, from, to, &report.rollouts)
            .with_context(|| format!("cannot update Codex's thread index {}", db.display()))?;
    }
    report.backup = Some(backup);
    Ok(report)
}

/// Rewrites one rollout after copying it to `backup`. A file that changes while it is being
/// rewritten (Codex writing to it) is left as it is.
fn retag_file(
    path: &Path,
    codex_home: &Path,
    from: &str,
    to: &str,
    backup: &Path,
) -> anyhow::Result<()> {
    let before = std::fs::metadata(path)?;
    let text = std::fs::read_to_string(path)?;
    let Some(changed) = retag_first_line(&text, from, to) else {
        bail!("its first line is not a session_meta of `{from}` as Codex writes it");
    };
    let relative = path.strip_prefix(codex_home).unwrap_or(path);
    let copy = backup.join(relative);
    if let Some(dir) = copy.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(path, &copy).with_context(|| format!("cannot back up to {}", copy.display()))?;
    let now = std::fs::metadata(path)?;
    if now.len() != before.len() || now.modified().ok() != before.modified().ok() {
        bail!("Codex is writing to it; run `session retag` again when Codex is closed");
    }
    write_atomic(path, changed.as_bytes(), PRIVATE)
}

/// Codex's thread index databases (`state_<N>.sqlite`).
fn thread_indexes(codex_home: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(codex_home) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state_") && n.ends_with(".sqlite"))
        })
        .collect();
    found.sort();
    found
}

fn open_index(db: &Path) -> anyhow::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(connection)
}

fn has_threads_table(connection: &rusqlite::Connection) -> bool {
    connection
        .prepare("SELECT model_provider, id FROM threads LIMIT 0")
        .is_ok()
}

fn count_rows(db: &Path, from: &str, tagged: &[Rollout]) -> anyhow::Result<usize> {
    let connection = open_index(db)?;
    if !has_threads_table(&connection) {
        return Ok(0);
    }
    let mut count = 0;
    for rollout in tagged {
        let rows: i64 = connection.query_row(
            "SELECT COUNT(*) FROM threads WHERE id = ?1 AND model_provider = ?2",
            (&rollout.thread_id, from),
            |row| row.get(0),
        )?;
        count += usize::try_from(rows).unwrap_or(0);
    }
    Ok(count)
}

fn update_rows(db: &Path, from: &str, to: &str, moved: &[Rollout]) -> anyhow::Result<usize> {
    let mut connection = open_index(db)?;
    if !has_threads_table(&connection) {
        return Ok(0);
    }
    let transaction = connection.transaction()?;
    let mut count = 0;
    for rollout in moved {
        count += transaction.execute(
            "UPDATE threads SET model_provider = ?1 WHERE id = ?2 AND model_provider = ?3",
            (to, &rollout.thread_id, from),
        )?;
    }
    transaction.commit()?;
    Ok(count)
}

fn backup_database(db: &Path, copy: &Path) -> anyhow::Result<()> {
    // A consistent copy, even while Codex has the database open (WAL).
    let connection = open_index(db)?;
    let target = copy
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", copy.display()))?;
    connection
        .execute("VACUUM INTO ?1", [target])
        .map(drop)
        .with_context(|| format!("cannot back up {} to {}", db.display(), copy.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"{"timestamp":"t","ordinal":0,"type":"session_meta","payload":{"id":"th-1","cwd":"/w","model_provider":"codex_proxy","base_instructions":{"text":"model_provider codex_proxy"}}}"#;

    #[test]
    fn only_the_provider_id_of_the_first_line_changes() {
        let text = format!(
            "{META}\n{{\"type\":\"response_item\",\"payload\":{{\"model_provider\":\"codex_proxy\"}}}}\n"
        );
        let changed = retag_first_line(&text, "codex_proxy", "mine").unwrap();
        assert_eq!(
            changed,
            text.replacen(
                "\"model_provider\":\"codex_proxy\"",
                "\"model_provider\":\"mine\"",
                1
            )
        );
        assert_eq!(
            meta_fields(changed.lines().next().unwrap()).unwrap(),
            ("th-1".into(), "mine".into())
        );
        assert!(retag_first_line(&text, "other", "mine").is_none());
        assert!(retag_first_line("{\"type\":\"x\"}\n", "codex_proxy", "mine").is_none());
    }

    #[test]
    fn retag_moves_rollouts_and_keeps_a_copy() {
        let home = tempfile::tempdir().unwrap();
        let day = home.path().join("sessions/2026/11/30");
        std::fs::create_dir_all(&day).unwrap();
        let tagged = day.join("rollout-2026-11-30T00-00-00-th-1.jsonl");
        let other = day.join("rollout-2026-11-30T00-00-01-th-2.jsonl");
        let body = format!("{META}\n{{\"type\":\"event_msg\"}}\r\n");
        std::fs::write(&tagged, &body).unwrap();
        std::fs::write(
            &other,
            META.replace("codex_proxy\",\"base", "mine\",\"base"),
        )
        .unwrap();
        let backups = tempfile::tempdir().unwrap();

        let dry = retag(home.path(), "codex_proxy", "mine", true, backups.path()).unwrap();
        assert_eq!(dry.rollouts.len(), 1);
        assert_eq!(
            std::fs::read_to_string(&tagged).unwrap(),
            body,
            "dry run writes nothing"
        );

        let done = retag(home.path(), "codex_proxy", "mine", false, backups.path()).unwrap();
        assert_eq!(done.rollouts.len(), 1);
        assert!(!any_tagged(home.path(), "codex_proxy"));
        let backup = done.backup.unwrap();
        assert_eq!(
            std::fs::read_to_string(
                backup.join("sessions/2026/11/30/rollout-2026-11-30T00-00-00-th-1.jsonl")
            )
            .unwrap(),
            body
        );
        assert!(
            std::fs::read_to_string(&tagged)
                .unwrap()
                .ends_with("{\"type\":\"event_msg\"}\r\n")
        );
    }
}
