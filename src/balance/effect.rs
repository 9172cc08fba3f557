//! What a balance lookup does to routing (pure). Only a trusted exhaustion takes an endpoint
//! out, and only until its window resets (when the relay says when) or a cap passes; a failed or empty lookup leaves
//! routing as it was: not knowing the balance is never a reason to stop using a relay.

use super::snapshot::{Snapshot, Status};
use crate::routing::runtime::RoutingState;

/// The change a snapshot makes to its endpoint's "exhausted" routing signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing learned (an error, or nothing readable): keep the signal as it is.
    Leave,
    /// Balance available (or its exhaustion not trusted): the endpoint may be used.
    Clear,
    /// Out of routing until `until_ms` (epoch ms).
    Exhaust { reason: String, until_ms: u64 },
}

/// The effect of `snapshot` at `now_ms`, exhaustion capped at `max_ms` after the lookup.
pub fn effect(snapshot: &Snapshot, now_ms: u64, max_ms: u64) -> Effect {
    match snapshot.status(now_ms) {
        Status::Error | Status::Unknown => Effect::Leave,
        _ => match snapshot.routing_exhausted_until(now_ms, max_ms) {
            Some(until_ms) => Effect::Exhaust {
                reason: format!("balance: {} says none left", snapshot.adapter),
                until_ms,
            },
            None => Effect::Clear,
        },
    }
}

/// Puts `effect` on `endpoint`'s signal in `routing`, its end moved from the wall clock
/// (`now_ms`) to the routing state's monotonic clock.
pub fn apply(routing: &RoutingState, endpoint: &str, effect: Effect, now_ms: u64) {
    match effect {
        Effect::Leave => {}
        Effect::Clear => routing.set_exhausted(endpoint, None),
        Effect::Exhaust { reason, until_ms } => {
            let until = routing
                .clock()
                .now()
                .saturating_add(until_ms.saturating_sub(now_ms));
            routing.set_exhausted(endpoint, Some((reason, until)));
        }
    }
}

/// Puts the exhaustion of kept snapshots on `routing` (after a restart, or for a command that
/// explains routing), for the endpoints `configured` still names; returns those snapshots.
pub fn apply_kept(
    routing: &RoutingState,
    kept: Vec<(String, Snapshot)>,
    configured: impl Fn(&str) -> bool,
    now_ms: u64,
    max_ms: u64,
) -> Vec<(String, Snapshot, Option<u64>)> {
    kept.into_iter()
        .filter(|(endpoint, _)| configured(endpoint))
        .map(|(endpoint, snapshot)| {
            let effect = effect(&snapshot, now_ms, max_ms);
            let out_until = match &effect {
                Effect::Exhaust { until_ms, .. } => Some(*until_ms),
                _ => None,
            };
            apply(routing, &endpoint, effect, now_ms);
            (endpoint, snapshot, out_until)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::amount::Usd;
    use crate::balance::snapshot::Reading;

    const NOW: u64 = 1_000_000;
    const MAX: u64 = 3_600_000;

    fn snapshot(exhausted: Option<bool>, error: Option<&str>, trusted: bool) -> Snapshot {
        let mut reading = Reading {
            exhausted,
            error: error.map(str::to_string),
            ..Reading::default()
        };
        if exhausted.is_some() {
            reading.amounts.total_balance = Some(Usd::dollars(0));
        }
        Snapshot::new(
            "relay",
            "usage_provider:sub2api_usage",
            reading,
            trusted,
            (NOW, NOW + 360_000),
            None,
        )
    }

    #[test]
    fn trusted_exhaustion_takes_the_endpoint_out_until_the_cap() {
        assert_eq!(
            effect(&snapshot(Some(true), None, true), NOW, MAX),
            Effect::Exhaust {
                reason: "balance: relay says none left".into(),
                until_ms: NOW + MAX
            }
        );
    }

    #[test]
    fn exhaustion_ends_at_the_window_reset_when_sooner() {
        let mut s = snapshot(Some(true), None, true);
        s.amounts.quota_resets_at_ms = Some(NOW + 60_000);
        let Effect::Exhaust { until_ms, .. } = effect(&s, NOW, MAX) else {
            panic!("exhausted");
        };
        assert_eq!(until_ms, NOW + 60_000);
    }

    #[test]
    fn untrusted_exhaustion_and_a_balance_clear_the_signal() {
        assert_eq!(
            effect(&snapshot(Some(true), None, false), NOW, MAX),
            Effect::Clear
        );
        assert_eq!(
            effect(&snapshot(Some(false), None, true), NOW, MAX),
            Effect::Clear
        );
    }

    #[test]
    fn an_error_or_an_empty_answer_leaves_routing_alone() {
        assert_eq!(
            effect(&snapshot(None, Some("HTTP 500"), true), NOW, MAX),
            Effect::Leave
        );
        assert_eq!(effect(&snapshot(None, None, true), NOW, MAX), Effect::Leave);
    }
}
