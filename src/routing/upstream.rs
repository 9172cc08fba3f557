//! One provider endpoint, resolved from config into what a request needs.

use std::collections::BTreeMap;
use std::fmt;

use super::outbound::Outbound;

/// A secret value (token or key). Never printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The credential the helper sends for an endpoint, in place of the client's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credential {
    /// Sent as `Authorization: Bearer …`.
    pub bearer: Option<Secret>,
    /// Sent as `X-API-Key: …`.
    pub api_key: Option<Secret>,
    /// Environment variables the config names but that are not set. An endpoint with any is
    /// not used, rather than sent the client's own credential by mistake.
    pub missing_env: Vec<String>,
}

impl Credential {
    /// True when the helper has its own credential, so the client's is replaced.
    pub fn is_configured(&self) -> bool {
        self.bearer.is_some() || self.api_key.is_some()
    }
}

/// An upstream base URL split into what URL building needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Scheme, host and port, e.g. `https://relay.example:8443`.
    origin: String,
    /// Path without a trailing slash, e.g. `/v1`; empty for none.
    path: String,
    /// The host as written in the URL (IPv6 in brackets), for proxy and loop decisions.
    host: String,
    /// The port, explicit or the scheme's default.
    port: u16,
}

impl BaseUrl {
    /// Parses an absolute `http`/`https` URL; query strings and fragments are not allowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text.trim())
            .map_err(|e| format!("`{text}` is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}` must start with http:// or https://"));
        }
        if url.host_str().is_none() {
            return Err(format!("`{text}` has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{text}` must not have a query string or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "`{}` must not carry credentials; use auth_token_env or api_key_env",
                url.host_str().unwrap_or_default()
            ));
        }
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/').to_string();
        Ok(Self {
            origin,
            path,
            host: url.host_str().unwrap_or_default().to_string(),
            port: url.port_or_known_default().unwrap_or(80),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.origin.split("://").next().unwrap_or_default()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path without a trailing slash (`/codex`, `/v1`), empty for none.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The upstream URL for a client request: base URL + request path + query, where the
    /// request path's leading segments that the base path already ends with are not repeated:
    ///
    /// | base path    | Codex asks for  | upstream path             |
    /// |--------------|-----------------|---------------------------|
    /// | (none)       | `/v1/responses` | `/v1/responses`           |
    /// | `/v1`        | `/v1/responses` | `/v1/responses`           |
    /// | `/api/v1`    | `/v1/responses` | `/api/v1/responses`       |
    /// | `/openai/v1` | `/v1/responses` | `/openai/v1/responses`    |
    /// | `/codex`     | `/v1/responses` | `/codex/v1/responses`     |
    /// | `/v1`        | `/responses`    | `/v1/responses`           |
    ///
    /// Segments are compared whole: `/v1` and `/v1beta` do not overlap.
    pub fn join(&self, path_and_query: &str) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let rest = strip_overlap(&self.path, path);
        let mut url =
            String::with_capacity(self.origin.len() + self.path.len() + path_and_query.len());
        url.push_str(&self.origin);
        url.push_str(&self.path);
        if !rest.is_empty() && !rest.starts_with('/') {
            url.push('/');
        }
        url.push_str(rest);
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

/// `path` without its longest leading run of segments that `base` ends with.
fn strip_overlap<'a>(base: &str, path: &'a str) -> &'a str {
    // Each `/` in the base starts a suffix; the first is the longest.
    base.match_indices('/')
        .find_map(|(at, _)| {
            let rest = path.strip_prefix(&base[at..])?;
            (rest.is_empty() || rest.starts_with('/')).then_some(rest)
        })
        .unwrap_or(path)
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin, self.path)
    }
}

/// An endpoint's name, `provider.endpoint`: how health, signals, limits, affinity and records
/// refer to it. Made once when the config is compiled, not formatted for every request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey(std::sync::Arc<str>);

impl EndpointKey {
    pub fn new(provider: &str, endpoint: &str) -> Self {
        Self(format!("{provider}.{endpoint}").into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for EndpointKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for EndpointKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for EndpointKey {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

/// One provider endpoint as a routing candidate.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub provider: String,
    pub endpoint: String,
    /// `provider.endpoint` (see [`EndpointKey`]).
    pub key: EndpointKey,
    pub base_url: BaseUrl,
    pub credential: Credential,
    /// Provider tags with the endpoint's over them.
    pub tags: BTreeMap<String, String>,
    pub model_mapping: BTreeMap<String, String>,
    pub supported_models: BTreeMap<String, bool>,
    pub limit: Option<ConcurrencyLimit>,
    /// The provider's `price_multiplier` (1 when unset).
    pub price_multiplier: f64,
    /// Directly or through which outbound proxy (see [`super::outbound`]).
    pub outbound: Outbound,
}

impl Upstream {
    /// `provider.endpoint`, the name used in logs, records and CLI output.
    pub fn key(&self) -> &EndpointKey {
        &self.key
    }
}

/// At most `max` requests in flight across every endpoint sharing `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyLimit {
    pub max: u32,
    pub group: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_does_not_double_the_base_path() {
        let v1 = BaseUrl::parse("https://relay.example/v1/").unwrap();
        assert_eq!(
            v1.join("/v1/responses"),
            "https://relay.example/v1/responses"
        );
        assert_eq!(v1.join("/responses"), "https://relay.example/v1/responses");
        assert_eq!(v1.join("/v1"), "https://relay.example/v1");
        assert_eq!(
            v1.join("/v1beta/models"),
            "https://relay.example/v1/v1beta/models"
        );
        assert_eq!(
            v1.join("/v1/models?client_version=0.171.0"),
            "https://relay.example/v1/models?client_version=0.171.0"
        );
        let bare = BaseUrl::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            bare.join("/v1/responses?a=b"),
            "http://127.0.0.1:9000/v1/responses?a=b"
        );
        assert_eq!(bare.to_string(), "http://127.0.0.1:9000");
    }

    #[test]
    fn join_does_not_repeat_the_segments_a_base_path_ends_with() {
        let cases = [
            (
                "https://relay.example",
                "/v1/responses",
                "https://relay.example/v1/responses",
            ),
            (
                "https://relay.example/v1",
                "/v1/responses",
                "https://relay.example/v1/responses",
            ),
            (
                "https://relay.example/api/v1",
                "/v1/responses",
                "https://relay.example/api/v1/responses",
            ),
            (
                "https://relay.example/openai/v1/",
                "/v1/responses",
                "https://relay.example/openai/v1/responses",
            ),
            (
                "https://relay.example/codex",
                "/v1/responses",
                "https://relay.example/codex/v1/responses",
            ),
            (
                "https://relay.example/api/v1",
                "/api/v1/responses",
                "https://relay.example/api/v1/responses",
            ),
            (
                "https://relay.example/api/v1",
                "/responses",
                "https://relay.example/api/v1/responses",
            ),
            (
                "https://relay.example/api/v1",
                "/v1beta/models",
                "https://relay.example/api/v1/v1beta/models",
            ),
            (
                "https://relay.example/api/v1",
                "/v1/models?client_version=1",
                "https://relay.example/api/v1/models?client_version=1",
            ),
            (
                "https://relay.example/tenant/v1",
                "/v1",
                "https://relay.example/tenant/v1",
            ),
        ];
        for (base, request, want) in cases {
            assert_eq!(
                BaseUrl::parse(base).unwrap().join(request),
                want,
                "{base} + {request}"
            );
        }
    }

    #[test]
    fn parse_rejects_what_cannot_be_a_relay_base() {
        assert!(BaseUrl::parse("relay.example/v1").is_err());
        assert!(BaseUrl::parse("ftp://relay.example").is_err());
        assert!(BaseUrl::parse("https://relay.example/v1?key=x").is_err());
        let err = BaseUrl::parse("https://user:pw@relay.example").unwrap_err();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credential {
            bearer: Some(Secret::new("sk-live-123")),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("sk-live"));
    }
}
