//! The admin API's `GET /metrics` on a running `serve`: the proxy's counters, the ledger
//! writer's, the balances and the build, gathered and written in the Prometheus text format.

use std::sync::atomic::Ordering::Relaxed;

use super::console::ServeConsole;
use crate::admin::Console;
use crate::balance::snapshot::Status;
use crate::metrics::render::render;
use crate::metrics::scraped::{self, BalanceState, LedgerCounts};

impl ServeConsole {
    /// The scrape body. Reads atomics and the balance service's map; nothing waits on IO.
    pub(super) fn metrics_text(&self) -> String {
        let registry = &self.state.metrics;
        // Every configured endpoint has its series from the first scrape on.
        for upstream in &self.state.plan().graph.upstreams {
            registry.know(&upstream.provider, &upstream.endpoint);
        }
        let mut families = scraped::build(env!("CARGO_PKG_VERSION"), self.started_ms);
        families.extend(registry.families());
        families.push(scraped::tasks(self.state.runtimes.alive_tasks()));
        if let Some(stats) = &self.ledger {
            families.extend(scraped::ledger(LedgerCounts {
                queued: stats.queued.load(Relaxed),
                written: stats.written.load(Relaxed),
                dropped: stats.dropped.load(Relaxed),
                failed: stats.failed.load(Relaxed),
            }));
        }
        let balances: Vec<BalanceState> = self
            .balances()
            .into_iter()
            .map(|b| BalanceState {
                endpoint: endpoint_id(&b.provider, &b.endpoint).to_string(),
                provider: b.provider,
                state: b.status.as_str(),
            })
            .collect();
        let states = Status::ALL.map(Status::as_str);
        families.push(scraped::balances(&balances, &states));
        render(&families)
    }
}

/// The endpoint id within its provider from a `provider.endpoint` key.
fn endpoint_id<'a>(provider: &str, key: &'a str) -> &'a str {
    key.strip_prefix(provider)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_endpoint_id_is_the_key_without_its_provider() {
        assert_eq!(super::endpoint_id("relay", "relay.default"), "default");
        assert_eq!(super::endpoint_id("relay", "relay.a.b"), "a.b");
        assert_eq!(super::endpoint_id("relay", "other.x"), "other.x");
    }
}
