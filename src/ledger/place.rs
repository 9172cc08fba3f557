//! Where the ledger is, chosen once from the config: the SQLite file, or the PostgreSQL ledger
//! of `[ledger] url`; readers open it as a [`Reader`].

use std::path::PathBuf;

use super::read::{LedgerRead, Reader};
use crate::config::Homes;
use crate::config::model::LedgerSettings;
use crate::postgres::DatabaseUrl;

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

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A reader kept between calls (the admin API's): PostgreSQL's connection is made once, and
/// again after a failure; the SQLite file is opened for each call, as it always was.
pub struct KeptReader {
    place: LedgerPlace,
    kept: std::sync::Mutex<Option<Reader>>,
}

impl KeptReader {
    pub fn new(place: LedgerPlace) -> Self {
        Self {
            place,
            kept: std::sync::Mutex::new(None),
        }
    }

    pub fn place(&self) -> &LedgerPlace {
        &self.place
    }

    /// `read` over the ledger (blocking: not on an event loop); `None` when there is none yet
    /// (no SQLite file). Calls on PostgreSQL take turns on the one connection.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&dyn LedgerRead) -> anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        if let LedgerPlace::File(_) = &self.place {
            return match self.place.open()? {
                Some(ledger) => read(ledger.as_ref()).map(Some),
                None => Ok(None),
            };
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.is_none() {
            *kept = self.place.open()?;
        }
        let Some(ledger) = kept.as_deref() else {
            return Ok(None);
        };
        let answer = read(ledger);
        if answer.is_err() {
            *kept = None; // connected again next time
        }
        answer.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_unless_a_url_is_set() {
        let homes = Homes {
            helper: PathBuf::from("/h"),
            codex: PathBuf::from("/c"),
        };
        let no_env = |_: &str| None;
        let file = LedgerPlace::of(&homes, &LedgerSettings::default(), &no_env).unwrap();
        assert_eq!(file.kind(), "sqlite");
        assert!(matches!(&file, LedgerPlace::File(path) if *path == homes.ledger()));
        let settings = LedgerSettings {
            url: Some("env:LEDGER_URL".into()),
            ..LedgerSettings::default()
        };
        let err = format!(
            "{:#}",
            LedgerPlace::of(&homes, &settings, &no_env).unwrap_err()
        );
        assert!(err.contains("LEDGER_URL is not set"), "{err}");
        let env = |_: &str| Some("postgres://u:pw-secret@127.0.0.1:1/l".to_string());
        let pg = LedgerPlace::of(&homes, &settings, &env).unwrap();
        assert_eq!(pg.kind(), "postgres");
        assert!(!format!("{pg:?}").contains("pw-secret"));
        assert_eq!(
            LedgerPlace::spool_path(&homes),
            PathBuf::from("/h/state/ledger-spool.jsonl")
        );
    }
}
