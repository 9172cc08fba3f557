//! The values an operator may set for a request (model, reasoning effort, service tier, route
//! target), shared by session overrides and profiles.

use serde::{Deserialize, Serialize};

/// The longest value (model, effort, tier, target, profile, session id) accepted.
pub const VALUE_MAX: usize = 200;

/// Values for a request's fields; `None` leaves the request's own value.
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

    /// `self`'s values over `under`'s.
    pub(super) fn over(&self, under: &Overrides) -> Overrides {
        let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
        Overrides {
            model: pick(&self.model, &under.model),
            reasoning_effort: pick(&self.reasoning_effort, &under.reasoning_effort),
            service_tier: pick(&self.service_tier, &under.service_tier),
            route_target: pick(&self.route_target, &under.route_target),
        }
    }
}

/// A value an operator may set: not empty, not huge, nothing that could break a header or a
/// log line. Models and efforts are otherwise free-form (relays name their own).
pub fn check_value(key: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("`{key}` is empty"));
    }
    if value.len() > VALUE_MAX {
        return Err(format!("`{key}` is longer than {VALUE_MAX} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("`{key}` holds control characters"));
    }
    Ok(())
}
