//! Where the ledger is read from, chosen once: the SQLite file, or the PostgreSQL ledger of
//! `[ledger] url`. The `usage` commands and the admin API read through [`LedgerRead`], so they
//! answer the same from either.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::query::{self, Chain, Filter, GroupBy, RequestLine, SummaryRow};
use crate::config::Homes;
use crate::config::model::LedgerSettings;
use crate::team::db::DatabaseUrl;

/// `(started_ms, total_tokens, cost_usd)` of one request, for forecasts.
pub type Spend = (u64, u64, Option<f64>);

/// What the `usage` readers ask of a ledger.
pub trait LedgerRead {
    /// `usage summary`'s groups since `since_ms`, most tokens first.
    fn summary(&self, since_ms: u64, by: GroupBy) -> anyhow::Result<Vec<SummaryRow>>;
    /// The newest `limit` requests matching `filter`, newest first.
    fn find(&self, filter: &Filter, limit: usize) -> anyhow::Result<Vec<RequestLine>>;
    /// One request's attempts and route decision.
    fn chain(&self, trace_id: &str) -> anyhow::Result<Option<Chain>>;
    /// What requests since `since_ms` spent (those `provider` answered, when given).
    fn spend_since(&self, since_ms: u64, provider: Option<&str>) -> anyhow::Result<Vec<Spend>>;
    /// A SQLite connection for local-time arithmetic (dates, midnights): the ledger's own, or
    /// an in-memory one.
    fn clock(&self) -> &Connection;
}

impl LedgerRead for Connection {
    fn summary(&self, since_ms: u64, by: GroupBy) -> anyhow::Result<Vec<SummaryRow>> {
        Ok(query::summary(self, since_ms, by)?)
    }

    fn find(&self, filter: &Filter, limit: usize) -> anyhow::Result<Vec<RequestLine>> {
        Ok(query::find(self, filter, limit)?)
    }

    fn chain(&self, trace_id: &str) -> anyhow::Result<Option<Chain>> {
        Ok(query::chain(self, trace_id)?)
    }

    fn spend_since(&self, since_ms: u64, provider: Option<&str>) -> anyhow::Result<Vec<Spend>> {
        Ok(match provider {
            Some(p) => query::spend_since_for_provider(self, since_ms, p)?,
            None => query::spend_since(self, since_ms)?,
        })
    }

    fn clock(&self) -> &Connection {
        self
    }
}

/// A ledger that can be read from another thread.
pub type Reader = Box<dyn LedgerRead + Send>;

/// Where the ledger is.
#[derive(Debug, Clone)]
pub enum LedgerPlace {
    /// The SQLite file (the default).
    File(PathBuf),
    /// The PostgreSQL ledger (`[ledger] url`).
    Postgres(Box<DatabaseUrl>),
}

impl LedgerPlace {
    /// The ledger `settings` name: PostgreSQL when `url` is set (its `env:VAR` read from `env`),
    /// else the file in `homes`.
    pub fn of(
        homes: &Homes,
        settings: &LedgerSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        match &settings.url {
            None => Ok(Self::File(homes.ledger())),
            Some(text) => {
                let url = super::pg::url::LedgerUrl::parse(text)
                    .map_err(|e| anyhow::anyhow!("[ledger] url: {e:#}"))?;
                Ok(Self::Postgres(Box::new(url.resolve(env)?)))
            }
        }
    }

    /// [`Self::of`] the config file in `homes` (defaults without one) and the process's
    /// environment.
    pub fn configured(homes: &Homes) -> anyhow::Result<Self> {
        let settings = crate::config::load::load(&homes.helper_config())?
            .map(|loaded| loaded.config.ledger)
            .unwrap_or_default();
        Self::of(homes, &settings, &|name| std::env::var(name).ok())
    }

    /// Where a PostgreSQL ledger's writer keeps rows while the database is away.
    pub fn spool_path(homes: &Homes) -> PathBuf {
        homes.helper.join("state").join("ledger-spool.jsonl")
    }

    /// A reader, or `None` when the SQLite file does not exist yet.
    pub fn open(&self) -> anyhow::Result<Option<Reader>> {
        match self {
            Self::File(path) if !path.exists() => Ok(None),
            Self::File(path) => Ok(Some(Box::new(super::store::open_read_only(path)?))),
            Self::Postgres(url) => Ok(Some(Box::new(super::pg::read::PgReader::connect(url)?))),
        }
    }

    /// The SQLite file, for what only reads it yet (`what` names the feature in the error).
    pub fn file_only(&self, what: &str) -> anyhow::Result<&Path> {
        match self {
            Self::File(path) => Ok(path),
            Self::Postgres(_) => anyhow::bail!(
                "{what} is not available with a PostgreSQL ledger yet ([ledger] url is set)"
            ),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}
