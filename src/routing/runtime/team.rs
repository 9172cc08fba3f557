//! The part of [`RoutingState`] that `serve --team` instances share (through
//! `crate::shared::routing`): live cooldowns and runtime signals as plain entries, read as a
//! snapshot and written back one entry at a time, only if the entry is still what the
//! snapshot saw (a request that changed it meanwhile wins; its change is shared next).
//!
//! Routing knows nothing of Redis: this is the whole interface the sync needs, in terms of
//! this instance's monotonic clock. Converting to epoch ms is the sync's job.

use std::collections::BTreeMap;

use super::{RoutingState, Signal};
use crate::routing::upstream::EndpointKey;
use crate::time::Millis;

/// What kind of shared entry: an endpoint's cooldown after failures, or one of its runtime
/// signals. Stored by [`TeamKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TeamKind {
    Cooldown,
    Disabled,
    Exhausted,
    Draining,
}

impl TeamKind {
    pub const ALL: [TeamKind; 4] = [
        TeamKind::Cooldown,
        TeamKind::Disabled,
        TeamKind::Exhausted,
        TeamKind::Draining,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TeamKind::Cooldown => "cooldown",
            TeamKind::Disabled => "disabled",
            TeamKind::Exhausted => "exhausted",
            TeamKind::Draining => "draining",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One shared entry's identity: its kind and the endpoint (`provider.endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TeamKey {
    pub kind: TeamKind,
    pub endpoint: String,
}

/// One live entry, its expiry on this instance's clock (`None`: until cleared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamEntry {
    pub reason: String,
    pub until: Option<Millis>,
    /// Consecutive failures behind a cooldown (0 for signals).
    pub streak: u32,
}

/// Every live shared entry of one instance, by key.
pub type TeamSnapshot = BTreeMap<TeamKey, TeamEntry>;

impl RoutingState {
    /// The live cooldowns and signals at `now` (an expired one is absent).
    pub fn team_snapshot(&self, now: Millis) -> TeamSnapshot {
        let mut out = TeamSnapshot::new();
        for (endpoint, health) in self.health.lock().expect("health lock").iter() {
            if let Some(entry) = cooldown_entry(health, now) {
                out.insert(key(TeamKind::Cooldown, endpoint.as_str()), entry);
            }
        }
        for (endpoint, signals) in self.signals.lock().expect("signals lock").iter() {
            for signal in signals {
                if let Some(entry) = signal_entry(signal, now) {
                    out.insert(key(kind_of(signal), endpoint), entry);
                }
            }
        }
        out
    }

    /// Sets (`Some`) or clears (`None`) one entry, if it is still `expected` at `now`
    /// (`None`: absent or expired). False when it changed since: the caller's view is old.
    pub fn apply_team(
        &self,
        key: &TeamKey,
        expected: Option<&TeamEntry>,
        new: Option<&TeamEntry>,
        now: Millis,
    ) -> bool {
        if key.kind == TeamKind::Cooldown {
            let mut map = self.health.lock().expect("health lock");
            let current = map.get(key.endpoint.as_str());
            if current.and_then(|h| cooldown_entry(h, now)).as_ref() != expected {
                return false;
            }
            if current.is_none() && new.is_none() {
                return true;
            }
            let health = match map.get_mut(key.endpoint.as_str()) {
                Some(health) => health,
                None => {
                    // `provider.endpoint` split at any dot formats back to the same name.
                    let Some((provider, endpoint)) = key.endpoint.split_once('.') else {
                        return false;
                    };
                    map.entry(EndpointKey::new(provider, endpoint)).or_default()
                }
            };
            match new {
                Some(entry) => {
                    health.cooldown_until_ms = entry.until.unwrap_or(now);
                    health.streak = entry.streak;
                    health.last_failure = Some(entry.reason.clone());
                }
                None => {
                    // Ended early elsewhere (a success): forgotten as a success forgets it.
                    health.cooldown_until_ms = 0;
                    health.streak = 0;
                    health.last_failure = None;
                }
            }
            return true;
        }
        let mut signals = self.signals.lock().expect("signals lock");
        let current = signals.get(&key.endpoint).and_then(|list| {
            list.iter()
                .find(|s| kind_of(s) == key.kind)
                .and_then(|s| signal_entry(s, now))
        });
        if current.as_ref() != expected {
            return false;
        }
        let list = signals.entry(key.endpoint.clone()).or_default();
        list.retain(|s| kind_of(s) != key.kind);
        if let Some(entry) = new {
            list.extend(signal(key.kind, entry, now));
        }
        if list.is_empty() {
            signals.remove(&key.endpoint);
        }
        true
    }
}

fn key(kind: TeamKind, endpoint: &str) -> TeamKey {
    TeamKey {
        kind,
        endpoint: endpoint.to_string(),
    }
}

fn cooldown_entry(health: &super::Health, now: Millis) -> Option<TeamEntry> {
    (health.cooldown_until_ms > now).then(|| TeamEntry {
        reason: health.last_failure.clone().unwrap_or_default(),
        until: Some(health.cooldown_until_ms),
        streak: health.streak,
    })
}

fn kind_of(signal: &Signal) -> TeamKind {
    match signal {
        Signal::Disabled { .. } => TeamKind::Disabled,
        Signal::Exhausted { .. } => TeamKind::Exhausted,
        Signal::Draining { .. } => TeamKind::Draining,
    }
}

fn signal_entry(signal: &Signal, now: Millis) -> Option<TeamEntry> {
    let until = signal.until();
    if until.is_some_and(|until| until <= now) {
        return None;
    }
    let reason = match signal {
        Signal::Disabled { reason, .. }
        | Signal::Exhausted { reason, .. }
        | Signal::Draining { reason, .. } => reason.clone(),
    };
    Some(TeamEntry {
        reason,
        until,
        streak: 0,
    })
}

/// The signal an entry of `kind` stands for; an exhaustion always has an end (`now` if the
/// entry has none, which the sync never sends).
fn signal(kind: TeamKind, entry: &TeamEntry, now: Millis) -> Option<Signal> {
    let (reason, until) = (entry.reason.clone(), entry.until);
    Some(match kind {
        TeamKind::Cooldown => return None,
        TeamKind::Disabled => Signal::Disabled { reason, until },
        TeamKind::Exhausted => Signal::Exhausted {
            reason,
            until: until.unwrap_or(now),
        },
        TeamKind::Draining => Signal::Draining { reason, until },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::affinity::AffinityStore;
    use crate::routing::health::CooldownPolicy;
    use crate::routing::retry::Cooldown;
    use crate::time::Clock;

    fn entry(reason: &str, until: Option<Millis>, streak: u32) -> TeamEntry {
        TeamEntry {
            reason: reason.into(),
            until,
            streak,
        }
    }

    #[test]
    fn a_snapshot_holds_live_cooldowns_and_signals_only() {
        let state = RoutingState::new(AffinityStore::in_memory(), Clock::manual());
        let policy = CooldownPolicy {
            base_secs: 10,
            factor: 2.0,
            max_secs: 100,
        };
        let probe = state.begin(&EndpointKey::new("p", "a"), 0, policy).unwrap();
        probe.failed(Cooldown::Growing, "HTTP 502".into());
        state.set_runtime_disabled("p.b", Some(("maintenance".into(), None)));
        state.set_exhausted("p.c", Some(("balance 0".into(), 5_000)));
        let snap = state.team_snapshot(1_000);
        assert_eq!(
            snap[&key(TeamKind::Cooldown, "p.a")],
            entry("HTTP 502", Some(10_000), 1)
        );
        assert_eq!(
            snap[&key(TeamKind::Disabled, "p.b")],
            entry("maintenance", None, 0)
        );
        assert_eq!(
            snap[&key(TeamKind::Exhausted, "p.c")],
            entry("balance 0", Some(5_000), 0)
        );
        assert_eq!(snap.len(), 3);
        let later = state.team_snapshot(10_000);
        assert_eq!(
            later.keys().collect::<Vec<_>>(),
            [&key(TeamKind::Disabled, "p.b")],
            "expired entries are gone"
        );
    }

    #[test]
    fn an_entry_is_written_only_over_what_the_caller_saw() {
        let state = RoutingState::new(AffinityStore::in_memory(), Clock::manual());
        let cooling = key(TeamKind::Cooldown, "p.a");
        let remote = entry("HTTP 503", Some(30_000), 2);
        assert!(state.apply_team(&cooling, None, Some(&remote), 0));
        assert_eq!(state.team_snapshot(0)[&cooling], remote);
        let upstream = EndpointKey::new("p", "a");
        let policy = CooldownPolicy {
            base_secs: 1,
            factor: 1.0,
            max_secs: 1,
        };
        assert!(
            state.begin(&upstream, 1_000, policy).is_none(),
            "the shared cooldown blocks here"
        );
        // A stale view does not overwrite.
        assert!(!state.apply_team(&cooling, None, None, 0));
        assert!(state.apply_team(&cooling, Some(&remote), None, 0));
        assert!(state.team_snapshot(0).is_empty());
        assert!(state.begin(&upstream, 1_000, policy).is_some());

        let draining = key(TeamKind::Draining, "p.a");
        let note = entry("moving", Some(9_000), 0);
        assert!(state.apply_team(&draining, None, Some(&note), 0));
        assert_eq!(state.switches("p.a", 0).draining.unwrap().reason, "moving");
        assert!(!state.apply_team(&draining, None, None, 0), "stale");
        assert!(state.apply_team(&draining, Some(&note), None, 0));
        assert_eq!(state.switches("p.a", 0), Default::default());
    }

    #[test]
    fn kinds_have_stable_names() {
        for kind in TeamKind::ALL {
            assert_eq!(TeamKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TeamKind::parse("Cooldown"), None);
    }
}
