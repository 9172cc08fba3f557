//! Endpoint health: cooldowns that grow with repeated failures, and a half-open probe.
//!
//! Pure state machine over millisecond timestamps on the monotonic
//! [`Clock`](crate::time::Clock) (callers pass its `now`), so a wall-clock change cannot shift
//! a cooldown. After a failover an endpoint cools down for `base × factor^streak` (capped). When the cooldown expires, exactly one request may
//! probe it; others keep skipping it until the probe ends. A success clears everything.

use serde::Serialize;

/// How long cooldowns last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CooldownPolicy {
    pub base_secs: u64,
    pub factor: f64,
    pub max_secs: u64,
}

impl CooldownPolicy {
    /// The cooldown for the `streak`-th consecutive failure (0 = first).
    pub fn duration_ms(&self, streak: u32) -> u64 {
        let factor = self.factor.max(1.0);
        let secs = self.base_secs as f64 * factor.powi(streak.min(64) as i32);
        let capped = secs.min(self.max_secs.max(self.base_secs) as f64);
        (capped * 1000.0) as u64
    }
}

/// Why an endpoint may not be used right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Blocked {
    /// Cooling down after failures. `until_ms` is on the monotonic clock as [`Health::blocked`]
    /// gives it, and epoch ms once [`RoutingState::skip_reason`](super::runtime::RoutingState::skip_reason)
    /// has converted it for the outside world (records, the ledger, `routing explain`).
    Cooldown {
        until_ms: u64,
        /// How long the cooldown had left when it was read: what `Retry-After` and "for N s
        /// more" are computed from, never from a wall clock.
        #[serde(skip)]
        left_ms: u64,
        after: String,
    },
    /// Its cooldown is over and another request is probing it now.
    Probing,
}

/// One endpoint's health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Consecutive failovers away from this endpoint.
    pub streak: u32,
    /// Monotonic, like every time here.
    pub cooldown_until_ms: u64,
    /// The failure that started the current cooldown.
    pub last_failure: Option<String>,
    /// When a request started probing the endpoint after its cooldown. The probe's
    /// [`HealthProbe`](super::runtime::HealthProbe) guard clears it however the request ends.
    pub probing_since_ms: Option<u64>,
}

impl Health {
    pub fn blocked(&self, now_ms: u64) -> Option<Blocked> {
        if now_ms < self.cooldown_until_ms {
            return Some(Blocked::Cooldown {
                until_ms: self.cooldown_until_ms,
                left_ms: self.cooldown_until_ms - now_ms,
                after: self.last_failure.clone().unwrap_or_default(),
            });
        }
        self.probing_since_ms.map(|_| Blocked::Probing)
    }

    /// Called when a request starts on this endpoint. Returns true when the request is the
    /// half-open probe (the endpoint failed before and its cooldown is over).
    pub fn begin(&mut self, now_ms: u64) -> bool {
        let probe = self.streak > 0 && now_ms >= self.cooldown_until_ms;
        if probe {
            self.probing_since_ms = Some(now_ms);
        }
        probe
    }

    pub fn on_success(&mut self) {
        *self = Health::default();
    }

    /// The endpoint failed and the request moved on: cool it down, longer each time.
    pub fn on_failover(&mut self, now_ms: u64, cooldown_ms: u64, why: String) {
        // Saturating: a cooldown to the end of time must not wrap into none.
        self.cooldown_until_ms = self
            .cooldown_until_ms
            .max(now_ms.saturating_add(cooldown_ms));
        self.streak = self.streak.saturating_add(1);
        self.last_failure = Some(why);
        self.probing_since_ms = None;
    }

    /// The attempt ended without telling anything about the endpoint's health (a client
    /// error, an unsupported model): a probe is released without judging it.
    pub fn on_neutral(&mut self) {
        self.probing_since_ms = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldowns_grow_and_are_capped() {
        let p = CooldownPolicy {
            base_secs: 30,
            factor: 2.0,
            max_secs: 100,
        };
        assert_eq!(
            [
                p.duration_ms(0),
                p.duration_ms(1),
                p.duration_ms(2),
                p.duration_ms(9)
            ],
            [30_000, 60_000, 100_000, 100_000]
        );
        let flat = CooldownPolicy {
            base_secs: 30,
            factor: 0.5,
            max_secs: 0,
        };
        assert_eq!(
            flat.duration_ms(3),
            30_000,
            "a factor below 1 and a max below base mean no growth"
        );
    }

    #[test]
    fn a_cooldown_to_the_end_of_time_does_not_wrap_into_none() {
        let mut h = Health::default();
        h.on_failover(1_000, u64::MAX, "HTTP 429".into());
        assert!(matches!(
            h.blocked(1 << 60),
            Some(Blocked::Cooldown {
                until_ms: u64::MAX,
                ..
            })
        ));
    }

    #[test]
    fn one_probe_after_the_cooldown_then_success_or_a_longer_cooldown() {
        let mut h = Health::default();
        assert!(!h.begin(0), "a healthy endpoint is not probed");
        h.on_failover(1_000, 30_000, "HTTP 502".into());
        assert!(matches!(
            h.blocked(20_000),
            Some(Blocked::Cooldown {
                until_ms: 31_000,
                left_ms: 11_000,
                ..
            })
        ));
        assert_eq!(h.blocked(31_000), None);
        assert!(
            h.begin(31_000),
            "the first request after the cooldown is the probe"
        );
        assert_eq!(
            h.blocked(31_001),
            Some(Blocked::Probing),
            "others wait for the probe"
        );
        h.on_failover(32_000, 60_000, "HTTP 502".into());
        assert_eq!(h.streak, 2);
        assert!(matches!(
            h.blocked(50_000),
            Some(Blocked::Cooldown {
                until_ms: 92_000,
                left_ms: 42_000,
                ..
            })
        ));
        assert!(h.begin(92_000));
        h.on_success();
        assert_eq!(h, Health::default());
    }

    #[test]
    fn a_neutral_outcome_releases_the_probe() {
        let mut h = Health::default();
        h.on_failover(0, 10, "x".into());
        assert!(h.begin(10));
        h.on_neutral();
        assert_eq!(h.blocked(11), None);
    }
}
