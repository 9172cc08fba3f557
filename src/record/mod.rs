//! What happened to one request, as plain data: the attempts, the route decision, the outcome,
//! the tokens. The proxy fills a [`RequestRecord`] in (and logs it); the ledger stores it. A
//! layer under both, so the ledger does not depend on the proxy.

pub mod live;
pub mod session;
pub mod usage;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::model::AffinityPolicy;
use crate::routing::affinity::AffinityChange;
use crate::routing::retry::FailureClass;
use crate::routing::select::{Skip, Why};

use session::SessionId;
use usage::Usage;

/// Receives every finished request (the log line is written regardless). The ledger is one;
/// tests use one to look at what the proxy recorded.
pub trait RecordSink: Send + Sync {
    /// A request finished (exactly once per request that started, unless abandoned). The
    /// record is shared: a sink that keeps it (the ledger's queue) keeps the `Arc`, not a copy.
    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome);
    /// A request started: its record so far. Only a sink that shows what is in flight cares.
    fn started(&self, record: &RequestRecord) {
        let _ = record;
    }
    /// A started request that will not be recorded (its work is recorded elsewhere).
    fn abandoned(&self, record: &RequestRecord) {
        let _ = record;
    }
}

/// A sink that keeps nothing.
pub struct NoSink;

impl RecordSink for NoSink {
    fn record(&self, _: &Arc<RequestRecord>, _: Outcome) {}
}

/// How one try against one upstream ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// No connection could be opened.
    ConnectError { error: String },
    /// No response headers in time.
    Timeout { after_ms: u64 },
    /// The connection broke before response headers.
    TransportError { error: String },
    /// A status that is retried or failed over (5xx, 429, 401/403, unsupported model, …).
    FailedStatus {
        status: u16,
        class: FailureClass,
        retry_after_secs: Option<u64>,
        body_preview: String,
    },
    /// A 2xx event stream that failed before its first real event.
    FailedStream {
        status: u16,
        class: FailureClass,
        detail: String,
    },
    /// A response that was passed to the client.
    Responded { status: u16 },
}

/// One candidate tried (or skipped) for a request.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub provider: String,
    pub endpoint: String,
    #[serde(flatten)]
    pub outcome: AttemptOutcome,
    pub duration_ms: u64,
}

impl Attempt {
    /// A short human description, e.g. `relay-a/default: HTTP 502`.
    pub fn summary(&self) -> String {
        Summary(self).to_string()
    }
}

/// [`Attempt::summary`], written where it is formatted (the log line) instead of built first.
pub struct Summary<'a>(pub &'a Attempt);

impl std::fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attempt = self.0;
        write!(f, "{}/{}: ", attempt.provider, attempt.endpoint)?;
        match &attempt.outcome {
            AttemptOutcome::ConnectError { error } => write!(f, "connect error: {error}"),
            AttemptOutcome::Timeout { after_ms } => {
                write!(f, "no response headers within {after_ms} ms")
            }
            AttemptOutcome::TransportError { error } => write!(f, "connection error: {error}"),
            AttemptOutcome::FailedStatus { status, .. } | AttemptOutcome::Responded { status } => {
                write!(f, "HTTP {status}")
            }
            AttemptOutcome::FailedStream { detail, .. } => f.write_str(detail),
        }
    }
}

/// How the request ended for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The upstream response reached its end.
    Completed,
    /// A 2xx stream whose last event was a failure (`response.failed`, `error`).
    FailedInStream,
    /// An event stream that closed cleanly but without `response.completed` (or another
    /// terminal event); Codex reports "stream closed before response.completed" and retries.
    EndedWithoutTerminalEvent,
    /// The upstream stream broke or stalled; the proxy ended it with `response.failed`.
    UpstreamStreamError,
    /// The client went away before the end.
    ClientDisconnected,
    /// Every candidate failed or was unavailable; the proxy answered itself.
    AllUpstreamsFailed,
    /// The session's endpoint was unavailable and the request could not go elsewhere.
    ContinuityBroken,
    /// The request was refused before any upstream was tried (bad body, no relay).
    Rejected,
}

impl Outcome {
    /// Every outcome (keep in step with the enum: the name test walks this list).
    pub const ALL: [Outcome; 8] = [
        Self::Completed,
        Self::FailedInStream,
        Self::EndedWithoutTerminalEvent,
        Self::UpstreamStreamError,
        Self::ClientDisconnected,
        Self::AllUpstreamsFailed,
        Self::ContinuityBroken,
        Self::Rejected,
    ];

    /// The stored and logged name: exactly the serde name (the ledger's `outcome` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::FailedInStream => "failed_in_stream",
            Self::EndedWithoutTerminalEvent => "ended_without_terminal_event",
            Self::UpstreamStreamError => "upstream_stream_error",
            Self::ClientDisconnected => "client_disconnected",
            Self::AllUpstreamsFailed => "all_upstreams_failed",
            Self::ContinuityBroken => "continuity_broken",
            Self::Rejected => "rejected",
        }
    }
}

/// The record of one proxied request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub trace_id: String,
    pub started: Instant,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_at_ms: u64,
    pub method: String,
    pub path: String,
    pub streaming: bool,
    pub session: Option<SessionId>,
    /// Codex's `thread-id` header (differs from the session for sub-agents).
    pub thread_id: Option<String>,
    pub client: Option<String>,
    /// The team member whose key the request carried (team mode, [`crate::proxy::members`]).
    pub user: Option<std::sync::Arc<str>>,
    pub model_requested: Option<String>,
    /// After model mapping.
    pub model_sent: Option<String>,
    /// As the response says (`response.model`).
    pub model_answered: Option<String>,
    /// The service tier the response says it was processed in (`response.service_tier`),
    /// which prices it (see `ledger::pricing`).
    pub service_tier: Option<String>,
    /// The chosen provider's `price_multiplier`.
    pub price_multiplier: f64,
    /// Request body bytes as received.
    pub bytes_in: u64,
    /// The preset the client was switched to, by its stored name (`Preset::as_str`).
    pub preset: Option<&'static str>,
    pub provider: Option<String>,
    pub endpoint: Option<String>,
    pub status: Option<u16>,
    pub attempts: Vec<Attempt>,
    pub ttfb: Option<Duration>,
    pub usage: Option<Usage>,
    pub bytes_out: u64,
    pub error: Option<String>,
    /// How the route was chosen; `None` for requests refused before routing.
    pub decision: Option<RouteDecision>,
    /// How long the request took, set when it finished: its log line and sinks may run a
    /// moment later ([`RequestRecord::took`]).
    pub duration: Option<Duration>,
}

/// How a request's route was chosen: what was considered, what was skipped and why, and what
/// happened to the session's affinity.
#[derive(Debug, Clone, Serialize)]
pub struct RouteDecision {
    pub graph_key: String,
    pub affinity_policy: AffinityPolicy,
    /// The endpoint the session was bound to before this request.
    pub affinity: Option<String>,
    /// The request carried state only its relay can read.
    pub relay_bound: bool,
    /// The route target the session was pinned to (its candidates are that target's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// What the session's overrides or a profile changed in the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides: Option<OverrideNote>,
    /// Every candidate, in order, with why it was skipped when the request started.
    pub candidates: Vec<CandidateNote>,
    pub chosen: Option<String>,
    pub why: Option<Why>,
    /// Set when the session's affinity was created or moved by this request.
    pub affinity_change: Option<AffinityChange>,
}

/// What the session's overrides changed in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideNote {
    /// The profile applied to the session, or the default profile when it filled something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The fields changed: `model`, `reasoning_effort`, `service_tier`.
    pub changed: Vec<&'static str>,
}

/// One candidate as the decision saw it.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateNote {
    pub upstream: String,
    pub group: usize,
    pub route_path: Vec<String>,
    pub skip: Option<Skip>,
}

impl RequestRecord {
    pub fn new(trace_id: String, method: String, path: String) -> Self {
        Self {
            trace_id,
            started: Instant::now(),
            started_at_ms: crate::time::now_ms(),
            method,
            path,
            streaming: false,
            session: None,
            thread_id: None,
            client: None,
            user: None,
            model_requested: None,
            model_sent: None,
            model_answered: None,
            service_tier: None,
            price_multiplier: 1.0,
            bytes_in: 0,
            preset: None,
            provider: None,
            endpoint: None,
            status: None,
            attempts: Vec::new(),
            ttfb: None,
            usage: None,
            bytes_out: 0,
            error: None,
            decision: None,
            duration: None,
        }
    }

    /// How long the request took: until it finished, or until now while it is in flight.
    pub fn took(&self) -> Duration {
        self.duration.unwrap_or_else(|| self.started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_are_the_serde_names() {
        for outcome in Outcome::ALL {
            let serde = serde_json::to_value(outcome).unwrap();
            assert_eq!(serde.as_str(), Some(outcome.as_str()), "{outcome:?}");
        }
    }
}
