//! `routing explain`: which candidate a request would get now, and why every other one would
//! be passed over. Uses the same candidate expansion, skip reasons and selection as the proxy.

use serde::{Deserialize, Serialize};

use super::affinity::AffinityRecord;
use super::graph::{Candidate, RequestView, RouteGraph};
use super::runtime::RoutingState;
use super::select::{self, Choice, Skip, Why};
use crate::config::model::AffinityPolicy;

/// One candidate as `explain` sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExplainedCandidate {
    pub upstream: String,
    pub base_url: String,
    /// How the relay is reached: `direct (…)` or `via URL (…)`, credentials hidden.
    pub outbound: String,
    /// Whether that is through an outbound proxy.
    pub proxied: bool,
    pub group: usize,
    pub route_path: Vec<String>,
    pub skip: Option<Skip>,
    /// Human text for `skip`.
    pub skip_reason: Option<String>,
}

/// The answer of `routing explain`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    pub graph_key: String,
    pub entry: String,
    pub affinity_policy: AffinityPolicy,
    pub model: Option<String>,
    pub session: Option<String>,
    /// The route target the session is pinned to (its candidates are that target's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// The session's current binding under this graph.
    pub affinity: Option<AffinityRecord>,
    pub candidates: Vec<ExplainedCandidate>,
    pub chosen: Option<String>,
    pub why: Option<Why>,
    /// The session's endpoint is unavailable under a `hard` policy.
    pub continuity_broken: bool,
}

/// The request `explain` is asked about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Question<'a> {
    pub model: Option<&'a str>,
    pub session: Option<&'a str>,
    /// The route target the session is pinned to.
    pub pin: Option<&'a str>,
}

/// Explains a `POST /v1/responses` as `question` describes it. Skip reasons are read at the
/// state's clock's now; `now_ms` (wall-clock epoch ms) is for the affinity windows.
pub fn explain(
    graph: &RouteGraph,
    state: &RoutingState,
    question: Question<'_>,
    now_ms: u64,
) -> Explanation {
    let (model, session, pin) = (question.model, question.session, question.pin);
    let headers = http::HeaderMap::new();
    let view = RequestView {
        method: "POST",
        path: "/v1/responses",
        headers: &headers,
        model,
        service_tier: None,
        reasoning_effort: None,
    };
    let (candidates, pin) = super::overrides::pin(graph, graph.candidates(&view), pin);
    let (affinity, affinity_view) = state.affinity_for(session, graph, &candidates);
    let now = state.clock().now();
    let bound = affinity.as_ref().map(|a| a.upstream.as_str());
    let skips: Vec<Option<Skip>> = candidates
        .iter()
        .map(|c| {
            let upstream = &graph.upstreams[c.upstream];
            let here = super::overrides::holds_session(upstream, bound, pin);
            state.skip_reason(
                upstream,
                model,
                false,
                saturated(state, upstream),
                here,
                now,
            )
        })
        .collect();
    let settings = super::select::AffinitySettings::of(graph);
    let choice = select::select(&candidates, &skips, affinity_view, settings, false, now_ms);
    let (chosen, why, continuity_broken) = verdict(graph, &candidates, choice);
    Explanation {
        graph_key: graph.key.clone(),
        entry: graph.entry.clone(),
        affinity_policy: graph.affinity_policy,
        model: model.map(str::to_string),
        session: session.map(str::to_string),
        pinned: pin.map(str::to_string),
        affinity,
        candidates: candidates
            .iter()
            .zip(skips)
            .map(|(candidate, skip)| ExplainedCandidate::new(graph, candidate, skip))
            .collect(),
        chosen,
        why,
        continuity_broken,
    }
}

/// The endpoint chosen and why, and whether the session's continuity is broken.
fn verdict(
    graph: &RouteGraph,
    candidates: &[Candidate],
    choice: Choice,
) -> (Option<String>, Option<Why>, bool) {
    match choice {
        Choice::Pick { candidate, why } => {
            let upstream = &graph.upstreams[candidates[candidate].upstream];
            (Some(upstream.key().to_string()), Some(why), false)
        }
        Choice::None => (None, None, false),
        Choice::ContinuityBroken { .. } => (None, None, true),
    }
}

/// Whether `upstream`'s concurrency limit is reached. Requests in flight are counted where
/// the proxy runs (elsewhere, none are).
fn saturated(state: &RoutingState, upstream: &super::Upstream) -> bool {
    let limit = upstream.limit.as_ref();
    limit.is_some_and(|l| state.in_flight(&l.group) >= l.max)
}

impl ExplainedCandidate {
    fn new(graph: &RouteGraph, candidate: &Candidate, skip: Option<Skip>) -> Self {
        let upstream = &graph.upstreams[candidate.upstream];
        Self {
            upstream: upstream.key().to_string(),
            base_url: upstream.base_url.to_string(),
            outbound: upstream.outbound.to_string(),
            proxied: upstream.outbound.route.proxy().is_some(),
            group: candidate.group,
            route_path: candidate.route_path.clone(),
            skip_reason: skip.as_ref().map(Skip::describe),
            skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::routing::affinity::AffinityStore;
    use crate::time::Clock;

    #[test]
    fn a_draining_endpoint_is_explained_per_session() {
        let file = Path::new("config.toml");
        let text = "version = 5\n[codex.providers.a]\nbase_url = \"http://a.example\"\n[codex.providers.b]\nbase_url = \"http://b.example\"\n";
        let loaded = crate::config::load::parse(file, text).unwrap();
        let graph =
            crate::routing::compile(&loaded.config.codex, file, &|_| None, &Default::default())
                .unwrap();
        let state = RoutingState::new(AffinityStore::in_memory(), Clock::manual());
        state
            .affinity
            .record_success("bound", &graph.key, "a.default", 1_000, None);
        state.set_draining("a.default", Some(("emptying".into(), None)));

        let new = explain(
            &graph,
            &state,
            Question {
                model: None,
                session: Some("new"),
                pin: None,
            },
            2_000,
        );
        assert_eq!(new.chosen.as_deref(), Some("b.default"));
        assert_eq!(
            new.candidates[0].skip_reason.as_deref(),
            Some("draining (no new sessions): emptying")
        );
        let bound = explain(
            &graph,
            &state,
            Question {
                model: None,
                session: Some("bound"),
                pin: None,
            },
            2_000,
        );
        assert_eq!(bound.chosen.as_deref(), Some("a.default"));
        assert_eq!(bound.why, Some(Why::Affinity));
        assert_eq!(bound.candidates[0].skip, None);
        // A session the operator pinned to that endpoint is served too; a pin to a target
        // gone from the config pins nothing and is not reported.
        let ask = |pin| Question {
            model: None,
            session: Some("pinned"),
            pin: Some(pin),
        };
        let pinned = explain(&graph, &state, ask("a.default"), 2_000);
        assert_eq!(pinned.chosen.as_deref(), Some("a.default"));
        assert_eq!(pinned.candidates.len(), 1);
        let gone = explain(&graph, &state, ask("gone"), 2_000);
        assert_eq!(gone.pinned, None);
        assert_eq!(gone.chosen.as_deref(), Some("b.default"));
    }
}
