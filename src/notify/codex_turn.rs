//! Codex's `notify` hook: Codex runs the configured program with one JSON argument when a
//! turn completes (`{"type": "agent-turn-complete", "thread-id", "turn-id", "cwd",
//! "input-messages", "last-assistant-message"}`). `notify codex` finds the request that was
//! that turn in the ledger and notifies when it took long (pure: payload and ledger lines in).

use serde::Deserialize;
use serde_json::json;

use super::{Event, EventKind};
use crate::ledger::query::RequestLine;

/// The only payload type acted on.
pub const TURN_COMPLETE: &str = "agent-turn-complete";
/// How far back a request may have ended to be the turn's.
pub const SEARCH_WINDOW_MS: u64 = 300_000;
/// How much of the last answer a notification quotes.
const QUOTED_CHARS: usize = 160;

/// The payload, as far as it is read (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TurnComplete {
    #[serde(rename = "type")]
    pub kind: String,
    pub thread_id: Option<String>,
    pub turn_id: Option<String>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub input_messages: Vec<String>,
    pub last_assistant_message: Option<String>,
}

/// Reads a payload; the error says what was expected.
pub fn parse(text: &str) -> anyhow::Result<TurnComplete> {
    serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "the notify payload is not Codex's turn JSON ({e}); expected {{\"type\":\"agent-turn-complete\",\"thread-id\":…}}"
        )
    })
}

/// The request that was the turn: among the thread's requests that ended within the window
/// before `now_ms`, a Responses call first, then the latest to end.
pub fn pick(lines: &[RequestLine], now_ms: u64) -> Option<&RequestLine> {
    let ended = |l: &RequestLine| l.started_ms + l.duration_ms.max(0.0) as u64;
    lines
        .iter()
        .filter(|l| ended(l) + SEARCH_WINDOW_MS >= now_ms)
        .max_by_key(|l| (l.path.contains("/responses"), ended(l)))
}

/// The notification for a turn that took `line.duration_ms`.
pub fn event(turn: &TurnComplete, line: &RequestLine, now_ms: u64) -> Event {
    let secs = (line.duration_ms / 1000.0).round() as u64;
    let took = if secs >= 60 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    };
    let said = turn
        .last_assistant_message
        .as_deref()
        .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|m| !m.is_empty());
    let message = match said {
        Some(m) if m.chars().count() > QUOTED_CHARS => {
            format!("{}…", m.chars().take(QUOTED_CHARS).collect::<String>())
        }
        Some(m) => m,
        None => "The turn is done.".into(),
    };
    Event {
        kind: EventKind::LongTurn,
        relay: None,
        title: format!("Codex: turn done in {took}"),
        message,
        at_ms: now_ms,
        suppressed: 0,
        details: json!({
            "thread_id": turn.thread_id,
            "turn_id": turn.turn_id,
            "cwd": turn.cwd,
            "duration_ms": line.duration_ms,
            "trace_id": line.trace_id,
            "model": line.model,
            "relay": line.provider.as_ref().map(|p| format!("{p}.{}", line.endpoint.as_deref().unwrap_or("default"))),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"type":"agent-turn-complete","thread-id":"b5f6c1c2-1111-2222-3333-444455556666",
        "turn-id":"12","cwd":"/home/u/proj","input-messages":["fix the bug"],
        "last-assistant-message":"Fixed it.\nAll tests pass.","extra":1}"#;

    fn line(path: &str, started_ms: u64, duration_ms: f64) -> RequestLine {
        RequestLine {
            id: 1,
            trace_id: format!("t-{started_ms}"),
            started_ms,
            started_local: String::new(),
            method: "POST".into(),
            path: path.into(),
            session_id: Some("b5f6".into()),
            provider: Some("a".into()),
            endpoint: Some("default".into()),
            model: Some("gpt-5".into()),
            model_requested: None,
            model_sent: None,
            status: Some(200),
            outcome: "completed".into(),
            error_class: None,
            total_tokens: None,
            cost_usd: None,
            ttfb_ms: None,
            duration_ms,
        }
    }

    #[test]
    fn parses_agent_turn_complete_payload_with_thread_id() {
        let turn = parse(SAMPLE).unwrap();
        assert_eq!(turn.kind, TURN_COMPLETE);
        assert_eq!(
            turn.thread_id.as_deref(),
            Some("b5f6c1c2-1111-2222-3333-444455556666")
        );
        assert_eq!(turn.input_messages, ["fix the bug"]);
        let e = parse("[1]").unwrap_err().to_string();
        assert!(
            e.contains("expected {\"type\":\"agent-turn-complete\""),
            "{e}"
        );
    }

    #[test]
    fn picks_best_recent_request_prefers_responses_path() {
        let now = 1_000_000;
        let lines = [
            line("/v1/models", 990_000, 100.0),
            line("/v1/responses", 900_000, 80_000.0),
            line("/v1/responses", 600_000, 10.0), // ended before the window
        ];
        assert_eq!(pick(&lines, now).unwrap().trace_id, "t-900000");
        let only_old = [line("/v1/responses", 1, 10.0)];
        assert!(pick(&only_old, now).is_none());
        let two = [
            line("/v1/responses", 990_000, 5.0),
            line("/v1/responses", 900_000, 95_000.0),
        ];
        // Both end in the window; the one that ended last wins.
        assert_eq!(pick(&two, now).unwrap().trace_id, "t-900000");
    }

    #[test]
    fn the_event_quotes_the_last_answer_on_one_line() {
        let turn = parse(SAMPLE).unwrap();
        let e = event(&turn, &line("/v1/responses", 0, 125_400.0), 9);
        assert_eq!(e.title, "Codex: turn done in 2m 5s");
        assert_eq!(e.message, "Fixed it. All tests pass.");
        assert_eq!(e.details["relay"], "a.default");
        assert_eq!(e.details["turn_id"], "12");
    }
}
