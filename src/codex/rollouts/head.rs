//! What a rollout's first lines say about its thread (`session_meta`, the model, the first
//! thing the user typed), and its turn counts from one pass over the raw lines.

use std::path::Path;

use memchr::memmem;

use super::entry::{self, Entry, Meta};
use super::lines::BoundedLines;

/// Non-empty lines read at most for a thread's head.
pub const HEAD_LINES: usize = 512;
/// The longest line read (the `session_meta` line carries ~25k characters of instructions;
/// a tool output may be megabytes, and is passed over).
pub const LINE_CAP: usize = 4 << 20;

/// A thread's head.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub meta: Meta,
    /// The model of the first turn (or `session_meta.model` when Codex wrote one).
    pub model: Option<String>,
    /// The first message the user typed.
    pub first_user: Option<String>,
    /// Whether the user's messages are recorded as `user_message` events (Codex writes each
    /// both as an event and as a `message` item; the event is what was typed).
    pub user_events: bool,
}

/// What reading lines cost: lines that were not rollout records or over the cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped(pub u64);

/// Reads `path`'s head. `None` when the file has no `session_meta` in its first lines (not a
/// thread Codex can resume) or cannot be read.
pub fn read(path: &Path, skipped: &mut Skipped) -> Option<Head> {
    let file = std::fs::File::open(path).ok()?;
    let mut lines = BoundedLines::new(file, LINE_CAP);
    let mut meta: Option<Meta> = None;
    let (mut model, mut first_item_user, mut first_event_user) = (None, None, None);
    let mut seen = 0;
    while let Ok(Some(line)) = lines.next_line() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        seen += 1;
        if seen > HEAD_LINES {
            break;
        }
        let wanted = [
            &b"session_meta"[..],
            b"turn_context",
            b"user_message",
            b"\"user\"",
        ]
        .iter()
        .any(|needle| memmem::find(line, needle).is_some());
        if !wanted {
            continue;
        }
        let Some((_, entry)) = entry::parse(line) else {
            skipped.0 += 1;
            continue;
        };
        match entry {
            Entry::Meta(m) if meta.is_none() => meta = Some(m),
            Entry::TurnContext { model: Some(m) } if model.is_none() => model = Some(m),
            Entry::UserEvent(text) if first_event_user.is_none() => first_event_user = Some(text),
            Entry::Message { role, text }
                if role == "user"
                    && first_item_user.is_none()
                    && !text.is_empty()
                    && !entry::is_injected_context(&text) =>
            {
                first_item_user = Some(text)
            }
            _ => {}
        }
        if meta.is_some() && model.is_some() && first_event_user.is_some() {
            break;
        }
    }
    skipped.0 += lines.oversized;
    let meta = meta?;
    Some(Head {
        model: meta.model.clone().or(model),
        user_events: first_event_user.is_some(),
        first_user: first_event_user.or(first_item_user),
        meta,
    })
}

/// A thread's turns, counted over its raw lines without reading them as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turns {
    pub user: u64,
    pub assistant: u64,
}

/// Counts `path`'s user turns (`user_message` events) and assistant messages.
pub fn count_turns(path: &Path, skipped: &mut Skipped) -> Turns {
    let Ok(file) = std::fs::File::open(path) else {
        return Turns::default();
    };
    let user = memmem::Finder::new(b"\"user_message\"");
    let event = memmem::Finder::new(b"\"event_msg\"");
    let assistant = memmem::Finder::new(b"\"role\":\"assistant\"");
    let mut lines = BoundedLines::new(file, LINE_CAP);
    let mut turns = Turns::default();
    while let Ok(Some(line)) = lines.next_line() {
        if user.find(line).is_some() && event.find(line).is_some() {
            turns.user += 1;
        } else if assistant.find(line).is_some() {
            turns.assistant += 1;
        }
    }
    skipped.0 += lines.oversized;
    turns
}
