//! One ledger row: a finished request, flattened, priced, without bodies or secrets.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pricing::{Cost, PriceBook};
use crate::record::{AttemptOutcome, Outcome, RequestRecord};
use crate::routing::retry::FailureClass;

/// A request as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub trace_id: String,
    pub started_ms: u64,
    pub session_id: Option<String>,
    pub session_source: Option<String>,
    pub thread_id: Option<String>,
    pub client: Option<String>,
    pub method: String,
    pub path: String,
    pub streaming: bool,
    pub model_requested: Option<String>,
    pub model_sent: Option<String>,
    pub model_answered: Option<String>,
    /// The Codex client preset in effect (set once presets exist).
    pub preset: Option<String>,
    pub provider: Option<String>,
    pub endpoint: Option<String>,
    pub status: Option<u16>,
    pub outcome: String,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub attempts_json: String,
    pub decision_json: Option<String>,
    pub input_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub ttfb_ms: Option<f64>,
    pub duration_ms: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub cost_usd: Option<f64>,
    pub price_source: Option<String>,
    /// The service tier the response reported (`response.service_tier`).
    pub service_tier: Option<String>,
    /// The provider's `price_multiplier` the cost was computed with (`None` in rows recorded
    /// before it was kept, and in imported ones).
    pub price_multiplier: Option<f64>,
    /// The team member whose key the request carried (team mode).
    pub user: Option<String>,
}

impl LedgerRow {
    /// Flattens a finished request and prices it by the model actually sent. `duration` is
    /// measured when the request finished: rows are built later, on the writer thread.
    pub fn from_record(
        record: &RequestRecord,
        outcome: Outcome,
        duration: Duration,
        prices: &PriceBook,
    ) -> Self {
        let usage = record.usage;
        let cost = priced(record, prices);
        Self {
            trace_id: record.trace_id.clone(),
            started_ms: record.started_at_ms,
            session_id: record.session.as_ref().map(|s| s.value.clone()),
            session_source: record.session.as_ref().map(|s| s.source.to_string()),
            thread_id: record.thread_id.clone(),
            client: record.client.clone(),
            method: record.method.clone(),
            path: record.path.clone(),
            streaming: record.streaming,
            model_requested: record.model_requested.clone(),
            model_sent: record.model_sent.clone(),
            model_answered: record.model_answered.clone(),
            preset: record.preset.map(str::to_string),
            provider: record.provider.clone(),
            endpoint: record.endpoint.clone(),
            status: record.status,
            outcome: outcome.as_str().to_string(),
            error_class: error_class(record, outcome),
            error: record.error.clone(),
            attempts_json: serde_json::to_string(&record.attempts).unwrap_or_else(|_| "[]".into()),
            decision_json: record
                .decision
                .as_ref()
                .and_then(|d| serde_json::to_string(d).ok()),
            input_tokens: usage.map(|u| u.input_tokens),
            cached_input_tokens: usage.map(|u| u.cached_input_tokens),
            output_tokens: usage.map(|u| u.output_tokens),
            reasoning_tokens: usage.map(|u| u.reasoning_tokens),
            total_tokens: usage.map(|u| u.total_tokens),
            ttfb_ms: record.ttfb.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms: duration.as_secs_f64() * 1000.0,
            bytes_in: record.bytes_in,
            bytes_out: record.bytes_out,
            cost_usd: cost.as_ref().map(|c| c.usd),
            price_source: cost.map(|c| c.source),
            service_tier: record.service_tier.clone(),
            price_multiplier: Some(record.price_multiplier),
            user: record.user.as_deref().map(str::to_string),
        }
    }
}

/// The cost of `record`'s usage, priced by the model actually sent (else the one asked for).
fn priced(record: &RequestRecord, prices: &PriceBook) -> Option<Cost> {
    let model = record
        .model_sent
        .as_deref()
        .or(record.model_requested.as_deref())?;
    prices.cost_in_tier(
        model,
        &record.usage?,
        record.price_multiplier,
        record.service_tier.as_deref(),
    )
}

/// Why a request that did not complete failed: the class of its last failed attempt, or the
/// outcome's own name when no attempt failed (a client that went away, a refusal).
fn error_class(record: &RequestRecord, outcome: Outcome) -> Option<String> {
    if outcome == Outcome::Completed {
        return None;
    }
    let last_failure = record.attempts.iter().rev().find_map(|a| match &a.outcome {
        AttemptOutcome::FailedStatus { class, .. } | AttemptOutcome::FailedStream { class, .. } => {
            Some(*class)
        }
        AttemptOutcome::ConnectError { .. } => Some(FailureClass::Connect),
        AttemptOutcome::Timeout { .. } => Some(FailureClass::HeaderTimeout),
        AttemptOutcome::TransportError { .. } => Some(FailureClass::Transport),
        AttemptOutcome::Responded { .. } => None,
    });
    Some(
        last_failure
            .map_or(outcome.as_str(), FailureClass::as_str)
            .to_string(),
    )
}
