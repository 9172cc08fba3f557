//! A request's record while it is in flight ([`RecordGuard`]): finished exactly once, with
//! one structured log line, and handed to the [`RecordSink`]. The record itself is plain data
//! in [`crate::record`].

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use crate::routing::Upstream;
use crate::routing::select::Why;

pub use crate::record::{
    Attempt, AttemptOutcome, CandidateNote, NoSink, Outcome, RecordSink, RequestRecord,
    RouteDecision,
};

/// One try on `upstream`, as the record lists it.
pub fn attempt_on(upstream: &Upstream, outcome: AttemptOutcome, duration_ms: u64) -> Attempt {
    Attempt {
        provider: upstream.provider.clone(),
        endpoint: upstream.endpoint.clone(),
        outcome,
        duration_ms,
    }
}

impl RequestRecord {
    /// Logs the request as one structured line.
    fn log(&self, outcome: Outcome) {
        let usage = self.usage.unwrap_or_default();
        let decision = self.decision.as_ref();
        tracing::info!(
            target: "codex_helper::request",
            trace_id = %self.trace_id,
            method = %self.method,
            path = %self.path,
            session = self.session.as_ref().map(|s| s.value.as_str()).unwrap_or("-"),
            session_source = %Shown(self.session.as_ref().map(|s| &s.source), "-"),
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
            ttfb_ms = %Millis(self.ttfb),
            duration_ms = %Millis(Some(self.took())),
            bytes_out = self.bytes_out,
            attempts = %Summaries(&self.attempts),
            why = decision.and_then(|d| d.why).map_or("", Why::as_str),
            affinity_change = %Shown(decision.and_then(|d| d.affinity_change), ""),
            error = self.error.as_deref().unwrap_or(""),
            "request"
        );
    }
}

/// Milliseconds with microsecond precision (`-` for none), formatted into the log line directly.
struct Millis(Option<Duration>);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => write!(f, "{:.3}", d.as_secs_f64() * 1000.0),
            None => f.write_str("-"),
        }
    }
}

/// Attempts' summaries joined by `; `.
struct Summaries<'a>(&'a [Attempt]);

impl std::fmt::Display for Summaries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", crate::record::Summary(attempt))?;
        }
        Ok(())
    }
}

/// A value's `Display`, or the text given for none.
struct Shown<T>(Option<T>, &'static str);

impl<T: std::fmt::Display> std::fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str(self.1),
        }
    }
}

/// A request's record while the request is in flight. Finishing it (once) writes the log line
/// and hands the record to the sink; if the request is dropped first (the client went away),
/// it is finished as [`Outcome::ClientDisconnected`], so no request goes unrecorded.
pub struct RecordGuard {
    /// Shared only once finished (with the sinks that keep it), so changing it before then
    /// never copies it.
    record: Arc<RequestRecord>,
    sink: Arc<dyn RecordSink>,
    finished: bool,
}

impl RecordGuard {
    pub fn new(record: RequestRecord, sink: Arc<dyn RecordSink>) -> Self {
        sink.started(&record);
        Self {
            record: Arc::new(record),
            sink,
            finished: false,
        }
    }

    /// Records the outcome; later calls do nothing.
    ///
    /// On a runtime the log line and the sink run in a task of their own, so they come after
    /// the reply: the connection's task writes the answer's last bytes before it yields, and
    /// only then does the task run (respond, then record). A task dropped unrun (the runtime
    /// shutting down) still records, as its [`Recording`] is dropped with it.
    pub fn finish(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        // Unshared until now: set in place, not copied.
        self.duration = Some(self.started.elapsed());
        self.finished = true;
        let recording = Recording {
            record: Arc::clone(&self.record),
            sink: Arc::clone(&self.sink),
            outcome,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move { drop(recording) })),
            Err(_) => drop(recording),
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
        (*self.record).clone()
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
        // Unshared until finished; a change after that (none is made) would copy it.
        Arc::make_mut(&mut self.record)
    }
}

/// A finished request's log line and hand-over to the sink, made when this is dropped (run or
/// not, a task that owns it records).
struct Recording {
    record: Arc<RequestRecord>,
    sink: Arc<dyn RecordSink>,
    outcome: Outcome,
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.record.log(self.outcome);
        self.sink.record(&self.record, self.outcome);
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        self.finish(Outcome::ClientDisconnected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::session::{SessionId, SessionSource};
    use crate::routing::retry::FailureClass;

    /// Keeps what it is handed.
    #[derive(Default)]
    struct Keeps(std::sync::Mutex<Vec<Arc<RequestRecord>>>);

    impl RecordSink for Keeps {
        fn record(&self, record: &Arc<RequestRecord>, _: Outcome) {
            self.0.lock().unwrap().push(Arc::clone(record));
        }
    }

    #[test]
    fn a_sink_that_keeps_the_record_shares_it_with_the_guard() {
        let sink = Arc::new(Keeps::default());
        let mut guard = RecordGuard::new(
            RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into()),
            sink.clone(),
        );
        guard.bytes_out = 7; // changed in flight, in place
        guard.finish(Outcome::Completed);
        let kept = sink.0.lock().unwrap()[0].clone();
        assert!(Arc::ptr_eq(&kept, &guard.record), "shared, not copied");
        assert_eq!(kept.bytes_out, 7);
    }

    fn kept(sink: &Keeps) -> Vec<u64> {
        sink.0.lock().unwrap().iter().map(|r| r.bytes_out).collect()
    }

    fn guard(sink: &Arc<Keeps>, bytes_out: u64) -> RecordGuard {
        let mut guard = RecordGuard::new(
            RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into()),
            sink.clone(),
        );
        guard.bytes_out = bytes_out;
        guard
    }

    #[tokio::test]
    async fn on_a_runtime_the_record_is_made_once_the_finishing_task_yields() {
        let sink = Arc::new(Keeps::default());
        let mut finished = guard(&sink, 1);
        finished.finish(Outcome::Completed);
        drop(guard(&sink, 2)); // a client gone: recorded the same way
        let finished_by = finished.started.elapsed();
        // The connection's task goes on to write the reply before it yields.
        assert!(kept(&sink).is_empty(), "recorded before the task yielded");
        tokio::task::yield_now().await;
        assert_eq!(kept(&sink), [1, 2]);
        // Its duration is the request's, not the wait for the task.
        let took = sink.0.lock().unwrap()[0].took();
        assert!(took <= finished_by, "{took:?} > {finished_by:?}");
        finished.finish(Outcome::Completed);
        tokio::task::yield_now().await;
        assert_eq!(kept(&sink), [1, 2], "finished once");
    }

    #[test]
    fn a_record_whose_task_never_ran_is_made_when_the_runtime_goes() {
        let sink = Arc::new(Keeps::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async { guard(&sink, 3).finish(Outcome::Completed) });
        assert!(kept(&sink).is_empty());
        drop(runtime);
        assert_eq!(kept(&sink), [3]);
    }

    /// The log line `record` finishes with, as `serve` prints it (without colours).
    fn logged(record: RequestRecord) -> String {
        let lines = crate::log_fields::capture::Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(crate::log_fields::LogFields)
            .with_writer(lines.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            RecordGuard::new(record, Arc::new(NoSink)).finish(Outcome::Completed);
        });
        lines.text()
    }

    fn attempt(endpoint: &str, outcome: AttemptOutcome) -> Attempt {
        Attempt {
            provider: "relay".into(),
            endpoint: endpoint.into(),
            outcome,
            duration_ms: 1,
        }
    }

    #[test]
    fn the_log_line_names_every_field_in_its_format() {
        let mut record = RequestRecord::new("t-9".into(), "POST".into(), "/v1/responses".into());
        record.session = Some(SessionId {
            value: "s-1".into(),
            source: SessionSource::Header("session_id"),
        });
        record.provider = Some("relay".into());
        record.status = Some(200);
        record.attempts = vec![
            attempt(
                "a",
                AttemptOutcome::FailedStatus {
                    status: 502,
                    class: FailureClass::ServerError,
                    retry_after_secs: None,
                    body_preview: String::new(),
                },
            ),
            attempt("b", AttemptOutcome::Responded { status: 200 }),
        ];
        record.ttfb = Some(Duration::from_micros(1_500));
        let line = logged(record);
        for part in [
            "trace_id=t-9",
            "session=\"s-1\"",
            "session_source=header:session_id",
            "client=\"-\"",
            "outcome=\"completed\"",
            "ttfb_ms=1.500",
            "attempts=relay/a: HTTP 502; relay/b: HTTP 200",
            "affinity_change= ",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        let bare = logged(RequestRecord::new(
            "t-1".into(),
            "GET".into(),
            "/v1/models".into(),
        ));
        assert!(
            bare.contains("session_source=- ")
                && bare.contains("ttfb_ms=- ")
                && bare.contains("attempts= "),
            "{bare}"
        );
    }
}
