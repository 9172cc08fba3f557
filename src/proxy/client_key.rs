//! Client authentication for a personal setup: one shared key (`[proxy] client_key_env`
//! names the environment variable that holds it; the key is never written in the config).
//!
//! Who must present it: every request (HTTP and the WebSocket handshake) from another
//! machine, and every request relayed by a proxy on this one (it carries `Forwarded`,
//! `X-Forwarded-For` or `X-Real-IP`, so it may come from anywhere). A direct connection from
//! this machine's loopback is not asked: it is the user's own Codex, which `serve` switches on
//! with a placeholder credential, and a program on this machine could read the key's variable
//! anyway. This is the admin API's rule for its token too.
//!
//! How: `Authorization: Bearer <key>`, compared in constant time; the header is removed before
//! the relay (which gets its own credential), whoever sent it. Anything else from a peer that
//! must present the key is answered 401 with a JSON error saying how to configure it.
//!
//! Team mode gives each member a key of their own instead ([`super::members`]); `serve`
//! refuses both at once, as both would be sent in `Authorization`.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::replies::Refusal;
use crate::net::{FORWARDED_HEADERS, is_loopback_ip};
use crate::routing::Secret;

/// The shortest key accepted: shorter ones are guessable.
pub const MIN_KEY_CHARS: usize = 16;

/// The address a request's connection came from (a request extension set by the server).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The key clients present, with the variable it was read from (named in answers).
pub struct ClientKey {
    key: Secret,
    env: String,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientKey(${})", self.env)
    }
}

impl ClientKey {
    /// The key `[proxy] client_key_env` names, read from `env`; `None` when the key is not
    /// configured. A named variable that is unset, empty or too short is an error: a server
    /// the user meant to protect must not start open.
    pub fn from_env(
        client_key_env: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Self>> {
        let Some(name) = client_key_env.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let key = env(name).map(|k| k.trim().to_string()).unwrap_or_default();
        if key.is_empty() {
            anyhow::bail!(
                "[proxy] client_key_env names the environment variable {name}, which is not set (or empty): \
                 set it to the client key (at least {MIN_KEY_CHARS} characters) where codex-helper runs, \
                 or remove client_key_env"
            );
        }
        if key.chars().count() < MIN_KEY_CHARS {
            anyhow::bail!(
                "the client key in {name} ([proxy] client_key_env) must be at least {MIN_KEY_CHARS} characters"
            );
        }
        Ok(Some(Self {
            key: Secret::new(key),
            env: name.to_string(),
        }))
    }

    /// The environment variable the key came from.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// Whether `presented` is the key, in time that does not depend on where they differ.
    fn accepts(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.key.expose().as_bytes(), presented)
    }
}

/// Checks a request's key and removes it from `headers` (a relay never sees it). `peer` is
/// where the connection came from (`None`: unknown, so asked like a remote one).
pub fn check(
    key: Option<&ClientKey>,
    peer: Option<SocketAddr>,
    headers: &mut HeaderMap,
) -> Result<(), Refusal> {
    let Some(key) = key else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().strip_prefix(b"Bearer ").unwrap_or_default());
    if presented.is_some_and(|p| key.accepts(p.trim_ascii())) {
        headers.remove(header::AUTHORIZATION);
        return Ok(());
    }
    let local = peer.is_some_and(|p| is_loopback_ip(p.ip()))
        && !FORWARDED_HEADERS
            .iter()
            .any(|name| headers.contains_key(name));
    if local {
        return Ok(());
    }
    let (code, what) = if presented.is_some() {
        (
            "bad_client_key",
            "carries an `Authorization` that is not the client key",
        )
    } else {
        ("client_key_required", "carries no client key")
    };
    Err(Refusal {
        status: StatusCode::UNAUTHORIZED,
        code,
        message: format!(
            "codex-helper asks requests from other machines (or through a proxy) for its client key, \
             and this one {what}. Send `Authorization: Bearer <key>` with the key held in ${} where \
             codex-helper runs (for Codex: a provider with base_url pointing here and env_key naming a \
             variable that holds the key).",
            key.env
        ),
    })
}

/// The header a 401 carries: how to authenticate.
pub fn challenge() -> (header::HeaderName, HeaderValue) {
    (
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"codex-helper\""),
    )
}

/// Equal bytes, compared without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ck-0123456789abcdef";

    fn key() -> ClientKey {
        let env = |name: &str| (name == "CK").then(|| KEY.to_string());
        ClientKey::from_env(Some("CK"), &env).unwrap().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn remote() -> Option<SocketAddr> {
        Some("192.0.2.7:50000".parse().unwrap())
    }

    fn local() -> Option<SocketAddr> {
        Some("127.0.0.1:50000".parse().unwrap())
    }

    #[test]
    fn the_key_must_be_set_and_long_enough_when_named() {
        let none = |_: &str| None;
        assert!(ClientKey::from_env(None, &none).unwrap().is_none());
        let e = ClientKey::from_env(Some("CK"), &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CK") && e.contains("not set"), "{e}");
        let short = |_: &str| Some("short".to_string());
        let e = ClientKey::from_env(Some("CK"), &short)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 16"), "{e}");
        assert!(!format!("{:?}", key()).contains(KEY));
    }

    #[test]
    fn remote_requests_need_the_key_and_it_never_goes_further() {
        let key = key();
        let mut good = headers(&[("authorization", &format!("Bearer {KEY}"))]);
        assert!(check(Some(&key), remote(), &mut good).is_ok());
        assert!(!good.contains_key("authorization"));

        let mut missing = headers(&[]);
        let refusal = check(Some(&key), remote(), &mut missing).unwrap_err();
        assert_eq!(refusal.status, StatusCode::UNAUTHORIZED);
        assert_eq!(refusal.code, "client_key_required");
        assert!(refusal.message.contains("$CK"), "{}", refusal.message);

        for wrong in [
            "Bearer ck-0123456789abcdeX",
            "Bearer ck-0123456789abcde",
            "Basic x",
        ] {
            let mut h = headers(&[("authorization", wrong)]);
            let refusal = check(Some(&key), remote(), &mut h).unwrap_err();
            assert_eq!(refusal.code, "bad_client_key", "{wrong}");
            assert!(!refusal.message.contains(KEY));
        }
        // Unknown peers are asked like remote ones.
        assert!(check(Some(&key), None, &mut headers(&[])).is_err());
    }

    #[test]
    fn loopback_is_not_asked_unless_it_relays_for_others() {
        let key = key();
        let mut placeholder = headers(&[("authorization", "Bearer codex-helper-placeholder")]);
        assert!(check(Some(&key), local(), &mut placeholder).is_ok());
        assert_eq!(
            placeholder["authorization"], "Bearer codex-helper-placeholder",
            "Codex's own credential is left to the relay rules"
        );
        let mut with_key = headers(&[("authorization", &format!("Bearer {KEY}"))]);
        assert!(check(Some(&key), local(), &mut with_key).is_ok());
        assert!(!with_key.contains_key("authorization"));
        for forwarded in ["forwarded", "x-forwarded-for", "x-real-ip"] {
            let mut h = headers(&[(forwarded, "192.0.2.7")]);
            assert!(check(Some(&key), local(), &mut h).is_err(), "{forwarded}");
        }
    }

    #[test]
    fn without_a_key_everything_passes_untouched() {
        let mut h = headers(&[("authorization", "Bearer anything")]);
        assert!(check(None, remote(), &mut h).is_ok());
        assert!(h.contains_key("authorization"));
    }
}
