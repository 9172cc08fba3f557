//! A request's record while it is in flight ([`RecordGuard`]): finished exactly once, with
//! one structured log line, and handed to the [`RecordSink`]. The record itself is plain data
//! in [`crate::record`].

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use crate::routing::select::Why;

pub use crate::record::{
    Attempt, AttemptOutcome, CandidateNote, NoSink, Outcome, RecordSink, RequestRecord,
    RouteDecision,
};

impl RequestRecord {
    /// Logs the request as one structured line.
    fn log(&self, outcome: Outcome) {
        let usage = self.usage.unwrap_or_default();
        let attempts = self
            .attempts
            .iter()
            .map(Attempt::summary)
            .collect::<Vec<_>>()
            .join("; ");
        tracing::info!(
            target: "codex_helper::request",
            trace_id = %self.trace_id,
            method = %self.method,
            path = %self.path,
            session = self.session.as_ref().map(|s| s.value.as_str()).unwrap_or("-"),
            session_source = %self.session.as_ref().map(|s| s.source.to_string()).unwrap_or_else(|| "-".into()),
            client = self.client.as_deref().unwrap_or("-"),
            user = self.user.as_deref().unwrap_or("-"),
            provider = self.provider.as_deref().unwrap_or("-"),
            endpoint = self.endpoint.as_deref().unwrap_or("-"),
            model = self.model_requested.as_deref().unwrap_or("-"),
            model_sent = self.model_sent.as_deref().or(self.model_requested.as_deref()).unwrap_or("-"),
            streaming = self.streaming,
            status = self.status.unwrap_or(0),
            outcome = outcome.as_str(),
            input_tokens = usage.input_tokens,
            cached_input_tokens = usage.cached_input_tokens,
            output_tokens = usage.output_tokens,
            reasoning_tokens = usage.reasoning_tokens,
            total_tokens = usage.total_tokens,
            ttfb_ms = %self.ttfb.map(millis).unwrap_or_else(|| "-".into()),
            duration_ms = %millis(self.started.elapsed()),
            bytes_out = self.bytes_out,
            attempts = %attempts,
            why = self.decision.as_ref().and_then(|d| d.why).map_or("", Why::as_str),
            affinity_change = %self.decision.as_ref().and_then(|d| d.affinity_change).map(|c| c.to_string()).unwrap_or_default(),
            error = self.error.as_deref().unwrap_or(""),
            "request"
        );
    }
}

/// A request's record while the request is in flight. Finishing it (once) writes the log line
/// and hands the record to the sink; if the request is dropped first (the client went away),
/// it is finished as [`Outcome::ClientDisconnected`], so no request goes unrecorded.
pub struct RecordGuard {
    record: RequestRecord,
    sink: Arc<dyn RecordSink>,
    finished: bool,
}

impl RecordGuard {
    pub fn new(record: RequestRecord, sink: Arc<dyn RecordSink>) -> Self {
        sink.started(&record);
        Self {
            record,
            sink,
            finished: false,
        }
    }

    /// Records the outcome; later calls do nothing.
    pub fn finish(&mut self, outcome: Outcome) {
        if !self.finished {
            self.finished = true;
            self.record.log(outcome);
            self.sink.record(&self.record, outcome);
        }
    }

    /// Tells the sink what is known of the request in flight now (its session and model, once
    /// read): a console's view of it follows.
    pub fn announce(&self) {
        if !self.finished {
            self.sink.started(&self.record);
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The record, not recorded: for a request whose work others carry on and record (a
    /// WebSocket handshake, whose connection records each response on it).
    pub fn unrecorded(mut self) -> RequestRecord {
        self.finished = true;
        self.sink.abandoned(&self.record);
        self.record.clone()
    }
}

impl Deref for RecordGuard {
    type Target = RequestRecord;
    fn deref(&self) -> &RequestRecord {
        &self.record
    }
}

impl DerefMut for RecordGuard {
    fn deref_mut(&mut self) -> &mut RequestRecord {
        &mut self.record
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        self.finish(Outcome::ClientDisconnected);
    }
}

/// Milliseconds with microsecond precision, for log lines.
fn millis(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}
