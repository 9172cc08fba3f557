//! The route graph as the admin API shows it (`GET /routing`): entry, affinity policy and its
//! windows, every node with its strategy and children, and every endpoint. A plain copy of the
//! compiled graph, so the nodes stay private to [`super`] and the view cannot drift from what
//! selection walks. Nothing secret is in it: no credential, and a `conditional` node's header
//! conditions by name only (a value may be a token).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Node, Ref, RouteGraph};
use crate::config::model::AffinityPolicy;

/// The whole graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphView {
    /// The graph key that session affinity is stored under.
    pub key: String,
    pub entry: String,
    pub affinity_policy: AffinityPolicy,
    pub fallback_ttl_ms: Option<u64>,
    pub reprobe_preferred_after_ms: Option<u64>,
    /// Every route node, in name order (the implicit one when the config has none).
    pub nodes: Vec<NodeView>,
    /// Every enabled endpoint of every enabled provider, in the graph's order.
    pub upstreams: Vec<UpstreamView>,
}

/// One route node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    /// The config's name: `ordered-failover`, `tag-preferred`, `manual-sticky`, `conditional`.
    pub strategy: String,
    /// In the order they are tried (`tag-preferred`: as configured, before tag ordering).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<RefView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer_tags: Option<Vec<BTreeMap<String, String>>>,
    /// `tag-preferred`: `continue` or `stop` when no preferred child is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exhausted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RefView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<ConditionView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<RefView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<RefView>,
}

/// What a node points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RefView {
    /// A whole provider: its enabled endpoints (`provider.endpoint`), none when it is disabled.
    Provider {
        name: String,
        endpoints: Vec<String>,
    },
    /// One endpoint; `enabled` is false when it (or its provider) is disabled in the config.
    Endpoint {
        name: String,
        enabled: bool,
    },
    Node {
        name: String,
    },
}

/// A `conditional` node's `when`: header conditions by name only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionView {
    pub model: Option<String>,
    pub path: Option<String>,
    pub method: Option<String>,
    pub service_tier: Option<String>,
    pub reasoning_effort: Option<String>,
    /// Header names that must carry their configured values (the values are not shown).
    pub headers: Vec<String>,
}

/// One endpoint as configured (its live state is the caller's to add).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamView {
    /// `provider.endpoint`.
    pub key: String,
    pub provider: String,
    pub endpoint: String,
    pub base_url: String,
    pub host: String,
    pub tags: BTreeMap<String, String>,
    pub limit: Option<LimitView>,
    pub price_multiplier: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitView {
    pub max: u32,
    pub group: String,
}

/// The graph as [`GraphView`].
pub fn view(graph: &RouteGraph) -> GraphView {
    let reference = |r: &Ref| match r {
        Ref::Provider(name) => RefView::Provider {
            name: name.clone(),
            endpoints: graph.by_provider[name]
                .iter()
                .map(|&u| graph.upstreams[u].key().to_string())
                .collect(),
        },
        Ref::Endpoint { name, upstream } => RefView::Endpoint {
            name: name.clone(),
            enabled: upstream.is_some(),
        },
        Ref::Node(name) => RefView::Node { name: name.clone() },
    };
    let blank = |name: &str, strategy: &str| NodeView {
        name: name.to_string(),
        strategy: strategy.to_string(),
        children: Vec::new(),
        prefer_tags: None,
        on_exhausted: None,
        target: None,
        when: None,
        then: None,
        default: None,
    };
    let nodes = graph
        .nodes
        .iter()
        .map(|(name, node)| match node {
            Node::Ordered(children) => NodeView {
                children: children.iter().map(reference).collect(),
                ..blank(name, "ordered-failover")
            },
            Node::TagPreferred {
                children,
                prefer,
                stop,
            } => NodeView {
                children: children.iter().map(reference).collect(),
                prefer_tags: Some(prefer.clone()),
                on_exhausted: Some(if *stop { "stop" } else { "continue" }.to_string()),
                ..blank(name, "tag-preferred")
            },
            Node::Sticky { target } => NodeView {
                target: Some(reference(target)),
                ..blank(name, "manual-sticky")
            },
            Node::Conditional {
                when,
                then,
                default,
            } => NodeView {
                when: Some(ConditionView {
                    model: when.model.clone(),
                    path: when.path.clone(),
                    method: when.method.clone(),
                    service_tier: when.service_tier.clone(),
                    reasoning_effort: when.reasoning_effort.clone(),
                    headers: when.headers.keys().cloned().collect(),
                }),
                then: Some(reference(then)),
                default: Some(reference(default)),
                ..blank(name, "conditional")
            },
        })
        .collect();
    let upstreams = graph
        .upstreams
        .iter()
        .map(|u| UpstreamView {
            key: u.key().to_string(),
            provider: u.provider.clone(),
            endpoint: u.endpoint.clone(),
            base_url: u.base_url.to_string(),
            host: u.base_url.host().to_string(),
            tags: u.tags.clone(),
            limit: u.limit.as_ref().map(|l| LimitView {
                max: l.max,
                group: l.group.clone(),
            }),
            price_multiplier: u.price_multiplier,
        })
        .collect();
    GraphView {
        key: graph.key.clone(),
        entry: graph.entry.clone(),
        affinity_policy: graph.affinity_policy,
        fallback_ttl_ms: graph.fallback_ttl_ms,
        reprobe_preferred_after_ms: graph.reprobe_preferred_after_ms,
        nodes,
        upstreams,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load::parse;

    fn graph(text: &str) -> RouteGraph {
        let file = Path::new("config.toml");
        let loaded = parse(file, &format!("version = 5\n{text}")).unwrap();
        let env = |name: &str| (name == "A_KEY").then(|| "sk-secret-a".to_string());
        super::super::compile(&loaded.config.codex, file, &env, &Default::default()).unwrap()
    }

    const CONFIG: &str = r#"
[codex.providers.a]
auth_token_env = "A_KEY"
tags = { billing = "monthly" }
limits = { max_concurrent_requests = 2, limit_group = "acct" }
[codex.providers.a.endpoints.hk]
base_url = "https://hk.a.example/v1"
[codex.providers.a.endpoints.us]
base_url = "https://us.a.example/v1"
enabled = false
[codex.providers.b]
base_url = "http://127.0.0.1:9000"
[codex.routing]
entry = "main"
affinity_policy = "preferred-group"
fallback_ttl_ms = 60000
[codex.routing.routes.main]
strategy = "conditional"
when = { model = "gpt-5", headers = { "x-team" = "t0ken-value" } }
then = "pool"
default = "b"
[codex.routing.routes.pool]
strategy = "tag-preferred"
prefer_tags = [{ billing = "monthly" }]
on_exhausted = "stop"
children = ["a.hk", "a.us", "b"]
"#;

    #[test]
    fn the_view_shows_nodes_references_and_endpoints() {
        let g = graph(CONFIG);
        let v = view(&g);
        assert_eq!(v.entry, "main");
        assert_eq!(v.key, g.key);
        assert_eq!(v.affinity_policy, AffinityPolicy::PreferredGroup);
        assert_eq!(v.fallback_ttl_ms, Some(60_000));
        let names: Vec<&str> = v.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["main", "pool"]);
        let main = &v.nodes[0];
        assert_eq!(main.strategy, "conditional");
        let when = main.when.as_ref().unwrap();
        assert_eq!(when.model.as_deref(), Some("gpt-5"));
        assert_eq!(when.headers, ["x-team"]);
        assert_eq!(
            main.then,
            Some(RefView::Node {
                name: "pool".into()
            })
        );
        assert_eq!(
            main.default,
            Some(RefView::Provider {
                name: "b".into(),
                endpoints: vec!["b.default".into()]
            })
        );
        let pool = &v.nodes[1];
        assert_eq!(pool.strategy, "tag-preferred");
        assert_eq!(pool.on_exhausted.as_deref(), Some("stop"));
        assert_eq!(
            pool.children,
            [
                RefView::Endpoint {
                    name: "a.hk".into(),
                    enabled: true
                },
                RefView::Endpoint {
                    name: "a.us".into(),
                    enabled: false
                },
                RefView::Provider {
                    name: "b".into(),
                    endpoints: vec!["b.default".into()]
                },
            ]
        );
        let keys: Vec<&str> = v.upstreams.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["a.hk", "b.default"], "enabled endpoints only");
        let hk = &v.upstreams[0];
        assert_eq!(hk.host, "hk.a.example");
        assert_eq!(hk.tags["billing"], "monthly");
        assert_eq!(
            hk.limit,
            Some(LimitView {
                max: 2,
                group: "acct".into()
            })
        );
        let text = serde_json::to_string(&v).unwrap();
        assert!(!text.contains("sk-secret-a"), "no key: {text}");
        assert!(!text.contains("t0ken-value"), "no header value: {text}");
        let back: GraphView = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn without_routes_the_implicit_node_orders_every_provider() {
        let g = graph(
            "[codex.providers.z]\nbase_url = \"http://z.example\"\n[codex.providers.y]\nbase_url = \"http://y.example\"\n",
        );
        let v = view(&g);
        assert_eq!(v.entry, super::super::IMPLICIT_ENTRY);
        assert_eq!(v.nodes.len(), 1);
        assert_eq!(v.nodes[0].strategy, "ordered-failover");
        let children: Vec<&RefView> = v.nodes[0].children.iter().collect();
        assert!(matches!(children[0], RefView::Provider { name, .. } if name == "y"));
        assert!(matches!(children[1], RefView::Provider { name, .. } if name == "z"));
        assert!(v.nodes[0].target.is_none() && v.nodes[0].when.is_none());
    }
}
