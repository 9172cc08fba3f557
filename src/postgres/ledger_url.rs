//! `[ledger] url`: where a PostgreSQL ledger is. Either the URL itself (`postgres://…`) or
//! `env:VAR`, naming an environment variable that holds it, so a password need not sit in the
//! config file. Checked when the config is read; the variable is read when the ledger is used.

use anyhow::Context;

use super::DatabaseUrl;
use crate::env_ref::EnvRef;

/// `[ledger] url` as written, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerUrl {
    /// `postgres://…` or `postgresql://…` in the file itself.
    Inline(String),
    /// `env:VAR`: the URL is in environment variable `VAR`.
    Env(String),
}

impl LedgerUrl {
    /// Reads the setting. Errors never quote it (it may hold a password).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = match EnvRef::split(text, "CODEX_HELPER_LEDGER_URL")? {
            EnvRef::Env(var) => return Ok(Self::Env(var.to_string())),
            EnvRef::Inline(text) => text,
        };
        DatabaseUrl::parse(text).map_err(|e| {
            anyhow::anyhow!(
                "{e}: expected postgres://USER:PASSWORD@HOST:PORT/DBNAME, or env:VAR naming an environment variable that holds it"
            )
        })?;
        Ok(Self::Inline(text.to_string()))
    }

    /// The database URL, reading the environment for `env:VAR` (`env` looks a variable up).
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<DatabaseUrl> {
        match self {
            Self::Inline(url) => DatabaseUrl::parse(url).context("[ledger] url"),
            Self::Env(var) => {
                let Some(raw) = crate::env_ref::read(var, env) else {
                    anyhow::bail!(
                        "[ledger] url = \"env:{var}\", but {var} is not set: set it to the ledger's PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DBNAME)"
                    );
                };
                DatabaseUrl::parse(&raw).with_context(|| format!("the ledger URL in {var}"))
            }
        }
    }

    /// [`Self::resolve`] with the process's environment.
    pub fn resolve_from_process(&self) -> anyhow::Result<DatabaseUrl> {
        self.resolve(&|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_or_an_env_name_is_taken_and_errors_never_quote_a_password() {
        let inline = LedgerUrl::parse("postgres://u:pw-secret@db:5433/ledger").unwrap();
        assert!(matches!(inline, LedgerUrl::Inline(_)));
        let url = inline.resolve(&|_| None).unwrap();
        assert_eq!(url.shown(), "db:5433/ledger");
        assert_eq!(
            LedgerUrl::parse(" env:LEDGER_DB ").unwrap(),
            LedgerUrl::Env("LEDGER_DB".into())
        );
        for bad in [
            "env:",
            "env:1X",
            "env:A-B",
            "mysql://u:pw-secret@h/d",
            "postgres://u:pw-secret@h/d?sslmode=require",
            "pw-secret",
        ] {
            let err = format!("{:#}", LedgerUrl::parse(bad).unwrap_err());
            assert!(!err.contains("pw-secret"), "{bad}: {err}");
        }
        let err = format!(
            "{:#}",
            LedgerUrl::parse("postgres://h/d?sslmode=verify-full").unwrap_err()
        );
        assert!(err.contains("sslmode"), "{err}");
    }

    #[test]
    fn an_env_url_is_read_when_used() {
        let setting = LedgerUrl::Env("LEDGER_DB".into());
        let err = format!("{:#}", setting.resolve(&|_| None).unwrap_err());
        assert!(err.contains("LEDGER_DB is not set"), "{err}");
        let env = |name: &str| {
            (name == "LEDGER_DB").then(|| "postgres://u:pw-secret@127.0.0.1:6000/l".to_string())
        };
        assert_eq!(setting.resolve(&env).unwrap().shown(), "127.0.0.1:6000/l");
        let bad = |_: &str| Some("postgres://u:pw-secret@h/d?sslmode=require".to_string());
        let err = format!("{:#}", setting.resolve(&bad).unwrap_err());
        assert!(
            err.contains("LEDGER_DB") && !err.contains("pw-secret"),
            "{err}"
        );
    }
}
