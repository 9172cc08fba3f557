//! Phase 2b of a request: the session's overrides (an operator's, a profile's, the default
//! profile's) applied before routing and model mapping, so that both see the model the request
//! will really ask for. See [`crate::routing::overrides`] for what wins over what.

use http::Method;

use super::receive::ClientRequest;
use super::{Plan, ProxyState};
use crate::record::OverrideNote;
use crate::routing::overrides::{Applied, Patched};

/// What the overrides did to one request.
#[derive(Debug, Default)]
pub struct Overridden {
    /// The route target the session is pinned to.
    pub pin: Option<String>,
    /// What changed in the body, for the record.
    pub note: Option<OverrideNote>,
}

/// Bodies past this size are patched on a blocking thread: it is a parse of the whole body.
const PATCH_INLINE_MAX: usize = 1 << 20;

/// Applies the session's overrides to `request`: its body patched (a Responses request with
/// a JSON body only), and the route target it is pinned to.
pub async fn apply(
    state: &ProxyState,
    plan: &Plan,
    request: ClientRequest,
) -> (ClientRequest, Overridden) {
    let Some(applied) = resolve(state, plan, &request) else {
        return (request, Overridden::default());
    };
    let done = Overridden::pin_of(&applied);
    if !patchable(&request) {
        return (request, done);
    }
    if request.body.len() <= PATCH_INLINE_MAX {
        return patch(applied, request, done);
    }
    tokio::task::spawn_blocking(move || patch(applied, request, done))
        .await
        .expect("patching a body is pure and does not panic")
}

/// The request with its body patched and identified again, and what changed.
fn patch(
    applied: Applied,
    request: ClientRequest,
    done: Overridden,
) -> (ClientRequest, Overridden) {
    let Some(patched) = applied.patch_body(&request.body) else {
        return (request, done);
    };
    let (body, note) = note_of(&applied, patched);
    let ClientRequest {
        method,
        path_and_query,
        headers,
        body_decoded,
        ..
    } = request;
    let patched =
        ClientRequest::prepare(method, path_and_query, headers, body.into(), body_decoded);
    (
        patched,
        Overridden {
            note: Some(note),
            ..done
        },
    )
}

/// The patched body and what the record says of it: the fields changed, and the profile
/// behind them (the default profile only when it filled something).
pub fn note_of(applied: &Applied, patched: Patched) -> (Vec<u8>, OverrideNote) {
    let profile = applied
        .profile
        .clone()
        .filter(|_| applied.fill.is_empty() || patched.filled);
    let note = OverrideNote {
        profile,
        changed: patched.changed,
    };
    (patched.body, note)
}

/// What a session's request gets from its overrides and the profiles in force, if anything.
pub fn resolve_session(state: &ProxyState, plan: &Plan, session: Option<&str>) -> Option<Applied> {
    let entry = session.and_then(|s| state.overrides.get(s));
    Applied::resolve(entry.as_ref(), &plan.profiles)
}

/// What the request's session gets from its overrides and the profiles in force, if anything.
pub fn resolve(state: &ProxyState, plan: &Plan, request: &ClientRequest) -> Option<Applied> {
    let session = request.session.as_ref().map(|s| s.value.as_str());
    resolve_session(state, plan, session)
}

impl Overridden {
    /// Only the route pin of `applied` (a request whose body is not patched).
    pub fn pin_of(applied: &Applied) -> Self {
        Overridden {
            pin: applied.set.route_target.clone(),
            note: None,
        }
    }
}

/// A Responses call (`POST …/responses`, `…/responses/compact`) whose body was read as JSON.
fn patchable(request: &ClientRequest) -> bool {
    let path = request.path_and_query.split('?').next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    request.method == Method::POST
        && request.facts.is_some()
        && (path.ends_with("/responses") || path.ends_with("/responses/compact"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::overrides::Overrides;

    #[test]
    fn the_default_profile_is_named_only_when_it_filled_something() {
        let applied = Applied {
            set: Overrides {
                model: Some("big".into()),
                ..Overrides::default()
            },
            fill: Overrides {
                service_tier: Some("flex".into()),
                ..Overrides::default()
            },
            profile: Some("base".into()),
        };
        // The request had its tier: only the manual model changed.
        let patched = applied
            .patch_body(br#"{"model":"m","service_tier":"priority"}"#)
            .unwrap();
        let (_, note) = note_of(&applied, patched);
        assert_eq!((note.profile, note.changed), (None, vec!["model"]));
        let patched = applied.patch_body(br#"{"model":"m"}"#).unwrap();
        let (_, note) = note_of(&applied, patched);
        assert_eq!(note.profile.as_deref(), Some("base"));
        assert_eq!(note.changed, ["model", "service_tier"]);
    }
}
