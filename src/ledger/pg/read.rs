//! Reading the PostgreSQL ledger: the answers [`crate::ledger::query`] gives from SQLite, from
//! the same tables. Local times (dates, `started_local`) are worked out with SQLite's
//! `localtime`, as on the SQLite ledger, so both answer alike on one machine.

use std::collections::BTreeMap;

use rusqlite::Connection;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::schema;
use crate::ledger::query::{
    Chain, Filter, GroupBy, IS_ERROR, RequestLine, SummaryRow, filter_sql, local_datetime, total,
};
use crate::ledger::read::{LedgerRead, Spend};
use crate::ledger::row::LedgerRow;
use crate::ledger::series::{self, Sample, SeriesFilter};
use crate::ledger::store::BUCKET_MS;
use crate::postgres::{self as db, DatabaseUrl};

/// A connection to the PostgreSQL ledger, with a runtime of its own: every call blocks (within
/// [`db::QUERY_TIMEOUT`]), like reading the SQLite file does. Not for an event loop's thread.
pub struct PgReader {
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) client: Client,
    clock: Connection,
}

impl PgReader {
    /// Connects within [`db::CONNECT_TIMEOUT`] (bringing the schema up to date: an empty ledger
    /// answers with no rows).
    pub fn connect(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = runtime.block_on(within_connect_timeout(url, schema::connect(url)))?;
        Ok(Self {
            runtime,
            client,
            clock: Connection::open_in_memory()?,
        })
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> anyhow::Result<Vec<tokio_postgres::Row>> {
        self.runtime
            .block_on(db::bounded(self.client.query(sql, params), schema::WHAT))
    }

    /// Writes rows (for `usage import`) in batches of [`super::writer::BATCH`], each within
    /// [`db::QUERY_TIMEOUT`]; rows already there (by trace id) are skipped. Returns how many
    /// were new.
    pub fn insert(&mut self, rows: &[LedgerRow]) -> anyhow::Result<usize> {
        let mut added = 0;
        for batch in rows.chunks(super::writer::BATCH) {
            let client = &mut self.client;
            added += self.runtime.block_on(async {
                tokio::time::timeout(db::QUERY_TIMEOUT, schema::insert(client, batch))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "{} did not answer within {} s",
                            schema::WHAT,
                            db::QUERY_TIMEOUT.as_secs()
                        )
                    })?
            })?;
        }
        Ok(added)
    }

    fn local(&self, at_ms: i64) -> anyhow::Result<String> {
        Ok(local_datetime(&self.clock, at_ms.max(0) as u64)?.unwrap_or_default())
    }
}

impl Drop for PgReader {
    /// Ends the runtime without waiting for its blocking threads: connecting resolves the host
    /// name on one, which a stuck resolver could hold past every bound.
    fn drop(&mut self) {
        let runtime = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("an empty runtime"),
        );
        runtime.shutdown_background();
    }
}

/// When the ledger's newest row started (ms since the epoch; `None`: no rows, or no ledger
/// tables yet), read without bringing the schema up to date (for `doctor`, which changes
/// nothing). Connecting and the query are each bounded.
pub fn newest_started_ms(url: &DatabaseUrl) -> anyhow::Result<Option<u64>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let newest = runtime.block_on(async {
        let client = within_connect_timeout(url, db::connect_client(url, schema::WHAT)).await?;
        let rows = db::bounded(
            client.query(
                "SELECT CASE WHEN to_regclass('codex_helper_requests') IS NULL THEN NULL
                        ELSE (SELECT MAX(started_ms) FROM codex_helper_requests) END",
                &[],
            ),
            schema::WHAT,
        )
        .await;
        anyhow::Ok(rows?.first().and_then(|r| r.get::<_, Option<i64>>(0)))
    });
    runtime.shutdown_background();
    Ok(newest?.map(|ms| ms.max(0) as u64))
}

/// `connect` (to the ledger at `url`) within [`db::CONNECT_TIMEOUT`].
async fn within_connect_timeout(
    url: &DatabaseUrl,
    connect: impl std::future::Future<Output = anyhow::Result<Client>>,
) -> anyhow::Result<Client> {
    tokio::time::timeout(db::CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{} at {} did not answer within {} s",
                schema::WHAT,
                url.shown(),
                db::CONNECT_TIMEOUT.as_secs()
            )
        })?
}

/// The grouping key in SQL over the rows, and over the rollups (`None`: rows only).
fn keys(by: GroupBy) -> (&'static str, Option<&'static str>) {
    match by {
        GroupBy::Provider => ("COALESCE(provider, '-')", Some("provider")),
        GroupBy::Model => ("COALESCE(model_sent, model_requested, '-')", Some("model")),
        GroupBy::Session => ("COALESCE(session_id, '-')", None),
        GroupBy::User => ("COALESCE(user_name, '-')", None),
        // By bucket here; the bucket's local date is worked out afterwards.
        GroupBy::Day => ("''", Some("''")),
    }
}

/// Folds grouped sums into `usage summary`'s rows, most tokens first (then most requests,
/// then by key).
fn fold(parts: impl IntoIterator<Item = SummaryRow>) -> Vec<SummaryRow> {
    let mut groups: BTreeMap<String, Vec<SummaryRow>> = BTreeMap::new();
    for p in parts {
        groups.entry(p.key.clone()).or_default().push(p);
    }
    let mut rows: Vec<SummaryRow> = groups
        .into_iter()
        .map(|(key, parts)| SummaryRow {
            key,
            ..total(&parts)
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.total_tokens, b.requests)
            .cmp(&(a.total_tokens, a.requests))
            .then_with(|| a.key.cmp(&b.key))
    });
    rows
}

fn count(row: &tokio_postgres::Row, i: usize) -> u64 {
    row.get::<_, i64>(i).max(0) as u64
}

impl LedgerRead for PgReader {
    fn summary(&self, since_ms: u64, by: GroupBy) -> anyhow::Result<Vec<SummaryRow>> {
        let (row_key, rollup_key) = keys(by);
        // Whole buckets from the rollups, the partial one at the start from the rows.
        let full_from = match rollup_key {
            Some(_) => since_ms.div_ceil(BUCKET_MS) * BUCKET_MS,
            None => i64::MAX as u64,
        };
        let raw = format!(
            "SELECT {row_key} AS k, started_ms / {BUCKET_MS} * {BUCKET_MS} AS b, 1::BIGINT AS requests, ({IS_ERROR})::INT::BIGINT AS errors,
                    COALESCE(input_tokens, 0) AS input, COALESCE(cached_input_tokens, 0) AS cached, COALESCE(output_tokens, 0) AS output,
                    COALESCE(reasoning_tokens, 0) AS reasoning, COALESCE(total_tokens, 0) AS total, COALESCE(cost_usd, 0) AS cost,
                    (cost_usd IS NULL AND input_tokens IS NOT NULL)::INT::BIGINT AS unpriced
             FROM codex_helper_requests WHERE started_ms >= $1 AND started_ms < $2"
        );
        let source = match rollup_key {
            Some(key) => format!(
                "SELECT {key} AS k, bucket_ms AS b, requests, errors, input_tokens AS input, cached_input_tokens AS cached,
                        output_tokens AS output, reasoning_tokens AS reasoning, total_tokens AS total, cost_usd AS cost, unpriced
                 FROM codex_helper_usage_rollup WHERE bucket_ms >= $2
                 UNION ALL {raw}"
            ),
            None => raw,
        };
        let by_bucket = if by == GroupBy::Day { "b" } else { "0" };
        let sql = format!(
            "SELECT k, {by_bucket}::BIGINT, SUM(requests)::BIGINT, SUM(errors)::BIGINT, SUM(input)::BIGINT, SUM(cached)::BIGINT,
                    SUM(output)::BIGINT, SUM(reasoning)::BIGINT, SUM(total)::BIGINT, SUM(cost)::FLOAT8, SUM(unpriced)::BIGINT
             FROM ({source}) s GROUP BY 1, 2"
        );
        let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
        let full = i64::try_from(full_from).unwrap_or(i64::MAX);
        let rows = self.query(&sql, &[&since, &full])?;
        let mut parts = Vec::with_capacity(rows.len());
        for r in &rows {
            let key = match by {
                GroupBy::Day => {
                    let bucket: i64 = r.get(1);
                    self.local(bucket)?
                        .get(..10)
                        .unwrap_or_default()
                        .to_string()
                }
                _ => r.get(0),
            };
            parts.push(SummaryRow {
                key,
                requests: count(r, 2),
                errors: count(r, 3),
                input_tokens: count(r, 4),
                cached_input_tokens: count(r, 5),
                output_tokens: count(r, 6),
                reasoning_tokens: count(r, 7),
                total_tokens: count(r, 8),
                cost_usd: r.get(9),
                unpriced: count(r, 10),
                cache_hit_rate: 0.0,
            });
        }
        Ok(fold(parts))
    }

    fn find(&self, filter: &Filter, limit: usize) -> anyhow::Result<Vec<RequestLine>> {
        let (filter_sql, args) = filter_sql(filter, |n| format!("${n}"));
        let sql = format!(
            "SELECT id, trace_id, started_ms, method, path, session_id, provider, endpoint, COALESCE(model_sent, model_requested),
                    status, outcome, error_class, total_tokens, cost_usd, ttfb_ms, duration_ms, model_requested, model_sent
             FROM codex_helper_requests {filter_sql} ORDER BY id DESC LIMIT {limit}"
        );
        let params: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let rows = self.query(&sql, &params)?;
        rows.iter()
            .map(|r| {
                let started: i64 = r.get(2);
                Ok(RequestLine {
                    id: r.get(0),
                    trace_id: r.get(1),
                    started_ms: started.max(0) as u64,
                    started_local: self.local(started)?,
                    method: r.get(3),
                    path: r.get(4),
                    session_id: r.get(5),
                    provider: r.get(6),
                    endpoint: r.get(7),
                    model: r.get(8),
                    status: r
                        .get::<_, Option<i32>>(9)
                        .and_then(|s| u16::try_from(s).ok()),
                    outcome: r.get(10),
                    error_class: r.get(11),
                    total_tokens: r.get::<_, Option<i64>>(12).map(|n| n.max(0) as u64),
                    cost_usd: r.get(13),
                    ttfb_ms: r.get(14),
                    duration_ms: r.get(15),
                    model_requested: r.get(16),
                    model_sent: r.get(17),
                })
            })
            .collect()
    }

    fn chain(&self, trace_id: &str) -> anyhow::Result<Option<Chain>> {
        let rows = self.query(
            "SELECT trace_id, started_ms, outcome, status, error, attempts_json, decision_json
             FROM codex_helper_requests WHERE trace_id = $1",
            &[&trace_id],
        )?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let attempts: String = r.get(5);
        let decision: Option<String> = r.get(6);
        Ok(Some(Chain {
            trace_id: r.get(0),
            started_local: self.local(r.get(1))?,
            outcome: r.get(2),
            status: r
                .get::<_, Option<i32>>(3)
                .and_then(|s| u16::try_from(s).ok()),
            error: r.get(4),
            attempts: serde_json::from_str(&attempts).unwrap_or(serde_json::Value::Null),
            decision: decision.and_then(|d| serde_json::from_str(&d).ok()),
        }))
    }

    fn spend_since(&self, since_ms: u64, provider: Option<&str>) -> anyhow::Result<Vec<Spend>> {
        let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
        let rows = self.query(
            "SELECT started_ms, total_tokens, cost_usd FROM codex_helper_requests
             WHERE started_ms >= $1 AND total_tokens IS NOT NULL AND ($2::TEXT IS NULL OR provider = $2)",
            &[&since, &provider],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0).max(0) as u64,
                    r.get::<_, i64>(1).max(0) as u64,
                    r.get(2),
                )
            })
            .collect())
    }

    fn series_samples(
        &self,
        from_ms: u64,
        to_ms: u64,
        filter: &SeriesFilter,
    ) -> anyhow::Result<Vec<Sample>> {
        let (from, to) = (
            i64::try_from(from_ms).unwrap_or(i64::MAX),
            i64::try_from(to_ms).unwrap_or(i64::MAX),
        );
        let rows = self.query(
            &format!(
                "SELECT started_ms, ({IS_ERROR}) AS error, COALESCE(input_tokens, 0), COALESCE(output_tokens, 0),
                        COALESCE(total_tokens, 0), COALESCE(cost_usd, 0)::FLOAT8, duration_ms::FLOAT8, ttfb_ms::FLOAT8
                 FROM codex_helper_requests
                 WHERE started_ms >= $1 AND started_ms < $2
                   AND ($3::TEXT IS NULL OR session_id = $3) AND ($4::TEXT IS NULL OR provider = $4)
                 ORDER BY started_ms DESC LIMIT {}",
                series::ROWS_MAX + 1
            ),
            &[&from, &to, &filter.session, &filter.provider],
        )?;
        Ok(rows
            .iter()
            .map(|r| Sample {
                started_ms: r.get::<_, i64>(0).max(0) as u64,
                error: r.get(1),
                input_tokens: r.get::<_, i64>(2).max(0) as u64,
                output_tokens: r.get::<_, i64>(3).max(0) as u64,
                total_tokens: r.get::<_, i64>(4).max(0) as u64,
                cost_usd: r.get(5),
                duration_ms: r.get(6),
                ttfb_ms: r.get(7),
            })
            .collect())
    }

    fn clock(&self) -> &Connection {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(key: &str, requests: u64, input: u64, cached: u64, total: u64) -> SummaryRow {
        SummaryRow {
            key: key.into(),
            requests,
            input_tokens: input,
            cached_input_tokens: cached,
            total_tokens: total,
            cost_usd: 0.5,
            ..SummaryRow::default()
        }
    }

    #[test]
    fn parts_of_one_key_add_up_and_the_most_tokens_come_first() {
        let rows = fold([
            part("2026-11-01", 1, 10, 5, 100),
            part("b", 2, 0, 0, 300),
            part("2026-11-01", 3, 30, 0, 250),
            part("a", 1, 0, 0, 300),
        ]);
        let keys: Vec<_> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["2026-11-01", "b", "a"]);
        let day = &rows[0];
        assert_eq!(
            (day.requests, day.input_tokens, day.total_tokens),
            (4, 40, 350)
        );
        assert_eq!(day.cache_hit_rate, 5.0 / 40.0);
        assert_eq!(day.cost_usd, 1.0);
    }
}
