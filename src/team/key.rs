//! A team member's key: its text, and what is stored of it (pure).
//!
//! A key reads `chk_<id>_<secret>`: the id (12 lowercase base32 characters) finds the stored
//! record without a scan, and the secret (32 random bytes, base64url) proves the holder. Only
//! a salt and an HMAC-SHA256 tag of the secret under that salt are stored: a stolen database
//! gives no usable key. A slow password hash (argon2) is not needed: the secret is 256 random
//! bits, not something a person chose, so no guess list shortens the search, and checking a
//! key stays a microsecond on the request path.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// What every key starts with, so a leaked one is recognisable (secret scanners, logs).
pub const PREFIX: &str = "chk_";
const ID_CHARS: usize = 12;
const SECRET_BYTES: usize = 32;
const SALT_BYTES: usize = 16;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A key as handed to its holder once. Its text is never printed by `Debug`.
pub struct IssuedKey {
    pub id: String,
    text: String,
    pub stored: StoredKey,
}

impl IssuedKey {
    /// The whole key, for the one time it is shown.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedKey({PREFIX}{}_…)", self.id)
    }
}

/// What is kept of a key: enough to check one, never to make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub salt: Vec<u8>,
    pub tag: Vec<u8>,
}

impl StoredKey {
    fn of(salt: Vec<u8>, secret: &str) -> Self {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &salt), secret.as_bytes());
        Self {
            salt,
            tag: tag.as_ref().to_vec(),
        }
    }

    /// Whether `secret` is the key's, in time that does not depend on where they differ.
    pub fn accepts(&self, secret: &str) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.salt);
        hmac::verify(&key, secret.as_bytes(), &self.tag).is_ok()
    }
}

/// A presented key split into its parts (not yet checked).
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the system's random source failed; no key was made")]
    Random,
    #[error(
        "that key looks like an example or a default ({0}); keys from documentation or samples are refused. \
         Leave out --from-env to have a random key made"
    )]
    Sample(&'static str),
    #[error(
        "a key must be {MIN_IMPORTED_CHARS} to {MAX_SECRET_CHARS} characters of letters, digits, `-` and `_`; this one is not"
    )]
    Weak,
}

/// The shortest key taken from outside (`keys add --from-env`).
pub const MIN_IMPORTED_CHARS: usize = 32;
/// The longest secret a presented key may carry (longer ones are not read at all).
pub const MAX_SECRET_CHARS: usize = 256;

fn random(bytes: usize) -> Result<Vec<u8>, KeyError> {
    let mut out = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| KeyError::Random)?;
    Ok(out)
}

fn new_id() -> Result<String, KeyError> {
    Ok(random(ID_CHARS)?
        .iter()
        .map(|b| char::from(BASE32[usize::from(*b % 32)]))
        .collect())
}

/// A new random key.
pub fn issue() -> Result<IssuedKey, KeyError> {
    let id = new_id()?;
    let secret = URL_SAFE_NO_PAD.encode(random(SECRET_BYTES)?);
    let stored = StoredKey::of(random(SALT_BYTES)?, &secret);
    Ok(IssuedKey {
        text: format!("{PREFIX}{id}_{secret}"),
        id,
        stored,
    })
}

/// A key made from a secret the operator chose (a team moving keys in from elsewhere), refused
/// when it looks like a sample or is too weak. It gets an id of its own, so its holder uses
/// the returned text.
pub fn import(secret: &str) -> Result<IssuedKey, KeyError> {
    let secret = secret.trim();
    if let Some(why) = looks_like_sample(secret) {
        return Err(KeyError::Sample(why));
    }
    let charset = secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !(MIN_IMPORTED_CHARS..=MAX_SECRET_CHARS).contains(&secret.len()) || !charset {
        return Err(KeyError::Weak);
    }
    let id = new_id()?;
    let stored = StoredKey::of(random(SALT_BYTES)?, secret);
    Ok(IssuedKey {
        text: format!("{PREFIX}{id}_{secret}"),
        id,
        stored,
    })
}

/// Why `secret` looks like a documentation example or a default, if it does.
pub fn looks_like_sample(secret: &str) -> Option<&'static str> {
    let lower = secret.to_ascii_lowercase();
    const WORDS: [(&str, &str); 9] = [
        ("example", "it says \"example\""),
        ("sample", "it says \"sample\""),
        ("changeme", "it says \"changeme\""),
        ("change-me", "it says \"change-me\""),
        ("your-key", "it says \"your-key\""),
        ("your_key", "it says \"your_key\""),
        ("placeholder", "it says \"placeholder\""),
        ("xxxxxxxx", "it is a run of x's"),
        ("0123456789", "it counts up"),
    ];
    if let Some((_, why)) = WORDS.iter().find(|(w, _)| lower.contains(w)) {
        return Some(why);
    }
    let distinct = {
        let mut seen: Vec<u8> = secret.bytes().collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };
    (distinct < 8).then_some("it repeats a few characters")
}

/// Splits `Bearer`-presented text into id and secret; `None` when it is not a team key.
pub fn parse(text: &str) -> Option<Presented<'_>> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_CHARS && id.bytes().all(|b| BASE32.contains(&b));
    (id_ok && !secret.is_empty() && secret.len() <= MAX_SECRET_CHARS)
        .then_some(Presented { id, secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_key_parses_and_only_its_secret_is_accepted() {
        let key = issue().unwrap();
        let presented = parse(key.text()).unwrap();
        assert_eq!(presented.id, key.id);
        assert!(key.stored.accepts(presented.secret));
        let mut other = presented.secret.to_string();
        other.replace_range(0..1, if other.starts_with('A') { "B" } else { "A" });
        assert!(!key.stored.accepts(&other));
        assert!(!key.stored.accepts(""));
        // Two keys never share a secret, an id or a salt.
        let second = issue().unwrap();
        assert_ne!(second.id, key.id);
        assert_ne!(second.stored, key.stored);
        assert!(!format!("{key:?}").contains(presented.secret));
    }

    #[test]
    fn what_is_stored_does_not_contain_the_secret() {
        let key = issue().unwrap();
        let secret = parse(key.text()).unwrap().secret.as_bytes().to_vec();
        assert!(
            !key.stored
                .tag
                .windows(8)
                .any(|w| secret.windows(8).any(|s| s == w))
        );
        assert_eq!(key.stored.tag.len(), 32);
    }

    #[test]
    fn other_text_is_not_a_team_key() {
        for text in [
            "",
            "sk-abc",
            "chk_",
            "chk_short_secret",
            "chk_ABCDEFGHIJKL_secret",
            "chk_abcdefghijkl_",
            "chk_abcdefghijkl",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
        let long = format!("chk_abcdefghijkl_{}", "a".repeat(300));
        assert_eq!(parse(&long), None);
    }

    #[test]
    fn samples_and_weak_keys_are_refused_at_import() {
        for sample in [
            "sk-example-0000000000000000000000000000",
            "your-key-here-aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "changeme-changeme-changeme-changeme",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "abc0123456789abc0123456789abc0123456789",
        ] {
            assert!(
                matches!(import(sample), Err(KeyError::Sample(_))),
                "{sample}"
            );
        }
        assert_eq!(import("Zq8-short").unwrap_err(), KeyError::Weak);
        let long: String = "Zq8mR4vT1wYp6Ls9Kd2Hf7Jb3Nc5Xg0EaQ".repeat(8);
        assert_eq!(import(&long).unwrap_err(), KeyError::Weak);
        assert_eq!(
            import("Zq8mR4vT1wYp6Ls9Kd2Hf7Jb3Nc5Xg0Ea!").unwrap_err(),
            KeyError::Weak
        );
        let imported = import("Zq8mR4vT1wYp6Ls9Kd2Hf7Jb3Nc5Xg0EaQ").unwrap();
        let presented = parse(imported.text()).unwrap();
        assert_eq!(presented.secret, "Zq8mR4vT1wYp6Ls9Kd2Hf7Jb3Nc5Xg0EaQ");
        assert!(imported.stored.accepts(presented.secret));
    }
}
