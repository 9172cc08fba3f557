//! Which finished requests ask for a balance lookup, and the record sink that passes the asks
//! on. A request never waits for a lookup: the sink only queues endpoint names.

use std::sync::Arc;

use crate::record::{AttemptOutcome, Outcome, RecordSink, RequestRecord};
use crate::routing::select::Skip;

/// The endpoints (`provider.endpoint`) whose balance this request gives a reason to look at:
/// the one that streamed a whole answer (it spent money), any that answered 429 (a quota may
/// be gone), and, when every candidate was blocked, those blocked by cooldown or exhaustion
/// (a refill would bring them back).
pub fn asks(record: &RequestRecord, outcome: Outcome) -> Vec<String> {
    let mut endpoints = Vec::new();
    if record.streaming && outcome == Outcome::Completed {
        if let (Some(provider), Some(endpoint)) = (&record.provider, &record.endpoint) {
            endpoints.push(format!("{provider}.{endpoint}"));
        }
    }
    for attempt in &record.attempts {
        if matches!(
            attempt.outcome,
            AttemptOutcome::FailedStatus { status: 429, .. }
        ) {
            endpoints.push(format!("{}.{}", attempt.provider, attempt.endpoint));
        }
    }
    if matches!(
        outcome,
        Outcome::AllUpstreamsFailed | Outcome::ContinuityBroken
    ) {
        if let Some(decision) = &record.decision {
            endpoints.extend(
                decision
                    .candidates
                    .iter()
                    .filter(|c| matches!(c.skip, Some(Skip::Exhausted { .. } | Skip::Unhealthy(_))))
                    .map(|c| c.upstream.clone()),
            );
        }
    }
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// A record sink that hands every record to `inner` and each ask to `ask` (which must not
/// block: it runs on the proxy's event loop).
pub struct BalanceTrigger {
    pub inner: Arc<dyn RecordSink>,
    pub ask: Box<dyn Fn(&str) + Send + Sync>,
}

impl RecordSink for BalanceTrigger {
    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome) {
        self.inner.record(record, outcome);
        for endpoint in asks(record, outcome) {
            (self.ask)(&endpoint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::AffinityPolicy;
    use crate::record::{Attempt, CandidateNote, RouteDecision};
    use crate::routing::health::Blocked;
    use crate::routing::retry::FailureClass;

    fn record(streaming: bool) -> RequestRecord {
        let mut r = RequestRecord::new("t-1".into(), "POST".into(), "/v1/responses".into());
        r.streaming = streaming;
        r.provider = Some("a".into());
        r.endpoint = Some("default".into());
        r.status = Some(200);
        r
    }

    fn attempt(provider: &str, status: u16) -> Attempt {
        Attempt {
            provider: provider.into(),
            endpoint: "default".into(),
            outcome: AttemptOutcome::FailedStatus {
                status,
                class: FailureClass::RateLimited,
                retry_after_secs: None,
                body_preview: String::new(),
            },
            duration_ms: 1,
        }
    }

    #[test]
    fn a_streamed_success_asks_for_its_endpoint_and_a_plain_json_one_does_not() {
        assert_eq!(asks(&record(true), Outcome::Completed), ["a.default"]);
        assert!(asks(&record(false), Outcome::Completed).is_empty());
        assert!(asks(&record(true), Outcome::ClientDisconnected).is_empty());
    }

    #[test]
    fn a_429_asks_for_the_endpoint_that_sent_it() {
        let mut r = record(true);
        r.attempts = vec![attempt("b", 429), attempt("c", 502)];
        assert_eq!(asks(&r, Outcome::Completed), ["a.default", "b.default"]);
    }

    #[test]
    fn every_relay_blocked_asks_for_the_exhausted_and_cooling_ones() {
        let mut r = record(true);
        r.provider = None;
        r.endpoint = None;
        let note = |upstream: &str, skip: Option<Skip>| CandidateNote {
            upstream: upstream.into(),
            group: 0,
            route_path: vec![],
            skip,
        };
        r.decision = Some(RouteDecision {
            graph_key: "g2:x".into(),
            affinity_policy: AffinityPolicy::default(),
            affinity: None,
            relay_bound: false,
            pinned: None,
            overrides: None,
            candidates: vec![
                note(
                    "a.default",
                    Some(Skip::Exhausted {
                        reason: "balance".into(),
                        until_ms: 1,
                        left_ms: 1,
                    }),
                ),
                note("b.default", Some(Skip::Unhealthy(Blocked::Probing))),
                note(
                    "c.default",
                    Some(Skip::MissingCredential {
                        vars: vec!["K".into()],
                    }),
                ),
            ],
            chosen: None,
            why: None,
            affinity_change: None,
        });
        assert_eq!(
            asks(&r, Outcome::AllUpstreamsFailed),
            ["a.default", "b.default"]
        );
    }
}
