//! The route graph: providers and route nodes compiled into a checked structure that expands,
//! for a given request, into an ordered list of candidate endpoints with preference groups.
//!
//! Pure: config and an environment lookup in, a [`RouteGraph`] or a [`ConfigError`] out.
//!
//! **Preference groups.** The node that orders the route (the entry, or the first node under
//! it that is not `manual-sticky` or `conditional`) defines the groups: each of its children is
//! one group, in the order it is tried. So in `main = [monthly_pool, paygo]` every endpoint of
//! `monthly_pool` shares group 0, and `preferred-group` affinity keeps a session inside the pool
//! while it moves back to the pool as soon as any of it is available again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use http::HeaderMap;

use crate::config::load::ConfigError;
use crate::config::model::{AffinityPolicy, CodexSection, OnExhausted, RouteNode, Strategy, When};

use super::endpoints::{EnvLookup, provider_endpoints};
use super::outbound::OutboundDefaults;
use super::upstream::Upstream;

mod view;
pub use view::{ConditionView, GraphView, LimitView, NodeView, RefView, UpstreamView, view};

/// Name of the implicit entry node when the config has no route graph.
pub const IMPLICIT_ENTRY: &str = "(all providers)";

/// A reference from a node to what it routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ref {
    /// Every enabled endpoint of a provider (none when the provider is disabled).
    Provider(String),
    /// One endpoint: an index into `upstreams`, or `None` when it is disabled.
    Endpoint {
        name: String,
        upstream: Option<usize>,
    },
    Node(String),
}

#[derive(Debug, Clone)]
enum Node {
    Ordered(Vec<Ref>),
    TagPreferred {
        children: Vec<Ref>,
        prefer: Vec<BTreeMap<String, String>>,
        stop: bool,
    },
    Sticky {
        target: Ref,
    },
    Conditional {
        when: When,
        then: Ref,
        default: Ref,
    },
}

/// One endpoint to try for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index into [`RouteGraph::upstreams`].
    pub upstream: usize,
    /// Lower is preferred; see the module docs.
    pub group: usize,
    /// Route nodes from the entry down to this endpoint's provider.
    pub route_path: Vec<String>,
}

/// What a `conditional` node can look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub model: Option<&'a str>,
    pub service_tier: Option<&'a str>,
    pub reasoning_effort: Option<&'a str>,
}

/// The compiled route graph.
#[derive(Debug, Clone)]
pub struct RouteGraph {
    pub entry: String,
    pub affinity_policy: AffinityPolicy,
    pub fallback_ttl_ms: Option<u64>,
    pub reprobe_preferred_after_ms: Option<u64>,
    /// Stable hash of everything that affects selection; affinity is keyed by it, so an edit
    /// that changes routing starts sessions afresh.
    pub key: String,
    /// Every enabled endpoint of every enabled provider.
    pub upstreams: Vec<Upstream>,
    nodes: BTreeMap<String, Node>,
    by_provider: BTreeMap<String, Vec<usize>>,
}

/// Builds the route graph. Without `[codex.routing]` routes, every enabled provider in name
/// order, each its own group.
pub fn compile(
    codex: &CodexSection,
    file: &Path,
    env: EnvLookup<'_>,
    outbound: &OutboundDefaults,
) -> Result<RouteGraph, ConfigError> {
    let mut upstreams = Vec::new();
    let mut by_provider = BTreeMap::new();
    for (id, provider) in &codex.providers {
        let endpoints = provider_endpoints(id, provider, file, env, outbound)?;
        let indices = if provider.enabled {
            let start = upstreams.len();
            upstreams.extend(endpoints);
            (start..upstreams.len()).collect()
        } else {
            Vec::new()
        };
        by_provider.insert(id.clone(), indices);
    }
    let routing = codex
        .routing
        .clone()
        .unwrap_or_else(|| crate::config::model::RoutingConfig {
            entry: IMPLICIT_ENTRY.to_string(),
            routes: BTreeMap::new(),
            affinity_policy: AffinityPolicy::default(),
            fallback_ttl_ms: None,
            reprobe_preferred_after_ms: None,
        });
    let mut nodes = BTreeMap::new();
    let entry = if routing.routes.is_empty() {
        let children = codex
            .providers
            .keys()
            .map(|p| Ref::Provider(p.clone()))
            .collect();
        nodes.insert(IMPLICIT_ENTRY.to_string(), Node::Ordered(children));
        IMPLICIT_ENTRY.to_string()
    } else {
        let resolver = Resolver {
            codex,
            file,
            upstreams: &upstreams,
        };
        for (name, node) in &routing.routes {
            nodes.insert(name.clone(), resolver.node(name, node)?);
        }
        if !nodes.contains_key(&routing.entry) {
            return Err(ConfigError::new(
                file,
                "codex.routing.entry",
                format!(
                    "route node `{}` does not exist; defined nodes: {}",
                    routing.entry,
                    list(nodes.keys())
                ),
            ));
        }
        routing.entry.clone()
    };
    let mut graph = RouteGraph {
        entry,
        affinity_policy: routing.affinity_policy,
        fallback_ttl_ms: routing.fallback_ttl_ms,
        reprobe_preferred_after_ms: routing.reprobe_preferred_after_ms,
        key: String::new(),
        upstreams,
        nodes,
        by_provider,
    };
    graph.check(file)?;
    graph.key = graph.canonical_key();
    Ok(graph)
}

/// Turns config nodes into checked [`Node`]s with resolved references.
struct Resolver<'a> {
    codex: &'a CodexSection,
    file: &'a Path,
    upstreams: &'a [Upstream],
}

impl Resolver<'_> {
    fn node(&self, name: &str, node: &RouteNode) -> Result<Node, ConfigError> {
        let key = format!("codex.routing.routes.{name}");
        if self.codex.providers.contains_key(name) {
            return Err(ConfigError::new(
                self.file,
                &key,
                format!("`{name}` is both a provider and a route node; rename one"),
            ));
        }
        let checked = NodeCheck {
            resolver: self,
            key,
            node,
        };
        checked.fields()?;
        match node.strategy {
            Strategy::OrderedFailover => Ok(Node::Ordered(checked.children()?)),
            Strategy::TagPreferred => checked.tag_preferred(),
            Strategy::ManualSticky => checked.manual_sticky(),
            Strategy::Conditional => checked.conditional(),
        }
    }

    /// Resolves a reference: a provider, else a route node, else `provider.endpoint`.
    fn reference(&self, name: &str, key: &str) -> Result<Ref, ConfigError> {
        let routes = self.codex.routing.as_ref().map(|r| &r.routes);
        if self.codex.providers.contains_key(name) {
            return Ok(Ref::Provider(name.to_string()));
        }
        if routes.is_some_and(|r| r.contains_key(name)) {
            return Ok(Ref::Node(name.to_string()));
        }
        if let Some((provider, endpoint)) = name.split_once('.') {
            if let Some(p) = self.codex.providers.get(provider) {
                let exists = p.endpoints.contains_key(endpoint)
                    || (endpoint == "default" && p.base_url.is_some());
                if !exists {
                    return Err(ConfigError::new(
                        self.file,
                        key,
                        format!("provider `{provider}` has no endpoint `{endpoint}`"),
                    ));
                }
                let upstream = self
                    .upstreams
                    .iter()
                    .position(|u| u.provider == provider && u.endpoint == endpoint);
                let upstream = upstream.filter(|_| p.enabled);
                return Ok(Ref::Endpoint {
                    name: name.to_string(),
                    upstream,
                });
            }
        }
        let nodes = routes
            .map(|r| list(r.keys()))
            .unwrap_or_else(|| "none".into());
        Err(ConfigError::new(
            self.file,
            key,
            format!(
                "unknown reference `{name}`; allowed: a provider ({}), a route node ({nodes}) or provider.endpoint",
                list(self.codex.providers.keys())
            ),
        ))
    }
}

/// The fields a strategy takes besides `strategy`: those it may have, and those it needs.
/// A node's other fields are refused, so a field that would be ignored is never silently so.
fn strategy_fields(strategy: Strategy) -> (&'static [&'static str], &'static [&'static str]) {
    match strategy {
        Strategy::OrderedFailover => (&["children"], &[]),
        Strategy::TagPreferred => (
            &["children", "prefer_tags", "on_exhausted"],
            &["prefer_tags"],
        ),
        // Without a target the first child is the target; other children are for display.
        Strategy::ManualSticky => (&["children", "target"], &[]),
        Strategy::Conditional => (&["when", "then", "default"], &["when", "then", "default"]),
    }
}

/// One route node being checked and resolved, under its config key.
struct NodeCheck<'a> {
    resolver: &'a Resolver<'a>,
    key: String,
    node: &'a RouteNode,
}

impl NodeCheck<'_> {
    fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(
            self.resolver.file,
            format!("{}.{field}", self.key),
            message.into(),
        )
    }

    /// Refuses the fields its strategy does not take and asks for those it needs, each in
    /// the order the fields are documented.
    fn fields(&self) -> Result<(), ConfigError> {
        let node = self.node;
        let present = [
            ("target", node.target.is_some()),
            ("prefer_tags", node.prefer_tags.is_some()),
            ("on_exhausted", node.on_exhausted.is_some()),
            ("children", !node.children.is_empty()),
            ("when", node.when.is_some()),
            ("then", node.then.is_some()),
            ("default", node.default.is_some()),
        ];
        let strategy = node.strategy.as_str();
        let (allowed, required) = strategy_fields(node.strategy);
        if let Some((field, _)) = present
            .iter()
            .find(|(field, set)| *set && !allowed.contains(field))
        {
            return Err(self.error(field, format!("not allowed with strategy `{strategy}`")));
        }
        if let Some((field, _)) = present
            .iter()
            .find(|(field, set)| !*set && required.contains(field))
        {
            return Err(self.error(field, format!("required with strategy `{strategy}`")));
        }
        Ok(())
    }

    fn reference(&self, field: &str, name: &str) -> Result<Ref, ConfigError> {
        self.resolver
            .reference(name, &format!("{}.{field}", self.key))
    }

    fn children(&self) -> Result<Vec<Ref>, ConfigError> {
        if self.node.children.is_empty() {
            return Err(self.error(
                "children",
                "is empty; list providers, route nodes or provider.endpoint references",
            ));
        }
        let children = self.node.children.iter();
        children.map(|c| self.reference("children", c)).collect()
    }

    fn tag_preferred(&self) -> Result<Node, ConfigError> {
        let prefer = self.node.prefer_tags.clone().unwrap_or_default();
        if prefer.is_empty() || prefer.iter().any(BTreeMap::is_empty) {
            return Err(self.error(
                "prefer_tags",
                "needs at least one non-empty tag table, e.g. [{ billing = \"monthly\" }]",
            ));
        }
        let stop = self.node.on_exhausted.unwrap_or_default() == OnExhausted::Stop;
        Ok(Node::TagPreferred {
            children: self.children()?,
            prefer,
            stop,
        })
    }

    fn manual_sticky(&self) -> Result<Node, ConfigError> {
        let Some(target_name) = self.node.target.as_ref().or(self.node.children.first()) else {
            return Err(self.error(
                "target",
                "required with strategy `manual-sticky` (or list children; the first is used)",
            ));
        };
        let target = self.reference("target", target_name)?;
        let disabled = match &target {
            Ref::Provider(p) => !self.resolver.codex.providers[p].enabled,
            Ref::Endpoint { upstream, .. } => upstream.is_none(),
            Ref::Node(_) => false,
        };
        if disabled {
            return Err(self.error(
                "target",
                format!("`{target_name}` is disabled; enable it or pin another target"),
            ));
        }
        Ok(Node::Sticky { target })
    }

    fn conditional(&self) -> Result<Node, ConfigError> {
        let when = self.node.when.clone().unwrap_or_default();
        if when.is_empty() {
            return Err(self.error(
                "when",
                "is empty; set model, path, method, headers, service_tier or reasoning_effort",
            ));
        }
        let field = |name: &str, value: &Option<String>| {
            self.reference(name, value.as_deref().unwrap_or_default())
        };
        Ok(Node::Conditional {
            when,
            then: field("then", &self.node.then)?,
            default: field("default", &self.node.default)?,
        })
    }
}

/// The endpoints a subtree can reach: whole providers or single endpoints.
type Leaves = BTreeSet<(String, Option<String>)>;

impl RouteGraph {
    /// Checks what needs the whole graph: cycles, duplicate leaves, `stop` with no match.
    fn check(&self, file: &Path) -> Result<(), ConfigError> {
        for name in self.nodes.keys() {
            self.leaves_of_node(name, &mut Vec::new(), file)?;
        }
        Ok(())
    }

    fn leaves_of_node(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        file: &Path,
    ) -> Result<Leaves, ConfigError> {
        let key = format!("codex.routing.routes.{name}");
        if let Some(start) = stack.iter().position(|n| n == name) {
            let cycle: Vec<&str> = stack[start..]
                .iter()
                .map(String::as_str)
                .chain([name])
                .collect();
            return Err(ConfigError::new(
                file,
                &key,
                format!("route nodes form a cycle: {}", cycle.join(" → ")),
            ));
        }
        stack.push(name.to_string());
        let node = &self.nodes[name];
        let leaves = match node {
            Node::Ordered(children) | Node::TagPreferred { children, .. } => {
                let mut all = Leaves::new();
                for child in children {
                    let leaves = self.leaves_of_ref(child, stack, file)?;
                    if let Some(dup) = overlap(&all, &leaves) {
                        return Err(ConfigError::new(
                            file,
                            format!("{key}.children"),
                            format!(
                                "`{dup}` appears more than once in the route graph (under {})",
                                stack.join(" → ")
                            ),
                        ));
                    }
                    all.extend(leaves);
                }
                if let Node::TagPreferred {
                    children,
                    prefer,
                    stop: true,
                } = node
                {
                    let any = children.iter().any(|c| self.ref_matches_tags(c, prefer));
                    if !any {
                        return Err(ConfigError::new(
                            file,
                            format!("{key}.prefer_tags"),
                            "no child matches these tags, so with on_exhausted = \"stop\" nothing could ever be routed",
                        ));
                    }
                }
                all
            }
            Node::Sticky { target } => self.leaves_of_ref(target, stack, file)?,
            Node::Conditional { then, default, .. } => {
                let mut all = self.leaves_of_ref(then, stack, file)?;
                all.extend(self.leaves_of_ref(default, stack, file)?);
                all
            }
        };
        stack.pop();
        Ok(leaves)
    }

    fn leaves_of_ref(
        &self,
        r: &Ref,
        stack: &mut Vec<String>,
        file: &Path,
    ) -> Result<Leaves, ConfigError> {
        Ok(match r {
            Ref::Provider(p) => [(p.clone(), None)].into(),
            Ref::Endpoint { name, .. } => {
                let (p, e) = name.split_once('.').expect("endpoint refs contain a dot");
                [(p.to_string(), Some(e.to_string()))].into()
            }
            Ref::Node(n) => self.leaves_of_node(n, stack, file)?,
        })
    }

    fn ref_matches_tags(&self, r: &Ref, prefer: &[BTreeMap<String, String>]) -> bool {
        let mut upstreams = Vec::new();
        self.all_upstreams_of(r, &mut upstreams, 0);
        upstreams.iter().any(|&u| {
            let tags = &self.upstreams[u].tags;
            prefer
                .iter()
                .any(|want| want.iter().all(|(k, v)| tags.get(k) == Some(v)))
        })
    }

    /// Every endpoint a reference can reach, whatever the request (both conditional branches).
    fn all_upstreams_of(&self, r: &Ref, out: &mut Vec<usize>, depth: usize) {
        if depth > self.nodes.len() {
            return; // cycles are reported by `check`
        }
        match r {
            Ref::Provider(p) => out.extend(&self.by_provider[p]),
            Ref::Endpoint { upstream, .. } => out.extend(upstream),
            Ref::Node(n) => match &self.nodes[n] {
                Node::Ordered(children) | Node::TagPreferred { children, .. } => {
                    for c in children {
                        self.all_upstreams_of(c, out, depth + 1);
                    }
                }
                Node::Sticky { target } => self.all_upstreams_of(target, out, depth + 1),
                Node::Conditional { then, default, .. } => {
                    self.all_upstreams_of(then, out, depth + 1);
                    self.all_upstreams_of(default, out, depth + 1);
                }
            },
        }
    }

    /// The candidates for a request, in the order they are tried, with their groups.
    pub fn candidates(&self, request: &RequestView<'_>) -> Vec<Candidate> {
        // Walk through sticky and conditional nodes to the node that defines the groups.
        let mut path = Vec::new();
        let mut current = Ref::Node(self.entry.clone());
        let groups: Vec<Ref> = loop {
            let Ref::Node(name) = &current else {
                break vec![current.clone()];
            };
            path.push(name.clone());
            match &self.nodes[name] {
                Node::Sticky { target } => current = target.clone(),
                Node::Conditional {
                    when,
                    then,
                    default,
                } => {
                    current = if matches(when, request) {
                        then.clone()
                    } else {
                        default.clone()
                    };
                }
                Node::Ordered(children) => break children.clone(),
                Node::TagPreferred {
                    children,
                    prefer,
                    stop,
                } => break self.tag_order(children, prefer, *stop),
            }
        };
        let mut out = Vec::new();
        for (group, child) in groups.iter().enumerate() {
            let mut expanded = Vec::new();
            self.expand(child, request, &mut path.clone(), &mut expanded);
            out.extend(
                expanded
                    .into_iter()
                    .map(|(upstream, route_path)| Candidate {
                        upstream,
                        group,
                        route_path,
                    }),
            );
        }
        out
    }

    /// Preferred children first; the rest after, unless `stop`.
    fn tag_order(
        &self,
        children: &[Ref],
        prefer: &[BTreeMap<String, String>],
        stop: bool,
    ) -> Vec<Ref> {
        let (preferred, rest): (Vec<&Ref>, Vec<&Ref>) = children
            .iter()
            .partition(|c| self.ref_matches_tags(c, prefer));
        let mut order: Vec<Ref> = preferred.into_iter().cloned().collect();
        if !stop {
            order.extend(rest.into_iter().cloned());
        }
        order
    }

    fn expand(
        &self,
        r: &Ref,
        request: &RequestView<'_>,
        path: &mut Vec<String>,
        out: &mut Vec<(usize, Vec<String>)>,
    ) {
        match r {
            Ref::Provider(p) => out.extend(self.by_provider[p].iter().map(|&u| (u, path.clone()))),
            Ref::Endpoint { upstream, .. } => {
                out.extend(upstream.iter().map(|&u| (u, path.clone())))
            }
            Ref::Node(name) => {
                path.push(name.clone());
                match &self.nodes[name] {
                    Node::Ordered(children) => {
                        for c in children {
                            self.expand(c, request, path, out);
                        }
                    }
                    Node::TagPreferred {
                        children,
                        prefer,
                        stop,
                    } => {
                        for c in self.tag_order(children, prefer, *stop) {
                            self.expand(&c, request, path, out);
                        }
                    }
                    Node::Sticky { target } => self.expand(target, request, path, out),
                    Node::Conditional {
                        when,
                        then,
                        default,
                    } => {
                        let branch = if matches(when, request) {
                            then
                        } else {
                            default
                        };
                        self.expand(branch, request, path, out);
                    }
                }
                path.pop();
            }
        }
    }

    /// The graph key: `g2:` and 16 hex digits of FNV-1a (64-bit) over [`Self::canonical_text`].
    /// Persisted affinity is keyed by it, so it must not change unless routing does: the text
    /// is spelled out field by field, never `Debug`, and the hash is fixed (unlike
    /// `DefaultHasher`, which may change between toolchains). Changing the encoding drops
    /// persisted affinity once (as `g1:` → `g2:` did); bump the prefix when that happens.
    fn canonical_key(&self) -> String {
        let hash = crate::config::load::fnv1a64(self.canonical_text().as_bytes());
        format!("g2:{hash:016x}")
    }

    /// Everything that affects selection, one line per item, in a fixed order:
    ///
    /// ```text
    /// entry <s>
    /// affinity_policy <config name>
    /// fallback_ttl_ms <n|->
    /// reprobe_preferred_after_ms <n|->
    /// node <s> ordered [<ref>, …]                         (nodes in name order)
    /// node <s> tag_preferred stop=<bool> prefer=[<map>, …] children=[<ref>, …]
    /// node <s> sticky <ref>
    /// node <s> conditional when=<when> then=<ref> default=<ref>
    /// upstream <s>.<s> base_url=<s> tags=<map> model_mapping=<map> supported_models=<map> limit=<n>/<s>|-
    /// ```
    ///
    /// `<s>` is a JSON string literal (so no value can fake a separator), `<ref>` is
    /// `provider <s>`, `endpoint <s> #<upstream index>|-` or `node <s>`, `<map>` is
    /// `{<s>=<s>, …}` in key order (booleans as `true`/`false`), and `<when>` lists `model`,
    /// `path`, `method`, `service_tier`, `reasoning_effort` (each `<s>` or `-`) and `headers`.
    fn canonical_text(&self) -> String {
        let mut out = String::new();
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(out, "entry {}", quote(&self.entry));
        let _ = writeln!(out, "affinity_policy {}", self.affinity_policy);
        let _ = writeln!(out, "fallback_ttl_ms {}", opt(self.fallback_ttl_ms));
        let _ = writeln!(
            out,
            "reprobe_preferred_after_ms {}",
            opt(self.reprobe_preferred_after_ms)
        );
        for (name, node) in &self.nodes {
            let name = quote(name);
            let _ = match node {
                Node::Ordered(children) => {
                    writeln!(out, "node {name} ordered {}", refs(children))
                }
                Node::TagPreferred {
                    children,
                    prefer,
                    stop,
                } => {
                    let prefer: Vec<String> = prefer.iter().map(map).collect();
                    writeln!(
                        out,
                        "node {name} tag_preferred stop={stop} prefer=[{}] children={}",
                        prefer.join(", "),
                        refs(children)
                    )
                }
                Node::Sticky { target } => {
                    writeln!(out, "node {name} sticky {}", reference(target))
                }
                Node::Conditional {
                    when,
                    then,
                    default,
                } => writeln!(
                    out,
                    "node {name} conditional when={} then={} default={}",
                    when_text(when),
                    reference(then),
                    reference(default)
                ),
            };
        }
        for u in &self.upstreams {
            let limit = u.limit.as_ref().map_or("-".to_string(), |l| {
                format!("{}/{}", l.max, quote(&l.group))
            });
            let _ = writeln!(
                out,
                "upstream {}.{} base_url={} tags={} model_mapping={} supported_models={} limit={limit}",
                quote(&u.provider),
                quote(&u.endpoint),
                quote(&u.base_url.to_string()),
                map(&u.tags),
                map(&u.model_mapping),
                map(&u.supported_models),
            );
        }
        out
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A map value as the canonical text spells it.
trait Canonical {
    fn canonical(&self) -> String;
}

impl Canonical for String {
    fn canonical(&self) -> String {
        quote(self)
    }
}

impl Canonical for bool {
    fn canonical(&self) -> String {
        self.to_string()
    }
}

/// `{<key>=<value>, …}` in key order, keys quoted.
fn map<V: Canonical>(entries: &BTreeMap<String, V>) -> String {
    let items: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}={}", quote(k), v.canonical()))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn reference(r: &Ref) -> String {
    match r {
        Ref::Provider(name) => format!("provider {}", quote(name)),
        Ref::Endpoint { name, upstream } => format!(
            "endpoint {} {}",
            quote(name),
            upstream.map_or("-".to_string(), |i| format!("#{i}"))
        ),
        Ref::Node(name) => format!("node {}", quote(name)),
    }
}

fn refs(children: &[Ref]) -> String {
    let items: Vec<String> = children.iter().map(reference).collect();
    format!("[{}]", items.join(", "))
}

fn when_text(when: &When) -> String {
    let field = |v: &Option<String>| v.as_deref().map_or("-".to_string(), quote);
    format!(
        "{{model={}, path={}, method={}, service_tier={}, reasoning_effort={}, headers={}}}",
        field(&when.model),
        field(&when.path),
        field(&when.method),
        field(&when.service_tier),
        field(&when.reasoning_effort),
        map(&when.headers)
    )
}

/// Whether a request matches a `when`: every set field must match.
fn matches(when: &When, request: &RequestView<'_>) -> bool {
    let exact =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let folded = |want: &Option<String>, have: Option<&str>| {
        want.as_deref()
            .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
    };
    exact(&when.model, request.model)
        && exact(&when.path, Some(request.path))
        && folded(&when.method, Some(request.method))
        && folded(&when.service_tier, request.service_tier)
        && folded(&when.reasoning_effort, request.reasoning_effort)
        && when.headers.iter().all(|(name, value)| {
            request
                .headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                == Some(value.as_str())
        })
}

fn overlap(seen: &Leaves, new: &Leaves) -> Option<String> {
    for (p, e) in new {
        let clash = seen
            .iter()
            .any(|(sp, se)| sp == p && (se.is_none() || e.is_none() || se == e));
        if clash {
            return Some(match e {
                Some(e) => format!("{p}.{e}"),
                None => p.clone(),
            });
        }
    }
    None
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::parse;

    fn graph(text: &str) -> Result<RouteGraph, ConfigError> {
        let file = Path::new("config.toml");
        let loaded = parse(file, &format!("version = 5\n{text}"))?;
        compile(&loaded.config.codex, file, &|_| None, &Default::default())
    }

    fn request(model: &str) -> (HeaderMap, String) {
        (HeaderMap::new(), model.to_string())
    }

    fn order(g: &RouteGraph, model: &str) -> Vec<String> {
        let (headers, model) = request(model);
        let view = RequestView {
            method: "POST",
            path: "/v1/responses",
            headers: &headers,
            model: Some(&model),
            service_tier: None,
            reasoning_effort: None,
        };
        g.candidates(&view)
            .iter()
            .map(|c| format!("{}@{}", g.upstreams[c.upstream].key(), c.group))
            .collect()
    }

    const PROVIDERS: &str = r#"
[codex.providers.b]
base_url = "http://b.example"
tags = { billing = "paygo" }
[codex.providers.a]
tags = { billing = "monthly" }
[codex.providers.a.endpoints.slow]
base_url = "http://a2.example"
priority = 5
[codex.providers.a.endpoints.fast]
base_url = "http://a1.example"
[codex.providers.c]
base_url = "http://c.example"
tags = { billing = "monthly", region = "hk" }
[codex.providers.off]
enabled = false
base_url = "http://off.example"
"#;

    fn routes(body: &str) -> String {
        format!("{PROVIDERS}[codex.routing]\nentry = \"main\"\n{body}")
    }

    #[test]
    fn without_routing_all_enabled_providers_in_name_order_each_its_own_group() {
        let g = graph(PROVIDERS).unwrap();
        assert_eq!(
            order(&g, "m"),
            ["a.fast@0", "a.slow@0", "b.default@1", "c.default@2"]
        );
        assert_eq!(g.entry, IMPLICIT_ENTRY);
    }

    #[test]
    fn ordered_failover_groups_are_the_entry_children() {
        let g = graph(&routes("[codex.routing.routes.main]\nchildren = [\"pool\", \"b\"]\n[codex.routing.routes.pool]\nchildren = [\"c\", \"a.slow\", \"off\"]\n")).unwrap();
        assert_eq!(order(&g, "m"), ["c.default@0", "a.slow@0", "b.default@1"]);
        let (headers, model) = request("m");
        let view = RequestView {
            method: "POST",
            path: "/",
            headers: &headers,
            model: Some(&model),
            service_tier: None,
            reasoning_effort: None,
        };
        assert_eq!(g.candidates(&view)[0].route_path, ["main", "pool"]);
    }

    #[test]
    fn tag_preferred_puts_matching_children_first_and_stop_drops_the_rest() {
        let body = |stop: &str| {
            routes(&format!(
                "[codex.routing.routes.main]\nstrategy = \"tag-preferred\"\nchildren = [\"b\", \"a\", \"c\"]\nprefer_tags = [{{ billing = \"monthly\", region = \"hk\" }}, {{ billing = \"nope\" }}]\n{stop}"
            ))
        };
        let g = graph(&body("")).unwrap();
        assert_eq!(
            order(&g, "m"),
            ["c.default@0", "b.default@1", "a.fast@2", "a.slow@2"]
        );
        let g = graph(&body("on_exhausted = \"stop\"\n")).unwrap();
        assert_eq!(order(&g, "m"), ["c.default@0"]);
    }

    #[test]
    fn manual_sticky_uses_only_its_target() {
        let g = graph(&routes("[codex.routing.routes.main]\nstrategy = \"manual-sticky\"\ntarget = \"a\"\nchildren = [\"a\", \"b\"]\n")).unwrap();
        assert_eq!(order(&g, "m"), ["a.fast@0", "a.slow@0"]);
        let g = graph(&routes("[codex.routing.routes.main]\nstrategy = \"manual-sticky\"\nchildren = [\"b\", \"a\"]\n")).unwrap();
        assert_eq!(
            order(&g, "m"),
            ["b.default@0"],
            "the first child is the target"
        );
    }

    #[test]
    fn conditional_picks_a_branch_per_request() {
        let g = graph(&routes(
            "[codex.routing.routes.main]\nstrategy = \"conditional\"\nwhen = { model = \"gpt-5.1-codex\" }\nthen = \"fast\"\ndefault = \"b\"\n\
             [codex.routing.routes.fast]\nchildren = [\"a\", \"c\"]\n",
        ))
        .unwrap();
        assert_eq!(
            order(&g, "gpt-5.1-codex"),
            ["a.fast@0", "a.slow@0", "c.default@1"]
        );
        assert_eq!(order(&g, "gpt-5.1"), ["b.default@0"]);
        let when = When {
            method: Some("post".into()),
            headers: [("x-tier".to_string(), "gold".to_string())].into(),
            reasoning_effort: Some("HIGH".into()),
            ..Default::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("X-Tier", "gold".parse().unwrap());
        let view = RequestView {
            method: "POST",
            path: "/",
            headers: &headers,
            model: None,
            service_tier: None,
            reasoning_effort: Some("high"),
        };
        assert!(matches(&when, &view));
        assert!(
            !matches(
                &when,
                &RequestView {
                    reasoning_effort: None,
                    ..view
                }
            ),
            "a set field with no request value does not match"
        );
    }

    #[test]
    fn every_validation_error_names_its_key() {
        let cases: Vec<(String, &str, &str)> = vec![
            (
                routes("[codex.routing.routes.main]\nchildren = [\"nope\"]\n"),
                "codex.routing.routes.main.children",
                "unknown reference `nope`",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nchildren = [\"x\"]\n[codex.routing.routes.x]\nchildren = [\"main\"]\n",
                ),
                "codex.routing.routes.main",
                "cycle: main → x → main",
            ),
            (
                routes("[codex.routing.routes.main]\nchildren = [\"a\", \"a.fast\"]\n"),
                "codex.routing.routes.main.children",
                "`a.fast` appears more than once",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nchildren = [\"p\", \"b\"]\n[codex.routing.routes.p]\nchildren = [\"b\"]\n",
                ),
                "codex.routing.routes.main.children",
                "`b` appears more than once",
            ),
            (
                routes("[codex.routing.routes.main]\nchildren = []\n"),
                "codex.routing.routes.main.children",
                "is empty",
            ),
            (
                routes("[codex.routing.routes.main]\nchildren = [\"a\"]\ntarget = \"a\"\n"),
                "codex.routing.routes.main.target",
                "not allowed with strategy `ordered-failover`",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nchildren = [\"a\"]\nwhen = { model = \"x\" }\n",
                ),
                "codex.routing.routes.main.when",
                "not allowed",
            ),
            (
                routes("[codex.routing.routes.main]\nchildren = [\"a.nope\"]\n"),
                "codex.routing.routes.main.children",
                "no endpoint `nope`",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"tag-preferred\"\nchildren = [\"a\"]\n",
                ),
                "codex.routing.routes.main.prefer_tags",
                "required",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"tag-preferred\"\nchildren = [\"a\"]\nprefer_tags = [{}]\n",
                ),
                "codex.routing.routes.main.prefer_tags",
                "non-empty",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"tag-preferred\"\nchildren = [\"b\"]\nprefer_tags = [{ billing = \"monthly\" }]\non_exhausted = \"stop\"\n",
                ),
                "codex.routing.routes.main.prefer_tags",
                "nothing could ever be routed",
            ),
            (
                routes("[codex.routing.routes.main]\nstrategy = \"manual-sticky\"\n"),
                "codex.routing.routes.main.target",
                "required",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"manual-sticky\"\ntarget = \"off\"\n",
                ),
                "codex.routing.routes.main.target",
                "`off` is disabled",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"manual-sticky\"\ntarget = \"a\"\non_exhausted = \"stop\"\n",
                ),
                "codex.routing.routes.main.on_exhausted",
                "not allowed",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"conditional\"\nthen = \"a\"\ndefault = \"b\"\n",
                ),
                "codex.routing.routes.main.when",
                "required",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"conditional\"\nwhen = {}\nthen = \"a\"\ndefault = \"b\"\n",
                ),
                "codex.routing.routes.main.when",
                "is empty",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"conditional\"\nwhen = { model = \"x\" }\nthen = \"a\"\n",
                ),
                "codex.routing.routes.main.default",
                "required",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"conditional\"\nwhen = { model = \"x\" }\nthen = \"a\"\ndefault = \"b\"\nchildren = [\"c\"]\n",
                ),
                "codex.routing.routes.main.children",
                "not allowed",
            ),
            (
                // A forbidden field is named before a missing one.
                routes("[codex.routing.routes.main]\nstrategy = \"conditional\"\ntarget = \"a\"\n"),
                "codex.routing.routes.main.target",
                "not allowed with strategy `conditional`",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"tag-preferred\"\nchildren = [\"a\"]\nprefer_tags = [{ billing = \"monthly\" }]\ndefault = \"a\"\n",
                ),
                "codex.routing.routes.main.default",
                "not allowed with strategy `tag-preferred`",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"manual-sticky\"\ntarget = \"a\"\nprefer_tags = [{ billing = \"monthly\" }]\n",
                ),
                "codex.routing.routes.main.prefer_tags",
                "not allowed with strategy `manual-sticky`",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"conditional\"\nwhen = { model = \"x\" }\ndefault = \"b\"\n",
                ),
                "codex.routing.routes.main.then",
                "required with strategy `conditional`",
            ),
            (
                routes(
                    "[codex.routing.routes.main]\nstrategy = \"conditional\"\nwhen = { colour = \"x\" }\nthen = \"a\"\ndefault = \"b\"\n",
                ),
                "codex.routing.routes.main.when.colour",
                "unknown field `colour`",
            ),
            (
                routes(
                    "[codex.routing.routes.a]\nchildren = [\"b\"]\n[codex.routing.routes.main]\nchildren = [\"b\"]\n",
                ),
                "codex.routing.routes.a",
                "both a provider and a route node",
            ),
            (
                format!(
                    "{PROVIDERS}[codex.routing]\nentry = \"start\"\n[codex.routing.routes.main]\nchildren = [\"a\"]\n"
                ),
                "codex.routing.entry",
                "does not exist",
            ),
            (
                format!(
                    "{PROVIDERS}[codex.providers.z]\nbase_url = \"http://z\"\nlimits = {{ max_concurrent_requests = 0 }}\n"
                ),
                "codex.providers.z.limits.max_concurrent_requests",
                "at least 1",
            ),
            (
                "[codex.providers.x]\nalias = \"X\"\n".to_string(),
                "codex.providers.x",
                "has no address",
            ),
            (
                "[codex.providers.x]\nbase_url = \"x.example\"\n".to_string(),
                "codex.providers.x.base_url",
                "not a valid URL",
            ),
        ];
        for (text, key, message) in cases {
            let err = graph(&text).expect_err(key);
            assert_eq!(err.key, key, "{err}");
            assert!(err.message.contains(message), "{key}: {}", err.message);
        }
    }

    #[test]
    fn the_key_is_stable_and_changes_with_routing() {
        let text = routes("[codex.routing.routes.main]\nchildren = [\"a\", \"b\"]\n");
        let key = graph(&text).unwrap().key;
        assert_eq!(key, graph(&text).unwrap().key);
        assert!(key.starts_with("g2:") && key.len() == 19);
        assert_ne!(
            key,
            graph(&routes(
                "[codex.routing.routes.main]\nchildren = [\"b\", \"a\"]\n"
            ))
            .unwrap()
            .key
        );
        let with_comment = text.replace("[codex.routing]", "# a comment\n[codex.routing]");
        assert_eq!(
            key,
            graph(&with_comment).unwrap().key,
            "comments do not matter"
        );
    }

    /// Persisted affinity is keyed by this: a change here drops every session's affinity.
    /// Change it only on purpose (and bump the `g2:` prefix).
    #[test]
    fn the_key_of_a_known_config_is_pinned() {
        let text = format!(
            "{PROVIDERS}[codex.providers.d]\nbase_url = \"http://d.example/v1\"\n\
             supported_models = {{ \"gpt-5*\" = true, \"gpt-5-nano\" = false }}\n\
             model_mapping = {{ \"gpt-5\" = \"b-5\" }}\n\
             limits = {{ max_concurrent_requests = 2, limit_group = \"acct\" }}\n\
             [codex.routing]\nentry = \"main\"\naffinity_policy = \"preferred-group\"\nfallback_ttl_ms = 60000\n\
             [codex.routing.routes.main]\nstrategy = \"conditional\"\nwhen = {{ model = \"gpt-5\", headers = {{ \"x-tier\" = \"a \\\"b\\\"\" }} }}\nthen = \"pool\"\ndefault = \"rest\"\n\
             [codex.routing.routes.pool]\nstrategy = \"tag-preferred\"\nchildren = [\"d\", \"a.slow\", \"c\"]\nprefer_tags = [{{ billing = \"monthly\" }}]\non_exhausted = \"stop\"\n\
             [codex.routing.routes.rest]\nchildren = [\"pick\", \"off\"]\n\
             [codex.routing.routes.pick]\nstrategy = \"manual-sticky\"\ntarget = \"a.fast\"\n"
        );
        let g = graph(&text).unwrap();
        let expected = r#"entry "main"
affinity_policy preferred-group
fallback_ttl_ms 60000
reprobe_preferred_after_ms -
node "main" conditional when={model="gpt-5", path=-, method=-, service_tier=-, reasoning_effort=-, headers={"x-tier"="a \"b\""}} then=node "pool" default=node "rest"
node "pick" sticky endpoint "a.fast" #0
node "pool" tag_preferred stop=true prefer=[{"billing"="monthly"}] children=[provider "d", endpoint "a.slow" #1, provider "c"]
node "rest" ordered [node "pick", provider "off"]
upstream "a"."fast" base_url="http://a1.example" tags={"billing"="monthly"} model_mapping={} supported_models={} limit=-
upstream "a"."slow" base_url="http://a2.example" tags={"billing"="monthly"} model_mapping={} supported_models={} limit=-
upstream "b"."default" base_url="http://b.example" tags={"billing"="paygo"} model_mapping={} supported_models={} limit=-
upstream "c"."default" base_url="http://c.example" tags={"billing"="monthly", "region"="hk"} model_mapping={} supported_models={} limit=-
upstream "d"."default" base_url="http://d.example/v1" tags={} model_mapping={"gpt-5"="b-5"} supported_models={"gpt-5*"=true, "gpt-5-nano"=false} limit=2/"acct"
"#;
        assert_eq!(g.canonical_text(), expected);
        assert_eq!(g.key, "g2:861369ee17b6795e");
    }

    #[test]
    fn endpoint_settings_merge_over_the_provider() {
        let g = graph(
            "[codex.providers.x]\nmodel_mapping = { \"gpt-5\" = \"p\", \"o3\" = \"q\" }\ntags = { a = \"1\", b = \"1\" }\nlimits = { max_concurrent_requests = 2, limit_group = \"acct\" }\n\
             [codex.providers.x.endpoints.e]\nbase_url = \"http://x\"\nmodel_mapping = { \"gpt-5\" = \"e\" }\ntags = { b = \"2\" }\nlimits = { max_concurrent_requests = 1 }\n",
        )
        .unwrap();
        let u = &g.upstreams[0];
        assert_eq!(
            (
                u.model_mapping["gpt-5"].as_str(),
                u.model_mapping["o3"].as_str()
            ),
            ("e", "q")
        );
        assert_eq!((u.tags["a"].as_str(), u.tags["b"].as_str()), ("1", "2"));
        let limit = u.limit.as_ref().unwrap();
        assert_eq!((limit.max, limit.group.as_str()), (1, "acct"));
    }

    #[test]
    fn credentials_resolve_from_env_and_record_missing_vars() {
        let file = Path::new("c.toml");
        let loaded = parse(file, "version = 5\n[codex.providers.x]\nbase_url = \"http://x\"\nauth_token_env = \"X_KEY\"\napi_key_env = \"X_API\"\n").unwrap();
        let env = |name: &str| (name == "X_KEY").then(|| "tok".to_string());
        let g = compile(&loaded.config.codex, file, &env, &Default::default()).unwrap();
        let credential = &g.upstreams[0].credential;
        assert_eq!(credential.bearer.as_ref().map(|s| s.expose()), Some("tok"));
        assert_eq!(credential.missing_env, ["X_API"]);
    }
}
