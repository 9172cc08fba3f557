//! The counters the proxy moves while it serves: plain atomics, so counting on an event loop
//! is a few relaxed additions and never a wait.
//!
//! Per-endpoint series live in fixed arrays indexed by bounded label values (the status code
//! grouped by [`code_label`], the outcome by `Outcome::ALL`, the attempt result by
//! [`ATTEMPT_RESULTS`]), found by a short read lock on the list of endpoints; the list is
//! written only when an endpoint is seen for the first time, and it is capped
//! ([`ENDPOINTS_MAX`], then one `other` series), so no input can grow it without bound.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::render::{Family, Kind, Sample, Value};
use crate::record::Outcome;

/// Endpoints with series of their own at most; the rest share one `other` series.
pub const ENDPOINTS_MAX: usize = 200;
/// The provider and endpoint label of the shared series past [`ENDPOINTS_MAX`].
pub const OTHER: &str = "other";

/// Time to first byte and duration buckets, in seconds: a Responses stream can take minutes.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Proxy overhead buckets, in seconds: normally well under a millisecond.
pub const OVERHEAD_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Status codes that keep their own `code` label value; any other is grouped by its class.
const NAMED_CODES: [u16; 16] = [
    200, 400, 401, 403, 404, 408, 409, 413, 422, 426, 429, 500, 502, 503, 504, 508,
];
/// Label values of the grouped codes, after the named ones.
const CODE_GROUPS: [&str; 7] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other", "none"];
const CODES: usize = NAMED_CODES.len() + CODE_GROUPS.len();

/// Attempt results: the serde names of `record::AttemptOutcome` (checked by a test in
/// `sink.rs`), in the order `sink::attempt_result` indexes them.
pub const ATTEMPT_RESULTS: [&str; 6] = [
    "connect_error",
    "timeout",
    "transport_error",
    "failed_status",
    "failed_stream",
    "responded",
];

/// The `code` label's index for a status: the code itself when it is a named one, else its
/// class (`4xx`), `other` outside 100–599, `none` when no status was sent.
pub fn code_index(status: Option<u16>) -> usize {
    let Some(status) = status else {
        return CODES - 1;
    };
    if let Some(i) = NAMED_CODES.iter().position(|c| *c == status) {
        return i;
    }
    let group = match status / 100 {
        1..=5 => usize::from(status / 100) - 1,
        _ => 5,
    };
    NAMED_CODES.len() + group
}

/// The `code` label value at `index` (see [`code_index`]).
pub fn code_label(index: usize) -> String {
    match NAMED_CODES.get(index) {
        Some(code) => code.to_string(),
        None => CODE_GROUPS[index - NAMED_CODES.len()].to_string(),
    }
}

/// A histogram of durations over fixed buckets.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then one above the last.
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts and sum now, as the text format takes them.
    pub fn value(&self) -> Value {
        Value::Histogram {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A gauge of things open now, moved by [`Tracked`] guards.
#[derive(Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// One more open until the guard is dropped.
    pub fn track(&self) -> Tracked {
        self.0.fetch_add(1, Ordering::Relaxed);
        Tracked(self.0.clone())
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts one in its [`Gauge`] while it lives.
pub struct Tracked(Arc<AtomicI64>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One endpoint's series.
pub struct EndpointSeries {
    pub provider: String,
    pub endpoint: String,
    /// `[code_index * outcomes + outcome_index]`.
    requests: Box<[AtomicU64]>,
    attempts: [AtomicU64; ATTEMPT_RESULTS.len()],
    failovers: AtomicU64,
    pub ttfb: Histogram,
    pub duration: Histogram,
    pub overhead: Histogram,
}

impl EndpointSeries {
    fn new(provider: &str, endpoint: &str) -> Self {
        Self {
            provider: provider.to_string(),
            endpoint: endpoint.to_string(),
            requests: (0..CODES * Outcome::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            attempts: Default::default(),
            failovers: AtomicU64::new(0),
            ttfb: Histogram::new(LATENCY_BUCKETS),
            duration: Histogram::new(LATENCY_BUCKETS),
            overhead: Histogram::new(OVERHEAD_BUCKETS),
        }
    }

    /// A request finished with `status` (as sent to the client) and `outcome`.
    pub fn count_request(&self, status: Option<u16>, outcome: Outcome) {
        let outcome = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        let cell = code_index(status) * Outcome::ALL.len() + outcome;
        self.requests[cell].fetch_add(1, Ordering::Relaxed);
    }

    /// An attempt on this endpoint ended as `ATTEMPT_RESULTS[result]`.
    pub fn count_attempt(&self, result: usize) {
        self.attempts[result].fetch_add(1, Ordering::Relaxed);
    }

    /// A request left this endpoint for another.
    pub fn count_failover(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }

    fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("provider", self.provider.clone()),
            ("endpoint", self.endpoint.clone()),
        ]
    }
}

/// Everything the proxy counts while it serves.
#[derive(Default)]
pub struct Registry {
    /// Client connections open now.
    pub connections: Gauge,
    /// Event-stream (SSE) replies being relayed now.
    pub streams: Gauge,
    /// Client WebSockets being relayed now (from the upgrade to the close).
    pub websockets: Gauge,
    endpoints: RwLock<Vec<EndpointSeries>>,
}

impl Registry {
    /// Runs `f` on the series of `provider`/`endpoint` (made on first sight; past
    /// [`ENDPOINTS_MAX`], the shared `other` series).
    pub fn with_endpoint<R>(
        &self,
        provider: &str,
        endpoint: &str,
        f: impl FnOnce(&EndpointSeries) -> R,
    ) -> R {
        let find = |list: &[EndpointSeries]| {
            list.iter()
                .position(|s| s.endpoint == endpoint && s.provider == provider)
        };
        {
            let list = self
                .endpoints
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = find(&list) {
                return f(&list[i]);
            }
        }
        let mut list = self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let i = match find(&list) {
            Some(i) => i,
            None if list.len() < ENDPOINTS_MAX => {
                list.push(EndpointSeries::new(provider, endpoint));
                list.len() - 1
            }
            None => match list
                .iter()
                .position(|s| s.provider == OTHER && s.endpoint == OTHER)
            {
                Some(i) => i,
                None => {
                    list.push(EndpointSeries::new(OTHER, OTHER));
                    list.len() - 1
                }
            },
        };
        f(&list[i])
    }

    /// Makes sure `provider`/`endpoint` has its series, so a scrape shows them at zero before
    /// the first request (a rate needs a first sample).
    pub fn know(&self, provider: &str, endpoint: &str) {
        self.with_endpoint(provider, endpoint, |_| ());
    }

    /// The request, attempt, latency and open-things families now.
    pub fn families(&self) -> Vec<Family> {
        let mut samples = EndpointSamples::default();
        let list = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for series in list.iter() {
            samples.add(series);
        }
        drop(list);
        let mut families = Vec::from(samples.families());
        families.extend(self.open_things());
        families
    }

    /// The gauges of what is open now.
    fn open_things(&self) -> [Family; 3] {
        let gauge = |name, help, value: i64| Family {
            name,
            help,
            kind: Kind::Gauge,
            samples: vec![number(Vec::new(), value as f64)],
        };
        [
            gauge(
                "codex_helper_active_streams",
                "Event-stream replies being relayed to clients now.",
                self.streams.get(),
            ),
            gauge(
                "codex_helper_active_connections",
                "Client connections to the proxy open now (HTTP; a connection upgraded to a WebSocket counts in codex_helper_active_websockets instead).",
                self.connections.get(),
            ),
            gauge(
                "codex_helper_active_websockets",
                "Client WebSockets (Responses API) being relayed now, from the upgrade to the close.",
                self.websockets.get(),
            ),
        ]
    }
}

/// The per-endpoint samples of a scrape, family by family.
#[derive(Default)]
struct EndpointSamples {
    requests: Vec<Sample>,
    attempts: Vec<Sample>,
    failovers: Vec<Sample>,
    ttfb: Vec<Sample>,
    duration: Vec<Sample>,
    overhead: Vec<Sample>,
}

impl EndpointSamples {
    /// Adds one endpoint's series: counters that are not zero (failovers always, so a rate
    /// has a first sample), and its histograms.
    fn add(&mut self, series: &EndpointSeries) {
        let outcomes = Outcome::ALL.len();
        for (cell, count) in series.requests.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                let mut labels = series.labels();
                labels.push(("code", code_label(cell / outcomes)));
                labels.push(("outcome", Outcome::ALL[cell % outcomes].as_str().into()));
                self.requests.push(number(labels, count as f64));
            }
        }
        for (result, count) in series.attempts.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                let mut labels = series.labels();
                labels.push(("result", ATTEMPT_RESULTS[result].into()));
                self.attempts.push(number(labels, count as f64));
            }
        }
        let failovers = series.failovers.load(Ordering::Relaxed);
        self.failovers
            .push(number(series.labels(), failovers as f64));
        for (histogram, out) in [
            (&series.ttfb, &mut self.ttfb),
            (&series.duration, &mut self.duration),
            (&series.overhead, &mut self.overhead),
        ] {
            out.push(Sample {
                labels: series.labels(),
                value: histogram.value(),
            });
        }
    }

    fn families(self) -> [Family; 6] {
        let family = |name, help, kind, samples| Family {
            name,
            help,
            kind,
            samples,
        };
        [
            family(
                "codex_helper_requests_total",
                "Requests finished, by the endpoint that answered (empty when none did), the status sent to the client (named codes, else their class; `none` when none was sent) and the outcome.",
                Kind::Counter,
                self.requests,
            ),
            family(
                "codex_helper_upstream_attempts_total",
                "Tries against an upstream endpoint, by how each ended.",
                Kind::Counter,
                self.attempts,
            ),
            family(
                "codex_helper_failovers_total",
                "Times a request left this endpoint for another one.",
                Kind::Counter,
                self.failovers,
            ),
            family(
                "codex_helper_time_to_first_byte_seconds",
                "From the request's arrival to the first byte of the relayed reply sent to the client.",
                Kind::Histogram,
                self.ttfb,
            ),
            family(
                "codex_helper_request_duration_seconds",
                "From the request's arrival to the end of its reply.",
                Kind::Histogram,
                self.duration,
            ),
            family(
                "codex_helper_proxy_overhead_seconds",
                "Time to first byte minus the time spent waiting on upstream attempts (whole milliseconds each): what the proxy itself added before the first byte.",
                Kind::Histogram,
                self.overhead,
            ),
        ]
    }
}

/// A counter or gauge sample.
pub fn number(labels: Vec<(&'static str, String)>, value: f64) -> Sample {
    Sample {
        labels,
        value: Value::Number(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_or_grouped_and_bounded() {
        assert_eq!(code_label(code_index(Some(200))), "200");
        assert_eq!(code_label(code_index(Some(429))), "429");
        assert_eq!(code_label(code_index(Some(201))), "2xx");
        assert_eq!(code_label(code_index(Some(418))), "4xx");
        assert_eq!(code_label(code_index(Some(599))), "5xx");
        assert_eq!(code_label(code_index(Some(101))), "1xx");
        assert_eq!(code_label(code_index(Some(999))), "other");
        assert_eq!(code_label(code_index(None)), "none");
        let all: std::collections::HashSet<usize> =
            (0..1000).map(|c| code_index(Some(c))).collect();
        assert!(all.len() < CODES, "{} label values", all.len());
    }

    #[test]
    fn histogram_puts_each_value_in_its_bucket() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(100));
        h.observe(Duration::from_millis(101));
        h.observe(Duration::from_secs(5));
        match h.value() {
            Value::Histogram { counts, sum, .. } => {
                assert_eq!(counts, vec![1, 1, 1]);
                assert!((sum - 5.201).abs() < 1e-9, "{sum}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_gauge_counts_what_its_guards_hold() {
        let gauge = Gauge::default();
        let a = gauge.track();
        let b = gauge.track();
        assert_eq!(gauge.get(), 2);
        drop(a);
        drop(b);
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn endpoints_past_the_cap_share_one_series() {
        let registry = Registry::default();
        for i in 0..ENDPOINTS_MAX + 50 {
            registry.with_endpoint("p", &format!("e{i}"), |s| s.count_failover());
        }
        let families = registry.families();
        let failovers = &families[2].samples;
        assert_eq!(failovers.len(), ENDPOINTS_MAX + 1);
        let other = failovers
            .iter()
            .find(|s| s.labels[0].1 == OTHER)
            .expect("an other series");
        assert_eq!(other.value, Value::Number(50.0));
    }

    #[test]
    fn only_requests_seen_have_a_series() {
        let registry = Registry::default();
        registry.know("a", "default");
        registry.with_endpoint("a", "default", |s| {
            s.count_request(Some(200), Outcome::Completed);
            s.count_request(Some(200), Outcome::Completed);
            s.count_request(None, Outcome::ClientDisconnected);
        });
        let families = registry.families();
        let requests: Vec<_> = families[0]
            .samples
            .iter()
            .map(|s| (s.labels.clone(), s.value.clone()))
            .collect();
        let labels = |code: &str, outcome: &str| {
            vec![
                ("provider", "a".to_string()),
                ("endpoint", "default".to_string()),
                ("code", code.to_string()),
                ("outcome", outcome.to_string()),
            ]
        };
        assert_eq!(
            requests,
            vec![
                (labels("200", "completed"), Value::Number(2.0)),
                (labels("none", "client_disconnected"), Value::Number(1.0)),
            ]
        );
    }
}
