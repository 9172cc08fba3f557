//! The admin API's HTTP server: hyper HTTP/1 per connection on the current tokio runtime,
//! the refusals, the routes, and the one JSON error shape.
//!
//! Everything a request can make us hold has a bound: connections at once, the time to send a
//! head, the body's size and the time to send it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::routes::{ROUTES, Route, Spec, matches};
use super::{
    Access, BASE, Console, EvidenceQuery, Problem, ProblemKind, RecentQuery, SeriesQuery,
    SummaryQuery, UnknownProvider,
};
use crate::ledger::series::{SeriesFilter, Window};
use crate::net::{FORWARDED_HEADERS, host_name, is_loopback_ip, is_loopback_name};

/// Largest request body read.
pub const BODY_MAX: usize = 64 * 1024;
/// Time allowed to send a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed on accept (only local commands connect).
const CONNECTIONS_MAX: usize = 64;
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running admin API; [`AdminHandle::shutdown`] stops it (dropping it stops it too).
pub struct AdminHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AdminHandle {
    /// Stops accepting, lets requests in flight finish (at most 5 s), and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the admin API on `listener` (which must be on a loopback address) in a task of the
/// current runtime.
pub async fn serve_admin(
    listener: TcpListener,
    console: Arc<dyn Console>,
    access: Access,
) -> anyhow::Result<AdminHandle> {
    let addr = listener.local_addr()?;
    if !is_loopback_ip(addr.ip()) && access.token.is_none() {
        anyhow::bail!(
            "the admin API listens on {addr}, which other machines can reach, only with a token: \
             set {} (at least 16 characters) or keep it on 127.0.0.1",
            super::TOKEN_ENV
        );
    }
    let access = Arc::new(access);
    let (stop, mut stopped) = oneshot::channel();
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("admin API: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut stopped => break,
            };
            match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let shared = (console.clone(), access.clone());
                    spawn_connection(stream, peer, shared, &graceful, slot)
                }
                Err(_) => tracing::warn!(
                    "admin API: {CONNECTIONS_MAX} connections already open; closed one from {peer}"
                ),
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    });
    Ok(AdminHandle {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    (console, access): (Arc<dyn Console>, Arc<Access>),
    graceful: &GracefulShutdown,
    slot: OwnedSemaphorePermit,
) {
    let service = service_fn(move |request| {
        let (console, access) = (console.clone(), access.clone());
        async move { Ok::<_, Infallible>(handle(console, access, peer, request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("admin API: connection from {peer} ended with an error: {e}");
        }
        drop(slot);
    });
}

/// An answer that is not a success: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For 405: the methods the path takes.
    pub allow: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = json_response(self.status, &body);
        // Method names from the route table: always a valid header value.
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn handle(
    console: Arc<dyn Console>,
    access: Arc<Access>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match respond(console, &access, peer, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn respond(
    console: Arc<dyn Console>,
    access: &Access,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    if let Some(asset) = super::assets::find(request.method(), request.uri().path()) {
        return Ok(super::assets::response(asset));
    }
    admit(peer, request.headers(), request.uri(), access)?;
    let path = match request.uri().path() {
        // Prometheus scrapes `/metrics` unless told otherwise.
        "/metrics" => METRICS_ALIAS,
        path => path,
    };
    let (route, path_param) = route(request.method(), path)?;
    let spec = ROUTES
        .iter()
        .find(|s| s.route == route)
        .expect("a routed route is in the table");
    let pairs = query_pairs(request.uri().query())?;
    refuse_unknown_query(spec, &pairs)?;
    let body = if spec.body {
        read_body(request).await?
    } else {
        Bytes::new()
    };
    let ok = |value: &dyn erased::Json| Ok(json_response(StatusCode::OK, &value.json()));
    match route {
        Route::Capabilities => ok(&capabilities(access)),
        Route::OpenApi => ok(&super::routes::openapi()),
        Route::Snapshot => {
            let recent = number(&pairs, "recent", 50, 200)?;
            ok(&console.snapshot(recent).await.map_err(console_error)?)
        }
        Route::RuntimeStatus => ok(&console.runtime().map_err(console_error)?),
        Route::RuntimeReload => ok(&console.reload().await.map_err(console_error)?),
        Route::RuntimeShutdown => {
            console.shutdown().map_err(console_error)?;
            ok(&serde_json::json!({"shutting_down": true}))
        }
        Route::Providers => ok(&console.providers().map_err(console_error)?),
        Route::ProvidersRuntime => {
            let body = json_body(&body)?;
            ok(&console.set_runtime(body).await.map_err(console_error)?)
        }
        Route::RoutingExplain => {
            let (model, session) = (param(&pairs, "model")?, param(&pairs, "session")?);
            ok(&console.explain(model, session).map_err(console_error)?)
        }
        Route::Sessions => {
            let limit = number(&pairs, "limit", 50, 1000)?.max(1);
            ok(&console.sessions(limit).await.map_err(console_error)?)
        }
        Route::Session => {
            let id = path_param.unwrap_or_default();
            let id = percent_decoded(&id)?;
            ok(&console.session(id).await.map_err(console_error)?)
        }
        Route::Balances => ok(&serde_json::json!({ "balances": console.balances() })),
        Route::BalancesRefresh => {
            let from_query = provider_from_query(&pairs)?;
            let provider = merge_provider(from_query, provider_from_body(&body)?)?;
            let report = console.refresh_balances(provider).await.map_err(|e| {
                let error = console_error(e);
                match error.code {
                    "failed" => ApiError {
                        code: "refresh_failed",
                        ..error
                    },
                    _ => error,
                }
            })?;
            ok(&serde_json::to_value(&report).unwrap_or_default())
        }
        Route::LedgerRecent => {
            let query = recent_query(&pairs)?;
            ok(&console.ledger_recent(query).await.map_err(console_error)?)
        }
        Route::LedgerSummary => {
            let query = SummaryQuery {
                since: param(&pairs, "since")?,
                by: param(&pairs, "by")?,
                balance: param(&pairs, "balance")?,
            };
            ok(&console.ledger_summary(query).await.map_err(console_error)?)
        }
        Route::LedgerSeries => {
            let query = series_query(&pairs)?;
            ok(&console.ledger_series(query).await.map_err(console_error)?)
        }
        Route::LedgerChain => {
            let id = percent_decoded(&path_param.unwrap_or_default())?;
            ok(&console.ledger_chain(id).await.map_err(console_error)?)
        }
        Route::UsageForecast => ok(&console.forecast().await.map_err(console_error)?),
        Route::RelayCapabilities => {
            let body = json_body(&body)?;
            ok(&console
                .relay_capabilities(body)
                .await
                .map_err(console_error)?)
        }
        Route::RelayLiveSmoke => {
            let body = json_body(&body)?;
            ok(&console
                .relay_live_smoke(body)
                .await
                .map_err(console_error)?)
        }
        Route::RelayEvidence => {
            let query = EvidenceQuery {
                limit: number(&pairs, "limit", 20, 100_000)?,
                provider: param(&pairs, "provider")?,
                kind: param(&pairs, "kind")?,
            };
            ok(&console.relay_evidence(query).await.map_err(console_error)?)
        }
        Route::Profiles => ok(&console.profiles().map_err(console_error)?),
        Route::SessionOverrides => ok(&console.session_overrides().map_err(console_error)?),
        Route::SetSessionOverrides => {
            let body = json_body(&body)?;
            ok(&console.set_session_overrides(body).map_err(console_error)?)
        }
        Route::SessionProfile => {
            let body = json_body(&body)?;
            ok(&console.apply_session_profile(body).map_err(console_error)?)
        }
        Route::Routing => ok(&console.routing().map_err(console_error)?),
        Route::SessionReset => {
            // The same as clearing `all`: one path for both.
            let mut body = json_body(&body)?;
            if let Some(fields) = body.as_object_mut() {
                fields.insert("clear".into(), serde_json::json!(["all"]));
            }
            ok(&console.set_session_overrides(body).map_err(console_error)?)
        }
        Route::PersistDefaultProfile => {
            let body = json_body(&body)?;
            ok(&console
                .persist_default_profile(body)
                .await
                .map_err(console_error)?)
        }
        Route::PersistRouting => {
            let body = json_body(&body)?;
            ok(&console.persist_routing(body).await.map_err(console_error)?)
        }
        Route::Metrics => Ok(metrics_response(console.metrics().map_err(console_error)?)),
    }
}

/// Refuses a query parameter `spec`'s route does not take, naming those it does.
fn refuse_unknown_query(spec: &Spec, pairs: &[(String, String)]) -> Result<(), ApiError> {
    let known = |name: &String| spec.query.iter().any(|(known, _)| known == name);
    let Some((name, _)) = pairs.iter().find(|(name, _)| !known(name)) else {
        return Ok(());
    };
    let known: Vec<&str> = spec.query.iter().map(|(n, _)| *n).collect();
    let takes = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    Err(ApiError::bad_request(format!(
        "unknown query parameter `{}`: this route takes {takes}",
        name.chars().take(100).collect::<String>()
    )))
}

/// `GET /ledger/series`'s query: `window` (1h by default), `session`, `provider`,
/// `day_starts`.
fn series_query(pairs: &[(String, String)]) -> Result<SeriesQuery, ApiError> {
    let window = match param(pairs, "window")? {
        None => Window::Hour,
        Some(name) => Window::parse(&name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`window` is 1h, 24h or 30d, not `{}`",
                name.chars().take(100).collect::<String>()
            ))
        })?,
    };
    let filter = SeriesFilter {
        session: param(pairs, "session")?,
        provider: param(pairs, "provider")?,
    };
    // 31 numbers of up to 20 digits and their commas.
    let day_starts = param_capped(pairs, "day_starts", 31 * 21)?
        .map(|list| day_starts_param(&list, window))
        .transpose()?;
    Ok(SeriesQuery {
        window,
        filter,
        day_starts,
    })
}

/// `GET /metrics`: the Prometheus text format, not JSON.
fn metrics_response(text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::render::CONTENT_TYPE),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Lets `respond` hand any JSON-able value to one `ok`.
mod erased {
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}

/// `GET /capabilities`.
fn capabilities(access: &Access) -> serde_json::Value {
    serde_json::json!({
        "api_version": 1,
        "version": env!("CARGO_PKG_VERSION"),
        "base": BASE,
        "routes": super::routes::listing(),
        "access": {
            "loopback_without_token": true,
            "remote_requires_token": true,
            "remote_enabled": access.token.is_some(),
            "token_env_var": super::TOKEN_ENV,
            "token_headers": ["authorization: Bearer <token>", TOKEN_HEADER],
        },
    })
}

/// The header a token may also come in (the original codex-helper's name).
const TOKEN_HEADER: &str = "x-codex-helper-admin-token";

/// The one value of a query parameter, if given.
fn param(pairs: &[(String, String)], name: &str) -> Result<Option<String>, ApiError> {
    param_capped(pairs, name, 200)
}

/// [`param`] for a value that may be longer (a list), up to `max` bytes.
fn param_capped(
    pairs: &[(String, String)],
    name: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let mut values = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
    let value = values.next().cloned();
    if values.next().is_some() {
        return Err(ApiError::bad_request(format!(
            "`{name}` is given more than once"
        )));
    }
    if value
        .as_deref()
        .is_some_and(|v| v.len() > max || v.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(format!(
            "`{name}` is not a usable value"
        )));
    }
    Ok(value)
}

/// A whole-number parameter, `default` when absent, at most `max`.
fn number(
    pairs: &[(String, String)],
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match param(pairs, name)? {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be a whole number up to {max}"))
            }),
    }
}

fn recent_query(pairs: &[(String, String)]) -> Result<RecentQuery, ApiError> {
    let errors_only = match param(pairs, "errors")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("`errors` is `true` or `false`")),
    };
    Ok(RecentQuery {
        limit: number(pairs, "limit", 50, 1000)?.max(1),
        provider: param(pairs, "provider")?,
        model: param(pairs, "model")?,
        session: param(pairs, "session")?,
        errors_only,
    })
}

/// A path segment, percent-decoded; a session id is short printable text.
fn percent_decoded(segment: &str) -> Result<String, ApiError> {
    let url = reqwest::Url::parse(&format!("http://localhost/?v={segment}"))
        .map_err(|_| ApiError::bad_request("the path cannot be read"))?;
    let value = url
        .query_pairs()
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if value.is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request("not a session or trace id"));
    }
    Ok(value)
}

/// A JSON object body (an empty body is `{}`).
fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// The refusals, before anything is read or done: a non-loopback peer (or one that forwards
/// another's request), a request from a web page other than the console's own, a `Host` that
/// is not a loopback name (DNS rebinding) or none at all.
pub(super) fn admit(
    peer: SocketAddr,
    headers: &HeaderMap,
    uri: &http::Uri,
    access: &Access,
) -> Result<(), ApiError> {
    let presented = presented_token(headers);
    let token_ok = match (&access.token, &presented) {
        (Some(token), Some(given)) => same(token.expose().as_bytes(), given.as_bytes()),
        _ => false,
    };
    if presented.is_some() && !token_ok {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            format!(
                "the admin token is not the one this codex-helper was started with ({})",
                super::TOKEN_ENV
            ),
        ));
    }
    if !is_loopback_ip(peer.ip()) && !token_ok {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "peer_not_loopback",
            format!(
                "the admin API answers other machines only with its token (set {} where the \
                 helper runs, and send it as `Authorization: Bearer …`); {} is not a loopback address",
                super::TOKEN_ENV,
                peer.ip()
            ),
        ));
    }
    // A reverse proxy on this machine connects from loopback on behalf of anyone who reaches it.
    if let Some(name) = FORWARDED_HEADERS
        .iter()
        .find(|name| headers.contains_key(*name))
        && !token_ok
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_required",
            format!(
                "this request came through a proxy (it carries `{name}`), so it may come from \
                 anywhere: the admin API answers it only with its token ({})",
                super::TOKEN_ENV
            ),
        ));
    }
    let hosts: Vec<String> = headers
        .get_all(header::HOST)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .chain(uri.authority().map(|a| a.as_str().to_string()))
        .collect();
    // A client with the token is not a web page: it may name the machine any way it reaches it.
    if token_ok {
        return Ok(());
    }
    // The console names the host its page was loaded from: one that is not this machine means a
    // proxy forwarded it without saying so (nginx adds no `X-Forwarded-For` unless told to).
    if let Some(seen) = headers
        .get(CONSOLE_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .filter(|seen| seen != "1" && !is_loopback_name(host_name(seen.trim())))
    {
        let quoted: String = seen.chars().take(100).collect();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_required",
            format!(
                "the console was opened as `{quoted}`, which is not this machine, so the request \
                 may come from anywhere: the admin API answers it only with its token ({})",
                super::TOKEN_ENV
            ),
        ));
    }
    if let Some(name) = foreign_page(headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "browser_request_refused",
            format!(
                "the admin API refuses requests from web pages other than its own console \
                 (this one carries `{name}`): a web page must not be able to drive codex-helper"
            ),
        ));
    }
    if hosts.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            "the admin API needs a `Host` header naming a loopback address (127.0.0.1, localhost, [::1])",
        ));
    }
    if let Some(host) = hosts
        .iter()
        .find(|h| !is_loopback_name(host_name(h.trim())))
    {
        let quoted: String = host.chars().take(100).collect();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "the admin API only answers requests addressed to a loopback name \
                 (127.0.0.1, localhost, [::1]); this one was addressed to `{quoted}`"
            ),
        ));
    }
    Ok(())
}

/// The header the web console sends with every API call. A page of another origin cannot
/// send it without a CORS preflight, which this API never grants.
pub const CONSOLE_HEADER: &str = "x-codex-helper-console";

/// The browser header that makes `headers` a foreign web page's request, if they do: a
/// browser request (`Origin`, `Sec-Fetch-*`) is admitted only as the console's own, with
/// [`CONSOLE_HEADER`] and the browser's word that it is same-origin (`Sec-Fetch-Site`, which
/// a page cannot set; where the browser does not send it, over plain HTTP to another machine,
/// an `Origin` naming the host asked).
fn foreign_page(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let marked = headers.keys().find(|name| {
        let name = name.as_str();
        name == "origin" || name.starts_with("sec-fetch-")
    })?;
    if !headers.contains_key(CONSOLE_HEADER) {
        return Some(marked.as_str().to_string());
    }
    let same_origin = match (text("sec-fetch-site"), text("origin")) {
        (Some(site), _) => site == "same-origin",
        (None, None) => true,
        (None, Some(origin)) => {
            let asked = origin.split_once("://").map(|(_, authority)| authority);
            let hosts = [text("host"), text("x-forwarded-host")];
            asked.is_some_and(|a| hosts.iter().flatten().any(|h| h.eq_ignore_ascii_case(a)))
        }
    };
    let name = if headers.contains_key("sec-fetch-site") {
        "sec-fetch-site"
    } else {
        "origin"
    };
    (!same_origin).then(|| name.to_string())
}

/// `GET /metrics`'s full path, which the bare `/metrics` also answers.
const METRICS_ALIAS: &str = "/__codex_helper/api/v1/metrics";

/// The route for a method and path: 404 for an unknown path, 405 (with `Allow`) for a known
/// path asked with another method.
pub(super) fn route(method: &Method, path: &str) -> Result<(Route, Option<String>), ApiError> {
    let specs: Vec<(&Spec, Option<String>)> = ROUTES
        .iter()
        .filter_map(|s| matches(s, path).map(|param| (s, param)))
        .collect();
    if specs.is_empty() {
        let quoted: String = path.chars().take(200).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no admin API route `{quoted}` (see {BASE}/capabilities)"),
        ));
    }
    if let Some((spec, param)) = specs.iter().find(|(s, _)| s.method == method) {
        return Ok((spec.route, param.clone()));
    }
    // Every method the path takes (`/overrides/session` takes GET and POST).
    let allow = specs
        .iter()
        .map(|(s, _)| s.method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError {
        allow: Some(allow.clone()),
        ..ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("`{path}` takes {allow}, not {method}"),
        )
    })
}

fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(Vec::new());
    };
    let url = reqwest::Url::parse(&format!("http://localhost/?{query}"))
        .map_err(|_| ApiError::bad_request("the query string cannot be read"))?;
    Ok(url.query_pairs().into_owned().collect())
}

/// `?provider_id=ID` (the only parameter the refresh takes).
pub(super) fn provider_from_query(pairs: &[(String, String)]) -> Result<Option<String>, ApiError> {
    param(pairs, "provider_id")?
        .map(checked_provider)
        .transpose()
}

/// `day_starts=ms,ms,…`: numbers, at most a month's worth, and only for the 30-day window.
fn day_starts_param(list: &str, window: Window) -> Result<Vec<u64>, ApiError> {
    if window != Window::Month {
        return Err(ApiError::bad_request(
            "`day_starts` goes with `window=30d` only",
        ));
    }
    let values: Vec<&str> = list.split(',').take(Window::Month.buckets() + 2).collect();
    values
        .iter()
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "`day_starts` is a comma-separated list of midnights in ms since the epoch",
                )
            })
        })
        .collect()
}

/// The token a request presents, if any.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    bearer.or_else(|| {
        headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|t| t.trim().to_string())
    })
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    provider_id: Option<String>,
}

/// `{"provider_id": "…"}`, or nothing (an empty body).
pub(super) fn provider_from_body(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: RefreshBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON like {{\"provider_id\": \"ID\"}}: {e}"
        ))
    })?;
    parsed.provider_id.map(checked_provider).transpose()
}

fn merge_provider(query: Option<String>, body: Option<String>) -> Result<Option<String>, ApiError> {
    match (query, body) {
        (Some(q), Some(b)) if q != b => Err(ApiError::bad_request(
            "`provider_id` differs between the query string and the body",
        )),
        (q, b) => Ok(q.or(b)),
    }
}

fn checked_provider(id: String) -> Result<String, ApiError> {
    if id.trim().is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "`provider_id` must be a provider id from the config",
        ));
    }
    Ok(id)
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {BODY_MAX} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_MAX as u64) {
        return Err(too_large());
    }
    let body = Limited::new(request.into_body(), BODY_MAX);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "the request body could not be read: {e}"
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn console_error(e: anyhow::Error) -> ApiError {
    if let Some(unknown) = e.downcast_ref::<UnknownProvider>() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            unknown.to_string(),
        );
    }
    if let Some(problem) = e.downcast_ref::<Problem>() {
        let (status, code) = match problem.kind {
            ProblemKind::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            ProblemKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ProblemKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ProblemKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        };
        return ApiError::new(status, code, problem.message.clone());
    }
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "failed",
        format!("{e:#}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{BALANCES, BALANCES_REFRESH};

    #[test]
    fn an_unknown_query_parameter_is_refused_naming_those_the_route_takes() {
        let spec = |route| ROUTES.iter().find(|s| s.route == route).unwrap();
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let refused = |route, list: &[(&str, &str)]| {
            refuse_unknown_query(spec(route), &pairs(list))
                .err()
                .map(|e| e.message)
        };
        assert_eq!(refused(Route::Sessions, &[("limit", "5")]), None);
        assert_eq!(
            refused(Route::Sessions, &[("limit", "5"), ("colour", "red")]).as_deref(),
            Some("unknown query parameter `colour`: this route takes limit")
        );
        assert_eq!(
            refused(Route::Capabilities, &[("x", "")]).as_deref(),
            Some("unknown query parameter `x`: this route takes none")
        );
        let long = "n".repeat(500);
        let message = refused(Route::Capabilities, &[(&long, "")]).unwrap();
        assert!(message.len() < 200, "{message}");
    }

    fn open() -> Access {
        Access::default()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn local() -> SocketAddr {
        "127.0.0.1:50000".parse().unwrap()
    }

    fn uri() -> http::Uri {
        http::Uri::from_static(BALANCES)
    }

    #[test]
    fn only_loopback_peers_and_names_are_admitted() {
        let host = headers(&[("host", "127.0.0.1:4000")]);
        assert!(admit(local(), &host, &uri(), &open()).is_ok());
        assert!(
            admit(
                "[::1]:5".parse().unwrap(),
                &headers(&[("host", "[::1]:4000")]),
                &uri(),
                &open()
            )
            .is_ok()
        );
        assert!(admit(local(), &headers(&[("host", "localhost")]), &uri(), &open()).is_ok());

        let foreign = admit("192.0.2.7:5000".parse().unwrap(), &host, &uri(), &open()).unwrap_err();
        assert_eq!(
            (foreign.status, foreign.code),
            (StatusCode::FORBIDDEN, "peer_not_loopback")
        );
        for name in ["evil.example:4000", "localhost.evil.example", "10.0.0.1"] {
            let refused = admit(local(), &headers(&[("host", name)]), &uri(), &open()).unwrap_err();
            assert_eq!(refused.code, "host_not_allowed", "{name}");
        }
        let no_host = admit(local(), &HeaderMap::new(), &uri(), &open()).unwrap_err();
        assert_eq!(no_host.code, "host_not_allowed");
        let absolute =
            http::Uri::from_static("http://evil.example/__codex_helper/api/v1/providers/balances");
        assert_eq!(
            admit(local(), &host, &absolute, &open()).unwrap_err().code,
            "host_not_allowed"
        );
    }

    #[test]
    fn a_remote_client_needs_the_token_and_a_wrong_one_is_refused_anywhere() {
        let access = Access {
            token: Some(crate::routing::Secret::new("a-token-of-sixteen-chars")),
        };
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let named = |extra: (&str, &str)| headers(&[("host", "helper.lan:4211"), extra]);
        let bearer = named(("authorization", "Bearer a-token-of-sixteen-chars"));
        assert!(
            admit(remote, &bearer, &uri(), &access).is_ok(),
            "any Host with the token"
        );
        let header = named(("x-codex-helper-admin-token", "a-token-of-sixteen-chars"));
        assert!(admit(remote, &header, &uri(), &access).is_ok());

        let without = admit(
            remote,
            &headers(&[("host", "helper.lan:4211")]),
            &uri(),
            &access,
        );
        assert_eq!(without.unwrap_err().code, "peer_not_loopback");
        let wrong = named(("authorization", "Bearer a-token-of-sixteen-chart"));
        assert_eq!(
            admit(remote, &wrong, &uri(), &access).unwrap_err().code,
            "bad_token"
        );
        let local_wrong = headers(&[("host", "127.0.0.1:4211"), ("authorization", "Bearer nope")]);
        assert_eq!(
            admit(local(), &local_wrong, &uri(), &access)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        // Without a configured token, no token opens anything.
        assert_eq!(
            admit(remote, &bearer, &uri(), &open()).unwrap_err().code,
            "bad_token"
        );
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }

    #[test]
    fn browser_marked_requests_are_refused() {
        for header in [
            ("origin", "http://127.0.0.1:4000"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
        ] {
            let refused = admit(
                local(),
                &headers(&[("host", "127.0.0.1:4000"), header]),
                &uri(),
                &open(),
            )
            .unwrap_err();
            assert_eq!(refused.code, "browser_request_refused", "{header:?}");
            assert!(refused.message.contains(header.0));
        }
    }

    #[test]
    fn only_the_console_s_own_browser_requests_pass() {
        let host = ("host", "127.0.0.1:4000");
        let console = (CONSOLE_HEADER, "1");
        let passes = |extra: &[(&'static str, &'static str)]| {
            let mut all = vec![host];
            all.extend_from_slice(extra);
            admit(local(), &headers(&all), &uri(), &open()).map_err(|e| e.message)
        };
        assert!(passes(&[console, ("sec-fetch-site", "same-origin")]).is_ok());
        assert!(passes(&[console, ("origin", "http://127.0.0.1:4000")]).is_ok());
        assert!(passes(&[console, ("sec-fetch-mode", "cors")]).is_ok());
        for (extra, named) in [
            (("sec-fetch-site", "cross-site"), "sec-fetch-site"),
            (("sec-fetch-site", "same-site"), "sec-fetch-site"),
            (("origin", "http://127.0.0.1:4001"), "origin"),
            (("origin", "null"), "origin"),
        ] {
            let refused = passes(&[console, extra]).unwrap_err();
            assert!(refused.contains(named), "{extra:?}: {refused}");
        }
    }

    #[test]
    fn routes_know_their_method() {
        assert_eq!(route(&Method::GET, BALANCES), Ok((Route::Balances, None)));
        assert_eq!(
            route(&Method::POST, BALANCES_REFRESH),
            Ok((Route::BalancesRefresh, None))
        );
        let session = route(&Method::GET, "/__codex_helper/api/v1/sessions/abc-1");
        assert_eq!(session, Ok((Route::Session, Some("abc-1".into()))));
        assert!(route(&Method::GET, "/__codex_helper/api/v1/sessions/").is_err());
        assert!(route(&Method::GET, "/__codex_helper/api/v1/sessions/a/b").is_err());
        let wrong = route(&Method::POST, BALANCES).unwrap_err();
        assert_eq!(
            (wrong.status, wrong.code, wrong.allow),
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Some("GET".to_string())
            )
        );
        assert_eq!(
            route(&Method::GET, BALANCES_REFRESH).unwrap_err().allow,
            Some("POST".to_string())
        );
        let both = route(&Method::DELETE, "/__codex_helper/api/v1/overrides/session");
        assert_eq!(both.unwrap_err().allow.as_deref(), Some("GET, POST"));
        let unknown = route(&Method::GET, "/__codex_helper/api/v1/nothing").unwrap_err();
        assert_eq!(
            (unknown.status, unknown.code),
            (StatusCode::NOT_FOUND, "not_found")
        );
        assert!(route(&Method::GET, &format!("{BALANCES}/")).is_err());
    }

    #[test]
    fn the_provider_comes_from_the_query_or_the_body() {
        let from = |query| provider_from_query(&query_pairs(query).unwrap());
        assert_eq!(from(None), Ok(None));
        assert_eq!(from(Some("provider_id=a%20b")), Ok(Some("a b".into())));
        for bad in ["provider_id=", "provider_id=a&provider_id=b"] {
            assert_eq!(from(Some(bad)).unwrap_err().code, "bad_request", "{bad}");
        }
        assert_eq!(provider_from_body(b""), Ok(None));
        assert_eq!(provider_from_body(b" {} "), Ok(None));
        assert_eq!(
            provider_from_body(br#"{"provider_id":"m"}"#),
            Ok(Some("m".into()))
        );
        for bad in [
            &b"{"[..],
            br#"{"provider":"m"}"#,
            br#"{"provider_id":5}"#,
            b"[]",
        ] {
            assert_eq!(
                provider_from_body(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
        assert_eq!(
            merge_provider(Some("a".into()), Some("a".into())),
            Ok(Some("a".into()))
        );
        assert!(merge_provider(Some("a".into()), Some("b".into())).is_err());
        assert_eq!(merge_provider(None, Some("b".into())), Ok(Some("b".into())));
    }

    #[test]
    fn an_unknown_provider_is_the_callers_mistake() {
        let e = console_error(anyhow::Error::new(UnknownProvider {
            id: "nope".into(),
            known: vec!["a".into(), "b".into()],
        }));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::NOT_FOUND, "unknown_provider")
        );
        assert!(e.message.contains("a, b"), "{}", e.message);
        let e = console_error(anyhow::anyhow!("store locked"));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
