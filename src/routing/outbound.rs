//! How the helper reaches a relay: directly, or through an outbound HTTP/SOCKS5 proxy.
//!
//! Pure. Each upstream gets one [`Outbound`] when the config is compiled,
//! by this precedence: the endpoint's `outbound_proxy`, the provider's, `[proxy]
//! outbound_proxy`, and, when none of them is set (or one says `"env"`), the standard
//! environment variables. The environment never applies to a loopback relay or to a host that
//! `NO_PROXY` names; an explicit URL applies to every relay it is set for, loopback included.
//! The reqwest client for a route is chosen in one place, [`crate::proxy::clients`].

use std::fmt;
use std::net::IpAddr;

use super::env::EnvLookup;
pub use crate::config::outbound::{OutboundSetting, ProxyUrl};

/// How one upstream is reached. The key of the client cache: one HTTP client per route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    Direct,
    Proxy(ProxyUrl),
}

impl Route {
    pub fn proxy(&self) -> Option<&ProxyUrl> {
        match self {
            Route::Direct => None,
            Route::Proxy(url) => Some(url),
        }
    }
}

/// An upstream's route and where it comes from, for `provider show` and `routing explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub route: Route,
    /// E.g. `codex.providers.a.outbound_proxy`, `$HTTPS_PROXY`, `loopback relay`.
    pub source: String,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            route: Route::Direct,
            source: "default".into(),
        }
    }
}

impl fmt::Display for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route {
            Route::Direct => write!(f, "direct ({})", self.source),
            Route::Proxy(url) => write!(f, "via {url} ({})", self.source),
        }
    }
}

/// What an upstream without a setting of its own falls back to: `[proxy] outbound_proxy`,
/// then the environment.
#[derive(Debug, Clone, Default)]
pub struct OutboundDefaults {
    pub global: Option<OutboundSetting>,
    pub env: EnvProxies,
}

/// The proxy environment variables, read once (through the injected lookup) when the config is
/// compiled. Lower-case names win over upper-case ones, as in curl; empty values are unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvProxies {
    /// For `https` relays: `https_proxy` / `HTTPS_PROXY`, with the variable's name.
    pub https: Option<(String, ProxyUrl)>,
    /// For `http` relays: `http_proxy` / `HTTP_PROXY`.
    pub http: Option<(String, ProxyUrl)>,
    /// For either: `all_proxy` / `ALL_PROXY`.
    pub all: Option<(String, ProxyUrl)>,
    /// `no_proxy` / `NO_PROXY` entries.
    pub no_proxy: Vec<String>,
}

impl EnvProxies {
    /// Reads the variables. A value that is not a proxy URL is an error naming the variable
    /// (a value without a scheme, `host:port`, means `http://host:port`, as in curl).
    pub fn read(env: EnvLookup<'_>) -> Result<Self, String> {
        let get = |name: &str| {
            [name.to_ascii_lowercase(), name.to_string()]
                .into_iter()
                .find_map(|var| env(&var).filter(|v| !v.trim().is_empty()).map(|v| (var, v)))
        };
        let url = |name: &str| -> Result<Option<(String, ProxyUrl)>, String> {
            let Some((var, value)) = get(name) else {
                return Ok(None);
            };
            let value = value.trim();
            let value = if value.contains("://") {
                value.to_string()
            } else {
                format!("http://{value}")
            };
            ProxyUrl::parse(&value)
                .map(|url| Some((var.clone(), url)))
                .map_err(|e| format!("environment variable {var}: {e}"))
        };
        Ok(Self {
            https: url("HTTPS_PROXY")?,
            http: url("HTTP_PROXY")?,
            all: url("ALL_PROXY")?,
            no_proxy: get("NO_PROXY")
                .map(|(_, v)| {
                    v.split(',')
                        .map(|e| e.trim().to_string())
                        .filter(|e| !e.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The variable that would send a request for `http://127.0.0.1` through a proxy, if any
    /// (`HTTP_PROXY` or `ALL_PROXY` without a `NO_PROXY` entry covering 127.0.0.1). Codex
    /// 0.171 honours these for its request to the helper, so a user must know.
    pub fn captures_loopback(&self) -> Option<&str> {
        let (var, _) = self.http.as_ref().or(self.all.as_ref())?;
        (!no_proxy_matches(&self.no_proxy, "127.0.0.1")).then_some(var.as_str())
    }

    /// The environment's proxy for a relay, or why there is none.
    fn route_for(&self, scheme: &str, host: &str) -> Outbound {
        let direct = |why: &str| Outbound {
            route: Route::Direct,
            source: why.to_string(),
        };
        let chosen = match scheme {
            "https" => self.https.as_ref().or(self.all.as_ref()),
            _ => self.http.as_ref().or(self.all.as_ref()),
        };
        let Some((var, url)) = chosen else {
            return direct("no proxy set");
        };
        if is_loopback_host(host) {
            return direct(&format!("loopback relay; ${var} not used"));
        }
        if no_proxy_matches(&self.no_proxy, host) {
            return direct(&format!("NO_PROXY names {host}"));
        }
        Outbound {
            route: Route::Proxy(url.clone()),
            source: format!("${var}"),
        }
    }
}

/// Chooses an upstream's route. `settings` are the endpoint's, the provider's and `[proxy]`'s
/// `outbound_proxy`, each with its dotted key, most specific first: the first one set to a URL
/// or `"direct"` decides; `"env"` or nothing defers to the environment.
pub fn resolve(
    settings: &[(String, Option<&OutboundSetting>)],
    env: &EnvProxies,
    scheme: &str,
    host: &str,
) -> Outbound {
    for (key, setting) in settings {
        match setting {
            Some(OutboundSetting::Direct) => {
                return Outbound {
                    route: Route::Direct,
                    source: key.clone(),
                };
            }
            Some(OutboundSetting::Proxy(url)) => {
                return Outbound {
                    route: Route::Proxy(url.clone()),
                    source: key.clone(),
                };
            }
            Some(OutboundSetting::Env) => break,
            None => {}
        }
    }
    env.route_for(scheme, host)
}

/// `localhost` (and names under it), 127.0.0.0/8, `::1` and IPv4-mapped loopback.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    crate::net::is_loopback_name(host) || host.to_ascii_lowercase().ends_with(".localhost")
}

/// Whether a `NO_PROXY` list names `host`: `*`, a domain (with or without a leading `.` or
/// `*.`, matching it and its subdomains), an IP address or an IPv4/IPv6 CIDR block. Ports in
/// entries are ignored.
fn no_proxy_matches(entries: &[String], host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    entries.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        if entry == "*" {
            return true;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            return match (ip, net.parse::<IpAddr>(), bits.parse::<u32>()) {
                (Some(ip), Ok(net), Ok(bits)) => in_cidr(ip, net, bits),
                _ => false,
            };
        }
        let entry = entry.trim_start_matches('[');
        let entry = match entry.split_once(']') {
            Some((addr, _)) => addr,
            None if entry.matches(':').count() == 1 => entry.split(':').next().unwrap_or(entry),
            None => entry,
        };
        if let (Some(ip), Ok(listed)) = (ip, entry.parse::<IpAddr>()) {
            return ip == listed;
        }
        let domain = entry.trim_start_matches("*.").trim_start_matches('.');
        !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
    })
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> EnvProxies {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvProxies::read(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .unwrap()
    }

    fn setting(text: &str) -> OutboundSetting {
        OutboundSetting::try_from(text.to_string()).unwrap()
    }

    #[test]
    fn proxy_urls_are_checked_and_never_show_credentials() {
        let url = ProxyUrl::parse("http://alice:s3cret@proxy.example:8080").unwrap();
        assert_eq!(url.to_string(), "http://***@proxy.example:8080");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            ProxyUrl::parse("socks5h://p.example").unwrap().to_string(),
            "socks5h://p.example"
        );
        for bad in [
            "ftp://alice:s3cret@proxy.example",
            "http://alice:s3cret@proxy.example/path",
            "alice:s3cret@proxy.example",
            "socks4://proxy.example:1080",
        ] {
            let err = ProxyUrl::parse(bad).unwrap_err();
            assert!(!err.contains("s3cret") && !err.contains("alice"), "{err}");
            assert!(
                err.contains("allowed") || err.contains("only scheme"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_most_specific_setting_wins_then_the_environment() {
        let env = env(&[("HTTPS_PROXY", "http://env-proxy:3128")]);
        let global = setting("socks5://global:1080");
        let provider = setting("direct");
        let endpoint = setting("http://endpoint:8080");
        let key = |k: &str| k.to_string();
        let pick = |settings: &[(String, Option<&OutboundSetting>)]| {
            resolve(settings, &env, "https", "relay.example")
        };
        let all = [
            (key("endpoint"), Some(&endpoint)),
            (key("provider"), Some(&provider)),
            (key("global"), Some(&global)),
        ];
        assert_eq!(
            pick(&all).to_string(),
            "via http://endpoint:8080 (endpoint)"
        );
        assert_eq!(pick(&all[1..]).to_string(), "direct (provider)");
        assert_eq!(
            pick(&all[2..]).to_string(),
            "via socks5://global:1080 (global)"
        );
        assert_eq!(
            pick(&[(key("global"), None)]).to_string(),
            "via http://env-proxy:3128 ($HTTPS_PROXY)"
        );
        let env_setting = setting("env");
        assert_eq!(
            pick(&[
                (key("provider"), Some(&env_setting)),
                (key("global"), Some(&global))
            ])
            .to_string(),
            "via http://env-proxy:3128 ($HTTPS_PROXY)"
        );
    }

    #[test]
    fn explicit_settings_apply_to_loopback_but_the_environment_does_not() {
        let env = env(&[("ALL_PROXY", "socks5h://env:1080")]);
        let global = setting("http://global:8080");
        for host in [
            "127.0.0.1",
            "localhost",
            "[::1]",
            "127.9.9.9",
            "api.localhost",
        ] {
            assert_eq!(
                resolve(&[], &env, "http", host).route,
                Route::Direct,
                "{host}"
            );
            assert!(
                resolve(&[("g".into(), Some(&global))], &env, "http", host)
                    .route
                    .proxy()
                    .is_some()
            );
        }
        assert!(
            resolve(&[], &env, "http", "10.0.0.2")
                .route
                .proxy()
                .is_some()
        );
    }

    #[test]
    fn environment_variables_by_scheme_case_and_no_proxy() {
        let env = env(&[
            ("HTTP_PROXY", "upper:1"),
            ("http_proxy", "http://lower:2"),
            ("HTTPS_PROXY", ""),
            ("ALL_PROXY", "socks5://all:3"),
            (
                "NO_PROXY",
                "internal.example, .corp, 10.0.0.0/8, 192.168.1.5:443,*.lan",
            ),
        ]);
        let route = |scheme, host| resolve(&[], &env, scheme, host).to_string();
        assert_eq!(
            route("http", "relay.example"),
            "via http://lower:2 ($http_proxy)"
        );
        assert_eq!(
            route("https", "relay.example"),
            "via socks5://all:3 ($ALL_PROXY)"
        );
        for host in [
            "internal.example",
            "a.internal.example",
            "x.corp",
            "10.1.2.3",
            "192.168.1.5",
            "box.lan",
        ] {
            assert!(
                route("https", host).starts_with("direct (NO_PROXY"),
                "{host}"
            );
        }
        for host in ["notinternal.example", "11.0.0.1", "corp.example"] {
            assert!(route("https", host).starts_with("via"), "{host}");
        }
        assert!(no_proxy_matches(&["*".into()], "anything"));
        assert!(no_proxy_matches(&["::1/128".into()], "[::1]"));
    }

    #[test]
    fn a_proxy_that_would_capture_the_codex_hop_is_noticed() {
        let proxy = [("http_proxy", "http://p:1")];
        assert_eq!(env(&proxy).captures_loopback(), Some("http_proxy"));
        assert_eq!(
            env(&[("ALL_PROXY", "socks5://p:1"), ("NO_PROXY", "localhost")]).captures_loopback(),
            Some("ALL_PROXY")
        );
        for exempt in ["127.0.0.1,localhost,::1", "127.0.0.0/8", "*"] {
            assert_eq!(
                env(&[proxy[0], ("NO_PROXY", exempt)]).captures_loopback(),
                None
            );
        }
        assert_eq!(
            env(&[("HTTPS_PROXY", "http://p:1")]).captures_loopback(),
            None
        );
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let err =
            EnvProxies::read(&|name| (name == "HTTPS_PROXY").then(|| "ftp://u:pw@x".to_string()))
                .unwrap_err();
        assert!(err.contains("HTTPS_PROXY") && !err.contains("pw"), "{err}");
    }
}
