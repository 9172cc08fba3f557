//! The `outbound_proxy` setting as the config holds it: `"direct"`, `"env"`, or a proxy URL
//! whose credentials are never shown. How a setting becomes a route is
//! [`crate::routing::outbound`]'s business.

use std::fmt;

use serde::Deserialize;

/// An outbound proxy URL: `http`, `https`, `socks5` or `socks5h`, a host and a port, perhaps
/// a user and password. `Display` and `Debug` hide the user and password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl(reqwest::Url);

impl ProxyUrl {
    /// Parses and checks a proxy URL. The error never quotes the credentials.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let shown = mask_credentials(text);
        let url = reqwest::Url::parse(text)
            .map_err(|e| format!("`{shown}` is not a valid proxy URL: {e}; {ALLOWED}"))?;
        if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
            return Err(format!(
                "`{shown}` is not an http, https, socks5 or socks5h URL; {ALLOWED}"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{shown}` has no host; {ALLOWED}"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{shown}` must be only scheme, host and port (no path, query or fragment)"
            ));
        }
        Ok(Self(url))
    }

    /// The full URL, credentials included: only for building the HTTP client.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The password, if any (so relay text that echoes it can be masked).
    pub fn password(&self) -> Option<&str> {
        self.0.password()
    }

    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }
}

const ALLOWED: &str = "allowed: \"direct\", \"env\", or a URL such as http://host:port, https://…, socks5://…, socks5h://…";

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        let hidden = if url.username().is_empty() && url.password().is_none() {
            ""
        } else {
            "***@"
        };
        let host = url.host_str().unwrap_or_default();
        match url.port_or_known_default() {
            Some(port) => write!(f, "{}://{hidden}{host}:{port}", url.scheme()),
            None => write!(f, "{}://{hidden}{host}", url.scheme()),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// `scheme://user:pass@host` → `scheme://***@host`, for quoting text that did not parse.
fn mask_credentials(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    match text[start..].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    }
}

/// An `outbound_proxy` value in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum OutboundSetting {
    /// `"direct"`: no proxy, whatever the wider settings or the environment say.
    Direct,
    /// `"env"`: the environment variables (the same as not setting the key).
    Env,
    /// Through this proxy, also for loopback relays.
    Proxy(ProxyUrl),
}

impl schemars::JsonSchema for OutboundSetting {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OutboundSetting".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "\"direct\", \"env\", or a proxy URL: http://host:port, https://…, socks5://…, socks5h://…"
        })
    }
}

impl TryFrom<String> for OutboundSetting {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "direct" | "none" => Ok(Self::Direct),
            "env" => Ok(Self::Env),
            _ => ProxyUrl::parse(&text).map(Self::Proxy),
        }
    }
}
