//! The HTTP clients that reach relays: one per outbound route (direct, or one per proxy).
//!
//! A reqwest client owns its connection pool, and a proxy is a property of the client, so each
//! distinct [`Route`] gets its own client. They live as long as a plan uses their route: a
//! config reload that keeps a relay's route keeps its warm connections. Every client is built
//! with `no_proxy()` first, so the environment is only ever used through the route the config
//! compiled ([`crate::routing::outbound`]), never by reqwest on its own.

//!
//! Each proxy thread has clients of its own: a pooled connection's task runs on the thread that
//! opened it, so a request served on another thread would pay a cross-thread wake-up on every
//! hop of its reply.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use anyhow::Context;

use crate::routing::Upstream;
use crate::routing::outbound::Route;

pub struct UpstreamClients {
    connect_timeout: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The routes of the plan in force.
    routes: HashSet<Route>,
    /// The proxy's threads: each gets a client per route ahead of its first request.
    threads: HashSet<ThreadId>,
    clients: HashMap<(ThreadId, Route), reqwest::Client>,
}

impl UpstreamClients {
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts the routes of `upstreams` in force: every proxy thread gets a client for each
    /// (a bad proxy URL fails here, before the plan is used), and the clients of routes no
    /// longer used are dropped (requests in flight keep theirs alive until they end). Building
    /// a client can read the system's certificates: call this off the event loop.
    pub fn prepare(&self, upstreams: &[Upstream]) -> anyhow::Result<()> {
        let routes: HashSet<Route> = upstreams.iter().map(|u| u.outbound.route.clone()).collect();
        let threads: Vec<ThreadId> = self.lock().threads.iter().copied().collect();
        let built = self.build_missing(&threads, &routes)?;
        let mut state = self.lock();
        state.clients.extend(built);
        state.clients.retain(|(_, route), _| routes.contains(route));
        state.routes = routes;
        Ok(())
    }

    /// Makes the calling thread one of the proxy's: it gets its clients now, before it serves.
    pub fn add_this_thread(&self) -> anyhow::Result<()> {
        let thread = std::thread::current().id();
        let routes = self.lock().routes.clone();
        let built = self.build_missing(&[thread], &routes)?;
        let mut state = self.lock();
        state.clients.extend(built);
        state.threads.insert(thread);
        Ok(())
    }

    fn build_missing(
        &self,
        threads: &[ThreadId],
        routes: &HashSet<Route>,
    ) -> anyhow::Result<Vec<((ThreadId, Route), reqwest::Client)>> {
        let mut built = Vec::new();
        for route in routes {
            for &thread in threads {
                let key = (thread, route.clone());
                if !self.lock().clients.contains_key(&key) {
                    built.push((key, build(route, self.connect_timeout)?));
                }
            }
            if threads.is_empty() {
                build(route, self.connect_timeout)?;
            }
        }
        Ok(built)
    }

    /// This thread's client for `route`. A proxy thread has one for every route of the plan
    /// in force; any other thread (a request that outlived two reloads, a command-line
    /// diagnostic) gets one built now.
    pub fn get(&self, route: &Route) -> anyhow::Result<reqwest::Client> {
        let key = (std::thread::current().id(), route.clone());
        if let Some(client) = self.lock().clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build(route, self.connect_timeout)?;
        self.lock().clients.insert(key, client.clone());
        Ok(client)
    }
}

/// A client for one route. Redirects are the client's business, not the proxy's.
fn build(route: &Route, connect_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Route::Proxy(url) = route {
        let proxy = reqwest::Proxy::all(url.expose())
            .map_err(|_| anyhow::anyhow!("outbound proxy {url} is not usable"))?;
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .with_context(|| format!("cannot build the HTTP client for relays ({route:?})"))
}
