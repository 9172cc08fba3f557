//! The routing state that changes while the proxy runs: endpoint health, requests in flight
//! per limit group, and session affinity. Shared by all requests behind short-held locks.
//!
//! Every expiry here (cooldowns, probes, signals) is on the monotonic [`Clock`]; a
//! [`Skip`] leaving [`RoutingState::skip_reason`] carries its expiry converted to epoch ms,
//! the time stored in records and shown to users.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::affinity::AffinityRecord;
use super::affinity::AffinityStore;
use super::graph::{Candidate, RouteGraph};
use super::health::{Blocked, CooldownPolicy, Health};
use super::model_map::supports_model;
use super::retry::Cooldown;
use super::select::AffinityView;
use super::select::Skip;
use super::upstream::{ConcurrencyLimit, EndpointKey, Upstream};
use crate::time::{Clock, Millis};

mod team;
pub use team::{TeamEntry, TeamKey, TeamKind, TeamSnapshot};

/// Runtime routing state, keyed by `provider.endpoint` (health) or limit group (in flight).
#[derive(Debug)]
pub struct RoutingState {
    health: Arc<Mutex<HashMap<EndpointKey, Health>>>,
    /// Signals set from outside the request path (`set_runtime_disabled`, `set_exhausted`), each with a
    /// reason and, where it has one, an expiry.
    signals: Mutex<HashMap<String, Vec<Signal>>>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
    pub affinity: AffinityStore,
    /// The proxy's monotonic clock, which every expiry here is on.
    clock: Clock,
}

impl RoutingState {
    pub fn new(affinity: AffinityStore, clock: Clock) -> Self {
        Self {
            health: Arc::default(),
            signals: Mutex::default(),
            in_flight: Arc::default(),
            affinity,
            clock,
        }
    }

    /// The clock that `now` and every expiry given to this state are read from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A copy of one endpoint's health.
    pub fn health(&self, upstream: &str) -> Health {
        self.health
            .lock()
            .expect("health lock")
            .get(upstream)
            .cloned()
            .unwrap_or_default()
    }

    /// Every endpoint's health as it stands, for saving cooldowns across a restart
    /// ([`super::cooldowns`]).
    pub fn health_entries(&self) -> Vec<(EndpointKey, Health)> {
        let map = self.health.lock().expect("health lock");
        map.iter().map(|(k, h)| (k.clone(), h.clone())).collect()
    }

    /// Puts back an endpoint's health kept from before a restart (its times on this clock).
    pub fn restore_health(&self, upstream: EndpointKey, health: Health) {
        self.health
            .lock()
            .expect("health lock")
            .insert(upstream, health);
    }

    /// Starts a request on `upstream`: checks, under the same lock, that it is not blocked
    /// (another request may have taken the half-open probe since the skip reasons were
    /// computed), and takes the probe when its cooldown is over. `None` when it is blocked.
    /// The returned guard is the request's verdict on the endpoint's health; dropped without
    /// one, it judges nothing and gives a probe back.
    pub fn begin(
        &self,
        upstream: &EndpointKey,
        now: Millis,
        cooldown: CooldownPolicy,
    ) -> Option<HealthProbe> {
        let mut map = self.health.lock().expect("health lock");
        let health = map.entry(upstream.clone()).or_default();
        if health.blocked(now).is_some() {
            return None;
        }
        let is_probe = health.begin(now);
        Some(HealthProbe {
            health: self.health.clone(),
            clock: self.clock.clone(),
            upstream: upstream.clone(),
            is_probe,
            cooldown,
            open: true,
        })
    }

    /// Switches an endpoint off (or on again with `None`) while running, until a time on
    /// [`RoutingState::clock`] if it has an end.
    pub fn set_runtime_disabled(&self, upstream: &str, disabled: Option<(String, Option<Millis>)>) {
        self.set_signal(
            upstream,
            |s| matches!(s, Signal::Disabled { .. }),
            disabled.map(|(reason, until)| Signal::Disabled { reason, until }),
        );
    }

    /// Marks an endpoint out of balance until a time on [`RoutingState::clock`] (or clears it
    /// with `None`).
    pub fn set_exhausted(&self, upstream: &str, exhausted: Option<(String, Millis)>) {
        self.set_signal(
            upstream,
            |s| matches!(s, Signal::Exhausted { .. }),
            exhausted.map(|(reason, until)| Signal::Exhausted { reason, until }),
        );
    }

    fn set_signal(
        &self,
        upstream: &str,
        same_kind: impl Fn(&Signal) -> bool,
        signal: Option<Signal>,
    ) {
        let mut signals = self.signals.lock().expect("signals lock");
        let list = signals.entry(upstream.to_string()).or_default();
        list.retain(|s| !same_kind(s));
        list.extend(signal);
    }

    /// The signal on `upstream` that passes a request over at `now`, as a skip reason: one
    /// that has not expired and applies to this request (a draining endpoint keeps the
    /// sessions bound to it, `session_here`). Switched off and out of balance come before
    /// draining, so the reason shown is the one that would still hold for a bound session.
    fn active_signal(&self, upstream: &str, session_here: bool, now: Millis) -> Option<Skip> {
        let signals = self.signals.lock().expect("signals lock");
        let signal = signals
            .get(upstream)?
            .iter()
            .filter(|s| s.until().is_none_or(|until| now < until))
            .filter(|s| !matches!(s, Signal::Draining { .. }) || !session_here)
            .min_by_key(|s| s.rank())?;
        let until_ms = |until: Millis| self.clock.to_epoch_ms(until);
        Some(match signal {
            Signal::Disabled { reason, until } => Skip::RuntimeDisabled {
                reason: reason.clone(),
                until_ms: until.map(until_ms),
                left_ms: until.map(|until| until - now),
            },
            Signal::Exhausted { reason, until } => Skip::Exhausted {
                reason: reason.clone(),
                until_ms: until_ms(*until),
                left_ms: until - now,
            },
            Signal::Draining { reason, until } => Skip::Draining {
                reason: reason.clone(),
                until_ms: until.map(until_ms),
                left_ms: until.map(|until| until - now),
            },
        })
    }

    /// The operator's switches on `upstream` in force at `now` (whatever the session), for
    /// the admin API's views.
    pub fn switches(&self, upstream: &str, now: Millis) -> RuntimeSwitches {
        let signals = self.signals.lock().expect("signals lock");
        let mut out = RuntimeSwitches::default();
        let live = signals
            .get(upstream)
            .into_iter()
            .flatten()
            .filter(|s| s.until().is_none_or(|until| now < until));
        for signal in live {
            let note = |reason: &String, until: &Option<Millis>| SwitchNote {
                reason: reason.clone(),
                until_ms: until.map(|u| self.clock.to_epoch_ms(u)),
            };
            match signal {
                Signal::Disabled { reason, until } => out.disabled = Some(note(reason, until)),
                Signal::Draining { reason, until } => out.draining = Some(note(reason, until)),
                Signal::Exhausted { .. } => {}
            }
        }
        out
    }

    /// Starts (with a reason and an end, if it has one) or ends draining `upstream`: it takes
    /// no new sessions and keeps serving those bound to it.
    pub fn set_draining(&self, upstream: &str, draining: Option<(String, Option<Millis>)>) {
        self.set_signal(
            upstream,
            |s| matches!(s, Signal::Draining { .. }),
            draining.map(|(reason, until)| Signal::Draining { reason, until }),
        );
    }

    /// Why `upstream` cannot take a request at `now` (on [`RoutingState::clock`]), if it
    /// cannot. `tried` and `saturated` are what this request already learned about it;
    /// `session_here` says the request's session is bound to it (its affinity record names
    /// it), which a draining endpoint still serves. This is where an expiry leaves memory:
    /// the skip's `until_ms` is epoch ms.
    pub fn skip_reason(
        &self,
        upstream: &Upstream,
        model: Option<&str>,
        tried: bool,
        saturated: bool,
        session_here: bool,
        now: Millis,
    ) -> Option<Skip> {
        if tried {
            return Some(Skip::Tried);
        }
        if let Some(signal) = self.active_signal(upstream.key().as_str(), session_here, now) {
            return Some(signal);
        }
        if !upstream.credential.missing_env.is_empty() {
            return Some(Skip::MissingCredential {
                vars: upstream.credential.missing_env.clone(),
            });
        }
        if let Some(model) = model {
            if !supports_model(&upstream.supported_models, &upstream.model_mapping, model) {
                return Some(Skip::UnsupportedModel {
                    model: model.to_string(),
                });
            }
        }
        if let Some(blocked) = self.health(upstream.key().as_str()).blocked(now) {
            return Some(Skip::Unhealthy(match blocked {
                Blocked::Cooldown {
                    until_ms,
                    left_ms,
                    after,
                } => Blocked::Cooldown {
                    until_ms: self.clock.to_epoch_ms(until_ms),
                    left_ms,
                    after,
                },
                Blocked::Probing => Blocked::Probing,
            }));
        }
        if let Some(limit) = &upstream.limit {
            if saturated || self.in_flight(&limit.group) >= limit.max {
                return Some(Skip::Saturated {
                    limit_group: limit.group.clone(),
                    max: limit.max,
                });
            }
        }
        None
    }

    /// The session's affinity under `graph`, and where its endpoint stands among `candidates`.
    pub fn affinity_for(
        &self,
        session: Option<&str>,
        graph: &RouteGraph,
        candidates: &[Candidate],
    ) -> (Option<AffinityRecord>, Option<AffinityView>) {
        let record = session.and_then(|s| self.affinity.get(s, &graph.key));
        let view = record.as_ref().and_then(|a| {
            let candidate = candidates
                .iter()
                .position(|c| *graph.upstreams[c.upstream].key() == *a.upstream)?;
            Some(AffinityView {
                candidate,
                since_ms: a.last_changed_ms,
            })
        });
        (record, view)
    }

    /// Requests in flight in a limit group.
    pub fn in_flight(&self, group: &str) -> u32 {
        self.in_flight
            .lock()
            .expect("in-flight lock")
            .get(group)
            .copied()
            .unwrap_or(0)
    }

    /// Takes a slot under `limit`, or `None` when the group is full. The slot is given back
    /// when the permit is dropped (when the response body ends).
    pub fn acquire(&self, limit: Option<&ConcurrencyLimit>) -> Option<Permit> {
        let Some(limit) = limit else {
            return Some(Permit {
                counts: None,
                group: String::new(),
                also: None,
            });
        };
        let mut counts = self.in_flight.lock().expect("in-flight lock");
        let count = counts.entry(limit.group.clone()).or_insert(0);
        if *count >= limit.max {
            return None;
        }
        *count += 1;
        Some(Permit {
            counts: Some(self.in_flight.clone()),
            group: limit.group.clone(),
            also: None,
        })
    }
}

/// A runtime signal as kept in memory: its expiry on the monotonic clock.
#[derive(Debug)]
enum Signal {
    Disabled {
        reason: String,
        until: Option<Millis>,
    },
    Exhausted {
        reason: String,
        until: Millis,
    },
    Draining {
        reason: String,
        until: Option<Millis>,
    },
}

impl Signal {
    fn until(&self) -> Option<Millis> {
        match self {
            Signal::Disabled { until, .. } | Signal::Draining { until, .. } => *until,
            Signal::Exhausted { until, .. } => Some(*until),
        }
    }

    /// Which reason is shown when several hold: the ones that stop every request first.
    fn rank(&self) -> u8 {
        match self {
            Signal::Disabled { .. } => 0,
            Signal::Exhausted { .. } => 1,
            Signal::Draining { .. } => 2,
        }
    }
}

/// The operator's runtime switches on one endpoint, as the admin API shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeSwitches {
    /// Switched off while running.
    pub disabled: Option<SwitchNote>,
    /// Taking no new sessions.
    pub draining: Option<SwitchNote>,
}

/// Why a switch was set and until when (epoch ms), if it has an end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwitchNote {
    pub reason: String,
    pub until_ms: Option<u64>,
}

/// A request's hold on its endpoint's health, from [`RoutingState::begin`] until the request
/// says how the endpoint did: [`HealthProbe::succeeded`], [`HealthProbe::failed`], or nothing
/// (dropped: a client error, a client that went away), which leaves the health as it was and
/// gives back the half-open probe if this request held it. Like the concurrency [`Permit`],
/// it travels with the response body, so a stream is judged when it ends.
#[derive(Debug)]
pub struct HealthProbe {
    health: Arc<Mutex<HashMap<EndpointKey, Health>>>,
    /// The verdict is timed when it is given, which can be long after `begin` (when a stream
    /// ends), so the guard reads the clock itself.
    clock: Clock,
    upstream: EndpointKey,
    /// This request is the half-open probe after a cooldown.
    is_probe: bool,
    cooldown: CooldownPolicy,
    open: bool,
}

impl HealthProbe {
    /// The endpoint answered well: its failures are forgotten.
    pub fn succeeded(mut self) {
        self.update(Health::on_success);
    }

    /// The endpoint failed: it cools down from now as `cooldown` says (a growing cooldown
    /// follows the policy the request started with), `why` naming the failure.
    pub fn failed(mut self, cooldown: Cooldown, why: String) {
        let policy = self.cooldown;
        let now = self.clock.now();
        self.update(|h| match cooldown {
            Cooldown::None => h.on_neutral(),
            Cooldown::Growing => h.on_failover(now, policy.duration_ms(h.streak), why),
            Cooldown::Fixed(ms) => h.on_failover(now, ms, why),
        });
    }

    fn update(&mut self, change: impl FnOnce(&mut Health)) {
        self.open = false;
        let mut map = self.health.lock().expect("health lock");
        change(map.entry(self.upstream.clone()).or_default());
    }
}

impl Drop for HealthProbe {
    fn drop(&mut self) {
        if self.open && self.is_probe {
            self.update(Health::on_neutral);
        }
    }
}

/// A request's slot in its endpoint's limit group.
#[derive(Debug)]
pub struct Permit {
    counts: Option<Arc<Mutex<HashMap<String, u32>>>>,
    group: String,
    /// A slot held elsewhere for the same request (team mode's permit across instances,
    /// `shared::permits`), given back with this one.
    also: Option<Box<dyn PermitHold>>,
}

/// Anything a [`Permit`] can carry and drop with itself.
pub trait PermitHold: Send + Sync + std::fmt::Debug {}

impl<T: Send + Sync + std::fmt::Debug> PermitHold for T {}

impl Permit {
    /// Holds `hold` for as long as this permit.
    pub fn hold_also(&mut self, hold: Box<dyn PermitHold>) {
        self.also = Some(hold);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(counts) = &self.counts {
            if let Some(count) = counts.lock().expect("in-flight lock").get_mut(&self.group) {
                *count = count.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pe() -> EndpointKey {
        EndpointKey::new("p", "e")
    }

    /// A routing state on a manual clock, and a way to set that clock to `ms`.
    fn at_manual_time() -> (RoutingState, impl Fn(Millis) -> Millis) {
        let clock = Clock::manual();
        let state = RoutingState::new(AffinityStore::in_memory(), clock.clone());
        let at = move |ms: Millis| {
            clock.advance(std::time::Duration::from_millis(ms - clock.now()));
            ms
        };
        (state, at)
    }

    /// The endpoint `p.e`, with nothing in its config to skip it for.
    fn upstream() -> Upstream {
        Upstream {
            key: crate::routing::upstream::EndpointKey::new("p", "e"),
            provider: "p".into(),
            endpoint: "e".into(),
            base_url: crate::routing::BaseUrl::parse("http://x").unwrap(),
            credential: Default::default(),
            tags: Default::default(),
            model_mapping: Default::default(),
            supported_models: Default::default(),
            limit: None,
            price_multiplier: 1.0,
            outbound: Default::default(),
        }
    }

    #[test]
    fn signals_have_a_reason_and_expire() {
        let (state, at) = at_manual_time();
        let upstream = upstream();
        assert_eq!(
            state.skip_reason(&upstream, None, false, false, false, 0),
            None
        );
        state.set_exhausted("p.e", Some(("balance 0".into(), 10_000)));
        let wall = crate::time::now_ms();
        let skip = state
            .skip_reason(&upstream, None, false, false, false, at(8_500))
            .unwrap();
        let Skip::Exhausted { until_ms, .. } = skip else {
            panic!("{skip:?}");
        };
        assert!(
            (wall + 1_500..wall + 2_500).contains(&until_ms),
            "shown as a time of day: {until_ms}, now {wall}"
        );
        assert_eq!(skip.left_ms(), Some(1_500));
        assert_eq!(skip.describe(), "exhausted (balance 0) for 2s more");
        assert_eq!(
            state.skip_reason(&upstream, None, false, false, false, at(10_000)),
            None,
            "expired"
        );
        state.set_runtime_disabled("p.e", Some(("maintenance".into(), None)));
        let skip = state
            .skip_reason(&upstream, None, false, false, false, at(15_000))
            .unwrap();
        assert_eq!(skip.describe(), "disabled while running: maintenance");
        assert_eq!(skip.left_ms(), None, "no end of its own");
        state.set_runtime_disabled("p.e", None);
        assert_eq!(
            state.skip_reason(&upstream, None, false, false, false, at(15_000)),
            None
        );
    }

    #[test]
    fn a_draining_endpoint_keeps_its_sessions_and_takes_no_new_ones() {
        let (state, at) = at_manual_time();
        let upstream = upstream();
        state.set_draining("p.e", Some(("moving off".into(), Some(60_000))));
        let new = state
            .skip_reason(&upstream, None, false, false, false, at(1_000))
            .unwrap();
        assert!(matches!(new, Skip::Draining { .. }), "{new:?}");
        assert_eq!(new.describe(), "draining (no new sessions): moving off");
        assert_eq!(new.left_ms(), Some(59_000));
        assert_eq!(
            serde_json::to_value(&new).unwrap()["kind"],
            "draining",
            "the typed name in records"
        );
        assert_eq!(
            state.skip_reason(&upstream, None, false, false, true, at(1_000)),
            None,
            "a session bound here is still served"
        );
        // Other reasons still hold for a bound session; a switch-off is shown before draining.
        state.set_runtime_disabled("p.e", Some(("broken".into(), None)));
        for bound in [false, true] {
            let skip = state
                .skip_reason(&upstream, None, false, false, bound, at(1_000))
                .unwrap();
            assert!(matches!(skip, Skip::RuntimeDisabled { .. }), "{skip:?}");
        }
        let switches = state.switches("p.e", at(1_000));
        assert_eq!(switches.disabled.unwrap().reason, "broken");
        assert_eq!(switches.draining.unwrap().reason, "moving off");
        state.set_runtime_disabled("p.e", None);
        // Draining ends on its own, or when cleared.
        assert_eq!(
            state.skip_reason(&upstream, None, false, false, false, at(60_000)),
            None
        );
        assert_eq!(
            state.switches("p.e", at(60_000)),
            RuntimeSwitches::default()
        );
        state.set_draining("p.e", Some(("again".into(), None)));
        assert!(
            state
                .skip_reason(&upstream, None, false, false, false, at(61_000))
                .is_some()
        );
        state.set_draining("p.e", None);
        assert_eq!(
            state.skip_reason(&upstream, None, false, false, false, at(61_000)),
            None
        );
    }

    #[test]
    fn the_probe_guard_gives_its_verdict_or_gives_the_probe_back() {
        let (state, at) = at_manual_time();
        let policy = CooldownPolicy {
            base_secs: 10,
            factor: 2.0,
            max_secs: 100,
        };
        let first = state.begin(&pe(), 0, policy).unwrap();
        first.failed(Cooldown::Growing, "HTTP 502".into());
        assert!(
            state.begin(&pe(), at(5_000), policy).is_none(),
            "cooling down"
        );
        // After the cooldown, one probe; others are turned away until it ends.
        let probe = state.begin(&pe(), at(10_000), policy).unwrap();
        assert!(
            state.begin(&pe(), at(10_001), policy).is_none(),
            "one probe at a time"
        );
        drop(probe);
        let probe = state
            .begin(&pe(), at(10_002), policy)
            .expect("a dropped probe is given back");
        // Its verdict comes later, timed when it is given.
        at(10_502);
        probe.failed(Cooldown::Growing, "HTTP 502".into());
        assert_eq!(state.health("p.e").streak, 2);
        assert!(
            state.begin(&pe(), at(30_501), policy).is_none(),
            "a longer cooldown, from the verdict"
        );
        let probe = state.begin(&pe(), at(30_502), policy).unwrap();
        probe.succeeded();
        assert_eq!(state.health("p.e"), Health::default());
        // Requests on a healthy endpoint judge it only when they say so.
        let a = state.begin(&pe(), at(30_503), policy).unwrap();
        let b = state.begin(&pe(), at(30_503), policy).unwrap();
        drop(a);
        b.succeeded();
        assert_eq!(state.health("p.e"), Health::default());
    }

    #[test]
    fn a_cooldown_leaves_as_a_time_of_day_with_the_time_it_had_left() {
        let (state, at) = at_manual_time();
        let policy = CooldownPolicy {
            base_secs: 30,
            factor: 2.0,
            max_secs: 100,
        };
        let upstream = upstream();
        let probe = state.begin(&pe(), at(1_000), policy).unwrap();
        probe.failed(Cooldown::Growing, "HTTP 502".into());
        let wall = crate::time::now_ms();
        let skip = state
            .skip_reason(&upstream, None, false, false, false, at(11_000))
            .unwrap();
        let Skip::Unhealthy(Blocked::Cooldown { until_ms, .. }) = skip else {
            panic!("{skip:?}");
        };
        assert!(
            (wall + 19_000..wall + 21_000).contains(&until_ms),
            "{until_ms}, now {wall}"
        );
        assert_eq!(skip.left_ms(), Some(20_000));
        assert_eq!(skip.describe(), "cooling down for 20s after HTTP 502");
        assert_eq!(
            serde_json::to_value(&skip).unwrap(),
            serde_json::json!({
                "kind": "unhealthy", "reason": "cooldown", "until_ms": until_ms, "after": "HTTP 502"
            }),
            "stored as before: no monotonic number, nothing extra"
        );
    }

    #[test]
    fn permits_are_counted_per_group_and_given_back() {
        let state = RoutingState::new(AffinityStore::in_memory(), Clock::manual());
        let limit = ConcurrencyLimit {
            max: 2,
            group: "acct".into(),
        };
        let a = state.acquire(Some(&limit)).unwrap();
        let _b = state.acquire(Some(&limit)).unwrap();
        assert!(state.acquire(Some(&limit)).is_none());
        drop(a);
        assert_eq!(state.in_flight("acct"), 1);
        assert!(state.acquire(Some(&limit)).is_some());
        assert!(state.acquire(None).is_some(), "no limit, always a permit");
    }
}
