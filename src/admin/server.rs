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

use super::{BALANCES, BALANCES_REFRESH, Console, UnknownProvider};
use crate::net::{host_name, is_loopback_ip, is_loopback_name};

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
) -> anyhow::Result<AdminHandle> {
    let addr = listener.local_addr()?;
    if !is_loopback_ip(addr.ip()) {
        anyhow::bail!(
            "the admin API only listens on a loopback address (127.0.0.1 or ::1), not {addr}"
        );
    }
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
                Ok(slot) => spawn_connection(stream, peer, console.clone(), &graceful, slot),
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
    console: Arc<dyn Console>,
    graceful: &GracefulShutdown,
    slot: OwnedSemaphorePermit,
) {
    let service = service_fn(move |request| {
        let console = console.clone();
        async move { Ok::<_, Infallible>(handle(console, peer, request).await) }
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
    pub allow: Option<&'static str>,
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
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
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
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match respond(console, peer, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn respond(
    console: Arc<dyn Console>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    admit(peer, request.headers(), request.uri())?;
    match route(request.method(), request.uri().path())? {
        Route::Balances => {
            refuse_query(request.uri().query())?;
            let balances = console.balances();
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "balances": balances }),
            ))
        }
        Route::Refresh => {
            let from_query = provider_from_query(request.uri().query())?;
            let body = read_body(request).await?;
            let provider = merge_provider(from_query, provider_from_body(&body)?)?;
            let report = console
                .refresh_balances(provider)
                .await
                .map_err(console_error)?;
            Ok(json_response(StatusCode::OK, &report))
        }
    }
}

/// The refusals, before anything is read or done: a non-loopback peer, a request a browser
/// marks as a web page's, a `Host` that is not a loopback name (DNS rebinding) or none at all.
pub(super) fn admit(
    peer: SocketAddr,
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Result<(), ApiError> {
    if !is_loopback_ip(peer.ip()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "peer_not_loopback",
            format!("the admin API only answers this machine; {peer} is not a loopback address"),
        ));
    }
    let browser = headers.keys().find(|name| {
        let name = name.as_str();
        name == "origin" || name.starts_with("sec-fetch-")
    });
    if let Some(name) = browser {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "browser_request_refused",
            format!(
                "the admin API refuses requests from web browsers (this one carries `{name}`): \
                 a web page must not be able to drive codex-helper"
            ),
        ));
    }
    let hosts: Vec<String> = headers
        .get_all(header::HOST)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .chain(uri.authority().map(|a| a.as_str().to_string()))
        .collect();
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Balances,
    Refresh,
}

/// Each path with the one method it takes.
const ROUTES: [(&str, Method, &str, Route); 2] = [
    (BALANCES, Method::GET, "GET", Route::Balances),
    (BALANCES_REFRESH, Method::POST, "POST", Route::Refresh),
];

/// The route for a method and path: 404 for an unknown path, 405 (with `Allow`) for a known
/// path asked with another method.
pub(super) fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let Some((_, allowed, allow, route)) = ROUTES.iter().find(|(p, ..)| *p == path) else {
        let quoted: String = path.chars().take(200).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no admin API route `{quoted}`"),
        ));
    };
    if method != allowed {
        return Err(ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("`{path}` takes {allow}, not {method}"),
            )
        });
    }
    Ok(*route)
}

fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(Vec::new());
    };
    let url = reqwest::Url::parse(&format!("http://localhost/?{query}"))
        .map_err(|_| ApiError::bad_request("the query string cannot be read"))?;
    Ok(url.query_pairs().into_owned().collect())
}

fn refuse_query(query: Option<&str>) -> Result<(), ApiError> {
    match query_pairs(query)?.first() {
        Some((name, _)) => Err(ApiError::bad_request(format!(
            "unknown query parameter `{}`: this route takes none",
            name.chars().take(100).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// `?provider_id=ID` (the only parameter the refresh takes).
pub(super) fn provider_from_query(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let mut provider = None;
    for (name, value) in query_pairs(query)? {
        if name != "provider_id" {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{}`: the refresh takes `provider_id`",
                name.chars().take(100).collect::<String>()
            )));
        }
        if provider.replace(value).is_some() {
            return Err(ApiError::bad_request(
                "`provider_id` is given more than once",
            ));
        }
    }
    provider.map(checked_provider).transpose()
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
    match e.downcast_ref::<UnknownProvider>() {
        Some(unknown) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            unknown.to_string(),
        ),
        None => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "refresh_failed",
            format!("{e:#}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(admit(local(), &host, &uri()).is_ok());
        assert!(
            admit(
                "[::1]:5".parse().unwrap(),
                &headers(&[("host", "[::1]:4000")]),
                &uri()
            )
            .is_ok()
        );
        assert!(admit(local(), &headers(&[("host", "localhost")]), &uri()).is_ok());

        let foreign = admit("192.0.2.7:5000".parse().unwrap(), &host, &uri()).unwrap_err();
        assert_eq!(
            (foreign.status, foreign.code),
            (StatusCode::FORBIDDEN, "peer_not_loopback")
        );
        for name in ["evil.example:4000", "localhost.evil.example", "10.0.0.1"] {
            let refused = admit(local(), &headers(&[("host", name)]), &uri()).unwrap_err();
            assert_eq!(refused.code, "host_not_allowed", "{name}");
        }
        let no_host = admit(local(), &HeaderMap::new(), &uri()).unwrap_err();
        assert_eq!(no_host.code, "host_not_allowed");
        let absolute =
            http::Uri::from_static("http://evil.example/__codex_helper/api/v1/providers/balances");
        assert_eq!(
            admit(local(), &host, &absolute).unwrap_err().code,
            "host_not_allowed"
        );
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
            )
            .unwrap_err();
            assert_eq!(refused.code, "browser_request_refused", "{header:?}");
            assert!(refused.message.contains(header.0));
        }
    }

    #[test]
    fn routes_know_their_method() {
        assert_eq!(route(&Method::GET, BALANCES), Ok(Route::Balances));
        assert_eq!(route(&Method::POST, BALANCES_REFRESH), Ok(Route::Refresh));
        let wrong = route(&Method::POST, BALANCES).unwrap_err();
        assert_eq!(
            (wrong.status, wrong.code, wrong.allow),
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Some("GET")
            )
        );
        assert_eq!(
            route(&Method::GET, BALANCES_REFRESH).unwrap_err().allow,
            Some("POST")
        );
        let unknown = route(&Method::GET, "/__codex_helper/api/v1/nothing").unwrap_err();
        assert_eq!(
            (unknown.status, unknown.code),
            (StatusCode::NOT_FOUND, "not_found")
        );
        assert!(route(&Method::GET, &format!("{BALANCES}/")).is_err());
    }

    #[test]
    fn the_provider_comes_from_the_query_or_the_body() {
        assert_eq!(provider_from_query(None), Ok(None));
        assert_eq!(
            provider_from_query(Some("provider_id=a%20b")),
            Ok(Some("a b".into()))
        );
        for bad in ["provider=x", "provider_id=", "provider_id=a&provider_id=b"] {
            assert_eq!(
                provider_from_query(Some(bad)).unwrap_err().code,
                "bad_request",
                "{bad}"
            );
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
