//! Burn forecast: tokens and cost per hour from recent requests, projected to local midnight,
//! and with a known balance, how long until it runs out. Pure: samples and times in.

use serde::{Deserialize, Serialize};

/// One request's spend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at_ms: u64,
    pub tokens: u64,
    /// `None` when the request could not be priced.
    pub cost_usd: Option<f64>,
}

/// How far to trust a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// No requests in the window.
    NoData,
    /// Fewer than [`MIN_SAMPLES`] requests: a rate, but no projection.
    LowSample,
    /// Some requests had no price: the cost rate is a lower bound.
    PartialPricing,
    Estimated,
}

impl Confidence {
    /// The shown name: exactly the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::NoData => "no_data",
            Confidence::LowSample => "low_sample",
            Confidence::PartialPricing => "partial_pricing",
            Confidence::Estimated => "estimated",
        }
    }
}

/// Requests needed before a rate is projected.
pub const MIN_SAMPLES: usize = 3;
/// The rate is measured over at least this long, so one burst does not read as a flood.
const MIN_ELAPSED_MS: u64 = 60_000;

/// The forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub window_ms: u64,
    pub requests: usize,
    pub unpriced_requests: usize,
    pub tokens_per_hour: f64,
    pub cost_per_hour_usd: f64,
    pub until_midnight_ms: u64,
    /// At this rate until local midnight.
    pub projected_tokens_until_midnight: Option<f64>,
    pub projected_cost_until_midnight_usd: Option<f64>,
    /// With a known balance: hours until it reaches zero at this rate.
    pub hours_until_balance_zero: Option<f64>,
    pub confidence: Confidence,
}

/// Forecasts from `samples` (ledger rows and requests still streaming, merged by the caller)
/// within `window_ms` before `now_ms`.
pub fn forecast(
    samples: &[Sample],
    now_ms: u64,
    window_ms: u64,
    midnight_ms: u64,
    balance_usd: Option<f64>,
) -> Forecast {
    let recent: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_ms <= now_ms && now_ms - s.at_ms <= window_ms)
        .collect();
    let oldest = recent.iter().map(|s| s.at_ms).min();
    let elapsed_ms = oldest.map_or(window_ms, |o| {
        (now_ms - o).clamp(MIN_ELAPSED_MS, window_ms.max(MIN_ELAPSED_MS))
    });
    let per_hour = |total: f64| total * 3_600_000.0 / elapsed_ms as f64;
    let tokens: u64 = recent.iter().map(|s| s.tokens).sum();
    let cost: f64 = recent.iter().filter_map(|s| s.cost_usd).sum();
    let unpriced = recent.iter().filter(|s| s.cost_usd.is_none()).count();
    let confidence = match recent.len() {
        0 => Confidence::NoData,
        n if n < MIN_SAMPLES => Confidence::LowSample,
        _ if unpriced > 0 => Confidence::PartialPricing,
        _ => Confidence::Estimated,
    };
    let tokens_per_hour = per_hour(tokens as f64);
    let cost_per_hour_usd = per_hour(cost);
    let until_midnight_ms = midnight_ms.saturating_sub(now_ms);
    let project = matches!(
        confidence,
        Confidence::PartialPricing | Confidence::Estimated
    );
    let hours_left = until_midnight_ms as f64 / 3_600_000.0;
    Forecast {
        window_ms,
        requests: recent.len(),
        unpriced_requests: unpriced,
        tokens_per_hour,
        cost_per_hour_usd,
        until_midnight_ms,
        projected_tokens_until_midnight: project.then_some(tokens_per_hour * hours_left),
        projected_cost_until_midnight_usd: project.then_some(cost_per_hour_usd * hours_left),
        hours_until_balance_zero: balance_usd
            .filter(|_| project && cost_per_hour_usd > 0.0)
            .map(|b| b.max(0.0) / cost_per_hour_usd),
        confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    fn s(at_ms: u64, tokens: u64, cost: Option<f64>) -> Sample {
        Sample {
            at_ms,
            tokens,
            cost_usd: cost,
        }
    }

    #[test]
    fn confidence_names_are_the_serde_names() {
        for c in [
            Confidence::NoData,
            Confidence::LowSample,
            Confidence::PartialPricing,
            Confidence::Estimated,
        ] {
            let serde = serde_json::to_value(c).unwrap();
            assert_eq!(serde.as_str(), Some(c.as_str()), "{c:?}");
        }
    }

    #[test]
    fn rate_and_projection() {
        let now = 10 * HOUR;
        // $1 and 1000 tokens every 15 minutes over the last hour.
        let samples: Vec<Sample> = (0..4)
            .map(|i| s(now - HOUR + i * HOUR / 4, 1000, Some(1.0)))
            .collect();
        let f = forecast(&samples, now, HOUR, now + 2 * HOUR, Some(16.0));
        assert_eq!(f.confidence, Confidence::Estimated);
        assert!((f.cost_per_hour_usd - 4.0).abs() < 1e-9);
        assert!((f.tokens_per_hour - 4000.0).abs() < 1e-6);
        assert!((f.projected_cost_until_midnight_usd.unwrap() - 8.0).abs() < 1e-9);
        assert!((f.hours_until_balance_zero.unwrap() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn little_data_gives_a_rate_but_no_projection() {
        let now = 10 * HOUR;
        let f = forecast(
            &[s(now - 1000, 500, Some(0.5))],
            now,
            HOUR,
            now + HOUR,
            Some(1.0),
        );
        assert_eq!(f.confidence, Confidence::LowSample);
        assert!(
            (f.cost_per_hour_usd - 30.0).abs() < 1e-9,
            "a single request is spread over at least a minute"
        );
        assert_eq!(f.projected_cost_until_midnight_usd, None);
        assert_eq!(f.hours_until_balance_zero, None);
        assert_eq!(
            forecast(&[], now, HOUR, now, None).confidence,
            Confidence::NoData
        );
    }

    #[test]
    fn unpriced_requests_are_flagged_and_old_ones_ignored() {
        let now = 10 * HOUR;
        let samples = [
            s(now - 2 * HOUR, 9999, Some(99.0)),
            s(now - 600_000, 10, Some(1.0)),
            s(now - 300_000, 10, None),
            s(now - 1000, 10, Some(1.0)),
        ];
        let f = forecast(&samples, now, HOUR, now + HOUR, None);
        assert_eq!(
            (f.requests, f.unpriced_requests, f.confidence),
            (3, 1, Confidence::PartialPricing)
        );
        assert!(
            (f.cost_per_hour_usd - 12.0).abs() < 1e-9,
            "$2 over 10 minutes"
        );
    }
}
