//! The routing state team instances share, as stored in Redis, and the pure decisions of the
//! sync ([`super::sync`]): what changed here since the last sync, and what to take from the
//! team.
//!
//! **Layout.** One hash, `codex-helper:routing`: a field per live entry, named
//! `<kind>:<provider.endpoint>` (kinds: [`TeamKind::as_str`]), holding [`Wire`] as JSON. Times
//! in Redis are epoch ms (every instance has its own monotonic clock); entries carry their end
//! and the sync removes those long expired. Session bindings are keys of their own,
//! `codex-helper:affinity:<graph key>:<session>`, each with a TTL ([`AFFINITY_TTL`]).
//!
//! **Merge.** A change made here (a cooldown started, a success that ended one early, an
//! operator's switch, an exhaustion) is pushed; everything else follows the team: an entry in
//! Redis is set here, one gone from Redis is cleared here. So the last writer wins per entry,
//! and an entry that expires on its own needs nobody to clear it.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::routing::runtime::{TeamEntry, TeamKey, TeamKind, TeamSnapshot};
use crate::time::Millis;

/// The hash holding the routing entries (after [`super::redis::KEY_PREFIX`]).
pub const ROUTING_HASH: &str = "routing";
/// How long a session's binding lives in Redis after it was last written.
pub const AFFINITY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Sessions with longer ids (client input) are not shared.
pub const MAX_SESSION_BYTES: usize = 256;
/// The most entries read from the team; past it the team's state is not taken (said once).
pub const MAX_FIELDS: usize = 4096;
/// Longer values are not read.
pub const MAX_VALUE_BYTES: usize = 2048;
/// Reasons are cut to this many characters.
const MAX_REASON_CHARS: usize = 200;
/// Two ends this close are the same end: a round trip through epoch ms moves one by the
/// difference of two clock readings.
pub const SAME_END_MS: u64 = 50;
/// An entry expired this long ago is removed from Redis by whichever instance sees it.
pub const CLEANUP_AFTER_MS: u64 = 60_000;

/// One entry as stored: its end as epoch ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wire {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    #[serde(default)]
    pub streak: u32,
}

/// The two clocks read together: the instance's monotonic clock and the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Millis,
    pub wall: u64,
}

impl Now {
    /// A monotonic time as epoch ms.
    pub fn to_epoch(self, at: Millis) -> u64 {
        if at >= self.mono {
            self.wall.saturating_add(at - self.mono)
        } else {
            self.wall.saturating_sub(self.mono - at)
        }
    }

    /// An epoch time on the monotonic clock; `None` when it is already past.
    pub fn to_mono(self, epoch: u64) -> Option<Millis> {
        (epoch > self.wall).then(|| self.mono.saturating_add(epoch - self.wall))
    }
}

/// The Redis field of an entry.
pub fn field(key: &TeamKey) -> String {
    format!("{}:{}", key.kind.as_str(), key.endpoint)
}

/// An entry's key from its field; `None` for a field this version does not know.
pub fn parse_field(field: &str) -> Option<TeamKey> {
    let (kind, endpoint) = field.split_once(':')?;
    if endpoint.is_empty() {
        return None;
    }
    Some(TeamKey {
        kind: TeamKind::parse(kind)?,
        endpoint: endpoint.to_string(),
    })
}

/// An entry as stored.
pub fn encode(entry: &TeamEntry, now: Now) -> String {
    let wire = Wire {
        reason: entry.reason.chars().take(MAX_REASON_CHARS).collect(),
        until_ms: entry.until.map(|until| now.to_epoch(until)),
        streak: entry.streak,
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

/// What a stored value says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Live(TeamEntry),
    /// Ended `ago_ms` before now.
    Expired {
        ago_ms: u64,
    },
    /// Not readable (too long, not JSON, an exhaustion without an end): left alone.
    Bad,
}

/// Reads a stored value of kind `kind`.
pub fn decode(kind: TeamKind, raw: &str, now: Now) -> Decoded {
    if raw.len() > MAX_VALUE_BYTES {
        return Decoded::Bad;
    }
    let Ok(wire) = serde_json::from_str::<Wire>(raw) else {
        return Decoded::Bad;
    };
    let ends = matches!(kind, TeamKind::Cooldown | TeamKind::Exhausted);
    if ends && wire.until_ms.is_none() {
        return Decoded::Bad;
    }
    let until = match wire.until_ms {
        None => None,
        Some(epoch) => match now.to_mono(epoch) {
            Some(mono) => Some(mono),
            None => {
                return Decoded::Expired {
                    ago_ms: now.wall - epoch,
                };
            }
        },
    };
    Decoded::Live(TeamEntry {
        reason: wire.reason.chars().take(MAX_REASON_CHARS).collect(),
        until,
        streak: if kind == TeamKind::Cooldown {
            wire.streak
        } else {
            0
        },
    })
}

/// Whether two entries say the same (ends within [`SAME_END_MS`]).
pub fn same(a: Option<&TeamEntry>, b: Option<&TeamEntry>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.reason == b.reason
                && a.streak == b.streak
                && match (a.until, b.until) {
                    (None, None) => true,
                    (Some(x), Some(y)) => x.abs_diff(y) <= SAME_END_MS,
                    _ => false,
                }
        }
        _ => false,
    }
}

/// One change to push: set an entry, or clear it (`None`).
pub type Change = (TeamKey, Option<TeamEntry>);

/// What changed here between `known` (the state after the last sync) and `local` (now, at
/// `now`): new or different entries are set; an entry gone before its end (a success, the
/// operator) is cleared. One that simply ran out is not: it ends everywhere on its own.
pub fn local_changes(known: &TeamSnapshot, local: &TeamSnapshot, now: Millis) -> Vec<Change> {
    let mut out: Vec<Change> = local
        .iter()
        .filter(|(key, entry)| known.get(*key) != Some(*entry))
        .map(|(key, entry)| (key.clone(), Some(entry.clone())))
        .collect();
    out.extend(
        known
            .iter()
            .filter(|(key, entry)| {
                !local.contains_key(*key) && entry.until.is_none_or(|until| until > now)
            })
            .map(|(key, _)| (key.clone(), None)),
    );
    out
}

/// After an outage: every live entry here is pushed again (Redis may have lost them, or
/// never had them), with the clears found since the last sync.
pub fn full_push(local: &TeamSnapshot, changes: Vec<Change>) -> Vec<Change> {
    let mut out: Vec<Change> = changes.into_iter().filter(|(_, e)| e.is_none()).collect();
    out.extend(local.iter().map(|(k, e)| (k.clone(), Some(e.clone()))));
    out
}

/// One write to the local state: from `expected` (what the snapshot saw) to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub key: TeamKey,
    pub expected: Option<TeamEntry>,
    pub new: Option<TeamEntry>,
}

/// What to take from the team: for every endpoint in `endpoints` (the plan in force), each
/// entry not changed here this round (`pushed`) follows `remote`.
pub fn merge_plan(
    local: &TeamSnapshot,
    pushed: &BTreeSet<TeamKey>,
    remote: &TeamSnapshot,
    endpoints: &HashSet<String>,
) -> Vec<Merge> {
    let keys: BTreeSet<&TeamKey> = local.keys().chain(remote.keys()).collect();
    keys.into_iter()
        .filter(|key| endpoints.contains(&key.endpoint) && !pushed.contains(*key))
        .filter(|key| !same(local.get(*key), remote.get(*key)))
        .map(|key| Merge {
            key: key.clone(),
            expected: local.get(key).cloned(),
            new: remote.get(key).cloned(),
        })
        .collect()
}

/// The Redis key of a session's binding under a route graph.
pub fn affinity_key(prefix: &str, graph_key: &str, session: &str) -> Option<String> {
    (session.len() <= MAX_SESSION_BYTES && !session.is_empty())
        .then(|| format!("{prefix}affinity:{graph_key}:{session}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: TeamKind, endpoint: &str) -> TeamKey {
        TeamKey {
            kind,
            endpoint: endpoint.into(),
        }
    }

    fn entry(reason: &str, until: Option<Millis>) -> TeamEntry {
        TeamEntry {
            reason: reason.into(),
            until,
            streak: 1,
        }
    }

    fn snapshot(entries: &[(TeamKey, TeamEntry)]) -> TeamSnapshot {
        entries.iter().cloned().collect()
    }

    #[test]
    fn an_entry_travels_as_epoch_ms_between_two_clocks() {
        // Instance A started 10 s before B: their monotonic clocks differ by 10 000.
        let a = Now {
            mono: 15_000,
            wall: 1_700_000_000_000,
        };
        let b = Now {
            mono: 5_000,
            wall: 1_700_000_000_000,
        };
        let cooling = TeamEntry {
            reason: "HTTP 502".into(),
            until: Some(45_000),
            streak: 2,
        };
        let stored = encode(&cooling, a);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
            serde_json::json!({"reason": "HTTP 502", "until_ms": 1_700_000_030_000u64, "streak": 2})
        );
        assert_eq!(
            decode(TeamKind::Cooldown, &stored, b),
            Decoded::Live(TeamEntry {
                until: Some(35_000),
                ..cooling.clone()
            }),
            "the same time of day on B's clock"
        );
        let later = Now {
            mono: 40_000,
            wall: 1_700_000_035_000,
        };
        assert_eq!(
            decode(TeamKind::Cooldown, &stored, later),
            Decoded::Expired { ago_ms: 5_000 }
        );
    }

    #[test]
    fn unreadable_values_are_left_alone() {
        let now = Now { mono: 0, wall: 10 };
        for (kind, raw) in [
            (TeamKind::Disabled, "not json"),
            (TeamKind::Cooldown, r#"{"reason":"no end"}"#),
            (TeamKind::Exhausted, r#"{"reason":"no end"}"#),
        ] {
            assert_eq!(decode(kind, raw, now), Decoded::Bad, "{raw}");
        }
        let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(MAX_VALUE_BYTES));
        assert_eq!(decode(TeamKind::Disabled, &long, now), Decoded::Bad);
        let Decoded::Live(open) = decode(TeamKind::Disabled, r#"{"reason":"ops"}"#, now) else {
            panic!()
        };
        assert_eq!((open.until, open.streak), (None, 0), "until cleared");
    }

    #[test]
    fn fields_name_kind_and_endpoint() {
        let k = key(TeamKind::Draining, "relay.eu");
        assert_eq!(field(&k), "draining:relay.eu");
        assert_eq!(parse_field("draining:relay.eu"), Some(k));
        assert_eq!(parse_field("paused:relay.eu"), None);
        assert_eq!(parse_field("cooldown:"), None);
        assert_eq!(parse_field("cooldown"), None);
    }

    #[test]
    fn local_changes_are_new_entries_and_early_ends_not_expiries() {
        let a = key(TeamKind::Cooldown, "p.a");
        let b = key(TeamKind::Cooldown, "p.b");
        let c = key(TeamKind::Disabled, "p.c");
        let known = snapshot(&[
            (a.clone(), entry("502", Some(5_000))),
            (b.clone(), entry("502", Some(1_000))),
            (c.clone(), entry("ops", None)),
        ]);
        // At 2 000: a ended early (a success), b ran out, c was switched on again, d is new.
        let d = key(TeamKind::Exhausted, "p.d");
        let local = snapshot(&[(d.clone(), entry("balance 0", Some(9_000)))]);
        let mut changes = local_changes(&known, &local, 2_000);
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            changes,
            vec![
                (a, None),
                (c, None),
                (d.clone(), Some(entry("balance 0", Some(9_000))))
            ]
        );
        assert!(local_changes(&local, &local, 2_000).is_empty());
        let pushed = full_push(&local, vec![(b.clone(), None)]);
        assert_eq!(
            pushed,
            vec![(b, None), (d, Some(entry("balance 0", Some(9_000))))]
        );
    }

    #[test]
    fn the_team_is_followed_except_where_this_instance_just_changed() {
        let endpoints: HashSet<String> = ["p.a", "p.b", "p.c"].map(String::from).into();
        let a = key(TeamKind::Cooldown, "p.a");
        let b = key(TeamKind::Disabled, "p.b");
        let c = key(TeamKind::Cooldown, "p.c");
        let unknown = key(TeamKind::Disabled, "gone.x");
        let local = snapshot(&[
            (b.clone(), entry("ops", None)),
            (c.clone(), entry("mine", Some(8_000))),
        ]);
        let remote = snapshot(&[
            (a.clone(), entry("HTTP 502", Some(30_020))),
            (c.clone(), entry("theirs", Some(9_000))),
            (unknown, entry("not in this plan", None)),
        ]);
        let pushed: BTreeSet<TeamKey> = [c.clone()].into();
        let plan = merge_plan(&local, &pushed, &remote, &endpoints);
        assert_eq!(
            plan,
            vec![
                Merge {
                    key: a.clone(),
                    expected: None,
                    new: Some(entry("HTTP 502", Some(30_020)))
                },
                Merge {
                    key: b,
                    expected: Some(entry("ops", None)),
                    new: None
                },
            ],
            "a is taken, b was cleared elsewhere, c was just pushed from here"
        );
        // The same end read again a few ms apart is no change.
        let here = snapshot(&[(a.clone(), entry("HTTP 502", Some(30_000)))]);
        let there = snapshot(&[(a, entry("HTTP 502", Some(30_040)))]);
        assert!(merge_plan(&here, &BTreeSet::new(), &there, &endpoints).is_empty());
    }

    #[test]
    fn long_session_ids_are_not_shared() {
        assert_eq!(
            affinity_key("codex-helper:", "g2:ab", "thread-1").as_deref(),
            Some("codex-helper:affinity:g2:ab:thread-1")
        );
        assert_eq!(affinity_key("p:", "g", &"x".repeat(300)), None);
        assert_eq!(affinity_key("p:", "g", ""), None);
    }
}
