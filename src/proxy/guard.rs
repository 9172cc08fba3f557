//! What the proxy refuses before it reads a body or opens a connection to a relay.
//!
//! The proxy holds the user's relay keys and listens on loopback, so anything that can make a
//! request to `127.0.0.1:3211` could spend relay credit. Codex is a command-line client: it
//! never sends an `Origin`, and it addresses the proxy by a loopback name. A web page can do
//! neither without the browser saying so, so refusing
//! - requests that carry browser-only headers (`Origin`, `Sec-Fetch-Site`): cross-site
//!   requests, form posts, `text/plain` "simple" requests and CORS preflights;
//! - requests addressed (`Host`) to any other name: DNS rebinding, where a page's own name
//!   resolves to 127.0.0.1;
//!
//! shuts those out. Paths with dot segments are refused too: a relay or a server in front of
//! it would resolve `..` and the request would leave the relay's base path with our key.

use http::request::Parts;
use http::{HeaderName, StatusCode, header};

use super::loops::{self, InstanceId};
use super::replies::Refusal;
use crate::net::{host_name, is_loopback_name};

/// A header only browsers send (with `Origin`, how a browser request is recognised).
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Longest piece of a client's `Host` quoted back in a refusal.
const QUOTE_MAX: usize = 100;

/// Checks a request's head; `allowed_hosts` are the names `[proxy] allowed_hosts` adds, `me`
/// this process's id in the hop header (a request that already passed here is a loop).
pub fn admit(parts: &Parts, allowed_hosts: &[String], me: &InstanceId) -> Result<(), Refusal> {
    if let Some(header) = [header::ORIGIN, SEC_FETCH_SITE]
        .into_iter()
        .find(|name| parts.headers.contains_key(name))
    {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            code: "browser_request_refused",
            message: format!(
                "codex-helper refuses requests from web browsers (this one carries `{header}`): \
                 a web page must not be able to use your relays through the local proxy"
            ),
        });
    }
    let named = parts
        .headers
        .get_all(header::HOST)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .chain(parts.uri.authority().map(|a| a.as_str().to_string()));
    for host in named {
        if !host_allowed(&host, allowed_hosts) {
            let quoted: String = host.chars().take(QUOTE_MAX).collect();
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                code: "host_not_allowed",
                message: format!(
                    "codex-helper only answers requests addressed to this machine by a loopback name \
                     (localhost, 127.0.0.1, [::1]); this one was addressed to `{quoted}`. If you reach \
                     codex-helper through another name (a reverse proxy, a team host), add it to \
                     `allowed_hosts` in the [proxy] section of the config."
                ),
            });
        }
    }
    loops::check(&parts.headers, me)?;
    if has_dot_segment(parts.uri.path()) {
        return Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_path",
            message: "codex-helper refuses request paths with `.` or `..` segments (also \
                      percent-encoded) or encoded slashes: they could leave the relay's base path"
                .into(),
        });
    }
    Ok(())
}

/// Whether a `Host` value (a name or address, with or without a port) is loopback or listed.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_name(host.trim());
    is_loopback_name(name)
        || allowed.iter().any(|entry| {
            let entry = entry.trim();
            entry == "*" || host_name(entry).eq_ignore_ascii_case(name)
        })
}

/// Whether a path has a `.` or `..` segment, also percent-encoded, or a segment with an
/// encoded slash or backslash (which a server may decode into a separator and then resolve).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = percent_decode(segment);
        decoded == b"." || decoded == b".." || decoded.contains(&b'/') || decoded.contains(&b'\\')
    })
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> InstanceId {
        InstanceId::random()
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::post(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn loopback_names_are_admitted_with_any_port() {
        for host in [
            "127.0.0.1:3211",
            "127.0.0.1",
            "localhost:3211",
            "LOCALHOST",
            "localhost.:3211",
            "[::1]:3211",
            "[::1]",
            "127.1.2.3:80",
            "[::ffff:127.0.0.1]:3211",
        ] {
            assert!(host_allowed(host, &[]), "{host}");
            assert!(admit(&parts("/v1/responses", &[("host", host)]), &[], &me()).is_ok());
        }
    }

    #[test]
    fn other_names_are_refused_unless_listed() {
        for host in [
            "evil.example",
            "evil.example:3211",
            "192.168.1.10:3211",
            "[::ffff:10.0.0.1]",
            "localhost.evil.example",
        ] {
            let refusal =
                admit(&parts("/v1/responses", &[("host", host)]), &[], &me()).unwrap_err();
            assert_eq!(refusal.status, StatusCode::FORBIDDEN);
            assert_eq!(refusal.code, "host_not_allowed");
            assert!(
                refusal.message.contains("allowed_hosts"),
                "{}",
                refusal.message
            );
        }
        let allowed = vec!["relay.team.lan".to_string()];
        assert!(host_allowed("Relay.Team.Lan:3211", &allowed));
        assert!(!host_allowed("other.team.lan", &allowed));
        assert!(host_allowed("anything", &["*".to_string()]));
        // An absolute-form request target names a host too.
        let absolute = parts("http://evil.example/v1/responses", &[("host", "127.0.0.1")]);
        assert!(admit(&absolute, &[], &me()).is_err());
    }

    #[test]
    fn browser_requests_are_refused() {
        for header in [
            ("origin", "https://evil.example"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
        ] {
            let refusal = admit(
                &parts("/v1/responses", &[("host", "127.0.0.1:3211"), header]),
                &["*".into()],
                &me(),
            )
            .unwrap_err();
            assert_eq!(refusal.code, "browser_request_refused");
        }
    }

    #[test]
    fn dot_segments_are_refused_plain_or_encoded() {
        for path in [
            "/v1/../../tenantB/v1/responses",
            "/v1/%2e%2e/%2E%2E/tenantB/v1/responses",
            "/v1/./responses",
            "/v1/.%2e/x",
            "/v1/..%2f..%2ftenantB/responses",
            "/v1/..%5c..%5ctenantB",
        ] {
            let refusal = admit(&parts(path, &[("host", "localhost")]), &[], &me()).unwrap_err();
            assert_eq!(refusal.code, "invalid_path", "{path}");
        }
        for path in [
            "/v1/responses",
            "/v1/models?client_version=0.171.0",
            "/v1/files/a.b",
            "/v1/..x/y",
            "/",
        ] {
            assert!(
                admit(&parts(path, &[("host", "localhost")]), &[], &me()).is_ok(),
                "{path}"
            );
        }
    }
}
