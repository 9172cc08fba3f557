//! `codex-helper session list|recent|last|search|transcript`: Codex's recorded threads, read
//! from `$CODEX_HOME/sessions` (see [`crate::codex::rollouts`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::codex::rollouts::list::{self, ListQuery, Listing};
use crate::codex::rollouts::search::{self, SearchQuery};
use crate::codex::rollouts::transcript::{self, Item, TranscriptOptions};
use crate::codex::rollouts::{Session, one_line, project};
use crate::config::Homes;

#[derive(Debug, clap::Subcommand)]
pub enum BrowseCommand {
    /// This project's threads, most recently used first (threads of every project when none
    /// belongs to it). A thread belongs to the project when it was started in the project's
    /// directory, inside it, or in one of its parents.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// The project directory (default: the current directory).
        #[arg(long, alias = "cwd", value_name = "DIR")]
        path: Option<PathBuf>,
        /// Threads of every project.
        #[arg(long, conflicts_with = "path")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Threads of every project used recently, newest first.
    Recent {
        /// How far back: 30m, 12h, 7d (0: none).
        #[arg(long, default_value = "12h")]
        since: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Show each thread's own working directory, not its project's root (the nearest
        /// folder holding `.git`).
        #[arg(long)]
        raw_cwd: bool,
        #[arg(long)]
        json: bool,
    },
    /// This project's most recently used thread, and the command that resumes it.
    Last {
        /// The project directory (default: the current directory).
        #[arg(long, alias = "cwd", value_name = "DIR")]
        path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Threads whose messages (the user's and the assistant's) contain TEXT, ignoring case;
    /// most recently used first, with the passages that match.
    Search {
        text: String,
        /// Threads to show at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only threads of this project (default: every project).
        #[arg(long, alias = "cwd", value_name = "DIR")]
        path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// A thread as a conversation: messages, reasoning summaries, tool calls and outputs.
    Transcript {
        /// The thread id (or a unique start of it, 6+ characters), or a rollout file's path.
        id: String,
        /// Show the last N items.
        #[arg(long, default_value_t = 40, conflicts_with = "all")]
        tail: usize,
        /// Show every item.
        #[arg(long)]
        all: bool,
        /// Messages only: no reasoning summaries or tool calls.
        #[arg(long)]
        messages_only: bool,
        /// Characters shown of a tool call's input or output.
        #[arg(long, default_value_t = 400)]
        truncate: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(homes: &Homes, command: BrowseCommand) -> anyhow::Result<()> {
    match command {
        BrowseCommand::List {
            limit,
            path,
            all,
            json,
        } => {
            let dir = (!all).then(|| project_dir(path)).transpose()?;
            let mut listing = list::list(&ListQuery {
                codex_home: &homes.codex,
                project: dir.as_deref(),
                fall_back_to_all: true,
                limit,
                since_ms: None,
            });
            list::count_turns(&mut listing);
            print_listing(&listing, json, false)
        }
        BrowseCommand::Recent {
            since,
            limit,
            raw_cwd,
            json,
        } => {
            let window = parse_window(&since)?;
            let mut listing = Listing::default();
            if window > 0 {
                listing = list::list(&ListQuery {
                    codex_home: &homes.codex,
                    project: None,
                    fall_back_to_all: false,
                    limit,
                    since_ms: Some(crate::time::now_ms().saturating_sub(window)),
                });
            }
            print_listing(&listing, json, !raw_cwd)
        }
        BrowseCommand::Last { path, json } => last(homes, path, json),
        BrowseCommand::Search {
            text,
            limit,
            path,
            json,
        } => search_threads(homes, &text, limit, path, json),
        BrowseCommand::Transcript {
            id,
            tail,
            all,
            messages_only,
            truncate,
            json,
        } => {
            let options = TranscriptOptions {
                tail: (!all).then_some(tail),
                tool_chars: truncate,
                tools: !messages_only,
            };
            show_transcript(homes, &id, options, json)
        }
    }
}

/// `session last`: the newest thread of the project at `path` (else here), and how to resume it.
fn last(homes: &Homes, path: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let dir = project_dir(path)?;
    let mut listing = list::list(&ListQuery {
        codex_home: &homes.codex,
        project: Some(&dir),
        fall_back_to_all: false,
        limit: 1,
        since_ms: None,
    });
    list::count_turns(&mut listing);
    let Some(session) = listing.sessions.first() else {
        bail!(
            "no Codex thread belongs to {} (under {}); `codex-helper session list --all` shows every thread",
            dir.display(),
            homes.codex.join("sessions").display()
        );
    };
    if json {
        let mut value = serde_json::to_value(session)?;
        value["resume_command"] = format!("codex resume {}", session.id).into();
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("Last thread of {}: {}", dir.display(), session.id);
    print_details(session, false);
    println!("Resume it: codex resume {}", session.id);
    note_skipped(listing.skipped_lines);
    Ok(())
}

/// `session search`: threads that mention `text`, with snippets.
fn search_threads(
    homes: &Homes,
    text: &str,
    limit: usize,
    path: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let dir = path.map(|p| project_dir(Some(p))).transpose()?;
    let result = search::search(&SearchQuery {
        codex_home: &homes.codex,
        text,
        project: dir.as_deref(),
        limit,
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    if result.hits.is_empty() {
        println!(
            "No thread mentions `{text}` ({} searched).",
            result.files_searched
        );
    }
    for hit in &result.hits {
        let session = &hit.session;
        println!(
            "{}  {}  {} match(es)  {}",
            session.updated,
            session.id,
            hit.matches,
            session.cwd.as_deref().unwrap_or("-")
        );
        for snippet in &hit.snippets {
            println!("    {}: {}", snippet.role, snippet.text);
        }
    }
    note_skipped(result.skipped_lines);
    Ok(())
}

/// `session transcript`: one thread's items, as `options` choose.
fn show_transcript(
    homes: &Homes,
    id: &str,
    options: TranscriptOptions,
    json: bool,
) -> anyhow::Result<()> {
    let path = list::find_rollout(&homes.codex, id)?;
    let transcript = transcript::read(&path, options)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&transcript)?);
        return Ok(());
    }
    let session = &transcript.session;
    println!(
        "Thread {} in {} (model {}, started {}); {} of {} item(s)",
        session.id,
        session.cwd.as_deref().unwrap_or("-"),
        session.model.as_deref().unwrap_or("-"),
        session.started.as_deref().unwrap_or("-"),
        transcript.items.len(),
        transcript.total_items
    );
    for item in &transcript.items {
        print_item(item);
    }
    note_skipped(transcript.skipped_lines);
    Ok(())
}

/// The project directory: `path`, else the current directory.
fn project_dir(path: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match path {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(project::canonical(&dir))
}

/// `30m`, `12h`, `7d`, `90s` or `0` as milliseconds.
fn parse_window(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    if text == "0" {
        return Ok(0);
    }
    let unit = |suffix: char, ms: u64| {
        text.strip_suffix(suffix)
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| n.saturating_mul(ms))
    };
    unit('s', 1_000)
        .or_else(|| unit('m', 60_000))
        .or_else(|| unit('h', 3_600_000))
        .or_else(|| unit('d', 86_400_000))
        .with_context(|| format!("--since `{text}`: expected e.g. 30m, 12h or 7d"))
}

fn print_listing(listing: &Listing, json: bool, project_roots: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(listing)?);
        return Ok(());
    }
    if listing.other_projects {
        if let Some(dir) = &listing.project {
            println!(
                "No thread belongs to {}; threads of every project:",
                dir.display()
            );
        }
    }
    if listing.sessions.is_empty() {
        println!(
            "No Codex threads found ({} rollout file(s)).",
            listing.files
        );
    }
    for session in &listing.sessions {
        println!("{}  {}", session.updated, session.id);
        print_details(session, project_roots);
    }
    if let Some(first) = listing.sessions.first() {
        println!("Resume one with: codex resume {}", first.id);
    }
    if listing.truncated {
        eprintln!(
            "note: only the {} most recent rollout files were looked at",
            crate::codex::rollouts::files::MAX_FILES
        );
    }
    note_skipped(listing.skipped_lines);
    Ok(())
}

fn print_details(session: &Session, project_root: bool) {
    let cwd = session.cwd.as_deref().map(|cwd| {
        if project_root {
            project::project_root(Path::new(cwd)).display().to_string()
        } else {
            cwd.to_string()
        }
    });
    let mut facts = vec![format!("in {}", cwd.as_deref().unwrap_or("-"))];
    if let Some(model) = &session.model {
        facts.push(format!("model {model}"));
    }
    if let Some(branch) = session.git.as_ref().and_then(|g| g.branch.as_deref()) {
        facts.push(format!("branch {branch}"));
    }
    if let (Some(user), Some(assistant)) = (session.user_turns, session.assistant_turns) {
        facts.push(format!("{user} user turn(s), {assistant} answer(s)"));
    }
    println!("    {}", facts.join(", "));
    println!("    > {}", one_line(&session.first_message, 100));
}

fn print_item(item: &Item) {
    let at = |timestamp: &Option<String>| timestamp.clone().unwrap_or_else(|| "-".into());
    let more = |cut: bool| if cut { " …(shortened)" } else { "" };
    match item {
        Item::User {
            timestamp,
            text,
            truncated,
        } => {
            println!("\n[{}] user:", at(timestamp));
            print_indented(&format!("{text}{}", more(*truncated)));
        }
        Item::Assistant {
            timestamp,
            text,
            truncated,
        } => {
            println!("\n[{}] assistant:", at(timestamp));
            print_indented(&format!("{text}{}", more(*truncated)));
        }
        Item::Reasoning {
            timestamp,
            text,
            truncated,
        } => {
            println!("\n[{}] reasoning:", at(timestamp));
            print_indented(&format!("{text}{}", more(*truncated)));
        }
        Item::ToolCall {
            timestamp,
            name,
            call_id,
            input,
            truncated,
        } => {
            println!(
                "\n[{}] tool call {name} ({}):",
                at(timestamp),
                call_id.as_deref().unwrap_or("-")
            );
            print_indented(&format!("{input}{}", more(*truncated)));
        }
        Item::ToolOutput {
            timestamp,
            call_id,
            output,
            truncated,
        } => {
            println!(
                "[{}] tool output ({}):",
                at(timestamp),
                call_id.as_deref().unwrap_or("-")
            );
            print_indented(&format!("{output}{}", more(*truncated)));
        }
    }
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

fn note_skipped(lines: u64) {
    if lines > 0 {
        eprintln!("note: {lines} line(s) skipped (not rollout records, or longer than 4 MiB)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_window("2h").unwrap(), 7_200_000);
        assert_eq!(parse_window("30m").unwrap(), 1_800_000);
        assert_eq!(parse_window("0").unwrap(), 0);
        assert!(parse_window("soon").is_err());
        assert!(parse_window("-1h").is_err());
    }
}
