//! What only a running helper knows, for `switch status`: its proxy address, the preset in
//! force, and whether Codex's config points at this very helper. Read through its admin API
//! (`GET /runtime/status`), so it is what the helper says now, not what the files suggest.

use std::net::SocketAddr;

use serde::Serialize;

use crate::config::Homes;

/// The running helper as `switch status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Live {
    pub pid: u32,
    /// Where it takes Codex's requests, `http://…`.
    pub proxy: String,
    /// The client preset it serves with (from the switch state it follows).
    pub preset: Option<String>,
    /// Codex's `base_url` reaches this helper's proxy.
    pub codex_points_here: bool,
}

/// The running helper, when one is announced and its admin API answers; why not otherwise
/// (said by the caller, which then reads the files only).
pub fn live(homes: &Homes, codex_base_url: Option<&str>) -> Result<Option<Live>, String> {
    let Some(running) = crate::running::find(&homes.running()) else {
        return Ok(None);
    };
    let Some(admin) = running.admin else {
        return Ok(None);
    };
    let asked = super::block_on(crate::admin::client::get(admin, "/runtime/status"))
        .and_then(|answer| answer)
        .map_err(|e| format!("{e:#}"))?;
    let preset = asked["preset"].as_str().map(str::to_string);
    Ok(Some(Live {
        pid: running.pid,
        proxy: format!("http://{}", running.proxy),
        preset,
        codex_points_here: codex_base_url.is_some_and(|url| points_at(url, running.proxy)),
    }))
}

/// Whether a client configured with `base_url` reaches the proxy listening at `proxy`.
pub fn points_at(base_url: &str, proxy: SocketAddr) -> bool {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        return false;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    crate::net::reaches_listener(host, port, proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_points_at_the_proxy_by_port_and_loopback_host() {
        let proxy: SocketAddr = "127.0.0.1:3211".parse().unwrap();
        assert!(points_at("http://127.0.0.1:3211/v1", proxy));
        assert!(points_at("http://localhost:3211/v1", proxy));
        assert!(
            !points_at("http://127.0.0.1:3212/v1", proxy),
            "another port"
        );
        assert!(!points_at("http://relay.example:3211/v1", proxy));
        assert!(!points_at("https://api.openai.com/v1", proxy));
        assert!(!points_at("not a url", proxy));
    }
}
