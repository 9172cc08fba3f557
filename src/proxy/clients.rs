//! The HTTP clients that reach relays: one per outbound route (direct, or one per proxy).
//!
//! A reqwest client owns its connection pool, and a proxy is a property of the client, so each
//! distinct [`Route`] gets its own client. They live as long as a plan uses their route: a
//! config reload that keeps a relay's route keeps its warm connections. Every client is built
//! with `no_proxy()` first, so the environment is only ever used through the route the config
//! compiled ([`crate::routing::outbound`]), never by reqwest on its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use crate::routing::Upstream;
use crate::routing::outbound::Route;

pub struct UpstreamClients {
    connect_timeout: Duration,
    clients: Mutex<HashMap<Route, reqwest::Client>>,
}

impl UpstreamClients {
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure every route of `upstreams` has a client, and drops the clients of routes no
    /// longer used (requests in flight keep theirs alive until they end).
    pub fn prepare(&self, upstreams: &[Upstream]) -> anyhow::Result<()> {
        let mut wanted: HashMap<Route, reqwest::Client> = HashMap::new();
        for upstream in upstreams {
            let route = &upstream.outbound.route;
            if wanted.contains_key(route) {
                continue;
            }
            let existing = self
                .clients
                .lock()
                .expect("clients lock")
                .get(route)
                .cloned();
            let client = match existing {
                Some(client) => client,
                None => build(route, self.connect_timeout)?,
            };
            wanted.insert(route.clone(), client);
        }
        *self.clients.lock().expect("clients lock") = wanted;
        Ok(())
    }

    /// The client for `route`. Every route of the plan in force was prepared; one that was
    /// not (a request that outlived two reloads) is built now.
    pub fn get(&self, route: &Route) -> anyhow::Result<reqwest::Client> {
        if let Some(client) = self.clients.lock().expect("clients lock").get(route) {
            return Ok(client.clone());
        }
        build(route, self.connect_timeout)
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
