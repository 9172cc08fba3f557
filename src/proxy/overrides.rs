//! Phase 2b of a request: the session's overrides (an operator's, a profile's, the default
//! profile's) applied before routing and model mapping, so that both see the model the request
//! will really ask for. See [`crate::routing::overrides`] for what wins over what.

use http::Method;

use super::receive::ClientRequest;
use super::{Plan, ProxyState};
use crate::record::OverrideNote;
use crate::routing::overrides::Applied;

/// What the overrides did to one request.
#[derive(Debug, Default)]
pub struct Overridden {
    /// The route target the session is pinned to.
    pub pin: Option<String>,
    /// What changed in the body, for the record.
    pub note: Option<OverrideNote>,
}

/// Applies the session's overrides to `request`: its body patched (a Responses request with
/// a JSON body only), and the route target it is pinned to.
pub fn apply(
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
    let Some((body, changed)) = applied.patch_body(&request.body) else {
        return (request, done);
    };
    let note = OverrideNote {
        profile: applied.profile.clone(),
        changed,
    };
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

/// What the request's session gets from its overrides and the profiles in force, if anything.
pub fn resolve(state: &ProxyState, plan: &Plan, request: &ClientRequest) -> Option<Applied> {
    let session = request.session.as_ref().map(|s| s.value.as_str());
    let entry = session.and_then(|s| state.overrides.get(s));
    Applied::resolve(entry.as_ref(), &plan.profiles)
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
