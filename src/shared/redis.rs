//! The connection to the team's Redis, made so that Redis can never stall a request.
//!
//! - Every call is bounded: [`Wait::Request`] (`[team] redis_wait_ms`, 20 ms by default) on a
//!   request's path, [`Wait::Background`] for work beside it. Past its bound, or with Redis
//!   down, a call answers `None` and the caller goes on with its own local state.
//! - The connection is the redis crate's `ConnectionManager` (it reconnects by itself), made
//!   on a thread of its own that keeps trying until Redis first answers: an instance starts
//!   and serves while Redis is down.
//! - An outage and the recovery are logged once each; [`TeamRedis::recoveries`] counts the
//!   recoveries so state kept aside while Redis was away can be caught up.
//! - The URL (which may carry a password) is only ever shown as `host:port/db`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Every key this helper writes starts with this, so a team's Redis can hold other data.
pub const KEY_PREFIX: &str = "codex-helper:";

/// The bound on a call made beside the requests (state sync, leader jobs).
pub const BACKGROUND_WAIT: Duration = Duration::from_secs(2);

pub use crate::redis_url::RedisUrl;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a call may wait for Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// On a request's path: `[team] redis_wait_ms`.
    Request,
    /// Beside the requests: [`BACKGROUND_WAIT`].
    Background,
}

/// The team's Redis, shared by everything in one instance (cheap to clone).
#[derive(Clone)]
pub struct TeamRedis {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Arc<OnceLock<ConnectionManager>>,
    request_wait: Duration,
    shown: String,
    /// Whether the last call that reached a verdict found Redis answering.
    up: AtomicBool,
    /// Whether the outage in progress was logged.
    down_logged: AtomicBool,
    recoveries: AtomicU64,
    /// Dropped with the last handle: the connection thread then ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TeamRedis {
    /// Starts the connection thread; Redis need not answer yet.
    pub fn start(url: RedisUrl, request_wait: Duration) -> anyhow::Result<Self> {
        let conn = Arc::new(OnceLock::new());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the Redis connection's runtime")?;
        let slot = conn.clone();
        let client = url.client().clone();
        std::thread::Builder::new()
            .name("team-redis".into())
            .spawn(move || runtime.block_on(keep_connection(client, slot, stopped)))
            .context("starting the Redis connection's thread")?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                request_wait,
                shown: url.shown().to_string(),
                up: AtomicBool::new(false),
                down_logged: AtomicBool::new(false),
                recoveries: AtomicU64::new(0),
                _stop: stop,
            }),
        })
    }

    /// Runs `op` on the connection within `wait`. `None` when Redis is not connected yet,
    /// answers an error, or does not answer in time; the caller then uses its local state.
    /// `what` names the operation in the one log line an outage gets.
    pub async fn call<T, F, Fut>(&self, wait: Wait, what: &'static str, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(conn) = self.inner.conn.get() else {
            self.went_down(what, "not connected yet");
            return None;
        };
        let bound = match wait {
            Wait::Request => self.inner.request_wait,
            Wait::Background => BACKGROUND_WAIT,
        };
        match tokio::time::timeout(bound, op(conn.clone())).await {
            Ok(Ok(value)) => {
                self.answered();
                Some(value)
            }
            Ok(Err(err)) => {
                // A script's own refusal or a wrong type is an answer, not an outage.
                if err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_timeout()
                {
                    self.went_down(what, "connection failed");
                } else {
                    tracing::warn!(operation = what, kind = ?err.kind(), "team Redis refused an operation");
                }
                None
            }
            // A slow answer on a request's path is not an outage: the request went on without it.
            Err(_) if wait == Wait::Request => None,
            Err(_) => {
                self.went_down(what, "no answer in time");
                None
            }
        }
    }

    /// Whether Redis answered the last call that reached a verdict.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// How many times Redis came back after an outage this instance saw.
    pub fn recoveries(&self) -> u64 {
        self.inner.recoveries.load(Ordering::Relaxed)
    }

    /// `host:port/db`.
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    fn answered(&self) {
        if !self.inner.up.swap(true, Ordering::Relaxed)
            && self.inner.down_logged.swap(false, Ordering::Relaxed)
        {
            self.inner.recoveries.fetch_add(1, Ordering::Relaxed);
            tracing::info!(redis = %self.inner.shown, "team Redis answers again: sharing state with the other instances");
        }
    }

    fn went_down(&self, what: &'static str, why: &'static str) {
        self.inner.up.store(false, Ordering::Relaxed);
        if !self.inner.down_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                redis = %self.inner.shown,
                operation = what,
                "team Redis unreachable ({why}): serving on this instance's own state until it answers"
            );
        }
    }
}

/// The connection thread's work: connect (retrying until Redis answers), then keep the
/// runtime the connection's tasks run on alive until every handle is gone.
async fn keep_connection(
    client: redis::Client,
    slot: Arc<OnceLock<ConnectionManager>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(BACKGROUND_WAIT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            made = ConnectionManager::new_with_config(client.clone(), config.clone()) => match made {
                Ok(conn) => {
                    let _ = slot.set(conn);
                    break;
                }
                Err(_) => {
                    tokio::select! {
                        _ = &mut stopped => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            },
        }
    }
    let _ = stopped.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn with_redis_away_a_call_answers_none_at_once() {
        // A port nothing listens on: the connection never comes, calls do not wait for it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = RedisUrl::parse(&format!("redis://127.0.0.1:{port}/0")).unwrap();
        let redis = TeamRedis::start(url, Duration::from_millis(20)).unwrap();
        let got: Option<String> = redis
            .call(Wait::Request, "test", |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await;
        assert_eq!(got, None);
        assert!(!redis.is_up());
    }
}
