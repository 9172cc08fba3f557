//! State that `serve --team` instances share through the team's Redis.
//!
//! `redis.rs` is the connection (a leaf: it knows nothing of routing or the proxy, so both
//! can hold it). The embedded default (one helper, no other service) does not use any of this.

pub mod balance_lock;
pub mod member_limits;
pub mod permits;
pub mod redis;
pub mod team_limits;
