//! The record sink that counts: every finished request moves the request, attempt, failover
//! and latency series. It reads the finished record on the event loop and only adds to
//! atomics, then hands the record on.

use std::sync::Arc;
use std::time::Duration;

use super::registry::Registry;
use crate::record::{AttemptOutcome, Outcome, RecordSink, RequestRecord};

/// Counts each finished request, then passes it to `inner`.
pub struct MetricsSink {
    registry: Arc<Registry>,
    inner: Arc<dyn RecordSink>,
}

impl MetricsSink {
    pub fn new(registry: Arc<Registry>, inner: Arc<dyn RecordSink>) -> Self {
        Self { registry, inner }
    }
}

impl RecordSink for MetricsSink {
    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome) {
        observe(&self.registry, record, outcome, record.took());
        self.inner.record(record, outcome);
    }

    fn started(&self, record: &RequestRecord) {
        self.inner.started(record);
    }

    fn abandoned(&self, record: &RequestRecord) {
        self.inner.abandoned(record);
    }
}

/// Counts one finished request that took `duration`.
pub fn observe(registry: &Registry, record: &RequestRecord, outcome: Outcome, duration: Duration) {
    let provider = record.provider.as_deref().unwrap_or("");
    let endpoint = record.endpoint.as_deref().unwrap_or("");
    let upstream_ms: u64 = record.attempts.iter().map(|a| a.duration_ms).sum();
    registry.with_endpoint(provider, endpoint, |series| {
        series.count_request(record.status, outcome);
        series.duration.observe(duration);
        if let Some(ttfb) = record.ttfb {
            series.ttfb.observe(ttfb);
            series
                .overhead
                .observe(ttfb.saturating_sub(Duration::from_millis(upstream_ms)));
        }
    });
    for attempt in &record.attempts {
        registry.with_endpoint(&attempt.provider, &attempt.endpoint, |series| {
            series.count_attempt(attempt_result(&attempt.outcome));
        });
    }
    for pair in record.attempts.windows(2) {
        let (from, to) = (&pair[0], &pair[1]);
        if from.provider != to.provider || from.endpoint != to.endpoint {
            registry.with_endpoint(&from.provider, &from.endpoint, |series| {
                series.count_failover();
            });
        }
    }
}

/// The index in `registry::ATTEMPT_RESULTS` of how an attempt ended.
fn attempt_result(outcome: &AttemptOutcome) -> usize {
    match outcome {
        AttemptOutcome::ConnectError { .. } => 0,
        AttemptOutcome::Timeout { .. } => 1,
        AttemptOutcome::TransportError { .. } => 2,
        AttemptOutcome::FailedStatus { .. } => 3,
        AttemptOutcome::FailedStream { .. } => 4,
        AttemptOutcome::Responded { .. } => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::registry::ATTEMPT_RESULTS;
    use crate::metrics::render::{Family, Value};
    use crate::record::Attempt;
    use crate::routing::retry::FailureClass;

    fn attempt(endpoint: &str, outcome: AttemptOutcome, duration_ms: u64) -> Attempt {
        Attempt {
            provider: "p".into(),
            endpoint: endpoint.into(),
            outcome,
            duration_ms,
        }
    }

    fn failed(status: u16) -> AttemptOutcome {
        AttemptOutcome::FailedStatus {
            status,
            class: FailureClass::ServerError,
            retry_after_secs: None,
            body_preview: String::new(),
        }
    }

    fn value(families: &[Family], name: &str, endpoint: &str, extra: &[&str]) -> Option<Value> {
        let family = families.iter().find(|f| f.name == name)?;
        family
            .samples
            .iter()
            .find(|s| {
                s.labels[1].1 == endpoint
                    && extra
                        .iter()
                        .all(|want| s.labels.iter().any(|(_, v)| v == want))
            })
            .map(|s| s.value.clone())
    }

    #[test]
    fn attempt_results_are_the_serde_names() {
        let outcomes = [
            AttemptOutcome::ConnectError { error: "x".into() },
            AttemptOutcome::Timeout { after_ms: 1 },
            AttemptOutcome::TransportError { error: "x".into() },
            failed(502),
            AttemptOutcome::FailedStream {
                status: 200,
                class: FailureClass::ServerError,
                detail: "x".into(),
            },
            AttemptOutcome::Responded { status: 200 },
        ];
        for outcome in outcomes {
            let serde = serde_json::to_value(&outcome).unwrap();
            assert_eq!(
                serde["outcome"].as_str(),
                Some(ATTEMPT_RESULTS[attempt_result(&outcome)]),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn a_failover_moves_both_endpoints_and_the_answering_one_s_request() {
        let registry = Registry::default();
        let mut record = RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into());
        record.provider = Some("p".into());
        record.endpoint = Some("b".into());
        record.status = Some(200);
        record.ttfb = Some(Duration::from_millis(30));
        record.attempts = vec![
            attempt("a", failed(502), 10),
            attempt("a", failed(502), 5),
            attempt("b", AttemptOutcome::Responded { status: 200 }, 12),
        ];
        observe(
            &registry,
            &record,
            Outcome::Completed,
            Duration::from_secs(2),
        );
        let families = registry.families();
        let v = |name, endpoint, extra: &[&str]| value(&families, name, endpoint, extra);
        assert_eq!(
            v("codex_helper_requests_total", "b", &["200", "completed"]),
            Some(Value::Number(1.0))
        );
        assert_eq!(v("codex_helper_requests_total", "a", &[]), None);
        assert_eq!(
            v(
                "codex_helper_upstream_attempts_total",
                "a",
                &["failed_status"]
            ),
            Some(Value::Number(2.0)),
            "a retry on the same endpoint is an attempt, not a failover"
        );
        assert_eq!(
            v("codex_helper_failovers_total", "a", &[]),
            Some(Value::Number(1.0))
        );
        assert_eq!(
            v("codex_helper_failovers_total", "b", &[]),
            Some(Value::Number(0.0))
        );
        // 30 ms to the first byte, 27 of them waiting on attempts: 3 ms of overhead.
        match v("codex_helper_proxy_overhead_seconds", "b", &[]) {
            Some(Value::Histogram { sum, counts, .. }) => {
                assert!((sum - 0.003).abs() < 1e-9, "{sum}");
                assert_eq!(counts.iter().sum::<u64>(), 1);
            }
            other => panic!("{other:?}"),
        }
        match v("codex_helper_request_duration_seconds", "b", &[]) {
            Some(Value::Histogram { sum, .. }) => assert!((sum - 2.0).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_refused_before_routing_counts_under_no_endpoint() {
        let registry = Registry::default();
        let record = RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into());
        observe(&registry, &record, Outcome::Rejected, Duration::ZERO);
        let families = registry.families();
        assert_eq!(
            value(
                &families,
                "codex_helper_requests_total",
                "",
                &["none", "rejected"]
            ),
            Some(Value::Number(1.0))
        );
        // No time to first byte: the histogram stays empty.
        match value(
            &families,
            "codex_helper_time_to_first_byte_seconds",
            "",
            &[],
        ) {
            Some(Value::Histogram { counts, .. }) => assert_eq!(counts.iter().sum::<u64>(), 0),
            other => panic!("{other:?}"),
        }
    }
}
