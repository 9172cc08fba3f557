//! Choosing where a request goes, one candidate at a time: the route graph's candidates for
//! it, why each is unavailable now, the selection (groups, affinity), and claiming the chosen
//! one's concurrency slot and health probe. Shared by HTTP requests ([`super::pipeline`]) and
//! WebSocket connections ([`super::websocket`]); what an attempt is differs, the choice does not.

use crate::proxy::overrides::Overridden;
use crate::proxy::receive::ClientRequest;
use crate::proxy::record::{CandidateNote, RecordGuard, RouteDecision};
use crate::proxy::{Plan, ProxyState};
use crate::record::OverrideNote;
use crate::routing::affinity::AffinityRecord;
use crate::routing::overrides;
use crate::routing::retry::FailureClass;
use crate::routing::runtime::{HealthProbe, Permit};
use crate::routing::select::{self, AffinitySettings, AffinityView, Choice, Skip};
use crate::routing::{Candidate, RequestView, RouteGraph, Upstream};
use crate::shared::permits::Claim;
use crate::time::Millis;

/// What selection knows about one request's candidates, and what the request has learned
/// about them so far.
pub(super) struct Router<'a> {
    pub(super) graph: &'a RouteGraph,
    candidates: Vec<Candidate>,
    model: Option<&'a str>,
    /// The request carries state only its relay can read.
    bound: bool,
    pub(super) session: Option<&'a str>,
    /// The route target the session is pinned to, if any (see [`crate::routing::overrides`]).
    pin: Option<&'a str>,
    /// What the session's overrides changed in the request, for the decision.
    note: Option<&'a OverrideNote>,
    pub(super) affinity: Option<AffinityRecord>,
    affinity_view: Option<AffinityView>,
    settings: AffinitySettings,
    pub(super) tried: Vec<bool>,
    pub(super) saturated: Vec<bool>,
    /// Why the request left the last endpoint it failed on (for the affinity change).
    pub(super) last_failure: Option<FailureClass>,
}

impl<'a> Router<'a> {
    pub(super) fn new(
        state: &ProxyState,
        graph: &'a RouteGraph,
        request: &'a ClientRequest,
        overridden: &'a Overridden,
    ) -> Self {
        let facts = request.facts.as_ref();
        let view = RequestView {
            method: request.method.as_str(),
            path: request.path_and_query.split('?').next().unwrap_or("/"),
            headers: &request.headers,
            model: facts.and_then(|f| f.model.as_deref()),
            service_tier: facts.and_then(|f| f.service_tier.as_deref()),
            reasoning_effort: facts.and_then(|f| f.reasoning_effort.as_deref()),
        };
        let (candidates, pin) =
            overrides::pin(graph, graph.candidates(&view), overridden.pin.as_deref());
        let session = request.session.as_ref().map(|s| s.value.as_str());
        let (affinity, affinity_view) = state.routing.affinity_for(session, graph, &candidates);
        Self {
            graph,
            tried: vec![false; candidates.len()],
            saturated: vec![false; candidates.len()],
            candidates,
            model: facts.and_then(|f| f.model.as_deref()),
            bound: facts.is_some_and(|f| f.relay_bound),
            session,
            pin,
            note: overridden.note.as_ref(),
            affinity,
            affinity_view,
            settings: AffinitySettings::of(graph),
            last_failure: None,
        }
    }

    pub(super) fn upstream(&self, candidate: usize) -> &'a Upstream {
        &self.graph.upstreams[self.candidates[candidate].upstream]
    }

    /// Why each candidate cannot take the request right now, if it cannot.
    pub(super) fn skips(&self, state: &ProxyState, now: Millis) -> Vec<Option<Skip>> {
        (0..self.candidates.len())
            .map(|i| {
                let upstream = self.upstream(i);
                let (tried, saturated) = (self.tried[i], self.saturated[i]);
                let here = self.session_bound_to(upstream);
                state
                    .routing
                    .skip_reason(upstream, self.model, tried, saturated, here, now)
            })
            .collect()
    }

    /// Whether the request's session is bound to `upstream` (a draining endpoint serves it):
    /// by affinity, or by the operator's pin to that very endpoint.
    fn session_bound_to(&self, upstream: &Upstream) -> bool {
        let bound = self.affinity.as_ref().map(|a| a.upstream.as_str());
        overrides::holds_session(upstream, bound, self.pin)
    }

    pub(super) fn select(&self, skips: &[Option<Skip>], now_ms: u64) -> Choice {
        select::select(
            &self.candidates,
            skips,
            self.affinity_view,
            self.settings,
            self.bound,
            now_ms,
        )
    }

    /// Takes candidate `index`'s concurrency slot and its health probe, or notes why it
    /// cannot be had (a full limit group; a half-open probe another request took since the
    /// skip reasons were computed) so that the next selection sees it.
    pub(super) fn claim(
        &mut self,
        state: &ProxyState,
        plan: &Plan,
        index: usize,
        now: Millis,
    ) -> Option<(Permit, HealthProbe)> {
        let upstream = self.upstream(index);
        let Some(permit) = state.routing.acquire(upstream.limit.as_ref()) else {
            self.saturated[index] = true;
            return None;
        };
        let probe = state
            .routing
            .begin(upstream.key(), now, plan.retry.cooldown)?;
        Some((permit, probe))
    }

    /// Team mode: candidate `index`'s slot in its limit group across every instance, held
    /// by `permit` from now on. `false` (and the candidate noted as saturated) when the group
    /// is full across the team; with no global limit, or Redis not answering in time, the
    /// local slot alone holds (see [`crate::shared::permits`]).
    pub(super) async fn claim_global(
        &mut self,
        state: &ProxyState,
        index: usize,
        permit: &mut Permit,
    ) -> bool {
        let permits = state.team_limits.as_ref().and_then(|l| l.permits.as_ref());
        let (Some(permits), Some(limit)) = (permits, self.upstream(index).limit.as_ref()) else {
            return true;
        };
        match permits.claim(&limit.group, limit.max).await {
            Claim::Held(hold) => {
                permit.hold_also(Box::new(hold));
                true
            }
            Claim::Full => {
                self.saturated[index] = true;
                false
            }
            Claim::Unknown => true,
        }
    }

    /// The skip reasons at the state's clock's now, and the selection over them; the first
    /// call also gives `record` its route decision (as things stood when it started). Returns
    /// the clock reading the reasons were read at.
    pub(super) fn choose(
        &self,
        state: &ProxyState,
        record: &mut RecordGuard,
    ) -> (Vec<Option<Skip>>, Choice, Millis) {
        let now = state.clock().now();
        let skips = self.skips(state, now);
        if record.decision.is_none() {
            record.decision = Some(self.decision(&skips));
        }
        // Wall-clock time for the affinity windows, which compare with persisted records.
        let choice = self.select(&skips, crate::time::now_ms());
        (skips, choice, now)
    }

    /// The route decision as it stood when the request started.
    pub(super) fn decision(&self, skips: &[Option<Skip>]) -> RouteDecision {
        RouteDecision {
            graph_key: self.graph.key.clone(),
            affinity_policy: self.graph.affinity_policy,
            affinity: self.affinity.as_ref().map(|a| a.upstream.clone()),
            relay_bound: self.bound,
            pinned: self.pin.map(str::to_string),
            overrides: self.note.cloned(),
            candidates: (0..self.candidates.len())
                .map(|i| CandidateNote {
                    upstream: self.upstream(i).key().to_string(),
                    group: self.candidates[i].group,
                    route_path: self.candidates[i].route_path.clone(),
                    skip: skips[i].clone(),
                })
                .collect(),
            chosen: None,
            why: None,
            affinity_change: None,
        }
    }
}
