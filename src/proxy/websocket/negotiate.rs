//! permessage-deflate negotiation (RFC 7692 §5, §7.1), with each side of the bridge on its own:
//! Codex offers the extension in its handshake and the proxy accepts what it can honour; the
//! proxy offers it to the relay and honours what the relay answers. The bridge reads every
//! message in the clear, so the two sides need not agree with each other.
//!
//! The proxy's compressor always uses the full 32 KiB window (flate2's pure-Rust backend has no
//! smaller one), so it never offers `client_max_window_bits` to a relay and declines a client
//! that wants the proxy's window smaller. Any window the peer uses can be inflated.

use http::{HeaderMap, HeaderValue};

const NAME: &str = "permessage-deflate";
const HEADER: &str = "sec-websocket-extensions";

/// What the proxy's handshake to a relay offers.
pub const OFFER: &str = NAME;

/// An agreed permessage-deflate, from the proxy's side of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deflate {
    /// The proxy starts every message it compresses from an empty window.
    pub reset_compressor: bool,
    /// The peer does so: the proxy's inflater may forget between messages.
    pub reset_decompressor: bool,
}

/// The proxy's answer, as the server, to the extensions a client offers: the first
/// permessage-deflate offer it can honour, with the header value that accepts it.
pub fn accept_offer(request: &HeaderMap) -> Option<(Deflate, HeaderValue)> {
    extensions(request).find_map(|(name, params)| {
        if !name.eq_ignore_ascii_case(NAME) {
            return None;
        }
        let mut deflate = Deflate::default();
        let mut answer = String::from(NAME);
        let mut seen = Vec::new();
        for (key, value) in params {
            let key = key.to_ascii_lowercase();
            if seen.contains(&key) {
                return None;
            }
            match (key.as_str(), value) {
                ("server_no_context_takeover", None) => {
                    deflate.reset_compressor = true;
                    answer.push_str("; server_no_context_takeover");
                }
                ("client_no_context_takeover", None) => {
                    deflate.reset_decompressor = true;
                    answer.push_str("; client_no_context_takeover");
                }
                // The client may limit its own window: anything up to 15 is inflated.
                ("client_max_window_bits", None) => {}
                ("client_max_window_bits", Some(bits)) => {
                    window_bits(&bits)?;
                }
                // Only the full window can be promised.
                ("server_max_window_bits", Some(bits)) if window_bits(&bits)? == 15 => {
                    answer.push_str("; server_max_window_bits=15");
                }
                _ => return None,
            }
            seen.push(key);
        }
        Some((deflate, HeaderValue::from_str(&answer).ok()?))
    })
}

/// What a relay's handshake answer agreed to, given the proxy offered [`OFFER`]. An answer the
/// proxy cannot honour (an extension it did not offer, a parameter it does not know) is an
/// error: RFC 7692 says the connection must then fail.
pub fn read_answer(response: &HeaderMap) -> Result<Option<Deflate>, String> {
    let mut agreed = None;
    for (name, params) in extensions(response) {
        if !name.eq_ignore_ascii_case(NAME) || agreed.is_some() {
            return Err(format!(
                "the relay answered with an extension the proxy did not offer: {name}"
            ));
        }
        let mut deflate = Deflate::default();
        let mut seen = Vec::new();
        for (key, value) in params {
            let key = key.to_ascii_lowercase();
            let ok = !seen.contains(&key)
                && match (key.as_str(), &value) {
                    ("server_no_context_takeover", None) => {
                        deflate.reset_decompressor = true;
                        true
                    }
                    ("client_no_context_takeover", None) => {
                        deflate.reset_compressor = true;
                        true
                    }
                    ("server_max_window_bits", Some(bits)) => window_bits(bits).is_some(),
                    _ => false,
                };
            if !ok {
                let shown = value.map_or(key.clone(), |v| format!("{key}={v}"));
                return Err(format!(
                    "the relay's permessage-deflate answer has a parameter the proxy cannot honour: {shown}"
                ));
            }
            seen.push(key);
        }
        agreed = Some(deflate);
    }
    Ok(agreed)
}

/// A window size in bits, 8 to 15.
fn window_bits(value: &str) -> Option<u8> {
    let bits: u8 = value.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

/// The extensions in a `Sec-WebSocket-Extensions` header (any number of lines), each with its
/// parameters: `name; key; key=value, name2`. Quoted values lose their quotes.
fn extensions(
    headers: &HeaderMap,
) -> impl Iterator<Item = (String, Vec<(String, Option<String>)>)> {
    headers
        .get_all(HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|e| !e.trim().is_empty())
        .map(|extension| {
            let mut parts = extension.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default().to_string();
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (
                        k.trim().to_string(),
                        Some(v.trim().trim_matches('"').to_string()),
                    ),
                    None => (p.to_string(), None),
                })
                .collect();
            (name, params)
        })
        .collect::<Vec<_>>()
        .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, v.parse().unwrap());
        }
        h
    }

    fn accepted(values: &[&str]) -> Option<(Deflate, String)> {
        accept_offer(&headers(values)).map(|(d, v)| (d, v.to_str().unwrap().to_string()))
    }

    #[test]
    fn codex_offer_is_accepted_with_full_windows() {
        // What Codex 0.171.0 sends.
        let (deflate, answer) = accepted(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(deflate, Deflate::default());
        assert_eq!(answer, "permessage-deflate");
    }

    #[test]
    fn context_takeover_limits_are_kept_and_echoed() {
        let (deflate, answer) = accepted(&[
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ])
        .unwrap();
        assert!(deflate.reset_compressor && deflate.reset_decompressor);
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn an_offer_the_proxy_cannot_honour_falls_to_the_next() {
        // A smaller server window cannot be promised; the second offer can be taken.
        let (_, answer) = accepted(&[
            "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits=\"12\"",
        ])
        .unwrap();
        assert_eq!(answer, "permessage-deflate");
        for refused in [
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; mystery",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(accepted(&[refused]), None, "{refused}");
        }
        assert_eq!(accepted(&[]), None);
    }

    #[test]
    fn relay_answers_are_honoured_or_refused() {
        assert_eq!(read_answer(&headers(&[])), Ok(None));
        assert_eq!(
            read_answer(&headers(&["permessage-deflate"])),
            Ok(Some(Deflate::default()))
        );
        assert_eq!(
            read_answer(&headers(&[
                "permessage-deflate; server_max_window_bits=12; client_no_context_takeover; server_no_context_takeover"
            ])),
            Ok(Some(Deflate {
                reset_compressor: true,
                reset_decompressor: true
            }))
        );
        for refused in [
            // The proxy did not offer to limit its own window.
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; surprise",
            "x-other",
        ] {
            let error = read_answer(&headers(&[refused])).unwrap_err();
            assert!(error.contains("relay"), "{refused}: {error}");
        }
    }
}
