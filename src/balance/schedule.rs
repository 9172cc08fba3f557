//! When each relay endpoint's balance is looked up: the refresh rules in one place.
//!
//! Pure: times in (milliseconds on the proxy's monotonic clock), decisions out. The service
//! ([`super::service`]) asks it what is due and tells it what each lookup found.
//!
//! The rules, so a relay's balance API is never hammered:
//! - a request that asks for a lookup (a streamed success, a 429, every relay blocked) queues
//!   its endpoint `request_delay` later; more asks while it is queued change nothing;
//! - a queued lookup never runs sooner than the adapter's poll interval after the last one,
//!   nor while a terminal error (invalid key, inactive account) is backing off;
//! - an endpoint whose balance keeps it out of routing is looked up again every
//!   `exhausted_recheck`, so a refill is noticed without traffic to it;
//! - on-demand lookups (start-up, `balance refresh`) run at once, whatever the queue and the
//!   floor say; a lookup queued meanwhile then waits out the floor from them.

use std::collections::HashMap;

use crate::config::model::BalanceSettings;
use crate::time::Millis;

/// The timing rules (from `[balance]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub request_delay_ms: u64,
    /// 0: exhausted endpoints are not looked up again on their own.
    pub exhausted_recheck_ms: u64,
    pub terminal_backoff_ms: u64,
}

impl Rules {
    pub fn new(settings: &BalanceSettings) -> Self {
        Self {
            request_delay_ms: settings.request_refresh_delay_ms,
            exhausted_recheck_ms: settings.exhausted_recheck_ms,
            terminal_backoff_ms: settings.terminal_backoff_ms,
        }
    }
}

/// What a finished lookup means for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Looked {
    /// It failed in a way retrying will not fix soon.
    pub terminal: bool,
    /// Its balance takes the endpoint out of routing.
    pub routing_exhausted: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Times {
    last_lookup: Option<Millis>,
    /// When the queued lookup may run.
    due: Option<Millis>,
    backoff_until: Option<Millis>,
    /// The adapter's poll interval, as the last ask gave it.
    floor_ms: Option<u64>,
}

/// What an ask did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// A lookup is now queued.
    Queued,
    /// One was queued already.
    AlreadyQueued,
    /// The adapter does not look up on requests.
    NotWanted,
}

/// Every endpoint's lookup times.
#[derive(Debug, Default)]
pub struct Schedule {
    endpoints: HashMap<String, Times>,
}

impl Schedule {
    /// A request asks for `endpoint`'s balance at `now`. `floor_ms` is its adapter's poll
    /// interval, `None` when the adapter does not refresh on requests.
    pub fn request(
        &mut self,
        endpoint: &str,
        now: Millis,
        floor_ms: Option<u64>,
        rules: &Rules,
    ) -> Asked {
        let Some(floor_ms) = floor_ms else {
            return Asked::NotWanted;
        };
        let times = self.endpoints.entry(endpoint.to_string()).or_default();
        times.floor_ms = Some(floor_ms);
        if times.due.is_some() {
            return Asked::AlreadyQueued;
        }
        let after_floor = times
            .last_lookup
            .map_or(0, |last| last.saturating_add(floor_ms));
        let due = now
            .saturating_add(rules.request_delay_ms)
            .max(after_floor)
            .max(times.backoff_until.unwrap_or(0));
        times.due = Some(due);
        Asked::Queued
    }

    /// The endpoints whose lookup is due at `now`, taken off the queue.
    pub fn take_due(&mut self, now: Millis) -> Vec<String> {
        let mut due: Vec<String> = self
            .endpoints
            .iter_mut()
            .filter(|(_, t)| t.due.is_some_and(|d| d <= now))
            .map(|(endpoint, t)| {
                t.due = None;
                endpoint.clone()
            })
            .collect();
        due.sort();
        due
    }

    /// When the next queued lookup is due, if any is queued.
    pub fn next_due(&self) -> Option<Millis> {
        self.endpoints.values().filter_map(|t| t.due).min()
    }

    /// Records a lookup of `endpoint` that ended at `now` (whatever started it): a lookup
    /// still queued waits out the poll floor from this one, a terminal failure backs off, and
    /// an endpoint still out of routing for its balance is queued for a recheck.
    pub fn looked_up(&mut self, endpoint: &str, now: Millis, looked: Looked, rules: &Rules) {
        let times = self.endpoints.entry(endpoint.to_string()).or_default();
        times.last_lookup = Some(now);
        if let (Some(due), Some(floor)) = (times.due, times.floor_ms) {
            times.due = Some(due.max(now.saturating_add(floor)));
        }
        times.backoff_until = looked
            .terminal
            .then(|| now.saturating_add(rules.terminal_backoff_ms));
        if let Some(backoff) = times.backoff_until {
            times.due = times.due.map(|d| d.max(backoff));
        }
        if looked.routing_exhausted {
            self.recheck(endpoint, now, rules);
        }
    }

    /// Queues a recheck of an endpoint out of routing for its balance (unless something
    /// sooner is queued), so a refill is noticed without traffic to it.
    pub fn recheck(&mut self, endpoint: &str, now: Millis, rules: &Rules) {
        if rules.exhausted_recheck_ms == 0 {
            return;
        }
        let times = self.endpoints.entry(endpoint.to_string()).or_default();
        let recheck = now.saturating_add(rules.exhausted_recheck_ms);
        times.due = Some(times.due.map_or(recheck, |d| d.min(recheck)));
    }

    /// Forgets endpoints no longer configured.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.endpoints.retain(|endpoint, _| keep(endpoint));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        request_delay_ms: 60_000,
        exhausted_recheck_ms: 600_000,
        terminal_backoff_ms: 6 * 3_600_000,
    };
    const FLOOR: Option<u64> = Some(120_000);
    const FINE: Looked = Looked {
        terminal: false,
        routing_exhausted: false,
    };

    #[test]
    fn a_request_queues_one_lookup_after_the_delay_and_more_requests_change_nothing() {
        let mut s = Schedule::default();
        assert_eq!(s.request("a.default", 1_000, FLOOR, &RULES), Asked::Queued);
        for t in 1_001..1_100 {
            assert_eq!(
                s.request("a.default", t, FLOOR, &RULES),
                Asked::AlreadyQueued
            );
        }
        assert_eq!(s.next_due(), Some(61_000));
        assert!(s.take_due(60_999).is_empty());
        assert_eq!(s.take_due(61_000), vec!["a.default".to_string()]);
        assert!(s.take_due(1_000_000).is_empty(), "taken once");
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn the_poll_floor_holds_a_queued_lookup_back() {
        let mut s = Schedule::default();
        s.looked_up("a.default", 10_000, FINE, &RULES);
        assert_eq!(Asked::Queued, s.request("a.default", 20_000, FLOOR, &RULES));
        // Delay says 80 s, the floor says 130 s.
        assert_eq!(s.next_due(), Some(130_000));
    }

    #[test]
    fn adapters_without_request_refresh_queue_nothing() {
        let mut s = Schedule::default();
        assert_eq!(s.request("a.default", 0, None, &RULES), Asked::NotWanted);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_terminal_error_backs_off_for_hours_then_allows_lookups_again() {
        let mut s = Schedule::default();
        let terminal = Looked {
            terminal: true,
            routing_exhausted: false,
        };
        s.looked_up("a.default", 0, terminal, &RULES);
        assert_eq!(s.request("a.default", 1_000, FLOOR, &RULES), Asked::Queued);
        assert_eq!(s.next_due(), Some(6 * 3_600_000));
        s.take_due(6 * 3_600_000);
        s.looked_up("a.default", 6 * 3_600_000, FINE, &RULES);
        assert_eq!(
            Asked::Queued,
            s.request("a.default", 6 * 3_600_000 + 1, FLOOR, &RULES)
        );
        assert_eq!(s.next_due(), Some(6 * 3_600_000 + 120_000), "floor only");
    }

    #[test]
    fn a_terminal_error_pushes_an_already_queued_lookup_back() {
        let mut s = Schedule::default();
        assert_eq!(Asked::Queued, s.request("a.default", 0, FLOOR, &RULES));
        let terminal = Looked {
            terminal: true,
            routing_exhausted: false,
        };
        s.looked_up("a.default", 1_000, terminal, &RULES);
        assert_eq!(s.next_due(), Some(1_000 + 6 * 3_600_000));
    }

    #[test]
    fn an_exhausted_endpoint_is_rechecked_and_a_refill_stops_the_rechecks() {
        let mut s = Schedule::default();
        let exhausted = Looked {
            terminal: false,
            routing_exhausted: true,
        };
        s.looked_up("a.default", 0, exhausted, &RULES);
        assert_eq!(s.next_due(), Some(600_000));
        assert_eq!(s.take_due(600_000), vec!["a.default".to_string()]);
        s.looked_up("a.default", 600_000, FINE, &RULES);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_recheck_does_not_postpone_a_sooner_queued_lookup() {
        let mut s = Schedule::default();
        s.looked_up("a.default", 0, FINE, &RULES);
        assert_eq!(
            Asked::Queued,
            s.request("a.default", 200_000, FLOOR, &RULES)
        );
        let exhausted = Looked {
            terminal: false,
            routing_exhausted: true,
        };
        s.looked_up("a.default", 200_001, exhausted, &RULES);
        assert_eq!(
            s.next_due(),
            Some(320_001),
            "the floor from the latest lookup"
        );
    }

    #[test]
    fn a_lookup_that_ends_after_an_ask_holds_the_queued_one_to_the_floor() {
        let mut s = Schedule::default();
        // Asked while the start-up refresh was still running (no lookup recorded yet).
        assert_eq!(s.request("a.default", 1_000, FLOOR, &RULES), Asked::Queued);
        assert_eq!(s.next_due(), Some(61_000));
        s.looked_up("a.default", 5_000, FINE, &RULES);
        assert_eq!(s.next_due(), Some(125_000));
    }

    #[test]
    fn huge_settings_saturate_instead_of_wrapping() {
        let rules = Rules {
            request_delay_ms: u64::MAX,
            exhausted_recheck_ms: u64::MAX,
            terminal_backoff_ms: u64::MAX,
        };
        let mut s = Schedule::default();
        s.request("a.default", 10, Some(u64::MAX), &rules);
        let terminal = Looked {
            terminal: true,
            routing_exhausted: true,
        };
        s.looked_up("a.default", 20, terminal, &rules);
        assert_eq!(s.next_due(), Some(u64::MAX));
        assert!(s.take_due(1_000_000).is_empty());
    }

    #[test]
    fn endpoints_are_due_independently_and_forgotten_when_gone() {
        let mut s = Schedule::default();
        s.request("a.default", 0, FLOOR, &RULES);
        s.request("b.default", 30_000, FLOOR, &RULES);
        assert_eq!(s.take_due(60_000), vec!["a.default".to_string()]);
        s.retain(|e| e != "b.default");
        assert_eq!(s.next_due(), None);
    }
}
