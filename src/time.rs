//! Leaf: the wall clock as the helper records it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the one unit for times the helper stores, compares
/// (cooldowns, affinity) and names files by. A clock set before 1970 reads as 0.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
