//! Which events a finished request, or a change in which relays are out of balance, makes
//! (pure: plain records in, events out; the caller gives the time).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{Event, EventKind};
use crate::record::{AttemptOutcome, Outcome, RequestRecord};

/// The events of one finished request: a failover (a relay failed it, another answered), or
/// an all-blocked answer (no relay could take it; the proxy answered itself).
pub fn events_of(record: &RequestRecord, outcome: Outcome, now_ms: u64) -> Vec<Event> {
    let session = record.session.as_ref().map(|s| s.value.clone());
    match outcome {
        Outcome::AllUpstreamsFailed | Outcome::ContinuityBroken => {
            vec![all_blocked(record, outcome, session, now_ms)]
        }
        Outcome::Rejected => Vec::new(),
        _ => failover(record, session, now_ms).into_iter().collect(),
    }
}

fn failover(record: &RequestRecord, session: Option<String>, now_ms: u64) -> Option<Event> {
    let answered = format!(
        "{}.{}",
        record.provider.as_ref()?,
        record.endpoint.as_ref()?
    );
    let failed: Vec<_> = record
        .attempts
        .iter()
        .filter(|a| !matches!(a.outcome, AttemptOutcome::Responded { .. }))
        .filter(|a| format!("{}.{}", a.provider, a.endpoint) != answered)
        .collect();
    let first = failed.first()?;
    let relay = format!("{}.{}", first.provider, first.endpoint);
    let summaries: Vec<String> = failed.iter().map(|a| a.summary()).collect();
    Some(Event {
        kind: EventKind::Failover,
        title: format!("codex-helper: failover from {relay}"),
        message: format!("{}; answered by {answered}", summaries.join("; ")),
        relay: Some(relay),
        at_ms: now_ms,
        suppressed: 0,
        details: json!({
            "trace_id": record.trace_id,
            "session": session,
            "path": record.path,
            "failed": summaries,
            "answered_by": answered,
        }),
    })
}

fn all_blocked(
    record: &RequestRecord,
    outcome: Outcome,
    session: Option<String>,
    now_ms: u64,
) -> Event {
    let mut reasons: Vec<String> = record.attempts.iter().map(|a| a.summary()).collect();
    if let Some(decision) = &record.decision {
        reasons.extend(decision.candidates.iter().filter_map(|c| {
            let skip = c.skip.as_ref()?;
            (!matches!(skip, crate::routing::select::Skip::Tried))
                .then(|| format!("{}: {}", c.upstream, skip.describe()))
        }));
    }
    let why = if reasons.is_empty() {
        "no relay is configured for it".to_string()
    } else {
        reasons.join("; ")
    };
    Event {
        kind: EventKind::AllBlocked,
        relay: None,
        title: "codex-helper: no relay could answer".into(),
        message: format!("{} {}: {why}", record.method, record.path),
        at_ms: now_ms,
        suppressed: 0,
        details: json!({
            "trace_id": record.trace_id,
            "session": session,
            "path": record.path,
            "outcome": outcome.as_str(),
            "status": record.status,
            "reasons": reasons,
        }),
    }
}

/// The relays out of balance now (`provider.endpoint` → why) that were not at the last look:
/// one event each.
pub fn newly_exhausted(
    before: &BTreeSet<String>,
    now: &BTreeMap<String, String>,
    now_ms: u64,
) -> Vec<Event> {
    now.iter()
        .filter(|(relay, _)| !before.contains(*relay))
        .map(|(relay, why)| Event {
            kind: EventKind::RelayExhausted,
            relay: Some(relay.clone()),
            title: format!("codex-helper: {relay} is out of balance"),
            message: format!("{relay} is taken out of routing: {why}"),
            at_ms: now_ms,
            suppressed: 0,
            details: json!({ "reason": why }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::AffinityPolicy;
    use crate::record::{Attempt, CandidateNote, RouteDecision};
    use crate::routing::health::Blocked;
    use crate::routing::retry::FailureClass;
    use crate::routing::select::Skip;

    fn attempt(provider: &str, outcome: AttemptOutcome) -> Attempt {
        Attempt {
            provider: provider.into(),
            endpoint: "default".into(),
            outcome,
            duration_ms: 3,
        }
    }

    fn failed(provider: &str, status: u16) -> Attempt {
        attempt(
            provider,
            AttemptOutcome::FailedStatus {
                status,
                class: FailureClass::ServerError,
                retry_after_secs: None,
                body_preview: "secret body".into(),
            },
        )
    }

    fn record() -> RequestRecord {
        RequestRecord::new("t-9".into(), "POST".into(), "/v1/responses".into())
    }

    /// A request that `a` failed with a 502 and `by` answered.
    fn answered_by(by: &str) -> RequestRecord {
        let mut r = record();
        r.provider = Some(by.into());
        r.endpoint = Some("default".into());
        r.attempts = vec![
            failed("a", 502),
            attempt(by, AttemptOutcome::Responded { status: 200 }),
        ];
        r
    }

    #[test]
    fn a_request_answered_by_another_relay_is_a_failover() {
        let r = answered_by("b");
        let events = events_of(&r, Outcome::Completed, 7);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.kind, e.relay.as_deref(), e.at_ms),
            (EventKind::Failover, Some("a.default"), 7)
        );
        assert_eq!(e.message, "a/default: HTTP 502; answered by b.default");
        assert_eq!(e.details["trace_id"], "t-9");
        assert!(!e.to_json().contains("secret body"));
    }

    #[test]
    fn retries_on_the_same_relay_and_plain_answers_are_not_failovers() {
        let mut r = answered_by("a");
        assert!(events_of(&r, Outcome::Completed, 0).is_empty());
        r.attempts.clear();
        assert!(events_of(&r, Outcome::Completed, 0).is_empty());
        assert!(events_of(&r, Outcome::Rejected, 0).is_empty());
    }

    #[test]
    fn an_answer_from_the_proxy_itself_is_all_blocked_with_each_reason() {
        let mut r = record();
        r.status = Some(503);
        r.attempts = vec![failed("a", 500)];
        r.decision = Some(RouteDecision {
            graph_key: "g2:x".into(),
            affinity_policy: AffinityPolicy::default(),
            affinity: None,
            relay_bound: false,
            pinned: None,
            overrides: None,
            candidates: vec![
                CandidateNote {
                    upstream: "a.default".into(),
                    group: 0,
                    route_path: vec![],
                    skip: Some(Skip::Tried),
                },
                CandidateNote {
                    upstream: "b.default".into(),
                    group: 0,
                    route_path: vec![],
                    skip: Some(Skip::Unhealthy(Blocked::Probing)),
                },
            ],
            chosen: None,
            why: None,
            affinity_change: None,
        });
        let events = events_of(&r, Outcome::AllUpstreamsFailed, 1);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!((e.kind, e.relay.as_deref()), (EventKind::AllBlocked, None));
        assert_eq!(
            e.message,
            "POST /v1/responses: a/default: HTTP 500; b.default: being probed after its cooldown"
        );
        assert_eq!(e.details["outcome"], "all_upstreams_failed");
    }

    #[test]
    fn only_relays_newly_out_of_balance_make_events() {
        let before: BTreeSet<String> = ["a.x".to_string()].into();
        let now: BTreeMap<String, String> = [
            ("a.x".to_string(), "balance 0".to_string()),
            ("b.x".to_string(), "quota".to_string()),
        ]
        .into();
        let events = newly_exhausted(&before, &now, 3);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].relay.as_deref(), Some("b.x"));
        assert_eq!(events[0].message, "b.x is taken out of routing: quota");
    }
}
