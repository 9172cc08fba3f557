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
    hurry: Arc<Hurry>,
    path: PathBuf,
}

/// A flush or stop asking the writer not to wait for its batch to gather. A flag beside the
/// unpark, not the unpark alone: `std::sync::mpsc` sleeps on the same per-thread token as
/// `thread::park`, so a channel's wake-up can use up the unpark and leave the writer asleep
/// with a flush queued.
#[derive(Default)]
pub(super) struct Hurry(std::sync::atomic::AtomicBool);

impl Hurry {
    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Sleeps until `deadline`, or until set (taking the flag).
    fn wait_until(&self, deadline: Instant) {
        while !self.0.swap(false, Ordering::AcqRel) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::park_timeout(left);
        }
    }
}

impl Ledger {
    /// Opens the database (errors are reported here, before serving) and starts the writer.
    pub fn start(path: &Path, settings: LedgerSettings, prices: PriceBook) -> anyhow::Result<Self> {
        Self::start_batching(path, settings, prices, BATCHING)
    }

    fn start_batching(
        path: &Path,
        settings: LedgerSettings,
        prices: PriceBook,
        batching: Batching,
    ) -> anyhow::Result<Self> {
        let conn = store::open(path)?;
        if let Some(mb) = settings.max_size_mb {
            store::cap_size(&conn, mb.saturating_mul(1 << 20))?;
        }
        Self::spawn(path, move |receiver, stats, hurry| {
            let writer = SqliteWriter {
                conn,
                stats: &stats,
                settings: &settings,
                prices: &prices,
                batching,
                hurry,
                last_retention: None,
                last_warning: None,
            };
            writer.run(receiver)
        })
    }

    /// Starts the writer thread: `write_loop` drains the queue the sink feeds (SQLite's loop,
    /// or PostgreSQL's). `path` is where the rows go, or wait.
    pub(super) fn spawn(
        path: &Path,
        write_loop: impl FnOnce(Receiver<Message>, Arc<LedgerStats>, Arc<Hurry>) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let (sender, receiver) = sync_channel(QUEUE);
        let stats = Arc::new(LedgerStats::default());
        let hurry = Arc::new(Hurry::default());
        let thread = {
            let stats = stats.clone();
            let hurry = hurry.clone();
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || write_loop(receiver, stats, hurry))?
        };
        Ok(Self {
            sender: Some(sender),
            stats,
            thread: Some(thread),
            hurry,
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
                self.wake_writer();
                let _ = wait.recv_timeout(Duration::from_secs(10));
            }
        }
    }

    /// Writes what is queued and stops the writer.
    pub fn shutdown(self) {
        drop(self);
    }

    /// Ends the writer's wait for a batch to gather, after a flush or stop was queued.
    fn wake_writer(&self) {
        self.hurry.set();
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Message::Stop);
            self.wake_writer();
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
            duration: record.took(),
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

/// How rows gather into transactions.
#[derive(Debug, Clone, Copy)]
struct Batching {
    /// How long the writer sleeps once a row arrives, letting more gather: one wake-up and one
    /// transaction per window instead of one per request, so the writer stays out of the
    /// proxy's way (a flush or stop ends the wait). Roughly what a crash loses, with the
    /// transaction being written.
    window: Duration,
    /// Rows written per transaction at most. A full batch means more may be waiting: the next
    /// one is written without sleeping, so a burst drains as fast as the disk takes it.
    max_rows: usize,
}

const BATCHING: Batching = Batching {
    window: Duration::from_millis(100),
    max_rows: 512,
};

/// What one pass over the queue took from it.
#[derive(Default)]
struct Gathered {
    rows: Vec<LedgerRow>,
    flushes: Vec<std::sync::mpsc::Sender<()>>,
    stop: bool,
}

/// The SQLite writer thread's state between batches.
struct SqliteWriter<'a> {
    conn: rusqlite::Connection,
    stats: &'a LedgerStats,
    settings: &'a LedgerSettings,
    prices: &'a PriceBook,
    batching: Batching,
    hurry: Arc<Hurry>,
    last_retention: Option<Instant>,
    last_warning: Option<Instant>,
}

impl SqliteWriter<'_> {
    fn run(mut self, receiver: Receiver<Message>) {
        lower_priority();
        // Once at start, so a ledger left over its limits is trimmed even if no request comes.
        self.retain();
        let mut behind = false;
        while let Ok(first) = receiver.recv() {
            if matches!(first, Message::Record(_)) && !behind {
                self.hurry.wait_until(Instant::now() + self.batching.window);
            }
            let gathered = self.gather(first, &receiver);
            behind = gathered.rows.len() >= self.batching.max_rows;
            self.write(&gathered.rows);
            for done in gathered.flushes {
                let _ = done.send(());
            }
            if gathered.stop {
                break;
            }
            self.retain();
        }
    }

    /// Takes `first` and what else is queued, up to a batch (a stop ends it early).
    fn gather(&self, first: Message, receiver: &Receiver<Message>) -> Gathered {
        let mut gathered = Gathered::default();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(f) => gathered.rows.push(f.row(self.prices)),
                Message::Flush(done) => gathered.flushes.push(done),
                Message::Stop => gathered.stop = true,
            }
            if gathered.rows.len() < self.batching.max_rows && !gathered.stop {
                next = receiver.try_recv().ok();
            }
        }
        gathered
    }

    /// Writes `rows` in one transaction, counting them written or lost.
    fn write(&mut self, rows: &[LedgerRow]) {
        if rows.is_empty() {
            return;
        }
        match store::insert(&mut self.conn, rows) {
            Ok(_) => {
                self.stats
                    .written
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats
                    .failed
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                // One warning a minute at most: a full disk must not flood the log.
                if self
                    .last_warning
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
                {
                    tracing::warn!(
                        "ledger: {} request records could not be written ({e}); {} lost so far",
                        rows.len(),
                        self.stats.lost()
                    );
                    self.last_warning = Some(Instant::now());
                }
            }
        }
    }

    /// Applies retention when `[ledger] retention_interval_secs` has passed since the last time.
    fn retain(&mut self) {
        // At least a second, so a zero cannot spin.
        let every = Duration::from_secs(self.settings.retention_interval_secs.max(1));
        if self.last_retention.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last_retention = Some(Instant::now());
        let cutoff = crate::time::now_ms()
            .saturating_sub(u64::from(self.settings.retention_days) * 86_400_000);
        match store::apply_retention(&self.conn, cutoff, self.settings.max_rows) {
            Ok(n) => {
                self.stats
                    .deleted_by_retention
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!("ledger: retention failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger in `dir` whose rows would wait half a minute to gather (longer than a flush
    /// waits), `max_rows` at a time.
    fn slow_ledger(dir: &tempfile::TempDir, max_rows: usize) -> Ledger {
        let batching = Batching {
            window: Duration::from_secs(30),
            max_rows,
        };
        let path = dir.path().join("ledger.sqlite3");
        Ledger::start_batching(
            &path,
            LedgerSettings::default(),
            PriceBook::built_in(),
            batching,
        )
        .unwrap()
    }

    fn record_requests(ledger: &Ledger, count: usize) {
        let sink = ledger.sink();
        for i in 0..count {
            let record =
                RequestRecord::new(format!("t-{i}"), "POST".into(), "/v1/responses".into());
            sink.record(&Arc::new(record), Outcome::Completed);
        }
    }

    /// The rows in the ledger file at `path`, read on a connection of its own.
    fn stored_rows(path: &Path) -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_hurry_ends_the_wait_even_when_its_unpark_was_used_up() {
        // Set with no unpark left for this thread (as when the channel's own wake-up took it):
        // the flag alone must end the wait, long before the deadline.
        let hurry = Hurry::default();
        hurry.set();
        let started = Instant::now();
        hurry.wait_until(started + Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_flush_does_not_wait_for_the_batch_to_gather() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = slow_ledger(&dir, 512);
        record_requests(&ledger, 3);
        // Without the flush waking the writer, it would sleep out the window and this flush
        // would give up after its own bound with nothing written.
        ledger.flush();
        assert_eq!(ledger.stats().written.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_backlog_is_written_batch_after_batch_without_waiting_again() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = slow_ledger(&dir, 2);
        record_requests(&ledger, 7);
        // The flush ends the first wait; the three full batches after it must not wait again.
        ledger.flush();
        let stats = ledger.stats();
        assert_eq!(stats.written.load(Ordering::Relaxed), 7);
        assert_eq!(stats.lost(), 0);
        drop(ledger);
        assert_eq!(stored_rows(&dir.path().join("ledger.sqlite3")), 7);
    }

    #[test]
    fn stopping_writes_what_is_queued_without_waiting_for_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = slow_ledger(&dir, 512);
        record_requests(&ledger, 4);
        let stats = ledger.stats();
        let (stopped, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(ledger); // stops the writer and joins it
            let _ = stopped.send(());
        });
        // Waited for as long as a flush is: a stop that slept out the window would miss it.
        assert!(
            wait.recv_timeout(Duration::from_secs(10)).is_ok(),
            "the stop waited for the batch to gather"
        );
        assert_eq!(stats.written.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn retention_runs_at_start_before_any_row_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = slow_ledger(&dir, 512);
        record_requests(&ledger, 5);
        ledger.flush();
        drop(ledger);
        let path = dir.path().join("ledger.sqlite3");
        let rows = || stored_rows(&path);
        assert_eq!(rows(), 5);
        let settings = LedgerSettings {
            max_rows: 2,
            ..Default::default()
        };
        let ledger = Ledger::start(&path, settings, PriceBook::built_in()).unwrap();
        // Nothing is sent: only retention at start can trim the file (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(10);
        while rows() > 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(rows(), 2);
        assert_eq!(
            ledger.stats().deleted_by_retention.load(Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn a_full_queue_drops_records_and_counts_them_without_waiting() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (report, reported) = std::sync::mpsc::channel::<usize>();
        // A writer stuck (a slow disk) until released; then it counts what was queued.
        let ledger = Ledger::spawn(Path::new("/nowhere"), move |receiver, _stats, _hurry| {
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
