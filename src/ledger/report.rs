//! `usage summary`'s answer, one shape for the command and the admin API
//! (`GET /request-ledger/summary`): grouped totals since a time, and the last hour's burn
//! forecast.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::forecast::{self, Forecast, Sample};
use super::query::{self, GroupBy, SummaryRow};
use super::read::LedgerRead;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryReport {
    pub since_ms: u64,
    pub by: GroupBy,
    pub rows: Vec<SummaryRow>,
    pub total: SummaryRow,
    pub forecast: Forecast,
}

/// How far back the forecast looks.
const FORECAST_WINDOW: Duration = Duration::from_secs(3600);

/// The summary since `since` (`30m`, `24h`, `7d` or a local date) grouped `by`, at `now_ms`;
/// `balance_usd` for how long it lasts at the last hour's rate. An unreadable `since` is
/// [`SinceError`], the caller's mistake.
pub fn summary_report(
    ledger: &dyn LedgerRead,
    since: &str,
    by: GroupBy,
    balance_usd: Option<f64>,
    now_ms: u64,
) -> anyhow::Result<SummaryReport> {
    let since_ms =
        query::since_ms(ledger.clock(), since, now_ms).map_err(|e| SinceError(format!("{e:#}")))?;
    let rows = ledger.summary(since_ms, by)?;
    let total = query::total(&rows);
    let forecast = burn_forecast(ledger, None, FORECAST_WINDOW, now_ms, balance_usd)?;
    Ok(SummaryReport {
        since_ms,
        by,
        rows,
        total,
        forecast,
    })
}

/// The burn over the last `window` (of `provider`'s requests, when given) carried forward to
/// local midnight and, with `balance_usd`, to the balance's end.
pub fn burn_forecast(
    ledger: &dyn LedgerRead,
    provider: Option<&str>,
    window: Duration,
    now_ms: u64,
    balance_usd: Option<f64>,
) -> anyhow::Result<Forecast> {
    let window = window.as_millis() as u64;
    let samples: Vec<Sample> = ledger
        .spend_since(now_ms.saturating_sub(window), provider)?
        .into_iter()
        .map(|(at_ms, tokens, cost_usd)| Sample {
            at_ms,
            tokens,
            cost_usd,
        })
        .collect();
    let midnight = query::next_local_midnight_ms(ledger.clock(), now_ms)?;
    Ok(forecast::forecast(
        &samples,
        now_ms,
        window,
        midnight,
        balance_usd,
    ))
}

/// `since` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("`since`: {0}")]
pub struct SinceError(pub String);
