//! Concurrency limits that hold across every `serve --team` instance.
//!
//! A limit group (`limit_group` / `max_concurrent_requests`) is a sorted set in Redis whose
//! members are the permits held now, each scored by its lease's end (Redis's own clock, so
//! the instances' clocks need not agree). Taking a permit is one script: drop the members
//! whose lease ended, count, add if below the maximum. A held permit is renewed by this
//! instance's permit thread every third of the lease, all held permits in one call; it is
//! given back (`ZREM`) by the same thread when the request's body ends. An instance that
//! dies stops renewing: its permits end with their lease.
//!
//! The local limit ([`crate::routing::runtime::RoutingState::acquire`]) is always taken
//! first; the global one is asked only of Redis. With Redis down or slow (past
//! `[team] redis_wait_ms`) a request goes on under the local limit alone: each instance then
//! allows `max` on its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::redis::{KEY_PREFIX, TeamRedis, Wait};

/// Drops ended leases, then adds `ARGV[3]` with lease end `now + ARGV[1]` when fewer than
/// `ARGV[2]` are held. 1 when added, 0 when the group is full.
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  return 1
end
return 0
",
    )
});

/// Moves the lease end of each held permit (`KEYS[i]`, `ARGV[i + 1]`) to `now + ARGV[1]`;
/// a permit that is gone (its lease ended while Redis was away) is not added back.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease * 2)
end
return #KEYS
",
    )
});

/// Releases queued at most; past it a permit ends with its lease instead.
const RELEASES: usize = 4096;

/// The Redis key of a limit group's permits.
pub fn group_key(group: &str) -> String {
    format!("{KEY_PREFIX}permits:{group}")
}

/// The acquire script's arguments: lease, maximum, the permit's name.
pub fn acquire_args(lease: Duration, max: u32, member: &str) -> [String; 3] {
    [
        lease.as_millis().to_string(),
        max.to_string(),
        member.to_string(),
    ]
}

/// The renew script's keys and arguments for the permits held now (`member → group key`),
/// in a stable order.
pub fn renew_args(lease: Duration, held: &HashMap<String, String>) -> (Vec<String>, Vec<String>) {
    let mut pairs: Vec<(&String, &String)> = held.iter().collect();
    pairs.sort();
    let keys = pairs.iter().map(|(_, key)| (*key).clone()).collect();
    let args = std::iter::once(lease.as_millis().to_string())
        .chain(pairs.iter().map(|(member, _)| (*member).clone()))
        .collect();
    (keys, args)
}

/// What asking for a global permit gave.
#[derive(Debug)]
pub enum Claim {
    /// A permit, held until this is dropped.
    Held(GlobalHold),
    /// The group is full across the team.
    Full,
    /// Redis did not answer in time: the local limit alone applies.
    Unknown,
}

/// The permits this instance holds, by member name → group key.
type Held = Arc<Mutex<HashMap<String, String>>>;

/// This instance's global permits (cheap to clone).
#[derive(Clone)]
pub struct GlobalPermits {
    redis: TeamRedis,
    lease: Duration,
    held: Held,
    release: mpsc::Sender<(String, String)>,
    /// Names this instance's permits apart from every other instance's.
    instance: Arc<str>,
    next: Arc<AtomicU64>,
}

impl GlobalPermits {
    /// Starts the thread that renews and releases permits (it ends with the last handle).
    pub fn start(redis: TeamRedis, lease: Duration) -> anyhow::Result<Self> {
        let held = Held::default();
        let (release, released) = mpsc::channel(RELEASES);
        let (thread_redis, thread_held) = (redis.clone(), held.clone());
        super::spawn_worker("team-permits", move || {
            keep(thread_redis, lease, thread_held, released)
        })?;
        Ok(Self {
            redis,
            lease,
            held,
            release,
            instance: Arc::from(instance_name()?),
            next: Arc::default(),
        })
    }

    /// Asks Redis for a permit in `group` (at most `max` across the team), within the
    /// request's Redis bound.
    pub async fn claim(&self, group: &str, max: u32) -> Claim {
        let key = group_key(group);
        let member = format!(
            "{}-{}",
            self.instance,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let args = acquire_args(self.lease, max, &member);
        let script_key = key.clone();
        let added: Option<i64> = self
            .redis
            .call(
                Wait::Request,
                "take a concurrency permit",
                |mut conn| async move {
                    let mut invocation = ACQUIRE.prepare_invoke();
                    invocation.key(script_key).arg(&args[..]);
                    invocation.invoke_async(&mut conn).await
                },
            )
            .await;
        match added {
            Some(1) => {
                self.held
                    .lock()
                    .expect("permits lock")
                    .insert(member.clone(), key.clone());
                Claim::Held(GlobalHold {
                    member,
                    key,
                    held: self.held.clone(),
                    release: self.release.clone(),
                })
            }
            Some(_) => Claim::Full,
            // The script may still have run (an answer later than the bound): a permit added
            // then is not renewed and ends with its lease.
            None => Claim::Unknown,
        }
    }
}

/// A name for this instance's permits: 8 random bytes in hex.
fn instance_name() -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A permit held in Redis; dropping it gives it back (off the request's path).
#[derive(Debug)]
pub struct GlobalHold {
    member: String,
    key: String,
    held: Held,
    release: mpsc::Sender<(String, String)>,
}

impl Drop for GlobalHold {
    fn drop(&mut self) {
        self.held.lock().expect("permits lock").remove(&self.member);
        let _ = self.release.try_send((
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.member),
        ));
    }
}

/// The permit thread: renews every held permit each third of the lease, and gives back
/// released ones as they come.
async fn keep(
    redis: TeamRedis,
    lease: Duration,
    held: Held,
    mut released: mpsc::Receiver<(String, String)>,
) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            gone = released.recv() => {
                let Some(first) = gone else { return };
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match released.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let _: Option<()> = redis
                    .call(Wait::Background, "give concurrency permits back", |mut conn| async move {
                        let mut pipe = redis::pipe();
                        for (key, member) in &batch {
                            pipe.zrem(key, member).ignore();
                        }
                        pipe.query_async(&mut conn).await
                    })
                    .await;
            }
            _ = tick.tick() => {
                let (keys, args) = renew_args(lease, &held.lock().expect("permits lock"));
                if keys.is_empty() {
                    continue;
                }
                let _: Option<i64> = redis
                    .call(Wait::Background, "renew concurrency permits", |mut conn| async move {
                        let mut invocation = RENEW.prepare_invoke();
                        for key in &keys {
                            invocation.key(key);
                        }
                        invocation.arg(&args[..]).invoke_async(&mut conn).await
                    })
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_arguments_name_the_lease_maximum_and_permit() {
        assert_eq!(group_key("relay.main"), "codex-helper:permits:relay.main");
        assert_eq!(
            acquire_args(Duration::from_secs(20), 3, "abc-7"),
            ["20000".to_string(), "3".into(), "abc-7".into()]
        );
        let held = HashMap::from([
            ("i-2".to_string(), "codex-helper:permits:b".to_string()),
            ("i-1".to_string(), "codex-helper:permits:a".to_string()),
        ]);
        let (keys, args) = renew_args(Duration::from_millis(1500), &held);
        assert_eq!(keys, ["codex-helper:permits:a", "codex-helper:permits:b"]);
        assert_eq!(args, ["1500", "i-1", "i-2"]);
    }
}
