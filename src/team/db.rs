//! The team's PostgreSQL: connecting within a bound, its schema, and the key records.
//!
//! Every instance migrates at start; migrations run in one transaction under an advisory lock,
//! so two instances starting together do not race. The database URL may carry a password: it
//! is read from the environment ([`DatabaseUrl`]) and only its host, port and database name
//! are ever shown.

use anyhow::Context;
use tokio_postgres::Client;

pub use crate::postgres::{
    CONNECT_TIMEOUT, DatabaseUrl, QUERY_TIMEOUT, bounded, connect_client, migrate_schema,
};

use super::key::StoredKey;
use crate::shared::member_limits::MemberLimits;

/// Holds the migrations lock (any constant shared by all instances).
const MIGRATION_LOCK: i64 = 0x636f_6465_7868_6c70;

/// Schema versions, in order; each moves `codex_helper_schema.version` up by one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE codex_helper_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    salt        BYTEA NOT NULL,
    tag         BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE
);
"#,
    r#"
ALTER TABLE codex_helper_keys
    ADD COLUMN rpm              INTEGER CHECK (rpm > 0),
    ADD COLUMN daily_budget_usd DOUBLE PRECISION CHECK (daily_budget_usd > 0);
"#,
];

/// A connection to the team's database.
pub struct Db {
    client: Client,
}

/// A key as stored, with its holder's name.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub stored: StoredKey,
    pub created_ms: i64,
    pub disabled: bool,
    /// Requests a minute and money a day (see [`crate::shared::member_limits`]).
    pub limits: MemberLimits,
}

/// Why a key could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("a key named `{0}` exists already; remove it first or pick another name")]
    NameTaken(String),
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

impl Db {
    /// Connects (within [`CONNECT_TIMEOUT`]) and brings the schema up to date. The
    /// connection's task runs on the current runtime.
    pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<Self> {
        // Connecting and migrating both within the bound: a server that accepts and then
        // stalls (or a migration lock held elsewhere) must not hang the caller.
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_unbounded(url))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the team database at {} did not answer within {} s",
                    url.shown(),
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
    }

    async fn connect_unbounded(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let mut client = connect_client(url, "the team database").await?;
        migrate_schema(
            &mut client,
            "codex_helper_schema",
            MIGRATION_LOCK,
            MIGRATIONS,
        )
        .await
        .with_context(|| format!("cannot prepare the team database at {}", url.shown()))?;
        Ok(Self { client })
    }

    /// `query` within [`QUERY_TIMEOUT`].
    async fn bounded<T>(
        query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> anyhow::Result<T> {
        bounded(query, "the team database").await
    }

    /// Whether the connection is gone (the server closed it or went away).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Every key, enabled or not, by name.
    pub async fn keys(&self) -> anyhow::Result<Vec<KeyRecord>> {
        let rows = Self::bounded(self.client.query(
            "SELECT id, name, salt, tag, created_ms, disabled, rpm, daily_budget_usd
                 FROM codex_helper_keys ORDER BY name",
            &[],
        ))
        .await
        .context("cannot read the team's keys")?;
        Ok(rows
            .iter()
            .map(|r| KeyRecord {
                id: r.get(0),
                name: r.get(1),
                stored: StoredKey {
                    salt: r.get(2),
                    tag: r.get(3),
                },
                created_ms: r.get(4),
                disabled: r.get(5),
                limits: MemberLimits {
                    rpm: r.get::<_, Option<i32>>(6).map(|n| n.max(1) as u32),
                    daily_budget_usd: r.get(7),
                },
            })
            .collect())
    }

    /// Adds a key for `name`.
    pub async fn add_key(&self, record: &KeyRecord) -> Result<(), AddError> {
        let inserted = Self::bounded(self.client.execute(
            "INSERT INTO codex_helper_keys
                 (id, name, salt, tag, created_ms, disabled, rpm, daily_budget_usd)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING",
            &[
                &record.id,
                &record.name,
                &record.stored.salt,
                &record.stored.tag,
                &record.created_ms,
                &record.disabled,
                &record.limits.rpm.map(|n| n as i32),
                &record.limits.daily_budget_usd,
            ],
        ))
        .await
        .context("cannot add the key")?;
        if inserted == 0 {
            return Err(AddError::NameTaken(record.name.clone()));
        }
        Ok(())
    }

    /// Disables or enables `name`'s key; `false` when there is none.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> anyhow::Result<bool> {
        let n = Self::bounded(self.client.execute(
            "UPDATE codex_helper_keys SET disabled = $2 WHERE name = $1",
            &[&name, &disabled],
        ))
        .await
        .context("cannot change the key")?;
        Ok(n > 0)
    }

    /// Sets `name`'s limits (each `None`: no limit); `false` when there is no such key.
    pub async fn set_limits(&self, name: &str, limits: MemberLimits) -> anyhow::Result<bool> {
        let n = Self::bounded(self.client.execute(
            "UPDATE codex_helper_keys SET rpm = $2, daily_budget_usd = $3 WHERE name = $1",
            &[
                &name,
                &limits.rpm.map(|n| n as i32),
                &limits.daily_budget_usd,
            ],
        ))
        .await
        .context("cannot change the key's limits")?;
        Ok(n > 0)
    }

    /// Removes `name`'s key; `false` when there is none.
    pub async fn remove_key(&self, name: &str) -> anyhow::Result<bool> {
        let n = Self::bounded(
            self.client
                .execute("DELETE FROM codex_helper_keys WHERE name = $1", &[&name]),
        )
        .await
        .context("cannot remove the key")?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        let url = DatabaseUrl::parse("postgres://team:s3cr3t-pw@db.internal:6543/codex").unwrap();
        assert_eq!(url.shown(), "db.internal:6543/codex");
        assert!(!format!("{url:?}").contains("s3cr3t"));
        for bad in ["mysql://x@y/z", "postgres://[::1", "redis://h"] {
            let err = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(
                !err.contains("::1") || !err.contains("postgres://"),
                "{err}"
            );
        }
        let env = |_: &str| Some("postgres://u:hunter2-pw@h/d?connect_timeout=x".to_string());
        let err = format!("{:#}", DatabaseUrl::from_env("DB", &env).unwrap_err());
        assert!(!err.contains("hunter2"), "{err}");
        let unset = |_: &str| None;
        let err = DatabaseUrl::from_env("TEAM_DB", &unset)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TEAM_DB") && err.contains("database_url_env"),
            "{err}"
        );
    }
}
