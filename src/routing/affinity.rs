//! Session affinity: which endpoint last served each session, kept across restarts.
//!
//! Keyed by session id and the route graph's key, so a config edit that changes routing
//! starts every session afresh. Written only after a successful attempt. Persisted to
//! `~/.codex-helper/state/session-affinity.json` (atomically) whenever a session moves; the
//! file is bounded to the most recently used sessions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Sessions remembered at most; the least recently used go first.
const MAX_SESSIONS: usize = 5_000;

/// Where one session is bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffinityRecord {
    pub graph_key: String,
    /// `provider.endpoint`.
    pub upstream: String,
    pub last_selected_ms: u64,
    /// When the session moved to `upstream`.
    pub last_changed_ms: u64,
    /// `first_success`, or why it moved (e.g. `failover_after_http_502`).
    pub change_reason: String,
}

#[derive(Serialize, Deserialize, Default)]
struct FileFormat {
    version: u32,
    sessions: HashMap<String, AffinityRecord>,
}

/// All sessions' affinity.
#[derive(Debug, Default)]
pub struct AffinityStore {
    path: Option<PathBuf>,
    sessions: HashMap<String, AffinityRecord>,
}

impl AffinityStore {
    /// An in-memory store (tests, or when the state folder cannot be used).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the store from `path`; a missing file is an empty store, and an unreadable one
    /// is set aside as `.corrupt` (with a warning) rather than blocking start-up.
    pub fn load(path: &Path) -> Self {
        let sessions = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<FileFormat>(&bytes) {
                Ok(file) => file.sessions,
                Err(e) => {
                    let aside = path.with_extension("json.corrupt");
                    tracing::warn!(
                        "{} is not readable ({e}); moved to {} and starting with no session affinity",
                        path.display(),
                        aside.display()
                    );
                    let _ = std::fs::rename(path, aside);
                    HashMap::new()
                }
            },
            Err(_) => HashMap::new(),
        };
        Self {
            path: Some(path.to_path_buf()),
            sessions,
        }
    }

    /// The session's affinity under the current graph, if any.
    pub fn get(&self, session: &str, graph_key: &str) -> Option<&AffinityRecord> {
        self.sessions
            .get(session)
            .filter(|r| r.graph_key == graph_key)
    }

    /// Records a success. Returns what changed: `None` when the session stayed where it was.
    pub fn record_success(
        &mut self,
        session: &str,
        graph_key: &str,
        upstream: &str,
        now_ms: u64,
        reason: impl FnOnce() -> String,
    ) -> Option<String> {
        if let Some(record) = self
            .sessions
            .get_mut(session)
            .filter(|r| r.graph_key == graph_key && r.upstream == upstream)
        {
            record.last_selected_ms = now_ms;
            return None;
        }
        let reason = if self.get(session, graph_key).is_some() {
            reason()
        } else {
            "first_success".to_string()
        };
        self.sessions.insert(
            session.to_string(),
            AffinityRecord {
                graph_key: graph_key.to_string(),
                upstream: upstream.to_string(),
                last_selected_ms: now_ms,
                last_changed_ms: now_ms,
                change_reason: reason.clone(),
            },
        );
        if self.sessions.len() > MAX_SESSIONS {
            self.evict();
        }
        self.save();
        Some(reason)
    }

    fn evict(&mut self) {
        let mut by_age: Vec<(u64, String)> = self
            .sessions
            .iter()
            .map(|(k, r)| (r.last_selected_ms, k.clone()))
            .collect();
        by_age.sort();
        for (_, key) in by_age.into_iter().take(self.sessions.len() - MAX_SESSIONS) {
            self.sessions.remove(&key);
        }
    }

    /// Writes the store (atomically). Failures are logged: affinity is an optimisation of
    /// continuity, not a reason to fail a request.
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        let file = FileFormat {
            version: 1,
            sessions: self.sessions.clone(),
        };
        let result = serde_json::to_vec(&file)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                crate::config::paths::write_atomic(path, &bytes, crate::config::paths::PRIVATE)
            });
        if let Err(e) = result {
            tracing::warn!("cannot save session affinity: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_and_a_graph_edit_resets_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/session-affinity.json");
        let mut store = AffinityStore::load(&path);
        assert_eq!(
            store.record_success("s1", "g1:a", "relay.default", 10, || unreachable!()),
            Some("first_success".into())
        );
        assert_eq!(
            store.record_success("s1", "g1:a", "relay.default", 20, || unreachable!()),
            None
        );
        assert_eq!(
            store.record_success("s1", "g1:a", "backup.hk", 30, || "failover_after_http_502"
                .into()),
            Some("failover_after_http_502".into())
        );

        let reloaded = AffinityStore::load(&path);
        let record = reloaded.get("s1", "g1:a").unwrap();
        assert_eq!(
            (record.upstream.as_str(), record.last_changed_ms),
            ("backup.hk", 30)
        );
        assert!(
            reloaded.get("s1", "g1:b").is_none(),
            "another graph key means no affinity"
        );
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
        let mut store = AffinityStore::in_memory();
        for i in 0..(MAX_SESSIONS as u64 + 10) {
            store.record_success(&format!("s{i}"), "g", "u", i, String::new);
        }
        assert_eq!(store.sessions.len(), MAX_SESSIONS);
        assert!(store.get("s0", "g").is_none());
        assert!(store.get(&format!("s{}", MAX_SESSIONS + 9), "g").is_some());
    }
}
