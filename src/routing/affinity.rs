//! Session affinity: which endpoint last served each session, kept across restarts.
//!
//! Keyed by session id and the route graph's key, so a config edit that changes routing
//! starts every session afresh. Changed only after a successful attempt. Bounded to the most
//! recently used sessions.
//!
//! **Persistence.** The map lives in memory. A change marks it dirty and wakes the store's
//! background writer (its own thread, see [`AffinityWriter`]), which writes
//! `~/.codex-helper/state/session-affinity.json` atomically at most once per [`DEBOUNCE`],
//! and once more when the proxy stops ([`AffinityWriter::close`]). So the proxy's event loop
//! never touches the disk, and a burst of new sessions costs one write, not one per session.
//! The price: a crash (kill -9, power loss) loses at most the changes of the last window; the
//! file is always a complete earlier state, never a torn one.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::retry::FailureClass;

/// Sessions remembered at most; the least recently used go first.
const MAX_SESSIONS: usize = 5_000;

/// The writer's window: changes within it are written together, at most one write per window.
/// Also the most a crash can lose.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// Why a session's affinity was created or moved. Stored by name (see [`fmt::Display`]): in
/// the affinity file's `change_reason` and in the ledger's `decision_json.affinity_change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityChange {
    /// `first_success`: the session's first success under this route graph.
    FirstSuccess,
    /// `returned_to_preferred`: moved although nothing failed in this request (selection
    /// preferred another endpoint, e.g. a better group is available again).
    ReturnedToPreferred,
    /// `failover_after_<class>` (e.g. `failover_after_server_error`): moved because the
    /// endpoint tried before failed with this class.
    FailoverAfter(FailureClass),
}

impl AffinityChange {
    /// Reads a stored name. Also reads the spelling used before names were typed, which
    /// lowercased the class's `Debug` text (`failover_after_servererror`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "first_success" => Some(Self::FirstSuccess),
            "returned_to_preferred" => Some(Self::ReturnedToPreferred),
            _ => {
                let class = name.strip_prefix("failover_after_")?;
                FailureClass::from_name(class)
                    .or_else(|| legacy_classes().find(|c| legacy_class_name(*c) == class))
                    .map(Self::FailoverAfter)
            }
        }
    }

    /// A stored name in today's spelling; names this version does not know are kept as they
    /// are (a newer version may have written them).
    pub fn normalise(name: &str) -> String {
        Self::parse(name).map_or_else(|| name.to_string(), |c| c.to_string())
    }
}

/// The classes that existed while affinity reasons were spelled from `Debug` text (the first
/// ones in [`FailureClass::ALL`]; classes added since never had that spelling).
pub fn legacy_classes() -> impl Iterator<Item = FailureClass> {
    FailureClass::ALL.into_iter().take(15)
}

/// How affinity reasons spelled a class before names were typed: its `Debug` text lowercased,
/// which is the serde name without underscores (`ServerError` → `servererror`).
pub fn legacy_class_name(class: FailureClass) -> String {
    class.as_str().replace('_', "")
}

impl fmt::Display for AffinityChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FirstSuccess => f.write_str("first_success"),
            Self::ReturnedToPreferred => f.write_str("returned_to_preferred"),
            Self::FailoverAfter(class) => write!(f, "failover_after_{}", class.as_str()),
        }
    }
}

impl Serialize for AffinityChange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Where one session is bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffinityRecord {
    pub graph_key: String,
    /// `provider.endpoint`.
    pub upstream: String,
    pub last_selected_ms: u64,
    /// When the session moved to `upstream`.
    pub last_changed_ms: u64,
    /// Why it moved: an [`AffinityChange`] name. Kept as text so that a file written by a
    /// newer version with a reason this one does not know still loads.
    pub change_reason: String,
}

/// The file as written.
#[derive(Serialize)]
struct FileOut<'a> {
    version: u32,
    sessions: &'a HashMap<String, AffinityRecord>,
}

/// The file as read.
#[derive(Deserialize)]
struct FileIn {
    sessions: HashMap<String, AffinityRecord>,
}

/// The sessions, and whether they changed since the last write.
#[derive(Debug, Default)]
struct Sessions {
    map: HashMap<String, AffinityRecord>,
    dirty: bool,
}

/// All sessions' affinity. Shared by all requests; its lock is held only for map operations.
#[derive(Debug, Default)]
pub struct AffinityStore {
    sessions: Arc<Mutex<Sessions>>,
    writer: Option<AffinityWriter>,
}

impl AffinityStore {
    /// An in-memory store (tests, or when the state folder cannot be used).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The sessions saved at `path`, never written back (`routing explain`). A missing file
    /// is an empty store, and an unreadable one is set aside as `.corrupt` (with a warning)
    /// rather than blocking start-up.
    pub fn load(path: &Path) -> Self {
        let (map, renamed) = read(path);
        Self {
            sessions: Arc::new(Mutex::new(Sessions {
                map,
                dirty: renamed,
            })),
            writer: None,
        }
    }

    /// The sessions saved at `path`, with a writer that keeps the file up to date (see the
    /// module docs). Reasons saved in old spellings are renamed, and written back with the
    /// next write.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with_window(path, DEBOUNCE)
    }

    /// [`Self::open`] with another debounce window (tests).
    pub fn open_with_window(path: &Path, window: Duration) -> anyhow::Result<Self> {
        let mut store = Self::load(path);
        store.writer = Some(AffinityWriter::start(
            path.to_path_buf(),
            store.sessions.clone(),
            window,
        )?);
        Ok(store)
    }

    /// The writer, for flushing at shutdown; `None` for stores that are not persisted.
    pub fn writer(&self) -> Option<AffinityWriter> {
        self.writer.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().expect("affinity lock")
    }

    /// The session's affinity under the current graph, if any.
    pub fn get(&self, session: &str, graph_key: &str) -> Option<AffinityRecord> {
        self.lock()
            .map
            .get(session)
            .filter(|r| r.graph_key == graph_key)
            .cloned()
    }

    /// The most recently used sessions, newest first, at most `limit`.
    pub fn recent(&self, limit: usize) -> Vec<(String, AffinityRecord)> {
        let mut all: Vec<(String, AffinityRecord)> = self
            .lock()
            .map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by_key(|(_, record)| std::cmp::Reverse(record.last_selected_ms));
        all.truncate(limit);
        all
    }

    /// One session's binding, whatever graph it was made under.
    pub fn any(&self, session: &str) -> Option<AffinityRecord> {
        self.lock().map.get(session).cloned()
    }

    /// Records a success on `upstream`. `after_failure` is the class of the failure that made
    /// the request leave the endpoint tried before, if one did. Returns what changed: `None`
    /// when the session stayed where it was.
    pub fn record_success(
        &self,
        session: &str,
        graph_key: &str,
        upstream: &str,
        now_ms: u64,
        after_failure: Option<FailureClass>,
    ) -> Option<AffinityChange> {
        let change = {
            let mut sessions = self.lock();
            let bound = sessions
                .map
                .get_mut(session)
                .filter(|r| r.graph_key == graph_key);
            let change = match bound {
                Some(record) if record.upstream == upstream => {
                    // Not a change: the file is not rewritten for it (the time rides along
                    // with the next write).
                    record.last_selected_ms = now_ms;
                    return None;
                }
                Some(_) => after_failure.map_or(
                    AffinityChange::ReturnedToPreferred,
                    AffinityChange::FailoverAfter,
                ),
                None => AffinityChange::FirstSuccess,
            };
            sessions.map.insert(
                session.to_string(),
                AffinityRecord {
                    graph_key: graph_key.to_string(),
                    upstream: upstream.to_string(),
                    last_selected_ms: now_ms,
                    last_changed_ms: now_ms,
                    change_reason: change.to_string(),
                },
            );
            if sessions.map.len() > MAX_SESSIONS {
                evict(&mut sessions.map);
            }
            sessions.dirty = true;
            change
        };
        if let Some(writer) = &self.writer {
            writer.wake();
        }
        Some(change)
    }
}

impl AffinityStore {
    /// Takes a binding another team instance made (`serve --team`, see
    /// `crate::shared::routing`): kept when the session has no binding under the record's
    /// graph here, or its binding names `replacing`. Returns whether it was taken.
    pub fn adopt(&self, session: &str, record: AffinityRecord, replacing: Option<&str>) -> bool {
        {
            let mut sessions = self.lock();
            let bound = sessions
                .map
                .get(session)
                .filter(|r| r.graph_key == record.graph_key);
            match bound {
                Some(r) if r.upstream == record.upstream => return false,
                Some(r) if Some(r.upstream.as_str()) != replacing => return false,
                _ => {}
            }
            sessions.map.insert(session.to_string(), record);
            if sessions.map.len() > MAX_SESSIONS {
                evict(&mut sessions.map);
            }
            sessions.dirty = true;
        }
        if let Some(writer) = &self.writer {
            writer.wake();
        }
        true
    }
}

/// Drops the least recently used sessions beyond [`MAX_SESSIONS`].
fn evict(map: &mut HashMap<String, AffinityRecord>) {
    let mut by_age: Vec<(u64, String)> = map
        .iter()
        .map(|(k, r)| (r.last_selected_ms, k.clone()))
        .collect();
    by_age.sort();
    let excess = map.len() - MAX_SESSIONS;
    for (_, key) in by_age.into_iter().take(excess) {
        map.remove(&key);
    }
}

/// Reads the file at `path`. Returns the sessions and whether any reason was renamed.
fn read(path: &Path) -> (HashMap<String, AffinityRecord>, bool) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(_) => return (HashMap::new(), false),
    };
    match serde_json::from_slice::<FileIn>(&bytes) {
        Ok(file) => {
            let mut renamed = false;
            let mut sessions = file.sessions;
            for record in sessions.values_mut() {
                let name = AffinityChange::normalise(&record.change_reason);
                if name != record.change_reason {
                    record.change_reason = name;
                    renamed = true;
                }
            }
            (sessions, renamed)
        }
        Err(e) => {
            let aside = path.with_extension("json.corrupt");
            tracing::warn!(
                "{} is not readable ({e}); moved to {} and starting with no session affinity",
                path.display(),
                aside.display()
            );
            let _ = std::fs::rename(path, aside);
            (HashMap::new(), false)
        }
    }
}

/// What wakes the writer thread.
enum Wake {
    /// The sessions changed (may be coalesced with others: the dirty flag is the truth).
    Changed,
    /// Write now if anything changed, then answer.
    Flush(Sender<()>),
    /// Write if anything changed, then stop.
    Stop,
}

/// The handle of a store's writer thread. Clones share the thread.
///
/// The thread waits for a change, writes the whole map atomically (`write_atomic`: a
/// complete file or the previous one, never half of one), then lets changes gather until
/// [`DEBOUNCE`] after that write before writing again. Memory stays bounded: the wake-up
/// channel holds one message and the thread holds at most one copy of the map. The only
/// moment the proxy can wait on it is while the thread copies the map under the lock (at most
/// [`MAX_SESSIONS`] records, once per window); encoding and the disk happen outside the lock.
#[derive(Debug, Clone)]
pub struct AffinityWriter {
    wake: SyncSender<Wake>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    writes: Arc<AtomicU64>,
}

impl AffinityWriter {
    fn start(
        path: PathBuf,
        sessions: Arc<Mutex<Sessions>>,
        window: Duration,
    ) -> anyhow::Result<Self> {
        // One slot: a pending `Changed` already says everything later ones would.
        let (wake, receiver) = std::sync::mpsc::sync_channel(1);
        let writes = Arc::new(AtomicU64::new(0));
        let job = WriteJob {
            path,
            sessions,
            writes: writes.clone(),
            failing: false,
        };
        let thread = std::thread::Builder::new()
            .name("affinity-writer".into())
            .spawn(move || job.run(&receiver, window))
            .context("cannot start the session affinity writer thread")?;
        Ok(Self {
            wake,
            thread: Arc::new(Mutex::new(Some(thread))),
            writes,
        })
    }

    /// Tells the thread the sessions changed. Never blocks.
    fn wake(&self) {
        match self.wake.try_send(Wake::Changed) {
            Ok(()) | Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }

    /// How many times the file was written.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Writes pending changes now and waits for it. Blocks: not on the event loop.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.wake.send(Wake::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Writes pending changes and stops the thread; later changes stay in memory. Blocks: call
    /// it at shutdown, off the event loop.
    pub fn close(&self) {
        let _ = self.wake.send(Wake::Stop);
        let thread = self.thread.lock().expect("writer thread lock").take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The writer thread's side.
struct WriteJob {
    path: PathBuf,
    sessions: Arc<Mutex<Sessions>>,
    writes: Arc<AtomicU64>,
    /// The last write failed (warn once per failing spell, not once per window).
    failing: bool,
}

impl WriteJob {
    fn run(mut self, receiver: &Receiver<Wake>, window: Duration) {
        let mut last_write: Option<Instant> = None;
        // When the changes waiting now are to be written.
        let mut due: Option<Instant> = None;
        loop {
            let wake = match due {
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => receiver.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match wake {
                Ok(Wake::Changed) => {
                    let now = Instant::now();
                    due.get_or_insert(last_write.map_or(now, |t| (t + window).max(now)));
                }
                Ok(Wake::Flush(done)) => {
                    self.write();
                    (due, last_write) = (None, Some(Instant::now()));
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Every handle is gone, or the proxy is stopping: the last write.
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.write();
                    return;
                }
            }
            // Checked after every message, so a steady stream of changes cannot hold the
            // write back.
            if due.is_some_and(|at| Instant::now() >= at) {
                self.write();
                (due, last_write) = (None, Some(Instant::now()));
            }
        }
    }

    /// Writes the map if it changed since the last write.
    fn write(&mut self) {
        let snapshot = {
            let mut sessions = self.sessions.lock().expect("affinity lock");
            if !sessions.dirty {
                return;
            }
            sessions.dirty = false;
            sessions.map.clone()
        };
        let file = FileOut {
            version: 1,
            sessions: &snapshot,
        };
        let result = serde_json::to_vec(&file)
            .context("cannot encode session affinity")
            .and_then(|bytes| {
                crate::files::write_atomic(&self.path, &bytes, crate::files::PRIVATE)
            });
        match result {
            Ok(()) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                self.failing = false;
            }
            Err(e) => {
                // Affinity is an optimisation of continuity, not a reason to fail anything:
                // warn, and try again with the next change.
                self.sessions.lock().expect("affinity lock").dirty = true;
                if !self.failing {
                    tracing::warn!(
                        "cannot save session affinity to {}: {e:#}",
                        self.path.display()
                    );
                }
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that nothing is written by the window during a test step.
    const LONG: Duration = Duration::from_secs(60);

    fn read_file(path: &Path) -> serde_json::Value {
        let bytes = std::fs::read(path).unwrap();
        serde_json::from_slice(&bytes).expect("the file is complete JSON")
    }

    /// Waits (bounded) until the writer has written `n` times.
    fn wait_for_writes(writer: &AffinityWriter, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.writes() < n {
            assert!(Instant::now() < deadline, "no write {n} within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn survives_a_restart_and_a_graph_edit_resets_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/session-affinity.json");
        let store = AffinityStore::open(&path).unwrap();
        assert_eq!(
            store.record_success("s1", "g1:a", "relay.default", 10, None),
            Some(AffinityChange::FirstSuccess)
        );
        assert_eq!(
            store.record_success("s1", "g1:a", "relay.default", 20, None),
            None
        );
        let change = store.record_success(
            "s1",
            "g1:a",
            "backup.hk",
            30,
            Some(FailureClass::ServerError),
        );
        assert_eq!(
            change.map(|c| c.to_string()).as_deref(),
            Some("failover_after_server_error")
        );
        store.writer().unwrap().close();

        let reloaded = AffinityStore::load(&path);
        let record = reloaded.get("s1", "g1:a").unwrap();
        assert_eq!(
            (
                record.upstream.as_str(),
                record.last_changed_ms,
                record.change_reason.as_str()
            ),
            ("backup.hk", 30, "failover_after_server_error")
        );
        assert!(
            reloaded.get("s1", "g1:b").is_none(),
            "another graph key means no affinity"
        );
    }

    #[test]
    fn a_move_without_a_failure_is_a_return_to_the_preferred_endpoint() {
        let store = AffinityStore::in_memory();
        store.record_success("s", "g", "fallback.x", 1, None);
        assert_eq!(
            store.record_success("s", "g", "main.x", 2, None),
            Some(AffinityChange::ReturnedToPreferred)
        );
        assert_eq!(
            store.record_success("s", "other-graph", "main.x", 3, None),
            Some(AffinityChange::FirstSuccess),
            "a session under a new graph starts afresh"
        );
    }

    #[test]
    fn change_names_read_back_in_both_spellings() {
        for class in FailureClass::ALL {
            let change = AffinityChange::FailoverAfter(class);
            let name = change.to_string();
            assert_eq!(name, format!("failover_after_{}", class.as_str()));
            assert_eq!(AffinityChange::parse(&name), Some(change));
        }
        for class in legacy_classes() {
            let change = AffinityChange::FailoverAfter(class);
            let old = format!(
                "failover_after_{}",
                format!("{class:?}").to_ascii_lowercase()
            );
            assert_eq!(AffinityChange::parse(&old), Some(change), "{old}");
        }
        for change in [
            AffinityChange::FirstSuccess,
            AffinityChange::ReturnedToPreferred,
        ] {
            assert_eq!(AffinityChange::parse(&change.to_string()), Some(change));
        }
        assert_eq!(
            serde_json::to_string(&AffinityChange::FailoverAfter(FailureClass::RateLimited))
                .unwrap(),
            "\"failover_after_rate_limited\""
        );
        assert_eq!(
            AffinityChange::normalise("from_the_future"),
            "from_the_future"
        );
    }

    #[test]
    fn old_reasons_in_the_file_are_renamed_and_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let record = |reason: &str| {
            serde_json::json!({"graph_key": "g", "upstream": "u", "last_selected_ms": 1,
                "last_changed_ms": 1, "change_reason": reason})
        };
        let file = serde_json::json!({"version": 1, "sessions": {
            "s1": record("failover_after_servererror"),
            "s2": record("failover_after_preambletoolarge"),
            "s3": record("first_success"),
            "s4": record("from_the_future"),
        }});
        std::fs::write(&path, file.to_string()).unwrap();

        let store = AffinityStore::open_with_window(&path, LONG).unwrap();
        let reason = |s: &str| store.get(s, "g").unwrap().change_reason;
        assert_eq!(reason("s1"), "failover_after_server_error");
        assert_eq!(reason("s2"), "failover_after_preamble_too_large");
        assert_eq!(reason("s3"), "first_success");
        assert_eq!(reason("s4"), "from_the_future");
        store.writer().unwrap().close();
        let saved = read_file(&path);
        assert_eq!(
            saved["sessions"]["s1"]["change_reason"],
            "failover_after_server_error"
        );
    }

    #[test]
    fn many_changes_make_few_writes_of_complete_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let window = Duration::from_millis(300);
        let store = AffinityStore::open_with_window(&path, window).unwrap();
        let writer = store.writer().unwrap();
        let started = Instant::now();
        for i in 0..2_000 {
            store.record_success(&format!("s{i}"), "g", "u", i, None);
        }
        let windows = (started.elapsed().as_millis() / window.as_millis()) as u64;
        writer.flush();
        // One write at the first change, at most one per window after it, one for the flush.
        assert!(
            writer.writes() <= windows + 2,
            "{} writes for 2000 changes over {windows} windows",
            writer.writes()
        );
        assert_eq!(
            read_file(&path)["sessions"].as_object().unwrap().len(),
            2_000
        );

        // Each write leaves a complete file with what was there when it was written.
        for round in 1..=3u64 {
            let before = writer.writes();
            store.record_success(&format!("late{round}"), "g", "u", round, None);
            wait_for_writes(&writer, before + 1);
            let sessions = read_file(&path)["sessions"].as_object().unwrap().len();
            assert_eq!(sessions as u64, 2_000 + round);
        }
        writer.close();
    }

    #[test]
    fn a_crash_between_writes_leaves_the_previous_file_and_shutdown_writes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let store = AffinityStore::open_with_window(&path, LONG).unwrap();
        let writer = store.writer().unwrap();
        store.record_success("s1", "g", "u", 1, None);
        wait_for_writes(&writer, 1);
        store.record_success("s2", "g", "u", 2, None);
        std::thread::sleep(Duration::from_millis(100));
        // A crash now (within the window) would find exactly this file: the earlier state,
        // complete.
        assert_eq!(writer.writes(), 1);
        let sessions = read_file(&path)["sessions"].clone();
        assert!(sessions.get("s1").is_some() && sessions.get("s2").is_none());

        writer.close();
        assert_eq!(writer.writes(), 2, "shutdown writes what the window held");
        assert!(read_file(&path)["sessions"].get("s2").is_some());
        // After close, changes stay in memory and nothing blocks.
        store.record_success("s3", "g", "u", 3, None);
        assert!(store.get("s3", "g").is_some());
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, "{not json").unwrap();
        let store = AffinityStore::load(&path);
        assert!(store.get("s", "g").is_none());
        assert!(dir.path().join("a.json.corrupt").exists());
    }

    #[test]
    fn bounded_to_the_most_recent_sessions() {
        let store = AffinityStore::in_memory();
        for i in 0..(MAX_SESSIONS as u64 + 10) {
            store.record_success(&format!("s{i}"), "g", "u", i, None);
        }
        assert_eq!(store.lock().map.len(), MAX_SESSIONS);
        assert!(store.get("s0", "g").is_none());
        assert!(store.get(&format!("s{}", MAX_SESSIONS + 9), "g").is_some());
    }
}
