//! The evidence log, `~/.codex-helper/logs/codex_relay_evidence.jsonl`: one JSON record per
//! diagnostic or live-smoke run and endpoint, for the user to show a relay's support. Only
//! classified results go in (statuses, timings, shapes, short redacted reasons): never a key,
//! a token, an account id, or prompt text beyond the fixed probes. Nothing reads it back into
//! a routing decision.

use std::collections::VecDeque;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::redact::Redactor;

/// The record format's version.
pub const SCHEMA_VERSION: u32 = 1;

/// Which operation a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// `codex relay-capabilities`.
    Capabilities,
    /// `codex relay-live-smoke`.
    LiveSmoke,
}

impl EvidenceKind {
    /// The serde name, for text that should match what `--json` and the file say.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Capabilities => "capabilities",
            EvidenceKind::LiveSmoke => "live_smoke",
        }
    }
}

/// One run against one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    pub schema_version: u32,
    /// Unique per record (time and a random part), for a user to refer to.
    pub id: String,
    /// When the run ended, epoch milliseconds.
    pub at_ms: u64,
    pub kind: EvidenceKind,
    /// This helper's version.
    pub helper_version: String,
    /// `codex --version`'s version, when Codex could be run.
    pub codex_version: Option<String>,
    pub provider: String,
    pub endpoint: String,
    /// The relay's host (and port when not the scheme's): never its path, query or userinfo.
    pub host: String,
    /// The model the run asked about or used, if any.
    pub model: Option<String>,
    /// The run's report for this endpoint, as the command's `--json` prints it.
    pub payload: serde_json::Value,
}

/// Past this size the active file is rotated: a few runs a day stay for months, and a
/// runaway loop cannot fill the disk.
pub const DEFAULT_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Rotated files kept beside the active one (`.1` newest … `.3` oldest).
pub const DEFAULT_KEEP: usize = 3;

/// The longest line [`EvidenceLog::read`] takes in (without its newline). Longer lines are
/// skipped without being held, so a damaged or foreign file cannot make a reader allocate
/// without bound; [`EvidenceLog::append`] refuses them, since they could never be read back.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The log file and its rotation limits.
///
/// The file is only ever appended to, one whole line per record, so `write_atomic` (which
/// rewrites a file whole) does not fit it: a crash can at worst leave a torn last line, which
/// the reader skips and counts. Two processes appending at once each land whole lines (one
/// `write_all` on a file opened for append); a rotation racing another can keep one file fewer.
#[derive(Debug, Clone)]
pub struct EvidenceLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
}

/// Which records [`EvidenceLog::read`] gives back.
#[derive(Debug, Clone, Default)]
pub struct EvidenceFilter {
    /// At most this many records; 0 means all of them.
    pub limit: usize,
    /// Only this provider's records (its id, compared without regard to case).
    pub provider: Option<String>,
    /// Only records of this kind.
    pub kind: Option<EvidenceKind>,
}

impl EvidenceFilter {
    fn matches(&self, record: &EvidenceRecord) -> bool {
        self.provider
            .as_deref()
            .is_none_or(|p| p.eq_ignore_ascii_case(&record.provider))
            && self.kind.is_none_or(|k| k == record.kind)
    }
}

/// What [`EvidenceLog::read`] found.
#[derive(Debug, Clone, Default)]
pub struct EvidenceRead {
    /// Newest first.
    pub records: Vec<EvidenceRecord>,
    /// Lines in the files read that were not a record of this version (bad JSON, another
    /// `schema_version`, longer than [`MAX_LINE_BYTES`]): shown to the user, so a damaged log
    /// does not pass for a short one.
    pub skipped: usize,
}

impl EvidenceLog {
    /// Default limits: rotate past 8 MiB, keep 3 rotated files (`.1` newest … `.3` oldest).
    pub fn new(path: PathBuf) -> Self {
        Self::with_limits(path, DEFAULT_MAX_BYTES, DEFAULT_KEEP)
    }

    /// A log that rotates when the active file would pass `max_bytes` and keeps `keep`
    /// rotated files (0: the active file is simply started again).
    pub fn with_limits(path: PathBuf, max_bytes: u64, keep: usize) -> Self {
        Self {
            path,
            max_bytes,
            keep,
        }
    }

    /// The active file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` as one JSON line. The serialized line is passed through
    /// `redactor.redact(..)` first (defense in depth: the caller builds payloads from
    /// classified results only). Creates the `logs` folder (0700 on unix) and the file (0600
    /// on unix); an existing folder or file keeps the mode the user gave it.
    ///
    /// Rotates first when the active file plus this line would pass `max_bytes`
    /// (`x.jsonl` -> `x.jsonl.1` -> `x.jsonl.2` ...; the oldest beyond `keep` is deleted).
    /// One `write_all` of the whole line on a file opened for append. Blocking IO (callers run
    /// it off any event loop).
    ///
    /// Refused with an error, writing nothing: a line larger than `max_bytes` or
    /// [`MAX_LINE_BYTES`], a record whose masking left no valid JSON (a mask put where a
    /// number or `null` stood after a key-like name), and a log file made read-only.
    pub fn append(&self, record: &EvidenceRecord, redactor: &Redactor) -> anyhow::Result<()> {
        let which = format!(
            "the {} evidence for {}/{}",
            record.kind.as_str(),
            record.provider,
            record.endpoint
        );
        let json =
            serde_json::to_string(record).with_context(|| format!("cannot serialize {which}"))?;
        let mut line = redactor.redact(&json).into_owned();
        // A line the reader would skip is not evidence; better said now than found later.
        if line != json && serde_json::from_str::<EvidenceRecord>(&line).is_err() {
            bail!(
                "{which} was not written: masking a credential-shaped value in it left no valid \
                 JSON (report this: a diagnostic put an unexpected field in its result)"
            );
        }
        if line.len() > MAX_LINE_BYTES || line.len() as u64 + 1 > self.max_bytes {
            bail!(
                "{which} was not written: it is {} bytes, more than the evidence log takes in one \
                 line ({} bytes)",
                line.len(),
                self.max_bytes.saturating_sub(1).min(MAX_LINE_BYTES as u64)
            );
        }
        line.push('\n');

        self.create_folder()?;
        crate::files::ensure_writable(&self.path)?;
        let size = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
            }
        };
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let mut file = crate::files::open_append_private(&self.path)
            .with_context(|| format!("cannot open {} to append", self.path.display()))?;
        file.write_all(line.as_bytes())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }

    /// Records newest first (by file order: the active file's last line first, then `.1`, …),
    /// filtered, at most `filter.limit`. A missing file is no records. Lines that are not a
    /// record (bad JSON, other schema_version) are skipped and counted; lines longer than
    /// 1 MiB are skipped and counted without being held whole in memory. Empty lines are
    /// passed over without a count. Once `limit` records are found, older files are not
    /// opened, so `skipped` counts the files read.
    ///
    /// Memory: at most `limit` records at a time, or, with no limit, every matching record of
    /// the files (each kept under `max_bytes` by rotation).
    pub fn read(&self, filter: &EvidenceFilter) -> anyhow::Result<EvidenceRead> {
        let mut read = EvidenceRead::default();
        for n in 0..=self.keep {
            let wanted = match filter.limit {
                0 => usize::MAX,
                limit => limit - read.records.len(),
            };
            if wanted == 0 {
                break;
            }
            let path = self.file(n);
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
            };
            let (newest, skipped) = read_file(BufReader::new(file), filter, wanted)
                .with_context(|| format!("cannot read {}", path.display()))?;
            read.records.extend(newest);
            read.skipped += skipped;
        }
        Ok(read)
    }

    /// The active file (`n` = 0) or the `n`th rotated one.
    fn file(&self, n: usize) -> PathBuf {
        if n == 0 {
            return self.path.clone();
        }
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// The folder only the user may list: file names and sizes tell when relays were tested.
    fn create_folder(&self) -> anyhow::Result<()> {
        let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))
    }

    /// Shifts every file one place older, the oldest kept one is deleted and the active
    /// file becomes `.1`; the next append starts a new active file.
    fn rotate(&self) -> anyhow::Result<()> {
        if self.keep == 0 {
            return remove_if_present(&self.path);
        }
        remove_if_present(&self.file(self.keep))?;
        for n in (0..self.keep).rev() {
            let (from, to) = (self.file(n), self.file(n + 1));
            match std::fs::rename(&from, &to) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(e).with_context(|| {
                        format!("cannot rotate {} to {}", from.display(), to.display())
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot delete {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The newest `wanted` matching records of one file, newest first, and how many lines were
/// skipped. Read front to back, keeping only the last `wanted` matches.
fn read_file(
    mut reader: impl BufRead,
    filter: &EvidenceFilter,
    wanted: usize,
) -> std::io::Result<(Vec<EvidenceRecord>, usize)> {
    let mut newest = VecDeque::new();
    let mut skipped = 0;
    let mut line = Vec::new();
    while let Some(fits) = read_line_capped(&mut reader, &mut line, MAX_LINE_BYTES)? {
        if !fits {
            skipped += 1;
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = match serde_json::from_slice::<EvidenceRecord>(&line) {
            Ok(record) if record.schema_version == SCHEMA_VERSION => record,
            _ => {
                skipped += 1;
                continue;
            }
        };
        if filter.matches(&record) {
            if newest.len() == wanted {
                newest.pop_front();
            }
            newest.push_back(record);
        }
    }
    Ok((newest.into_iter().rev().collect(), skipped))
}

/// Reads the next line (without its newline) into `line`: `Some(true)` when it fitted in
/// `cap` bytes, `Some(false)` when it was longer (the rest is read past, never held), `None`
/// at the end of the input.
fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut fits = true;
    let mut any = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, used, ended) = match memchr::memchr(b'\n', chunk) {
            Some(at) => (&chunk[..at], at + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if fits && line.len() + part.len() <= cap {
            line.extend_from_slice(part);
        } else {
            fits = false;
            line.clear();
        }
        reader.consume(used);
        if ended {
            break;
        }
    }
    Ok(any.then_some(fits))
}

/// A record id: the time in ms and random-ish hex (no new dependency for randomness: e.g.
/// mix `std::time` nanos, the pid and a process-wide counter through a hash), unique per call.
///
/// The hash is std's `RandomState`, keyed from the operating system's randomness, so ids of
/// two processes in the same millisecond differ too; the counter makes two calls in one
/// process differ even on a coarse clock.
pub fn new_id(at_ms: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let calls = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = RandomState::new().hash_one((nanos, std::process::id(), calls, at_ms));
    format!("{at_ms}-{mixed:016x}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(at_ms: u64, provider: &str, kind: EvidenceKind) -> EvidenceRecord {
        EvidenceRecord {
            schema_version: SCHEMA_VERSION,
            id: new_id(at_ms),
            at_ms,
            kind,
            helper_version: "0.1.0".into(),
            codex_version: Some("0.50.0".into()),
            provider: provider.into(),
            endpoint: "default".into(),
            host: format!("{provider}.example"),
            model: Some("gpt-5".into()),
            payload: json!({"summary": format!("run at {at_ms}")}),
        }
    }

    fn times(read: &EvidenceRead) -> Vec<u64> {
        read.records.iter().map(|r| r.at_ms).collect()
    }

    fn all() -> EvidenceFilter {
        EvidenceFilter::default()
    }

    fn log_in(dir: &tempfile::TempDir) -> EvidenceLog {
        EvidenceLog::new(dir.path().join("logs/codex_relay_evidence.jsonl"))
    }

    #[test]
    fn appended_records_read_back_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        assert_eq!(times(&log.read(&all()).unwrap()), Vec::<u64>::new());
        let redactor = Redactor::default();
        let first = record(1, "alpha", EvidenceKind::Capabilities);
        log.append(&first, &redactor).unwrap();
        log.append(&record(2, "beta", EvidenceKind::LiveSmoke), &redactor)
            .unwrap();
        log.append(&record(3, "alpha", EvidenceKind::LiveSmoke), &redactor)
            .unwrap();

        let read = log.read(&all()).unwrap();
        assert_eq!(times(&read), [3, 2, 1]);
        assert_eq!(read.skipped, 0);
        assert_eq!(read.records[2], first, "read back exactly as written");
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 3, "one line per record:\n{text}");
    }

    #[test]
    fn filters_by_provider_and_kind_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        let redactor = Redactor::default();
        let runs = [
            (1, "alpha", EvidenceKind::Capabilities),
            (2, "beta", EvidenceKind::Capabilities),
            (3, "alpha", EvidenceKind::LiveSmoke),
            (4, "Alpha", EvidenceKind::Capabilities),
            (5, "beta", EvidenceKind::LiveSmoke),
        ];
        for (at, provider, kind) in runs {
            log.append(&record(at, provider, kind), &redactor).unwrap();
        }
        let read = |limit, provider: Option<&str>, kind| {
            let filter = EvidenceFilter {
                limit,
                provider: provider.map(str::to_string),
                kind,
            };
            times(&log.read(&filter).unwrap())
        };
        assert_eq!(read(0, Some("alpha"), None), [4, 3, 1], "case-insensitive");
        assert_eq!(read(0, None, Some(EvidenceKind::LiveSmoke)), [5, 3]);
        assert_eq!(read(0, Some("beta"), Some(EvidenceKind::Capabilities)), [2]);
        assert_eq!(read(0, Some("gamma"), None), Vec::<u64>::new());
        assert_eq!(read(2, None, None), [5, 4], "the newest two");
        assert_eq!(read(2, Some("alpha"), None), [4, 3]);
        assert_eq!(read(0, None, None), [5, 4, 3, 2, 1], "0 is no limit");
    }

    #[test]
    fn rotation_keeps_exactly_keep_files_and_reads_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/evidence.jsonl");
        let line_len = serde_json::to_string(&record(10, "alpha", EvidenceKind::LiveSmoke))
            .unwrap()
            .len() as u64
            + 1;
        // Three lines fit in a file, a fourth rotates it.
        let log = EvidenceLog::with_limits(path.clone(), line_len * 3 + 5, 2);
        let redactor = Redactor::default();
        for at in 10..22 {
            log.append(&record(at, "alpha", EvidenceKind::LiveSmoke), &redactor)
                .unwrap();
        }

        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["evidence.jsonl", "evidence.jsonl.1", "evidence.jsonl.2"]
        );
        for name in &names {
            let len = std::fs::metadata(dir.path().join("logs").join(name))
                .unwrap()
                .len();
            assert_eq!(len, line_len * 3, "{name} holds three whole lines");
        }
        // 12 runs, 9 kept: the oldest file (10, 11, 12) was deleted.
        let read = log.read(&all()).unwrap();
        assert_eq!(times(&read), (13..22).rev().collect::<Vec<_>>());
        let two = log.read(&EvidenceFilter { limit: 5, ..all() }).unwrap();
        assert_eq!(
            times(&two),
            [21, 20, 19, 18, 17],
            "across the active file and .1"
        );
    }

    #[test]
    fn lines_that_are_not_records_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        let redactor = Redactor::default();
        log.append(&record(1, "alpha", EvidenceKind::Capabilities), &redactor)
            .unwrap();
        let mut other_version =
            serde_json::to_value(record(2, "alpha", EvidenceKind::Capabilities)).unwrap();
        other_version["schema_version"] = json!(99);
        // A valid record, so only its length can have it skipped.
        let mut huge = record(2, "alpha", EvidenceKind::Capabilities);
        huge.payload = json!({"summary": "x".repeat(MAX_LINE_BYTES)});
        let huge = serde_json::to_string(&huge).unwrap();
        let junk = format!("not json\n{other_version}\n{huge}\n\n{{\"torn\":");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap();
        file.write_all(junk.as_bytes()).unwrap();
        file.write_all(b"\n").unwrap();
        drop(file);
        log.append(&record(3, "alpha", EvidenceKind::Capabilities), &redactor)
            .unwrap();

        let read = log.read(&all()).unwrap();
        assert_eq!(times(&read), [3, 1]);
        assert_eq!(read.skipped, 4, "bad JSON, version 99, too long, torn");
    }

    #[test]
    fn a_line_that_just_fits_the_read_cap_is_read() {
        let mut line = vec![b'a'; 10];
        line.push(b'\n');
        line.extend_from_slice(&[b'b'; 11]);
        let mut reader = BufReader::with_capacity(4, &line[..]);
        let mut out = Vec::new();
        assert_eq!(
            read_line_capped(&mut reader, &mut out, 10).unwrap(),
            Some(true)
        );
        assert_eq!(out, vec![b'a'; 10]);
        assert_eq!(
            read_line_capped(&mut reader, &mut out, 10).unwrap(),
            Some(false)
        );
        assert!(out.is_empty(), "nothing of a long line is kept");
        assert_eq!(read_line_capped(&mut reader, &mut out, 10).unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_so_is_its_folder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        log.append(
            &record(1, "alpha", EvidenceKind::Capabilities),
            &Redactor::default(),
        )
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(log.path()), 0o600);
        assert_eq!(mode(&dir.path().join("logs")), 0o700);
    }

    #[test]
    fn a_configured_secret_in_a_payload_is_masked_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        let secret = "relay-key-0123456789";
        let redactor = Redactor::new([secret]);
        let mut leaky = record(1, "alpha", EvidenceKind::LiveSmoke);
        leaky.payload = json!({"summary": format!("relay echoed {secret}")});
        log.append(&leaky, &redactor).unwrap();

        let bytes = std::fs::read(log.path()).unwrap();
        assert!(
            memchr::memmem::find(&bytes, secret.as_bytes()).is_none(),
            "the secret reached the file: {}",
            String::from_utf8_lossy(&bytes)
        );
        let read = log.read(&all()).unwrap();
        assert_eq!(
            read.records[0].payload["summary"],
            "relay echoed [redacted]"
        );
    }

    #[test]
    fn a_mask_that_would_break_the_json_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(&dir);
        let mut odd = record(1, "alpha", EvidenceKind::LiveSmoke);
        odd.payload = json!({"api_key": 123456789});
        let err = format!("{:#}", log.append(&odd, &Redactor::default()).unwrap_err());
        assert!(err.contains("left no valid JSON"), "{err}");
        assert!(!log.path().exists(), "nothing written");
    }

    #[test]
    fn a_line_bigger_than_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = EvidenceLog::with_limits(dir.path().join("e.jsonl"), 300, 3);
        let mut big = record(1, "alpha", EvidenceKind::LiveSmoke);
        big.payload = json!({"summary": "y".repeat(400)});
        let err = format!("{:#}", log.append(&big, &Redactor::default()).unwrap_err());
        assert!(
            err.contains("the live_smoke evidence for alpha/default was not written"),
            "{err}"
        );
        assert!(err.contains("(299 bytes)"), "{err}");
        assert!(!log.path().exists(), "nothing written");
    }

    #[test]
    fn ids_start_with_the_time_and_differ_per_call() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| new_id(1_700_000_000_000)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.starts_with("1700000000000-")));
    }
}
