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
        let session = record.session.as_ref().map(|s| &s.value);
        // Called again as the request becomes known: the entry takes what changed, and only
        // that is copied.
        if let Some(active) = live.active.get_mut(&record.trace_id) {
            set_if_changed(&mut active.method, &record.method);
            set_if_changed(&mut active.path, &record.path);
            if active.session.as_ref() != session {
                active.session = session.cloned();
            }
            if active.model_requested != record.model_requested {
                active.model_requested = record.model_requested.clone();
            }
            active.streaming = record.streaming;
        } else if live.active.len() < ACTIVE_MAX {
            live.active.insert(
                record.trace_id.clone(),
                Active {
                    trace_id: record.trace_id.clone(),
                    started_at_ms: record.started_at_ms,
                    method: record.method.clone(),
                    path: record.path.clone(),
                    session: session.cloned(),
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

    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome) {
        {
            let mut live = self.live.lock().expect("live requests lock");
            let active = live.active.remove(&record.trace_id);
            let finished = Finished::of(record, outcome, active);
            if live.recent.len() == RECENT_MAX {
                live.recent.pop_back();
            }
            live.recent.push_front(finished);
        }
        self.inner.record(record, outcome);
    }
}

impl Finished {
    /// The finished request, made from its record and its entry while in flight, whose
    /// strings are taken where they still say the same (most requests copy none of them).
    fn of(record: &RequestRecord, outcome: Outcome, active: Option<Active>) -> Self {
        let (trace_id, method, path, session, model_requested) = match active {
            Some(a) => (
                Some(a.trace_id),
                Some(a.method),
                Some(a.path),
                a.session,
                a.model_requested,
            ),
            None => (None, None, None, None, None),
        };
        let usage = record.usage.as_ref();
        Finished {
            trace_id: reuse(trace_id, &record.trace_id),
            started_at_ms: record.started_at_ms,
            duration_ms: millis(record.took()),
            ttfb_ms: record.ttfb.map(millis),
            method: reuse(method, &record.method),
            path: reuse(path, &record.path),
            session: record.session.as_ref().map(|s| reuse(session, &s.value)),
            user: record.user.as_deref().map(str::to_string),
            provider: record.provider.clone(),
            endpoint: record.endpoint.clone(),
            model_requested: record
                .model_requested
                .as_deref()
                .map(|m| reuse(model_requested, m)),
            model_sent: record.model_sent.clone(),
            status: record.status,
            outcome,
            attempts: record.attempts.len(),
            input_tokens: usage.map(|u| u.input_tokens),
            cached_input_tokens: usage.map(|u| u.cached_input_tokens),
            output_tokens: usage.map(|u| u.output_tokens),
            error: record.error.clone(),
        }
    }
}

/// `kept` if it still says `now`, else a copy of `now`.
fn reuse(kept: Option<String>, now: &str) -> String {
    match kept {
        Some(kept) if kept == now => kept,
        _ => now.to_string(),
    }
}

/// Copies `value` into `slot` only if it differs (the usual case is that it does not).
fn set_if_changed(slot: &mut String, value: &str) {
    if slot != value {
        value.clone_into(slot);
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
        live.record(&Arc::new(done), Outcome::Completed);
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
    fn a_request_announced_again_shows_what_it_learnt_and_finishes_with_the_record_s_values() {
        let live = LiveRequests::new(Arc::new(NoSink));
        let mut r = RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into());
        live.started(&r);
        r.model_requested = Some("gpt-5.1".into());
        r.session = Some(crate::record::session::SessionId {
            value: "s-1".into(),
            source: crate::record::session::SessionSource::Header("session-id"),
        });
        r.streaming = true;
        live.started(&r);
        let (active, _) = live.snapshot();
        assert_eq!(active.len(), 1, "one entry, replaced");
        assert_eq!(
            (
                active[0].model_requested.as_deref(),
                active[0].session.as_deref(),
                active[0].streaming
            ),
            (Some("gpt-5.1"), Some("s-1"), true)
        );
        // Changed after the last announcement: the finished entry has the record's values.
        r.model_requested = Some("gpt-5.4".into());
        r.path = "/v1/responses/compact".into();
        live.record(&Arc::new(r), Outcome::Completed);
        let (active, recent) = live.snapshot();
        assert!(active.is_empty());
        assert_eq!(
            (
                recent[0].trace_id.as_str(),
                recent[0].path.as_str(),
                recent[0].session.as_deref(),
                recent[0].model_requested.as_deref()
            ),
            ("t", "/v1/responses/compact", Some("s-1"), Some("gpt-5.4"))
        );
    }

    #[test]
    fn the_finished_ones_are_bounded() {
        let live = LiveRequests::new(Arc::new(NoSink));
        for n in 0..RECENT_MAX + 5 {
            let r = record(&n.to_string());
            live.started(&r);
            live.record(&Arc::new(r), Outcome::Completed);
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
