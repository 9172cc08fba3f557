//! Team mode: several `serve --team` instances behind one address share the team's
//! PostgreSQL, where each member's key lives (`key.rs` the key itself, pure; `db.rs` the
//! database; `keys.rs` the copy an instance checks requests against).
//!
//! The embedded default (one helper, SQLite, no other service) does not use any of this.

pub mod db;
pub mod key;
pub mod keys;
