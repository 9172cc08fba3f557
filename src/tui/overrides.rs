//! A session's overrides as the Sessions page reads and changes them: the sessions and
//! profiles the admin API lists, and each change a key makes as the route and JSON body of
//! the session-overrides contract.

use serde::Deserialize;
use serde_json::{Value, json};

/// One session of `GET /sessions`: where it is bound, its last day, its overrides. Read
/// leniently: an older helper leaves fields out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Session {
    pub session: String,
    /// `provider.endpoint`, or `None` before its first routed request (overrides only).
    pub upstream: Option<String>,
    /// Whether the binding was made under the routing config in force now.
    pub current_graph: bool,
    pub last_selected_ms: Option<u64>,
    pub last_changed_ms: Option<u64>,
    pub change_reason: Option<String>,
    pub requests_24h: u64,
    pub errors_24h: u64,
    pub tokens_24h: u64,
    pub cost_usd_24h: f64,
    pub overrides: Option<Overrides>,
}

impl Session {
    /// Whether any override is in force.
    pub fn overridden(&self) -> bool {
        self.overrides.as_ref().is_some_and(|o| !o.is_empty())
    }
}

/// A session's overrides, as `GET /sessions` and the override routes answer them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Overrides {
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub service_tier: Option<String>,
    pub route_target: Option<String>,
    pub profile: Option<String>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self == &Overrides::default()
    }
}

/// `GET /profiles`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Profiles {
    pub default_profile: Option<String>,
    pub profiles: Vec<Profile>,
}

/// One named set of overrides a session can take.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub name: String,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub service_tier: Option<String>,
}

/// A reasoning effort the keys set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Low,
    Medium,
    High,
    XHigh,
}

impl Effort {
    /// As the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::XHigh => "xhigh",
        }
    }
}

/// What a session action changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    Effort(Effort),
    ClearEffort,
    /// Pin to `provider` or `provider.endpoint`.
    Pin(String),
    ClearPin,
    /// Every override off.
    ResetAll,
    /// Apply a profile (which clears the manual overrides), or remove it (`None`).
    Profile(Option<String>),
}

impl SessionChange {
    /// The admin route and JSON body that make this change to `session`.
    pub fn request(&self, session: &str) -> (&'static str, Value) {
        const OVERRIDES: &str = "/overrides/session";
        let clear = |field: &str| json!({"session_id": session, "clear": [field]});
        match self {
            SessionChange::Effort(effort) => (
                OVERRIDES,
                json!({"session_id": session, "reasoning_effort": effort.as_str()}),
            ),
            SessionChange::ClearEffort => (OVERRIDES, clear("reasoning_effort")),
            SessionChange::Pin(target) => (
                OVERRIDES,
                json!({"session_id": session, "route_target": target}),
            ),
            SessionChange::ClearPin => (OVERRIDES, clear("route_target")),
            SessionChange::ResetAll => (OVERRIDES, clear("all")),
            SessionChange::Profile(profile) => (
                "/overrides/session/profile",
                json!({"session_id": session, "profile": profile}),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_change_is_the_route_and_body_of_the_contract() {
        let s = "019a-s1";
        let cases = [
            (
                SessionChange::Effort(Effort::XHigh),
                "/overrides/session",
                json!({"session_id": s, "reasoning_effort": "xhigh"}),
            ),
            (
                SessionChange::ClearEffort,
                "/overrides/session",
                json!({"session_id": s, "clear": ["reasoning_effort"]}),
            ),
            (
                SessionChange::Pin("alpha.default".into()),
                "/overrides/session",
                json!({"session_id": s, "route_target": "alpha.default"}),
            ),
            (
                SessionChange::ClearPin,
                "/overrides/session",
                json!({"session_id": s, "clear": ["route_target"]}),
            ),
            (
                SessionChange::ResetAll,
                "/overrides/session",
                json!({"session_id": s, "clear": ["all"]}),
            ),
            (
                SessionChange::Profile(Some("fast".into())),
                "/overrides/session/profile",
                json!({"session_id": s, "profile": "fast"}),
            ),
            (
                SessionChange::Profile(None),
                "/overrides/session/profile",
                json!({"session_id": s, "profile": null}),
            ),
        ];
        for (change, route, body) in cases {
            assert_eq!(change.request(s), (route, body), "{change:?}");
        }
    }

    #[test]
    fn a_session_without_overrides_or_with_empty_ones_is_not_overridden() {
        let today: Session = serde_json::from_value(json!({"session": "a", "upstream": "p.e",
            "current_graph": true, "last_selected_ms": 5, "requests_24h": 3}))
        .unwrap();
        assert!(!today.overridden());
        assert_eq!(today.requests_24h, 3);
        let empty: Session = serde_json::from_value(json!({"session": "b", "upstream": null,
            "overrides": {"model": null}}))
        .unwrap();
        assert!(!empty.overridden());
        let pinned: Session =
            serde_json::from_value(json!({"session": "c", "overrides": {"route_target": "alpha"}}))
                .unwrap();
        assert!(pinned.overridden());
    }
}
