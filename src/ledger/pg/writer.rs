//! The PostgreSQL ledger's writer: the same queue the SQLite writer drains (see
//! [`crate::ledger::writer`]), written in batches on the writer's own thread and runtime, never
//! on the proxy's event loop.
//!
//! While the database cannot be reached, rows go to the [`Spool`] on disk; once it answers,
//! the spool is replayed in order before newer rows (which join the spool's end meanwhile), a
//! few batches at a time so the queue keeps draining. Every wait is bounded: connecting by
//! [`db::CONNECT_TIMEOUT`], each batch by [`db::QUERY_TIMEOUT`] (also the server's
//! `statement_timeout`), reconnection attempts spaced out up to [`RETRY_MAX`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::schema;
use super::spool::Spool;
use crate::config::model::LedgerSettings;
use crate::ledger::pricing::PriceBook;
use crate::ledger::row::LedgerRow;
use crate::ledger::writer::{Ledger, LedgerStats, Message, lower_priority};
use crate::postgres::{self as db, DatabaseUrl};

/// Rows written per transaction at most.
pub const BATCH: usize = 200;
/// How long rows gather before they are written.
const BATCH_WINDOW: Duration = Duration::from_millis(250);
/// How often an idle writer wakes, to replay the spool once the database is back.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// The spool's cap; rows past it are lost (and counted).
pub const SPOOL_MAX_BYTES: u64 = 64 << 20;
/// Spool batches replayed between two looks at the queue.
const REPLAY_BATCHES: usize = 10;
/// The first and the longest wait between attempts to reach the database.
const RETRY_MIN: Duration = Duration::from_millis(500);
pub const RETRY_MAX: Duration = Duration::from_secs(5);
/// At most one warning this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Starts the writer for the ledger at `url`, spooling to `spool_path`. Fails only when the
/// spool cannot be opened: an unreachable database is the spool's job.
pub fn start(
    url: DatabaseUrl,
    spool_path: &Path,
    settings: LedgerSettings,
    prices: PriceBook,
) -> anyhow::Result<Ledger> {
    if let Some(dir) = spool_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let spool = Spool::open(spool_path, SPOOL_MAX_BYTES).map_err(|e| {
        anyhow::anyhow!("cannot open the ledger spool {}: {e}", spool_path.display())
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Its gathering waits in `recv_timeout`, which a flush or stop ends: no `Hurry` needed.
    Ledger::spawn(spool_path, move |receiver, stats, _hurry| {
        stats.spooled.store(spool.waiting_rows(), Ordering::Relaxed);
        let mut writer = Writer {
            runtime,
            url,
            client: None,
            retry: Retry::default(),
            spool,
            stats,
            last_warning: None,
        };
        writer.run(&receiver, &settings, &prices);
    })
}

/// When the next attempt to reach the database may be made.
#[derive(Debug, Default)]
struct Retry {
    not_before: Option<Instant>,
    wait: Duration,
}

impl Retry {
    fn allowed(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// A failed attempt: the wait doubles, from [`RETRY_MIN`] to [`RETRY_MAX`].
    fn failed(&mut self, now: Instant) {
        self.wait = (self.wait * 2).clamp(RETRY_MIN, RETRY_MAX);
        self.not_before = Some(now + self.wait);
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }
}

/// What one pass over the queue took: rows, flushes to answer, and whether to stop.
#[derive(Default)]
struct Gathered {
    rows: Vec<LedgerRow>,
    flushes: Vec<std::sync::mpsc::Sender<()>>,
    stop: bool,
}

/// Takes what the queue has: waits up to [`IDLE_TICK`] for a first message, then lets rows
/// gather for [`BATCH_WINDOW`] or up to [`BATCH`] rows. A flush or stop ends the gathering.
fn gather(receiver: &Receiver<Message>, prices: &PriceBook) -> Gathered {
    let mut gathered = Gathered::default();
    let mut deadline: Option<Instant> = None;
    loop {
        let wait = match deadline {
            None => IDLE_TICK,
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        match receiver.recv_timeout(wait) {
            Ok(Message::Record(f)) => {
                gathered.rows.push(f.row(prices));
                deadline.get_or_insert_with(|| Instant::now() + BATCH_WINDOW);
                if gathered.rows.len() >= BATCH {
                    return gathered;
                }
            }
            Ok(Message::Flush(done)) => {
                gathered.flushes.push(done);
                return gathered;
            }
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => {
                gathered.stop = true;
                return gathered;
            }
            Err(RecvTimeoutError::Timeout) => return gathered,
        }
    }
}

struct Writer {
    runtime: tokio::runtime::Runtime,
    url: DatabaseUrl,
    client: Option<Client>,
    retry: Retry,
    spool: Spool,
    stats: Arc<LedgerStats>,
    last_warning: Option<Instant>,
}

impl Writer {
    fn run(&mut self, receiver: &Receiver<Message>, settings: &LedgerSettings, prices: &PriceBook) {
        lower_priority();
        let retention_every = Duration::from_secs(settings.retention_interval_secs.max(1));
        let mut last_retention: Option<Instant> = None;
        loop {
            let gathered = gather(receiver, prices);
            self.deliver(gathered.rows);
            for done in gathered.flushes {
                let _ = done.send(());
            }
            if gathered.stop {
                break;
            }
            if self.client.is_some()
                && last_retention.is_none_or(|t| t.elapsed() >= retention_every)
            {
                last_retention = Some(Instant::now());
                self.retention(settings);
            }
        }
    }

    /// Writes `rows`, or spools them behind older spooled rows; then replays some of the spool.
    fn deliver(&mut self, rows: Vec<LedgerRow>) {
        if !rows.is_empty() {
            if self.spool.is_empty() {
                match self.write(&rows) {
                    Ok(()) => return,
                    Err(e) => self.warn(&format!("{e:#}")),
                }
            }
            self.spool_rows(&rows);
        }
        self.replay();
        self.stats
            .spooled
            .store(self.spool.waiting_rows(), Ordering::Relaxed);
    }

    /// Writes one batch; on failure the connection is dropped and the next attempt waits.
    fn write(&mut self, rows: &[LedgerRow]) -> anyhow::Result<()> {
        self.connect()?;
        let client = self.client.as_mut().expect("connected above");
        let written = self.runtime.block_on(async {
            tokio::time::timeout(db::QUERY_TIMEOUT, schema::insert(client, rows)).await
        });
        match written {
            Ok(Ok(_)) => {
                self.stats
                    .written
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(self.lost_connection(e)),
            Err(_) => Err(self.lost_connection(anyhow::anyhow!(
                "{} did not answer within {} s",
                schema::WHAT,
                db::QUERY_TIMEOUT.as_secs()
            ))),
        }
    }

    fn lost_connection(&mut self, e: anyhow::Error) -> anyhow::Error {
        self.client = None;
        self.retry.failed(Instant::now());
        e
    }

    /// Makes the connection (within [`db::CONNECT_TIMEOUT`]) if there is none and the last
    /// failed attempt is far enough behind.
    fn connect(&mut self) -> anyhow::Result<()> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let now = Instant::now();
            if !self.retry.allowed(now) {
                anyhow::bail!("{} at {} is not reachable", schema::WHAT, self.url.shown());
            }
            let url = &self.url;
            let connected = self.runtime.block_on(async {
                tokio::time::timeout(db::CONNECT_TIMEOUT, schema::connect(url)).await
            });
            match connected {
                Ok(Ok(client)) => {
                    self.retry.succeeded();
                    if !self.spool.is_empty() {
                        tracing::info!(
                            "ledger: {} at {} answers; replaying {} rows from the spool",
                            schema::WHAT,
                            self.url.shown(),
                            self.spool.waiting_rows()
                        );
                    }
                    self.client = Some(client);
                }
                Ok(Err(e)) => {
                    self.retry.failed(now);
                    return Err(e);
                }
                Err(_) => {
                    self.retry.failed(now);
                    anyhow::bail!(
                        "{} at {} did not answer within {} s",
                        schema::WHAT,
                        self.url.shown(),
                        db::CONNECT_TIMEOUT.as_secs()
                    );
                }
            }
        }
        Ok(())
    }

    fn spool_rows(&mut self, rows: &[LedgerRow]) {
        let lost = match self.spool.append(rows) {
            Ok(refused) => refused,
            Err(e) => {
                self.warn(&format!(
                    "cannot write the spool {}: {e}",
                    self.spool.path().display()
                ));
                rows.len()
            }
        };
        if lost > 0 {
            self.stats.failed.fetch_add(lost as u64, Ordering::Relaxed);
            self.warn(&format!(
                "the spool {} is full ({} MiB)",
                self.spool.path().display(),
                SPOOL_MAX_BYTES >> 20
            ));
        }
    }

    /// Replays up to [`REPLAY_BATCHES`] batches of the spool, oldest first.
    fn replay(&mut self) {
        for _ in 0..REPLAY_BATCHES {
            if self.spool.is_empty() {
                return;
            }
            let peeked = match self.spool.peek(BATCH) {
                Ok(peeked) => peeked,
                Err(e) => {
                    let path = self.spool.path().display().to_string();
                    self.warn(&format!("cannot read the spool {path}: {e}"));
                    return;
                }
            };
            if !peeked.rows.is_empty() && self.write(&peeked.rows).is_err() {
                return; // still unreachable: the rows stay where they are
            }
            self.stats
                .failed
                .fetch_add(peeked.invalid, Ordering::Relaxed);
            if let Err(e) = self.spool.consume(&peeked) {
                let path = self.spool.path().display().to_string();
                self.warn(&format!("cannot remove the replayed spool {path}: {e}"));
                return;
            }
        }
    }

    fn retention(&mut self, settings: &LedgerSettings) {
        let Some(client) = self.client.as_ref() else {
            return;
        };
        let cutoff =
            crate::time::now_ms().saturating_sub(u64::from(settings.retention_days) * 86_400_000);
        let deleted = self.runtime.block_on(async {
            tokio::time::timeout(
                db::QUERY_TIMEOUT,
                schema::apply_retention(client, cutoff, settings.max_rows),
            )
            .await
        });
        match deleted {
            Ok(Ok(n)) => {
                self.stats
                    .deleted_by_retention
                    .fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(e)) => tracing::warn!("ledger: retention failed: {e:#}"),
            Err(_) => tracing::warn!(
                "ledger: retention did not finish within {} s",
                db::QUERY_TIMEOUT.as_secs()
            ),
        }
    }

    /// One warning a minute at most: an outage must not flood the log.
    fn warn(&mut self, problem: &str) {
        if self.last_warning.is_none_or(|t| t.elapsed() > WARN_EVERY) {
            tracing::warn!(
                "ledger: {problem}; rows wait in the spool {} ({} now), {} lost so far",
                self.spool.path().display(),
                self.spool.waiting_rows(),
                self.stats.lost()
            );
            self.last_warning = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_after_each_failure_up_to_the_cap() {
        let start = Instant::now();
        let mut retry = Retry::default();
        assert!(retry.allowed(start));
        let mut waits = Vec::new();
        for _ in 0..6 {
            retry.failed(start);
            assert!(!retry.allowed(start));
            waits.push(retry.wait);
        }
        assert_eq!(waits[0], RETRY_MIN);
        assert_eq!(waits[1], RETRY_MIN * 2);
        assert_eq!(*waits.last().unwrap(), RETRY_MAX);
        assert!(retry.allowed(start + RETRY_MAX));
        retry.succeeded();
        assert!(retry.allowed(start));
    }
}
