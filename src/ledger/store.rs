//! The ledger database: opening it, its schema and migrations, and writing rows.
//!
//! SQLite in WAL mode: readers (`usage` commands) never block the writer. The schema version
//! is SQLite's `user_version`; each migration moves it up by one, in a transaction.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::row::LedgerRow;

/// Migrations, in order; `MIGRATIONS[i]` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE requests (
    id                  INTEGER PRIMARY KEY,
    trace_id            TEXT NOT NULL UNIQUE,
    started_ms          INTEGER NOT NULL,
    session_id          TEXT,
    session_source      TEXT,
    thread_id           TEXT,
    client              TEXT,
    method              TEXT NOT NULL,
    path                TEXT NOT NULL,
    streaming           INTEGER NOT NULL,
    model_requested     TEXT,
    model_sent          TEXT,
    model_answered      TEXT,
    preset              TEXT,
    provider            TEXT,
    endpoint            TEXT,
    status              INTEGER,
    outcome             TEXT NOT NULL,
    error_class         TEXT,
    error               TEXT,
    attempts_json       TEXT NOT NULL,
    decision_json       TEXT,
    input_tokens        INTEGER,
    cached_input_tokens INTEGER,
    output_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    total_tokens        INTEGER,
    ttfb_ms             REAL,
    duration_ms         REAL NOT NULL,
    bytes_in            INTEGER NOT NULL,
    bytes_out           INTEGER NOT NULL,
    cost_usd            REAL,
    price_source        TEXT
);
CREATE INDEX requests_by_time ON requests(started_ms);
CREATE INDEX requests_by_session ON requests(session_id, started_ms);
-- Covers `usage summary`, which then never reads the wide rows (attempts, decisions).
CREATE INDEX requests_summary ON requests(started_ms, provider, model_sent, model_requested, session_id, status, outcome,
    input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd);
"#];

/// Opens (creating if needed) and migrates the ledger at `path`.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let conn = Connection::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the ledger {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&conn)
        .map_err(|e| anyhow::anyhow!("cannot prepare the ledger {}: {e}", path.display()))?;
    Ok(conn)
}

/// Caps the database at about `bytes`; inserts past it fail with "database or disk is full".
pub fn cap_size(conn: &Connection, bytes: u64) -> rusqlite::Result<()> {
    let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let pages = (bytes as i64 / page.max(512)).max(1);
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(())
}

/// Opens an existing ledger for reading only.
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| anyhow::anyhow!("cannot open the ledger {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        anyhow::bail!(
            "the ledger {} was written by a newer codex-helper (schema {version})",
            path.display()
        );
    }
    Ok(conn)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Inserts rows in one transaction; a row whose trace id is already stored is skipped.
/// Returns how many were new.
pub fn insert(conn: &mut Connection, rows: &[LedgerRow]) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut added = 0;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO requests (trace_id, started_ms, session_id, session_source, thread_id, client, method, path, streaming,
                model_requested, model_sent, model_answered, preset, provider, endpoint, status, outcome, error_class, error,
                attempts_json, decision_json, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
                ttfb_ms, duration_ms, bytes_in, bytes_out, cost_usd, price_source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)",
        )?;
        for r in rows {
            added += stmt.execute(params![
                r.trace_id,
                r.started_ms as i64,
                r.session_id,
                r.session_source,
                r.thread_id,
                r.client,
                r.method,
                r.path,
                r.streaming,
                r.model_requested,
                r.model_sent,
                r.model_answered,
                r.preset,
                r.provider,
                r.endpoint,
                r.status,
                r.outcome,
                r.error_class,
                r.error,
                r.attempts_json,
                r.decision_json,
                r.input_tokens.map(|n| n as i64),
                r.cached_input_tokens.map(|n| n as i64),
                r.output_tokens.map(|n| n as i64),
                r.reasoning_tokens.map(|n| n as i64),
                r.total_tokens.map(|n| n as i64),
                r.ttfb_ms,
                r.duration_ms,
                r.bytes_in as i64,
                r.bytes_out as i64,
                r.cost_usd,
                r.price_source,
            ])?;
        }
    }
    tx.commit()?;
    Ok(added)
}

/// Deletes rows older than `before_ms` and beyond the newest `max_rows`. Returns how many.
pub fn apply_retention(
    conn: &Connection,
    before_ms: u64,
    max_rows: u64,
) -> rusqlite::Result<usize> {
    let old = conn.execute(
        "DELETE FROM requests WHERE started_ms < ?1",
        params![before_ms as i64],
    )?;
    let excess = conn.execute(
        "DELETE FROM requests WHERE id <= (SELECT id FROM requests ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        params![max_rows as i64],
    )?;
    Ok(old + excess)
}
