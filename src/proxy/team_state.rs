//! Team mode's shared routing state on a request's path (see [`crate::shared::sync`]): a
//! session this instance has no usable binding for asks the team for one (one bounded read),
//! and a binding made here is handed to the sync to be shared (never waited for).

use crate::proxy::ProxyState;
use crate::proxy::receive::ClientRequest;
use crate::routing::RouteGraph;
use crate::routing::affinity::{AffinityChange, AffinityRecord};
use crate::routing::runtime::RoutingState;
use crate::shared::sync::SyncedRouting;

/// A binding is written again when a session is used in another hour than the last time, so
/// the binding of a thread in use outlives the TTL in Redis.
const REFRESH_MS: u64 = 3_600_000;

impl SyncedRouting for ProxyState {
    fn routing(&self) -> &RoutingState {
        &self.routing
    }

    fn endpoints(&self) -> Vec<String> {
        let plan = self.plan();
        plan.graph
            .upstreams
            .iter()
            .map(|u| u.key().to_string())
            .collect()
    }
}

/// Before selection: when the request's session is not bound here, or its endpoint cannot
/// take this request, the team's binding (if another instance made one) is taken. Waits on
/// Redis at most `[team] redis_wait_ms`; without an answer, the local binding stands.
pub(super) async fn adopt_team_binding(
    state: &ProxyState,
    graph: &RouteGraph,
    request: &ClientRequest,
) {
    let (Some(sync), Some(session)) = (&state.team_sync, &request.session) else {
        return;
    };
    let session = session.value.as_str();
    let local = state.routing.affinity.get(session, &graph.key);
    let model = request.facts.as_ref().and_then(|f| f.model.as_deref());
    if local
        .as_ref()
        .is_some_and(|bound| usable(state, graph, bound, model))
    {
        return;
    }
    let Some(team) = sync.team_binding(session, &graph.key).await else {
        return;
    };
    let replacing = local.as_ref().map(|l| l.upstream.as_str());
    state.routing.affinity.adopt(session, team, replacing);
}

/// Whether the endpoint `bound` names is in the graph and could take the request now.
fn usable(
    state: &ProxyState,
    graph: &RouteGraph,
    bound: &AffinityRecord,
    model: Option<&str>,
) -> bool {
    let now = state.clock().now();
    graph
        .upstreams
        .iter()
        .find(|u| u.key().as_str() == bound.upstream)
        .is_some_and(|u| {
            state
                .routing
                .skip_reason(u, model, false, false, true, now)
                .is_none()
        })
}

/// After a success recorded the session's binding: a new or moved binding (or one last
/// written in another hour, `before`) is queued for the team.
pub(super) fn share_binding(
    state: &ProxyState,
    session: &str,
    graph_key: &str,
    change: Option<AffinityChange>,
    before: Option<&AffinityRecord>,
) {
    let Some(sync) = &state.team_sync else {
        return;
    };
    let now = crate::time::now_ms();
    let refresh = before.is_some_and(|b| b.last_selected_ms / REFRESH_MS != now / REFRESH_MS);
    if change.is_none() && !refresh {
        return;
    }
    if let Some(record) = state.routing.affinity.get(session, graph_key) {
        let first = change == Some(AffinityChange::FirstSuccess);
        sync.share_binding(session, record, first);
    }
}
