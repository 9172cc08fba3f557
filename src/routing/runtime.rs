//! The routing state that changes while the proxy runs: endpoint health, requests in flight
//! per limit group, and session affinity. Shared by all requests behind short-held locks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::affinity::AffinityRecord;
use super::affinity::AffinityStore;
use super::graph::{Candidate, RouteGraph};
use super::health::Health;
use super::model_map::supports_model;
use super::select::AffinityView;
use super::select::Skip;
use super::upstream::{ConcurrencyLimit, Upstream};

/// Runtime routing state, keyed by `provider.endpoint` (health) or limit group (in flight).
#[derive(Debug)]
pub struct RoutingState {
    health: Mutex<HashMap<String, Health>>,
    /// Signals set by other parts of the helper (admin API, balance checks), each with a
    /// reason and, where it has one, an expiry.
    signals: Mutex<HashMap<String, Vec<Skip>>>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
    pub affinity: AffinityStore,
}

impl RoutingState {
    pub fn new(affinity: AffinityStore) -> Self {
        Self {
            health: Mutex::default(),
            signals: Mutex::default(),
            in_flight: Arc::default(),
            affinity,
        }
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

    /// Changes one endpoint's health.
    pub fn update_health<T>(&self, upstream: &str, change: impl FnOnce(&mut Health) -> T) -> T {
        let mut map = self.health.lock().expect("health lock");
        change(map.entry(upstream.to_string()).or_default())
    }

    /// Switches an endpoint off (or on again with `None`) while running.
    pub fn set_runtime_disabled(&self, upstream: &str, disabled: Option<(String, Option<u64>)>) {
        self.set_signal(
            upstream,
            |s| matches!(s, Skip::RuntimeDisabled { .. }),
            disabled.map(|(reason, until_ms)| Skip::RuntimeDisabled { reason, until_ms }),
        );
    }

    /// Marks an endpoint out of balance until `until_ms` (or clears it with `None`).
    pub fn set_exhausted(&self, upstream: &str, exhausted: Option<(String, u64)>) {
        self.set_signal(
            upstream,
            |s| matches!(s, Skip::Exhausted { .. }),
            exhausted.map(|(reason, until_ms)| Skip::Exhausted { reason, until_ms }),
        );
    }

    fn set_signal(&self, upstream: &str, same_kind: impl Fn(&Skip) -> bool, signal: Option<Skip>) {
        let mut signals = self.signals.lock().expect("signals lock");
        let list = signals.entry(upstream.to_string()).or_default();
        list.retain(|s| !same_kind(s));
        list.extend(signal);
    }

    /// The first signal on `upstream` that has not expired.
    fn active_signal(&self, upstream: &str, now_ms: u64) -> Option<Skip> {
        let signals = self.signals.lock().expect("signals lock");
        signals
            .get(upstream)?
            .iter()
            .find(|s| s.until_ms().is_none_or(|until| now_ms < until))
            .cloned()
    }

    /// Why `upstream` cannot take a request right now, if it cannot. `tried` and `saturated`
    /// are what this request already learned about it.
    pub fn skip_reason(
        &self,
        upstream: &Upstream,
        model: Option<&str>,
        tried: bool,
        saturated: bool,
        now_ms: u64,
    ) -> Option<Skip> {
        if tried {
            return Some(Skip::Tried);
        }
        if let Some(signal) = self.active_signal(&upstream.key(), now_ms) {
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
        if let Some(blocked) = self.health(&upstream.key()).blocked(now_ms) {
            return Some(Skip::Unhealthy(blocked));
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
                .position(|c| graph.upstreams[c.upstream].key() == a.upstream)?;
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
        })
    }
}

/// A request's slot in its endpoint's limit group.
#[derive(Debug)]
pub struct Permit {
    counts: Option<Arc<Mutex<HashMap<String, u32>>>>,
    group: String,
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

    #[test]
    fn signals_have_a_reason_and_expire() {
        let state = RoutingState::new(AffinityStore::in_memory());
        let upstream = Upstream {
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
        };
        assert_eq!(state.skip_reason(&upstream, None, false, false, 0), None);
        state.set_exhausted("p.e", Some(("balance 0".into(), 1_000)));
        assert!(matches!(
            state.skip_reason(&upstream, None, false, false, 999),
            Some(Skip::Exhausted {
                until_ms: 1_000,
                ..
            })
        ));
        assert_eq!(
            state.skip_reason(&upstream, None, false, false, 1_000),
            None,
            "expired"
        );
        state.set_runtime_disabled("p.e", Some(("maintenance".into(), None)));
        assert!(
            state
                .skip_reason(&upstream, None, false, false, 5_000)
                .unwrap()
                .describe()
                .contains("maintenance")
        );
        state.set_runtime_disabled("p.e", None);
        assert_eq!(
            state.skip_reason(&upstream, None, false, false, 5_000),
            None
        );
    }

    #[test]
    fn permits_are_counted_per_group_and_given_back() {
        let state = RoutingState::new(AffinityStore::in_memory());
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
