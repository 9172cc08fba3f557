//! Requests, tokens, cost and latency over time in a fixed number of buckets: what the web
//! console's charts draw.
//!
//! The bucket bounds are a pure function of the window and the time ([`Window::grid`]; days
//! are the client's or the helper's local midnights, so a DST day is 23 or 25 hours), and
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

    /// Where each bucket starts, and where the last one ends (`buckets() + 1` instants), for a
    /// window of equal steps ending at the step boundary after `now_ms`. Days are not equal
    /// steps (a DST change makes one 23 or 25 hours): see [`day_starts`] and [`local_day_starts`].
    pub fn grid(self, now_ms: u64) -> Vec<u64> {
        let step = self.bucket_ms();
        let to = (now_ms / step + 1) * step;
        let from = to.saturating_sub(step * self.buckets() as u64);
        (0..=self.buckets() as u64)
            .map(|i| from + i * step)
            .collect()
    }
}

/// The shortest and longest day a time zone has (DST moves a day by an hour; a few zones
/// have moved by more once), with a margin.
const DAY_MIN_MS: u64 = 20 * 60 * MINUTE_MS;
const DAY_MAX_MS: u64 = 28 * 60 * MINUTE_MS;

/// A client's own day boundaries (its 31 local midnights, the last after today), checked: a
/// browser in another zone than the helper sees its own days, DST included.
pub fn day_starts(given: &[u64], now_ms: u64) -> Result<Vec<u64>, String> {
    let count = Window::Month.buckets() + 1;
    if given.len() != count {
        return Err(format!(
            "`day_starts` takes {count} midnights (ms since the epoch, ascending), not {}",
            given.len()
        ));
    }
    if let Some(pair) = given
        .windows(2)
        .find(|w| !(DAY_MIN_MS..=DAY_MAX_MS).contains(&w[1].saturating_sub(w[0])))
    {
        return Err(format!(
            "`day_starts` must be a day apart (20 to 28 hours): {} then {}",
            pair[0], pair[1]
        ));
    }
    let last = given[count - 1];
    if last + DAY_MAX_MS <= now_ms || last > now_ms + 2 * DAY_MAX_MS {
        return Err("`day_starts` must end at the midnight after today".into());
    }
    Ok(given.to_vec())
}

/// The helper's own 31 local midnights, the last after `now_ms` (SQLite's `localtime`, so the
/// zone is the helper process's: `TZ` or the system's).
pub fn local_day_starts(conn: &Connection, now_ms: u64) -> rusqlite::Result<Vec<u64>> {
    let days = Window::Month.buckets() as i64;
    let mut stmt = conn.prepare(
        "SELECT CAST(strftime('%s', date(?1, 'unixepoch', 'localtime', '+1 day', ?2), 'utc') AS INTEGER)",
    )?;
    (0..=days)
        .rev()
        .map(|back| {
            let secs: i64 = stmt
                .query_row(((now_ms / 1000) as i64, format!("-{back} days")), |r| {
                    r.get(0)
                })?;
            Ok(secs.max(0) as u64 * 1000)
        })
        .collect()
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

/// One bucket, `[start_ms, end_ms)`; percentiles are `None` when no request in it has the figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    pub start_ms: u64,
    pub end_ms: u64,
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
    /// The nominal step; a day bucket may be an hour shorter or longer (each has its `end_ms`).
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

/// The samples folded into the buckets `bounds` draws (`[bounds[i], bounds[i + 1])`, so one
/// fewer bucket than bounds); samples outside are left out.
pub fn fold(bounds: &[u64], samples: &[Sample]) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = bounds
        .windows(2)
        .map(|w| Bucket {
            start_ms: w[0],
            end_ms: w[1],
            ..Bucket::default()
        })
        .collect();
    let count = buckets.len();
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); count];
    let mut ttfbs: Vec<Vec<f64>> = vec![Vec::new(); count];
    for s in samples {
        // The bounds at or before the sample, less one: its bucket (none before the first).
        let Some(i) = bounds
            .partition_point(|&b| b <= s.started_ms)
            .checked_sub(1)
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

/// The series of `window` ending at the bucket that holds `now_ms`, from the SQLite ledger;
/// days are `day_starts` when the client gave its own (checked by [`day_starts`]), else the
/// helper's.
pub fn read(
    conn: &Connection,
    window: Window,
    filter: &SeriesFilter,
    now_ms: u64,
    day_starts: Option<Vec<u64>>,
) -> rusqlite::Result<Series> {
    let bounds = bounds(conn, window, now_ms, day_starts)?;
    let samples = samples(conn, bounds[0], bounds[bounds.len() - 1], filter)?;
    Ok(assemble(window, bounds, samples))
}

/// The buckets' bounds: `day_starts` for a month when given, else the helper's local days
/// (read through `clock`, SQLite's local time), else the window's fixed grid.
pub fn bounds(
    clock: &Connection,
    window: Window,
    now_ms: u64,
    day_starts: Option<Vec<u64>>,
) -> rusqlite::Result<Vec<u64>> {
    Ok(match (window, day_starts) {
        (Window::Month, Some(given)) => given,
        (Window::Month, None) => local_day_starts(clock, now_ms)?,
        _ => window.grid(now_ms),
    })
}

/// The SQLite ledger's requests in `[from_ms, to_ms)` matching `filter`, newest first, at
/// most [`ROWS_MAX`] + 1 (one more says the window held more).
pub fn samples(
    conn: &Connection,
    from_ms: u64,
    to_ms: u64,
    filter: &SeriesFilter,
) -> rusqlite::Result<Vec<Sample>> {
    let mut args: Vec<rusqlite::types::Value> =
        vec![(from_ms as i64).into(), (to_ms as i64).into()];
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
    stmt.query_map(params_from_iter(args), |r| {
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
    .collect()
}

/// The series drawn by `bounds` over `samples` (as [`samples`] gives them: past
/// [`ROWS_MAX`], the window counts as truncated and the oldest are left out).
pub fn assemble(window: Window, bounds: Vec<u64>, mut samples: Vec<Sample>) -> Series {
    let truncated = samples.len() > ROWS_MAX;
    samples.truncate(ROWS_MAX);
    Series {
        window,
        bucket_ms: window.bucket_ms(),
        from_ms: bounds[0],
        to_ms: bounds[bounds.len() - 1],
        truncated,
        buckets: fold(&bounds, &samples),
    }
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
        for window in [Window::Hour, Window::Day] {
            let bounds = window.grid(now);
            assert_eq!(bounds.len(), window.buckets() + 1);
            assert!(bounds.windows(2).all(|w| w[1] - w[0] == window.bucket_ms()));
            assert!(
                bounds[0] <= now && now < bounds[window.buckets()],
                "{window:?}"
            );
            assert_eq!(Window::parse(window.as_str()), Some(window));
        }
        let hour = Window::Hour.grid(36_030_000);
        assert_eq!((hour[0], hour[60]), (32_460_000, 36_060_000));
        assert_eq!(Window::parse("30d"), Some(Window::Month));
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
        let buckets = fold(&[1_000, 2_000, 3_000, 4_000], &samples);
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
                end_ms: 3_000,
                ..Bucket::default()
            }
        );
        assert_eq!((buckets[2].requests, buckets[2].errors), (1, 1));
        assert_eq!(buckets[2].ttfb_p50_ms, None, "no request in it had a TTFB");
    }

    const HOUR: u64 = 3_600_000;

    #[test]
    fn a_25_hour_day_keeps_its_last_hour() {
        // The day DST ends is 25 hours: a request at 00:30 of the next day is not in it, one
        // at 23:30 (24.5 hours after its midnight) is.
        let bounds = [0, 25 * HOUR, 49 * HOUR];
        let buckets = fold(
            &bounds,
            &[
                sample(24 * HOUR + HOUR / 2, 1.0),
                sample(25 * HOUR + HOUR / 2, 1.0),
            ],
        );
        assert_eq!(
            buckets
                .iter()
                .map(|b| (b.end_ms - b.start_ms, b.requests))
                .collect::<Vec<_>>(),
            [(25 * HOUR, 1), (24 * HOUR, 1)]
        );
    }

    #[test]
    fn a_client_s_days_are_checked() {
        let now = 100 * 24 * HOUR + 5 * HOUR;
        let days: Vec<u64> = (0..=30).map(|i| (71 + i) * 24 * HOUR).collect();
        assert_eq!(day_starts(&days, now).unwrap(), days);
        let mut dst = days.clone();
        dst[10] += HOUR; // one day 25 h, the next 23 h
        assert!(day_starts(&dst, now).is_ok());
        assert!(
            day_starts(&days[1..], now)
                .unwrap_err()
                .contains("takes 31")
        );
        let mut jumbled = days.clone();
        jumbled.swap(3, 4);
        assert!(
            day_starts(&jumbled, now)
                .unwrap_err()
                .contains("a day apart")
        );
        let old: Vec<u64> = days.iter().map(|d| d - 10 * 24 * HOUR).collect();
        assert!(day_starts(&old, now).unwrap_err().contains("after today"));
    }

    /// The helper's days in a zone with DST. `TZ` is the process's, so the check runs in a child
    /// process of this test binary with its own `TZ`, never touching the other tests' zone.
    #[test]
    fn the_helper_s_days_follow_dst() {
        if std::env::var_os("SERIES_DST_CHILD").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "ledger::series::tests::the_helper_s_days_follow_dst",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SERIES_DST_CHILD", "1")
                .env("TZ", "America/New_York")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("1 passed"), "the child ran the check: {text}");
            return;
        }
        let conn = Connection::open_in_memory().unwrap();
        // 2026-11-03 17:00 UTC; New York left DST on 2026-11-01 at 02:00.
        let days = local_day_starts(&conn, 1_793_725_200_000).unwrap();
        assert_eq!(days.len(), 31);
        assert_eq!(
            *days.last().unwrap(),
            1_793_768_400_000,
            "2026-11-04 00:00 EST"
        );
        let nov1 = days
            .iter()
            .position(|&d| d == 1_793_505_600_000)
            .expect("Nov 1, 00:00 EDT");
        assert_eq!(
            days[nov1 + 1],
            1_793_595_600_000,
            "Nov 2, 00:00 EST: 25 hours later"
        );
        let lengths: Vec<u64> = days.windows(2).map(|w| (w[1] - w[0]) / HOUR).collect();
        assert_eq!(
            lengths.iter().filter(|&&h| h != 24).count(),
            1,
            "{lengths:?}"
        );
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
        let all = read(&conn, Window::Hour, &SeriesFilter::default(), now, None).unwrap();
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
        let day = read(&conn, Window::Day, &s1, now, None).unwrap();
        assert_eq!(day.buckets.iter().map(|b| b.requests).sum::<u64>(), 3);
        let s1_a = SeriesFilter {
            provider: Some("a".into()),
            ..s1
        };
        let hour = read(&conn, Window::Hour, &s1_a, now, None).unwrap();
        assert_eq!(hour.buckets.iter().map(|b| b.requests).sum::<u64>(), 1);
    }
}
