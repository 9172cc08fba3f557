//! The PostgreSQL ledger's schema and writes: the SQLite ledger's columns and rollups in
//! PostgreSQL's dialect (tables prefixed `codex_helper_`, as they may share a database with the
//! team's keys). Migrations run under an advisory lock ([`crate::postgres::migrate_schema`]).

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::ledger::rollup;
use crate::ledger::row::LedgerRow;
use crate::postgres as db;

/// Names the ledger database in errors.
pub const WHAT: &str = "the ledger database";

/// Where the ledger's schema version is kept (the team's keys keep theirs elsewhere).
const VERSION_TABLE: &str = "codex_helper_ledger_schema";

/// Holds the ledger migrations lock (any constant shared by all instances).
const MIGRATION_LOCK: i64 = 0x636f_6465_786c_6467;

/// Schema versions, in order. The first is the SQLite ledger's schema as of its migration 6.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE codex_helper_requests (
    id                  BIGSERIAL PRIMARY KEY,
    trace_id            TEXT NOT NULL UNIQUE,
    started_ms          BIGINT NOT NULL,
    session_id          TEXT,
    session_source      TEXT,
    thread_id           TEXT,
    client              TEXT,
    method              TEXT NOT NULL,
    path                TEXT NOT NULL,
    streaming           BOOLEAN NOT NULL,
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
    input_tokens        BIGINT,
    cached_input_tokens BIGINT,
    output_tokens       BIGINT,
    reasoning_tokens    BIGINT,
    total_tokens        BIGINT,
    ttfb_ms             DOUBLE PRECISION,
    duration_ms         DOUBLE PRECISION NOT NULL,
    bytes_in            BIGINT NOT NULL,
    bytes_out           BIGINT NOT NULL,
    cost_usd            DOUBLE PRECISION,
    price_source        TEXT,
    service_tier        TEXT,
    price_multiplier    DOUBLE PRECISION,
    user_name           TEXT
);
CREATE INDEX codex_helper_requests_by_time ON codex_helper_requests (started_ms);
CREATE INDEX codex_helper_requests_by_session ON codex_helper_requests (session_id, started_ms);
CREATE INDEX codex_helper_requests_by_user ON codex_helper_requests (user_name, started_ms)
    WHERE user_name IS NOT NULL;
-- Per 15-minute bucket, provider and model: what summaries by provider, model or day add up.
-- Kept in step with the rows by `insert`, in the same transaction.
CREATE TABLE codex_helper_usage_rollup (
    bucket_ms           BIGINT NOT NULL,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    requests            BIGINT NOT NULL,
    errors              BIGINT NOT NULL,
    input_tokens        BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    total_tokens        BIGINT NOT NULL,
    cost_usd            DOUBLE PRECISION NOT NULL,
    unpriced            BIGINT NOT NULL,
    PRIMARY KEY (bucket_ms, provider, model)
);
"#];

/// Connects (the caller bounds it with [`db::CONNECT_TIMEOUT`]) and brings the ledger's schema
/// up to date.
pub async fn connect(url: &db::DatabaseUrl) -> anyhow::Result<Client> {
    let mut client = db::connect_client(url, WHAT).await?;
    db::migrate_schema(&mut client, VERSION_TABLE, MIGRATION_LOCK, MIGRATIONS)
        .await
        .map_err(|e| anyhow::anyhow!("cannot prepare {WHAT} at {}: {e:#}", url.shown()))?;
    Ok(client)
}

const INSERT_ROW: &str = "INSERT INTO codex_helper_requests (trace_id, started_ms, session_id, session_source, thread_id, client, method, path, streaming,
        model_requested, model_sent, model_answered, preset, provider, endpoint, status, outcome, error_class, error,
        attempts_json, decision_json, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
        ttfb_ms, duration_ms, bytes_in, bytes_out, cost_usd, price_source, service_tier, price_multiplier, user_name)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35)
     ON CONFLICT (trace_id) DO NOTHING";

const UPSERT_ROLLUP: &str = "INSERT INTO codex_helper_usage_rollup AS r VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (bucket_ms, provider, model) DO UPDATE SET
        requests = r.requests + excluded.requests, errors = r.errors + excluded.errors,
        input_tokens = r.input_tokens + excluded.input_tokens, cached_input_tokens = r.cached_input_tokens + excluded.cached_input_tokens,
        output_tokens = r.output_tokens + excluded.output_tokens, reasoning_tokens = r.reasoning_tokens + excluded.reasoning_tokens,
        total_tokens = r.total_tokens + excluded.total_tokens, cost_usd = r.cost_usd + excluded.cost_usd, unpriced = r.unpriced + excluded.unpriced";

/// A count or time as PostgreSQL's BIGINT (saturating).
pub(super) fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Inserts rows in one transaction (the statements pipelined); a row whose trace id is stored
/// already is skipped and not added to the rollups again, so a replay never counts twice.
/// Returns how many were new. Unbounded: the caller bounds it.
pub async fn insert(client: &mut Client, rows: &[LedgerRow]) -> anyhow::Result<usize> {
    let tx = client.transaction().await?;
    let insert = tx.prepare(INSERT_ROW).await?;
    let inserts = rows.iter().map(|r| {
        let values = row_values(r);
        let tx = &tx;
        let insert = &insert;
        async move {
            let params: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            tx.execute(insert, &params).await
        }
    });
    // Sent together: one round trip's wait for the batch, not one per row.
    let inserted = futures_util::future::try_join_all(inserts).await?;
    let new_rows = rows
        .iter()
        .zip(&inserted)
        .filter(|(_, n)| **n > 0)
        .map(|(r, _)| r);
    let lines = rollup::sum(new_rows);
    add_to_rollups(&tx, &lines).await?;
    tx.commit().await?;
    Ok(inserted.iter().filter(|n| **n > 0).count())
}

/// A row's values in `INSERT_ROW`'s column order, owned so the pipelined inserts can hold them.
fn row_values(r: &LedgerRow) -> [Box<dyn ToSql + Sync + Send>; 35] {
    [
        Box::new(r.trace_id.clone()),
        Box::new(big(r.started_ms)),
        Box::new(r.session_id.clone()),
        Box::new(r.session_source.clone()),
        Box::new(r.thread_id.clone()),
        Box::new(r.client.clone()),
        Box::new(r.method.clone()),
        Box::new(r.path.clone()),
        Box::new(r.streaming),
        Box::new(r.model_requested.clone()),
        Box::new(r.model_sent.clone()),
        Box::new(r.model_answered.clone()),
        Box::new(r.preset.clone()),
        Box::new(r.provider.clone()),
        Box::new(r.endpoint.clone()),
        Box::new(r.status.map(i32::from)),
        Box::new(r.outcome.clone()),
        Box::new(r.error_class.clone()),
        Box::new(r.error.clone()),
        Box::new(r.attempts_json.clone()),
        Box::new(r.decision_json.clone()),
        Box::new(r.input_tokens.map(big)),
        Box::new(r.cached_input_tokens.map(big)),
        Box::new(r.output_tokens.map(big)),
        Box::new(r.reasoning_tokens.map(big)),
        Box::new(r.total_tokens.map(big)),
        Box::new(r.ttfb_ms),
        Box::new(r.duration_ms),
        Box::new(big(r.bytes_in)),
        Box::new(big(r.bytes_out)),
        Box::new(r.cost_usd),
        Box::new(r.price_source.clone()),
        Box::new(r.service_tier.clone()),
        Box::new(r.price_multiplier),
        Box::new(r.user.clone()),
    ]
}

/// Adds the batch's new rows to their rollup lines, one upsert per line.
async fn add_to_rollups(
    tx: &tokio_postgres::Transaction<'_>,
    lines: &std::collections::BTreeMap<rollup::RollupKey, rollup::RollupDelta>,
) -> anyhow::Result<()> {
    let upsert = tx.prepare(UPSERT_ROLLUP).await?;
    for (key, d) in lines {
        tx.execute(
            &upsert,
            &[
                &big(key.bucket_ms),
                &key.provider,
                &key.model,
                &big(d.requests),
                &big(d.errors),
                &big(d.input_tokens),
                &big(d.cached_input_tokens),
                &big(d.output_tokens),
                &big(d.reasoning_tokens),
                &big(d.total_tokens),
                &d.cost_usd,
                &big(d.unpriced),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Deletes rows older than `before_ms` and beyond the newest `max_rows`, and the rollup lines
/// before the oldest row left. Returns how many rows. Unbounded: the caller bounds it.
pub async fn apply_retention(
    client: &Client,
    before_ms: u64,
    max_rows: u64,
) -> anyhow::Result<u64> {
    let old = client
        .execute(
            "DELETE FROM codex_helper_requests WHERE started_ms < $1",
            &[&big(before_ms)],
        )
        .await?;
    let excess = client
        .execute(
            "DELETE FROM codex_helper_requests WHERE id <= (SELECT id FROM codex_helper_requests ORDER BY id DESC LIMIT 1 OFFSET $1)",
            &[&big(max_rows)],
        )
        .await?;
    client
        .execute(
            "DELETE FROM codex_helper_usage_rollup WHERE bucket_ms < COALESCE((SELECT MIN(started_ms) FROM codex_helper_requests) / $1 * $1, 9223372036854775807)",
            &[&big(crate::ledger::store::BUCKET_MS)],
        )
        .await?;
    Ok(old + excess)
}
