//! One balance poll per relay per window for the whole team: before looking an endpoint's
//! balance up, an instance takes the endpoint's turn (`SET NX PX window`, window = the
//! adapter's poll interval). The instance that has it polls and publishes the snapshot;
//! the others read that snapshot instead of polling.
//!
//! Text in, text out: the snapshot's shape is the balance module's business. With Redis
//! away every instance polls for itself, as a lone helper does.

use std::time::Duration;

use super::redis::{KEY_PREFIX, TeamRedis, Wait};

/// Whose turn it is to poll an endpoint in this window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// This instance took it: poll, then publish.
    Mine,
    /// Another instance took it within the window: read what it publishes.
    Theirs,
    /// Redis did not answer: poll as a lone helper would.
    Unknown,
}

/// The Redis key of an endpoint's poll turn.
pub fn turn_key(endpoint: &str) -> String {
    format!("{KEY_PREFIX}balance:turn:{endpoint}")
}

/// The Redis key of an endpoint's latest published snapshot.
pub fn snapshot_key(endpoint: &str) -> String {
    format!("{KEY_PREFIX}balance:snapshot:{endpoint}")
}

/// Takes the endpoint's poll turn for `window` (`SET NX PX`).
pub async fn take_turn(redis: &TeamRedis, endpoint: &str, window: Duration) -> Turn {
    let key = turn_key(endpoint);
    let ms = window.as_millis().max(1) as u64;
    let set: Option<Option<String>> = redis
        .call(
            Wait::Background,
            "take a poll turn",
            |mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(crate::time::now_ms())
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut conn)
                    .await
            },
        )
        .await;
    match set {
        Some(Some(_)) => Turn::Mine,
        Some(None) => Turn::Theirs,
        None => Turn::Unknown,
    }
}

/// Publishes an endpoint's snapshot (as text) for `keep`.
pub async fn publish(redis: &TeamRedis, endpoint: &str, snapshot: String, keep: Duration) {
    let key = snapshot_key(endpoint);
    let ms = keep.as_millis().max(1) as u64;
    let _: Option<()> = redis
        .call(
            Wait::Background,
            "publish a balance snapshot",
            |mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(snapshot)
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut conn)
                    .await
            },
        )
        .await;
}

/// The endpoint's published snapshot (as text), if any.
pub async fn published(redis: &TeamRedis, endpoint: &str) -> Option<String> {
    let key = snapshot_key(endpoint);
    redis
        .call(
            Wait::Background,
            "read a balance snapshot",
            |mut conn| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            },
        )
        .await
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_endpoint() {
        assert_eq!(turn_key("a.default"), "codex-helper:balance:turn:a.default");
        assert_eq!(
            snapshot_key("a.default"),
            "codex-helper:balance:snapshot:a.default"
        );
    }
}
