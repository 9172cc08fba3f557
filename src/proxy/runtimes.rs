//! The event loops serving requests (the accepting thread's, which also runs the admin API,
//! and each serving thread's), so the admin API can say how many tasks are alive: a count
//! that keeps growing under steady traffic is a leak (see the soak benchmark).

use std::sync::Mutex;

use tokio::runtime::Handle;

/// Handles of the serving event loops, added as each starts.
#[derive(Default)]
pub struct ServingRuntimes {
    handles: Mutex<Vec<Handle>>,
}

impl ServingRuntimes {
    /// Adds an event loop (once per serving thread, at its start).
    pub fn add(&self, handle: Handle) {
        self.handles.lock().expect("runtimes lock").push(handle);
    }

    /// Tasks alive now on every serving event loop, summed.
    pub fn alive_tasks(&self) -> usize {
        self.handles
            .lock()
            .expect("runtimes lock")
            .iter()
            .map(|h| h.metrics().num_alive_tasks())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_tasks_alive_on_every_added_runtime() {
        let runtimes = ServingRuntimes::default();
        assert_eq!(runtimes.alive_tasks(), 0);
        let a = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let b = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtimes.add(a.handle().clone());
        runtimes.add(b.handle().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let waiting = a.spawn(async move {
            let _ = stopped.await;
        });
        let idle = b.spawn(std::future::pending::<()>());
        assert_eq!(runtimes.alive_tasks(), 2);
        stop.send(()).unwrap();
        a.block_on(waiting).unwrap();
        assert_eq!(runtimes.alive_tasks(), 1);
        idle.abort();
        let _ = b.block_on(idle);
        assert_eq!(runtimes.alive_tasks(), 0);
    }
}
