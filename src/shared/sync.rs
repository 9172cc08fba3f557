//! The thread that keeps this instance's routing state and the team's in step through Redis
//! (layout and merge rules: [`super::routing`]). Requests never wait on it: it reads the
//! local state every [`PERIOD`], pushes what changed here, pulls the team's entries in one
//! round trip and merges them; session bindings reach it through a bounded queue
//! ([`SyncHandle::share_binding`], never blocking). The one Redis call on a request's path is
//! [`SyncHandle::team_binding`], bounded by `[team] redis_wait_ms`.
//!
//! With Redis away the instance serves on its own state (the outage is logged once by
//! [`TeamRedis`]); when Redis answers again ([`TeamRedis::recoveries`] moved), every live
//! entry here is pushed again before the team's are taken, so the team converges even on a
//! Redis that restarted empty.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;

use super::redis::{KEY_PREFIX, TeamRedis, Wait};
use super::routing::{
    self as wire, AFFINITY_TTL, Change, Decoded, MAX_FIELDS, MAX_VALUE_BYTES, Now, ROUTING_HASH,
};
use crate::routing::affinity::AffinityRecord;
use crate::routing::runtime::{RoutingState, TeamSnapshot};

/// How often the state is pushed and pulled: a change made on one instance is seen by the
/// others within about two periods.
pub const PERIOD: Duration = Duration::from_millis(250);
/// Session bindings waiting to be written at most; past it, new ones are dropped (counted).
const BINDING_QUEUE: usize = 1024;
/// Bindings written per wake-up at most, so the state sync is not held back by a burst.
const BINDING_BATCH: usize = 64;

/// What the sync needs of the proxy: its routing state and the endpoints of the plan in
/// force (entries for others are neither taken nor cleared).
pub trait SyncedRouting: Send + Sync {
    fn routing(&self) -> &RoutingState;
    fn endpoints(&self) -> Vec<String>;
}

/// A session's new binding, to be written to Redis.
struct Binding {
    session: String,
    record: AffinityRecord,
    /// The session's first binding: written only if the team has none, else the team's is
    /// taken here (two instances that served a new thread at once agree on one relay).
    first: bool,
}

/// The request side of the sync (cheap to clone).
#[derive(Clone)]
pub struct SyncHandle {
    redis: TeamRedis,
    bindings: mpsc::Sender<Binding>,
    dropped: Arc<AtomicU64>,
}

impl SyncHandle {
    /// Queues `record`, the session's binding now, for Redis. Never blocks; a full queue
    /// drops it (the session stays bound here, other instances read the older binding).
    pub fn share_binding(&self, session: &str, record: AffinityRecord, first: bool) {
        if session.len() > wire::MAX_SESSION_BYTES {
            return;
        }
        let binding = Binding {
            session: session.to_string(),
            record,
            first,
        };
        if self.bindings.try_send(binding).is_err()
            && self.dropped.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::warn!(
                "the queue of session bindings for the team's Redis is full: new bindings stay on this instance until it drains"
            );
        }
    }

    /// The team's binding of `session` under `graph_key`: one `GET`, waiting at most
    /// `[team] redis_wait_ms`. `None` when there is none, or Redis did not answer in time.
    pub async fn team_binding(&self, session: &str, graph_key: &str) -> Option<AffinityRecord> {
        let key = wire::affinity_key(KEY_PREFIX, graph_key, session)?;
        let raw: String = self
            .redis
            .call(Wait::Request, "session affinity read", |mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await
            .flatten()?;
        read_binding(&raw, graph_key)
    }

    /// Bindings dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A stored binding, if it is one for `graph_key`.
fn read_binding(raw: &str, graph_key: &str) -> Option<AffinityRecord> {
    if raw.len() > MAX_VALUE_BYTES {
        return None;
    }
    let record: AffinityRecord = serde_json::from_str(raw).ok()?;
    (record.graph_key == graph_key).then_some(record)
}

/// The sync before it starts: made before the proxy state (which holds its [`SyncHandle`]),
/// started once the state exists.
pub struct TeamSync {
    handle: SyncHandle,
    inbox: mpsc::Receiver<Binding>,
}

impl TeamSync {
    pub fn new(redis: TeamRedis) -> Self {
        let (bindings, inbox) = mpsc::channel(BINDING_QUEUE);
        Self {
            handle: SyncHandle {
                redis,
                bindings,
                dropped: Arc::default(),
            },
            inbox,
        }
    }

    pub fn handle(&self) -> SyncHandle {
        self.handle.clone()
    }

    /// Starts the sync thread on `target`, held weakly: the thread ends when the proxy state
    /// is gone or [`SyncThread::stop`] is called.
    pub fn start(self, target: Weak<dyn SyncedRouting>) -> anyhow::Result<SyncThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the team state sync's runtime")?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let syncer = Syncer {
            redis: self.handle.redis.clone(),
            target,
            known: TeamSnapshot::new(),
            push_all: true,
            recoveries: self.handle.redis.recoveries(),
            oversize_said: false,
        };
        let inbox = self.inbox;
        let thread = std::thread::Builder::new()
            .name("team-sync".into())
            .spawn(move || runtime.block_on(syncer.run(inbox, stopped)))
            .context("starting the team state sync's thread")?;
        Ok(SyncThread {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// The running sync thread.
pub struct SyncThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SyncThread {
    /// Stops the thread and waits for it (at most one Redis call, bounded). Blocks: not on an
    /// event loop.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sync thread's state.
struct Syncer {
    redis: TeamRedis,
    target: Weak<dyn SyncedRouting>,
    /// The local state as of the last sync (after the team's entries were taken).
    known: TeamSnapshot,
    /// Push every live entry with the next changes (at start, after an outage).
    push_all: bool,
    /// [`TeamRedis::recoveries`] when last looked at.
    recoveries: u64,
    oversize_said: bool,
}

impl Syncer {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Binding>,
        mut stopped: tokio::sync::oneshot::Receiver<()>,
    ) {
        // The first round one period in: the connection is usually made by then, so a start
        // is not taken for an outage.
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = ticks.tick() => {
                    if !self.tick().await {
                        return;
                    }
                }
                first = inbox.recv() => {
                    let Some(first) = first else { return };
                    let mut batch = vec![first];
                    while batch.len() < BINDING_BATCH {
                        match inbox.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    for binding in batch {
                        self.write_binding(binding).await;
                    }
                }
            }
        }
    }

    /// One round: push what changed here, pull the team's entries, take them. False when the
    /// proxy state is gone.
    async fn tick(&mut self) -> bool {
        let Some(target) = self.target.upgrade() else {
            return false;
        };
        let routing = target.routing();
        let now = Now {
            mono: routing.clock().now(),
            wall: crate::time::now_ms(),
        };
        let local = routing.team_snapshot(now.mono);
        let recoveries = self.redis.recoveries();
        if recoveries != self.recoveries {
            self.recoveries = recoveries;
            self.push_all = true;
        }
        let mut changes = wire::local_changes(&self.known, &local, now.mono);
        if self.push_all {
            changes = wire::full_push(&local, changes);
        }
        if !changes.is_empty() && !self.push(&changes, now).await {
            // Kept for the next round: `known` stays as Redis last saw it.
            self.push_all = true;
            return true;
        }
        self.push_all = false;
        let Some(remote) = self.pull().await else {
            // Pushed, but Redis may lose it (a restart): everything again next time.
            self.known = local;
            self.push_all = true;
            return true;
        };
        let mut skip: BTreeSet<_> = changes.into_iter().map(|(key, _)| key).collect();
        let mut team = TeamSnapshot::new();
        let mut stale = Vec::new();
        for (field, raw) in remote {
            let Some(key) = wire::parse_field(&field) else {
                continue;
            };
            match wire::decode(key.kind, &raw, now) {
                Decoded::Live(entry) => {
                    team.insert(key, entry);
                }
                Decoded::Expired { ago_ms } => {
                    if ago_ms > wire::CLEANUP_AFTER_MS {
                        stale.push((field, raw));
                    }
                }
                Decoded::Bad => {
                    skip.insert(key);
                }
            }
        }
        let endpoints: HashSet<String> = target.endpoints().into_iter().collect();
        let mut known = local.clone();
        for merge in wire::merge_plan(&local, &skip, &team, &endpoints) {
            let applied = routing.apply_team(
                &merge.key,
                merge.expected.as_ref(),
                merge.new.as_ref(),
                now.mono,
            );
            if applied {
                match merge.new {
                    Some(entry) => known.insert(merge.key, entry),
                    None => known.remove(&merge.key),
                };
            }
        }
        self.known = known;
        drop(target);
        if !stale.is_empty() {
            self.remove_stale(stale).await;
        }
        true
    }

    /// Writes `changes` in one atomic pipeline. False when Redis did not take them.
    async fn push(&self, changes: &[Change], now: Now) -> bool {
        let hash = format!("{KEY_PREFIX}{ROUTING_HASH}");
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, entry) in changes {
            match entry {
                Some(entry) => pipe.hset(&hash, wire::field(key), wire::encode(entry, now)),
                None => pipe.hdel(&hash, wire::field(key)),
            };
            pipe.ignore();
        }
        self.redis
            .call(Wait::Background, "routing state push", |mut c| async move {
                pipe.query_async::<()>(&mut c).await
            })
            .await
            .is_some()
    }

    /// The team's entries (field, value), or `None` when Redis did not answer or holds more
    /// than [`MAX_FIELDS`] (said once).
    async fn pull(&mut self) -> Option<Vec<(String, String)>> {
        let hash = format!("{KEY_PREFIX}{ROUTING_HASH}");
        let flat: Vec<String> = self
            .redis
            .call(Wait::Background, "routing state pull", |mut c| async move {
                redis::Script::new(PULL_SCRIPT)
                    .key(hash)
                    .arg(MAX_FIELDS)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if flat.len() % 2 == 1 {
            if !self.oversize_said {
                tracing::warn!(
                    fields = flat.first().map(String::as_str).unwrap_or_default(),
                    "the team's routing state in Redis has more than {MAX_FIELDS} entries: not taken until it has fewer"
                );
                self.oversize_said = true;
            }
            return None;
        }
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(field), Some(value)) = (items.next(), items.next()) {
            pairs.push((field, value));
        }
        Some(pairs)
    }

    /// Removes entries long expired, each only if still holding the value read.
    async fn remove_stale(&self, stale: Vec<(String, String)>) {
        let hash = format!("{KEY_PREFIX}{ROUTING_HASH}");
        let _: Option<()> = self
            .redis
            .call(
                Wait::Background,
                "routing state cleanup",
                |mut c| async move {
                    let script = redis::Script::new(REMOVE_IF_SAME_SCRIPT);
                    for (field, raw) in stale {
                        let _: i64 = script
                            .key(&hash)
                            .arg(field)
                            .arg(raw)
                            .invoke_async(&mut c)
                            .await?;
                    }
                    Ok(())
                },
            )
            .await;
    }

    /// Writes one binding with its TTL. A first binding is written only where the team has
    /// none; if it has one, that one is taken here.
    async fn write_binding(&self, binding: Binding) {
        let Binding {
            session,
            record,
            first,
        } = binding;
        let Some(key) = wire::affinity_key(KEY_PREFIX, &record.graph_key, &session) else {
            return;
        };
        let Ok(value) = serde_json::to_string(&record) else {
            return;
        };
        let ttl = AFFINITY_TTL.as_millis() as u64;
        let existing: Option<Option<String>> = self
            .redis
            .call(
                Wait::Background,
                "session affinity write",
                |mut c| async move {
                    let mut set = redis::cmd("SET");
                    set.arg(key).arg(value).arg("PX").arg(ttl);
                    if first {
                        set.arg("NX").arg("GET");
                    }
                    set.query_async(&mut c).await
                },
            )
            .await;
        let Some(team) = existing
            .flatten()
            .and_then(|raw| read_binding(&raw, &record.graph_key))
        else {
            return;
        };
        if let Some(target) = self.target.upgrade() {
            target
                .routing()
                .affinity
                .adopt(&session, team, Some(&record.upstream));
        }
    }
}

/// `HGETALL` of `KEYS[1]` if it has at most `ARGV[1]` fields; else its field count alone (an
/// odd-length answer), so an overgrown hash is never read whole.
const PULL_SCRIPT: &str = r"
local n = redis.call('HLEN', KEYS[1])
if n > tonumber(ARGV[1]) then return {tostring(n)} end
return redis.call('HGETALL', KEYS[1])
";

/// `HDEL KEYS[1] ARGV[1]` only if the field still holds `ARGV[2]`: a cleanup never removes an
/// entry another instance wrote since it was read.
const REMOVE_IF_SAME_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

/// A shared `Arc` as the sync's weak target.
pub fn weak_target<T: SyncedRouting + 'static>(state: &Arc<T>) -> Weak<dyn SyncedRouting> {
    let weak: Weak<T> = Arc::downgrade(state);
    weak
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::affinity::AffinityStore;
    use crate::time::Clock;

    struct Target(RoutingState);

    impl SyncedRouting for Target {
        fn routing(&self) -> &RoutingState {
            &self.0
        }
        fn endpoints(&self) -> Vec<String> {
            vec!["p.e".into()]
        }
    }

    #[tokio::test]
    async fn with_redis_away_a_round_keeps_the_changes_for_later() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url =
            super::super::redis::RedisUrl::parse(&format!("redis://127.0.0.1:{port}/0")).unwrap();
        let redis = TeamRedis::start(url, Duration::from_millis(20)).unwrap();
        let target = Arc::new(Target(RoutingState::new(
            AffinityStore::in_memory(),
            Clock::manual(),
        )));
        target
            .0
            .set_runtime_disabled("p.e", Some(("maintenance".into(), None)));
        let mut syncer = Syncer {
            redis: redis.clone(),
            target: weak_target(&target),
            known: TeamSnapshot::new(),
            push_all: false,
            recoveries: 0,
            oversize_said: false,
        };
        assert!(syncer.tick().await, "the state is still there");
        assert!(syncer.known.is_empty(), "nothing counted as shared");
        assert!(syncer.push_all, "everything is pushed when Redis answers");
        assert_eq!(
            target.0.switches("p.e", 0).disabled.unwrap().reason,
            "maintenance",
            "the local state is untouched"
        );
        drop(target);
        assert!(
            !syncer.tick().await,
            "the proxy state is gone: the thread ends"
        );
    }

    #[test]
    fn a_binding_is_read_only_for_its_graph_and_size() {
        let record = AffinityRecord {
            graph_key: "g2:a".into(),
            upstream: "relay.one".into(),
            last_selected_ms: 5,
            last_changed_ms: 5,
            change_reason: "first_success".into(),
        };
        let raw = serde_json::to_string(&record).unwrap();
        assert_eq!(read_binding(&raw, "g2:a"), Some(record));
        assert_eq!(read_binding(&raw, "g2:b"), None, "another config's binding");
        assert_eq!(read_binding("{", "g2:a"), None);
        assert_eq!(read_binding(&"x".repeat(MAX_VALUE_BYTES + 1), "g2:a"), None);
    }
}
