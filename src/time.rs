//! Leaf: the two clocks the helper reads.
//!
//! - [`now_ms`], the wall clock as epoch milliseconds, for what is stored or shown as a time of
//!   day (ledger rows, affinity records kept across restarts, file names). The user, NTP or a
//!   suspend can move it.
//! - [`Clock`], monotonic milliseconds since start-up, for what only lives in memory and
//!   measures a duration (cooldowns, probes, runtime signals' expiries). Nothing moves it but
//!   time, or a test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the one unit for times the helper stores, shows and
/// names files by. A clock set before 1970 reads as 0.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An RFC 3339 time (`2026-07-20T00:00:00Z`, `2026-07-20 08:00:00.5+08:00`) as epoch ms;
/// `None` for anything else or before 1970. For times relays report (a quota window's start).
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let b = text.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if sep(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let fraction = &b[start..at];
        if fraction.is_empty() {
            return None;
        }
        millis = (0..3).fold(0, |n, i| {
            n * 10 + fraction.get(i).map_or(0, |d| i64::from(d - b'0'))
        });
    }
    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() && sep(at + 3, b":") => {
            let minutes = num(at + 1, 2)? * 60 + num(at + 4, 2)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1_000 + millis).ok()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Milliseconds on a [`Clock`]: counted from the clock's origin (its creation), meaningful only
/// inside this process and only against readings of the same clock. Never stored or shown as
/// is: [`Clock::to_epoch_ms`] turns one into a time of day.
pub type Millis = u64;

/// The monotonic clock for in-memory expiries. Cheap to clone; clones read the same time.
///
/// The real clock follows [`Instant`], so a wall-clock change neither shortens nor stretches a
/// cooldown. A manual clock ([`Clock::manual`]) stands still until [`Clock::advance`] moves it,
/// so tests can let a cooldown pass without waiting for it.
#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    /// Time elapsed since this instant.
    Real(Instant),
    /// Time as a test sets it, shared by every clone.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The real clock, its origin now.
    pub fn real() -> Self {
        Self(Source::Real(Instant::now()))
    }

    /// A clock for tests, at 0 until [`Clock::advance`] moves it.
    pub fn manual() -> Self {
        Self(Source::Manual(Arc::default()))
    }

    /// Milliseconds since the clock's origin; never less than an earlier reading.
    pub fn now(&self) -> Millis {
        match &self.0 {
            Source::Real(origin) => origin.elapsed().as_millis() as u64,
            Source::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward by `by`.
    ///
    /// # Panics
    /// On the real clock: only time moves it, and a test that tries has a bug.
    pub fn advance(&self, by: Duration) {
        let Source::Manual(ms) = &self.0 else {
            panic!("only a manual clock can be advanced");
        };
        ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// The time of day (epoch ms, as [`now_ms`]) at which this clock reads `at`, as the wall
    /// clock stands now: the wall clock now, plus (or minus) the monotonic time from now to
    /// `at`. The one conversion for a monotonic expiry that is stored or shown, so stored and
    /// shown times stay epoch ms, in step with the other times of the same record.
    pub fn to_epoch_ms(&self, at: Millis) -> u64 {
        let (now, wall) = (self.now(), now_ms());
        if at >= now {
            wall.saturating_add(at - now)
        } else {
            wall.saturating_sub(now - at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_read_as_epoch_ms() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-07-20T00:00:00Z"),
            Some(1_784_505_600_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-07-20 08:00:00.5+08:00"),
            Some(1_784_505_600_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T12:30:15.123456-01:30"),
            Some(1_709_215_215_123)
        );
        for bad in [
            "",
            "2026-07-20",
            "2026-13-01T00:00:00Z",
            "2026-07-20T00:00:00",
            "1969-12-31T23:59:59Z",
            "2026-07-20T00:00:00Zjunk",
            "２０２６-07-20T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_real_clock_never_goes_back_and_cannot_be_moved() {
        let clock = Clock::real();
        let first = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        let second = clock.clone().now();
        assert!(second >= first + 5, "{first} then {second}");
        let moved = std::panic::catch_unwind(|| clock.advance(Duration::from_secs(1)));
        assert!(moved.is_err(), "a real clock refuses to be advanced");
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_follow() {
        let clock = Clock::manual();
        let clone = clock.clone();
        assert_eq!(clock.now(), 0);
        clone.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now(), 1_500);
        clock.advance(Duration::from_secs(30));
        assert_eq!((clock.now(), clone.now()), (31_500, 31_500));
    }

    #[test]
    fn monotonic_instants_become_times_of_day_from_the_wall_clock_now() {
        let clock = Clock::manual();
        clock.advance(Duration::from_secs(100));
        let before = now_ms();
        let ahead = clock.to_epoch_ms(clock.now() + 20_000);
        let behind = clock.to_epoch_ms(clock.now() - 40_000);
        let after = now_ms();
        assert!((before + 20_000..=after + 20_000).contains(&ahead));
        assert!((before - 40_000..=after - 40_000).contains(&behind));
        assert_eq!(Clock::manual().to_epoch_ms(u64::MAX), u64::MAX, "saturates");
    }
}
