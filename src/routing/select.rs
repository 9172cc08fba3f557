//! Choosing one candidate: availability, preference groups and the session's affinity.
//!
//! Pure: the candidates, why each is unavailable (if it is), the session's affinity and the
//! policy in; a choice and its reason out. The failover loop calls this again after each
//! failed candidate, with that candidate marked as tried.

use serde::Serialize;

use crate::config::model::AffinityPolicy;

use super::graph::Candidate;
use super::health::Blocked;

/// Why a candidate is not available for this request, as it stood when it was read.
///
/// The times in it are as stored and shown: `until_ms` is epoch ms (converted from the
/// monotonic clock by [`RoutingState::skip_reason`](super::runtime::RoutingState::skip_reason)),
/// and `left_ms`, never serialised, is how long the reason had left then, measured on the
/// monotonic clock: `Retry-After` and "for N s more" come from it, not from a wall clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Skip {
    /// Switched off while running (not in the config), until this time if it has an end.
    RuntimeDisabled {
        reason: String,
        until_ms: Option<u64>,
        #[serde(skip)]
        left_ms: Option<u64>,
    },
    /// Out of balance or quota until this time (`RoutingState::set_exhausted`).
    Exhausted {
        reason: String,
        until_ms: u64,
        #[serde(skip)]
        left_ms: u64,
    },
    /// The config names environment variables that are not set.
    MissingCredential { vars: Vec<String> },
    /// The endpoint does not serve the requested model.
    UnsupportedModel { model: String },
    /// Cooling down or being probed.
    Unhealthy(Blocked),
    /// Its concurrency limit is reached.
    Saturated { limit_group: String, max: u32 },
    /// Already tried by this request.
    Tried,
    /// Being emptied while running: it takes no new sessions, only those already bound to it
    /// (its affinity record names it), until this time if it has an end.
    Draining {
        reason: String,
        until_ms: Option<u64>,
        #[serde(skip)]
        left_ms: Option<u64>,
    },
}

impl Skip {
    /// How long this reason had left when it was read, if it ends on its own.
    pub fn left_ms(&self) -> Option<u64> {
        match self {
            Skip::Unhealthy(Blocked::Cooldown { left_ms, .. })
            | Skip::Exhausted { left_ms, .. } => Some(*left_ms),
            Skip::RuntimeDisabled { left_ms, .. } | Skip::Draining { left_ms, .. } => *left_ms,
            _ => None,
        }
    }

    /// Reasons that pass with time or load, as opposed to configuration.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Skip::Unhealthy(_) | Skip::Saturated { .. } | Skip::Exhausted { .. }
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Skip::RuntimeDisabled { reason, .. } => format!("disabled while running: {reason}"),
            Skip::Exhausted {
                reason, left_ms, ..
            } => {
                let secs = left_ms.div_ceil(1000);
                format!("exhausted ({reason}) for {secs}s more")
            }
            Skip::MissingCredential { vars } => {
                format!("environment variable {} is not set", vars.join(", "))
            }
            Skip::UnsupportedModel { model } => format!("model {model} is not in supported_models"),
            Skip::Unhealthy(Blocked::Cooldown { left_ms, after, .. }) => {
                let secs = left_ms.div_ceil(1000);
                format!("cooling down for {secs}s after {after}")
            }
            Skip::Unhealthy(Blocked::Probing) => "being probed after its cooldown".into(),
            Skip::Saturated { limit_group, max } => {
                format!("{max} requests already in flight (limit group {limit_group})")
            }
            Skip::Tried => "already tried for this request".into(),
            Skip::Draining { reason, .. } => {
                format!("draining (no new sessions): {reason}")
            }
        }
    }
}

/// The session's affinity as selection sees it.
#[derive(Debug, Clone, Copy)]
pub struct AffinityView {
    /// Index into the candidates of the endpoint that last served the session.
    pub candidate: usize,
    /// When the session last moved to that endpoint (epoch ms, from the persisted record).
    pub since_ms: u64,
}

/// The knobs of the affinity policy.
#[derive(Debug, Clone, Copy)]
pub struct AffinitySettings {
    pub policy: AffinityPolicy,
    pub fallback_ttl_ms: Option<u64>,
    pub reprobe_preferred_after_ms: Option<u64>,
}

impl AffinitySettings {
    /// The affinity policy and its windows, as `graph` has them.
    pub fn of(graph: &super::RouteGraph) -> Self {
        Self {
            policy: graph.affinity_policy,
            fallback_ttl_ms: graph.fallback_ttl_ms,
            reprobe_preferred_after_ms: graph.reprobe_preferred_after_ms,
        }
    }
}

/// Why a candidate was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// The session's affinity endpoint.
    Affinity,
    /// The first candidate of the best group, with nothing better passed over.
    Preferred,
    /// Better candidates were unavailable or had failed.
    Failover,
}

impl Why {
    /// The stored and logged name: exactly the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Affinity => "affinity",
            Self::Preferred => "preferred",
            Self::Failover => "failover",
        }
    }
}

/// The outcome of one selection step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Pick {
        candidate: usize,
        why: Why,
    },
    /// Nothing available.
    None,
    /// The request carries relay-bound state (or the policy is `hard`) and the session's
    /// endpoint is unavailable: sending it elsewhere would break the session.
    ContinuityBroken {
        candidate: usize,
    },
}

/// Chooses a candidate. `skips[i]` says why candidate `i` is unavailable, if it is. `bound`
/// says the request carries state only the affinity endpoint can read. `now_ms` is wall-clock
/// epoch ms, for the affinity windows (see [`within_windows`]).
pub fn select(
    candidates: &[Candidate],
    skips: &[Option<Skip>],
    affinity: Option<AffinityView>,
    settings: AffinitySettings,
    bound: bool,
    now_ms: u64,
) -> Choice {
    let available = |i: usize| skips[i].is_none();
    let best_group = (0..candidates.len())
        .filter(|&i| available(i))
        .map(|i| candidates[i].group)
        .min();
    let first_of_best = best_group
        .and_then(|g| (0..candidates.len()).find(|&i| available(i) && candidates[i].group == g));
    let fallback = |i: usize| Choice::Pick {
        candidate: i,
        why: if i == 0 {
            Why::Preferred
        } else {
            Why::Failover
        },
    };
    let sticky = settings.policy != AffinityPolicy::Off || bound;

    if let Some(a) = affinity.filter(|_| sticky) {
        let a_available = available(a.candidate);
        // State only that endpoint can read, or a hard policy: that endpoint or nothing.
        if (bound || settings.policy == AffinityPolicy::Hard) && !a_available {
            return Choice::ContinuityBroken {
                candidate: a.candidate,
            };
        }
        if a_available {
            let group = candidates[a.candidate].group;
            let keep = match settings.policy {
                _ if bound => true,
                AffinityPolicy::Off => false,
                AffinityPolicy::Hard => true,
                AffinityPolicy::PreferredGroup => Some(group) == best_group,
                AffinityPolicy::FallbackSticky => {
                    Some(group) <= best_group || within_windows(a.since_ms, settings, now_ms)
                }
            };
            if keep {
                return Choice::Pick {
                    candidate: a.candidate,
                    why: Why::Affinity,
                };
            }
        }
    }
    first_of_best.map_or(Choice::None, fallback)
}

/// `fallback-sticky` on a fallback: stay while every configured window still holds.
///
/// Wall-clock epoch ms, unlike the cooldowns: `since_ms` is the affinity record's
/// `last_changed_ms`, which is persisted and read back after a restart, where no monotonic
/// reading of the old process means anything. A wall-clock change can stretch or cut these
/// windows; that costs at most one early or late return to the preferred group.
fn within_windows(since_ms: u64, settings: AffinitySettings, now_ms: u64) -> bool {
    let holds = |window: Option<u64>| window.is_none_or(|w| now_ms.saturating_sub(since_ms) < w);
    holds(settings.fallback_ttl_ms) && holds(settings.reprobe_preferred_after_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn why_names_are_the_serde_names() {
        for why in [Why::Affinity, Why::Preferred, Why::Failover] {
            let serde = serde_json::to_value(why).unwrap();
            assert_eq!(serde.as_str(), Some(why.as_str()), "{why:?}");
        }
    }

    /// Candidates 0 (group 0, preferred) and 1, 2 (group 1, fallbacks).
    fn cands() -> Vec<Candidate> {
        [0, 1, 1]
            .iter()
            .enumerate()
            .map(|(i, &g)| Candidate {
                upstream: i,
                group: g,
                route_path: vec![],
            })
            .collect()
    }

    fn settings(policy: AffinityPolicy) -> AffinitySettings {
        AffinitySettings {
            policy,
            fallback_ttl_ms: None,
            reprobe_preferred_after_ms: None,
        }
    }

    fn cooldown() -> Option<Skip> {
        Some(Skip::Unhealthy(Blocked::Cooldown {
            until_ms: 10_000,
            left_ms: 9_000,
            after: "HTTP 502".into(),
        }))
    }

    const ON_FALLBACK: Option<AffinityView> = Some(AffinityView {
        candidate: 1,
        since_ms: 1_000,
    });

    #[test]
    fn without_affinity_the_best_group_first() {
        let c = cands();
        assert_eq!(
            select(
                &c,
                &[None, None, None],
                None,
                settings(AffinityPolicy::FallbackSticky),
                false,
                0
            ),
            Choice::Pick {
                candidate: 0,
                why: Why::Preferred
            }
        );
        assert_eq!(
            select(
                &c,
                &[cooldown(), None, None],
                None,
                settings(AffinityPolicy::FallbackSticky),
                false,
                0
            ),
            Choice::Pick {
                candidate: 1,
                why: Why::Failover
            }
        );
        assert_eq!(
            select(
                &c,
                &[cooldown(), cooldown(), Some(Skip::Tried)],
                None,
                settings(AffinityPolicy::Off),
                false,
                0
            ),
            Choice::None
        );
    }

    #[test]
    fn fallback_sticky_stays_on_the_fallback_after_the_preferred_recovers() {
        let c = cands();
        let all_up = [None, None, None];
        assert_eq!(
            select(
                &c,
                &all_up,
                ON_FALLBACK,
                settings(AffinityPolicy::FallbackSticky),
                false,
                5_000
            ),
            Choice::Pick {
                candidate: 1,
                why: Why::Affinity
            }
        );
        // With a window, only while it holds.
        let windowed = AffinitySettings {
            fallback_ttl_ms: Some(10_000),
            ..settings(AffinityPolicy::FallbackSticky)
        };
        assert_eq!(
            select(&c, &all_up, ON_FALLBACK, windowed, false, 5_000),
            Choice::Pick {
                candidate: 1,
                why: Why::Affinity
            }
        );
        assert_eq!(
            select(&c, &all_up, ON_FALLBACK, windowed, false, 11_000),
            Choice::Pick {
                candidate: 0,
                why: Why::Preferred
            }
        );
        let reprobe = AffinitySettings {
            reprobe_preferred_after_ms: Some(0),
            ..settings(AffinityPolicy::FallbackSticky)
        };
        assert_eq!(
            select(&c, &all_up, ON_FALLBACK, reprobe, false, 1_000),
            Choice::Pick {
                candidate: 0,
                why: Why::Preferred
            }
        );
        // An unavailable affinity endpoint is left for the best available one.
        assert_eq!(
            select(
                &c,
                &[None, cooldown(), None],
                ON_FALLBACK,
                settings(AffinityPolicy::FallbackSticky),
                false,
                5_000
            ),
            Choice::Pick {
                candidate: 0,
                why: Why::Preferred
            }
        );
    }

    #[test]
    fn preferred_group_returns_as_soon_as_the_best_group_is_back() {
        let c = cands();
        let s = settings(AffinityPolicy::PreferredGroup);
        assert_eq!(
            select(&c, &[None, None, None], ON_FALLBACK, s, false, 5_000),
            Choice::Pick {
                candidate: 0,
                why: Why::Preferred
            }
        );
        assert_eq!(
            select(&c, &[cooldown(), None, None], ON_FALLBACK, s, false, 5_000),
            Choice::Pick {
                candidate: 1,
                why: Why::Affinity
            }
        );
        let on_2 = Some(AffinityView {
            candidate: 2,
            since_ms: 0,
        });
        assert_eq!(
            select(&c, &[cooldown(), None, None], on_2, s, false, 5_000),
            Choice::Pick {
                candidate: 2,
                why: Why::Affinity
            },
            "sticky within the group"
        );
    }

    #[test]
    fn hard_fails_clearly_when_the_session_endpoint_is_down() {
        let c = cands();
        let s = settings(AffinityPolicy::Hard);
        assert_eq!(
            select(&c, &[None, None, None], ON_FALLBACK, s, false, 0),
            Choice::Pick {
                candidate: 1,
                why: Why::Affinity
            }
        );
        assert_eq!(
            select(&c, &[None, cooldown(), None], ON_FALLBACK, s, false, 0),
            Choice::ContinuityBroken { candidate: 1 }
        );
        assert_eq!(
            select(&c, &[None, None, None], None, s, false, 0),
            Choice::Pick {
                candidate: 0,
                why: Why::Preferred
            },
            "a new session starts anywhere"
        );
    }

    #[test]
    fn relay_bound_requests_never_go_elsewhere() {
        let c = cands();
        for policy in [
            AffinityPolicy::Off,
            AffinityPolicy::PreferredGroup,
            AffinityPolicy::FallbackSticky,
        ] {
            let s = settings(policy);
            assert_eq!(
                select(&c, &[None, None, None], ON_FALLBACK, s, true, 0),
                Choice::Pick {
                    candidate: 1,
                    why: Why::Affinity
                },
                "{policy:?}"
            );
            assert_eq!(
                select(&c, &[None, cooldown(), None], ON_FALLBACK, s, true, 0),
                Choice::ContinuityBroken { candidate: 1 },
                "{policy:?}"
            );
            assert_eq!(
                select(
                    &c,
                    &[None, Some(Skip::Tried), None],
                    ON_FALLBACK,
                    s,
                    true,
                    0
                ),
                Choice::ContinuityBroken { candidate: 1 },
                "{policy:?}"
            );
        }
    }
}
