//! The ledger writer: one background thread, fed through a bounded channel, writing batches.
//!
//! The proxy never waits on the disk, nor on turning a record into a row (JSON of the attempts
//! and the route decision, pricing): the sink queues the finished record (shared, not copied)
//! and the writer thread builds the row. A full queue drops the record and counts it; a failed
//! write (database locked, disk full) counts the lost rows and carries on. Retention runs on the
//! same thread between batches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::pricing::PriceBook;
use super::row::LedgerRow;
use super::store;
use crate::config::model::LedgerSettings;
use crate::record::{Outcome, RecordSink, RequestRecord};

/// Rows waiting to be written at most; beyond this, rows are dropped (and counted).
const QUEUE: usize = 8_192;
/// Rows written per transaction at most.
const BATCH: usize = 512;
/// How long the writer lets rows gather before writing them.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// What the writer has done, for status displays.
#[derive(Debug, Default, Serialize)]
pub struct LedgerStats {
    /// Handed to the writer's queue (written, lost on a failed write, or still waiting).
    pub queued: AtomicU64,
    pub written: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Lost because a write failed (locked database, full disk, …).
    pub failed: AtomicU64,
    pub deleted_by_retention: AtomicU64,
    /// Rows waiting on disk for the database (PostgreSQL ledger only).
    pub spooled: AtomicU64,
}

impl LedgerStats {
    pub fn lost(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// A finished request as the proxy handed it over, to become a row on the writer thread.
pub(super) struct Finished {
    record: Arc<RequestRecord>,
    outcome: Outcome,
    /// Measured when the request finished, not when the row is built.
    duration: Duration,
}

impl Finished {
    /// The row it becomes (on the writer's thread).
    pub(super) fn row(&self, prices: &PriceBook) -> LedgerRow {
        LedgerRow::from_record(&self.record, self.outcome, self.duration, prices)
    }
}

pub(super) enum Message {
    Record(Finished),
    /// Answered once everything queued before it is written.
    Flush(std::sync::mpsc::Sender<()>),
    /// Write what is queued, then stop (other senders may still exist).
    Stop,
}

/// A running ledger.
pub struct Ledger {
    sender: Option<SyncSender<Message>>,
    stats: Arc<LedgerStats>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Ledger {
    /// Opens the database (errors are reported here, before serving) and starts the writer.
    pub fn start(path: &Path, settings: LedgerSettings, prices: PriceBook) -> anyhow::Result<Self> {
        let conn = store::open(path)?;
        if let Some(mb) = settings.max_size_mb {
            store::cap_size(&conn, mb.saturating_mul(1 << 20))?;
        }
        Self::spawn(path, move |receiver, stats| {
            write_loop(conn, receiver, &stats, &settings, &prices)
        })
    }

    /// Starts the writer thread: `write_loop` drains the queue the sink feeds (SQLite's loop,
    /// or PostgreSQL's). `path` is where the rows go, or wait.
    pub(super) fn spawn(
        path: &Path,
        write_loop: impl FnOnce(Receiver<Message>, Arc<LedgerStats>) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let (sender, receiver) = sync_channel(QUEUE);
        let stats = Arc::new(LedgerStats::default());
        let thread = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || write_loop(receiver, stats))?
        };
        Ok(Self {
            sender: Some(sender),
            stats,
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> Arc<LedgerStats> {
        self.stats.clone()
    }

    /// The sink the proxy hands finished requests to.
    pub fn sink(&self) -> Arc<dyn RecordSink> {
        Arc::new(LedgerSink {
            sender: self.sender.clone().expect("running"),
            stats: self.stats.clone(),
        })
    }

    /// Waits (bounded) until every row queued so far is written.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if let Some(sender) = &self.sender {
            if sender.send(Message::Flush(done)).is_ok() {
                let _ = wait.recv_timeout(Duration::from_secs(10));
            }
        }
    }

    /// Writes what is queued and stops the writer.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Message::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct LedgerSink {
    sender: SyncSender<Message>,
    stats: Arc<LedgerStats>,
}

impl RecordSink for LedgerSink {
    /// Runs on the proxy's event loop: the shared record and a non-blocking send, nothing
    /// more (the record is not copied; it is usually dropped on the writer's thread).
    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome) {
        let finished = Finished {
            duration: record.started.elapsed(),
            record: Arc::clone(record),
            outcome,
        };
        // Counted before the send, so the writer never writes a row not yet counted.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(Message::Record(finished)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Lowers the calling thread's scheduling priority, so on a busy machine the proxy's own
/// threads run first. (Linux: the nice value is per thread.)
pub(super) fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the current thread; failure only leaves the priority as is.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

fn write_loop(
    mut conn: rusqlite::Connection,
    receiver: Receiver<Message>,
    stats: &LedgerStats,
    settings: &LedgerSettings,
    prices: &PriceBook,
) {
    // `[ledger] retention_interval_secs`; at least a second, so a zero cannot spin.
    let retention_every = Duration::from_secs(settings.retention_interval_secs.max(1));
    let mut last_retention: Option<Instant> = None;
    let mut last_warning: Option<Instant> = None;
    lower_priority();
    while let Ok(first) = receiver.recv() {
        // Let a batch gather: one wake-up and one transaction per window, not per request,
        // so the writer stays out of the proxy's way on a small machine.
        if matches!(first, Message::Record(_)) {
            std::thread::sleep(BATCH_WINDOW);
        }
        let mut rows = Vec::new();
        let mut flushes = Vec::new();
        let mut stop = false;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(f) => rows.push(f.row(prices)),
                Message::Flush(done) => flushes.push(done),
                Message::Stop => stop = true,
            }
            if rows.len() < BATCH && !stop {
                next = receiver.try_recv().ok();
            }
        }
        if !rows.is_empty() {
            match store::insert(&mut conn, &rows) {
                Ok(_) => {
                    stats
                        .written
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.failed.fetch_add(rows.len() as u64, Ordering::Relaxed);
                    // One warning a minute at most: a full disk must not flood the log.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(
                            "ledger: {} request records could not be written ({e}); {} lost so far",
                            rows.len(),
                            stats.lost()
                        );
                        last_warning = Some(Instant::now());
                    }
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        if stop {
            break;
        }
        if last_retention.is_none_or(|t| t.elapsed() >= retention_every) {
            last_retention = Some(Instant::now());
            let cutoff = crate::time::now_ms()
                .saturating_sub(u64::from(settings.retention_days) * 86_400_000);
            match store::apply_retention(&conn, cutoff, settings.max_rows) {
                Ok(n) => {
                    stats
                        .deleted_by_retention
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!("ledger: retention failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_records_and_counts_them_without_waiting() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (report, reported) = std::sync::mpsc::channel::<usize>();
        // A writer stuck (a slow disk) until released; then it counts what was queued.
        let ledger = Ledger::spawn(Path::new("/nowhere"), move |receiver, _stats| {
            let _ = released.recv();
            let mut records = 0;
            while let Ok(message) = receiver.recv() {
                match message {
                    Message::Record(_) => records += 1,
                    Message::Stop => break,
                    Message::Flush(done) => drop(done.send(())),
                }
            }
            let _ = report.send(records);
        })
        .unwrap();
        let sink = ledger.sink();
        let record = Arc::new(RequestRecord::new(
            "t".into(),
            "POST".into(),
            "/v1/responses".into(),
        ));
        // The writer is stuck: a waiting send would never return; the sink drops instead.
        for _ in 0..QUEUE + 3 {
            sink.record(&record, Outcome::Completed);
        }
        let stats = ledger.stats();
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(stats.queued.load(Ordering::Relaxed), QUEUE as u64);
        assert_eq!(stats.lost(), 3);
        release.send(()).unwrap();
        drop(sink);
        drop(ledger); // sends Stop after the queued records, and joins
        assert_eq!(reported.recv().unwrap(), QUEUE);
    }
}
