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
