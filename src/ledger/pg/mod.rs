//! The ledger in PostgreSQL (`[ledger] url`), for a team whose instances share one ledger:
//! the SQLite ledger's rows and rollups ([`schema`]), written in batches by a writer of its own
//! ([`writer`]) that keeps rows on disk while the database is away ([`spool`]), and read back
//! for the `usage` commands and the admin API ([`read`]), and repriced ([`reprice`]). SQLite stays the default.

pub mod copy;
pub mod read;
pub mod reprice;
pub mod schema;
pub mod spool;
pub mod writer;

/// `[ledger] url`, in the PostgreSQL leaf so `config` can check it at load.
pub use crate::postgres::ledger_url as url;
