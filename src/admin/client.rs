//! Commands' side of the admin API: ask the running `serve` at `admin`.
//!
//! Never through `HTTP_PROXY` and friends (`no_proxy`): the API is on loopback, and a proxy in
//! between would see the answers. A serve that cannot be reached at all is an [`Unreachable`]
//! error, so callers can tell "work without it" from "it refused".

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use super::{BALANCES, BALANCES_REFRESH};
use crate::balance::report::{EndpointBalance, RefreshReport};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A refresh asks every relay (each lookup has its own, shorter timeout).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(120);
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The running serve's admin API did not answer (nothing listens, or the connection failed):
/// the caller may work without it.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "cannot reach the running codex-helper's admin API at {admin}: {reason}. \
     Is `codex-helper serve` still running? If it is stuck, stop it and run this command again"
)]
pub struct Unreachable {
    pub admin: SocketAddr,
    pub reason: String,
}

/// Asks the running serve to look balances up now (all, or one provider's) and returns what
/// the refresh did.
pub async fn refresh(admin: SocketAddr, provider: Option<&str>) -> anyhow::Result<RefreshReport> {
    let body = serde_json::json!({ "provider_id": provider });
    let request = client(REFRESH_TIMEOUT)?
        .post(url(admin, BALANCES_REFRESH))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body)?);
    call(admin, request, REFRESH_TIMEOUT).await
}

/// The running serve's balances of every configured endpoint.
pub async fn balances(admin: SocketAddr) -> anyhow::Result<Vec<EndpointBalance>> {
    #[derive(Deserialize)]
    struct Balances {
        balances: Vec<EndpointBalance>,
    }
    let request = client(READ_TIMEOUT)?.get(url(admin, BALANCES));
    let answer: Balances = call(admin, request, READ_TIMEOUT).await?;
    Ok(answer.balances)
}

/// `GET` of a route under [`super::BASE`] (`/runtime/status`), its JSON as sent.
pub async fn get(admin: SocketAddr, route: &str) -> anyhow::Result<serde_json::Value> {
    get_with(admin, route, &[]).await
}

/// `GET` of a route with query parameters (encoded here), read as `T`.
pub async fn get_with<T: serde::de::DeserializeOwned>(
    admin: SocketAddr,
    route: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<T> {
    let mut address = reqwest::Url::parse(&url(admin, &format!("{}{route}", super::BASE)))
        .context("the admin API's address")?;
    if !query.is_empty() {
        address.query_pairs_mut().extend_pairs(query);
    }
    let request = client(READ_TIMEOUT)?.get(address);
    call(admin, request, READ_TIMEOUT).await
}

/// `POST` of a route under [`super::BASE`] with a JSON body, its JSON answer. Bounded by the
/// long timeout: some actions (the relay probe, a balance refresh) take seconds.
pub async fn post(
    admin: SocketAddr,
    route: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let request = client(REFRESH_TIMEOUT)?
        .post(url(admin, &format!("{}{route}", super::BASE)))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body)?);
    call(admin, request, REFRESH_TIMEOUT).await
}

fn url(admin: SocketAddr, path: &str) -> String {
    format!("http://{admin}{path}")
}

fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // reqwest's TLS setup needs a process-wide provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client for the admin API")
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

async fn call<T: serde::de::DeserializeOwned>(
    admin: SocketAddr,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> anyhow::Result<T> {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() => {
            return Err(Unreachable {
                admin,
                reason: root_cause(&e),
            }
            .into());
        }
        Err(e) if e.is_timeout() => anyhow::bail!(
            "the running codex-helper at {admin} did not answer within {} s; \
             it may still be working (check its log), or stop it and run this command again",
            timeout.as_secs()
        ),
        Err(e) => {
            return Err(Unreachable {
                admin,
                reason: root_cause(&e),
            }
            .into());
        }
    };
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| {
        anyhow::anyhow!(
            "the running codex-helper at {admin} broke off its answer: {}",
            root_cause(&e)
        )
    })?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => anyhow::anyhow!(
                "the running codex-helper refused ({}, {}): {}",
                status.as_u16(),
                body.error.code,
                body.error.message
            ),
            Err(_) => anyhow::anyhow!(
                "the running codex-helper at {admin} answered HTTP {} without an explanation; \
                 is another program listening there?",
                status.as_u16()
            ),
        });
    }
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "the running codex-helper at {admin} answered in a shape this command does not read; \
             is it a different version? Restart it with this one"
        )
    })
}

/// The innermost cause: reqwest's own text ("error sending request") says little.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
