//! PostgreSQL as the team's services use it (member keys in `team::db`, the ledger in
//! `ledger::pg`): a URL whose password is never shown, a bounded connect, queries within a
//! bound, migrations under an advisory lock. A leaf: it knows nothing of keys or rows, so both
//! can use it and `config` can check `[ledger] url` ([`ledger_url`]).

pub mod ledger_url;

use std::time::Duration;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

/// How long connecting (with the schema check) may take before the database counts as
/// unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one query may take (also set on the server as `statement_timeout`, so a stuck
/// query is ended there too).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL URL whose password is never shown.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
    /// Where it points, for messages: `host:port/dbname`.
    shown: String,
}

impl DatabaseUrl {
    /// Reads the URL (`postgres://…` or `postgresql://…`) held by environment variable `var`.
    pub fn from_env(var: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let Some(raw) = crate::env_ref::read(var, env) else {
            anyhow::bail!(
                "team mode needs the team's PostgreSQL: set {var} to its URL \
                 (postgres://USER:PASSWORD@HOST:PORT/DBNAME), or name another variable in [team] database_url_env"
            );
        };
        Self::parse(&raw).with_context(|| format!("the database URL in {var}"))
    }

    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
            anyhow::bail!("is not a postgres:// URL");
        }
        if raw.contains("sslmode=require") || raw.contains("sslmode=verify") {
            anyhow::bail!(
                "asks for TLS (sslmode), which codex-helper does not speak to PostgreSQL yet; \
                 reach the database on a private network or through a local tunnel"
            );
        }
        // The parser's own message can quote the input; it is replaced by one that cannot.
        let config: tokio_postgres::Config = raw
            .parse()
            .map_err(|_| anyhow::anyhow!("is not a valid PostgreSQL URL"))?;
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".to_string());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config.get_dbname().unwrap_or("(default)");
        let shown = format!("{host}:{port}/{db}");
        Ok(Self { config, shown })
    }

    /// `host:port/dbname`, safe to print.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.shown)
    }
}

/// Connects to `url` (unbounded: callers bound it with [`CONNECT_TIMEOUT`] together with what
/// follows); the connection's task runs on the current runtime. `what` names the database in
/// errors (`the team database`, `the ledger database`).
pub async fn connect_client(url: &DatabaseUrl, what: &str) -> anyhow::Result<Client> {
    let (client, connection) = url
        .config
        .connect(NoTls)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {what} at {}: {e}", url.shown))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; the next use says so.
        let _ = connection.await;
    });
    Ok(client)
}

/// `query` within [`QUERY_TIMEOUT`]; `what` names the database in the error.
pub async fn bounded<T>(
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    what: &str,
) -> anyhow::Result<T> {
    tokio::time::timeout(QUERY_TIMEOUT, query)
        .await
        .map_err(|_| anyhow::anyhow!("{what} did not answer within {} s", QUERY_TIMEOUT.as_secs()))?
        .map_err(anyhow::Error::from)
}

/// Brings a schema up to date: `migrations[i]` moves the version kept in `version_table` from
/// `i` to `i + 1`, all in one transaction under the advisory lock `lock`, so instances starting
/// together do not race. Also sets the session's `statement_timeout` to [`QUERY_TIMEOUT`].
pub async fn migrate_schema(
    client: &mut Client,
    version_table: &str,
    lock: i64,
    migrations: &[&str],
) -> anyhow::Result<()> {
    let client = client.transaction().await?;
    // `IF NOT EXISTS` below would otherwise say "already exists, skipping" on each start.
    client
        .batch_execute(&format!(
            "SET LOCAL client_min_messages = warning; SET LOCAL lock_timeout = '{0}s'; \
                 SET statement_timeout = '{0}s';",
            QUERY_TIMEOUT.as_secs()
        ))
        .await?;
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
        .await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {version_table} (version INTEGER NOT NULL);
                 INSERT INTO {version_table} SELECT 0
                     WHERE NOT EXISTS (SELECT 1 FROM {version_table});"
        ))
        .await?;
    let version: i32 = client
        .query_one(&format!("SELECT version FROM {version_table}"), &[])
        .await?
        .get(0);
    let known = migrations.len() as i32;
    if version < 0 {
        anyhow::bail!("its schema version is {version}, which no codex-helper writes");
    }
    if version > known {
        anyhow::bail!(
            "its schema is version {version}, newer than this codex-helper knows ({known}); upgrade codex-helper"
        );
    }
    for migration in &migrations[version as usize..] {
        client.batch_execute(migration).await?;
    }
    client
        .execute(
            &format!("UPDATE {version_table} SET version = $1"),
            &[&known],
        )
        .await?;
    client.commit().await?;
    Ok(())
}
