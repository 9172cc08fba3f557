//! The member keys an instance checks requests against: a copy of the database's key table,
//! refreshed by a thread of its own, so a request never waits on the database beyond a small
//! bound.
//!
//! - Every [`KeyTimings::refresh`] the thread reads all keys (a team has tens or hundreds).
//! - A key the copy does not know wakes the thread at once and waits up to
//!   [`KeyTimings::miss_wait`] for a copy read after it arrived: a key added on another
//!   instance works here immediately. Reads are at least [`MIN_GAP`] apart, so a flood of
//!   made-up keys costs the database a few reads a second, not one per request.
//! - Disabling or removing a key takes effect within one refresh.
//! - With the database down, the last copy keeps serving for [`KeyTimings::max_age`], then
//!   requests are answered `team_keys_unavailable` (retryable) until it is back. The outage
//!   and the recovery are logged once each.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::db::{DatabaseUrl, Db, KeyRecord};
use super::key::{self, StoredKey};
use crate::proxy::members::{KeysHealth, MemberKeys, Verdict};
use crate::shared::member_limits::MemberLimits;

/// The least time between two reads of the key table.
pub const MIN_GAP: Duration = Duration::from_millis(100);

/// How often keys are read, how long a miss waits, how long a copy is trusted.
#[derive(Debug, Clone, Copy)]
pub struct KeyTimings {
    pub refresh: Duration,
    pub miss_wait: Duration,
    pub max_age: Duration,
}

impl Default for KeyTimings {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(2),
            miss_wait: Duration::from_millis(500),
            max_age: Duration::from_secs(600),
        }
    }
}

struct Member {
    name: Arc<str>,
    stored: StoredKey,
    disabled: bool,
    limits: MemberLimits,
}

/// One read of the key table.
#[derive(Default)]
struct Copy {
    by_id: HashMap<String, Member>,
    /// When it was read; `None` before the first read.
    read_at: Option<Instant>,
}

impl Copy {
    fn of(records: Vec<KeyRecord>, read_at: Instant) -> Self {
        let by_id = records
            .into_iter()
            .map(|r| {
                let member = Member {
                    name: Arc::from(r.name),
                    stored: r.stored,
                    disabled: r.disabled,
                    limits: r.limits,
                };
                (r.id, member)
            })
            .collect();
        Self {
            by_id,
            read_at: Some(read_at),
        }
    }

    /// The verdict from this copy; `None` when the id is not in it.
    fn verdict(&self, id: &str, secret: &str) -> Option<Verdict> {
        let member = self.by_id.get(id)?;
        Some(if !member.stored.accepts(secret) {
            Verdict::Unknown
        } else if member.disabled {
            Verdict::Disabled(member.name.clone())
        } else {
            Verdict::Member(member.name.clone())
        })
    }
}

/// The live key copy (cheap to clone; the reading thread stops at its first wake-up after
/// the last clone is gone).
#[derive(Clone)]
pub struct TeamKeys {
    copy: watch::Receiver<Arc<Copy>>,
    wake: Arc<Notify>,
    timings: KeyTimings,
    /// Whether the reading thread's last read failed.
    down: Arc<AtomicBool>,
}

impl TeamKeys {
    /// Starts the thread that keeps the copy, connecting to `url` (and reconnecting after a
    /// failure). Returns at once; the first read follows.
    pub fn start(url: DatabaseUrl, timings: KeyTimings) -> anyhow::Result<Self> {
        let (tx, copy) = watch::channel(Arc::new(Copy::default()));
        let wake = Arc::new(Notify::new());
        let thread_wake = wake.clone();
        let down = Arc::new(AtomicBool::new(true));
        let thread_down = down.clone();
        std::thread::Builder::new()
            .name("team-keys".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the team keys thread");
                runtime.block_on(keep_copy(url, tx, thread_wake, thread_down, timings));
            })?;
        Ok(Self {
            copy,
            wake,
            timings,
            down,
        })
    }
}

fn fresh(copy: &Copy, max_age: Duration) -> bool {
    copy.read_at.is_some_and(|t| t.elapsed() <= max_age)
}

impl MemberKeys for TeamKeys {
    fn limits(&self, member: &str) -> MemberLimits {
        let copy = self.copy.borrow();
        copy.by_id
            .values()
            .find(|m| &*m.name == member)
            .map(|m| m.limits)
            .unwrap_or_default()
    }

    fn health(&self) -> KeysHealth {
        let copy = self.copy.borrow();
        KeysHealth {
            usable: fresh(&copy, self.timings.max_age),
            database_reachable: !self.down.load(Ordering::Relaxed),
            copy_age_ms: copy.read_at.map(|t| t.elapsed().as_millis() as u64),
        }
    }

    fn check<'a>(
        &'a self,
        presented: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            let Some(presented) = key::parse(presented) else {
                return Verdict::Unknown;
            };
            let asked = Instant::now();
            {
                let copy = self.copy.borrow();
                if fresh(&copy, self.timings.max_age) {
                    if let Some(verdict) = copy.verdict(presented.id, presented.secret) {
                        return verdict;
                    }
                }
            }
            // Unknown here (or no fresh copy): wait for a read made after this request came.
            self.wake.notify_one();
            let mut copy = self.copy.clone();
            let newer = copy.wait_for(|c| c.read_at.is_some_and(|t| t >= asked));
            match tokio::time::timeout(self.timings.miss_wait, newer).await {
                Ok(Ok(c)) => c
                    .verdict(presented.id, presented.secret)
                    .unwrap_or(Verdict::Unknown),
                // No new read in time: the database is slow or down.
                _ => {
                    let c = self.copy.borrow();
                    if fresh(&c, self.timings.max_age) {
                        c.verdict(presented.id, presented.secret)
                            .unwrap_or(Verdict::Unknown)
                    } else {
                        Verdict::Unavailable
                    }
                }
            }
        })
    }
}

/// The reading thread: read, publish, sleep until the next refresh or a wake-up.
async fn keep_copy(
    url: DatabaseUrl,
    tx: watch::Sender<Arc<Copy>>,
    wake: Arc<Notify>,
    shared_down: Arc<AtomicBool>,
    timings: KeyTimings,
) {
    let mut db: Option<Db> = None;
    // Logged once per outage (not before the first read).
    let mut down = false;
    loop {
        let started = Instant::now();
        let result = read(&url, &mut db).await;
        shared_down.store(result.is_err(), Ordering::Relaxed);
        match result {
            Ok(records) => {
                if down {
                    tracing::warn!(database = url.shown(), "team database reachable again");
                    down = false;
                }
                if tx.send(Arc::new(Copy::of(records, started))).is_err() {
                    return; // every TeamKeys is gone
                }
            }
            Err(e) => {
                db = None;
                if !down {
                    tracing::error!(
                        database = url.shown(),
                        "team database unreachable, checking keys against the last copy: {e:#}"
                    );
                    down = true;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(MIN_GAP.saturating_sub(started.elapsed())).await;
        let _ = tokio::time::timeout(timings.refresh, wake.notified()).await;
    }
}

async fn read(url: &DatabaseUrl, db: &mut Option<Db>) -> anyhow::Result<Vec<KeyRecord>> {
    if db.as_ref().is_none_or(Db::is_closed) {
        *db = Some(Db::connect(url).await?);
    }
    db.as_ref().expect("connected above").keys().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str, issued: &key::IssuedKey, disabled: bool) -> KeyRecord {
        KeyRecord {
            id: id.to_string(),
            name: name.to_string(),
            stored: issued.stored.clone(),
            created_ms: 0,
            disabled,
            limits: MemberLimits::default(),
        }
    }

    #[test]
    fn a_copy_tells_members_disabled_and_wrong_keys_apart() {
        let ann = key::issue().unwrap();
        let bob = key::issue().unwrap();
        let copy = Copy::of(
            vec![
                record(&ann.id, "ann", &ann, false),
                record(&bob.id, "bob", &bob, true),
            ],
            Instant::now(),
        );
        let p = key::parse(ann.text()).unwrap();
        assert_eq!(
            copy.verdict(p.id, p.secret),
            Some(Verdict::Member("ann".into()))
        );
        let p = key::parse(bob.text()).unwrap();
        assert_eq!(
            copy.verdict(p.id, p.secret),
            Some(Verdict::Disabled("bob".into()))
        );
        // Bob's id with Ann's secret is nobody's key, and says nothing about Bob.
        let wrong = key::parse(ann.text()).unwrap().secret;
        assert_eq!(copy.verdict(&bob.id, wrong), Some(Verdict::Unknown));
        assert_eq!(copy.verdict("zzzzzzzzzzzz", wrong), None);
    }
}
