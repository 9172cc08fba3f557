//! Taking credentials out of text that came from a relay before the helper keeps or shows it.
//!
//! Some relays answer an error with the request's headers in the body, our key among them.
//! That text would otherwise reach the client's error message, the ledger's `body_preview`
//! and every report built on them. Two layers catch it: the secrets the helper itself sends
//! (known exactly), and anything shaped like a credential (`Bearer …`, `sk-…`, a JWT, the
//! value after a key-like name such as `x-api-key` or `"api_key":`), for keys we do not know.

use std::borrow::Cow;

use bytes::Bytes;
use memchr::memmem;

/// What a credential is replaced with.
pub const MASK: &str = "[redacted]";

/// Configured secrets shorter than this are not searched for (they would mask ordinary words).
const MIN_SECRET_LEN: usize = 6;
/// Shortest run of token characters after `Bearer ` or `sk-` taken for a credential.
const MIN_TOKEN_LEN: usize = 8;

/// Names whose value is a credential, lower case. Longer names first where one contains another.
const KEY_NAMES: [&str; 9] = [
    "proxy-authorization",
    "authorization",
    "x-api-key",
    "api-key",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "id_token",
];

/// Removes credentials from relay text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// The helper's own secrets, longest first (so one that contains another is masked whole).
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// `text` with every credential masked; borrowed when there was none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Only ASCII runs are replaced, with ASCII, so the text stays UTF-8.
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// Whether `bytes` hold one of the helper's own secrets (exactly; no credential shapes).
    pub fn holds_secret(&self, bytes: &[u8]) -> bool {
        self.secrets
            .iter()
            .any(|secret| memmem::find(bytes, secret.as_bytes()).is_some())
    }

    /// `bytes` with each of the helper's own secrets overwritten by as many `*`s, for a reply
    /// on its way to the client: its length (a `Content-Length` already sent) and every other
    /// byte are kept, and credential shapes are left alone (they may be the model's output).
    /// No copy when there is none.
    pub fn hide_secrets(&self, bytes: Bytes) -> Bytes {
        if !self.holds_secret(&bytes) {
            return bytes;
        }
        let mut hidden = bytes.to_vec();
        // Every occurrence in the bytes as sent, overlapping ones too.
        for secret in &self.secrets {
            let secret = secret.as_bytes();
            let mut from = 0;
            while let Some(at) = memmem::find(&bytes[from..], secret) {
                let start = from + at;
                hidden[start..start + secret.len()].fill(b'*');
                from = start + 1;
            }
        }
        Bytes::from(hidden)
    }

    /// Like [`Redactor::redact`], for bytes that may not be UTF-8 (a relay's body).
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let mut text: Cow<'a, [u8]> = Cow::Borrowed(bytes);
        for secret in &self.secrets {
            if memmem::find(&text, secret.as_bytes()).is_some() {
                text = Cow::Owned(replace_all(&text, secret.as_bytes(), MASK.as_bytes()));
            }
        }
        match mask_shapes(&text) {
            Some(masked) => Cow::Owned(masked),
            None => text,
        }
    }
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut last = 0;
    for at in memmem::find_iter(haystack, needle) {
        if at < last {
            continue;
        }
        out.extend_from_slice(&haystack[last..at]);
        out.extend_from_slice(with);
        last = at + needle.len();
    }
    out.extend_from_slice(&haystack[last..]);
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

fn token_len(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| is_token_byte(**b)).count()
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &str) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Masks credential-shaped runs; `None` when there was none.
fn mask_shapes(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let found = if at_boundary {
            credential_at(&bytes[i..])
        } else {
            None
        };
        match found {
            Some((keep, len)) => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                out.extend_from_slice(&bytes[copied..i + keep]);
                out.extend_from_slice(MASK.as_bytes());
                i += keep + len;
                copied = i;
            }
            None => i += 1,
        }
    }
    let mut out = out?;
    out.extend_from_slice(&bytes[copied..]);
    Some(out)
}

/// A credential starting at `rest`: how many bytes to keep before it, and its length.
fn credential_at(rest: &[u8]) -> Option<(usize, usize)> {
    // `Bearer <token>` / `Basic <token>`.
    for scheme in ["bearer", "basic"] {
        if starts_with_ignore_case(rest, scheme) {
            let spaces = rest[scheme.len()..]
                .iter()
                .take_while(|b| **b == b' ')
                .count();
            let keep = scheme.len() + spaces;
            let len = token_len(&rest[keep..]);
            if spaces > 0 && len >= MIN_TOKEN_LEN {
                return Some((keep, len));
            }
        }
    }
    // `sk-…` keys (OpenAI style, and most relays' own).
    if rest.starts_with(b"sk-") {
        let len = token_len(&rest[3..]);
        if len >= MIN_TOKEN_LEN {
            return Some((3, len));
        }
    }
    // A JWT: three base64url parts, the first a JSON object (`eyJ`).
    if rest.starts_with(b"eyJ") {
        let len = token_len(rest);
        if len >= 20 && rest[..len].iter().filter(|b| **b == b'.').count() >= 2 {
            return Some((0, len));
        }
    }
    // `name: value`, `"name":"value"`, `name=value` for a key-like name.
    for name in KEY_NAMES {
        if !starts_with_ignore_case(rest, name) {
            continue;
        }
        let mut keep = name.len();
        if rest
            .get(keep)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        {
            continue;
        }
        keep += rest[keep..]
            .iter()
            .take_while(|b| matches!(b, b'"' | b'\'' | b' ' | b'\\'))
            .count();
        if !matches!(rest.get(keep), Some(b':' | b'=')) {
            continue;
        }
        keep += 1;
        keep += rest[keep..]
            .iter()
            .take_while(|b| matches!(b, b'"' | b'\'' | b' ' | b'\\'))
            .count();
        for scheme in ["bearer ", "basic "] {
            if starts_with_ignore_case(&rest[keep..], scheme) {
                keep += scheme.len();
            }
        }
        let len = token_len(&rest[keep..]);
        if len > 0 {
            return Some((keep, len));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiding_secrets_keeps_the_length_and_everything_else() {
        let redactor = Redactor::new(["relay-key-123456", "key-12"]);
        let text = "a relay-key-123456 b relay-key-123456key-12 sk-model-output-1234";
        let hidden = redactor.hide_secrets(Bytes::from(text));
        assert_eq!(hidden.len(), text.len());
        assert_eq!(
            &hidden[..],
            b"a **************** b ********************** sk-model-output-1234"
        );
        // Overlapping occurrences are all hidden.
        let overlapping = Redactor::new(["abcabc"]).hide_secrets(Bytes::from("xabcabcabcx"));
        assert_eq!(&overlapping[..], b"x*********x");
        // None there: the same bytes, not a copy.
        let clean = Bytes::from_static(b"nothing to hide, Bearer abcdefgh12345");
        let kept = redactor.hide_secrets(clean.clone());
        assert_eq!(kept.as_ptr(), clean.as_ptr());
    }

    #[test]
    fn configured_secrets_are_masked_wherever_they_appear() {
        let r = Redactor::new(["relay-key-123456", "abc"]);
        assert_eq!(
            r.redact("echo: relay-key-123456!relay-key-123456"),
            "echo: [redacted]![redacted]"
        );
        assert_eq!(
            r.redact("abc stays: too short to be a secret"),
            "abc stays: too short to be a secret"
        );
    }

    #[test]
    fn credential_shapes_are_masked() {
        let r = Redactor::default();
        let cases = [
            (
                "Authorization: Bearer tok_0123456789",
                "Authorization: Bearer [redacted]",
            ),
            (
                "got bearer   abcdefghijkl here",
                "got bearer   [redacted] here",
            ),
            (
                "key sk-proj-AbC123xyz789 is invalid",
                "key sk-[redacted] is invalid",
            ),
            (r#"{"x-api-key":"k-1"}"#, r#"{"x-api-key":"[redacted]"}"#),
            (
                r#"{"headers":{"X-Api-Key": "secret"}}"#,
                r#"{"headers":{"X-Api-Key": "[redacted]"}}"#,
            ),
            (
                r#"{\"authorization\":\"Bearer abc.def\"}"#,
                r#"{\"authorization\":\"Bearer [redacted]\"}"#,
            ),
            ("api_key=hunter2&x=1", "api_key=[redacted]&x=1"),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature",
                "token [redacted]",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(r.redact(text), want, "{text}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let r = Redactor::new(["relay-key-123456"]);
        for text in [
            "missing Bearer token",
            "the authorization header is missing",
            "task-runner and disk-space",
            "model gpt-5.1 is not available",
            "",
        ] {
            assert!(matches!(r.redact(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_masked_too() {
        let r = Redactor::new(["relay-key-123456"]);
        let body = b"\xff\xfe relay-key-123456 Bearer 0123456789abcdef";
        assert_eq!(
            &*r.redact_bytes(body),
            b"\xff\xfe [redacted] Bearer [redacted]"
        );
    }
}
