//! `session search`: threads whose messages (what the user typed, what the assistant
//! answered) contain a text, case-insensitively, with the passages around the matches.
//!
//! Every file is read line by line; a line is read as JSON only when it is a message and,
//! for an ASCII query, when its raw bytes contain the query (JSON escapes only change quotes,
//! backslashes and control characters, which such a query then must not hold).

use std::path::Path;

use memchr::memmem;
use serde::Serialize;

use super::entry::{self, Entry};
use super::files;
use super::head::{self, LINE_CAP, Skipped};
use super::lines::BoundedLines;
use super::list::ProjectMatcher;
use super::{Session, one_line};

/// Passages kept per thread.
const SNIPPETS_PER_SESSION: usize = 3;
/// Characters shown on each side of a match.
const CONTEXT_CHARS: usize = 60;

/// A search.
pub struct SearchQuery<'a> {
    pub codex_home: &'a Path,
    pub text: &'a str,
    /// Only threads of this project.
    pub project: Option<&'a Path>,
    /// Threads with matches to find at most.
    pub limit: usize,
}

/// A passage around a match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snippet {
    /// `user` or `assistant`.
    pub role: String,
    pub timestamp: Option<String>,
    pub text: String,
}

/// A thread with matches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub session: Session,
    /// Matches in the thread's messages.
    pub matches: u64,
    pub snippets: Vec<Snippet>,
}

/// What a search found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SearchResult {
    pub query: String,
    pub hits: Vec<Hit>,
    /// Rollout files read.
    pub files_searched: usize,
    pub skipped_lines: u64,
}

/// The threads matching `query`, most recently used first.
pub fn search(query: &SearchQuery) -> anyhow::Result<SearchResult> {
    let needle = Folded::new(query.text);
    if needle.text.is_empty() {
        anyhow::bail!("the search text is empty");
    }
    let raw_filter = raw_prefilter(query.text);
    let mut matcher = query.project.map(ProjectMatcher::new);
    let mut result = SearchResult {
        query: query.text.to_string(),
        ..Default::default()
    };
    let mut skipped = Skipped::default();
    let mut lowered = Vec::new();
    for file in files::find(query.codex_home).files {
        if result.hits.len() >= query.limit {
            break;
        }
        // The whole file is read below: its bad lines are counted there.
        let Some(head) = head::read(&file.path, &mut Skipped::default()) else {
            continue;
        };
        if let Some(m) = &mut matcher {
            if !m.matches(head.meta.cwd.as_deref()) {
                continue;
            }
        }
        result.files_searched += 1;
        let user_events = head.user_events;
        let Ok(reader) = std::fs::File::open(&file.path) else {
            continue;
        };
        let mut lines = BoundedLines::new(reader, LINE_CAP);
        let mut hit: Option<Hit> = None;
        while let Ok(Some(line)) = lines.next_line() {
            if !entry::looks_like_record(line) {
                skipped.0 += u64::from(!line.trim_ascii().is_empty());
                continue;
            }
            let message_line = if user_events {
                memmem::find(line, b"\"user_message\"").is_some()
                    || memmem::find(line, b"\"assistant\"").is_some()
            } else {
                memmem::find(line, b"\"message\"").is_some()
            };
            if !message_line {
                continue;
            }
            if let Some(finder) = &raw_filter {
                lowered.clear();
                lowered.extend(line.iter().map(u8::to_ascii_lowercase));
                if finder.find(&lowered).is_none() {
                    continue;
                }
            }
            let Some((timestamp, entry)) = entry::parse(line) else {
                skipped.0 += 1;
                continue;
            };
            let (role, text) = match entry {
                Entry::UserEvent(text) if user_events => ("user", text),
                Entry::Message { role, text } if role == "assistant" => ("assistant", text),
                Entry::Message { role, text }
                    if role == "user" && !user_events && !entry::is_injected_context(&text) =>
                {
                    ("user", text)
                }
                _ => continue,
            };
            let found = needle.find_all(&text);
            if found.is_empty() {
                continue;
            }
            let hit = hit.get_or_insert_with(|| Hit {
                session: Session::new(&file, head.clone()),
                matches: 0,
                snippets: Vec::new(),
            });
            hit.matches += found.len() as u64;
            for &(start, end) in found
                .iter()
                .take(SNIPPETS_PER_SESSION.saturating_sub(hit.snippets.len()))
            {
                hit.snippets.push(Snippet {
                    role: role.to_string(),
                    timestamp: timestamp.clone(),
                    text: snippet(&text, start, end),
                });
            }
        }
        skipped.0 += lines.oversized;
        result.hits.extend(hit);
    }
    result.skipped_lines = skipped.0;
    Ok(result)
}

/// A finder over lower-cased raw lines, when the query's matches are sure to show in them
/// as typed: ASCII, without quotes, backslashes or control characters.
fn raw_prefilter(query: &str) -> Option<memmem::Finder<'static>> {
    let plain = query
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_control() && b != b'"' && b != b'\\');
    plain.then(|| memmem::Finder::new(query.to_ascii_lowercase().as_bytes()).into_owned())
}

/// A text lower-cased, with each lower-cased byte's position in the original.
struct Folded {
    text: String,
    origin: Vec<usize>,
}

impl Folded {
    fn new(text: &str) -> Self {
        let mut folded = Self {
            text: String::with_capacity(text.len()),
            origin: Vec::with_capacity(text.len()),
        };
        for (at, c) in text.char_indices() {
            for lower in c.to_lowercase() {
                folded.text.push(lower);
                folded.origin.resize(folded.text.len(), at);
            }
        }
        folded
    }

    /// The byte ranges in `haystack` where this (lower-cased) text occurs, ignoring case.
    fn find_all(&self, haystack: &str) -> Vec<(usize, usize)> {
        let folded = Folded::new(haystack);
        folded
            .text
            .match_indices(&self.text)
            .map(|(at, m)| {
                let start = folded.origin[at];
                let last = folded.origin[at + m.len() - 1];
                let end = last + haystack[last..].chars().next().map_or(0, char::len_utf8);
                (start, end)
            })
            .collect()
    }
}

/// The match at `start..end` of `text` with some context, on one line.
fn snippet(text: &str, start: usize, end: usize) -> String {
    let before: String = {
        let mut chars: Vec<char> = text[..start]
            .chars()
            .rev()
            .take(CONTEXT_CHARS + 1)
            .collect();
        let cut = chars.len() > CONTEXT_CHARS;
        chars.truncate(CONTEXT_CHARS);
        let mut s: String = chars.into_iter().rev().collect();
        if cut {
            s.insert(0, '…');
        }
        s
    };
    let after = &text[end..];
    let mut tail: String = after.chars().take(CONTEXT_CHARS).collect();
    if after.chars().nth(CONTEXT_CHARS).is_some() {
        tail.push('…');
    }
    one_line(&format!("{before}{}{tail}", &text[start..end]), usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ignore_case_and_map_back_to_the_original() {
        let needle = Folded::new("Straße");
        let text = "In der STRASSE? Nein: straße und STRAßE.";
        let found = needle.find_all(text);
        assert_eq!(found.len(), 2);
        assert_eq!(&text[found[0].0..found[0].1], "straße");
        assert_eq!(&text[found[1].0..found[1].1], "STRAßE");
        let ascii = Folded::new("TODO");
        assert_eq!(ascii.find_all("a todo, a ToDo"), vec![(2, 6), (10, 14)]);
    }

    #[test]
    fn snippets_keep_context_on_one_line() {
        let text = format!("{}\nneedle here\n{}", "a".repeat(100), "b".repeat(100));
        let at = text.find("needle").unwrap();
        let s = snippet(&text, at, at + 6);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains(" needle here "));
        assert_eq!(snippet("short needle", 6, 12), "short needle");
    }

    #[test]
    fn the_raw_prefilter_is_used_only_when_it_is_sound() {
        assert!(raw_prefilter("Fix the bug").is_some());
        assert!(raw_prefilter("say \"hi\"").is_none());
        assert!(raw_prefilter("é").is_none());
    }
}
