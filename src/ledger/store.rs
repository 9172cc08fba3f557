//! The ledger database: opening it, its schema and migrations, and writing rows.
//!
//! SQLite in WAL mode: readers (`usage` commands) never block the writer. The schema version
//! is SQLite's `user_version`; each migration moves it up by one, in a transaction.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::row::LedgerRow;

/// Migrations, in order; `MIGRATIONS[i]` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
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
-- Covers `usage summary --by session`, which then never reads the wide rows.
CREATE INDEX requests_summary ON requests(started_ms, session_id, status, outcome,
    input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, cost_usd);
"#,
    r#"
-- Per 15-minute bucket, provider and model: what summaries by provider, model or day add up,
-- so they stay fast over a year of rows. Kept in step with `requests` by `insert`.
CREATE TABLE usage_rollup (
    bucket_ms           INTEGER NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    requests            INTEGER NOT NULL,
    errors              INTEGER NOT NULL,
    input_tokens        INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    output_tokens       INTEGER NOT NULL,
    reasoning_tokens    INTEGER NOT NULL,
    total_tokens        INTEGER NOT NULL,
    cost_usd            REAL NOT NULL,
    unpriced            INTEGER NOT NULL,
    PRIMARY KEY (bucket_ms, provider, model)
) WITHOUT ROWID;
INSERT INTO usage_rollup
SELECT started_ms / 900000 * 900000, COALESCE(provider, '-'), COALESCE(model_sent, model_requested, '-'),
       COUNT(*), SUM(COALESCE(status, 0) >= 400 OR outcome NOT IN ('completed', 'client_disconnected')),
       COALESCE(SUM(input_tokens), 0), COALESCE(SUM(cached_input_tokens), 0), COALESCE(SUM(output_tokens), 0),
       COALESCE(SUM(reasoning_tokens), 0), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_usd), 0),
       SUM(cost_usd IS NULL AND input_tokens IS NOT NULL)
FROM requests GROUP BY 1, 2, 3;
"#,
    r#"
-- Summaries by provider, model and day read the rollups; this wide index only slowed inserts.
DROP INDEX IF EXISTS requests_summary;
"#,
    r#"
-- Affinity reasons were once spelled with the failure class's Debug text lowercased
-- (`failover_after_servererror`); they are now `failover_after_<class name>`, the class's
-- serde name (`failover_after_server_error`). Rewrites the stored decisions once. (`outcome`
-- and `error_class` always held the serde names: nothing to do there.)
WITH renamed(old, new) AS (VALUES
    ('failover_after_headertimeout', 'failover_after_header_timeout'),
    ('failover_after_firsteventtimeout', 'failover_after_first_event_timeout'),
    ('failover_after_ratelimited', 'failover_after_rate_limited'),
    ('failover_after_servererror', 'failover_after_server_error'),
    ('failover_after_cloudflaretimeout', 'failover_after_cloudflare_timeout'),
    ('failover_after_cloudflarechallenge', 'failover_after_cloudflare_challenge'),
    ('failover_after_unsupportedmodel', 'failover_after_unsupported_model'),
    ('failover_after_clienterror', 'failover_after_client_error'),
    ('failover_after_failedinstream', 'failover_after_failed_in_stream'),
    ('failover_after_emptystream', 'failover_after_empty_stream'),
    ('failover_after_forwardingloop', 'failover_after_forwarding_loop'),
    ('failover_after_preambletoolarge', 'failover_after_preamble_too_large')
)
UPDATE requests
SET decision_json = json_set(decision_json, '$.affinity_change',
    (SELECT new FROM renamed WHERE old = json_extract(requests.decision_json, '$.affinity_change')))
WHERE decision_json LIKE '%failover_after_%'
  -- CASE: a row that is not JSON (none should be) is left alone instead of failing the open.
  AND CASE WHEN json_valid(decision_json) THEN json_extract(decision_json, '$.affinity_change') END
      IN (SELECT old FROM renamed);
"#,
    r#"
-- What a row's cost depends on besides tokens and model, so `usage reprice` can recompute it:
-- the service tier the response reported, and the provider's price multiplier then.
ALTER TABLE requests ADD COLUMN service_tier TEXT;
ALTER TABLE requests ADD COLUMN price_multiplier REAL;
"#,
    r#"
-- Team mode: the member whose key a request carried, for `usage summary --by user`.
ALTER TABLE requests ADD COLUMN user_name TEXT;
CREATE INDEX requests_by_user ON requests(user_name, started_ms) WHERE user_name IS NOT NULL;
"#,
];

pub use super::rollup::BUCKET_MS;

/// The most the write-ahead log file keeps once checkpointed.
const WAL_KEPT_BYTES: i64 = 4 << 20;

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
    // The write-ahead log is cut back to this when a checkpoint empties it; without a limit the
    // file stays as large as the largest transaction ever made it (a big retention delete).
    conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
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
    migrate_to(conn, MIGRATIONS.len())
}

/// Runs the migrations from the database's version up to `target`.
fn migrate_to(conn: &Connection, target: usize) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target)
        .skip(version as usize)
    {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// One row into `requests`, skipped when its trace id is stored already.
const INSERT_REQUEST: &str = "INSERT OR IGNORE INTO requests (trace_id, started_ms, session_id, session_source, thread_id, client, method, path, streaming,
        model_requested, model_sent, model_answered, preset, provider, endpoint, status, outcome, error_class, error,
        attempts_json, decision_json, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
        ttfb_ms, duration_ms, bytes_in, bytes_out, cost_usd, price_source, service_tier, price_multiplier, user_name)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35)";

/// Inserts rows in one transaction; a row whose trace id is already stored is skipped.
/// Returns how many were new.
pub fn insert(conn: &mut Connection, rows: &[LedgerRow]) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut new_rows = Vec::with_capacity(rows.len());
    {
        let mut stmt = tx.prepare_cached(INSERT_REQUEST)?;
        for row in rows {
            if insert_request(&mut stmt, row)? {
                new_rows.push(row); // a row stored already is not counted twice
            }
        }
    }
    add_to_rollups(&tx, &new_rows)?;
    tx.commit()?;
    Ok(new_rows.len())
}

/// Inserts one row into `requests`; `false` when its trace id was stored already.
fn insert_request(stmt: &mut rusqlite::Statement<'_>, r: &LedgerRow) -> rusqlite::Result<bool> {
    let new = stmt.execute(params![
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
        r.service_tier,
        r.price_multiplier,
        r.user,
    ])?;
    Ok(new > 0)
}

/// Adds the new rows to their rollup lines: one upsert per line the batch touches, not one per
/// row.
fn add_to_rollups(tx: &Connection, new_rows: &[&LedgerRow]) -> rusqlite::Result<()> {
    let mut rollup = tx.prepare_cached(
        "INSERT INTO usage_rollup VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (bucket_ms, provider, model) DO UPDATE SET
            requests = requests + excluded.requests, errors = errors + excluded.errors,
            input_tokens = input_tokens + excluded.input_tokens, cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
            output_tokens = output_tokens + excluded.output_tokens, reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
            total_tokens = total_tokens + excluded.total_tokens, cost_usd = cost_usd + excluded.cost_usd, unpriced = unpriced + excluded.unpriced",
    )?;
    for (key, delta) in super::rollup::sum(new_rows.iter().copied()) {
        rollup.execute(params![
            key.bucket_ms as i64,
            key.provider,
            key.model,
            delta.requests as i64,
            delta.errors as i64,
            delta.input_tokens as i64,
            delta.cached_input_tokens as i64,
            delta.output_tokens as i64,
            delta.reasoning_tokens as i64,
            delta.total_tokens as i64,
            delta.cost_usd,
            delta.unpriced as i64,
        ])?;
    }
    Ok(())
}

/// Deletes rows older than `before_ms` and beyond the newest `max_rows`, and the rollup
/// buckets before the oldest row left. Returns how many rows.
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
    // Rollup buckets go with the rows: everything before the oldest row's bucket.
    conn.execute(
        "DELETE FROM usage_rollup WHERE bucket_ms < COALESCE((SELECT MIN(started_ms) FROM requests) / ?1 * ?1, 9223372036854775807)",
        params![BUCKET_MS as i64],
    )?;
    Ok(old + excess)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::affinity::{AffinityChange, legacy_class_name, legacy_classes};

    fn insert_decision(conn: &Connection, trace: &str, decision: Option<&str>) {
        conn.execute(
            "INSERT INTO requests (trace_id, started_ms, method, path, streaming, outcome,
                attempts_json, decision_json, duration_ms, bytes_in, bytes_out)
             VALUES (?1, 1, 'POST', '/v1/responses', 1, 'completed', '[]', ?2, 1.0, 0, 0)",
            params![trace, decision],
        )
        .unwrap();
    }

    fn decision_of(conn: &Connection, trace: &str) -> Option<String> {
        conn.query_row(
            "SELECT decision_json FROM requests WHERE trace_id = ?1",
            [trace],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn the_write_ahead_log_is_cut_back_after_a_large_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite3");
        let mut conn = open(&path).unwrap();
        let row = |i: usize| super::super::row::LedgerRow {
            trace_id: format!("t-{i}"),
            method: "POST".into(),
            path: "/v1/responses".into(),
            outcome: "completed".into(),
            attempts_json: "x".repeat(600),
            ..Default::default()
        };
        // One transaction far larger than the limit (as a big retention delete is).
        insert(&mut conn, &(0..16_000).map(row).collect::<Vec<_>>()).unwrap();
        let wal = dir.path().join("ledger.sqlite3-wal");
        let peak = std::fs::metadata(&wal).unwrap().len();
        assert!(
            peak > 2 * WAL_KEPT_BYTES as u64,
            "the test needs a large log: {peak}"
        );
        // The checkpoint after that commit emptied the log; the next write starts it over.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        insert(&mut conn, &[row(16_000)]).unwrap();
        let after = std::fs::metadata(&wal).unwrap().len();
        assert!(
            after <= WAL_KEPT_BYTES as u64,
            "{after} bytes kept of {peak}"
        );
    }

    #[test]
    fn old_affinity_reasons_are_renamed_by_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("ledger.sqlite3")).unwrap();
        // The schema as the last version before typed names left it, with its values.
        migrate_to(&conn, 3).unwrap();
        let decision = |change: &str| {
            serde_json::json!({"graph_key": "g1:0123456789abcdef", "affinity_policy": "fallback-sticky",
                "affinity": "a.default", "relay_bound": false, "candidates": [],
                "chosen": "b.default", "why": "failover", "affinity_change": change})
            .to_string()
        };
        for class in legacy_classes() {
            let old = format!("failover_after_{}", legacy_class_name(class));
            insert_decision(&conn, class.as_str(), Some(&decision(&old)));
        }
        insert_decision(&conn, "first", Some(&decision("first_success")));
        insert_decision(&conn, "none", None);
        insert_decision(&conn, "not-json", Some("failover_after_servererror {"));

        migrate(&conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        for class in legacy_classes() {
            let stored: serde_json::Value =
                serde_json::from_str(&decision_of(&conn, class.as_str()).unwrap()).unwrap();
            let want = AffinityChange::FailoverAfter(class).to_string();
            assert_eq!(
                stored,
                serde_json::from_str::<serde_json::Value>(&decision(&want)).unwrap()
            );
        }
        assert_eq!(decision_of(&conn, "first"), Some(decision("first_success")));
        assert_eq!(decision_of(&conn, "none"), None);
        assert_eq!(
            decision_of(&conn, "not-json").as_deref(),
            Some("failover_after_servererror {")
        );
    }
}
