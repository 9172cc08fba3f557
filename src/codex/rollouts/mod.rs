//! Codex's recorded threads for people: `session list|recent|last|search|transcript`.
//!
//! Reads `$CODEX_HOME/sessions/**/rollout-*.jsonl` and never writes them. Built to stay fast
//! and small over tens of thousands of files: files are ordered by name and modification time
//! without being opened ([`files`]), a thread's facts come from its first lines ([`head`]),
//! every file is read line by line with a cap on each line ([`lines`]), and lines that are not
//! rollout records are skipped and counted, never fatal.

pub mod entry;
pub mod files;
pub mod head;
pub mod lines;
pub mod list;
pub mod project;
pub mod search;
pub mod transcript;

use std::path::PathBuf;

use serde::Serialize;

use self::entry::Git;
use self::files::RolloutFile;
use self::head::Head;

/// The longest first message kept for a listing, in characters.
const FIRST_MESSAGE_CHARS: usize = 240;

/// One thread, as the listings show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub id: String,
    pub path: PathBuf,
    pub cwd: Option<String>,
    /// When the thread started (`session_meta.timestamp`).
    pub started: Option<String>,
    /// When its file last changed, ms since the epoch, and as RFC 3339 (UTC).
    pub updated_ms: u64,
    pub updated: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub cli_version: Option<String>,
    pub git: Option<Git>,
    /// The first thing the user typed, on one line, shortened.
    pub first_message: String,
    /// Counted only where shown with counts (`list`, `last`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_turns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assistant_turns: Option<u64>,
}

impl Session {
    fn new(file: &RolloutFile, head: Head) -> Self {
        let meta = head.meta;
        Self {
            id: meta.id,
            path: file.path.clone(),
            cwd: meta.cwd,
            started: meta.timestamp,
            updated_ms: file.modified_ms,
            updated: rfc3339_utc(file.modified_ms),
            model: head.model,
            provider: meta.model_provider,
            cli_version: meta.cli_version,
            git: meta.git,
            first_message: one_line(
                head.first_user.as_deref().unwrap_or_default(),
                FIRST_MESSAGE_CHARS,
            ),
            user_turns: None,
            assistant_turns: None,
        }
    }
}

/// `text` on one line (runs of whitespace as one space), at most `max` characters (`…` ends
/// a shortened one).
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= max {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// At most `max` characters of `text`, and whether it was cut.
pub fn clip(text: &str, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((at, _)) => (text[..at].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// Epoch ms as `YYYY-MM-DDThh:mm:ssZ`.
pub fn rfc3339_utc(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_text_shapes() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            crate::time::parse_rfc3339_ms(&rfc3339_utc(1_796_000_123_000)),
            Some(1_796_000_123_000)
        );
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(one_line("  fix\n the   bug ", 100), "fix the bug");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(clip("héllo", 2), ("hé".to_string(), true));
        assert_eq!(clip("hé", 2), ("hé".to_string(), false));
    }
}
