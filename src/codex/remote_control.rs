//! `switch remote-control enable|status|check-logs`: turn on the Codex App's remote control
//! (its SQLite feature flag and `[features] remote_connections`), backing up what it changes.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use toml_edit::{DocumentMut, Item, Table, value};

const TABLE: &str = "local_app_server_feature_enablement";
const FEATURE: &str = "remote_control";

fn db_path(codex_home: &Path) -> PathBuf {
    codex_home.join("sqlite").join("codex-dev.db")
}

/// The Codex config with `[features] remote_connections = true` and the removed
/// `remote_control` key gone; `None` when nothing changes.
pub fn patch_config(text: &str) -> anyhow::Result<Option<String>> {
    let mut doc = text
        .parse::<DocumentMut>()
        .context("Codex's config.toml is not valid TOML")?;
    let root = doc.as_table_mut();
    if !root.contains_key("features") {
        root.insert("features", Item::Table(Table::new()));
    }
    let features = root
        .get_mut("features")
        .and_then(Item::as_table_mut)
        .context("`features` in Codex's config.toml is not a table")?;
    let before = features.to_string();
    if features.get("remote_connections").and_then(Item::as_bool) != Some(true) {
        features.insert("remote_connections", value(true));
    }
    features.remove("remote_control");
    let changed = features.to_string() != before || !text.contains("[features]");
    Ok(changed.then(|| super::doc::render(text, &doc, false)))
}

/// Checks the feature table's shape; returns whether it has a `created_at` column.
fn check_schema(conn: &Connection) -> anyhow::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({TABLE})"))?;
    let columns: Vec<(String, bool, bool)> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, i64>(3)? != 0,
                r.get::<_, i64>(5)? != 0,
            ))
        })?
        .collect::<Result<_, _>>()?;
    if columns.is_empty() {
        bail!(
            "the Codex App database has no {TABLE} table; open the Codex App once (or update it) first"
        );
    }
    for needed in ["feature_name", "enabled", "updated_at"] {
        if !columns.iter().any(|(name, _, _)| name == needed) {
            bail!(
                "the Codex App's {TABLE} table has no `{needed}` column; this Codex App version is not supported"
            );
        }
    }
    let known = ["id", "created_at", "feature_name", "enabled", "updated_at"];
    if let Some((name, _, _)) = columns
        .iter()
        .find(|(name, not_null, pk)| *not_null && !*pk && !known.contains(&name.as_str()))
    {
        bail!(
            "the Codex App's {TABLE} table requires a `{name}` column this command does not know; not changing it"
        );
    }
    Ok(columns.iter().any(|(name, _, _)| name == "created_at"))
}

/// What `enable` did.
#[derive(Debug, Serialize)]
pub struct EnableReport {
    pub backup: PathBuf,
    pub config_changed: bool,
}

pub fn enable(codex_home: &Path, now_ms: u64) -> anyhow::Result<EnableReport> {
    let db = db_path(codex_home);
    if !db.exists() {
        bail!(
            "{} does not exist: open the Codex App once, then run this again",
            db.display()
        );
    }
    let conn = Connection::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
    // Everything is checked before anything is written.
    let has_created_at = check_schema(&conn)?;
    let config_path = codex_home.join("config.toml");
    let (style, config_text) = super::text::read(&config_path)?;
    let new_config = patch_config(config_text.as_deref().unwrap_or_default())?;
    if new_config.is_some() {
        crate::files::ensure_writable(&config_path)?;
    }

    let backup = db.with_file_name(format!("codex-dev.db.{now_ms}.bak"));
    conn.execute("VACUUM INTO ?1", params![backup.to_string_lossy()])
        .with_context(|| format!("cannot back up {}", db.display()))?;
    if let Some(text) = &new_config {
        super::text::write(&config_path, style, text, crate::files::SHARED)?;
    }
    let updated = conn.execute(
        &format!("UPDATE {TABLE} SET enabled = 1, updated_at = ?1 WHERE feature_name = ?2"),
        params![now_ms as i64, FEATURE],
    )?;
    if updated == 0 {
        if has_created_at {
            conn.execute(&format!("INSERT INTO {TABLE} (feature_name, enabled, updated_at, created_at) VALUES (?1, 1, ?2, ?2)"), params![FEATURE, now_ms as i64])?;
        } else {
            conn.execute(
                &format!(
                    "INSERT INTO {TABLE} (feature_name, enabled, updated_at) VALUES (?1, 1, ?2)"
                ),
                params![FEATURE, now_ms as i64],
            )?;
        }
    }
    Ok(EnableReport {
        backup,
        config_changed: new_config.is_some(),
    })
}

/// `remote-control status`.
#[derive(Debug, Serialize)]
pub struct RemoteStatus {
    pub remote_connections: bool,
    /// The removed `[features] remote_control` key is still there.
    pub removed_key_present: bool,
    pub database: PathBuf,
    pub database_exists: bool,
    pub table_exists: bool,
    pub enabled: Option<bool>,
    pub updated_at_ms: Option<i64>,
}

pub fn status(codex_home: &Path) -> anyhow::Result<RemoteStatus> {
    let text = std::fs::read_to_string(codex_home.join("config.toml")).unwrap_or_default();
    let doc: toml::Table = toml::from_str(&text).unwrap_or_default();
    let features = doc.get("features").and_then(|f| f.as_table());
    let db = db_path(codex_home);
    let mut status = RemoteStatus {
        remote_connections: features
            .and_then(|f| f.get("remote_connections"))
            .and_then(|v| v.as_bool())
            == Some(true),
        removed_key_present: features.is_some_and(|f| f.contains_key("remote_control")),
        database_exists: db.exists(),
        database: db.clone(),
        table_exists: false,
        enabled: None,
        updated_at_ms: None,
    };
    if status.database_exists {
        let conn = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        status.table_exists = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [TABLE],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if status.table_exists {
            let row: Option<(i64, i64)> = conn
                .query_row(&format!("SELECT enabled, updated_at FROM {TABLE} WHERE feature_name = ?1 ORDER BY updated_at DESC LIMIT 1"), [FEATURE], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            status.enabled = row.map(|r| r.0 != 0);
            status.updated_at_ms = row.map(|r| r.1);
        }
    }
    Ok(status)
}

/// `remote-control check-logs`: the Codex logs that show the App accepted the flag.
pub fn check_logs(codex_home: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["log", "logs"] {
        collect(&codex_home.join(dir), &mut files, 0);
    }
    files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    files
        .into_iter()
        .take(20)
        .filter(|(_, path)| {
            let Ok(bytes) = std::fs::read(path) else {
                return false;
            };
            let tail =
                String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(2 << 20)..]).into_owned();
            tail.lines().any(|l| {
                l.contains("experimentalFeature/enablement/set")
                    && ["errorCode=null", "\"errorCode\":null", "'errorCode':null"]
                        .iter()
                        .any(|m| l.contains(m))
            })
        })
        .map(|(_, p)| p)
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<(std::time::SystemTime, PathBuf)>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth < 8 {
            collect(&path, out, depth + 1);
        } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
            out.push((modified, path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_db(home: &Path, extra_column: &str) {
        std::fs::create_dir_all(home.join("sqlite")).unwrap();
        let conn = Connection::open(db_path(home)).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, feature_name TEXT NOT NULL, enabled INTEGER NOT NULL, updated_at INTEGER NOT NULL, created_at INTEGER NOT NULL{extra_column});"
        ))
        .unwrap();
    }

    #[test]
    fn the_config_patch_sets_remote_connections_and_drops_the_removed_key() {
        let text =
            "# mine\nmodel = \"x\"\n[features]\nremote_control = true # old\nplugins = false\n";
        let out = patch_config(text).unwrap().unwrap();
        assert_eq!(
            out,
            "# mine\nmodel = \"x\"\n[features]\nplugins = false\nremote_connections = true\n"
        );
        assert_eq!(
            patch_config(&out).unwrap(),
            None,
            "nothing to change the second time"
        );
    }

    #[test]
    fn enable_backs_up_the_database_patches_config_and_sets_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        app_db(dir.path(), "");
        std::fs::write(dir.path().join("config.toml"), "model = \"x\"\n").unwrap();
        let report = enable(dir.path(), 1_000).unwrap();
        assert!(report.backup.exists() && report.config_changed);
        let s = status(dir.path()).unwrap();
        assert!(s.remote_connections && s.table_exists && !s.removed_key_present);
        assert_eq!((s.enabled, s.updated_at_ms), (Some(true), Some(1_000)));
        enable(dir.path(), 2_000).unwrap();
        let conn = Connection::open(db_path(dir.path())).unwrap();
        let rows: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {TABLE}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "the second enable updates the row");
    }

    #[test]
    fn an_unknown_schema_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        app_db(dir.path(), ", owner TEXT NOT NULL");
        std::fs::write(dir.path().join("config.toml"), "model = \"x\"\n").unwrap();
        let err = enable(dir.path(), 1).unwrap_err().to_string();
        assert!(err.contains("`owner`"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.toml")).unwrap(),
            "model = \"x\"\n"
        );
        let missing = tempfile::tempdir().unwrap();
        assert!(
            enable(missing.path(), 1)
                .unwrap_err()
                .to_string()
                .contains("open the Codex App once")
        );
    }

    #[test]
    fn the_log_check_finds_a_successful_enablement() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs/app")).unwrap();
        std::fs::write(
            dir.path().join("logs/app/a.log"),
            "x\n{\"method\":\"experimentalFeature/enablement/set\",\"errorCode\":null}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("logs/b.log"),
            "experimentalFeature/enablement/set errorCode=42\n",
        )
        .unwrap();
        let found = check_logs(dir.path());
        assert_eq!(found.len(), 1);
        assert!(found[0].ends_with("logs/app/a.log"));
    }
}
