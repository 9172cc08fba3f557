//! Team mode's per-user keys as the proxy sees them: every request (HTTP and the WebSocket
//! handshake), from loopback too, presents its member's key as `Authorization: Bearer`, and
//! is refused without a good one. The key is removed before the relay, which gets its own
//! credential. Who holds which key is the team's database's business ([`crate::team`]); the
//! proxy only asks a [`MemberKeys`] and records the member's name, never the key.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, StatusCode, header};

use super::replies::Refusal;

/// What a presented key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A member's enabled key; their name.
    Member(Arc<str>),
    /// Not any member's key (unknown, malformed or a wrong secret).
    Unknown,
    /// A member's key that was disabled; their name.
    Disabled(Arc<str>),
    /// The keys cannot be checked now (the database was never reached, or not for too long).
    Unavailable,
}

/// Checks member keys. Implementations answer within a small bound: a request never waits
/// long on the team's database.
pub trait MemberKeys: Send + Sync {
    fn check<'a>(
        &'a self,
        presented: &'a str,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

    /// Whether keys can be checked now, and how recently the database answered.
    fn health(&self) -> KeysHealth;

    /// The member's own limits (requests a minute, money a day), as last read.
    fn limits(&self, member: &str) -> crate::shared::member_limits::MemberLimits {
        let _ = member;
        Default::default()
    }
}

/// What `/readyz` says about member keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KeysHealth {
    /// A copy young enough to check keys against is held.
    pub usable: bool,
    /// The last read of the database succeeded.
    pub database_reachable: bool,
    /// Milliseconds since the copy was read (`None`: never).
    pub copy_age_ms: Option<u64>,
}

/// How a refused client gets a key.
const HOW: &str = "Ask the team's admin for a key of your own (`codex-helper keys add NAME` on a team instance), \
                   then point Codex at the team with it: `codex-helper switch on --team-url URL --key-env VAR` \
                   with VAR holding the key.";

/// The key a WebSocket's handshake presented (a request extension), kept in memory only so
/// each later `response.create` is checked again: a key disabled or removed while the socket
/// stays open stops working there too.
#[derive(Clone)]
pub struct PresentedKey(pub String);

impl std::fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedKey(…)")
    }
}

/// Checks the request's member key and removes it from `headers`; the member's name and the
/// key when good.
pub async fn check(
    keys: &dyn MemberKeys,
    headers: &mut HeaderMap,
) -> Result<(Arc<str>, PresentedKey), Refusal> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .unwrap_or_default()
                .trim()
                .to_string()
        });
    headers.remove(header::AUTHORIZATION);
    let Some(presented) = presented else {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "team_key_required",
            format!(
                "this codex-helper serves a team, and every request needs its member's key; this one carries none. {HOW}"
            ),
        ));
    };
    let name = admit(keys.check(&presented).await)?;
    Ok((name, PresentedKey(presented)))
}

/// A verdict as the answer a request gets: the member's name, or why not.
pub fn admit(verdict: Verdict) -> Result<Arc<str>, Refusal> {
    match verdict {
        Verdict::Member(name) => Ok(name),
        Verdict::Unknown => Err(refusal(
            StatusCode::UNAUTHORIZED,
            "bad_team_key",
            format!("the key this request carries is not a team member's key. {HOW}"),
        )),
        Verdict::Disabled(name) => Err(refusal(
            StatusCode::FORBIDDEN,
            "team_key_disabled",
            format!("the key of `{name}` was disabled by the team's admin (`codex-helper keys enable {name}` turns it back on)."),
        )),
        Verdict::Unavailable => Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "team_keys_unavailable",
            "codex-helper cannot check team keys right now: the team's database has not been reachable. Try again shortly."
                .to_string(),
        )),
    }
}

fn refusal(status: StatusCode, code: &'static str, message: String) -> Refusal {
    Refusal {
        status,
        code,
        message,
    }
}

/// How long a client should wait before retrying a `team_keys_unavailable` answer.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Verdict);

    impl MemberKeys for Fixed {
        fn check<'a>(
            &'a self,
            presented: &'a str,
        ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
            let verdict = if presented == "chk_good" {
                self.0.clone()
            } else {
                Verdict::Unknown
            };
            Box::pin(async move { verdict })
        }

        fn health(&self) -> KeysHealth {
            KeysHealth {
                usable: true,
                database_reachable: true,
                copy_age_ms: Some(0),
            }
        }
    }

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn each_verdict_has_its_answer_and_the_key_never_reaches_the_relay() {
        let ann: Arc<str> = Arc::from("ann");
        let cases = [
            (Verdict::Member(ann.clone()), Some("Bearer chk_good"), None),
            (
                Verdict::Member(ann.clone()),
                None,
                Some((401, "team_key_required")),
            ),
            (
                Verdict::Member(ann.clone()),
                Some("Bearer chk_bad"),
                Some((401, "bad_team_key")),
            ),
            (
                Verdict::Member(ann.clone()),
                Some("Basic chk_good"),
                Some((401, "bad_team_key")),
            ),
            (
                Verdict::Disabled(ann.clone()),
                Some("Bearer chk_good"),
                Some((403, "team_key_disabled")),
            ),
            (
                Verdict::Unavailable,
                Some("Bearer chk_good"),
                Some((503, "team_keys_unavailable")),
            ),
        ];
        for (verdict, auth, refused) in cases {
            let mut h = headers(auth);
            let outcome = check(&Fixed(verdict), &mut h).await;
            assert!(h.get(header::AUTHORIZATION).is_none());
            match (outcome, refused) {
                (Ok((name, key)), None) => {
                    assert_eq!(&*name, "ann");
                    assert_eq!(key.0, "chk_good");
                    assert!(!format!("{key:?}").contains("chk_good"));
                }
                (Err(r), Some((status, code))) => {
                    assert_eq!((r.status.as_u16(), r.code), (status, code));
                    assert!(!r.message.contains("chk_good"), "{}", r.message);
                }
                (other, want) => panic!("{auth:?}: {:?} vs {want:?}", other.map_err(|r| r.code)),
            }
        }
    }
}
