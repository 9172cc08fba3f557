//! `[team] redis_url`: where the team's Redis is, as `redis://[:PASSWORD@]HOST[:PORT][/DB]` or
//! `env:NAME` naming an environment variable that holds it (so a password need not sit in the
//! config file). A leaf, so `config` can check the setting at load and `shared::redis` can
//! connect with it; the URL is only ever shown as `host:port/db`.

use anyhow::Context;

use crate::env_ref::EnvRef;

/// The variable `env:` names in examples.
const EXAMPLE_VAR: &str = "CODEX_HELPER_REDIS_URL";

/// The Redis URL of `[team] redis_url`: `redis://[:PASSWORD@]HOST[:PORT][/DB]`, or
/// `env:NAME` for a URL held by an environment variable (so a password need not sit in the
/// config file).
#[derive(Clone)]
pub struct RedisUrl {
    client: redis::Client,
    /// Where it points, for messages: `host:port/db`.
    shown: String,
}

impl RedisUrl {
    /// Checks `[team] redis_url`'s value without the environment: an inline URL is parsed, an
    /// `env:NAME` must name a variable. Errors never quote the value.
    pub fn check_setting(value: &str) -> anyhow::Result<()> {
        match EnvRef::split(value, EXAMPLE_VAR)? {
            EnvRef::Env(_) => Ok(()),
            EnvRef::Inline(url) => Self::parse(url).map(|_| ()),
        }
    }

    /// Reads `[team] redis_url`'s value, following `env:NAME` through `env`.
    pub fn from_setting(value: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        match EnvRef::split(value, EXAMPLE_VAR).context("[team] redis_url")? {
            EnvRef::Env(var) => {
                let Some(raw) = crate::env_ref::read(var, env) else {
                    anyhow::bail!(
                        "[team] redis_url names {var}, which is not set: set it to the team's Redis URL (redis://HOST:PORT/DB)"
                    );
                };
                Self::parse(&raw).with_context(|| format!("the Redis URL in {var}"))
            }
            EnvRef::Inline(url) => Self::parse(url).context("[team] redis_url"),
        }
    }

    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        if raw.starts_with("rediss://") {
            anyhow::bail!(
                "asks for TLS (rediss://), which codex-helper does not speak to Redis yet; \
                 reach Redis on a private network or through a local tunnel"
            );
        }
        let Some(rest) = raw.strip_prefix("redis://") else {
            anyhow::bail!("is not a redis:// URL (redis://HOST:PORT/DB)");
        };
        // The parser's own message can quote the input; it is replaced by one that cannot.
        let client =
            redis::Client::open(raw).map_err(|_| anyhow::anyhow!("is not a valid Redis URL"))?;
        Ok(Self {
            client,
            shown: shown(rest),
        })
    }

    /// The redis crate's client for the URL (it connects only when asked).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// `host:port/db`, never the password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({})", self.shown)
    }
}

/// The part of a URL after `redis://` with its credentials and query left out.
fn shown(rest: &str) -> String {
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    let host = if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    let db = if db.is_empty() { "0" } else { db };
    format!("{host}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        let url = RedisUrl::parse("redis://:hunter2-secret@10.0.0.5:6380/3").unwrap();
        assert_eq!(url.shown(), "10.0.0.5:6380/3");
        assert!(!format!("{url:?}").contains("hunter2"));
        let url = RedisUrl::parse("redis://user:pw@localhost").unwrap();
        assert_eq!(url.shown(), "localhost:6379/0");
        assert_eq!(
            RedisUrl::parse("redis://127.0.0.1:7000/").unwrap().shown(),
            "127.0.0.1:7000/0"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_them() {
        for (raw, says) in [
            ("rediss://:pw-secret@host", "TLS"),
            ("http://:pw-secret@host", "redis://"),
            ("redis://:pw-secret@host:notaport", "valid"),
        ] {
            let err = format!("{:#}", RedisUrl::parse(raw).unwrap_err());
            assert!(err.contains(says), "{raw}: {err}");
            assert!(!err.contains("pw-secret"), "{raw}: {err}");
        }
    }

    #[test]
    fn env_names_a_variable() {
        let env = |name: &str| {
            (name == "TEAM_REDIS").then(|| "redis://:s3cret@127.0.0.1:6390/2".to_string())
        };
        assert_eq!(
            RedisUrl::from_setting("env:TEAM_REDIS", &env)
                .unwrap()
                .shown(),
            "127.0.0.1:6390/2"
        );
        let err = format!(
            "{:#}",
            RedisUrl::from_setting("env:MISSING", &env).unwrap_err()
        );
        assert!(err.contains("MISSING") && err.contains("not set"), "{err}");
    }

    #[test]
    fn a_setting_is_checked_without_the_environment() {
        RedisUrl::check_setting("redis://:pw@127.0.0.1:6390/2").unwrap();
        RedisUrl::check_setting(" env:TEAM_REDIS ").unwrap();
        for bad in [
            "env:",
            "env:1X",
            "env:A-B",
            "redis://:pw-secret@h:port",
            "pw-secret",
        ] {
            let err = format!("{:#}", RedisUrl::check_setting(bad).unwrap_err());
            assert!(!err.contains("pw-secret"), "{bad}: {err}");
        }
    }
}
