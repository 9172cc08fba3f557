//! One rollout line, read into what the session helpers show (pure).
//!
//! Codex writes each line as `{"timestamp", "type", "payload"}`: `session_meta` (the thread's
//! id, working directory, git state, provider), `turn_context` (the model of a turn),
//! `event_msg` (`user_message` is what the user typed) and `response_item` (the model's
//! `message`s, `reasoning` with its summary, tool calls and their outputs). Only the fields
//! shown are read; the rest of a line is skipped without being kept.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// What a line holds, as far as the helpers care.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Meta(Meta),
    /// A turn's settings: the model.
    TurnContext {
        model: Option<String>,
    },
    /// What the user typed (`event_msg` `user_message`).
    UserEvent(String),
    /// A `message` response item of a role (`user`, `assistant`, `developer`, `system`).
    Message {
        role: String,
        text: String,
    },
    /// A reasoning item's summary (the encrypted reasoning itself is never shown).
    Reasoning(String),
    ToolCall {
        name: String,
        call_id: Option<String>,
        input: String,
    },
    ToolOutput {
        call_id: Option<String>,
        output: String,
    },
    /// A well-formed line of another kind (token counts, other events).
    Other,
}

/// A thread's `session_meta`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Meta {
    pub id: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub model_provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub cli_version: Option<String>,
    #[serde(default)]
    pub originator: Option<String>,
    #[serde(default)]
    pub git: Option<Git>,
}

/// The git state Codex recorded when the thread started.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Git {
    #[serde(default)]
    pub commit_hash: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub repository_url: Option<String>,
}

#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct TurnContext {
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Vec<Part>>,
    #[serde(default)]
    summary: Option<Vec<Part>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    action: Option<Value>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// A line read: its timestamp and entry. `None` when the line is not a rollout record (not
/// JSON, or no `type`): the caller counts it as malformed.
pub fn parse(line: &[u8]) -> Option<(Option<String>, Entry)> {
    let raw: RawLine = serde_json::from_slice(line).ok()?;
    let payload = raw.payload.map(RawValue::get).unwrap_or("null");
    let entry = match raw.kind.as_str() {
        "session_meta" => serde_json::from_str(payload).map_or(Entry::Other, Entry::Meta),
        "turn_context" => serde_json::from_str::<TurnContext>(payload)
            .map_or(Entry::Other, |t| Entry::TurnContext { model: t.model }),
        "event_msg" => match serde_json::from_str::<Event>(payload) {
            Ok(Event {
                kind,
                message: Some(message),
            }) if kind == "user_message" => Entry::UserEvent(message),
            _ => Entry::Other,
        },
        "response_item" => serde_json::from_str::<Item>(payload).map_or(Entry::Other, item),
        _ => Entry::Other,
    };
    Some((raw.timestamp, entry))
}

fn item(item: Item) -> Entry {
    match item.kind.as_str() {
        "message" => Entry::Message {
            role: item.role.unwrap_or_default(),
            text: texts(item.content.as_deref().unwrap_or_default()),
        },
        "reasoning" => Entry::Reasoning(texts(item.summary.as_deref().unwrap_or_default())),
        "function_call" | "custom_tool_call" => Entry::ToolCall {
            name: item.name.unwrap_or_default(),
            call_id: item.call_id,
            input: item.arguments.or(item.input).unwrap_or_default(),
        },
        "local_shell_call" | "web_search_call" => Entry::ToolCall {
            name: item.kind.trim_end_matches("_call").to_string(),
            call_id: item.call_id,
            input: item.action.map(|a| a.to_string()).unwrap_or_default(),
        },
        "function_call_output" | "custom_tool_call_output" => Entry::ToolOutput {
            call_id: item.call_id,
            output: output_text(item.output),
        },
        _ => Entry::Other,
    }
}

/// The text of content parts whose type is `text` or ends in `_text` (`input_text`,
/// `output_text`, `summary_text`), joined by blank lines.
fn texts(parts: &[Part]) -> String {
    let texts: Vec<&str> = parts
        .iter()
        .filter(|p| p.kind == "text" || p.kind.ends_with("_text"))
        .filter_map(|p| p.text.as_deref())
        .filter(|t| !t.is_empty())
        .collect();
    texts.join("\n\n")
}

/// A tool output: a string, or `{content, success}`, or anything else as JSON.
fn output_text(output: Option<Value>) -> String {
    match output {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(Value::Object(map)) if map.get("content").is_some_and(Value::is_string) => map
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Some(other) => other.to_string(),
    }
}

/// Whether a line can be a rollout record at all (a JSON object), without reading it: lines
/// passed over unread by a filter are still counted when they are broken.
pub fn looks_like_record(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    line.first() == Some(&b'{') && line.last() == Some(&b'}')
}

/// Whether a user message is context Codex injects (environment, AGENTS.md, instructions)
/// rather than something the user typed.
pub fn is_injected_context(text: &str) -> bool {
    let text = text.trim_start();
    [
        "<environment_context>",
        "<user_instructions>",
        "# AGENTS.md instructions",
        "<user_shell_command>",
    ]
    .iter()
    .any(|tag| text.starts_with(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> Entry {
        parse(line.as_bytes()).unwrap().1
    }

    #[test]
    fn reads_each_kind_codex_writes() {
        let meta = entry(
            r#"{"timestamp":"2026-11-30T10:00:00.000Z","type":"session_meta","payload":{"id":"0199a1b2-0000-7000-8000-000000000001","timestamp":"2026-11-30T10:00:00.000Z","cwd":"/w/p","originator":"codex_cli_rs","cli_version":"0.171.0","base_instructions":{"text":"long"},"model_provider":"openai","git":{"commit_hash":"abc","branch":"main","repository_url":"git@x:y.git"}}}"#,
        );
        let Entry::Meta(meta) = meta else { panic!() };
        assert_eq!(meta.cwd.as_deref(), Some("/w/p"));
        assert_eq!(meta.git.unwrap().branch.as_deref(), Some("main"));
        assert_eq!(
            entry(
                r#"{"type":"turn_context","payload":{"cwd":"/w","model":"gpt-5.5","effort":"high"}}"#
            ),
            Entry::TurnContext {
                model: Some("gpt-5.5".into())
            }
        );
        assert_eq!(
            entry(
                r#"{"type":"event_msg","payload":{"type":"user_message","message":"fix it","images":[]}}"#
            ),
            Entry::UserEvent("fix it".into())
        );
        assert_eq!(
            entry(
                r#"{"type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Done."},{"type":"refusal","text":"x"}]}}"#
            ),
            Entry::Message {
                role: "assistant".into(),
                text: "Done.".into()
            }
        );
        assert_eq!(
            entry(
                r#"{"type":"response_item","payload":{"type":"reasoning","summary":[{"type":"summary_text","text":"**Plan**"}],"content":null,"encrypted_content":"gAAA"}}"#
            ),
            Entry::Reasoning("**Plan**".into())
        );
        assert_eq!(
            entry(
                r#"{"type":"response_item","payload":{"type":"function_call","name":"shell","arguments":"{\"command\":[\"ls\"]}","call_id":"c1"}}"#
            ),
            Entry::ToolCall {
                name: "shell".into(),
                call_id: Some("c1".into()),
                input: r#"{"command":["ls"]}"#.into()
            }
        );
        assert_eq!(
            entry(
                r#"{"type":"response_item","payload":{"type":"function_call_output","call_id":"c1","output":{"content":"a.txt","success":true}}}"#
            ),
            Entry::ToolOutput {
                call_id: Some("c1".into()),
                output: "a.txt".into()
            }
        );
        assert_eq!(
            entry(
                r#"{"type":"response_item","payload":{"type":"custom_tool_call_output","call_id":"c2","output":"ok"}}"#
            ),
            Entry::ToolOutput {
                call_id: Some("c2".into()),
                output: "ok".into()
            }
        );
        assert_eq!(
            entry(r#"{"type":"event_msg","payload":{"type":"token_count"}}"#),
            Entry::Other
        );
        assert_eq!(
            entry(r#"{"type":"response_item","payload":7}"#),
            Entry::Other
        );
        assert!(parse(b"{not json").is_none());
        assert!(parse(b"[1,2]").is_none());
    }

    #[test]
    fn injected_context_is_recognised() {
        assert!(is_injected_context(
            "<environment_context>\n  <cwd>/w</cwd>"
        ));
        assert!(is_injected_context("# AGENTS.md instructions for /w"));
        assert!(!is_injected_context("please fix <environment_context>"));
    }
}
