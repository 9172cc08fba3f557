//! What one row adds to the 15-minute rollups (`usage_rollup`): the same on SQLite and on
//! PostgreSQL, so both ledgers sum the same way.

use std::collections::BTreeMap;

use super::row::LedgerRow;

/// The rollup bucket width.
pub const BUCKET_MS: u64 = 900_000;

/// A rollup line's key: bucket start, provider (`-` when none), model (sent, else asked for,
/// else `-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RollupKey {
    pub bucket_ms: u64,
    pub provider: String,
    pub model: String,
}

/// What rows add to one rollup line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupDelta {
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
    /// Rows with tokens but no price.
    pub unpriced: u64,
}

/// A failed request, as `query::IS_ERROR` says in SQL: an error status or an outcome other
/// than success (a client that hung up is not the relay's failure).
pub fn is_error(row: &LedgerRow) -> bool {
    row.status.is_some_and(|s| s >= 400)
        || !matches!(row.outcome.as_str(), "completed" | "client_disconnected")
}

/// The line `row` counts in, and what it adds there.
pub fn contribution(row: &LedgerRow) -> (RollupKey, RollupDelta) {
    let model = row
        .model_sent
        .as_deref()
        .or(row.model_requested.as_deref())
        .unwrap_or("-");
    let key = RollupKey {
        bucket_ms: row.started_ms / BUCKET_MS * BUCKET_MS,
        provider: row.provider.as_deref().unwrap_or("-").to_string(),
        model: model.to_string(),
    };
    let delta = RollupDelta {
        requests: 1,
        errors: u64::from(is_error(row)),
        input_tokens: row.input_tokens.unwrap_or(0),
        cached_input_tokens: row.cached_input_tokens.unwrap_or(0),
        output_tokens: row.output_tokens.unwrap_or(0),
        reasoning_tokens: row.reasoning_tokens.unwrap_or(0),
        total_tokens: row.total_tokens.unwrap_or(0),
        cost_usd: row.cost_usd.unwrap_or(0.0),
        unpriced: u64::from(row.cost_usd.is_none() && row.input_tokens.is_some()),
    };
    (key, delta)
}

impl RollupDelta {
    fn add(&mut self, other: &RollupDelta) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.total_tokens += other.total_tokens;
        self.cost_usd += other.cost_usd;
        self.unpriced += other.unpriced;
    }
}

/// The rows' contributions summed per line, in key order (writers that update lines in one
/// order never deadlock each other).
pub fn sum<'a>(rows: impl IntoIterator<Item = &'a LedgerRow>) -> BTreeMap<RollupKey, RollupDelta> {
    let mut lines: BTreeMap<RollupKey, RollupDelta> = BTreeMap::new();
    for row in rows {
        let (key, delta) = contribution(row);
        lines.entry(key).or_default().add(&delta);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_one_bucket_provider_and_model_add_up_in_one_line() {
        let row = |trace: &str, at: u64, provider: Option<&str>, status: u16, cost: Option<f64>| {
            LedgerRow {
                trace_id: trace.into(),
                started_ms: at,
                provider: provider.map(str::to_string),
                model_requested: Some("gpt-5".into()),
                status: Some(status),
                outcome: "completed".into(),
                input_tokens: Some(10),
                cached_input_tokens: Some(4),
                total_tokens: Some(15),
                cost_usd: cost,
                ..LedgerRow::default()
            }
        };
        let rows = [
            row("a", BUCKET_MS + 1, Some("p"), 200, Some(0.5)),
            row("b", 2 * BUCKET_MS - 1, Some("p"), 502, None),
            row("c", 2 * BUCKET_MS, Some("p"), 200, Some(0.25)),
            row("d", 5, None, 200, Some(0.0)),
        ];
        let lines: Vec<_> = sum(&rows).into_iter().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0].0,
            RollupKey {
                bucket_ms: 0,
                provider: "-".into(),
                model: "gpt-5".into()
            }
        );
        let (key, first) = &lines[1];
        assert_eq!((key.bucket_ms, key.provider.as_str()), (BUCKET_MS, "p"));
        assert_eq!((first.requests, first.errors, first.unpriced), (2, 1, 1));
        assert_eq!(
            (
                first.input_tokens,
                first.cached_input_tokens,
                first.total_tokens
            ),
            (20, 8, 30)
        );
        assert_eq!(first.cost_usd, 0.5);
        assert_eq!(lines[2].0.bucket_ms, 2 * BUCKET_MS);
    }
}
