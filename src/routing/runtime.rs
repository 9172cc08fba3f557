//! The routing state that changes while the proxy runs: endpoint health, requests in flight
//! per limit group, and session affinity. Shared by all requests behind short-held locks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::affinity::AffinityStore;
use super::health::Health;
use super::model_map::supports_model;
use super::select::Skip;
use super::upstream::{ConcurrencyLimit, Upstream};

/// Runtime routing state, keyed by `provider.endpoint` (health) or limit group (in flight).
#[derive(Debug)]
pub struct RoutingState {
    health: Mutex<HashMap<String, Health>>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
    pub affinity: Mutex<AffinityStore>,
}

impl RoutingState {
    pub fn new(affinity: AffinityStore) -> Self {
        Self {
            health: Mutex::default(),
            in_flight: Arc::default(),
            affinity: Mutex::new(affinity),
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

    /// Every endpoint's health, for display.
    pub fn all_health(&self) -> HashMap<String, Health> {
        self.health.lock().expect("health lock").clone()
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
