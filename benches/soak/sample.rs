//! One sample of the proxy's state: what the kernel says of the process, what its admin API
//! says of its event loops, what the ledger holds on disk, and what the traffic has done.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::load::Counters;

/// The CSV's columns, in order.
pub const COLUMNS: &str = "t_s,rss_kib,fds,tasks,ledger_bytes,ledger_rows,sent,ok,aborted,refused,errors,skipped,ledger_dropped";

#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub t_s: f64,
    pub rss_kib: u64,
    pub fds: u64,
    /// None when the admin API did not answer (a reading is at least 1: the request's own task).
    pub tasks: Option<u64>,
    /// The database file plus its write-ahead log.
    pub ledger_bytes: u64,
    pub ledger_rows: u64,
    pub sent: u64,
    pub ok: u64,
    pub aborted: u64,
    pub refused: u64,
    pub errors: u64,
    pub skipped: u64,
    /// Rows the proxy's ledger writer dropped or failed to write (from `/runtime/status`).
    pub ledger_dropped: u64,
}

impl Sample {
    pub fn csv(&self) -> String {
        format!(
            "{:.1},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.t_s,
            self.rss_kib,
            self.fds,
            self.tasks.map_or(String::new(), |t| t.to_string()),
            self.ledger_bytes,
            self.ledger_rows,
            self.sent,
            self.ok,
            self.aborted,
            self.refused,
            self.errors,
            self.skipped,
            self.ledger_dropped
        )
    }

    /// A line of [`COLUMNS`] back (for re-plotting a CSV).
    pub fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        let n = |i: usize| f.get(i)?.parse::<u64>().ok();
        Some(Self {
            t_s: f.first()?.parse().ok()?,
            rss_kib: n(1)?,
            fds: n(2)?,
            // Empty, or 0 in CSVs of a build that wrote 0 for no answer.
            tasks: n(3).filter(|&t| t > 0),
            ledger_bytes: n(4)?,
            ledger_rows: n(5)?,
            sent: n(6)?,
            ok: n(7)?,
            aborted: n(8)?,
            refused: n(9)?,
            errors: n(10)?,
            skipped: n(11)?,
            ledger_dropped: n(12)?,
        })
    }
}

/// Where to look.
pub struct Probe {
    pub pid: u32,
    pub admin: SocketAddr,
    pub ledger: std::path::PathBuf,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Probe {
    pub fn new(pid: u32, admin: SocketAddr, ledger: std::path::PathBuf) -> Self {
        // A connection per sample: an idle pooled one may be closed by the server just as it
        // is reused, and that sample would be lost.
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Self {
            pid,
            admin,
            ledger,
            client,
        }
    }

    pub async fn take(&self, t_s: f64, counters: &Counters) -> Sample {
        let status = self.runtime_status().await;
        let (tasks, ledger_dropped) = (status.map(|s| s.0), status.map_or(0, |s| s.1));
        let ledger = self.ledger.clone();
        let ledger_rows = tokio::task::spawn_blocking(move || count_rows(&ledger))
            .await
            .unwrap_or(0);
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.ledger.clone().into_os_string();
        wal.push("-wal");
        Sample {
            t_s,
            rss_kib: rss_kib(self.pid),
            fds: std::fs::read_dir(format!("/proc/{}/fd", self.pid))
                .map(|d| d.count() as u64)
                .unwrap_or(0),
            tasks,
            ledger_bytes: size(&self.ledger) + size(Path::new(&wal)),
            ledger_rows,
            sent: counters.sent.load(Ordering::Relaxed),
            ok: counters.ok.load(Ordering::Relaxed),
            aborted: counters.aborted.load(Ordering::Relaxed),
            refused: counters.refused.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
            skipped: counters.skipped.load(Ordering::Relaxed),
            ledger_dropped,
        }
    }

    /// `tasks` and the ledger's lost rows from `GET /runtime/status`.
    async fn runtime_status(&self) -> Option<(u64, u64)> {
        let url = format!("http://{}/__codex_helper/api/v1/runtime/status", self.admin);
        let request = http::Request::get(url).body(Full::new(Bytes::new())).ok()?;
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let response = self.client.request(request).await.ok()?;
            Limited::new(response.into_body(), 1 << 20)
                .collect()
                .await
                .ok()
                .map(|b| b.to_bytes())
        })
        .await
        .ok()??;
        let status: serde_json::Value = serde_json::from_slice(&answer).ok()?;
        let ledger = &status["ledger"];
        let lost = ledger["dropped"].as_u64().unwrap_or(0) + ledger["failed"].as_u64().unwrap_or(0);
        Some((status["tasks"].as_u64()?, lost))
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The ledger's row count, read-only beside the writer (WAL readers do not block it).
fn count_rows(path: &Path) -> u64 {
    let open = || -> rusqlite::Result<u64> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(2))?;
        conn.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
    };
    open().unwrap_or(0)
}
