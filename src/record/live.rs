//! What is happening now: the requests in flight and the last finished ones, kept in memory
//! for the admin API's snapshot (the ledger has the history; this has the present, including
//! what the ledger does not store, such as the model asked for beside the model sent).
//!
//! [`LiveRequests`] is the outermost record sink: it sees every request start and end, and
//! passes finished records on. Bounded: at most [`ACTIVE_MAX`] requests in flight are tracked
//! and the last [`RECENT_MAX`] finished ones kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{Outcome, RecordSink, RequestRecord};

/// Requests in flight tracked at most (past it, new ones are not shown until some end).
pub const ACTIVE_MAX: usize = 10_000;
/// Finished requests kept.
pub const RECENT_MAX: usize = 200;

/// A request in flight, as a console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Active {
    pub trace_id: String,
    pub started_at_ms: u64,
    pub method: String,
    pub path: String,
    pub session: Option<String>,
    pub model_requested: Option<String>,
    pub streaming: bool,
}

/// A finished request, as a console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finished {
    pub trace_id: String,
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub method: String,
    pub path: String,
    pub session: Option<String>,
    /// The team member whose key the request carried (team mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub provider: Option<String>,
    pub endpoint: Option<String>,
    pub model_requested: Option<String>,
    pub model_sent: Option<String>,
    pub status: Option<u16>,
    pub outcome: Outcome,
    pub attempts: usize,
    pub input_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub error: Option<String>,
}

#[derive(Default)]
struct Live {
    active: HashMap<String, Active>,
    recent: VecDeque<Finished>,
}

/// The sink that keeps the present and passes finished records to `inner`.
pub struct LiveRequests {
    inner: Arc<dyn RecordSink>,
    live: Mutex<Live>,
}

impl LiveRequests {
    pub fn new(inner: Arc<dyn RecordSink>) -> Self {
        Self {
            inner,
            live: Mutex::new(Live::default()),
        }
    }

    /// The requests in flight (oldest first) and the finished ones (newest first).
    pub fn snapshot(&self) -> (Vec<Active>, Vec<Finished>) {
        let live = self.live.lock().expect("live requests lock");
        let mut active: Vec<Active> = live.active.values().cloned().collect();
        active.sort_by_key(|a| a.started_at_ms);
        (active, live.recent.iter().cloned().collect())
    }
}

impl RecordSink for LiveRequests {
    fn started(&self, record: &RequestRecord) {
        let mut live = self.live.lock().expect("live requests lock");
        // Called again as the request becomes known: the entry is replaced.
        if live.active.len() < ACTIVE_MAX || live.active.contains_key(&record.trace_id) {
            live.active.insert(
                record.trace_id.clone(),
                Active {
                    trace_id: record.trace_id.clone(),
                    started_at_ms: record.started_at_ms,
                    method: record.method.clone(),
                    path: record.path.clone(),
                    session: record.session.as_ref().map(|s| s.value.clone()),
                    model_requested: record.model_requested.clone(),
                    streaming: record.streaming,
                },
            );
        }
    }

    fn abandoned(&self, record: &RequestRecord) {
        let mut live = self.live.lock().expect("live requests lock");
        live.active.remove(&record.trace_id);
    }

    fn record(&self, record: &RequestRecord, outcome: Outcome) {
        let usage = record.usage.as_ref();
        let finished = Finished {
            trace_id: record.trace_id.clone(),
            started_at_ms: record.started_at_ms,
            duration_ms: millis(record.started.elapsed()),
            ttfb_ms: record.ttfb.map(millis),
            method: record.method.clone(),
            path: record.path.clone(),
            session: record.session.as_ref().map(|s| s.value.clone()),
            user: record.user.as_deref().map(str::to_string),
            provider: record.provider.clone(),
            endpoint: record.endpoint.clone(),
            model_requested: record.model_requested.clone(),
            model_sent: record.model_sent.clone(),
            status: record.status,
            outcome,
            attempts: record.attempts.len(),
            input_tokens: usage.map(|u| u.input_tokens),
            cached_input_tokens: usage.map(|u| u.cached_input_tokens),
            output_tokens: usage.map(|u| u.output_tokens),
            error: record.error.clone(),
        };
        {
            let mut live = self.live.lock().expect("live requests lock");
            live.active.remove(&record.trace_id);
            if live.recent.len() == RECENT_MAX {
                live.recent.pop_back();
            }
            live.recent.push_front(finished);
        }
        self.inner.record(record, outcome);
    }
}

fn millis(d: std::time::Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NoSink;

    fn record(trace: &str) -> RequestRecord {
        let mut record = RequestRecord::new(trace.into(), "POST".into(), "/v1/responses".into());
        record.model_requested = Some("gpt-5.1".into());
        record
    }

    #[test]
    fn a_request_is_active_until_it_ends_then_recent_newest_first() {
        let live = LiveRequests::new(Arc::new(NoSink));
        live.started(&record("a"));
        live.started(&record("b"));
        assert_eq!(live.snapshot().0.len(), 2);
        let mut done = record("a");
        done.model_sent = Some("relay-model".into());
        done.provider = Some("main".into());
        live.record(&done, Outcome::Completed);
        live.abandoned(&record("b"));
        let (active, recent) = live.snapshot();
        assert!(active.is_empty());
        assert_eq!(recent.len(), 1);
        assert_eq!(
            (
                recent[0].model_requested.as_deref(),
                recent[0].model_sent.as_deref()
            ),
            (Some("gpt-5.1"), Some("relay-model"))
        );
    }

    #[test]
    fn the_finished_ones_are_bounded() {
        let live = LiveRequests::new(Arc::new(NoSink));
        for n in 0..RECENT_MAX + 5 {
            let r = record(&n.to_string());
            live.started(&r);
            live.record(&r, Outcome::Completed);
        }
        let (_, recent) = live.snapshot();
        assert_eq!(recent.len(), RECENT_MAX);
        assert_eq!(
            recent[0].trace_id,
            (RECENT_MAX + 4).to_string(),
            "newest first"
        );
    }
}
