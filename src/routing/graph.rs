//! Compiling the config's providers and route graph into an ordered candidate list.
//!
//! Pure: config and an environment lookup in, candidates or a [`ConfigError`] out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::load::ConfigError;
use crate::config::model::{CodexSection, ProviderConfig, Strategy};

use super::upstream::{BaseUrl, Credential, Secret, Upstream};

/// The candidates for a request, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct RoutePlan {
    pub candidates: Vec<Upstream>,
}

/// Looks up an environment variable (injected so tests need not touch the process env).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Builds the candidate list. Without `[codex.routing]`, every enabled provider in name order.
pub fn compile(
    codex: &CodexSection,
    file: &Path,
    env: EnvLookup<'_>,
) -> Result<RoutePlan, ConfigError> {
    let mut endpoints = BTreeMap::new();
    for (id, provider) in &codex.providers {
        endpoints.insert(id.as_str(), provider_endpoints(id, provider, file, env)?);
    }
    let leaves = match &codex.routing {
        Some(routing) if !routing.routes.is_empty() || routing.entry != "main" => {
            let mut walk = Walk {
                codex,
                file,
                stack: Vec::new(),
                seen: BTreeSet::new(),
                leaves: Vec::new(),
            };
            walk.node(&routing.entry, "codex.routing.entry")?;
            walk.leaves
        }
        _ => codex
            .providers
            .keys()
            .map(|id| Leaf {
                provider: id.clone(),
                endpoint: None,
            })
            .collect(),
    };
    let mut candidates = Vec::new();
    for leaf in leaves {
        if !codex.providers[&leaf.provider].enabled {
            continue;
        }
        candidates.extend(
            endpoints[leaf.provider.as_str()]
                .iter()
                .filter(|u| leaf.endpoint.as_deref().is_none_or(|e| e == u.endpoint))
                .cloned(),
        );
    }
    Ok(RoutePlan { candidates })
}

/// A provider's enabled endpoints, ordered by priority, then id.
fn provider_endpoints(
    id: &str,
    provider: &ProviderConfig,
    file: &Path,
    env: EnvLookup<'_>,
) -> Result<Vec<Upstream>, ConfigError> {
    let key = format!("codex.providers.{id}");
    if id.is_empty() || id.contains('.') {
        return Err(ConfigError::new(
            file,
            &key,
            "provider ids must be non-empty and must not contain `.`",
        ));
    }
    let credential = credential(provider, file, &key, env)?;
    let no_overrides = (&BTreeMap::new(), &BTreeMap::new());
    let mut addresses: Vec<Address<'_>> = Vec::new();
    if let Some(base_url) = &provider.base_url {
        if provider.endpoints.contains_key("default") {
            return Err(ConfigError::new(
                file,
                format!("{key}.base_url"),
                "cannot be used together with an endpoint named `default`; keep one of them",
            ));
        }
        let url = BaseUrl::parse(base_url)
            .map_err(|m| ConfigError::new(file, format!("{key}.base_url"), m))?;
        addresses.push(Address {
            priority: 0,
            id: "default",
            url,
            enabled: true,
            overrides: no_overrides,
        });
    }
    for (eid, endpoint) in &provider.endpoints {
        let url = BaseUrl::parse(&endpoint.base_url)
            .map_err(|m| ConfigError::new(file, format!("{key}.endpoints.{eid}.base_url"), m))?;
        addresses.push(Address {
            priority: endpoint.priority,
            id: eid,
            url,
            enabled: endpoint.enabled,
            overrides: (&endpoint.model_mapping, &endpoint.supported_models),
        });
    }
    if addresses.is_empty() {
        return Err(ConfigError::new(
            file,
            &key,
            "has no address: set `base_url` or add `[...endpoints.<id>]` tables",
        ));
    }
    addresses.sort_by(|a, b| (a.priority, a.id).cmp(&(b.priority, b.id)));
    Ok(addresses
        .into_iter()
        .filter(|address| address.enabled)
        .map(|address| {
            // Endpoint entries override the provider's entries of the same name.
            let (mapping, supported) = address.overrides;
            let mut model_mapping = provider.model_mapping.clone();
            model_mapping.extend(mapping.iter().map(|(k, v)| (k.clone(), v.clone())));
            let mut supported_models = provider.supported_models.clone();
            supported_models.extend(supported.iter().map(|(k, v)| (k.clone(), *v)));
            Upstream {
                provider: id.to_string(),
                endpoint: address.id.to_string(),
                base_url: address.url,
                credential: credential.clone(),
                model_mapping,
                supported_models,
            }
        })
        .collect())
}

/// One configured address of a provider, before ordering.
struct Address<'c> {
    priority: i64,
    id: &'c str,
    url: BaseUrl,
    enabled: bool,
    /// The endpoint's own `model_mapping` and `supported_models`.
    overrides: (&'c BTreeMap<String, String>, &'c BTreeMap<String, bool>),
}

/// Resolves inline values and environment variables; an inline value wins.
fn credential(
    provider: &ProviderConfig,
    file: &Path,
    key: &str,
    env: EnvLookup<'_>,
) -> Result<Credential, ConfigError> {
    let mut credential = Credential::default();
    let mut resolve = |inline: &Option<String>,
                       var: &Option<String>,
                       field: &str|
     -> Result<Option<Secret>, ConfigError> {
        if let Some(value) = inline.as_deref().filter(|v| !v.trim().is_empty()) {
            return Ok(Some(Secret::new(value.trim())));
        }
        let Some(var) = var else { return Ok(None) };
        if var.trim().is_empty() || var.contains('=') {
            return Err(ConfigError::new(
                file,
                format!("{key}.{field}"),
                "must name an environment variable, e.g. \"RELAY_API_KEY\"",
            ));
        }
        match env(var).filter(|v| !v.trim().is_empty()) {
            Some(value) => Ok(Some(Secret::new(value.trim()))),
            None => {
                credential.missing_env.push(var.clone());
                Ok(None)
            }
        }
    };
    let bearer = resolve(
        &provider.auth_token,
        &provider.auth_token_env,
        "auth_token_env",
    )?;
    let api_key = resolve(&provider.api_key, &provider.api_key_env, "api_key_env")?;
    credential.bearer = bearer;
    credential.api_key = api_key;
    Ok(credential)
}

struct Leaf {
    provider: String,
    endpoint: Option<String>,
}

/// Depth-first expansion of route nodes, with the path kept for error messages.
struct Walk<'a> {
    codex: &'a CodexSection,
    file: &'a Path,
    stack: Vec<String>,
    seen: BTreeSet<(String, Option<String>)>,
    leaves: Vec<Leaf>,
}

impl Walk<'_> {
    fn node(&mut self, name: &str, referenced_at: &str) -> Result<(), ConfigError> {
        let routing = self
            .codex
            .routing
            .as_ref()
            .expect("walk only runs with a routing table");
        let Some(node) = routing.routes.get(name) else {
            return Err(ConfigError::new(
                self.file,
                referenced_at,
                format!(
                    "route node `{name}` does not exist; defined nodes: {}",
                    list(routing.routes.keys())
                ),
            ));
        };
        let key = format!("codex.routing.routes.{name}");
        if self.codex.providers.contains_key(name) {
            return Err(ConfigError::new(
                self.file,
                &key,
                format!("`{name}` is both a provider and a route node; rename one"),
            ));
        }
        if let Some(start) = self.stack.iter().position(|n| n == name) {
            let cycle: Vec<&str> = self.stack[start..]
                .iter()
                .map(String::as_str)
                .chain([name])
                .collect();
            return Err(ConfigError::new(
                self.file,
                &key,
                format!("route nodes form a cycle: {}", cycle.join(" → ")),
            ));
        }
        if node.strategy != Strategy::OrderedFailover {
            return Err(ConfigError::new(
                self.file,
                format!("{key}.strategy"),
                "this build routes with `ordered-failover` only; the other strategies are not supported yet",
            ));
        }
        for field in [
            ("target", &node.target),
            ("prefer_tags", &node.prefer_tags),
            ("on_exhausted", &node.on_exhausted),
            ("when", &node.when),
            ("then", &node.then),
            ("default", &node.default),
        ] {
            if field.1.is_some() {
                return Err(ConfigError::new(
                    self.file,
                    format!("{key}.{}", field.0),
                    "not allowed with strategy `ordered-failover`",
                ));
            }
        }
        if node.children.is_empty() {
            return Err(ConfigError::new(
                self.file,
                format!("{key}.children"),
                "is empty; list providers, route nodes or provider.endpoint references",
            ));
        }
        self.stack.push(name.to_string());
        for child in &node.children {
            self.reference(child, &format!("{key}.children"))?;
        }
        self.stack.pop();
        Ok(())
    }

    /// Resolves a child: a provider, else a route node, else `provider.endpoint`.
    fn reference(&mut self, child: &str, key: &str) -> Result<(), ConfigError> {
        let routing = self
            .codex
            .routing
            .as_ref()
            .expect("walk only runs with a routing table");
        if self.codex.providers.contains_key(child) {
            return self.leaf(child, None, key);
        }
        if routing.routes.contains_key(child) {
            return self.node(child, key);
        }
        if let Some((provider, endpoint)) = child.split_once('.') {
            if let Some(p) = self.codex.providers.get(provider) {
                let exists = p.endpoints.contains_key(endpoint)
                    || (endpoint == "default" && p.base_url.is_some());
                if exists {
                    return self.leaf(provider, Some(endpoint), key);
                }
                return Err(ConfigError::new(
                    self.file,
                    key,
                    format!("provider `{provider}` has no endpoint `{endpoint}`"),
                ));
            }
        }
        Err(ConfigError::new(
            self.file,
            key,
            format!(
                "unknown reference `{child}` (under {}); allowed: a provider ({}), a route node ({}) or provider.endpoint",
                self.stack.join(" → "),
                list(self.codex.providers.keys()),
                list(routing.routes.keys())
            ),
        ))
    }

    fn leaf(
        &mut self,
        provider: &str,
        endpoint: Option<&str>,
        key: &str,
    ) -> Result<(), ConfigError> {
        let whole = (provider.to_string(), None);
        let this = (provider.to_string(), endpoint.map(str::to_string));
        let clash = self.seen.contains(&whole)
            || self.seen.contains(&this)
            || (endpoint.is_none() && self.seen.iter().any(|(p, _)| p == provider));
        if clash {
            let name = endpoint.map_or(provider.to_string(), |e| format!("{provider}.{e}"));
            return Err(ConfigError::new(
                self.file,
                key,
                format!(
                    "`{name}` appears more than once in the route graph (under {})",
                    self.stack.join(" → ")
                ),
            ));
        }
        self.seen.insert(this);
        self.leaves.push(Leaf {
            provider: provider.to_string(),
            endpoint: endpoint.map(str::to_string),
        });
        Ok(())
    }
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

    fn plan(text: &str) -> Result<Vec<String>, ConfigError> {
        plan_with_env(text, &|_| None)
    }

    fn plan_with_env(text: &str, env: EnvLookup<'_>) -> Result<Vec<String>, ConfigError> {
        let file = Path::new("config.toml");
        let loaded = parse(file, &format!("version = 5\n{text}"))?;
        let plan = compile(&loaded.config.codex, file, env)?;
        Ok(plan
            .candidates
            .iter()
            .map(|c| format!("{}.{}", c.provider, c.endpoint))
            .collect())
    }

    const PROVIDERS: &str = r#"
[codex.providers.b]
base_url = "http://b.example"
[codex.providers.a.endpoints.slow]
base_url = "http://a2.example"
priority = 5
[codex.providers.a.endpoints.fast]
base_url = "http://a1.example"
[codex.providers.off]
enabled = false
base_url = "http://off.example"
"#;

    #[test]
    fn without_routing_all_enabled_providers_in_name_order() {
        assert_eq!(plan(PROVIDERS).unwrap(), ["a.fast", "a.slow", "b.default"]);
    }

    #[test]
    fn nested_nodes_and_endpoint_references_keep_their_order() {
        let text = format!(
            "{PROVIDERS}[codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"b\", \"pool\"]\n\
             [codex.routing.routes.pool]\nchildren = [\"a.slow\", \"off\"]\n"
        );
        assert_eq!(plan(&text).unwrap(), ["b.default", "a.slow"]);
    }

    #[test]
    fn graph_errors_name_the_key_and_the_path() {
        let routes = |body: &str| format!("{PROVIDERS}[codex.routing]\nentry = \"main\"\n{body}");
        let err = plan(&routes(
            "[codex.routing.routes.main]\nchildren = [\"nope\"]\n",
        ))
        .unwrap_err();
        assert_eq!(err.key, "codex.routing.routes.main.children");
        assert!(
            err.message.contains("unknown reference `nope`") && err.message.contains("a, b, off"),
            "{}",
            err.message
        );

        let err = plan(&routes("[codex.routing.routes.main]\nchildren = [\"x\"]\n[codex.routing.routes.x]\nchildren = [\"main\"]\n")).unwrap_err();
        assert!(
            err.message.contains("cycle: main → x → main"),
            "{}",
            err.message
        );

        let err = plan(&routes(
            "[codex.routing.routes.main]\nchildren = [\"a\", \"a.fast\"]\n",
        ))
        .unwrap_err();
        assert!(
            err.message.contains("`a.fast` appears more than once"),
            "{}",
            err.message
        );

        let err = plan(&routes("[codex.routing.routes.main]\nchildren = []\n")).unwrap_err();
        assert_eq!(err.key, "codex.routing.routes.main.children");

        let err = plan(&routes(
            "[codex.routing.routes.main]\nchildren = [\"a\"]\ntarget = \"a\"\n",
        ))
        .unwrap_err();
        assert_eq!(err.key, "codex.routing.routes.main.target");

        let err = plan(&routes(
            "[codex.routing.routes.main]\nchildren = [\"a.nope\"]\n",
        ))
        .unwrap_err();
        assert!(
            err.message.contains("no endpoint `nope`"),
            "{}",
            err.message
        );

        let err = plan(&format!("{PROVIDERS}[codex.routing]\nentry = \"start\"\n")).unwrap_err();
        assert_eq!(err.key, "codex.routing.entry");
    }

    #[test]
    fn provider_errors() {
        let err = plan("[codex.providers.x]\nalias = \"X\"\n").unwrap_err();
        assert!(err.message.contains("has no address"), "{}", err.message);
        let err = plan("[codex.providers.x]\nbase_url = \"x.example\"\n").unwrap_err();
        assert_eq!(err.key, "codex.providers.x.base_url");
    }

    #[test]
    fn credentials_resolve_from_env_and_record_missing_vars() {
        let text = "[codex.providers.x]\nbase_url = \"http://x\"\nauth_token_env = \"X_KEY\"\napi_key_env = \"X_API\"\n";
        let file = Path::new("c.toml");
        let loaded = parse(file, &format!("version = 5\n{text}")).unwrap();
        let env = |name: &str| (name == "X_KEY").then(|| "tok".to_string());
        let plan = compile(&loaded.config.codex, file, &env).unwrap();
        let credential = &plan.candidates[0].credential;
        assert_eq!(credential.bearer.as_ref().map(Secret::expose), Some("tok"));
        assert_eq!(credential.missing_env, ["X_API"]);
    }

    #[test]
    fn endpoint_mapping_overrides_provider_mapping() {
        let text = "[codex.providers.x]\nmodel_mapping = { \"gpt-5\" = \"p\", \"o3\" = \"q\" }\n\
                    [codex.providers.x.endpoints.e]\nbase_url = \"http://x\"\nmodel_mapping = { \"gpt-5\" = \"e\" }\n";
        let file = Path::new("c.toml");
        let loaded = parse(file, &format!("version = 5\n{text}")).unwrap();
        let plan = compile(&loaded.config.codex, file, &|_| None).unwrap();
        assert_eq!(plan.candidates[0].model_mapping["gpt-5"], "e");
        assert_eq!(plan.candidates[0].model_mapping["o3"], "q");
    }
}
