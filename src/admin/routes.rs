//! The admin API's routes as one table: the router, `GET /capabilities` and the OpenAPI
//! document are all read from it, so none can list a route the others do not serve.

use http::Method;
use serde_json::{Map, Value, json};

use super::BASE;

/// A route the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Capabilities,
    OpenApi,
    Snapshot,
    RuntimeStatus,
    RuntimeReload,
    RuntimeShutdown,
    Providers,
    ProvidersRuntime,
    RoutingExplain,
    Sessions,
    Session,
    Balances,
    BalancesRefresh,
    LedgerRecent,
    LedgerSummary,
    LedgerSeries,
    LedgerChain,
    UsageForecast,
    RelayCapabilities,
    RelayLiveSmoke,
    RelayEvidence,
    Profiles,
    SessionOverrides,
    SetSessionOverrides,
    SessionProfile,
    Routing,
    PersistDefaultProfile,
    PersistRouting,
    SessionReset,
    Metrics,
}

/// A route's path (under [`BASE`]), method, what it does, and its query parameters.
pub struct Spec {
    pub route: Route,
    pub path: &'static str,
    pub method: Method,
    pub summary: &'static str,
    /// `(name, what it means)`.
    pub query: &'static [(&'static str, &'static str)],
    /// Whether it takes a JSON body.
    pub body: bool,
}

/// Every route.
pub const ROUTES: &[Spec] = &[
    Spec {
        route: Route::Capabilities,
        path: "/capabilities",
        method: Method::GET,
        summary: "The API version, every route, and how access is granted.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::OpenApi,
        path: "/openapi.json",
        method: Method::GET,
        summary: "This API as an OpenAPI 3.1 document.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::Snapshot,
        path: "/snapshot",
        method: Method::GET,
        summary: "One call a console polls: runtime, requests in flight, the last finished ones (model asked and sent, relay, status, tokens, TTFB), sessions, endpoints and why each is skipped, balances, usage of the last hour and day, ledger counters.",
        query: &[(
            "recent",
            "how many finished requests (default 50, at most 200)",
        )],
        body: false,
    },
    Spec {
        route: Route::RuntimeStatus,
        path: "/runtime/status",
        method: Method::GET,
        summary: "The running helper: version, pid, addresses, config file and when it was loaded, the route in force, and `tasks`: the tasks alive on its event loops (steady under steady traffic).",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::RuntimeReload,
        path: "/runtime/reload",
        method: Method::POST,
        summary: "Reloads the config file now; the previous config stays in force when the file is wrong.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::RuntimeShutdown,
        path: "/runtime/shutdown",
        method: Method::POST,
        summary: "Stops the helper gracefully (requests in flight finish; Codex is switched back).",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::Providers,
        path: "/providers",
        method: Method::GET,
        summary: "Every enabled endpoint: its provider, host, and why routing skips it now, if it does.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::ProvidersRuntime,
        path: "/providers/runtime",
        method: Method::POST,
        summary: "Switches endpoints off or on, or drains them, while running; or switches them in the config file. Body: {provider_id, endpoint_id?, enabled? | state?: \"draining\"|\"normal\", minutes?, reason?, persist?}. Off or draining without minutes lasts until switched back or restarted; a draining endpoint takes no new sessions and keeps serving those bound to it; `normal` lifts both. `persist: true` (with `enabled`) writes `enabled` for the provider (or endpoint) into the config file, keeping everything else, and reloads; 409 when the file changed on disk since it was loaded.",
        query: &[],
        body: true,
    },
    Spec {
        route: Route::RoutingExplain,
        path: "/routing/explain",
        method: Method::GET,
        summary: "Which endpoint a request would get now and why every other one is passed over, with the live cooldowns, limits in use, balances and runtime switches.",
        query: &[
            ("model", "the model asked for"),
            ("session", "a session id, for its affinity"),
        ],
        body: false,
    },
    Spec {
        route: Route::Sessions,
        path: "/sessions",
        method: Method::GET,
        summary: "Sessions by last use: where each is bound (endpoint, since when, why it moved) and its requests in the last 24 hours.",
        query: &[("limit", "how many (default 50, at most 1000)")],
        body: false,
    },
    Spec {
        route: Route::Session,
        path: "/sessions/{id}",
        method: Method::GET,
        summary: "One session: its binding, where its next request would go and why, and its recent requests.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::Balances,
        path: "/providers/balances",
        method: Method::GET,
        summary: "Every endpoint's balance as routing sees it now.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::BalancesRefresh,
        path: "/providers/balances/refresh",
        method: Method::POST,
        summary: "Looks balances up now (all providers, or one: `provider_id` in the query or the body).",
        query: &[("provider_id", "one provider only")],
        body: true,
    },
    Spec {
        route: Route::LedgerRecent,
        path: "/request-ledger/recent",
        method: Method::GET,
        summary: "The newest requests from the ledger, newest first: model asked and sent, relay, status, tokens, cost, timings.",
        query: &[
            ("limit", "how many (default 50, at most 1000)"),
            ("provider", "only this provider's"),
            ("model", "only this model (asked or sent)"),
            ("session", "only this session's"),
            ("errors", "`true`: only failed requests"),
        ],
        body: false,
    },
    Spec {
        route: Route::LedgerSummary,
        path: "/request-ledger/summary",
        method: Method::GET,
        summary: "Requests, errors, tokens and cost, grouped, and the last hour's burn forecast (as `usage summary --json` gives them).",
        query: &[
            (
                "since",
                "`30m`, `24h`, `7d` or a local date `YYYY-MM-DD` (default 24h)",
            ),
            (
                "by",
                "`provider` (default), `model`, `session`, `day` or `user`",
            ),
            (
                "balance",
                "remaining USD: how long it lasts at the last hour's rate",
            ),
        ],
        body: false,
    },
    Spec {
        route: Route::LedgerSeries,
        path: "/request-ledger/series",
        method: Method::GET,
        summary: "Requests, errors, tokens, cost and latency/TTFB percentiles over time in fixed buckets (1h: 60 of a minute, 24h: 96 of 15 minutes, 30d: 30 local days, 23 or 25 hours on a DST change), empty ones included.",
        query: &[
            ("window", "`1h` (default), `24h` or `30d`"),
            ("session", "only this session's"),
            ("provider", "only this provider's"),
            (
                "day_starts",
                "30d only: the caller's 31 local midnights (ms since the epoch, comma-separated, the last after today), so days are its own; else the helper's",
            ),
        ],
        body: false,
    },
    Spec {
        route: Route::LedgerChain,
        path: "/request-ledger/chain/{trace_id}",
        method: Method::GET,
        summary: "One request's attempts and route decision, by its trace id.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::UsageForecast,
        path: "/usage/forecast",
        method: Method::GET,
        summary: "Per provider: its balance state and endpoints, and how long the money lasts at the recent spend (from the ledger), as `balance show --json` gives it.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::RelayCapabilities,
        path: "/codex/relay-capabilities",
        method: Method::POST,
        summary: "Probes relays for what Codex needs and recommends a preset (nothing spent). Body: {provider_id?, endpoint_id?, model?, preset?, compaction?, image?, timeout_secs?}.",
        query: &[],
        body: true,
    },
    Spec {
        route: Route::RelayLiveSmoke,
        path: "/codex/relay-live-smoke",
        method: Method::POST,
        summary: "Small real model calls on one endpoint (they may cost money). Body: {acknowledgement, model, provider_id?, endpoint_id?, image?, compact_v2?, websocket?, timeout_secs?}; refused before any request without the acknowledgement.",
        query: &[],
        body: true,
    },
    Spec {
        route: Route::RelayEvidence,
        path: "/codex/relay-evidence",
        method: Method::GET,
        summary: "The relay diagnostics' evidence records, newest first.",
        query: &[
            ("limit", "how many (default 20, 0: all)"),
            ("provider", "only this provider's"),
            ("kind", "`capabilities` or `live_smoke`"),
        ],
        body: false,
    },
    Spec {
        route: Route::Profiles,
        path: "/profiles",
        method: Method::GET,
        summary: "The profiles of the config in force (`extends` resolved) and the default profile, which fills in what a request leaves out.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::SessionOverrides,
        path: "/overrides/session",
        method: Method::GET,
        summary: "Every session with overrides: model, reasoning effort, service tier, route target (pin), profile.",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::SetSessionOverrides,
        path: "/overrides/session",
        method: Method::POST,
        summary: "Sets or clears a session's overrides, applied to its next requests before routing and model mapping. Body: {session_id, model?, reasoning_effort?, service_tier?, route_target? (provider or provider.endpoint), clear?: [model|reasoning_effort|service_tier|route_target|all]}.",
        query: &[],
        body: true,
    },
    Spec {
        route: Route::SessionProfile,
        path: "/overrides/session/profile",
        method: Method::POST,
        summary: "Applies a profile to a session (its manual overrides are cleared) or removes it. Body: {session_id, profile: name | null}.",
        query: &[],
        body: true,
    },
    Spec {
        route: Route::Routing,
        path: "/routing",
        method: Method::GET,
        summary: "The route graph in force as the proxy compiled it: graph key, entry, affinity policy and its windows, every node (strategy, children, tags, condition with header names only) and every endpoint (host, tags, limit group) with its live state: routable or why not, and its runtime switches (off, draining).",
        query: &[],
        body: false,
    },
    Spec {
        route: Route::PersistDefaultProfile,
        path: "/profiles/default/persisted",
        method: Method::POST,
        summary: "Writes `[codex] default_profile` into the config file (format kept, `.bak` beside it) and reloads; 409 when the file changed on disk since the config in force was loaded. Body: {profile: name | null}.",
        query: &[],
        body: true,
    },
    Spec {
        route: Route::PersistRouting,
        path: "/routing/persisted",
        method: Method::POST,
        summary: "Edits the entry route node in the config file as `routing order|pin|prefer` do, then reloads; 409 when the file changed on disk since it was loaded. Body: exactly one of {order: [child, ...]}, {pin: child}, {prefer_tags: {key: value}, order?: [...], on_exhausted?: continue|stop}.",
        query: &[],
        body: true,
    },
    Spec {
        route: Route::SessionReset,
        path: "/overrides/session/reset",
        method: Method::POST,
        summary: "Clears every override of a session, its profile included. Body: {session_id}.",
        query: &[],
        body: true,
    },
    Spec {
        route: Route::Metrics,
        path: "/metrics",
        method: Method::GET,
        summary: "Prometheus metrics in the text exposition format 0.0.4 (`text/plain; version=0.0.4`): requests by endpoint, status and outcome; attempts and failovers; time to first byte, duration and proxy overhead histograms; open streams and connections; the ledger's queue and lost rows; balance states; build info.",
        query: &[],
        body: false,
    },
];

/// Whether `path` is `spec`'s, and the value of its `{…}` segment if it has one.
pub fn matches(spec: &Spec, path: &str) -> Option<Option<String>> {
    let full = full_path(spec);
    if !full.contains('{') {
        return (full == path).then_some(None);
    }
    let (want, got): (Vec<&str>, Vec<&str>) =
        (full.split('/').collect(), path.split('/').collect());
    if want.len() != got.len() {
        return None;
    }
    let mut value = None;
    for (w, g) in want.iter().zip(&got) {
        if w.starts_with('{') {
            if g.is_empty() {
                return None;
            }
            value = Some((*g).to_string());
        } else if w != g {
            return None;
        }
    }
    value.map(Some)
}

/// The full path of a route.
pub fn full_path(spec: &Spec) -> String {
    format!("{BASE}{}", spec.path)
}

/// The routes as `GET /capabilities` lists them.
pub fn listing() -> Vec<Value> {
    ROUTES
        .iter()
        .map(|s| json!({"method": s.method.as_str(), "path": full_path(s), "summary": s.summary}))
        .collect()
}

/// The OpenAPI document: every route with its method, summary, parameters, body and the one
/// error shape.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for spec in ROUTES {
        let parameters: Vec<Value> = spec
            .query
            .iter()
            .map(|(name, description)| {
                json!({"name": name, "in": "query", "required": false,
                       "description": description, "schema": {"type": "string"}})
            })
            .collect();
        let mut operation = json!({
            "summary": spec.summary,
            "operationId": operation_id(spec),
            "responses": {
                "200": {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}},
                "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if spec.route == Route::Metrics {
            operation["responses"]["200"]["content"] =
                json!({"text/plain; version=0.0.4": {"schema": {"type": "string"}}});
        }
        if spec.body {
            operation["requestBody"] = json!({"required": false,
                "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths
            .entry(full_path(spec))
            .or_insert_with(|| Value::Object(Map::new()));
        entry[spec.method.as_str().to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "codex-helper admin API", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "http://127.0.0.1:4211"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}}}},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                "description": "CODEX_HELPER_ADMIN_TOKEN; needed only from a non-loopback client"}},
        },
    })
}

fn operation_id(spec: &Spec) -> String {
    let words: Vec<String> = spec
        .path
        .split(['/', '-', '.', '{', '}'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    format!(
        "{}{}",
        spec.method.as_str().to_ascii_lowercase(),
        words.join("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_parameter_matches_one_whole_segment() {
        let session = ROUTES.iter().find(|s| s.route == Route::Session).unwrap();
        let base = format!("{BASE}/sessions/");
        assert_eq!(
            matches(session, &format!("{base}abc")),
            Some(Some("abc".into()))
        );
        assert_eq!(matches(session, &base), None);
        assert_eq!(matches(session, &format!("{base}a/b")), None);
        assert_eq!(matches(session, &format!("{BASE}/session/abc")), None);
        let plain = ROUTES.iter().find(|s| s.route == Route::Sessions).unwrap();
        assert_eq!(matches(plain, &format!("{BASE}/sessions")), Some(None));
        assert_eq!(matches(plain, &format!("{BASE}/sessions/")), None);
    }

    #[test]
    fn every_route_is_listed_once_and_documented() {
        let doc = openapi();
        for spec in ROUTES {
            let method = spec.method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][full_path(spec)][&method].is_object(),
                "{} {}",
                spec.method,
                spec.path
            );
            let same = ROUTES
                .iter()
                .filter(|s| s.path == spec.path && s.method == spec.method)
                .count();
            assert_eq!(same, 1, "{} listed twice", spec.path);
        }
        let ids: std::collections::HashSet<String> = ROUTES.iter().map(operation_id).collect();
        assert_eq!(ids.len(), ROUTES.len(), "operation ids are unique");
        assert_eq!(operation_id(&ROUTES[1]), "getOpenapiJson");
    }

    #[test]
    fn metrics_are_documented_as_the_prometheus_text_format() {
        let doc = openapi();
        let content =
            &doc["paths"][format!("{BASE}/metrics")]["get"]["responses"]["200"]["content"];
        assert!(
            content["text/plain; version=0.0.4"].is_object(),
            "{content}"
        );
        assert!(content["application/json"].is_null(), "{content}");
    }
}
