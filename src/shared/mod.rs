//! State that `serve --team` instances share through the team's Redis.
//!
//! `redis.rs` is the connection (a leaf: it knows nothing of routing or the proxy, so both
//! can hold it). `routing.rs` is the routing state as stored there and the sync's pure
//! decisions; `sync.rs` the thread that keeps an instance's routing state in step with the
//! team's (shared imports routing, never the other way; the proxy holds the sync's handle).
//! The embedded default (one helper, no other service) does not use any of this.

pub mod redis;
pub mod routing;
pub mod sync;
