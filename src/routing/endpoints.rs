//! Providers from config into [`Upstream`]s: addresses ordered by priority, credentials
//! resolved, endpoint settings merged over the provider's.

use std::path::Path;

use crate::config::load::ConfigError;
use crate::config::model::{EndpointConfig, Limits, ProviderConfig};

use super::outbound::{self, OutboundDefaults};
use super::upstream::{BaseUrl, ConcurrencyLimit, Credential, EndpointKey, Secret, Upstream};

pub use super::env::EnvLookup;

/// A provider's enabled endpoints, ordered by priority, then id.
pub fn provider_endpoints(
    id: &str,
    provider: &ProviderConfig,
    file: &Path,
    env: EnvLookup<'_>,
    defaults: &OutboundDefaults,
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
    let addresses = addresses(provider, file, &key)?;
    check_limits(provider.limits.as_ref(), file, &format!("{key}.limits"))?;
    let price_multiplier = provider.price_multiplier.unwrap_or(1.0);
    if !(price_multiplier.is_finite() && price_multiplier >= 0.0) {
        return Err(ConfigError::new(
            file,
            format!("{key}.price_multiplier"),
            "must be a number of 0 or more, e.g. 0.5",
        ));
    }
    if addresses.is_empty() {
        return Err(ConfigError::new(
            file,
            &key,
            "has no address: set `base_url` or add `[...endpoints.<id>]` tables",
        ));
    }
    let checked = CheckedProvider {
        id,
        key: &key,
        config: provider,
        credential,
        price_multiplier,
        defaults,
    };
    Ok(addresses
        .into_iter()
        .filter(|address| address.endpoint.is_none_or(|e| e.enabled))
        .map(|address| checked.upstream(address))
        .collect())
}

/// One address of a provider: its `base_url` (endpoint `default`) or an endpoint table.
struct Address<'a> {
    priority: i64,
    id: &'a str,
    url: BaseUrl,
    /// None for the provider's own `base_url`.
    endpoint: Option<&'a EndpointConfig>,
}

/// Every address of `provider`, checked, ordered by priority, then id (disabled ones too).
fn addresses<'a>(
    provider: &'a ProviderConfig,
    file: &Path,
    key: &str,
) -> Result<Vec<Address<'a>>, ConfigError> {
    let mut addresses = Vec::new();
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
            endpoint: None,
        });
    }
    for (id, endpoint) in &provider.endpoints {
        let url = BaseUrl::parse(&endpoint.base_url)
            .map_err(|m| ConfigError::new(file, format!("{key}.endpoints.{id}.base_url"), m))?;
        let limits = format!("{key}.endpoints.{id}.limits");
        check_limits(endpoint.limits.as_ref(), file, &limits)?;
        addresses.push(Address {
            priority: endpoint.priority,
            id,
            url,
            endpoint: Some(endpoint),
        });
    }
    addresses.sort_by(|a, b| (a.priority, a.id).cmp(&(b.priority, b.id)));
    Ok(addresses)
}

/// A provider whose own settings have been checked: what each of its endpoints starts from.
struct CheckedProvider<'a> {
    id: &'a str,
    key: &'a str,
    config: &'a ProviderConfig,
    credential: Credential,
    price_multiplier: f64,
    defaults: &'a OutboundDefaults,
}

impl CheckedProvider<'_> {
    /// The endpoint at `address`, its settings merged over the provider's: an endpoint's
    /// entries override the provider's entries of the same name.
    fn upstream(&self, address: Address<'_>) -> Upstream {
        let Address {
            id: eid,
            url: base_url,
            endpoint,
            ..
        } = address;
        let provider = self.config;
        let mut tags = provider.tags.clone();
        let mut model_mapping = provider.model_mapping.clone();
        let mut supported_models = provider.supported_models.clone();
        let mut limits = provider.limits.clone().unwrap_or_default();
        if let Some(endpoint) = endpoint {
            tags.extend(endpoint.tags.clone());
            model_mapping.extend(endpoint.model_mapping.clone());
            supported_models.extend(endpoint.supported_models.clone());
            if let Some(own) = &endpoint.limits {
                limits.max_concurrent_requests = own
                    .max_concurrent_requests
                    .or(limits.max_concurrent_requests);
                limits.limit_group = own.limit_group.clone().or(limits.limit_group);
            }
        }
        let limit = limits.max_concurrent_requests.map(|max| ConcurrencyLimit {
            max,
            group: limits
                .limit_group
                .unwrap_or_else(|| format!("{}.{eid}", self.id)),
        });
        Upstream {
            key: EndpointKey::new(self.id, eid),
            provider: self.id.to_string(),
            endpoint: eid.to_string(),
            outbound: self.outbound(eid, endpoint, &base_url),
            base_url,
            credential: self.credential.clone(),
            tags,
            model_mapping,
            supported_models,
            limit,
            price_multiplier: self.price_multiplier,
        }
    }

    /// How the endpoint is reached: the most specific `outbound_proxy` wins (endpoint,
    /// provider, `[proxy]`, environment).
    fn outbound(
        &self,
        eid: &str,
        endpoint: Option<&EndpointConfig>,
        base_url: &BaseUrl,
    ) -> outbound::Outbound {
        let key = self.key;
        outbound::resolve(
            &[
                (
                    format!("{key}.endpoints.{eid}.outbound_proxy"),
                    endpoint.and_then(|e| e.outbound_proxy.as_ref()),
                ),
                (
                    format!("{key}.outbound_proxy"),
                    self.config.outbound_proxy.as_ref(),
                ),
                ("proxy.outbound_proxy".into(), self.defaults.global.as_ref()),
            ],
            &self.defaults.env,
            base_url.scheme(),
            base_url.host(),
        )
    }
}

fn check_limits(limits: Option<&Limits>, file: &Path, key: &str) -> Result<(), ConfigError> {
    if limits.and_then(|l| l.max_concurrent_requests) == Some(0) {
        return Err(ConfigError::new(
            file,
            format!("{key}.max_concurrent_requests"),
            "must be at least 1 (disable the provider with `enabled = false` instead)",
        ));
    }
    Ok(())
}

/// Resolves inline values and environment variables; an inline value wins.
fn credential(
    provider: &ProviderConfig,
    file: &Path,
    key: &str,
    env: EnvLookup<'_>,
) -> Result<Credential, ConfigError> {
    let mut missing_env = Vec::new();
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
                missing_env.push(var.clone());
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
    Ok(Credential {
        bearer,
        api_key,
        missing_env,
    })
}
