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

pub mod assets;
pub mod client;
pub mod routes;
mod server;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::balance::report::{EndpointBalance, RefreshReport};

pub use server::{AdminHandle, BODY_MAX, serve_admin};

/// Every route lives under this path.
pub const BASE: &str = "/__codex_helper/api/v1";
/// The environment variable that holds the token for non-loopback clients.
pub const TOKEN_ENV: &str = "CODEX_HELPER_ADMIN_TOKEN";
/// `GET`: `{"balances": [EndpointBalance…]}`.
pub const BALANCES: &str = "/__codex_helper/api/v1/providers/balances";
/// `POST` (`?provider_id=ID` or a JSON body `{"provider_id": "…"}`): a `RefreshReport`.
pub const BALANCES_REFRESH: &str = "/__codex_helper/api/v1/providers/balances/refresh";

/// The web console's address as this machine opens it: the admin API's root (an unspecified
/// bind is reached on loopback).
pub fn console_url(admin: std::net::SocketAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match admin.ip() {
        ip if !ip.is_unspecified() => ip,
        IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
    };
    format!("http://{}/", std::net::SocketAddr::new(ip, admin.port()))
}

/// What the admin API asks of the running `serve`. Errors that are the caller's mistake are
/// a [`Problem`] (or an [`UnknownProvider`]), which the API answers with their status; any
/// other error is a 500. A method this console cannot serve answers [`Problem::unavailable`]
/// (the defaults do), never an empty success.
pub trait Console: Send + Sync + 'static {
    /// Every configured endpoint's balance as routing sees it now.
    fn balances(&self) -> Vec<EndpointBalance>;
    /// Looks balances up now (all endpoints, or one provider's).
    fn refresh_balances(
        &self,
        provider: Option<String>,
    ) -> BoxFuture<'static, anyhow::Result<RefreshReport>>;

    /// The running helper (`GET /runtime/status`).
    fn runtime(&self) -> anyhow::Result<Value> {
        Err(Problem::unavailable("runtime status").into())
    }
    /// Reloads the config now (`POST /runtime/reload`).
    fn reload(&self) -> BoxFuture<'static, anyhow::Result<Value>> {
        unavailable("reload")
    }
    /// Starts a graceful shutdown (`POST /runtime/shutdown`).
    fn shutdown(&self) -> anyhow::Result<()> {
        Err(Problem::unavailable("shutdown").into())
    }
    /// Every enabled endpoint and its routing state (`GET /providers`).
    fn providers(&self) -> anyhow::Result<Value> {
        Err(Problem::unavailable("providers").into())
    }
    /// Switches endpoints off or on, or drains them, while running, or switches them in the
    /// config file (`POST /providers/runtime`), its JSON body.
    fn set_runtime(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = body;
        unavailable("runtime switches")
    }
    /// Where a request would go now (`GET /routing/explain`).
    fn explain(&self, model: Option<String>, session: Option<String>) -> anyhow::Result<Value> {
        let _ = (model, session);
        Err(Problem::unavailable("routing explain").into())
    }
    /// Everything a console polls, in one answer (`GET /snapshot`).
    fn snapshot(&self, recent: usize) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = recent;
        unavailable("the snapshot")
    }
    /// Sessions by last use (`GET /sessions`).
    fn sessions(&self, limit: usize) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = limit;
        unavailable("sessions")
    }
    /// One session (`GET /sessions/{id}`); [`Problem::not_found`] when it is not known.
    fn session(&self, id: String) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = id;
        unavailable("sessions")
    }
    /// The newest ledger rows (`GET /request-ledger/recent`).
    fn ledger_recent(&self, query: RecentQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = query;
        unavailable("the request ledger")
    }
    /// Grouped totals (`GET /request-ledger/summary`).
    fn ledger_summary(&self, query: SummaryQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = query;
        unavailable("the request ledger")
    }
    /// Requests, tokens, cost and latency over time (`GET /request-ledger/series`).
    fn ledger_series(&self, query: SeriesQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = query;
        unavailable("the ledger")
    }
    /// One request's attempts and route decision (`GET /request-ledger/chain/{trace_id}`);
    /// [`Problem::not_found`] when the ledger has no such request.
    fn ledger_chain(&self, trace_id: String) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = trace_id;
        unavailable("the ledger")
    }
    /// Balances per provider with their burn forecast (`GET /usage/forecast`).
    fn forecast(&self) -> BoxFuture<'static, anyhow::Result<Value>> {
        unavailable("the usage forecast")
    }
    /// `POST /codex/relay-capabilities`, its JSON body as given.
    fn relay_capabilities(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = body;
        unavailable("relay diagnostics")
    }
    /// `POST /codex/relay-live-smoke`, its JSON body as given. The acknowledgement is checked
    /// before any request is sent.
    fn relay_live_smoke(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = body;
        unavailable("relay diagnostics")
    }
    /// `GET /codex/relay-evidence`.
    fn relay_evidence(&self, query: EvidenceQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = query;
        unavailable("relay evidence")
    }
    /// The profiles in force (`GET /profiles`).
    fn profiles(&self) -> anyhow::Result<Value> {
        Err(Problem::unavailable("profiles").into())
    }
    /// Every session's overrides (`GET /overrides/session`).
    fn session_overrides(&self) -> anyhow::Result<Value> {
        Err(Problem::unavailable("session overrides").into())
    }
    /// Sets or clears a session's overrides (`POST /overrides/session`), its JSON body.
    fn set_session_overrides(&self, body: Value) -> anyhow::Result<Value> {
        let _ = body;
        Err(Problem::unavailable("session overrides").into())
    }
    /// Applies or removes a session's profile (`POST /overrides/session/profile`).
    fn apply_session_profile(&self, body: Value) -> anyhow::Result<Value> {
        let _ = body;
        Err(Problem::unavailable("session overrides").into())
    }
    /// Writes the default profile into the config file (`POST /profiles/default/persisted`).
    fn persist_default_profile(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = body;
        unavailable("config edits")
    }
    /// Edits the entry route node in the config file (`POST /routing/persisted`).
    fn persist_routing(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let _ = body;
        unavailable("config edits")
    }
    /// The route graph in force with each endpoint's live state (`GET /routing`).
    fn routing(&self) -> anyhow::Result<Value> {
        Err(Problem::unavailable("the route graph").into())
    }
    /// The Prometheus text exposition of the running helper's metrics (`GET /metrics`).
    fn metrics(&self) -> anyhow::Result<String> {
        Err(Problem::unavailable("metrics").into())
    }
}

fn unavailable(what: &'static str) -> BoxFuture<'static, anyhow::Result<Value>> {
    Box::pin(async move { Err(Problem::unavailable(what).into()) })
}

/// `GET /request-ledger/recent`'s parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentQuery {
    pub limit: usize,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub session: Option<String>,
    pub errors_only: bool,
}

/// `GET /request-ledger/summary`'s parameters, as given (the console reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryQuery {
    pub since: Option<String>,
    pub by: Option<String>,
    /// Remaining USD, for the forecast.
    pub balance: Option<String>,
}

/// `GET /request-ledger/series`'s parameters.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    pub window: crate::ledger::series::Window,
    pub filter: crate::ledger::series::SeriesFilter,
    /// For 30 days: the client's own 31 midnights (`day_starts=ms,…`), not yet checked
    /// against the time (the reader does that with its clock).
    pub day_starts: Option<Vec<u64>>,
}

/// `GET /codex/relay-evidence`'s parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvidenceQuery {
    pub limit: usize,
    pub provider: Option<String>,
    pub kind: Option<String>,
}

/// A request the console cannot serve, with the status that says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// 400: the request is wrong.
    BadRequest,
    /// 404: it names something that is not there.
    NotFound,
    /// 503: this helper cannot do it (turned off, or not built in).
    Unavailable,
    /// 409: it would overwrite something that changed since it was read.
    Conflict,
}

impl Problem {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Problem {
            kind: ProblemKind::BadRequest,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Problem {
            kind: ProblemKind::NotFound,
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Problem {
            kind: ProblemKind::Conflict,
            message: message.into(),
        }
    }

    pub fn unavailable(what: &str) -> Self {
        Problem {
            kind: ProblemKind::Unavailable,
            message: format!("{what} is not available from this codex-helper"),
        }
    }
}

/// Who besides this machine may use the API.
#[derive(Clone, Default)]
pub struct Access {
    /// `CODEX_HELPER_ADMIN_TOKEN`: a client that presents it (`Authorization: Bearer …` or
    /// `x-codex-helper-admin-token`) is admitted from any address. Without it, loopback only.
    pub token: Option<crate::routing::Secret>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_console_url_is_one_this_machine_opens() {
        let url = |addr: &str| super::console_url(addr.parse().unwrap());
        assert_eq!(url("127.0.0.1:4211"), "http://127.0.0.1:4211/");
        assert_eq!(url("0.0.0.0:4211"), "http://127.0.0.1:4211/");
        assert_eq!(url("[::]:4211"), "http://[::1]:4211/");
        assert_eq!(url("192.0.2.7:4211"), "http://192.0.2.7:4211/");
    }
}
