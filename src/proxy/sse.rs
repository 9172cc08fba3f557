//! Watching a Server-Sent Events stream as it passes through, and writing the one event the
//! proxy itself ever adds: `response.failed`.
//!
//! The tap never holds bytes back: the caller forwards each chunk and shows it to the tap, which
//! keeps only the unfinished line. A `data:` line is parsed as JSON at most once: fully when a
//! substring check says it may carry usage or an outcome, else only for its type while the
//! stream's first real event is not known yet; after that, deltas are skipped after the check.

use std::ops::Range;

use bytes::Bytes;
use memchr::memmem;
use serde_json::json;

use super::payload::Payload;

use crate::record::usage::Usage;

/// What makes a `data:` line worth parsing: only these carry usage or an outcome. The finders
/// are built once, not for every line.
static INTERESTING: std::sync::LazyLock<[memmem::Finder<'static>; 5]> =
    std::sync::LazyLock::new(|| {
        [
            &b"\"usage\""[..],
            b"response.completed",
            b"response.failed",
            b"response.incomplete",
            b"\"error\"",
        ]
        .map(memmem::Finder::new)
    });

/// Lines longer than this are not inspected (they are still forwarded).
const MAX_LINE: usize = 16 << 20;

/// How a stream ended, as far as its events say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Terminal {
    Completed,
    Incomplete,
    /// `response.failed` or an `error` event.
    Failed {
        code: Option<String>,
        message: Option<String>,
    },
}

/// Incremental reader of an SSE stream.
#[derive(Debug)]
pub struct SseTap {
    line: Vec<u8>,
    skipping_long_line: bool,
    last_line_blank: bool,
    /// Whether the line being read is a comment; `None` until its first byte.
    line_is_comment: Option<bool>,
    /// Bytes of lines that are not comments: a stream's progress. Keep-alive comments and
    /// blank lines do not count, so a relay that only sends those is idle.
    pub content_bytes: u64,
    /// The last usage seen.
    pub usage: Option<Usage>,
    /// The last terminal event seen.
    pub terminal: Option<Terminal>,
    /// Whether a failure event (`response.failed`, `error`) has begun: from its `event:`
    /// line when the relay sends one, else from its `data:` line once whole.
    pub failing: bool,
    /// Number of `data:` lines seen.
    pub data_lines: u64,
    /// The first event that is more than `response.created` / `response.in_progress`.
    pub first_event: Option<FirstEvent>,
    /// Where the line that made [`SseTap::first_event`] known began and ended, as offsets in
    /// the bytes shown to the tap.
    pub first_event_line: Option<Range<u64>>,
    /// Bytes shown to the tap so far.
    fed: u64,
    /// Where the unfinished line began.
    line_start: u64,
    /// `response.model` of the terminal event.
    pub model: Option<String>,
    /// `response.service_tier` of the last event that had one.
    pub service_tier: Option<String>,
}

/// What the first real event of a stream was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstEvent {
    /// Output, or a completion: the stream is working.
    Output,
    /// `response.failed` or `error` before any output: a failure hidden in a 200.
    Failed,
}

impl Default for SseTap {
    fn default() -> Self {
        Self {
            line: Vec::new(),
            skipping_long_line: false,
            last_line_blank: true,
            line_is_comment: None,
            content_bytes: 0,
            usage: None,
            terminal: None,
            failing: false,
            data_lines: 0,
            first_event: None,
            first_event_line: None,
            fed: 0,
            line_start: 0,
            model: None,
            service_tier: None,
        }
    }
}

impl SseTap {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            let (head, rest) = (&chunk[..end], &chunk[end + 1..]);
            self.fed += end as u64 + 1;
            self.count_content(head);
            self.line_is_comment = None;
            if self.skipping_long_line {
                self.skipping_long_line = false;
                self.last_line_blank = false;
            } else if self.line.is_empty() {
                self.line_done(head);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.line_done(&line);
                line.clear();
                self.line = line;
            }
            self.line_start = self.fed;
            chunk = rest;
        }
        self.fed += chunk.len() as u64;
        self.count_content(chunk);
        if !chunk.is_empty() && !self.skipping_long_line {
            if self.line.len() + chunk.len() > MAX_LINE {
                self.line.clear();
                self.skipping_long_line = true;
            } else {
                self.line.extend_from_slice(chunk);
            }
        }
    }

    /// Adds a piece of the current line to [`SseTap::content_bytes`] unless the line is a
    /// comment. Carriage returns are line breaks, not content: none is counted, wherever a
    /// chunk boundary falls (a piece may end or start with one).
    fn count_content(&mut self, piece: &[u8]) {
        let Some(&first) = piece.iter().find(|&&b| b != b'\r') else {
            return;
        };
        if !*self.line_is_comment.get_or_insert(first == b':') {
            let returns = memchr::memchr_iter(b'\r', piece).count();
            self.content_bytes += (piece.len() - returns) as u64;
        }
    }

    /// What is held so far before the first real event, split as the stream's hold limits
    /// count it: the bytes before the unfinished line, and that line's bytes if it may be the
    /// one to show the event (a comment's count with the bytes before it).
    pub fn unfinished(&self) -> (u64, u64) {
        if self.line_is_comment == Some(false) {
            (self.line_start, self.fed - self.line_start)
        } else {
            (self.fed, 0)
        }
    }

    /// Gives back what the line buffer grew to beyond the unfinished line (a preamble that
    /// echoes the request can take tens of KiB), before the tap goes on for a whole stream.
    pub fn shrink(&mut self) {
        self.line.shrink_to(self.line.len());
    }

    /// True when the bytes seen so far end exactly after an event (a blank line), so anything
    /// appended starts a new event.
    pub fn at_event_boundary(&self) -> bool {
        self.line.is_empty() && !self.skipping_long_line && self.last_line_blank
    }

    fn line_done(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.last_line_blank = line.is_empty();
        if let Some(name) = line.strip_prefix(b"event:") {
            let name = name.trim_ascii();
            self.failing |= name == b"response.failed" || name == b"error";
            return;
        }
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        self.data_lines += 1;
        let data = data.strip_prefix(b" ").unwrap_or(data);
        let interesting = INTERESTING.iter().any(|needle| needle.find(data).is_some());
        let payload = if interesting {
            Payload::parse(data)
        } else {
            None
        };
        if self.first_event.is_none() {
            // A parsed line is classified by the type it read, so no line is parsed twice (a
            // preamble event can echo the whole request).
            self.first_event = if interesting {
                payload
                    .as_ref()
                    .and_then(|p| p.kind.as_deref())
                    .and_then(classify)
            } else {
                first_event(data)
            };
            if self.first_event.is_some() {
                self.first_event_line = Some(self.line_start..self.fed);
            }
        }
        let Some(payload) = payload else {
            return;
        };
        if let Some(usage) = payload.usage() {
            self.usage = Some(usage);
        }
        if let Some(response) = &payload.response {
            if let Some(model) = &response.model {
                self.model = Some(model.clone());
            }
            if let Some(tier) = &response.service_tier {
                self.service_tier = Some(tier.clone());
            }
        }
        match payload.kind.as_deref() {
            Some("response.completed") => self.terminal = Some(Terminal::Completed),
            Some("response.incomplete") => self.terminal = Some(Terminal::Incomplete),
            Some("response.failed") => {
                let (code, message) = payload.failed_response();
                self.terminal = Some(Terminal::Failed { code, message });
                self.failing = true;
            }
            Some("error") => {
                let (code, message) = payload.error_event();
                self.terminal = Some(Terminal::Failed { code, message });
                self.failing = true;
            }
            _ => {}
        }
    }
}

/// Classifies an event for [`SseTap::first_event`]; `None` for preamble events.
fn first_event(data: &[u8]) -> Option<FirstEvent> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let kind = serde_json::from_slice::<Kind<'_>>(data).ok()?.kind?;
    classify(&kind)
}

/// An event's type as a first event; `None` for preamble events.
fn classify(kind: &str) -> Option<FirstEvent> {
    match kind {
        "response.created" | "response.in_progress" => None,
        "response.failed" | "error" => Some(FirstEvent::Failed),
        _ => Some(FirstEvent::Output),
    }
}

/// What the proxy says in a `response.failed` event it writes itself.
#[derive(Debug, Clone)]
pub struct FailedEvent<'a> {
    /// `error.code`: Codex retries `rate_limit_exceeded` and `server_error`.
    pub code: &'a str,
    pub message: &'a str,
    /// `metadata.codex_helper_error`, a stable name for scripts.
    pub helper_error: &'a str,
    pub retry_after_secs: Option<u64>,
}

impl FailedEvent<'_> {
    /// The event as SSE bytes, in the shape Codex parses.
    pub fn to_sse(&self) -> Bytes {
        let now_ms = crate::time::now_ms();
        let mut metadata = json!({ "codex_helper_error": self.helper_error });
        if let Some(secs) = self.retry_after_secs {
            metadata["retry_after_secs"] = json!(secs);
        }
        let event = json!({
            "type": "response.failed",
            "sequence_number": 0,
            "response": {
                "id": format!("resp_codex_helper_{}_{now_ms}", self.helper_error),
                "object": "response",
                "created_at": now_ms / 1000,
                "status": "failed",
                "background": false,
                "error": { "code": self.code, "message": self.message },
                "usage": null,
                "metadata": metadata,
            }
        });
        Bytes::from(format!("event: response.failed\ndata: {event}\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r1\"}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n\
event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r1\",\"usage\":{\"input_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":3,\"total_tokens\":15}}}\r\n\r\n";

    #[test]
    fn a_failure_is_known_from_its_event_line_or_else_its_data_line() {
        let mut tap = SseTap::default();
        tap.feed(STREAM.as_bytes());
        assert!(!tap.failing, "a stream that completed never failed");
        let mut named = SseTap::default();
        named.feed(b"event: response.output_text.delta\ndata: {}\n\nevent: response.failed\n");
        assert!(named.failing, "from the event line, before its data");
        let mut unnamed = SseTap::default();
        unnamed.feed(b"data: {\"type\":\"error\",\"error\":{\"message\":\"no");
        assert!(!unnamed.failing);
        unnamed.feed(b"\"}}\n");
        assert!(unnamed.failing, "from the data line once whole");
    }

    #[test]
    fn usage_and_outcome_survive_any_chunking() {
        for size in [1, 2, 7, 64, STREAM.len()] {
            let mut tap = SseTap::default();
            for chunk in STREAM.as_bytes().chunks(size) {
                tap.feed(chunk);
            }
            let usage = tap.usage.expect("usage");
            assert_eq!(
                (
                    usage.input_tokens,
                    usage.cached_input_tokens,
                    usage.output_tokens
                ),
                (12, 4, 3)
            );
            assert_eq!(tap.terminal, Some(Terminal::Completed));
            assert_eq!(tap.data_lines, 3);
            assert!(tap.at_event_boundary());
        }
    }

    #[test]
    fn the_first_event_line_is_placed_in_the_stream_however_it_is_chunked() {
        let line = "data: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\r\n";
        let stream = STREAM.replace("\"hi\"}\n", "\"hi\"}\r\n");
        let start = stream.find(line).unwrap() as u64;
        for size in [1, 2, 7, 64, stream.len()] {
            let mut tap = SseTap::default();
            let mut seen = Vec::new();
            for chunk in stream.as_bytes().chunks(size) {
                tap.feed(chunk);
                if tap.first_event_line.is_none() {
                    seen.push(tap.unfinished());
                }
            }
            assert_eq!(tap.first_event_line, Some(start..start + line.len() as u64));
            // Until it was known, nothing was counted before the line's start, nor past its
            // end: the limits give the same verdict whatever the reads.
            let end = start + line.len() as u64;
            let within = |(before, so_far): &(u64, u64)| *before <= start && before + so_far <= end;
            assert!(seen.iter().all(within), "{seen:?}");
        }
        // A comment in progress counts with what came before it; another line does not.
        let mut tap = SseTap::default();
        tap.feed(b": keep-alive\n\n: still");
        assert_eq!(tap.unfinished(), (21, 0));
        tap.feed(b" here\ndata: {\"ty");
        assert_eq!(tap.unfinished(), (27, 10));
    }

    #[test]
    fn the_first_real_event_is_classified() {
        let mut tap = SseTap::default();
        tap.feed(b"data: {\"type\":\"response.created\",\"response\":{}}\n\n: keep-alive\n\n");
        assert_eq!(tap.first_event, None);
        tap.feed(b"data: {\"item\":{\"type\":\"message\"},\"type\":\"response.failed\"}\n\n");
        assert_eq!(tap.first_event, Some(FirstEvent::Failed));
        let mut tap = SseTap::default();
        tap.feed(
            b"data: {\"type\":\"response.output_item.added\"}\n\ndata: {\"type\":\"error\"}\n\n",
        );
        assert_eq!(
            tap.first_event,
            Some(FirstEvent::Output),
            "only the first real event counts"
        );
        // Preamble events that are parsed for what they carry (a `usage` of null, as the
        // Responses API sends) are still not the first event; an `error` event is a failure.
        let mut tap = SseTap::default();
        tap.feed(b"data: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n");
        tap.feed(b"data: {\"type\":\"response.in_progress\",\"response\":{\"usage\":null,\"model\":\"m\"}}\n\n");
        assert_eq!((tap.first_event, tap.model.as_deref()), (None, Some("m")));
        tap.feed(b"data: {\"type\":\"error\",\"error\":{\"code\":\"server_error\"}}\n\n");
        assert_eq!(tap.first_event, Some(FirstEvent::Failed));
        // A line that is not JSON after all is no event.
        let mut tap = SseTap::default();
        tap.feed(b"data: {\"usage\": oops\n\ndata: {\"type\":\"response.completed\"}\n\n");
        assert_eq!(tap.first_event, Some(FirstEvent::Output));
    }

    #[test]
    fn keep_alive_comments_and_blank_lines_are_not_progress() {
        for size in [1, 3, 1000] {
            let mut tap = SseTap::default();
            let keep_alive = b": keep-alive\n\n:ping\r\n\r\n\n\n: x\n";
            for chunk in keep_alive.chunks(size) {
                tap.feed(chunk);
            }
            assert_eq!(tap.content_bytes, 0, "chunks of {size}");
            for chunk in b"data: {}\r\n\r\n".chunks(size) {
                tap.feed(chunk);
            }
            assert_eq!(tap.content_bytes, 8, "chunks of {size}");
        }
    }

    /// Found by fuzzing: a carriage return inside a line counted as progress or not
    /// depending on whether a chunk ended right after it.
    #[test]
    fn progress_does_not_depend_on_where_chunks_end() {
        let stream = b"data: a\rb\n: c\rd\n\r:e\n";
        let mut whole = SseTap::default();
        whole.feed(stream);
        assert_eq!(
            whole.content_bytes, 8,
            "`data: ab`; comments and returns do not count"
        );
        for cut in 0..stream.len() {
            let mut tap = SseTap::default();
            tap.feed(&stream[..cut]);
            tap.feed(&stream[cut..]);
            assert_eq!(tap.content_bytes, whole.content_bytes, "cut at {cut}");
        }
    }

    #[test]
    fn shrinking_gives_back_a_long_line_s_buffer_and_keeps_an_unfinished_one() {
        let mut tap = SseTap::default();
        let long = format!(
            "data: {{\"type\":\"response.created\",\"x\":\"{}\"}}",
            "a".repeat(40_000)
        );
        let (a, b) = long.split_at(20_000);
        tap.feed(a.as_bytes());
        tap.feed(b.as_bytes());
        tap.feed(b"\n\ndata: {\"type\":\"response.out");
        tap.shrink();
        assert!(tap.line.capacity() < 100, "{}", tap.line.capacity());
        tap.feed(b"put_text.delta\"}\n\n");
        assert_eq!(
            (tap.data_lines, tap.first_event),
            (2, Some(FirstEvent::Output))
        );
    }

    #[test]
    fn boundary_tracking() {
        let mut tap = SseTap::default();
        assert!(tap.at_event_boundary());
        tap.feed(b"data: {\"a\":1}");
        assert!(!tap.at_event_boundary());
        tap.feed(b"\n");
        assert!(!tap.at_event_boundary());
        tap.feed(b"\n");
        assert!(tap.at_event_boundary());
    }

    #[test]
    fn failures_in_the_stream_are_seen() {
        let mut tap = SseTap::default();
        tap.feed(b"data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}\n\n");
        assert_eq!(
            tap.terminal,
            Some(Terminal::Failed {
                code: Some("server_error".into()),
                message: Some("boom".into())
            })
        );
        tap.feed(b"data: {\"type\":\"error\",\"error\":{\"code\":\"x\"}}\n\n");
        assert!(
            matches!(tap.terminal, Some(Terminal::Failed { code: Some(ref c), .. }) if c == "x")
        );
    }

    #[test]
    fn the_written_event_is_one_well_formed_response_failed() {
        let event = FailedEvent {
            code: "rate_limit_exceeded",
            message: "try again in 3s",
            helper_error: "all_upstreams_failed",
            retry_after_secs: Some(3),
        };
        let bytes = event.to_sse();
        let mut tap = SseTap::default();
        tap.feed(&bytes);
        assert!(tap.at_event_boundary());
        assert_eq!(
            tap.terminal,
            Some(Terminal::Failed {
                code: Some("rate_limit_exceeded".into()),
                message: Some("try again in 3s".into())
            })
        );
        let text = std::str::from_utf8(&bytes).unwrap();
        let data: serde_json::Value =
            serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(data["response"]["metadata"]["retry_after_secs"], 3);
        assert_eq!(data["response"]["status"], "failed");
    }
}
