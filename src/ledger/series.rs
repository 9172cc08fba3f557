//! Requests, tokens, cost and latency over time in a fixed number of buckets: what the web
//! console's charts draw.
//!
//! The bucket layout is a pure function of the window and the time ([`Window::layout`]), and
//! folding rows into buckets is pure too ([`fold`]); only [`read`] touches SQLite. A chart always
//! gets the same number of points for a window, empty buckets included, so a quiet minute is a
//! zero and not a gap that joins its neighbours.

use rusqlite::{Connection, params_from_iter};
use serde::Serialize;

/// Rows read at most for one series; past it the oldest buckets are incomplete and the answer
/// says `truncated`. A personal helper makes a few thousand requests a day.
pub const ROWS_MAX: usize = 300_000;

const MINUTE_MS: u64 = 60_000;

/// How far back a series looks, and in what steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Window {
    /// 60 one-minute buckets.
    #[serde(rename = "1h")]
    Hour,
    /// 96 fifteen-minute buckets.
    #[serde(rename = "24h")]
    Day,
    /// 30 one-day buckets, from local midnights.
    #[serde(rename = "30d")]
    Month,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Hour, Window::Day, Window::Month];

    /// The name the API takes and answers: the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Month => "30d",
        }
    }

    pub fn parse(name: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == name)
    }

    pub fn bucket_ms(self) -> u64 {
        match self {
            Window::Hour => MINUTE_MS,
            Window::Day => 15 * MINUTE_MS,
            Window::Month => 24 * 60 * MINUTE_MS,
        }
    }

    pub fn buckets(self) -> usize {
        match self {
            Window::Hour => 60,
            Window::Day => 96,
            Window::Month => 30,
        }
    }

    /// `(from_ms, to_ms)`: the last bucket holds `now_ms` and ends at the next bucket boundary
    /// (for days: `next_midnight_ms`, the next local midnight, so days are the user's days).
    pub fn layout(self, now_ms: u64, next_midnight_ms: u64) -> (u64, u64) {
        let step = self.bucket_ms();
        let to = match self {
            Window::Month => next_midnight_ms.max(now_ms + 1),
            _ => (now_ms / step + 1) * step,
        };
        (to.saturating_sub(step * self.buckets() as u64), to)
    }
}

/// One request as a series counts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub started_ms: u64,
    pub error: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
    pub duration_ms: f64,
    pub ttfb_ms: Option<f64>,
}

/// One bucket; percentiles are `None` when no request in it has the figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    pub start_ms: u64,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub ttfb_p50_ms: Option<f64>,
    pub ttfb_p95_ms: Option<f64>,
}

/// `GET /request-ledger/series`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub window: Window,
    pub bucket_ms: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    /// More than [`ROWS_MAX`] requests fell in the window: the oldest buckets miss some.
    pub truncated: bool,
    pub buckets: Vec<Bucket>,
}

/// Only one session's or one provider's requests (both optional, exact).
#[derive(Debug, Clone, Default)]
pub struct SeriesFilter {
    pub session: Option<String>,
    pub provider: Option<String>,
}

/// The samples in `[from_ms, from_ms + step × count)` folded into `count` buckets of `step`;
/// samples outside are left out.
pub fn fold(from_ms: u64, step: u64, count: usize, samples: &[Sample]) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = (0..count as u64)
        .map(|i| Bucket {
            start_ms: from_ms + i * step,
            ..Bucket::default()
        })
        .collect();
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); count];
    let mut ttfbs: Vec<Vec<f64>> = vec![Vec::new(); count];
    for s in samples {
        let Some(i) = s
            .started_ms
            .checked_sub(from_ms)
            .map(|d| (d / step) as usize)
        else {
            continue;
        };
        let Some(b) = buckets.get_mut(i) else {
            continue;
        };
        b.requests += 1;
        b.errors += u64::from(s.error);
        b.input_tokens += s.input_tokens;
        b.output_tokens += s.output_tokens;
        b.total_tokens += s.total_tokens;
        b.cost_usd += s.cost_usd;
        latencies[i].push(s.duration_ms);
        ttfbs[i].extend(s.ttfb_ms);
    }
    for ((b, latency), ttfb) in buckets.iter_mut().zip(&mut latencies).zip(&mut ttfbs) {
        (b.latency_p50_ms, b.latency_p95_ms) = (percentile(latency, 50), percentile(latency, 95));
        (b.ttfb_p50_ms, b.ttfb_p95_ms) = (percentile(ttfb, 50), percentile(ttfb, 95));
    }
    buckets
}

/// The nearest-rank percentile (the smallest value with at least `p`% at or below it).
fn percentile(values: &mut [f64], p: usize) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (p * values.len()).div_ceil(100).max(1);
    Some(values[rank - 1])
}

/// The series of `window` ending at the bucket that holds `now_ms`.
pub fn read(
    conn: &Connection,
    window: Window,
    filter: &SeriesFilter,
    now_ms: u64,
) -> rusqlite::Result<Series> {
    let midnight = super::query::next_local_midnight_ms(conn, now_ms)?;
    let (from, to) = window.layout(now_ms, midnight);
    let mut args: Vec<rusqlite::types::Value> = vec![(from as i64).into(), (to as i64).into()];
    let mut sql = format!(
        "SELECT started_ms, {}, COALESCE(input_tokens, 0), COALESCE(output_tokens, 0),
                COALESCE(total_tokens, 0), COALESCE(cost_usd, 0), duration_ms, ttfb_ms
         FROM requests WHERE started_ms >= ?1 AND started_ms < ?2",
        super::query::IS_ERROR
    );
    for (column, value) in [
        ("session_id", &filter.session),
        ("provider", &filter.provider),
    ] {
        if let Some(value) = value {
            args.push(value.clone().into());
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    sql.push_str(&format!(" ORDER BY started_ms DESC LIMIT {}", ROWS_MAX + 1));
    let mut stmt = conn.prepare(&sql)?;
    let mut samples: Vec<Sample> = stmt
        .query_map(params_from_iter(args), |r| {
            Ok(Sample {
                started_ms: r.get::<_, i64>(0)?.max(0) as u64,
                error: r.get(1)?,
                input_tokens: r.get::<_, i64>(2)?.max(0) as u64,
                output_tokens: r.get::<_, i64>(3)?.max(0) as u64,
                total_tokens: r.get::<_, i64>(4)?.max(0) as u64,
                cost_usd: r.get(5)?,
                duration_ms: r.get(6)?,
                ttfb_ms: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let truncated = samples.len() > ROWS_MAX;
    samples.truncate(ROWS_MAX);
    Ok(Series {
        window,
        bucket_ms: window.bucket_ms(),
        from_ms: from,
        to_ms: to,
        truncated,
        buckets: fold(from, window.bucket_ms(), window.buckets(), &samples),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(started_ms: u64, duration_ms: f64) -> Sample {
        Sample {
            started_ms,
            error: false,
            input_tokens: 10,
            output_tokens: 5,
            total_tokens: 15,
            cost_usd: 0.5,
            duration_ms,
            ttfb_ms: Some(duration_ms / 2.0),
        }
    }

    #[test]
    fn each_window_has_its_fixed_number_of_buckets_ending_after_now() {
        let now = 1_700_000_123_456;
        for window in Window::ALL {
            let (from, to) = window.layout(now, now + 5_000_000);
            assert_eq!(to - from, window.bucket_ms() * window.buckets() as u64);
            assert!(from <= now && now < to, "{window:?}");
            assert_eq!(Window::parse(window.as_str()), Some(window));
        }
        assert_eq!(Window::Hour.layout(36_030_000, 0), (32_460_000, 36_060_000));
        assert_eq!(
            Window::Month.layout(now, now + 1000).1,
            now + 1000,
            "days end at the local midnight given"
        );
        assert_eq!(Window::parse("7d"), None);
    }

    #[test]
    fn samples_fall_in_their_bucket_and_empty_buckets_stay_zero() {
        let samples = [
            sample(1_000, 100.0),
            sample(1_999, 300.0),
            Sample {
                error: true,
                ttfb_ms: None,
                ..sample(3_500, 50.0)
            },
            sample(999, 1.0),   // before the window
            sample(4_000, 1.0), // after it
        ];
        let buckets = fold(1_000, 1_000, 3, &samples);
        assert_eq!(buckets.len(), 3);
        assert_eq!(
            buckets.iter().map(|b| b.start_ms).collect::<Vec<_>>(),
            [1_000, 2_000, 3_000]
        );
        assert_eq!(buckets[0].requests, 2);
        assert_eq!(buckets[0].total_tokens, 30);
        assert_eq!(buckets[0].cost_usd, 1.0);
        assert_eq!(buckets[0].latency_p50_ms, Some(100.0));
        assert_eq!(buckets[0].latency_p95_ms, Some(300.0));
        assert_eq!(buckets[0].ttfb_p50_ms, Some(50.0));
        assert_eq!(
            buckets[1],
            Bucket {
                start_ms: 2_000,
                ..Bucket::default()
            }
        );
        assert_eq!((buckets[2].requests, buckets[2].errors), (1, 1));
        assert_eq!(buckets[2].ttfb_p50_ms, None, "no request in it had a TTFB");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut values, 50), Some(50.0));
        assert_eq!(percentile(&mut values, 95), Some(95.0));
        assert_eq!(percentile(&mut [7.0], 95), Some(7.0));
        assert_eq!(percentile(&mut [], 50), None);
    }

    #[test]
    fn read_counts_the_window_s_rows_with_the_filters() {
        use crate::ledger::row::LedgerRow;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::ledger::store::open(&dir.path().join("l.sqlite3")).unwrap();
        let now = 1_700_000_000_000;
        let row =
            |trace: &str, ago_ms: u64, session: &str, provider: &str, status: u16| LedgerRow {
                trace_id: trace.into(),
                started_ms: now - ago_ms,
                method: "POST".into(),
                path: "/v1/responses".into(),
                session_id: Some(session.into()),
                provider: Some(provider.into()),
                status: Some(status),
                outcome: "completed".into(),
                attempts_json: "[]".into(),
                total_tokens: Some(100),
                duration_ms: 200.0,
                ..LedgerRow::default()
            };
        let rows = [
            row("t1", 1_000, "s1", "a", 200),
            row("t2", 2_000, "s1", "b", 502),
            row("t3", 3 * 60_000, "s2", "a", 200),
            row("t4", 2 * 3_600_000, "s1", "a", 200), // outside the hour
        ];
        crate::ledger::store::insert(&mut conn, &rows).unwrap();
        let all = read(&conn, Window::Hour, &SeriesFilter::default(), now).unwrap();
        assert_eq!(all.buckets.len(), 60);
        assert_eq!(all.buckets.iter().map(|b| b.requests).sum::<u64>(), 3);
        assert_eq!(all.buckets.iter().map(|b| b.errors).sum::<u64>(), 1);
        assert_eq!(
            all.buckets.last().unwrap().requests,
            2,
            "the last minute holds now"
        );
        assert!(!all.truncated);
        let s1 = SeriesFilter {
            session: Some("s1".into()),
            provider: None,
        };
        let day = read(&conn, Window::Day, &s1, now).unwrap();
        assert_eq!(day.buckets.iter().map(|b| b.requests).sum::<u64>(), 3);
        let s1_a = SeriesFilter {
            provider: Some("a".into()),
            ..s1
        };
        let hour = read(&conn, Window::Hour, &s1_a, now).unwrap();
        assert_eq!(hour.buckets.iter().map(|b| b.requests).sum::<u64>(), 1);
    }
}
