//! Balances and quotas of relays: exact amounts, the adapters that read a relay's balance
//! answer, the `usage_providers.json` that configures them, the snapshot of one lookup and its
//! states, and the store that keeps snapshots across restarts.
//!
//! Pure data and decisions, plus the small store and one lookup (`lookup`: one adapter, one
//! bounded GET; `discover`: which adapter an unconfigured relay speaks). Scheduling and what
//! routing does with an exhausted relay build on these.

pub mod amount;
pub mod discover;
pub mod lookup;
pub mod parse;
pub mod providers;
pub mod report;
pub mod snapshot;
pub mod store;
pub mod template;
