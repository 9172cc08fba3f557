//! Team mode: several `serve --team` instances behind one address share the team's
//! PostgreSQL, where each member's key lives (`key.rs` the key itself, pure; `db.rs` the
//! database; `keys.rs` the copy an instance checks requests against).
//!
//! The embedded default (one helper, SQLite, no other service) does not use any of this.

pub mod db;
pub mod key;
pub mod keys;

/// Refuses `[team]` timings that would leave the copy of the keys stale between reads (every
/// instance unready at once): it must be trusted for at least three refreshes.
pub fn check_timings(team: &crate::config::model::TeamSettings) -> anyhow::Result<()> {
    let refresh_ms = team.key_refresh_ms.max(100);
    if team.key_cache_secs.saturating_mul(1000) < refresh_ms.saturating_mul(3) {
        anyhow::bail!(
            "[team] key_cache_secs ({}) must be at least three key refreshes (key_refresh_ms = {refresh_ms}): \
             the copy of the keys would go stale between reads",
            team.key_cache_secs
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::TeamSettings;

    #[test]
    fn the_key_copy_must_outlive_a_few_refreshes() {
        assert!(check_timings(&TeamSettings::default()).is_ok());
        for (refresh, cache) in [(2_000, 0), (2_000, 5), (60_000, 120)] {
            let team = TeamSettings {
                key_refresh_ms: refresh,
                key_cache_secs: cache,
                ..TeamSettings::default()
            };
            let err = check_timings(&team).unwrap_err().to_string();
            assert!(err.contains("key_cache_secs"), "{err}");
        }
    }
}
