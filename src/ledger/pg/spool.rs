//! The spool: ledger rows waiting on disk while PostgreSQL cannot be reached, one JSON object
//! a line, appended, replayed in order when the database answers again (also at the next start,
//! when a crash left one).
//!
//! It is a journal, appended to and removed once replayed, not rewritten: a crash can leave a
//! torn last line, which replay skips (and counts lost). Rows are written idempotently (on
//! their trace id), so replaying a line twice after a crash stores it once. The file is capped
//! ([`Spool::open`]'s `max_bytes`); rows past the cap are refused and counted lost.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::ledger::row::LedgerRow;

/// The longest line replay reads; a longer one is not a row this writer wrote.
const LINE_MAX: u64 = 4 << 20;

/// Rows waiting on disk.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    max_bytes: u64,
    /// The file's length (0: no file).
    len: u64,
    /// Where replay goes on: everything before is in the database.
    replayed: u64,
    /// Lines (rows) after `replayed`.
    waiting: u64,
}

/// What [`Spool::peek`] read.
#[derive(Debug, Default)]
pub struct Peeked {
    pub rows: Vec<LedgerRow>,
    /// The offset after the last line read, for [`Spool::consume`].
    pub end: u64,
    /// Lines that were not rows (a torn last line after a crash).
    pub invalid: u64,
    /// Lines read, rows or not.
    pub lines: u64,
}

impl Spool {
    /// Opens the spool at `path`, keeping what a previous run left in it.
    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut spool = Self {
            path: path.to_path_buf(),
            max_bytes,
            len,
            replayed: 0,
            waiting: 0,
        };
        if len > 0 {
            let mut counted = 0;
            let mut reader = BufReader::new(File::open(path)?);
            loop {
                let buf = reader.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                counted += memchr::memchr_iter(b'\n', buf).count() as u64;
                let n = buf.len();
                reader.consume(n);
            }
            spool.waiting = counted;
            // A torn last line is ended, so the next row does not join it.
            let mut file = File::open(path)?;
            file.seek(SeekFrom::End(-1))?;
            let mut last = [0u8];
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                spool.append_bytes(b"\n")?;
                spool.waiting += 1;
            }
        }
        Ok(spool)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether no row waits.
    pub fn is_empty(&self) -> bool {
        self.replayed >= self.len
    }

    /// Rows waiting (lines: a torn one counts until replay skips it).
    pub fn waiting_rows(&self) -> u64 {
        self.waiting
    }

    /// Appends the rows that fit under the cap, in order, and syncs the file. Returns how many
    /// did not fit (lost).
    pub fn append(&mut self, rows: &[LedgerRow]) -> std::io::Result<usize> {
        let mut text = Vec::new();
        let mut refused = 0;
        for row in rows {
            let mut line = serde_json::to_vec(row).map_err(std::io::Error::other)?;
            line.push(b'\n');
            if self.len + (text.len() + line.len()) as u64 > self.max_bytes {
                refused += 1;
                continue;
            }
            text.extend_from_slice(&line);
        }
        if !text.is_empty() {
            self.append_bytes(&text)?;
            self.waiting += (rows.len() - refused) as u64;
        }
        Ok(refused)
    }

    fn append_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        // Also a file left by an older run with other permissions.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_data()?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Up to `max_rows` rows from where replay is, oldest first.
    pub fn peek(&self, max_rows: usize) -> std::io::Result<Peeked> {
        let mut peeked = Peeked {
            end: self.replayed,
            ..Peeked::default()
        };
        if self.is_empty() {
            return Ok(peeked);
        }
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.replayed))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        while peeked.rows.len() < max_rows && peeked.end < self.len {
            line.clear();
            let read = (&mut reader).take(LINE_MAX).read_until(b'\n', &mut line)?;
            if read == 0 {
                break;
            }
            peeked.lines += 1;
            if line.last() != Some(&b'\n') && read as u64 == LINE_MAX {
                // Too long: skip to the end of the line.
                let mut rest = Vec::new();
                let skipped = reader.read_until(b'\n', &mut rest)?;
                peeked.end += (read + skipped) as u64;
                peeked.invalid += 1;
                continue;
            }
            peeked.end += read as u64;
            match serde_json::from_slice::<LedgerRow>(&line) {
                Ok(row) => peeked.rows.push(row),
                Err(_) if line.iter().all(u8::is_ascii_whitespace) => {}
                Err(_) => peeked.invalid += 1,
            }
        }
        Ok(peeked)
    }

    /// Marks what `peeked` read as in the database; once all is, the file is removed.
    pub fn consume(&mut self, peeked: &Peeked) -> std::io::Result<()> {
        self.replayed = peeked.end.min(self.len);
        self.waiting = self.waiting.saturating_sub(peeked.lines);
        if self.is_empty() {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.len = 0;
            self.replayed = 0;
            self.waiting = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(trace: &str) -> LedgerRow {
        LedgerRow {
            trace_id: trace.into(),
            started_ms: 1,
            method: "POST".into(),
            path: "/v1/responses".into(),
            outcome: "completed".into(),
            attempts_json: "[]".into(),
            user: Some("ana".into()),
            ..LedgerRow::default()
        }
    }

    #[test]
    fn rows_come_back_in_order_and_the_file_goes_when_all_are_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.jsonl");
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        assert!(spool.is_empty());
        let rows: Vec<_> = (0..5).map(|i| row(&format!("t{i}"))).collect();
        assert_eq!(spool.append(&rows).unwrap(), 0);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = spool.peek(3).unwrap();
        assert_eq!(first.rows, rows[..3]);
        spool.consume(&first).unwrap();
        assert_eq!(spool.waiting_rows(), 2);
        // Reopened (as after a crash): what was not consumed in memory is replayed again.
        let again = Spool::open(&path, 1 << 20).unwrap();
        assert_eq!(again.peek(10).unwrap().rows, rows);
        assert_eq!(again.waiting_rows(), 5);
        let rest = spool.peek(10).unwrap();
        assert_eq!(rest.rows, rows[3..]);
        spool.consume(&rest).unwrap();
        assert!(spool.is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn rows_past_the_cap_are_refused_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.jsonl");
        let one = serde_json::to_vec(&row("t0")).unwrap().len() as u64 + 1;
        let mut spool = Spool::open(&path, one * 2 + one / 2).unwrap();
        let rows: Vec<_> = (0..4).map(|i| row(&format!("t{i}"))).collect();
        assert_eq!(spool.append(&rows).unwrap(), 2);
        assert_eq!(spool.peek(10).unwrap().rows, rows[..2]);
        assert!(std::fs::metadata(&path).unwrap().len() <= one * 2 + one / 2);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_row_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.jsonl");
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        spool.append(&[row("t0")]).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"trace_id":"torn","start"#).unwrap();
        drop(file);
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        spool.append(&[row("t1")]).unwrap();
        let peeked = spool.peek(10).unwrap();
        assert_eq!(peeked.rows, [row("t0"), row("t1")]);
        assert_eq!(peeked.invalid, 1);
        assert_eq!((spool.waiting_rows(), peeked.lines), (3, 3));
    }
}
