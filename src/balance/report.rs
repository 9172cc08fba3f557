//! What balance commands and the admin API answer: each endpoint's latest snapshot and where
//! it stands, and what one refresh did. Plain data, serialised as the JSON scripts read.

use serde::{Deserialize, Serialize};

use super::snapshot::{Snapshot, Status};

/// One relay endpoint's balance as shown to the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointBalance {
    /// The config's provider id.
    pub provider: String,
    /// `provider.endpoint`.
    pub endpoint: String,
    /// The snapshot's state now (`unknown` when there is none).
    pub status: Status,
    /// Until when (epoch ms) the balance keeps this endpoint out of routing, if it does.
    pub routing_exhausted_until_ms: Option<u64>,
    /// The latest lookup, if there has been one.
    pub snapshot: Option<Snapshot>,
}

impl EndpointBalance {
    /// `endpoint`'s balance at `now_ms` from its latest snapshot (`unknown` without one).
    /// `out_until_ms` is when the balance stops keeping it out of routing, if it does.
    pub fn new(
        provider: &str,
        endpoint: &str,
        snapshot: Option<Snapshot>,
        out_until_ms: Option<u64>,
        now_ms: u64,
    ) -> Self {
        EndpointBalance {
            provider: provider.to_string(),
            endpoint: endpoint.to_string(),
            status: snapshot
                .as_ref()
                .map_or(Status::Unknown, |s| s.status(now_ms)),
            routing_exhausted_until_ms: out_until_ms.filter(|until| *until > now_ms),
            snapshot,
        }
    }
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefreshReport {
    /// The `--provider` it was limited to.
    pub provider_filter: Option<String>,
    /// Endpoints the refresh covered.
    pub endpoints_matched: usize,
    /// Lookups made (auto-discovery counts each endpoint once).
    pub attempted: usize,
    /// Lookups that gave a snapshot without an error.
    pub refreshed: usize,
    /// Lookups that gave an error snapshot.
    pub failed: usize,
    /// Endpoints skipped because no token could be found for them.
    pub missing_token: usize,
    /// This call joined an identical refresh already running, and shares its result.
    pub deduplicated: bool,
    /// The balances of the covered endpoints after the refresh.
    pub balances: Vec<EndpointBalance>,
}
