//! Cooldowns kept across a restart (`~/.codex-helper/state/cooldowns.json`): a relay that was
//! failing when the helper stopped is still cooling down when it starts again, instead of
//! getting the first request of the new process (`daemon restart`, an upgrade).
//!
//! In memory a cooldown's end is on the monotonic clock, which means nothing to another
//! process; on disk it is an epoch-ms expiry (converted with [`Clock::to_epoch_ms`]), and on
//! load it becomes "so much time left" on the new clock. A wall-clock jump while the helper was
//! stopped can shorten or lengthen what is left; [`MAX_LEFT_MS`] caps the damage. Saved at a
//! clean shutdown only: a crash loses them, and relays then start healthy, as before.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::health::Health;
use super::runtime::RoutingState;
use super::upstream::{EndpointKey, Upstream};
use crate::time::Millis;

/// Largest file read back: a record is ~150 bytes, [`MAX_RECORDS`] of them fit.
const READ_MAX: u64 = 2 << 20;
/// Most records saved or restored.
const MAX_RECORDS: usize = 10_000;
/// No restored cooldown lasts longer than this (a clock set far ahead must not park a relay).
pub const MAX_LEFT_MS: u64 = 24 * 3_600_000;

/// One endpoint's cooldown as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCooldown {
    /// `provider.endpoint`.
    pub endpoint: String,
    /// Consecutive failovers: the next cooldown grows from here.
    pub streak: u32,
    /// When the cooldown ends, epoch ms (in the past once only the streak is left).
    pub until_ms: u64,
    /// The failure that started it.
    pub after: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CooldownFile {
    version: u32,
    saved_ms: u64,
    cooldowns: Vec<SavedCooldown>,
}

/// The cooldowns worth keeping: every endpoint with failures not yet cleared by a success.
pub fn snapshot(state: &RoutingState) -> Vec<SavedCooldown> {
    let clock = state.clock();
    let mut saved: Vec<SavedCooldown> = state
        .health_entries()
        .into_iter()
        .filter(|(_, h)| h.streak > 0)
        .map(|(key, h)| SavedCooldown {
            endpoint: key.as_str().to_string(),
            streak: h.streak,
            until_ms: clock.to_epoch_ms(h.cooldown_until_ms),
            after: h.last_failure.unwrap_or_default(),
        })
        .collect();
    saved.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    saved.truncate(MAX_RECORDS);
    saved
}

/// A saved cooldown as health on a clock reading `now` when the wall clock reads `wall_ms`:
/// `None` for an endpoint not in `known` (removed or renamed since). What is left is capped
/// at [`MAX_LEFT_MS`]; an expired one keeps its streak (the next request is a probe).
pub fn revive(
    saved: &SavedCooldown,
    known: &HashSet<&str>,
    wall_ms: u64,
    now: Millis,
) -> Option<Health> {
    if !known.contains(saved.endpoint.as_str()) || saved.streak == 0 {
        return None;
    }
    let left = saved.until_ms.saturating_sub(wall_ms).min(MAX_LEFT_MS);
    Some(Health {
        streak: saved.streak,
        cooldown_until_ms: now + left,
        last_failure: Some(saved.after.clone()),
        probing_since_ms: None,
    })
}

/// Writes the cooldowns of `state` to `path` (atomically, 0600); an empty list removes the
/// file. Blocking.
pub fn save(path: &Path, state: &RoutingState) -> anyhow::Result<usize> {
    let cooldowns = snapshot(state);
    if cooldowns.is_empty() {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
        return Ok(0);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let count = cooldowns.len();
    let file = CooldownFile {
        version: 1,
        saved_ms: crate::time::now_ms(),
        cooldowns,
    };
    crate::files::write_atomic(
        path,
        &serde_json::to_vec_pretty(&file)?,
        crate::files::PRIVATE,
    )?;
    Ok(count)
}

/// Puts the cooldowns saved at `path` back on `state`, for the endpoints of `upstreams`;
/// returns how many. A missing file is none; an unreadable one is reported and ignored.
pub fn restore(path: &Path, state: &RoutingState, upstreams: &[Upstream]) -> anyhow::Result<usize> {
    let keys: Vec<EndpointKey> = upstreams.iter().map(|u| u.key().clone()).collect();
    restore_for(path, state, &keys)
}

/// [`restore`] for the endpoints named by `keys`.
fn restore_for(path: &Path, state: &RoutingState, keys: &[EndpointKey]) -> anyhow::Result<usize> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(READ_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= READ_MAX,
        "{} is larger than {READ_MAX} bytes; ignored",
        path.display()
    );
    let saved: CooldownFile = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a cooldown file; ignored", path.display()))?;
    let known: HashSet<&str> = keys.iter().map(EndpointKey::as_str).collect();
    let (wall, now) = (crate::time::now_ms(), state.clock().now());
    let mut restored = 0;
    for cooldown in saved.cooldowns.iter().take(MAX_RECORDS) {
        if let Some(health) = revive(cooldown, &known, wall, now)
            && let Some(key) = keys.iter().find(|k| **k == *cooldown.endpoint)
        {
            state.restore_health(key.clone(), health);
            restored += 1;
        }
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(endpoint: &str, until_ms: u64) -> SavedCooldown {
        SavedCooldown {
            endpoint: endpoint.into(),
            streak: 2,
            until_ms,
            after: "status_5xx".into(),
        }
    }

    #[test]
    fn a_saved_cooldown_keeps_its_time_left_on_the_new_clock() {
        let known: HashSet<&str> = ["a.default"].into();
        let health = revive(
            &saved("a.default", 1_000_030_000),
            &known,
            1_000_000_000,
            500,
        )
        .unwrap();
        assert_eq!(
            health.cooldown_until_ms, 30_500,
            "30 s left from 500 on the new clock"
        );
        assert_eq!(health.streak, 2);
        assert_eq!(health.last_failure.as_deref(), Some("status_5xx"));
        assert!(health.blocked(30_499).is_some() && health.blocked(30_500).is_none());
    }

    #[test]
    fn cooldowns_saved_at_a_stop_come_back_at_the_next_start() {
        use crate::routing::affinity::AffinityStore;
        use crate::time::Clock;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("cooldowns.json");
        let (a, b) = (
            EndpointKey::new("a", "default"),
            EndpointKey::new("b", "default"),
        );
        let before = RoutingState::new(AffinityStore::in_memory(), Clock::manual());
        assert_eq!(save(&path, &before).unwrap(), 0);
        assert!(!path.exists(), "nothing cooling: no file");
        before.clock().advance(std::time::Duration::from_secs(100));
        let mut failing = Health::default();
        failing.on_failover(before.clock().now(), 60_000, "status_5xx".into());
        before.restore_health(a.clone(), failing);
        before.restore_health(b.clone(), Health::default());
        assert_eq!(
            save(&path, &before).unwrap(),
            1,
            "only the failing endpoint"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, crate::files::PRIVATE);
        }

        // A new process: its clock starts at 0, and `b.default` was renamed meanwhile.
        let after = RoutingState::new(AffinityStore::in_memory(), Clock::manual());
        assert_eq!(
            restore_for(&path, &after, std::slice::from_ref(&a)).unwrap(),
            1
        );
        let health = after.health("a.default");
        assert_eq!(health.streak, 1);
        let left = health.cooldown_until_ms;
        assert!(
            (59_000..=60_000).contains(&left),
            "about a minute left: {left}"
        );
        assert!(health.blocked(after.clock().now()).is_some());

        std::fs::write(&path, "{not json").unwrap();
        assert!(
            restore_for(&path, &after, &[a]).is_err(),
            "reported, not fatal"
        );
    }

    #[test]
    fn expired_unknown_and_far_future_cooldowns() {
        let known: HashSet<&str> = ["a.default"].into();
        let expired = revive(&saved("a.default", 10), &known, 1_000, 7).unwrap();
        assert_eq!(
            expired.cooldown_until_ms, 7,
            "over: the next request probes it"
        );
        assert_eq!(
            expired.streak, 2,
            "the streak is kept, so the next cooldown grows"
        );
        assert_eq!(revive(&saved("gone.default", u64::MAX), &known, 0, 0), None);
        let far = revive(&saved("a.default", u64::MAX), &known, 0, 0).unwrap();
        assert_eq!(far.cooldown_until_ms, MAX_LEFT_MS);
    }
}
