//! Session overrides: what an operator set for one session through the admin API (the model,
//! the reasoning effort, the service tier, and a route target the session is pinned to),
//! applied to the session's requests before routing and model mapping. Kept in memory (they
//! are runtime decisions, gone at restart), at most [`SESSIONS_MAX`] sessions.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Sessions with overrides kept at most; past it, the oldest set is dropped.
pub const SESSIONS_MAX: usize = 10_000;

/// One session's overrides; `None` leaves the request's own value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub service_tier: Option<String>,
    /// A provider id or `provider.endpoint` the session's requests go to (and nowhere else).
    pub route_target: Option<String>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// The body with the overridden fields set (pure): `Some` only when something changed and
    /// the body is a JSON object.
    pub fn patch_body(&self, body: &[u8]) -> Option<Vec<u8>> {
        if self.model.is_none() && self.reasoning_effort.is_none() && self.service_tier.is_none() {
            return None;
        }
        let mut value: Value = serde_json::from_slice(body).ok()?;
        let object = value.as_object_mut()?;
        let mut changed = false;
        let mut set = |object: &mut serde_json::Map<String, Value>, key: &str, to: &str| {
            if object.get(key).and_then(Value::as_str) != Some(to) {
                object.insert(key.to_string(), Value::String(to.to_string()));
                changed = true;
            }
        };
        if let Some(model) = &self.model {
            set(object, "model", model);
        }
        if let Some(tier) = &self.service_tier {
            set(object, "service_tier", tier);
        }
        if let Some(effort) = &self.reasoning_effort {
            let reasoning = object
                .entry("reasoning")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(reasoning) = reasoning.as_object_mut() {
                set(reasoning, "effort", effort);
            }
        }
        if !changed {
            return None;
        }
        serde_json::to_vec(&value).ok()
    }
}

/// What changes a session's overrides: values to set, and fields to clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub session_id: String,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub service_tier: Option<String>,
    pub route_target: Option<String>,
    /// `model`, `reasoning_effort`, `service_tier`, `route_target`, or `all`.
    #[serde(default)]
    pub clear: Vec<String>,
}

/// Every session's overrides.
#[derive(Debug, Default)]
pub struct SessionOverrides {
    /// Session → (overrides, a counter for "oldest").
    map: Mutex<HashMap<String, (Overrides, u64)>>,
    counter: std::sync::atomic::AtomicU64,
}

impl SessionOverrides {
    pub fn get(&self, session: &str) -> Option<Overrides> {
        let map = self.map.lock().expect("overrides lock");
        map.get(session).map(|(o, _)| o.clone())
    }

    /// Every session with overrides.
    pub fn all(&self) -> Vec<(String, Overrides)> {
        let map = self.map.lock().expect("overrides lock");
        let mut all: Vec<(String, Overrides, u64)> = map
            .iter()
            .map(|(k, (o, n))| (k.clone(), o.clone(), *n))
            .collect();
        all.sort_by_key(|(_, _, n)| std::cmp::Reverse(*n));
        all.into_iter().map(|(k, o, _)| (k, o)).collect()
    }

    /// Applies `change`; `Err` names a field `clear` does not know. Returns what is now set.
    pub fn apply(&self, change: Change) -> Result<Overrides, String> {
        let mut map = self.map.lock().expect("overrides lock");
        let mut current = map
            .get(&change.session_id)
            .map(|(o, _)| o.clone())
            .unwrap_or_default();
        for field in &change.clear {
            match field.as_str() {
                "model" => current.model = None,
                "reasoning_effort" => current.reasoning_effort = None,
                "service_tier" => current.service_tier = None,
                "route_target" => current.route_target = None,
                "all" => current = Overrides::default(),
                other => {
                    return Err(format!(
                        "`clear` takes model, reasoning_effort, service_tier, route_target or all, not `{other}`"
                    ));
                }
            }
        }
        let keep = |set: Option<String>, was: Option<String>| set.or(was);
        current.model = keep(change.model, current.model);
        current.reasoning_effort = keep(change.reasoning_effort, current.reasoning_effort);
        current.service_tier = keep(change.service_tier, current.service_tier);
        current.route_target = keep(change.route_target, current.route_target);
        if current.is_empty() {
            map.remove(&change.session_id);
            return Ok(current);
        }
        if map.len() >= SESSIONS_MAX
            && !map.contains_key(&change.session_id)
            && let Some(oldest) = map.iter().min_by_key(|(_, (_, n))| *n).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        map.insert(change.session_id, (current.clone(), n));
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(session: &str) -> Change {
        Change {
            session_id: session.into(),
            ..Change::default()
        }
    }

    #[test]
    fn values_are_set_kept_and_cleared() {
        let store = SessionOverrides::default();
        let set = store
            .apply(Change {
                model: Some("gpt-5.5".into()),
                route_target: Some("b".into()),
                ..change("s1")
            })
            .unwrap();
        assert_eq!(set.model.as_deref(), Some("gpt-5.5"));
        let more = store
            .apply(Change {
                service_tier: Some("priority".into()),
                clear: vec!["route_target".into()],
                ..change("s1")
            })
            .unwrap();
        assert_eq!(
            more,
            Overrides {
                model: Some("gpt-5.5".into()),
                service_tier: Some("priority".into()),
                ..Overrides::default()
            }
        );
        store
            .apply(Change {
                clear: vec!["all".into()],
                ..change("s1")
            })
            .unwrap();
        assert_eq!(store.get("s1"), None, "nothing set: nothing kept");
        let bad = store.apply(Change {
            clear: vec!["colour".into()],
            ..change("s1")
        });
        assert!(bad.unwrap_err().contains("colour"));
    }

    #[test]
    fn the_body_gets_only_what_is_overridden() {
        let overrides = Overrides {
            model: Some("gpt-5.5".into()),
            reasoning_effort: Some("high".into()),
            ..Overrides::default()
        };
        let body = br#"{"model":"gpt-5.1","input":"hi","reasoning":{"summary":"auto"}}"#;
        let patched: Value = serde_json::from_slice(&overrides.patch_body(body).unwrap()).unwrap();
        assert_eq!(patched["model"], "gpt-5.5");
        assert_eq!(patched["reasoning"], serde_json::json!({"summary": "auto", "effort": "high"}));
        assert_eq!(patched["input"], "hi");
        assert!(patched.get("service_tier").is_none());
        // Already so, or not JSON: left alone.
        let same = br#"{"model":"gpt-5.5","reasoning":{"effort":"high"}}"#;
        assert_eq!(overrides.patch_body(same), None);
        assert_eq!(overrides.patch_body(b"not json"), None);
        let route_only = Overrides {
            route_target: Some("b".into()),
            ..Overrides::default()
        };
        assert_eq!(route_only.patch_body(body), None);
    }
}
