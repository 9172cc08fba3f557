//! What the `usage` commands and the admin API ask of a ledger ([`LedgerRead`]), so they answer
//! the same from the SQLite file and from PostgreSQL (where is chosen once, by
//! [`super::place::LedgerPlace`]).

use rusqlite::Connection;

use super::query::{self, Chain, Filter, GroupBy, RequestLine, SummaryRow};
use super::series::{self, Sample, SeriesFilter};

/// `(started_ms, total_tokens, cost_usd)` of one request, for forecasts.
pub type Spend = (u64, u64, Option<f64>);

/// What the `usage` readers ask of a ledger.
pub trait LedgerRead {
    /// `usage summary`'s groups since `since_ms`, most tokens first.
    fn summary(&self, since_ms: u64, by: GroupBy) -> anyhow::Result<Vec<SummaryRow>>;
    /// The newest `limit` requests matching `filter`, newest first.
    fn find(&self, filter: &Filter, limit: usize) -> anyhow::Result<Vec<RequestLine>>;
    /// One request's attempts and route decision.
    fn chain(&self, trace_id: &str) -> anyhow::Result<Option<Chain>>;
    /// What requests since `since_ms` spent (those `provider` answered, when given).
    fn spend_since(&self, since_ms: u64, provider: Option<&str>) -> anyhow::Result<Vec<Spend>>;
    /// The requests in `[from_ms, to_ms)` matching `filter` as the usage series counts them,
    /// newest first, at most [`series::ROWS_MAX`] + 1.
    fn series_samples(
        &self,
        from_ms: u64,
        to_ms: u64,
        filter: &SeriesFilter,
    ) -> anyhow::Result<Vec<Sample>>;
    /// A SQLite connection for local-time arithmetic (dates, midnights): the ledger's own, or
    /// an in-memory one.
    fn clock(&self) -> &Connection;
}

impl LedgerRead for Connection {
    fn summary(&self, since_ms: u64, by: GroupBy) -> anyhow::Result<Vec<SummaryRow>> {
        Ok(query::summary(self, since_ms, by)?)
    }

    fn find(&self, filter: &Filter, limit: usize) -> anyhow::Result<Vec<RequestLine>> {
        Ok(query::find(self, filter, limit)?)
    }

    fn chain(&self, trace_id: &str) -> anyhow::Result<Option<Chain>> {
        Ok(query::chain(self, trace_id)?)
    }

    fn spend_since(&self, since_ms: u64, provider: Option<&str>) -> anyhow::Result<Vec<Spend>> {
        Ok(match provider {
            Some(p) => query::spend_since_for_provider(self, since_ms, p)?,
            None => query::spend_since(self, since_ms)?,
        })
    }

    fn series_samples(
        &self,
        from_ms: u64,
        to_ms: u64,
        filter: &SeriesFilter,
    ) -> anyhow::Result<Vec<Sample>> {
        Ok(series::samples(self, from_ms, to_ms, filter)?)
    }

    fn clock(&self) -> &Connection {
        self
    }
}

/// A ledger that can be read from another thread.
pub type Reader = Box<dyn LedgerRead + Send>;
