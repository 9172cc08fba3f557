//! Balances and quotas of relays: exact amounts, the adapters that read a relay's balance
//! answer, the `usage_providers.json` that configures them, the snapshot of one lookup and its
//! states, and the store that keeps snapshots across restarts.
//!
//! Pure data and decisions (adapters, snapshots and states, the refresh schedule, the effect
//! on routing), plus the edges: one lookup (`lookup`: one adapter, one bounded GET;
//! `discover`: which adapter an unconfigured relay speaks), the store, and the `service`
//! thread that runs lookups and tells routing.

pub mod amount;
pub mod discover;
pub mod effect;
pub mod lookup;
pub mod parse;
pub mod providers;
pub mod report;
pub mod schedule;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod team_share;
pub mod template;
pub mod trigger;
