//! The rate limit: one event per kind and relay per window, so a relay that flaps between
//! failing and answering makes one notification, not one per request (pure: the caller gives
//! the time).

use std::collections::HashMap;

use super::EventKind;

/// The most (kind, relay) pairs remembered; past it the oldest are forgotten.
const MAX_KEYS: usize = 1_000;

/// What to do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it, saying how many were held back since the last one sent.
    Send { suppressed: u32 },
    /// Hold it back (counted).
    Hold,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    sent_ms: u64,
    held: u32,
}

/// Per (kind, relay): when one was last sent and how many were held since.
#[derive(Debug)]
pub struct RateLimit {
    window_ms: u64,
    last: HashMap<(EventKind, String), Last>,
}

impl RateLimit {
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms,
            last: HashMap::new(),
        }
    }

    /// Whether an event of `kind` about `relay` (empty: none) at `now_ms` is sent.
    pub fn admit(&mut self, kind: EventKind, relay: &str, now_ms: u64) -> Verdict {
        let key = (kind, relay.to_string());
        if let Some(last) = self.last.get_mut(&key) {
            if now_ms.saturating_sub(last.sent_ms) < self.window_ms {
                last.held = last.held.saturating_add(1);
                return Verdict::Hold;
            }
            let suppressed = last.held;
            *last = Last {
                sent_ms: now_ms,
                held: 0,
            };
            return Verdict::Send { suppressed };
        }
        if self.last.len() >= MAX_KEYS {
            self.forget_oldest();
        }
        self.last.insert(
            key,
            Last {
                sent_ms: now_ms,
                held: 0,
            },
        );
        Verdict::Send { suppressed: 0 }
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .last
            .iter()
            .min_by_key(|(_, last)| last.sent_ms)
            .map(|(key, _)| key.clone())
        {
            self.last.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    #[test]
    fn repeats_inside_the_window_are_held_and_counted() {
        let mut limit = RateLimit::new(60_000);
        assert_eq!(
            limit.admit(Failover, "a.x", 1_000),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(limit.admit(Failover, "a.x", 2_000), Verdict::Hold);
        assert_eq!(limit.admit(Failover, "a.x", 60_999), Verdict::Hold);
        // The window counts from the last one sent.
        assert_eq!(
            limit.admit(Failover, "a.x", 61_000),
            Verdict::Send { suppressed: 2 }
        );
        assert_eq!(limit.admit(Failover, "a.x", 61_001), Verdict::Hold);
    }

    #[test]
    fn kinds_and_relays_are_limited_apart() {
        let mut limit = RateLimit::new(60_000);
        assert_eq!(
            limit.admit(Failover, "a.x", 0),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(
            limit.admit(Failover, "b.x", 1),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(
            limit.admit(RelayExhausted, "a.x", 2),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(
            limit.admit(AllBlocked, "", 3),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(limit.admit(AllBlocked, "", 4), Verdict::Hold);
    }

    #[test]
    fn a_zero_window_sends_everything_and_memory_is_bounded() {
        let mut limit = RateLimit::new(0);
        assert_eq!(
            limit.admit(Failover, "a", 5),
            Verdict::Send { suppressed: 0 }
        );
        assert_eq!(
            limit.admit(Failover, "a", 5),
            Verdict::Send { suppressed: 0 }
        );
        let mut limit = RateLimit::new(1_000);
        for i in 0..(MAX_KEYS as u64 + 10) {
            limit.admit(Failover, &format!("r{i}"), i);
        }
        assert_eq!(limit.last.len(), MAX_KEYS);
        // The oldest was forgotten: it is sent again at once.
        assert_eq!(
            limit.admit(Failover, "r0", 500),
            Verdict::Send { suppressed: 0 }
        );
    }
}
