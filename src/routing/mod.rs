//! Which upstream a request goes to, and in what order the others are tried.

pub mod affinity;
pub mod cooldowns;
pub mod endpoints;
pub mod env;
pub mod explain;
pub mod graph;
pub mod health;
pub mod model_map;
pub mod outbound;
pub mod overrides;
pub mod retry;
pub mod runtime;
pub mod select;
pub mod upstream;

pub use graph::{Candidate, RequestView, RouteGraph, compile};
pub use upstream::{BaseUrl, Credential, Secret, Upstream};

/// What start-up refuses in a config beyond parsing: a route graph that does not compile (for
/// config edits, which must not write a config `serve` would refuse). Credentials and the
/// environment do not matter here.
pub fn check_config(loaded: &crate::config::LoadedConfig) -> Result<(), String> {
    let outbound = outbound::OutboundDefaults {
        global: loaded.config.proxy.outbound_proxy.clone(),
        env: Default::default(),
    };
    compile(&loaded.config.codex, &loaded.path, &|_| None, &outbound)
        .and_then(|_| overrides::profiles::compile(&loaded.config.codex, &loaded.path))
        .map(drop)
        .map_err(|e| e.to_string())?;
    retry::RetryPolicy::resolve(&loaded.config.retry, &loaded.path)
        .map(drop)
        .map_err(|e| e.to_string())
}
