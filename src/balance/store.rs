//! Balance snapshots kept across restarts: the latest one per relay endpoint, in
//! `balances.sqlite3` beside the ledger. A restart then shows what was known (marked stale
//! when old) instead of `unknown` everywhere, and knows when each relay was last asked.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::snapshot::Snapshot;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshots (
    endpoint       TEXT PRIMARY KEY,   -- provider.endpoint
    fetched_at_ms  INTEGER NOT NULL,
    snapshot_json  TEXT NOT NULL       -- `Snapshot` as JSON (amounts as decimal strings)
);
";

/// Opens (creating if needed) the snapshot store at `path`.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let conn = Connection::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the balance store {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    conn.execute_batch(SCHEMA)
        .map_err(|e| anyhow::anyhow!("cannot prepare the balance store {}: {e}", path.display()))?;
    Ok(conn)
}

/// Keeps `snapshot` as the latest for `endpoint` (an older one never replaces a newer one).
pub fn save(conn: &Connection, endpoint: &str, snapshot: &Snapshot) -> anyhow::Result<()> {
    let json = serde_json::to_string(snapshot)?;
    conn.execute(
        "INSERT INTO snapshots VALUES (?1, ?2, ?3)
         ON CONFLICT (endpoint) DO UPDATE SET fetched_at_ms = excluded.fetched_at_ms,
             snapshot_json = excluded.snapshot_json
         WHERE excluded.fetched_at_ms >= snapshots.fetched_at_ms",
        params![endpoint, snapshot.fetched_at_ms as i64, json],
    )?;
    Ok(())
}

/// The latest snapshot of `endpoint`, if one is kept and readable.
pub fn latest(conn: &Connection, endpoint: &str) -> anyhow::Result<Option<Snapshot>> {
    let json: Option<String> = conn
        .query_row(
            "SELECT snapshot_json FROM snapshots WHERE endpoint = ?1",
            [endpoint],
            |row| row.get(0),
        )
        .optional()?;
    Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
}

/// Every kept snapshot by endpoint. Rows this version cannot read (written by a newer one)
/// are left out, not fatal.
pub fn all(conn: &Connection) -> anyhow::Result<Vec<(String, Snapshot)>> {
    let mut stmt =
        conn.prepare("SELECT endpoint, snapshot_json FROM snapshots ORDER BY endpoint")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut kept = Vec::new();
    for row in rows {
        let (endpoint, json) = row?;
        if let Ok(snapshot) = serde_json::from_str(&json) {
            kept.push((endpoint, snapshot));
        }
    }
    Ok(kept)
}

/// Forgets the snapshots of endpoints no longer configured.
pub fn retain(conn: &Connection, endpoints: &[String]) -> anyhow::Result<usize> {
    let kept: std::collections::HashSet<&str> = endpoints.iter().map(String::as_str).collect();
    let stored: Vec<String> = conn
        .prepare("SELECT endpoint FROM snapshots")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut gone = 0;
    for endpoint in stored.iter().filter(|e| !kept.contains(e.as_str())) {
        gone += conn.execute("DELETE FROM snapshots WHERE endpoint = ?1", [endpoint])?;
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::snapshot::{Amounts, Reading, Status};

    fn snapshot(at: u64, balance: &str) -> Snapshot {
        let reading = Reading {
            amounts: Amounts {
                total_balance: Some(balance.parse().unwrap()),
                plan_name: Some("Pro".into()),
                ..Amounts::default()
            },
            exhausted: Some(false),
            ..Reading::default()
        };
        Snapshot::new(
            "r",
            "usage_provider:test",
            reading,
            true,
            (at, at + 1000),
            None,
        )
    }

    #[test]
    fn the_latest_snapshot_survives_a_reopen_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("balances.sqlite3");
        let conn = open(&path).unwrap();
        save(&conn, "r.default", &snapshot(10, "12.345678901234567")).unwrap();
        save(&conn, "r.default", &snapshot(20, "7.5")).unwrap();
        save(&conn, "r.default", &snapshot(15, "99")).unwrap();
        drop(conn);

        let conn = open(&path).unwrap();
        let kept = latest(&conn, "r.default").unwrap().unwrap();
        assert_eq!(kept, snapshot(20, "7.5"), "the newest one, amounts exact");
        assert_eq!(kept.status(20), Status::Ok);
        assert_eq!(kept.status(5000), Status::Stale, "old after a long restart");
        assert_eq!(latest(&conn, "other.default").unwrap(), None);
    }

    #[test]
    fn unreadable_rows_are_skipped_and_gone_endpoints_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("b.sqlite3")).unwrap();
        save(&conn, "a.default", &snapshot(1, "1")).unwrap();
        save(&conn, "b.default", &snapshot(1, "2")).unwrap();
        conn.execute(
            "INSERT INTO snapshots VALUES ('c.default', 1, '{\"from\":\"the future\"}')",
            [],
        )
        .unwrap();
        let names: Vec<String> = all(&conn).unwrap().into_iter().map(|(e, _)| e).collect();
        assert_eq!(names, ["a.default", "b.default"]);
        assert_eq!(retain(&conn, &["b.default".to_string()]).unwrap(), 2);
        let names: Vec<String> = all(&conn).unwrap().into_iter().map(|(e, _)| e).collect();
        assert_eq!(names, ["b.default"]);
    }
}
