//! `usage reprice`: the stored costs recomputed with the prices in force, after a price
//! changed or one was added for a model the ledger could not price when it recorded it.
//!
//! A row is priced as when it was recorded (see [`super::row`]): by the model sent, its
//! tokens, the service tier the response reported and the provider's price multiplier (kept
//! since schema 5; for older rows the provider's multiplier in the config now). Rows change in
//! batches, each one transaction that also moves the 15-minute rollups by the difference, so
//! summaries agree with the rows at every step and the proxy's writer is never held for long.
//! Runs on the caller's thread: a command's, never the proxy's event loop.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::pricing::PriceBook;
use super::store::BUCKET_MS;
use crate::record::usage::Usage;

/// Rows read and rewritten per transaction.
const BATCH: usize = 2_000;

/// Which rows to reprice.
#[derive(Debug, Clone, Default)]
pub struct RepriceFilter {
    /// Rows started at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Rows started before this time.
    pub until_ms: Option<u64>,
    /// Rows priced by this model (the model sent, else the one requested), ignoring case.
    pub model: Option<String>,
}

/// What a reprice changed (or, dry, would change).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RepriceReport {
    pub dry_run: bool,
    /// Rows with tokens in the range.
    pub rows: u64,
    /// Rows whose cost or price source changed.
    pub changed: u64,
    /// Rows that had no price and now have one.
    pub newly_priced: u64,
    /// Rows that had a price and now have none (the model's price was removed).
    pub now_unpriced: u64,
    /// Total cost of the rows in the range, before and after.
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
    /// Per model, the rows that changed.
    pub models: Vec<ModelChange>,
}

/// The changed rows of one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelChange {
    pub model: String,
    pub changed: u64,
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
}

/// A stored row, as much of it as its price depends on.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub id: i64,
    pub started_ms: u64,
    pub provider: Option<String>,
    /// The model sent, else the one requested.
    pub model: Option<String>,
    pub usage: Usage,
    pub service_tier: Option<String>,
    pub multiplier: Option<f64>,
    pub cost: Option<f64>,
    pub source: Option<String>,
}

/// A row's new cost.
#[derive(Debug, Clone)]
pub struct NewCost {
    pub row: StoredRow,
    pub cost: Option<f64>,
    pub source: Option<String>,
}

impl NewCost {
    /// What the row's rollup line moves by: `(bucket, provider, model)`, cost and unpriced.
    pub fn rollup_delta(&self) -> ((u64, &str, &str), f64, i64) {
        let row = &self.row;
        (
            (
                row.started_ms / BUCKET_MS * BUCKET_MS,
                row.provider.as_deref().unwrap_or("-"),
                row.model.as_deref().unwrap_or("-"),
            ),
            self.cost.unwrap_or(0.0) - row.cost.unwrap_or(0.0),
            i64::from(self.cost.is_none()) - i64::from(row.cost.is_none()),
        )
    }
}

/// Rollup deltas summed per line, so each line is written once per batch.
pub fn rollup_deltas(stored: &[&NewCost]) -> BTreeMap<(u64, String, String), (f64, i64)> {
    let mut lines: BTreeMap<(u64, String, String), (f64, i64)> = BTreeMap::new();
    for change in stored {
        let ((bucket, provider, model), cost, unpriced) = change.rollup_delta();
        let line = lines
            .entry((bucket, provider.to_string(), model.to_string()))
            .or_default();
        line.0 += cost;
        line.1 += unpriced;
    }
    lines
}

/// Where the rows are: the SQLite ledger, or the PostgreSQL one
/// ([`crate::ledger::pg::reprice`]).
pub trait RepriceStore {
    /// Up to `limit` rows with tokens that `filter` selects and whose id is above `after_id`,
    /// by id.
    fn rows_after(
        &mut self,
        filter: &RepriceFilter,
        after_id: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<StoredRow>>;
    /// Stores new costs in one transaction, moving the rollups by the same amounts. A row is
    /// changed only if it still has the cost it was read with, so a reprice running at the
    /// same time, or retention deleting the row, never moves a rollup twice. Says, for each
    /// change, whether it was stored.
    fn store(&mut self, changes: &[NewCost]) -> anyhow::Result<Vec<bool>>;
}

/// Recomputes the costs of the rows `filter` selects with `book`. `provider_multiplier` gives
/// a provider's multiplier for rows recorded without one (`None`: 1).
pub fn reprice(
    ledger: &mut dyn RepriceStore,
    book: &PriceBook,
    filter: &RepriceFilter,
    provider_multiplier: &dyn Fn(&str) -> Option<f64>,
    dry_run: bool,
) -> anyhow::Result<RepriceReport> {
    let mut report = RepriceReport {
        dry_run,
        ..Default::default()
    };
    let mut models: BTreeMap<String, ModelChange> = BTreeMap::new();
    let mut after_id = 0i64;
    loop {
        let rows = ledger.rows_after(filter, after_id, BATCH)?;
        let Some(last) = rows.last() else { break };
        after_id = last.id;
        let mut changes = Vec::new();
        for row in rows {
            report.rows += 1;
            report.cost_before_usd += row.cost.unwrap_or(0.0);
            let multiplier = row
                .multiplier
                .or_else(|| row.provider.as_deref().and_then(provider_multiplier))
                .unwrap_or(1.0);
            let cost = row.model.as_deref().and_then(|model| {
                book.cost_in_tier(model, &row.usage, multiplier, row.service_tier.as_deref())
            });
            let (new_cost, new_source) = (cost.as_ref().map(|c| c.usd), cost.map(|c| c.source));
            report.cost_after_usd += new_cost.unwrap_or(0.0);
            let same_cost = match (row.cost, new_cost) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(1.0),
                (None, None) => true,
                _ => false,
            };
            if same_cost && row.source == new_source {
                continue;
            }
            changes.push(NewCost {
                row,
                cost: new_cost,
                source: new_source,
            });
        }
        if changes.is_empty() {
            continue;
        }
        let stored = if dry_run {
            vec![true; changes.len()]
        } else {
            ledger.store(&changes)?
        };
        // Counted as changed only where this run changed it (not a row another reprice or
        // retention got to first).
        for (change, _) in changes.iter().zip(stored).filter(|(_, stored)| *stored) {
            let (row, new_cost) = (&change.row, change.cost);
            report.changed += 1;
            report.newly_priced += u64::from(row.cost.is_none() && new_cost.is_some());
            report.now_unpriced += u64::from(row.cost.is_some() && new_cost.is_none());
            let model = row.model.clone().unwrap_or_else(|| "-".into());
            let entry = models.entry(model.clone()).or_insert_with(|| ModelChange {
                model,
                ..Default::default()
            });
            entry.changed += 1;
            entry.cost_before_usd += row.cost.unwrap_or(0.0);
            entry.cost_after_usd += new_cost.unwrap_or(0.0);
        }
    }
    report.models = models.into_values().collect();
    Ok(report)
}

impl RepriceStore for Connection {
    fn rows_after(
        &mut self,
        filter: &RepriceFilter,
        after_id: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<StoredRow>> {
        let mut stmt = self.prepare_cached(
            "SELECT id, started_ms, provider, COALESCE(model_sent, model_requested), input_tokens,
                    cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
                    service_tier, price_multiplier, cost_usd, price_source
             FROM requests
             WHERE id > ?1 AND input_tokens IS NOT NULL
               AND started_ms >= ?2 AND started_ms < ?3
               AND (?4 IS NULL OR lower(COALESCE(model_sent, model_requested)) = lower(?4))
             ORDER BY id LIMIT ?5",
        )?;
        let count = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
        let rows = stmt.query_map(
            params![
                after_id,
                filter.since_ms.unwrap_or(0) as i64,
                filter.until_ms.map_or(i64::MAX, |ms| ms as i64),
                filter.model,
                limit as i64,
            ],
            |r| {
                Ok(StoredRow {
                    id: r.get(0)?,
                    started_ms: r.get::<_, i64>(1)?.max(0) as u64,
                    provider: r.get(2)?,
                    model: r.get(3)?,
                    usage: Usage {
                        input_tokens: count(r.get(4)?),
                        cached_input_tokens: count(r.get(5)?),
                        output_tokens: count(r.get(6)?),
                        reasoning_tokens: count(r.get(7)?),
                        total_tokens: count(r.get(8)?),
                    },
                    service_tier: r.get(9)?,
                    multiplier: r.get(10)?,
                    cost: r.get(11)?,
                    source: r.get(12)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn store(&mut self, changes: &[NewCost]) -> anyhow::Result<Vec<bool>> {
        let tx = self.transaction()?;
        let mut stored = Vec::with_capacity(changes.len());
        let mut done = Vec::with_capacity(changes.len());
        {
            let mut update = tx.prepare_cached(
                "UPDATE requests SET cost_usd = ?1, price_source = ?2
                 WHERE id = ?3 AND cost_usd IS ?4 AND price_source IS ?5",
            )?;
            for change in changes {
                let row = &change.row;
                let n = update.execute(params![
                    change.cost,
                    change.source,
                    row.id,
                    row.cost,
                    row.source
                ])?;
                done.push(n > 0);
                if n > 0 {
                    stored.push(change);
                }
            }
            let mut rollup = tx.prepare_cached(
                "UPDATE usage_rollup SET cost_usd = cost_usd + ?1, unpriced = unpriced + ?2
                 WHERE bucket_ms = ?3 AND provider = ?4 AND model = ?5",
            )?;
            for ((bucket, provider, model), (cost, unpriced)) in rollup_deltas(&stored) {
                rollup.execute(params![cost, unpriced, bucket as i64, provider, model])?;
            }
        }
        tx.commit()?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::query::{self, GroupBy};
    use crate::ledger::row::LedgerRow;
    use crate::ledger::store;

    const HOUR: u64 = 3_600_000;

    fn row(
        trace: &str,
        started_ms: u64,
        model: &str,
        tier: Option<&str>,
        cost: Option<f64>,
    ) -> LedgerRow {
        LedgerRow {
            trace_id: trace.into(),
            started_ms,
            method: "POST".into(),
            path: "/v1/responses".into(),
            model_requested: Some(model.into()),
            model_sent: Some(model.into()),
            provider: Some("relay".into()),
            status: Some(200),
            outcome: "completed".into(),
            attempts_json: "[]".into(),
            input_tokens: Some(1_000_000),
            cached_input_tokens: Some(0),
            output_tokens: Some(100_000),
            reasoning_tokens: Some(0),
            total_tokens: Some(1_100_000),
            cost_usd: cost,
            price_source: cost.map(|_| crate::ledger::pricing::BUILT_IN_SOURCE.into()),
            service_tier: tier.map(str::to_string),
            ..Default::default()
        }
    }

    fn costs(conn: &Connection) -> Vec<(String, Option<f64>)> {
        let mut stmt = conn
            .prepare("SELECT trace_id, cost_usd FROM requests ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn summary_cost(conn: &Connection) -> (f64, u64) {
        let rows = query::summary(conn, 0, GroupBy::Model).unwrap();
        (
            rows.iter().map(|r| r.cost_usd).sum(),
            rows.iter().map(|r| r.unpriced).sum(),
        )
    }

    #[test]
    fn reprice_recomputes_costs_by_tier_and_keeps_rollups_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store::open(&dir.path().join("ledger.sqlite3")).unwrap();
        let now = 100 * 24 * HOUR;
        store::insert(
            &mut conn,
            &[
                // Recorded before the user priced their relay's model.
                row("new-model", now - 2 * HOUR, "relay-gpt-9", None, None),
                // gpt-5.4 at 2.50 in, 15 out: 2.5 + 1.5 = 4.0 at the standard price.
                row("std", now - HOUR, "gpt-5.4", Some("default"), Some(4.0)),
                row("flex", now - HOUR, "gpt-5.4", Some("flex"), Some(4.0)),
                row("old", now - 50 * HOUR, "gpt-5.4", None, Some(1.0)),
            ],
        )
        .unwrap();
        assert_eq!(summary_cost(&conn), (9.0, 1));
        let book = PriceBook::from_overrides(
            "[models.\"relay-gpt-9\"]\ninput_per_1m_usd = 1\noutput_per_1m_usd = 10\n[service_tiers]\npriority = 1.5\n",
        )
        .unwrap();
        let recent = RepriceFilter {
            since_ms: Some(now - 24 * HOUR),
            ..Default::default()
        };
        let before = costs(&conn);

        let dry = reprice(&mut conn, &book, &recent, &|_| None, true).unwrap();
        assert!(dry.dry_run);
        assert_eq!((dry.rows, dry.changed, dry.newly_priced), (3, 2, 1));
        assert_eq!(costs(&conn), before, "a dry run changes nothing");

        let done = reprice(&mut conn, &book, &recent, &|_| None, false).unwrap();
        assert_eq!(
            (
                done.rows,
                done.changed,
                done.newly_priced,
                done.now_unpriced
            ),
            (3, 2, 1, 0)
        );
        assert!((done.cost_before_usd - 8.0).abs() < 1e-9);
        // relay-gpt-9: 1 + 1 = 2; std stays 4; flex is half of 4.
        assert!((done.cost_after_usd - 8.0).abs() < 1e-9, "{done:?}");
        let after = costs(&conn);
        assert_eq!(after[0], ("new-model".into(), Some(2.0)));
        assert_eq!(after[1], ("std".into(), Some(4.0)));
        assert_eq!(after[2], ("flex".into(), Some(2.0)));
        assert_eq!(
            after[3],
            ("old".into(), Some(1.0)),
            "outside --since: untouched"
        );
        assert_eq!(
            done.models
                .iter()
                .map(|m| m.model.as_str())
                .collect::<Vec<_>>(),
            ["gpt-5.4", "relay-gpt-9"]
        );
        assert_eq!(
            summary_cost(&conn),
            (9.0, 0),
            "the rollups moved with the rows"
        );

        // Run again: nothing left to change.
        let again = reprice(&mut conn, &book, &recent, &|_| None, false).unwrap();
        assert_eq!(again.changed, 0);

        // The provider's multiplier now (rows without one) and the model filter.
        let only = RepriceFilter {
            model: Some("GPT-5.4".into()),
            ..Default::default()
        };
        let doubled = reprice(
            &mut conn,
            &book,
            &only,
            &|p| (p == "relay").then_some(2.0),
            false,
        )
        .unwrap();
        assert_eq!(doubled.rows, 3);
        let after = costs(&conn);
        assert_eq!(after[1].1, Some(8.0));
        assert_eq!(after[2].1, Some(4.0));
        assert_eq!(after[3].1, Some(8.0));
        assert_eq!(after[0].1, Some(2.0), "another model: untouched");
        assert_eq!(summary_cost(&conn), (22.0, 0));
    }

    #[test]
    fn a_row_changed_since_it_was_read_is_left_and_its_rollup_not_moved_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store::open(&dir.path().join("ledger.sqlite3")).unwrap();
        store::insert(&mut conn, &[row("a", HOUR, "gpt-5.4", None, Some(4.0))]).unwrap();
        let read = conn
            .rows_after(&RepriceFilter::default(), 0, 10)
            .unwrap()
            .remove(0);
        let change = NewCost {
            row: read,
            cost: Some(6.0),
            source: Some("test".into()),
        };
        assert_eq!(conn.store(std::slice::from_ref(&change)).unwrap(), [true]);
        assert_eq!(summary_cost(&conn), (6.0, 0));
        // A second reprice that read the row before the first stored it.
        assert_eq!(conn.store(&[change]).unwrap(), [false]);
        assert_eq!(costs(&conn)[0].1, Some(6.0));
        assert_eq!(summary_cost(&conn), (6.0, 0), "the rollup moved once");
    }

    #[test]
    fn a_stored_multiplier_wins_over_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store::open(&dir.path().join("ledger.sqlite3")).unwrap();
        let mut kept = row("kept", HOUR, "gpt-5.4", Some("priority"), Some(0.0));
        kept.price_multiplier = Some(0.5);
        store::insert(&mut conn, &[kept]).unwrap();
        let report = reprice(
            &mut conn,
            &PriceBook::built_in(),
            &RepriceFilter::default(),
            &|_| Some(10.0),
            false,
        )
        .unwrap();
        // 4.0 standard × 0.5 provider × 2 priority.
        assert!((report.cost_after_usd - 4.0).abs() < 1e-9, "{report:?}");
    }
}
