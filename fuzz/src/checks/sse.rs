//! The SSE tap (`proxy::sse::SseTap`), which reads usage and the outcome from a relay's
//! stream as it passes through.
//!
//! - Any bytes: what the tap concludes does not depend on how the stream was cut into
//!   chunks, progress never counts more bytes than arrived, and it never panics.
//! - A stream of generated Responses events (with CRLF or LF line ends, keep-alive comments,
//!   unparsable data lines): the tap reports the last usage, the last terminal event, the
//!   model of the terminal event, the first real event and the number of data lines.

use codex_helper::proxy::sse::{FirstEvent, SseTap, Terminal};
use codex_helper::record::usage::Usage;
use serde_json::{Value, json};

use super::input::{Input, pieces};

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte() % 2 == 0 {
        any_bytes(&mut input);
    } else {
        generated_events(&mut input);
    }
}

/// What the tap concluded, for comparison.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    usage: Option<Usage>,
    terminal: Option<Terminal>,
    data_lines: u64,
    first_event: Option<FirstEvent>,
    model: Option<String>,
    service_tier: Option<String>,
    content_bytes: u64,
    at_event_boundary: bool,
}

fn tap(chunks: &[&[u8]]) -> Seen {
    let mut tap = SseTap::default();
    for chunk in chunks {
        tap.feed(chunk);
    }
    Seen {
        at_event_boundary: tap.at_event_boundary(),
        usage: tap.usage,
        terminal: tap.terminal,
        data_lines: tap.data_lines,
        first_event: tap.first_event,
        model: tap.model,
        service_tier: tap.service_tier,
        content_bytes: tap.content_bytes,
    }
}

fn any_bytes(input: &mut Input) {
    let plan = input.cut_plan();
    let stream = input.rest();
    let whole = tap(&[stream]);
    let cut = tap(&pieces(stream, &plan));
    assert_eq!(
        cut,
        whole,
        "cut by {plan:?}: {:?}",
        String::from_utf8_lossy(stream)
    );
    assert!(whole.content_bytes <= stream.len() as u64);
    let lines = stream.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(whole.data_lines <= lines, "more data lines than lines");
}

const KINDS: [&str; 9] = [
    "response.created",
    "response.in_progress",
    "response.output_text.delta",
    "response.output_item.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
    "keepalive",
];

fn generated_events(input: &mut Input) {
    let crlf = input.chance(30);
    let end = if crlf { "\r\n" } else { "\n" };
    let mut stream = String::new();
    let mut expected = Seen {
        usage: None,
        terminal: None,
        data_lines: 0,
        first_event: None,
        model: None,
        service_tier: None,
        content_bytes: 0,
        at_event_boundary: true,
    };
    for _ in 0..input.below(12) {
        let kind = input.pick(&KINDS);
        if input.chance(20) {
            stream.push_str(&format!(": keep-alive{end}{end}"));
        }
        expected.at_event_boundary = true;
        if kind == "keepalive" {
            // A comment line without the blank line after it: not at an event boundary.
            stream.push_str(&format!(":{end}"));
            expected.at_event_boundary = false;
            continue;
        }
        if input.chance(10) {
            // Not JSON: counted as a data line, otherwise ignored.
            stream.push_str(&format!("data: {{\"usage\": {end}{end}"));
            expected.data_lines += 1;
            continue;
        }
        let tokens = |input: &mut Input| input.below(1 << 16) as u64;
        let usage = input.chance(60).then(|| Usage {
            input_tokens: tokens(input),
            cached_input_tokens: tokens(input),
            output_tokens: tokens(input),
            reasoning_tokens: tokens(input),
            total_tokens: tokens(input),
        });
        let model = input.chance(50).then(|| format!("gpt-{}", input.byte()));
        let tier = input
            .chance(30)
            .then(|| input.pick(&["flex", "priority", "default"]));
        let code = input
            .chance(50)
            .then(|| input.pick(&["server_error", "rate_limit_exceeded"]));
        let message = input.chance(50).then(|| format!("boom {}", input.byte()));
        let event = event_json(
            kind,
            usage,
            model.as_deref(),
            tier,
            code,
            message.as_deref(),
        );
        if input.chance(50) {
            stream.push_str(&format!("event: {kind}{end}"));
        }
        let space = if input.chance(80) { " " } else { "" };
        stream.push_str(&format!("data:{space}{event}{end}{end}"));
        expected.data_lines += 1;

        // What the tap should make of it. Deltas carry nothing it reads.
        let carries = !matches!(
            kind,
            "response.output_text.delta" | "response.output_item.done"
        );
        if expected.first_event.is_none() {
            expected.first_event = match kind {
                "response.created" | "response.in_progress" => None,
                "response.failed" | "error" => Some(FirstEvent::Failed),
                _ => Some(FirstEvent::Output),
            };
        }
        let interesting = carries && (usage.is_some() || is_terminal(kind));
        if !interesting {
            continue;
        }
        if usage.is_some() {
            expected.usage = usage;
        }
        if kind != "error" {
            if let Some(model) = model {
                expected.model = Some(model);
            }
            if let Some(tier) = tier {
                expected.service_tier = Some(tier.to_string());
            }
        }
        match kind {
            "response.completed" => expected.terminal = Some(Terminal::Completed),
            "response.incomplete" => expected.terminal = Some(Terminal::Incomplete),
            "response.failed" | "error" => {
                expected.terminal = Some(Terminal::Failed {
                    code: code.map(str::to_string),
                    message: message.clone(),
                })
            }
            _ => {}
        }
    }
    let plan = input.cut_plan();
    let mut seen = tap(&pieces(stream.as_bytes(), &plan));
    assert!(seen.content_bytes <= stream.len() as u64);
    seen.content_bytes = 0;
    assert_eq!(seen, expected, "stream:\n{stream}");
}

fn is_terminal(kind: &str) -> bool {
    matches!(
        kind,
        "response.completed" | "response.incomplete" | "response.failed" | "error"
    )
}

/// A Responses event of `kind` as a relay sends it.
fn event_json(
    kind: &str,
    usage: Option<Usage>,
    model: Option<&str>,
    tier: Option<&str>,
    code: Option<&str>,
    message: Option<&str>,
) -> Value {
    let usage = usage.map(|u| {
        json!({
            "input_tokens": u.input_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_input_tokens},
            "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.total_tokens,
        })
    });
    let mut error = json!({});
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    if let Some(message) = message {
        error["message"] = json!(message);
    }
    match kind {
        "response.output_text.delta" => json!({"type": kind, "delta": "the \"usage\" of"}),
        "response.output_item.done" => json!({"type": kind, "item": {"type": "message"}}),
        "error" => {
            let mut event = json!({"type": "error", "error": error});
            if usage.is_some() || model.is_some() {
                // An error event never carries a response; a top-level usage still counts.
                event["usage"] = usage.unwrap_or(Value::Null);
            }
            event
        }
        _ => {
            let mut response = json!({"id": "resp_1", "status": kind});
            if let Some(usage) = usage {
                response["usage"] = usage;
            }
            if let Some(model) = model {
                response["model"] = json!(model);
            }
            if let Some(tier) = tier {
                response["service_tier"] = json!(tier);
            }
            if kind == "response.failed" {
                response["error"] = error;
            }
            json!({"type": kind, "response": response})
        }
    }
}
