//! Where the ledger is, chosen once from the config: the SQLite file, or the PostgreSQL ledger
//! of `[ledger] url`; readers open it as a [`Reader`].

use std::path::{Path, PathBuf};

use super::read::Reader;
use crate::config::Homes;
use crate::config::model::LedgerSettings;
use crate::team::db::DatabaseUrl;

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
