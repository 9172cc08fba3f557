//! Team mode's balance polls: one instance polls a relay per window, the others take its
//! snapshot (see [`crate::shared::balance_lock`]). Without the team's Redis, or with it away,
//! an instance polls for itself.

use std::time::{Duration, Instant};

use super::snapshot::Snapshot;
use crate::proxy::ProxyState;
use crate::shared::balance_lock::{self, Turn};

/// How often a waiting instance looks for the polling instance's snapshot.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// The snapshot another instance polled for `endpoint` in this `window`, when it is not this
/// instance's turn. Waits up to `timeout` (a lookup's own time) for one polled after the
/// window began; `None`: poll here (this instance's turn, Redis away, or the other instance
/// never published).
pub async fn polled_elsewhere(
    state: &ProxyState,
    endpoint: &str,
    window: Duration,
    timeout: Duration,
) -> Option<Snapshot> {
    let redis = state.team_redis.as_ref()?;
    if balance_lock::take_turn(redis, endpoint, window).await != Turn::Theirs {
        return None;
    }
    let asked_ms = crate::time::now_ms();
    let window_ms = window.as_millis() as u64;
    let deadline = Instant::now() + timeout;
    loop {
        let text = balance_lock::published(redis, endpoint).await;
        let snapshot = text.and_then(|t| serde_json::from_str::<Snapshot>(&t).ok());
        if let Some(snapshot) = snapshot.filter(|s| fresh(s, asked_ms, window_ms)) {
            return Some(snapshot);
        }
        if Instant::now() + WAIT_STEP > deadline {
            tracing::warn!(
                endpoint,
                "balance: the instance polling this relay published nothing in time; polling here"
            );
            return None;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

/// Whether a snapshot was polled in the window that holds `asked_ms`.
fn fresh(snapshot: &Snapshot, asked_ms: u64, window_ms: u64) -> bool {
    snapshot.fetched_at_ms + window_ms > asked_ms
}

/// Publishes a snapshot this instance polled, kept until it goes stale.
pub async fn publish(state: &ProxyState, endpoint: &str, snapshot: &Snapshot) {
    let Some(redis) = state.team_redis.as_ref() else {
        return;
    };
    let Ok(text) = serde_json::to_string(snapshot) else {
        return;
    };
    let keep = snapshot
        .stale_after_ms
        .saturating_sub(crate::time::now_ms())
        .max(1_000);
    balance_lock::publish(redis, endpoint, text, Duration::from_millis(keep)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::snapshot::Reading;

    #[test]
    fn only_a_snapshot_of_this_window_is_taken() {
        let at = |fetched: u64| {
            Snapshot::new(
                "x",
                "usage_provider:sub2api_usage",
                Reading::default(),
                true,
                (fetched, fetched + 360_000),
                None,
            )
        };
        assert!(fresh(&at(1_000_000), 1_000_500, 120_000));
        assert!(fresh(&at(1_000_000), 1_119_999, 120_000));
        assert!(!fresh(&at(1_000_000), 1_120_000, 120_000));
    }
}
