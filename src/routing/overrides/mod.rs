//! Session overrides: what an operator set for one session through the admin API (the model,
//! the reasoning effort, the service tier, a route target the session is pinned to, or a
//! profile), applied to the session's requests before routing and model mapping. Kept in
//! memory (they are runtime decisions, gone at restart), at most [`SESSIONS_MAX`] sessions.
//!
//! What a request ends up with, field by field: a manual override, else the applied profile's
//! value, else what the request says, else the default profile's value (see [`profiles`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

pub mod profiles;
mod splice;
mod values;

use self::profiles::Profiles;
use self::splice::Object;
pub use self::splice::{TopLevel, span_in};
pub use self::values::{Overrides, VALUE_MAX, check_value};
use super::{Candidate, RouteGraph, Upstream};

/// Sessions with overrides kept at most; past it, the one changed longest ago is dropped.
pub const SESSIONS_MAX: usize = 10_000;
/// One session's overrides as set: manual values and an applied profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    #[serde(flatten)]
    pub manual: Overrides,
    /// A profile applied to the session (its values under the manual ones).
    pub profile: Option<String>,
}

impl SessionEntry {
    pub fn is_empty(&self) -> bool {
        self.manual.is_empty() && self.profile.is_none()
    }
}

/// What a session's request gets, resolved against the profiles in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Values that replace the request's.
    pub set: Overrides,
    /// Values for fields the request leaves out (the default profile's).
    pub fill: Overrides,
    /// The profile behind `set` (applied) or `fill` (the default).
    pub profile: Option<String>,
}

impl Applied {
    /// What `entry` (the session's, if any) and the profiles give a request; `None` when
    /// nothing applies.
    pub fn resolve(entry: Option<&SessionEntry>, profiles: &Profiles) -> Option<Applied> {
        let applied_profile = entry
            .and_then(|e| e.profile.as_deref())
            .and_then(|name| profiles.get(name).map(|values| (name, values)));
        let manual = entry.map(|e| e.manual.clone()).unwrap_or_default();
        let resolved = match applied_profile {
            Some((name, values)) => Applied {
                set: manual.over(values),
                fill: Overrides::default(),
                profile: Some(name.to_string()),
            },
            None => Applied {
                set: manual,
                fill: profiles.default_values().cloned().unwrap_or_default(),
                profile: profiles.default.clone(),
            },
        };
        (!resolved.set.is_empty() || !resolved.fill.is_empty()).then_some(resolved)
    }

    /// The body with the values set (pure), or `None` when nothing changes or the body is
    /// not a JSON object. Only the values set change (see [`splice`]).
    pub fn patch_body(&self, body: &[u8]) -> Option<Patched> {
        if !self.changes_body() {
            return None;
        }
        self.patch(body, Object::read(body, 0..body.len())?)
    }

    /// [`Applied::patch_body`] for a body whose top-level object was read already (`top`, by
    /// the proxy's inspection), so a large body is not parsed once more to find the members.
    pub fn patch_read_body(&self, body: &[u8], top: &TopLevel) -> Option<Patched> {
        if !self.changes_body() {
            return None;
        }
        self.patch(body, Object::known(body, top))
    }

    /// Whether any value set or filled is one a body holds (a route target is not).
    fn changes_body(&self) -> bool {
        let wants = |o: &Overrides| {
            o.model.is_some() || o.reasoning_effort.is_some() || o.service_tier.is_some()
        };
        wants(&self.set) || wants(&self.fill)
    }

    fn patch(&self, body: &[u8], mut top: Object<'_>) -> Option<Patched> {
        let mut edits = Vec::new();
        let mut patched = Patched::default();
        for (key, set, fill) in [
            ("model", &self.set.model, &self.fill.model),
            (
                "service_tier",
                &self.set.service_tier,
                &self.fill.service_tier,
            ),
        ] {
            let current = top.get(key).map(|(raw, _)| raw);
            if let Some((to, filled)) = decide(current, set, fill) {
                top.set(key, splice::quote(to), &mut edits);
                patched.note(key, filled);
            }
        }
        let (set, fill) = (&self.set.reasoning_effort, &self.fill.reasoning_effort);
        match top.get("reasoning") {
            // `null` or absent: a reasoning object of the effort alone.
            None | Some(("null", _)) => {
                if let Some((to, filled)) = decide(None, set, fill) {
                    let effort = format!("{{\"effort\":{}}}", splice::quote(to));
                    top.set("reasoning", effort, &mut edits);
                    patched.note("reasoning_effort", filled);
                }
            }
            Some((_, span)) => {
                // Not an object (a string, a number): left alone.
                if let Some(mut reasoning) = Object::read(body, span) {
                    let current = reasoning.get("effort").map(|(raw, _)| raw);
                    if let Some((to, filled)) = decide(current, set, fill) {
                        reasoning.set("effort", splice::quote(to), &mut edits);
                        patched.note("reasoning_effort", filled);
                    }
                    reasoning.finish(&mut edits);
                }
            }
        }
        top.finish(&mut edits);
        if edits.is_empty() {
            return None;
        }
        patched.body = splice::apply(body, edits);
        Some(patched)
    }
}

/// A body with overrides set, and what they changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Patched {
    pub body: Vec<u8>,
    /// The fields changed, by their API names (`reasoning_effort` for `reasoning.effort`).
    pub changed: Vec<&'static str>,
    /// Whether a value came from the fill (the default profile).
    pub filled: bool,
}

impl Patched {
    fn note(&mut self, key: &'static str, filled: bool) {
        self.changed.push(key);
        self.filled |= filled;
    }
}

/// What a field becomes, given its raw JSON value now: the value set, else the fill when the
/// request has none; `None` when that is what it already says. The `bool` is "from the fill".
fn decide<'v>(
    current: Option<&str>,
    set: &'v Option<String>,
    fill: &'v Option<String>,
) -> Option<(&'v String, bool)> {
    let present = current.is_some_and(|raw| raw != "null");
    let (to, filled) = match (set, fill) {
        (Some(to), _) => (to, false),
        (None, Some(to)) if !present => (to, true),
        _ => return None,
    };
    let now: Option<String> = current.and_then(|raw| serde_json::from_str(raw).ok());
    (now.as_ref() != Some(to)).then_some((to, filled))
}

/// Whether `target` names an endpoint of `upstream`: its provider id or `provider.endpoint`.
pub fn targets(upstream: &Upstream, target: &str) -> bool {
    upstream.provider == target || upstream.key().as_str() == target
}

/// Whether `target` names any endpoint of `graph`.
pub fn target_exists(graph: &RouteGraph, target: &str) -> bool {
    graph.upstreams.iter().any(|u| targets(u, target))
}

/// Whether the session is held on `upstream` even while it drains: it is bound there
/// (`bound`, its affinity's endpoint), or pinned to that very endpoint. A pin to a provider
/// leaves its draining endpoints to its others.
pub fn holds_session(upstream: &Upstream, bound: Option<&str>, pin: Option<&str>) -> bool {
    let here = Some(upstream.key().as_str());
    bound == here || pin == here
}

/// The candidates of a session pinned to `target`, and the pin in force: `target`'s
/// endpoints among the candidates, then its other endpoints in the graph (a conditional route
/// may have left them out), in a group after them. A target that names nothing in the graph
/// (a config reloaded without it) pins nothing and is not reported: the candidates are
/// returned as they are, with no pin.
pub fn pin<'t>(
    graph: &RouteGraph,
    candidates: Vec<Candidate>,
    target: Option<&'t str>,
) -> (Vec<Candidate>, Option<&'t str>) {
    let Some(target) = target.filter(|t| target_exists(graph, t)) else {
        return (candidates, None);
    };
    let mut kept: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| targets(&graph.upstreams[c.upstream], target))
        .collect();
    let next_group = kept.iter().map(|c| c.group + 1).max().unwrap_or(0);
    for (index, upstream) in graph.upstreams.iter().enumerate() {
        if targets(upstream, target) && !kept.iter().any(|c| c.upstream == index) {
            kept.push(Candidate {
                upstream: index,
                group: next_group,
                route_path: vec![format!("pin:{target}")],
            });
        }
    }
    (kept, Some(target))
}

/// What changes a session's manual overrides: values to set, and fields to clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub session_id: String,
    pub model: Option<String>,
    /// `effort` is the original's spelling, accepted too.
    #[serde(alias = "effort")]
    pub reasoning_effort: Option<String>,
    pub service_tier: Option<String>,
    pub route_target: Option<String>,
    /// `model`, `reasoning_effort`, `service_tier`, `route_target`, or `all`.
    #[serde(default)]
    pub clear: Vec<String>,
}

impl Change {
    /// Checks every value and name in the change (not whether a target exists).
    pub fn check(&self) -> Result<(), String> {
        check_value("session_id", &self.session_id)?;
        let values = [
            ("model", &self.model),
            ("reasoning_effort", &self.reasoning_effort),
            ("service_tier", &self.service_tier),
            ("route_target", &self.route_target),
        ];
        for (key, value) in values {
            if let Some(value) = value {
                check_value(key, value)?;
            }
        }
        for field in &self.clear {
            if !matches!(
                field.as_str(),
                "model" | "reasoning_effort" | "service_tier" | "route_target" | "all"
            ) {
                return Err(format!(
                    "`clear` takes model, reasoning_effort, service_tier, route_target or all, not `{field}`"
                ));
            }
        }
        Ok(())
    }
}

/// Every session's overrides.
#[derive(Debug, Default)]
pub struct SessionOverrides {
    /// Session → (entry, when it was last changed, as a counter).
    map: Mutex<HashMap<String, (SessionEntry, u64)>>,
    counter: AtomicU64,
}

impl SessionOverrides {
    pub fn get(&self, session: &str) -> Option<SessionEntry> {
        let map = self.map.lock().expect("overrides lock");
        map.get(session).map(|(e, _)| e.clone())
    }

    /// Every session with overrides, the last changed first.
    pub fn all(&self) -> Vec<(String, SessionEntry)> {
        let map = self.map.lock().expect("overrides lock");
        let mut all: Vec<(String, SessionEntry, u64)> = map
            .iter()
            .map(|(k, (e, n))| (k.clone(), e.clone(), *n))
            .collect();
        all.sort_by_key(|(_, _, n)| std::cmp::Reverse(*n));
        all.into_iter().map(|(k, e, _)| (k, e)).collect()
    }

    /// Applies a checked `change` (see [`Change::check`]); returns what is now set.
    pub fn apply(&self, change: Change) -> SessionEntry {
        self.update(&change.session_id.clone(), |entry| {
            for field in &change.clear {
                let current = &mut entry.manual;
                match field.as_str() {
                    "model" => current.model = None,
                    "reasoning_effort" => current.reasoning_effort = None,
                    "service_tier" => current.service_tier = None,
                    "route_target" => current.route_target = None,
                    _ => *entry = SessionEntry::default(),
                }
            }
            let current = &mut entry.manual;
            let keep = |set: Option<String>, was: &mut Option<String>| {
                if set.is_some() {
                    *was = set;
                }
            };
            keep(change.model, &mut current.model);
            keep(change.reasoning_effort, &mut current.reasoning_effort);
            keep(change.service_tier, &mut current.service_tier);
            keep(change.route_target, &mut current.route_target);
        })
    }

    /// Applies a profile to the session (clearing its manual overrides, as the original
    /// does), or removes the profile (`None`, manual overrides kept).
    pub fn apply_profile(&self, session: &str, profile: Option<String>) -> SessionEntry {
        self.update(session, |entry| match profile {
            Some(name) => {
                *entry = SessionEntry {
                    manual: Overrides::default(),
                    profile: Some(name),
                }
            }
            None => entry.profile = None,
        })
    }

    fn update(&self, session: &str, change: impl FnOnce(&mut SessionEntry)) -> SessionEntry {
        let mut map = self.map.lock().expect("overrides lock");
        let mut entry = map.get(session).map(|(e, _)| e.clone()).unwrap_or_default();
        change(&mut entry);
        if entry.is_empty() {
            map.remove(session);
            return entry;
        }
        if map.len() >= SESSIONS_MAX
            && !map.contains_key(session)
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, n))| *n)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        map.insert(session.to_string(), (entry.clone(), n));
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::CodexSection;
    use serde_json::Value;
    use std::path::Path;

    fn change(session: &str) -> Change {
        Change {
            session_id: session.into(),
            ..Change::default()
        }
    }

    fn profiles(text: &str) -> Profiles {
        let section: CodexSection = toml::from_str(text).unwrap();
        super::profiles::compile(&section, Path::new("/c.toml")).unwrap()
    }

    #[test]
    fn values_are_set_kept_and_cleared() {
        let store = SessionOverrides::default();
        let set = store.apply(Change {
            model: Some("gpt-5.5".into()),
            route_target: Some("b".into()),
            ..change("s1")
        });
        assert_eq!(set.manual.model.as_deref(), Some("gpt-5.5"));
        let more = store.apply(Change {
            service_tier: Some("priority".into()),
            clear: vec!["route_target".into()],
            ..change("s1")
        });
        assert_eq!(
            more.manual,
            Overrides {
                model: Some("gpt-5.5".into()),
                service_tier: Some("priority".into()),
                ..Overrides::default()
            }
        );
        store.apply(Change {
            clear: vec!["all".into()],
            ..change("s1")
        });
        assert_eq!(store.get("s1"), None, "nothing set: nothing kept");
        let bad = Change {
            clear: vec!["colour".into()],
            ..change("s1")
        };
        assert!(bad.check().unwrap_err().contains("colour"));
        let empty = Change {
            model: Some(" ".into()),
            ..change("s1")
        };
        assert!(empty.check().unwrap_err().contains("model"));
        assert!(change("").check().is_err());
        let control = Change {
            route_target: Some("a\nb".into()),
            ..change("s1")
        };
        assert!(control.check().is_err());
    }

    #[test]
    fn a_profile_replaces_manual_overrides_and_clearing_it_keeps_them() {
        let store = SessionOverrides::default();
        store.apply(Change {
            model: Some("m".into()),
            ..change("s")
        });
        let entry = store.apply_profile("s", Some("fast".into()));
        assert_eq!(entry.manual, Overrides::default());
        assert_eq!(entry.profile.as_deref(), Some("fast"));
        store.apply(Change {
            reasoning_effort: Some("high".into()),
            ..change("s")
        });
        let entry = store.apply_profile("s", None);
        assert_eq!(entry.profile, None);
        assert_eq!(entry.manual.reasoning_effort.as_deref(), Some("high"));
        assert!(store.apply_profile("other", None).is_empty());
        assert_eq!(store.all().len(), 1);
    }

    #[test]
    fn the_store_is_bounded_and_drops_the_oldest() {
        let store = SessionOverrides::default();
        for i in 0..SESSIONS_MAX + 5 {
            store.apply(Change {
                model: Some("m".into()),
                ..change(&format!("s{i}"))
            });
        }
        assert_eq!(store.all().len(), SESSIONS_MAX);
        assert_eq!(store.get("s0"), None);
        assert!(store.get(&format!("s{}", SESSIONS_MAX + 4)).is_some());
        assert_eq!(store.all()[0].0, format!("s{}", SESSIONS_MAX + 4));
    }

    #[test]
    fn the_body_gets_only_what_is_set() {
        let applied = Applied {
            set: Overrides {
                model: Some("gpt-5.5".into()),
                reasoning_effort: Some("high".into()),
                ..Overrides::default()
            },
            ..Applied::default()
        };
        let body = br#"{"model":"gpt-5.1","input":"hi","reasoning":{"summary":"auto"}}"#;
        let Patched {
            body: patched,
            changed,
            filled,
        } = applied.patch_body(body).unwrap();
        let patched: Value = serde_json::from_slice(&patched).unwrap();
        assert_eq!(changed, ["model", "reasoning_effort"]);
        assert!(!filled);
        assert_eq!(patched["model"], "gpt-5.5");
        assert_eq!(
            patched["reasoning"],
            serde_json::json!({"summary": "auto", "effort": "high"})
        );
        assert_eq!(patched["input"], "hi");
        assert!(patched.get("service_tier").is_none());
        // Already so, or not JSON: left alone.
        let same = br#"{"model":"gpt-5.5","reasoning":{"effort":"high"}}"#;
        assert_eq!(applied.patch_body(same), None);
        assert_eq!(applied.patch_body(b"not json"), None);
        let route_only = Applied {
            set: Overrides {
                route_target: Some("b".into()),
                ..Overrides::default()
            },
            ..Applied::default()
        };
        assert_eq!(route_only.patch_body(body), None);
    }

    #[test]
    fn patching_keeps_every_byte_it_does_not_set() {
        let applied = Applied {
            set: Overrides {
                reasoning_effort: Some("high".into()),
                service_tier: Some("flex".into()),
                ..Overrides::default()
            },
            ..Applied::default()
        };
        // Key order in a tool schema, number spellings, spacing: all as sent.
        let body = br#"{"model":"m","tools":[{"properties":{"zeta":{},"alpha":{}}}],"n":1e2,"big":123456789012345678901234567890,"reasoning":{"summary":"auto"}}"#;
        let patched = applied.patch_body(body).unwrap();
        assert_eq!(
            String::from_utf8(patched.body).unwrap(),
            r#"{"service_tier":"flex","model":"m","tools":[{"properties":{"zeta":{},"alpha":{}}}],"n":1e2,"big":123456789012345678901234567890,"reasoning":{"effort":"high","summary":"auto"}}"#
        );
        // `reasoning: null` (older Codex for models without reasoning) takes the effort too.
        let patched = applied
            .patch_body(br#"{"model":"m","reasoning":null,"service_tier":"flex"}"#)
            .unwrap();
        assert_eq!(
            String::from_utf8(patched.body).unwrap(),
            r#"{"model":"m","reasoning":{"effort":"high"},"service_tier":"flex"}"#
        );
        assert_eq!(patched.changed, ["reasoning_effort"]);
        // A reasoning that is not an object is left alone.
        assert!(
            applied
                .patch_body(br#"{"reasoning":"x","service_tier":"flex"}"#)
                .is_none()
        );
    }

    #[test]
    fn the_default_profile_fills_only_what_the_request_leaves_out() {
        let profiles = profiles(
            "default_profile = \"fast\"\n[profiles.fast]\nmodel = \"mini\"\nreasoning_effort = \"low\"\nservice_tier = \"priority\"\n",
        );
        let applied = Applied::resolve(None, &profiles).unwrap();
        assert_eq!(applied.profile.as_deref(), Some("fast"));
        // Codex always names its model and here its effort: those stay; the tier is filled.
        let body = br#"{"model":"gpt-5.5","reasoning":{"effort":"medium"}}"#;
        let Patched {
            body: patched,
            changed,
            filled,
        } = applied.patch_body(body).unwrap();
        let patched: Value = serde_json::from_slice(&patched).unwrap();
        assert_eq!(changed, ["service_tier"]);
        assert!(filled);
        assert_eq!(patched["model"], "gpt-5.5");
        assert_eq!(patched["reasoning"]["effort"], "medium");
        assert_eq!(patched["service_tier"], "priority");
        // No effort in the request: the profile's fills it.
        let patched = applied
            .patch_body(br#"{"model":"x","reasoning":{}}"#)
            .unwrap();
        let patched: Value = serde_json::from_slice(&patched.body).unwrap();
        assert_eq!(patched["reasoning"]["effort"], "low");
    }

    #[test]
    fn manual_beats_applied_profile_and_an_applied_profile_replaces_the_default() {
        let profiles = profiles(
            "default_profile = \"base\"\n[profiles.base]\nservice_tier = \"flex\"\n[profiles.deep]\nmodel = \"big\"\nreasoning_effort = \"xhigh\"\n",
        );
        let entry = SessionEntry {
            manual: Overrides {
                reasoning_effort: Some("low".into()),
                ..Overrides::default()
            },
            profile: Some("deep".into()),
        };
        let applied = Applied::resolve(Some(&entry), &profiles).unwrap();
        assert_eq!(applied.set.model.as_deref(), Some("big"));
        assert_eq!(applied.set.reasoning_effort.as_deref(), Some("low"));
        assert!(
            applied.fill.is_empty(),
            "the default does not fill under an applied profile"
        );
        assert_eq!(applied.profile.as_deref(), Some("deep"));
        // A profile gone from the config (after a reload) is ignored, manual values stay.
        let gone = SessionEntry {
            profile: Some("removed".into()),
            ..entry.clone()
        };
        let applied = Applied::resolve(Some(&gone), &profiles).unwrap();
        assert_eq!(applied.set.model, None);
        assert_eq!(applied.fill.service_tier.as_deref(), Some("flex"));
        assert_eq!(Applied::resolve(None, &Profiles::default()), None);
    }
}
