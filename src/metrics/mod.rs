//! Prometheus metrics for the admin API's `GET /metrics`.
//!
//! Counting never slows a request: [`registry`] holds plain atomics (fixed arrays per
//! endpoint, fixed-bucket histograms, gauges moved by guards), fed by [`sink::MetricsSink`]
//! from finished records and by guards the proxy holds for open connections and streams.
//! Everything else (ledger counters, balances, the build) is read at scrape time
//! ([`scraped`]), and [`render`] writes the text format. Every label set is bounded: endpoint
//! ids come from the config (capped), status codes are named or grouped, outcomes and attempt
//! results are typed names; never a session id or a client's model string.

pub mod registry;
pub mod render;
pub mod scraped;
pub mod sink;

pub use registry::Registry;
pub use sink::MetricsSink;
