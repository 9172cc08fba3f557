//! State that `serve --team` instances share through the team's Redis.
//!
//! `redis.rs` is the connection (a leaf: it knows nothing of routing or the proxy, so both
//! can hold it). `routing.rs` is the routing state as stored there and the sync's pure
//! decisions; `sync.rs` the thread that keeps an instance's routing state in step with the
//! team's (shared imports routing, never the other way; the proxy holds the sync's handle).
//! The embedded default (one helper, no other service) does not use any of this.

pub mod balance_lock;
pub mod member_limits;
pub mod permits;
pub mod redis;
pub mod routing;
pub mod spend_reconcile;
pub mod sync;
pub mod team_limits;

/// Runs `work` on a thread named `name` with a current-thread runtime of its own: the team's
/// background jobs (renewing permits, counting spend), never on a proxy event loop.
pub(crate) fn spawn_worker<F, Fut>(name: &str, work: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    use anyhow::Context;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .with_context(|| format!("starting the {name} thread's runtime"))?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || runtime.block_on(work()))
        .with_context(|| format!("starting the {name} thread"))?;
    Ok(())
}
