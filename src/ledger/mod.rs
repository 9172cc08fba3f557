//! The request ledger: every request the proxy handled, in SQLite, priced.
//!
//! The proxy hands finished requests to [`writer::Ledger`]'s sink; one background thread
//! writes them in batches. [`query`] answers the `usage` commands; [`pricing`] prices tokens;
//! [`forecast`] turns recent spend into a burn rate; [`report`] is `usage summary`'s answer; [`import`] reads the original
//! codex-helper's `requests.jsonl`. With `[ledger] url` set, [`pg`] keeps the same ledger in
//! PostgreSQL; [`place`] is where readers pick either, [`read`] what they ask of it.

pub mod forecast;
pub mod import;
pub mod pg;
pub mod place;
pub mod pricing;
pub mod query;
pub mod read;
pub mod report;
pub mod reprice;
pub mod rollup;
pub mod row;
pub mod series;
pub mod store;
pub mod writer;

pub use writer::{Ledger, LedgerStats};
