//! Header hygiene between client, proxy and upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::ClientAuth;
use crate::redact::Redactor;
use crate::routing::Credential;

// Names as `HeaderName`s, not `&str`s: a `&str` is parsed and hashed again at every lookup,
// which showed in profiles of the request path. These are the ones `http` has no constants for.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const CHATGPT_ACCOUNT_ID: HeaderName = HeaderName::from_static("chatgpt-account-id");
const OPENAI_MODEL: HeaderName = HeaderName::from_static("openai-model");

/// Hop-by-hop headers (RFC 9110 §7.6.1) and others that describe one connection, not the message.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including any named in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Headers that carry Codex's own identity with OpenAI (its ChatGPT login).
const CLIENT_IDENTITY: [HeaderName; 4] = [
    header::AUTHORIZATION,
    X_API_KEY,
    CHATGPT_ACCOUNT_ID,
    HeaderName::from_static("x-openai-fedramp"),
];

/// Headers for the upstream request, from the client's.
///
/// `Host` and the length go (the client library sets them); the body's encoding is dropped
/// when the proxy decoded it; the upstream is asked for an uncompressed reply so the proxy can
/// read usage from it; a configured credential replaces the client's. With `auth.strip` (for
/// Codex, every preset but `default`), the client's own credential and ChatGPT account never
/// reach a relay, whether or not the helper has a key of its own; a ChatGPT login never does
/// with any client; the client's placeholder credential is never forwarded.
pub fn upstream_request_headers(
    client: &HeaderMap,
    credential: &Credential,
    body_decoded: bool,
    auth: ClientAuth<'_>,
) -> HeaderMap {
    let mut headers = client.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    if body_decoded {
        headers.remove(header::CONTENT_ENCODING);
    }
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    // A ChatGPT login (it comes with `chatgpt-account-id`) never goes to a relay, whatever the
    // preset: it is the user's OpenAI account, not a relay key.
    if auth.strip || client.contains_key(CHATGPT_ACCOUNT_ID) {
        for name in CLIENT_IDENTITY {
            headers.remove(name);
        }
    }
    // A placeholder (what `switch on` gives Codex) is not a credential.
    let is_placeholder = |value: &HeaderValue| {
        let token = value.as_bytes().strip_prefix(b"Bearer ");
        auth.placeholder
            .is_some_and(|p| token == Some(p.as_bytes()))
    };
    if headers
        .get(header::AUTHORIZATION)
        .is_some_and(is_placeholder)
    {
        headers.remove(header::AUTHORIZATION);
    }
    if credential.is_configured() {
        headers.remove(header::AUTHORIZATION);
        headers.remove(X_API_KEY);
        if let Some(token) = &credential.bearer {
            if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
                value.set_sensitive(true);
                headers.insert(header::AUTHORIZATION, value);
            }
        }
        if let Some(key) = &credential.api_key {
            if let Ok(mut value) = HeaderValue::from_str(key.expose()) {
                value.set_sensitive(true);
                headers.insert(X_API_KEY, value);
            }
        }
    }
    headers
}

/// Headers for the client's response, from the upstream's.
///
/// The length is dropped (the proxy's body decides it), the encoding too when the proxy
/// decoded the body, and `openai-model` is set to the model the client asked for: Codex warns
/// "model rerouted" when it differs, which a model mapping would otherwise always trigger.
/// What is the relay's own is not passed on: its cookies (a session with the relay, not the
/// client's; in team mode, every member would share it), and any header that echoes one of
/// the helper's keys.
pub fn client_response_headers(
    mut headers: HeaderMap,
    body_decoded: bool,
    requested_model: Option<&str>,
    redactor: &Redactor,
) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::SET_COOKIE);
    let echoed: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, value)| redactor.holds_secret(value.as_bytes()))
        .map(|(name, _)| name.clone())
        .collect();
    for name in echoed {
        headers.remove(name);
    }
    if body_decoded {
        headers.remove(header::CONTENT_ENCODING);
    }
    if headers.contains_key(OPENAI_MODEL) {
        match requested_model.and_then(|m| HeaderValue::from_str(m).ok()) {
            Some(model) => {
                headers.insert(OPENAI_MODEL, model);
            }
            None => {
                headers.remove(OPENAI_MODEL);
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Secret;

    fn client() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:3211"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "1"),
            ("keep-alive", "timeout=5"),
            ("content-length", "10"),
            ("content-encoding", "zstd"),
            ("accept-encoding", "zstd,gzip"),
            ("authorization", "Bearer client-token"),
            ("x-api-key", "client-key"),
            ("session-id", "s1"),
            ("accept", "text/event-stream"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        h
    }

    /// A client whose credentials go as they are.
    const KEEP: ClientAuth<'static> = ClientAuth {
        strip: false,
        placeholder: None,
    };

    #[test]
    fn configured_credential_replaces_the_clients_and_hop_by_hop_goes() {
        let credential = Credential {
            bearer: Some(Secret::new("relay-token")),
            ..Default::default()
        };
        let h = upstream_request_headers(&client(), &credential, true, KEEP);
        assert_eq!(h["authorization"], "Bearer relay-token");
        assert!(h.get("x-api-key").is_none());
        for gone in [
            "host",
            "connection",
            "x-drop-me",
            "keep-alive",
            "content-length",
            "content-encoding",
        ] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        assert_eq!(h["accept-encoding"], "identity");
        assert_eq!(h["session-id"], "s1");
        assert_eq!(h["accept"], "text/event-stream");
    }

    #[test]
    fn api_key_credential_and_passthrough() {
        let credential = Credential {
            api_key: Some(Secret::new("k")),
            ..Default::default()
        };
        let h = upstream_request_headers(&client(), &credential, false, KEEP);
        assert_eq!(h["x-api-key"], "k");
        assert!(h.get("authorization").is_none());
        assert_eq!(
            h["content-encoding"], "zstd",
            "kept when the body was not decoded"
        );

        let h = upstream_request_headers(&client(), &Credential::default(), false, KEEP);
        assert_eq!(h["authorization"], "Bearer client-token");
        assert_eq!(h["x-api-key"], "client-key");

        let mut placeholder = HeaderMap::new();
        placeholder.insert(
            "authorization",
            "Bearer codex-helper-placeholder".parse().unwrap(),
        );
        let codex = ClientAuth {
            strip: false,
            placeholder: Some("codex-helper-placeholder"),
        };
        assert!(
            upstream_request_headers(&placeholder, &Credential::default(), false, codex)
                .get("authorization")
                .is_none()
        );
        assert!(
            upstream_request_headers(&placeholder, &Credential::default(), false, KEEP)
                .get("authorization")
                .is_some(),
            "a client without a placeholder: the token is its own"
        );

        // Bridge presets: Codex's own login never reaches a relay.
        let mut with_account = client();
        with_account.insert("chatgpt-account-id", "acct-1".parse().unwrap());
        for strip in [true, false] {
            let auth = ClientAuth {
                strip,
                placeholder: None,
            };
            let h = upstream_request_headers(&with_account, &Credential::default(), false, auth);
            for gone in ["authorization", "x-api-key", "chatgpt-account-id"] {
                assert!(h.get(gone).is_none(), "{gone} (strip {strip})");
            }
        }
        let credential = Credential {
            bearer: Some(Secret::new("relay-token")),
            ..Default::default()
        };
        let strip = ClientAuth {
            strip: true,
            placeholder: None,
        };
        let h = upstream_request_headers(&with_account, &credential, false, strip);
        assert_eq!(h["authorization"], "Bearer relay-token");
        assert!(h.get("chatgpt-account-id").is_none());
    }

    #[test]
    fn response_model_header_matches_the_request() {
        let mut upstream = HeaderMap::new();
        upstream.insert("openai-model", "relay-model".parse().unwrap());
        upstream.insert("content-length", "5".parse().unwrap());
        upstream.insert("content-encoding", "gzip".parse().unwrap());
        upstream.insert("x-codex-turn-state", "t".parse().unwrap());
        let none = Redactor::default();
        let h = client_response_headers(upstream.clone(), true, Some("gpt-5.1"), &none);
        assert_eq!(h["openai-model"], "gpt-5.1");
        assert!(h.get("content-length").is_none() && h.get("content-encoding").is_none());
        assert_eq!(h["x-codex-turn-state"], "t");
        assert!(
            client_response_headers(upstream, false, None, &none)
                .get("openai-model")
                .is_none()
        );
    }

    #[test]
    fn the_relays_cookies_and_echoes_of_our_keys_stay_with_the_relay() {
        let mut upstream = HeaderMap::new();
        upstream.insert("set-cookie", "relay_session=abc; Path=/".parse().unwrap());
        upstream.insert("x-debug-auth", "Bearer relay-secret-key".parse().unwrap());
        upstream.append("x-echo", "fine".parse().unwrap());
        upstream.append("x-echo", "k=relay-secret-key".parse().unwrap());
        upstream.insert("x-request-id", "req_123".parse().unwrap());
        let keys = Redactor::new(["relay-secret-key"]);
        let h = client_response_headers(upstream, false, None, &keys);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-request-id"]);
    }
}
