//! `usage reprice` on the PostgreSQL ledger: the rows read and rewritten as on SQLite
//! ([`crate::ledger::reprice`]), each batch one transaction within [`db::QUERY_TIMEOUT`].

use tokio_postgres::types::ToSql;

use super::read::PgReader;
use super::schema::{WHAT, big};
use crate::ledger::reprice::{NewCost, RepriceFilter, RepriceStore, StoredRow, rollup_deltas};
use crate::postgres as db;
use crate::record::usage::Usage;

fn count(row: &tokio_postgres::Row, i: usize) -> u64 {
    row.get::<_, Option<i64>>(i).unwrap_or(0).max(0) as u64
}

impl RepriceStore for PgReader {
    fn rows_after(
        &mut self,
        filter: &RepriceFilter,
        after_id: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<StoredRow>> {
        let since = big(filter.since_ms.unwrap_or(0));
        let until = filter.until_ms.map_or(i64::MAX, big);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let params: [&(dyn ToSql + Sync); 5] = [&after_id, &since, &until, &filter.model, &limit];
        let rows = self.runtime.block_on(db::bounded(
            self.client.query(
                "SELECT id, started_ms, provider, COALESCE(model_sent, model_requested), input_tokens,
                        cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
                        service_tier, price_multiplier, cost_usd, price_source
                 FROM codex_helper_requests
                 WHERE id > $1 AND input_tokens IS NOT NULL
                   AND started_ms >= $2 AND started_ms < $3
                   AND ($4::TEXT IS NULL OR lower(COALESCE(model_sent, model_requested)) = lower($4))
                 ORDER BY id LIMIT $5",
                &params,
            ),
            WHAT,
        ))?;
        Ok(rows
            .iter()
            .map(|r| StoredRow {
                id: r.get(0),
                started_ms: r.get::<_, i64>(1).max(0) as u64,
                provider: r.get(2),
                model: r.get(3),
                usage: Usage {
                    input_tokens: count(r, 4),
                    cached_input_tokens: count(r, 5),
                    output_tokens: count(r, 6),
                    reasoning_tokens: count(r, 7),
                    total_tokens: count(r, 8),
                },
                service_tier: r.get(9),
                multiplier: r.get(10),
                cost: r.get(11),
                source: r.get(12),
            })
            .collect())
    }

    fn store(&mut self, changes: &[NewCost]) -> anyhow::Result<Vec<bool>> {
        let client = &mut self.client;
        let write = async move {
            let tx = client.transaction().await?;
            let update = tx
                .prepare(
                    "UPDATE codex_helper_requests SET cost_usd = $1, price_source = $2
                     WHERE id = $3 AND cost_usd IS NOT DISTINCT FROM $4
                       AND price_source IS NOT DISTINCT FROM $5",
                )
                .await?;
            let updates = changes.iter().map(|change| {
                let (tx, update, row) = (&tx, &update, &change.row);
                async move {
                    tx.execute(
                        update,
                        &[
                            &change.cost,
                            &change.source,
                            &row.id,
                            &row.cost,
                            &row.source,
                        ],
                    )
                    .await
                }
            });
            // Sent together: one round trip's wait for the batch.
            let updated = futures_util::future::try_join_all(updates).await?;
            let stored: Vec<&NewCost> = changes
                .iter()
                .zip(&updated)
                .filter(|(_, n)| **n > 0)
                .map(|(c, _)| c)
                .collect();
            let rollup = tx
                .prepare(
                    "UPDATE codex_helper_usage_rollup SET cost_usd = cost_usd + $1, unpriced = unpriced + $2
                     WHERE bucket_ms = $3 AND provider = $4 AND model = $5",
                )
                .await?;
            for ((bucket, provider, model), (cost, unpriced)) in rollup_deltas(&stored) {
                tx.execute(
                    &rollup,
                    &[&cost, &unpriced, &big(bucket), &provider, &model],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(updated.iter().map(|n| *n > 0).collect())
        };
        self.runtime.block_on(db::bounded(write, WHAT))
    }
}
