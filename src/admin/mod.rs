//! The admin API: a small JSON HTTP API on loopback through which commands (and later the
//! console) ask a running `serve` for what only it knows, or to act so its routing sees the
//! result (`balance refresh`).
//!
//! The API is reached by commands on this machine, never by web pages: it refuses non-loopback
//! peers, foreign `Host` names (DNS rebinding) and any request a browser marks as its own
//! (`Origin`, `Sec-Fetch-*`). It only serialises the report types, so no secret can leave.
//!
//! The server knows the running `serve` only through the [`Console`] trait, so it depends on
//! neither the proxy nor the balance engine.

pub mod client;
mod server;

use futures_util::future::BoxFuture;

use crate::balance::report::{EndpointBalance, RefreshReport};

pub use server::{AdminHandle, BODY_MAX, serve_admin};

/// Every route lives under this path.
pub const BASE: &str = "/__codex_helper/api/v1";
/// `GET`: `{"balances": [EndpointBalance…]}`.
pub const BALANCES: &str = "/__codex_helper/api/v1/providers/balances";
/// `POST` (`?provider_id=ID` or a JSON body `{"provider_id": "…"}`): a `RefreshReport`.
pub const BALANCES_REFRESH: &str = "/__codex_helper/api/v1/providers/balances/refresh";

/// What the admin API asks of the running `serve`.
pub trait Console: Send + Sync + 'static {
    /// Every configured endpoint's balance as routing sees it now.
    fn balances(&self) -> Vec<EndpointBalance>;
    /// Looks balances up now (all endpoints, or one provider's). An error that is the caller's
    /// mistake should be an [`UnknownProvider`], which the API answers 404, not 500.
    fn refresh_balances(
        &self,
        provider: Option<String>,
    ) -> BoxFuture<'static, anyhow::Result<RefreshReport>>;
}

/// A provider id that names no configured provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no provider `{id}` in the config; the configured ones are: {}", known_list(.known))]
pub struct UnknownProvider {
    pub id: String,
    pub known: Vec<String>,
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "(none)".to_string()
    } else {
        known.join(", ")
    }
}
