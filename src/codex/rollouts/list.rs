//! `session list`, `recent`, `last` and finding a thread by id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Serialize;

use super::files::{self, RolloutFile};
use super::head::{self, Skipped};
use super::{Session, project};

/// Threads found, with what the search passed over.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    pub sessions: Vec<Session>,
    /// The project directory the threads were matched against, if any.
    pub project: Option<PathBuf>,
    /// No thread belongs to the project, so threads of every project are shown.
    pub other_projects: bool,
    /// Rollout files found.
    pub files: usize,
    /// More rollout files existed than are looked at.
    pub truncated: bool,
    /// Lines that were not rollout records, or over the line cap.
    pub skipped_lines: u64,
}

/// Decides whether a thread's working directory belongs to a project, resolving each
/// distinct directory once.
pub struct ProjectMatcher {
    dir: PathBuf,
    seen: HashMap<String, bool>,
}

impl ProjectMatcher {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: project::canonical(dir),
            seen: HashMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn matches(&mut self, cwd: Option<&str>) -> bool {
        let Some(cwd) = cwd else { return false };
        if let Some(known) = self.seen.get(cwd) {
            return *known;
        }
        let path = Path::new(cwd);
        let related = project::related(path, &self.dir)
            || project::related(&project::canonical(path), &self.dir);
        self.seen.insert(cwd.to_string(), related);
        related
    }
}

/// Where a listing looks.
pub struct ListQuery<'a> {
    pub codex_home: &'a Path,
    /// Only threads of this project (see [`project::related`]).
    pub project: Option<&'a Path>,
    /// When no thread belongs to the project, show threads of every project instead.
    pub fall_back_to_all: bool,
    pub limit: usize,
    /// Only threads whose file changed at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
}

/// The most recently used threads, newest first. Reads the heads of files in order of last
/// use until `limit` threads of the project are found. Threads without a user message are
/// left out (nothing to resume).
pub fn list(query: &ListQuery) -> Listing {
    let found = files::find(query.codex_home);
    let mut listing = Listing {
        files: found.files.len(),
        truncated: found.truncated,
        ..Default::default()
    };
    let mut matcher = query.project.map(ProjectMatcher::new);
    listing.project = matcher.as_ref().map(|m| m.dir().to_path_buf());
    let mut skipped = Skipped::default();
    let mut others = Vec::new();
    for file in &found.files {
        if listing.sessions.len() >= query.limit {
            break;
        }
        if query.since_ms.is_some_and(|since| file.modified_ms < since) {
            break; // newest first: the rest are older
        }
        let Some(head) = head::read(&file.path, &mut skipped) else {
            continue;
        };
        if head.first_user.is_none() {
            continue;
        }
        let session = Session::new(file, head);
        let belongs = matcher
            .as_mut()
            .is_none_or(|m| m.matches(session.cwd.as_deref()));
        if belongs {
            listing.sessions.push(session);
        } else if query.fall_back_to_all && others.len() < query.limit {
            others.push(session);
        }
    }
    if listing.sessions.is_empty() && query.fall_back_to_all && !others.is_empty() {
        listing.sessions = others;
        listing.other_projects = true;
    }
    listing.skipped_lines = skipped.0;
    listing
}

/// Adds turn counts to each session (one pass over each file's raw lines).
pub fn count_turns(listing: &mut Listing) {
    let mut skipped = Skipped::default();
    for session in &mut listing.sessions {
        let turns = head::count_turns(&session.path, &mut skipped);
        session.user_turns = Some(turns.user);
        session.assistant_turns = Some(turns.assistant);
    }
    listing.skipped_lines += skipped.0;
}

/// The rollout of a thread given by id (the id in the file name, else `session_meta.id`; a
/// unique prefix of at least 6 characters will do) or by path.
pub fn find_rollout(codex_home: &Path, id_or_path: &str) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(id_or_path);
    if id_or_path.ends_with(".jsonl") || id_or_path.contains(std::path::MAIN_SEPARATOR) {
        if as_path.is_file() {
            return Ok(as_path.to_path_buf());
        }
        bail!("{id_or_path} is not a file");
    }
    let wanted = id_or_path.trim().to_ascii_lowercase();
    if wanted.is_empty() {
        bail!("give a thread id (see `codex-helper session list`) or a rollout path");
    }
    let found = files::find(codex_home);
    let by_name = |file: &&RolloutFile| file.name_id.eq_ignore_ascii_case(&wanted);
    if let Some(file) = found.files.iter().find(by_name) {
        return Ok(file.path.clone());
    }
    let mut skipped = Skipped::default();
    for file in &found.files {
        if head::read(&file.path, &mut skipped)
            .is_some_and(|h| h.meta.id.eq_ignore_ascii_case(&wanted))
        {
            return Ok(file.path.clone());
        }
    }
    if wanted.len() >= 6 {
        let prefixed: Vec<&RolloutFile> = found
            .files
            .iter()
            .filter(|f| f.name_id.to_ascii_lowercase().starts_with(&wanted))
            .collect();
        match prefixed.as_slice() {
            [one] => return Ok(one.path.clone()),
            [] => {}
            many => bail!(
                "`{id_or_path}` is the start of {} thread ids; give more of it",
                many.len()
            ),
        }
    }
    bail!(
        "no Codex thread `{id_or_path}` under {} (see `codex-helper session list --all`)",
        codex_home.join("sessions").display()
    )
}
