//! Balances and quotas of relays: exact amounts, the snapshot of one lookup and its states.
//!
//! Pure data and decisions; the lookups themselves (HTTP, scheduling) and what routing does
//! with an exhausted relay build on these.

pub mod amount;
pub mod parse;
pub mod providers;
pub mod snapshot;
pub mod template;
