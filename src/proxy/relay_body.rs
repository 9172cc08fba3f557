//! The body the proxy sends to the client.
//!
//! An upstream body is forwarded as it arrives, chunks already available joined into one frame
//! (never waiting for the network, see [`super::coalesce`]); each frame is shown to a tap
//! (usage, outcome) as it goes out. If the upstream breaks or goes silent mid-stream,
//! an SSE reply is ended with a well-formed `response.failed` event rather than a silent cut.
//! When the body ends or is dropped, the request record is finished exactly once.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use super::coalesce::{Coalescer, UPSTREAM_TURNS};
use super::record::{Outcome, RecordGuard};
use super::sse::{FailedEvent, SseTap, Terminal};
use crate::metrics::registry::Tracked;
use crate::redact::Redactor;
use crate::routing::retry::Cooldown;
use crate::routing::runtime::{HealthProbe, Permit};

/// A stream of upstream body chunks (already decompressed if the upstream compressed it).
pub type ChunkStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// JSON bodies larger than this are not parsed for usage.
const MAX_JSON_TAP: usize = 8 << 20;

/// Either a body the proxy wrote itself or a relayed upstream body.
pub enum ProxyBody {
    Full(Option<Bytes>),
    Relay(Box<RelayBody>),
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes))
    }
}

impl http_body::Body for ProxyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Relay(relay) => Pin::new(relay.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Relay(relay) => relay.stream.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Relay(relay) => match relay.exact_len {
                Some(len) => SizeHint::with_exact(len.saturating_sub(relay.record.bytes_out)),
                None => SizeHint::default(),
            },
        }
    }
}

/// What the tap looks for, by the response's content type.
enum Tap {
    Sse(Box<SseTap>),
    Json(Vec<u8>),
    None,
}

/// A relayed upstream body with its tap and record.
pub struct RelayBody {
    stream: Option<ChunkStream>,
    /// Chunks taken from the upstream that have not gone out yet (see [`RelayBody::next_chunk`]).
    coalescer: Coalescer,
    /// The body's length when it is known up front (a body read whole).
    exact_len: Option<u64>,
    tap: Tap,
    /// Bytes at the stream's start the tap has read already (see [`RelayBody::resuming`]).
    tapped_ahead: u64,
    idle_timeout: Option<Duration>,
    idle: Option<Pin<Box<Sleep>>>,
    last_activity: Instant,
    record: RecordGuard,
    /// The request's concurrency slot, given back when the body ends.
    permit: Option<Permit>,
    /// The endpoint's health verdict, given when the body ends (see [`RelayBody::finish`]).
    probe: Option<HealthProbe>,
    /// Masks credentials in the relay's own error text before it is recorded.
    redactor: Arc<Redactor>,
    /// This stream in the metrics' open streams, until the body ends.
    open: Option<Tracked>,
}

impl RelayBody {
    /// Keeps `permit` and `probe` until the body ends or is dropped.
    pub fn holding(mut self, permit: Permit, probe: Option<HealthProbe>) -> Self {
        if self.record.is_finished() {
            // A body already complete (an empty one): the slot goes back and the verdict is given at once.
            if let Some(probe) = probe {
                probe.succeeded();
            }
        } else {
            self.permit = Some(permit);
            self.probe = probe;
        }
        self
    }

    /// Keeps `open` (an open stream in the metrics) until the body ends or is dropped.
    pub fn counted(mut self, open: Option<Tracked>) -> Self {
        if !self.record.is_finished() {
            self.open = open;
        }
        self
    }

    /// Goes on with the tap that read the stream's first `read` bytes while the attempt held
    /// it (an event stream's preamble), instead of reading them again.
    pub fn resuming(mut self, tapped: Option<(Box<SseTap>, u64)>) -> Self {
        debug_assert!(
            tapped.is_none() || matches!(self.tap, Tap::Sse(_)),
            "only an event stream is held"
        );
        if let (Some((tap, read)), Tap::Sse(_)) = (tapped, &self.tap) {
            self.tap = Tap::Sse(tap);
            self.tapped_ahead = read;
        }
        self
    }

    /// Masks credentials in the relay's error text with `redactor` (the plan's), and hides
    /// our secrets in the failure event relayed.
    pub fn redacting(mut self, redactor: Arc<Redactor>) -> Self {
        self.redactor = redactor;
        self
    }

    /// `sse` says the response is an event stream (the tap reads events and a broken stream
    /// gets a `response.failed` ending); `json` says it is worth parsing for usage at the end.
    pub fn new(
        stream: ChunkStream,
        exact_len: Option<u64>,
        sse: bool,
        json: bool,
        idle_timeout: Option<Duration>,
        record: RecordGuard,
    ) -> Self {
        let tap = if sse {
            Tap::Sse(Box::default())
        } else if json {
            Tap::Json(Vec::new())
        } else {
            Tap::None
        };
        let mut body = Self {
            stream: Some(stream),
            coalescer: Coalescer::default(),
            exact_len,
            tap,
            tapped_ahead: 0,
            idle_timeout,
            idle: None,
            last_activity: Instant::now(),
            record,
            permit: None,
            probe: None,
            redactor: Arc::default(),
            open: None,
        };
        // hyper never polls an empty body: it is complete now, not when it is dropped.
        if exact_len == Some(0) {
            body.stream = None;
            body.on_end();
        }
        body
    }

    fn on_chunk(&mut self, chunk: &Bytes) {
        if self.record.ttfb.is_none() {
            self.record.ttfb = Some(self.record.started.elapsed());
        }
        self.record.bytes_out += chunk.len() as u64;
        // Keep-alive comments are not progress: a stream that only sends those is idle.
        let progress = match &mut self.tap {
            Tap::Sse(tap) => {
                // Read already: held until its first real event, so progress.
                let ahead = self.tapped_ahead.min(chunk.len() as u64);
                self.tapped_ahead -= ahead;
                let before = tap.content_bytes;
                tap.feed(&chunk[ahead as usize..]);
                ahead > 0 || tap.content_bytes > before
            }
            Tap::Json(buf) if buf.len() + chunk.len() <= MAX_JSON_TAP => {
                buf.extend_from_slice(chunk);
                true
            }
            Tap::Json(buf) => {
                buf.clear();
                self.tap = Tap::None;
                true
            }
            Tap::None => true,
        };
        if progress {
            self.last_activity = Instant::now();
        }
    }

    /// Whether the event stream's failure event (`response.failed`, `error`) has begun.
    fn failed_in_stream(&self) -> bool {
        matches!(&self.tap, Tap::Sse(tap) if tap.failing)
    }

    /// The outcome an event stream's terminal event implies; `no_terminal` when it had none,
    /// `not_sse` for other bodies.
    fn outcome_by_events(&self, no_terminal: Outcome, not_sse: Outcome) -> Outcome {
        match &self.tap {
            Tap::Sse(tap) => match tap.terminal {
                Some(Terminal::Failed { .. }) => Outcome::FailedInStream,
                Some(_) => Outcome::Completed,
                None => no_terminal,
            },
            _ => not_sse,
        }
    }

    /// The upstream ended cleanly.
    fn on_end(&mut self) {
        let outcome =
            self.outcome_by_events(Outcome::EndedWithoutTerminalEvent, Outcome::Completed);
        if let Tap::Json(buf) = &self.tap {
            if let Some(payload) = super::payload::Payload::parse(buf) {
                self.record.usage = payload.usage();
                self.record.model_answered = payload.model;
                self.record.service_tier = payload.service_tier;
            }
        }
        self.finish(outcome);
    }

    /// The upstream broke or stalled. Returns the event to end an SSE reply with, if any.
    fn on_upstream_error(&mut self, error: String) -> Option<Bytes> {
        let event = match &self.tap {
            Tap::Sse(tap) => {
                let message = format!(
                    "codex-helper: the upstream stream from {} broke before the response was complete: {error}",
                    self.record.provider.as_deref().unwrap_or("the relay")
                );
                let event = FailedEvent {
                    code: "server_error",
                    message: &message,
                    helper_error: "upstream_stream_error",
                    retry_after_secs: None,
                }
                .to_sse();
                // An event cut mid-way must be terminated, or the next one would merge into it.
                Some(if tap.at_event_boundary() {
                    event
                } else {
                    [&b"\n\n"[..], &event].concat().into()
                })
            }
            _ => None,
        };
        self.record.error = Some(error);
        self.finish(Outcome::UpstreamStreamError);
        event
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.record.is_finished() {
            return;
        }
        if let Tap::Sse(tap) = &self.tap {
            self.record.usage = tap.usage;
            self.record.model_answered = tap.model.clone();
            self.record.service_tier = tap.service_tier.clone();
            if let Some(Terminal::Failed { code, message }) = &tap.terminal {
                let error = format!(
                    "response.failed in stream: {} {}",
                    code.as_deref().unwrap_or("-"),
                    message.as_deref().unwrap_or("")
                );
                let error = self.redactor.redact(&error).into_owned();
                self.record.error.get_or_insert(error);
            }
        }
        self.judge_endpoint(outcome);
        self.record.finish(outcome);
        self.permit = None;
        self.open = None;
    }

    /// The endpoint's health by how its answer ended: a clean end (for a stream, a terminal
    /// event other than a failure) is the only success; a stream that broke, stalled or closed
    /// without a terminal event counts as a failure, so the next try (Codex's own retry) goes
    /// elsewhere; a failure the relay reported in the stream, or a client that went away,
    /// says nothing about the endpoint.
    fn judge_endpoint(&mut self, outcome: Outcome) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        match outcome {
            Outcome::Completed => probe.succeeded(),
            Outcome::UpstreamStreamError | Outcome::EndedWithoutTerminalEvent => {
                let why = format!(
                    "stream ended early: {}",
                    self.record.error.as_deref().unwrap_or("no terminal event")
                );
                probe.failed(Cooldown::Growing, why);
            }
            _ => drop(probe),
        }
    }

    /// Whether the idle timer has really expired (it is only re-armed when it fires, so a busy
    /// stream costs no timer work per chunk).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.idle_timeout else {
            return false;
        };
        let deadline = tokio::time::Instant::from_std(self.last_activity + timeout);
        let sleep = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return false,
                Poll::Ready(()) if tokio::time::Instant::now() >= deadline => return true,
                Poll::Ready(()) => continue,
            }
        }
    }

    /// Takes what the upstream already holds (see [`Coalescer`]) into the body's first frame,
    /// before the response head goes out: hyper writes the head with a first frame that is
    /// ready at once, and flushes it alone if the body is pending. So a reply the relay sent in
    /// one go (the held start of an event stream, then the rest of the burst) is answered in
    /// one write. A few scheduler turns at most, never the network.
    pub async fn gather_start(&mut self) {
        std::future::poll_fn(|cx| match self.stream.as_mut() {
            Some(stream) => self.coalescer.poll_gather(stream, cx, UPSTREAM_TURNS),
            None => Poll::Ready(()),
        })
        .await
    }

    /// The next chunk: what the upstream has ready now, with what it already holds joined to
    /// it (see [`Coalescer`]).
    fn next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        // The first frame goes out with the response head, at once: hyper flushes the head
        // alone if the body is pending, and what the upstream held is already gathered
        // ([`RelayBody::gather_start`]).
        let turns = if self.record.bytes_out == 0 {
            0
        } else {
            UPSTREAM_TURNS
        };
        self.coalescer.poll_next(stream, cx, turns)
    }

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if this.stream.is_none() {
            return Poll::Ready(None);
        }
        match this.next_chunk(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.on_chunk(&chunk);
                // A relay that echoes our key in a failure event does not show it to the
                // client. Only those are searched, from their `event:` line (a scan per secret
                // would cost every stream too much); a key split between two chunks, or in a
                // failure sent without an `event:` line and split, gets through.
                let chunk = match this.failed_in_stream() {
                    true => this.redactor.hide_secrets(chunk),
                    false => chunk,
                };
                // hyper stops polling once a body of known length is complete.
                if this
                    .exact_len
                    .is_some_and(|len| this.record.bytes_out >= len)
                {
                    this.stream = None;
                    this.on_end();
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => {
                this.stream = None;
                this.idle = None;
                Self::end_with_error(this, e)
            }
            Poll::Ready(None) => {
                this.stream = None;
                this.idle = None;
                this.on_end();
                Poll::Ready(None)
            }
            // Only waiting a scheduler turn with data in hand: no need for the idle timer.
            Poll::Pending if this.coalescer.has_gathered() => Poll::Pending,
            Poll::Pending => {
                if !this.poll_idle(cx) {
                    return Poll::Pending;
                }
                this.stream = None;
                this.idle = None;
                let secs = this.idle_timeout.unwrap_or_default().as_secs_f64();
                let error = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no data from the upstream for {secs:.1} s (proxy.stream_idle_timeout_ms)"
                    ),
                );
                Self::end_with_error(this, error)
            }
        }
    }

    fn end_with_error(
        this: &mut Self,
        error: std::io::Error,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match this.on_upstream_error(error.to_string()) {
            Some(event) => Poll::Ready(Some(Ok(Frame::data(event)))),
            None => Poll::Ready(Some(Err(error))),
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        // Dropped before the upstream's end. Clients such as Codex stop reading once they have
        // the terminal event, so a stream whose terminal event went out is complete; otherwise
        // the client went away.
        let outcome =
            self.outcome_by_events(Outcome::ClientDisconnected, Outcome::ClientDisconnected);
        self.finish(outcome);
    }
}

/// Turns an error and its causes into one line (the top-level message alone is often vague).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::NoSink;
    use crate::proxy::coalesce::COALESCE_MAX;
    use crate::proxy::record::RequestRecord;

    fn body(chunks: Vec<Poll<Option<std::io::Result<Bytes>>>>) -> RelayBody {
        let mut chunks = std::collections::VecDeque::from(chunks);
        let stream = futures_util::stream::poll_fn(move |cx| match chunks.pop_front() {
            Some(Poll::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(ready) => ready,
            None => Poll::Ready(None),
        });
        let record = RecordGuard::new(
            RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into()),
            Arc::new(NoSink),
        );
        RelayBody::new(Box::pin(stream), None, true, false, None, record)
    }

    fn ready(text: &str) -> Poll<Option<std::io::Result<Bytes>>> {
        Poll::Ready(Some(Ok(Bytes::from(text.to_string()))))
    }

    /// The next frame the client would get.
    fn next(body: &mut RelayBody) -> Poll<Option<Vec<u8>>> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(frame.into_data().unwrap().to_vec())),
            Poll::Ready(Some(Err(e))) => panic!("{e}"),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// What the upstream does in `turns` scheduler turns that bring nothing.
    fn idle_turns(turns: u8) -> impl Iterator<Item = Poll<Option<std::io::Result<Bytes>>>> {
        (0..turns).map(|_| Poll::Pending)
    }

    #[test]
    fn chunks_already_available_go_out_together_and_nothing_waits() {
        let mut script = vec![ready("a"), ready("b"), Poll::Pending];
        script.extend([ready("c"), ready("d"), ready("e")]);
        script.extend(idle_turns(UPSTREAM_TURNS + 1));
        script.extend([ready("f"), Poll::Ready(None)]);
        let mut body = body(script);
        // The first frame goes out at once with what is ready, without giving the upstream turns.
        assert_eq!(next(&mut body), Poll::Ready(Some(b"ab".to_vec())));
        // Later ones: the upstream is given its turns with "cde" in hand ...
        for _ in 0..UPSTREAM_TURNS {
            assert_eq!(next(&mut body), Poll::Pending);
        }
        // ... and when they bring nothing, what was there goes out without waiting longer.
        assert_eq!(next(&mut body), Poll::Ready(Some(b"cde".to_vec())));
        assert_eq!(next(&mut body), Poll::Ready(Some(b"f".to_vec())));
        assert_eq!(
            next(&mut body),
            Poll::Ready(None),
            "the end comes after the data"
        );
    }

    #[test]
    fn chunks_handed_over_within_the_turns_are_joined() {
        // The upstream connection's task hands over one decoded chunk every few turns.
        let mut script = vec![ready("first"), Poll::Pending, ready("a")];
        script.extend(idle_turns(UPSTREAM_TURNS - 1));
        script.push(ready("b"));
        script.extend(idle_turns(UPSTREAM_TURNS - 1));
        script.push(ready("c"));
        script.extend(idle_turns(UPSTREAM_TURNS + 1));
        script.push(Poll::Ready(None));
        let mut body = body(script);
        assert_eq!(next(&mut body), Poll::Ready(Some(b"first".to_vec())));
        let mut pending = 0;
        let second = loop {
            match next(&mut body) {
                Poll::Pending => pending += 1,
                ready => break ready,
            }
        };
        assert_eq!(second, Poll::Ready(Some(b"abc".to_vec())), "one frame");
        assert_eq!(pending, 3 * (UPSTREAM_TURNS as usize) - 2);
        assert_eq!(next(&mut body), Poll::Ready(None));
    }

    const CREATED: &str = "event: response.created\ndata: {\"type\":\"response.created\"}\n\n";
    const DELTA: &str =
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\"}\n\n";
    const DONE: &str =
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{}}\n\n";

    #[test]
    fn a_held_stream_s_tap_goes_on_without_reading_the_held_bytes_again() {
        // The hold ended in the middle of a line, and the held bytes go out joined with the
        // rest of it.
        let (done_a, rest) = DONE.split_at(20);
        let (done_b, done_c) = rest.split_at(15);
        let held = format!("{CREATED}{DELTA}{done_a}");
        let mut tap = SseTap::default();
        tap.feed(held.as_bytes());
        let script = vec![ready(&held), ready(done_b), Poll::Pending, ready(done_c)];
        let mut body = body(script).resuming(Some((Box::new(tap), held.len() as u64)));
        let mut out = Vec::new();
        for _ in 0..100 {
            match next(&mut body) {
                Poll::Ready(Some(bytes)) => out.extend(bytes),
                Poll::Ready(None) => break,
                Poll::Pending => {}
            }
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{CREATED}{DELTA}{DONE}")
        );
        let Tap::Sse(tap) = &body.tap else {
            panic!("an event stream's tap")
        };
        assert_eq!(tap.data_lines, 3, "each event read once");
        assert_eq!(tap.first_event, Some(crate::proxy::sse::FirstEvent::Output));
        assert_eq!(tap.terminal, Some(Terminal::Completed));
    }

    async fn gather_start(body: &mut RelayBody) {
        let start = body.gather_start();
        let bounded = tokio::time::timeout(Duration::from_secs(5), start).await;
        bounded.expect("never waits for the network");
    }

    #[tokio::test]
    async fn a_reply_the_relay_sent_at_once_is_the_first_frame() {
        // The held start (up to the first real event), then the rest of the burst as hyper's
        // connection task hands it over: a chunk every turn. Before, the head and held start
        // went out in one write and the rest in another.
        let held = ready(&[CREATED, DELTA].concat());
        let script = vec![
            held,
            Poll::Pending,
            ready(DELTA),
            Poll::Pending,
            ready(DONE),
        ];
        let mut body = body(script);
        gather_start(&mut body).await;
        let all = [CREATED, DELTA, DELTA, DONE].concat();
        assert_eq!(next(&mut body), Poll::Ready(Some(all.into_bytes())));
        assert_eq!(next(&mut body), Poll::Ready(None));
        let seen = body.outcome_by_events(Outcome::UpstreamStreamError, Outcome::Completed);
        assert_eq!(seen, Outcome::Completed, "the tap saw the whole reply");
    }

    #[tokio::test]
    async fn what_comes_after_the_turns_is_not_waited_for() {
        let mut script = vec![ready(CREATED), ready(DELTA)];
        // The turns given, the one that ends the gathering, and one the first frame looks at.
        script.extend(idle_turns(UPSTREAM_TURNS + 2));
        script.push(ready(DONE));
        let mut body = body(script);
        gather_start(&mut body).await;
        assert_eq!(
            next(&mut body),
            Poll::Ready(Some([CREATED, DELTA].concat().into_bytes()))
        );
        assert_eq!(next(&mut body), Poll::Ready(Some(DONE.as_bytes().to_vec())));
    }

    #[tokio::test]
    async fn a_break_right_after_the_start_is_reported_after_it() {
        let cut = Poll::Ready(Some(Err(std::io::Error::other("reset"))));
        let mut body = body(vec![ready(&[CREATED, DELTA].concat()), cut]);
        gather_start(&mut body).await;
        let start = [CREATED, DELTA].concat().into_bytes();
        assert_eq!(next(&mut body), Poll::Ready(Some(start)));
        let Poll::Ready(Some(ending)) = next(&mut body) else {
            panic!("an ending event");
        };
        let ending = String::from_utf8(ending).unwrap();
        assert!(ending.contains("response.failed"), "{ending}");
        assert_eq!(next(&mut body), Poll::Ready(None));
    }

    #[tokio::test]
    async fn a_break_before_any_data_is_the_first_frame_as_a_failure_event() {
        let cut = Poll::Ready(Some(Err(std::io::Error::other("reset"))));
        let mut body = body(vec![cut]);
        gather_start(&mut body).await;
        let Poll::Ready(Some(first)) = next(&mut body) else {
            panic!("an ending event");
        };
        assert!(
            String::from_utf8(first)
                .unwrap()
                .contains("response.failed")
        );
        assert_eq!(next(&mut body), Poll::Ready(None));
    }

    #[tokio::test]
    async fn gathering_leaves_whole_and_empty_bodies_as_they_were() {
        let record = || {
            let record = RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into());
            RecordGuard::new(record, Arc::new(NoSink))
        };
        let json = Bytes::from_static(br#"{"usage":{"input_tokens":1}}"#);
        let whole = Box::pin(futures_util::stream::once(std::future::ready(Ok(
            json.clone()
        ))));
        let len = Some(json.len() as u64);
        let mut body = RelayBody::new(whole, len, false, true, None, record());
        gather_start(&mut body).await;
        assert_eq!(next(&mut body), Poll::Ready(Some(json.to_vec())));
        assert_eq!(next(&mut body), Poll::Ready(None));
        assert!(body.record.is_finished(), "finished at its length");

        let empty = Box::pin(futures_util::stream::empty());
        let mut body = RelayBody::new(empty, Some(0), false, true, None, record());
        gather_start(&mut body).await;
        assert_eq!(next(&mut body), Poll::Ready(None));
    }

    #[test]
    fn nothing_in_hand_means_plain_pending_without_a_self_wake() {
        let mut chunks = std::collections::VecDeque::from(vec![
            ready("first"),
            Poll::Pending,
            Poll::Pending,
            ready("a"),
            Poll::Pending,
        ]);
        let stream =
            futures_util::stream::poll_fn(move |_| chunks.pop_front().unwrap_or(Poll::Ready(None)));
        let record = RecordGuard::new(
            RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into()),
            Arc::new(NoSink),
        );
        let mut body = RelayBody::new(Box::pin(stream), None, true, false, None, record);
        let woken = Arc::new(WakeCount::default());
        let waker = std::task::Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || woken.0.load(std::sync::atomic::Ordering::Relaxed);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        assert_eq!(woken(), 0, "the first frame went out without a turn");
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        assert_eq!(woken(), 0, "no busy loop");
        // With data in hand the body wakes itself, to give the upstream a turn.
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        assert_eq!(woken(), 1);
    }

    #[derive(Default)]
    struct WakeCount(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for WakeCount {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn an_error_after_ready_chunks_comes_after_them() {
        let big = "x".repeat(COALESCE_MAX);
        let mut body = body(vec![
            ready(&big),
            ready("more"),
            ready("y"),
            Poll::Ready(Some(Err(std::io::Error::other("cut")))),
        ]);
        assert_eq!(
            next(&mut body),
            Poll::Ready(Some(big.into_bytes())),
            "capped"
        );
        assert_eq!(next(&mut body), Poll::Ready(Some(b"morey".to_vec())));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(
            body.next_chunk(&mut cx),
            Poll::Ready(Some(Err(_)))
        ));
    }
}
