//! `session transcript`: a thread as a conversation — what the user typed, the assistant's
//! messages, its reasoning summaries, and tool calls with their outputs (shortened).

use std::collections::VecDeque;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::entry::{self, Entry};
use super::files::RolloutFile;
use super::head::{self, LINE_CAP, Skipped};
use super::lines::BoundedLines;
use super::{Session, clip};

/// The longest message kept whole, in characters (a pasted file can be megabytes).
const MESSAGE_CHARS: usize = 64 * 1024;

/// One step of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    User {
        timestamp: Option<String>,
        text: String,
        truncated: bool,
    },
    Assistant {
        timestamp: Option<String>,
        text: String,
        truncated: bool,
    },
    Reasoning {
        timestamp: Option<String>,
        text: String,
        truncated: bool,
    },
    ToolCall {
        timestamp: Option<String>,
        name: String,
        call_id: Option<String>,
        input: String,
        truncated: bool,
    },
    ToolOutput {
        timestamp: Option<String>,
        call_id: Option<String>,
        output: String,
        truncated: bool,
    },
}

/// What to show.
#[derive(Debug, Clone, Copy)]
pub struct TranscriptOptions {
    /// Only the last this many items (`None`: all).
    pub tail: Option<usize>,
    /// Characters kept of a tool call's input or output.
    pub tool_chars: usize,
    /// Show reasoning summaries and tool calls (else messages only).
    pub tools: bool,
}

/// A thread's transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub session: Session,
    /// Items in the thread (of the kinds shown), before `tail`.
    pub total_items: u64,
    pub items: Vec<Item>,
    pub skipped_lines: u64,
}

/// Reads the rollout at `path` into a transcript.
pub fn read(path: &Path, options: TranscriptOptions) -> anyhow::Result<Transcript> {
    let mut skipped = Skipped::default();
    let head = head::read(path, &mut skipped).with_context(|| {
        format!(
            "{} is not a Codex rollout (no session_meta in its first lines)",
            path.display()
        )
    })?;
    let modified_ms = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    let file = RolloutFile {
        path: path.to_path_buf(),
        name_id: String::new(),
        modified_ms,
    };
    let user_events = head.user_events;
    let session = Session::new(&file, head);
    skipped = Skipped::default(); // the head's lines are read again below
    let reader =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = BoundedLines::new(reader, LINE_CAP);
    let mut items = VecDeque::new();
    let mut total_items = 0;
    while let Some(line) = lines
        .next_line()
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Some((timestamp, entry)) = entry::parse(line) else {
            skipped.0 += 1;
            continue;
        };
        let Some(item) = to_item(timestamp, entry, user_events, options) else {
            continue;
        };
        total_items += 1;
        items.push_back(item);
        if options.tail.is_some_and(|tail| items.len() > tail) {
            items.pop_front();
        }
    }
    skipped.0 += lines.oversized;
    Ok(Transcript {
        session,
        total_items,
        items: items.into(),
        skipped_lines: skipped.0,
    })
}

fn to_item(
    timestamp: Option<String>,
    entry: Entry,
    user_events: bool,
    options: TranscriptOptions,
) -> Option<Item> {
    let item = match entry {
        Entry::UserEvent(text) if user_events => {
            let (text, truncated) = clip(&text, MESSAGE_CHARS);
            Item::User {
                timestamp,
                text,
                truncated,
            }
        }
        Entry::Message { role, text } if !text.is_empty() => match role.as_str() {
            "assistant" => {
                let (text, truncated) = clip(&text, MESSAGE_CHARS);
                Item::Assistant {
                    timestamp,
                    text,
                    truncated,
                }
            }
            "user" if !user_events && !entry::is_injected_context(&text) => {
                let (text, truncated) = clip(&text, MESSAGE_CHARS);
                Item::User {
                    timestamp,
                    text,
                    truncated,
                }
            }
            _ => return None,
        },
        Entry::Reasoning(text) if options.tools && !text.is_empty() => {
            let (text, truncated) = clip(&text, MESSAGE_CHARS);
            Item::Reasoning {
                timestamp,
                text,
                truncated,
            }
        }
        Entry::ToolCall {
            name,
            call_id,
            input,
        } if options.tools => {
            let (input, truncated) = clip(&input, options.tool_chars);
            Item::ToolCall {
                timestamp,
                name,
                call_id,
                input,
                truncated,
            }
        }
        Entry::ToolOutput { call_id, output } if options.tools => {
            let (output, truncated) = clip(&output, options.tool_chars);
            Item::ToolOutput {
                timestamp,
                call_id,
                output,
                truncated,
            }
        }
        _ => return None,
    };
    Some(item)
}
