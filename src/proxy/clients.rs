//! The HTTP clients that reach relays: one per outbound route (direct, or one per proxy).
//!
//! A client owns its connection pool, and a proxy is a property of the client, so each
//! distinct [`Route`] gets its own client. Direct routes (the common case) use a bare hyper
//! client with rustls: per request it costs markedly less CPU than reqwest (measured: about
//! 20 µs of 90 µs on a 20 KiB request on loopback). Routes through an outbound proxy use
//! reqwest, which speaks HTTP `CONNECT` and SOCKS5. They live as long as a plan uses their route: a
//! config reload that keeps a relay's route keeps its warm connections. Every client is built
//! with `no_proxy()` first, so the environment is only ever used through the route the config
//! compiled ([`crate::routing::outbound`]), never by reqwest on its own.

//!
//! Each proxy thread has clients of its own: a pooled connection's task runs on the thread that
//! opened it, so a request served on another thread would pay a cross-thread wake-up on every
//! hop of its reply.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use std::thread::ThreadId;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connected, HttpConnector, capture_connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::relay_body::{ChunkStream, error_chain};
use super::watched_body::{BodyWatch, WatchedBody};
use super::write_stall::WriteStall;

use crate::routing::Upstream;
use crate::routing::outbound::Route;

pub struct UpstreamClients {
    base: Base,
    state: Mutex<State>,
    /// The clients that open WebSockets, per route: HTTP/1 only (an upgrade needs it).
    websocket: Mutex<HashMap<Route, WebSocketClient>>,
}

/// An HTTP/1-only client whose connections are handed over on `101 Switching Protocols`.
#[derive(Clone)]
pub enum WebSocketClient {
    Direct(std::sync::Arc<hyper_util::client::legacy::Client<DirectConnector, Full<Bytes>>>),
    Proxied(reqwest::Client),
}

/// A connection taken over by the WebSocket protocol.
pub trait UpgradedIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> UpgradedIo for T {}

impl WebSocketClient {
    /// Sends a WebSocket handshake: the relay's status and headers, and its connection when
    /// that is 101.
    pub async fn handshake(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<
        (
            http::StatusCode,
            http::HeaderMap,
            Option<Box<dyn UpgradedIo>>,
        ),
        SendError,
    > {
        let failed = |connect: bool, message: String| SendError { connect, message };
        match self {
            WebSocketClient::Direct(client) => {
                let response = client
                    .request(request.map(Full::new))
                    .await
                    .map_err(|e| failed(e.is_connect(), error_chain(&e)))?;
                let (status, headers) = (response.status(), response.headers().clone());
                if status != http::StatusCode::SWITCHING_PROTOCOLS {
                    return Ok((status, headers, None));
                }
                let io = hyper::upgrade::on(response)
                    .await
                    .map_err(|e| failed(false, error_chain(&e)))?;
                let io = hyper_util::rt::TokioIo::new(io);
                Ok((status, headers, Some(Box::new(io))))
            }
            WebSocketClient::Proxied(client) => {
                let request = reqwest::Request::try_from(request)
                    .map_err(|e| failed(false, error_chain(&e.without_url())))?;
                let response = client
                    .execute(request)
                    .await
                    .map_err(|e| failed(e.is_connect(), error_chain(&e.without_url())))?;
                let (status, headers) = (response.status(), response.headers().clone());
                if status != http::StatusCode::SWITCHING_PROTOCOLS {
                    return Ok((status, headers, None));
                }
                let io = response
                    .upgrade()
                    .await
                    .map_err(|e| failed(false, error_chain(&e.without_url())))?;
                Ok((status, headers, Some(Box::new(io))))
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// The routes of the plan in force.
    routes: HashSet<Route>,
    /// The proxy's threads: each gets a client per route ahead of its first request.
    threads: HashSet<ThreadId>,
    clients: HashMap<(ThreadId, Route), RelayClient>,
}

impl UpstreamClients {
    /// `write_stall`: see [`super::write_stall`] and [`super::watched_body`].
    pub fn new(connect_timeout: Duration, write_stall: Option<Duration>) -> Self {
        Self {
            base: Base {
                connect_timeout,
                write_stall,
                tls: OnceLock::new(),
            },
            state: Mutex::default(),
            websocket: Mutex::default(),
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
    ) -> anyhow::Result<Vec<((ThreadId, Route), RelayClient)>> {
        let mut built = Vec::new();
        for route in routes {
            for &thread in threads {
                let key = (thread, route.clone());
                if !self.lock().clients.contains_key(&key) {
                    built.push((key, self.base.build(route)?));
                }
            }
            if threads.is_empty() {
                self.base.build(route)?;
            }
        }
        Ok(built)
    }

    /// The client that opens WebSockets on `route`, built on first use and kept.
    pub fn websocket(&self, route: &Route) -> anyhow::Result<WebSocketClient> {
        let mut clients = self
            .websocket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(route) {
            return Ok(client.clone());
        }
        let client = self.base.build_websocket(route)?;
        clients.insert(route.clone(), client.clone());
        Ok(client)
    }

    /// This thread's client for `route`. A proxy thread has one for every route of the plan
    /// in force; any other thread (a request that outlived two reloads, a command-line
    /// diagnostic) gets one built now.
    pub fn get(&self, route: &Route) -> anyhow::Result<RelayClient> {
        let key = (std::thread::current().id(), route.clone());
        if let Some(client) = self.lock().clients.get(&key) {
            return Ok(client.clone());
        }
        let client = self.base.build(route)?;
        self.lock().clients.insert(key, client.clone());
        Ok(client)
    }
}

/// A relay's reply: its head, and its body as it arrives (content codings not undone).
pub type RelayResponse = http::Response<ChunkStream>;

/// Why a request got no reply.
#[derive(Debug)]
pub struct SendError {
    /// No connection could be made (nothing reached the relay).
    pub connect: bool,
    /// The error and its causes, on one line.
    pub message: String,
}

/// The client for one route, and its write-stall limit on request bodies (see
/// [`super::watched_body`]). Redirects are not followed: they are the client's business.
#[derive(Clone)]
pub struct RelayClient {
    way: Way,
    write_stall: Option<Duration>,
}

#[derive(Clone)]
enum Way {
    /// In an `Arc`: a hyper client is a dozen handles, and one is cloned per request.
    Direct(std::sync::Arc<hyper_util::client::legacy::Client<DirectConnector, WatchedBody>>),
    Proxied(reqwest::Client),
}

type DirectConnector = hyper_rustls::HttpsConnector<StallingConnector>;

impl RelayClient {
    /// Sends `request` and returns the reply once its head has arrived. A body longer than
    /// one slice is watched where the socket cannot show a stall (see
    /// [`super::watched_body`]): on an HTTP/2 connection, and through an outbound proxy. (A
    /// direct HTTP/1 relay's socket is a [`WriteStall`].)
    pub async fn send(&self, request: http::Request<Bytes>) -> Result<RelayResponse, SendError> {
        let (parts, body) = request.into_parts();
        let (body, watch) = WatchedBody::new(body);
        match &self.way {
            Way::Direct(client) => {
                let mut request = http::Request::from_parts(parts, body);
                let connection = watch.as_ref().map(|_| capture_connection(&mut request));
                let stalled = async move {
                    let (Some(watch), Some(mut connection)) = (watch, connection) else {
                        return std::future::pending().await;
                    };
                    let h2 = connection
                        .wait_for_connection_metadata()
                        .await
                        .as_ref()
                        .is_some_and(Connected::is_negotiated_h2);
                    if !h2 {
                        return std::future::pending().await;
                    }
                    self.stalled(&watch).await
                };
                let response = unless(stalled, client.request(request))
                    .await?
                    .map_err(|e| SendError {
                        connect: e.is_connect(),
                        message: error_chain(&e),
                    })?;
                Ok(response.map(|body| {
                    let chunks = body
                        .into_data_stream()
                        .map_err(|e| io::Error::other(error_chain(&e)));
                    Box::pin(chunks) as ChunkStream
                }))
            }
            Way::Proxied(client) => self.send_proxied(client, parts, body, watch).await,
        }
    }

    /// [`Self::send`] through an outbound proxy (reqwest), `watch` watching a long body.
    async fn send_proxied(
        &self,
        client: &reqwest::Client,
        parts: http::request::Parts,
        body: WatchedBody,
        watch: Option<BodyWatch>,
    ) -> Result<RelayResponse, SendError> {
        // A short body stays whole: reqwest can then send it again by itself (after an HTTP/2
        // connection's graceful shutdown), which it cannot do with a stream.
        let body = match &watch {
            Some(_) => reqwest::Body::wrap(body),
            None => reqwest::Body::from(body.into_bytes()),
        };
        let request = http::Request::from_parts(parts, body);
        let request = reqwest::Request::try_from(request).map_err(|e| SendError {
            connect: false,
            message: error_chain(&e.without_url()),
        })?;
        let stalled = async move {
            match watch {
                Some(watch) => self.stalled(&watch).await,
                None => std::future::pending().await,
            }
        };
        let response = unless(stalled, client.execute(request))
            .await?
            .map_err(|e| SendError {
                connect: e.is_connect(),
                message: error_chain(&e.without_url()),
            })?;
        let response: http::Response<reqwest::Body> = response.into();
        Ok(response.map(|body| {
            let chunks = body
                .into_data_stream()
                .map_err(|e| io::Error::other(error_chain(&e.without_url())));
            Box::pin(chunks) as ChunkStream
        }))
    }

    /// Ends once `watch` finds the body stalled for the write-stall limit; never without one.
    async fn stalled(&self, watch: &BodyWatch) -> SendError {
        let Some(limit) = self.write_stall else {
            return std::future::pending().await;
        };
        watch.stalled(limit).await;
        SendError {
            connect: false,
            message: format!(
                "the relay took no more of the request body for {} ms (write_stall_timeout_ms)",
                limit.as_millis()
            ),
        }
    }
}

/// `send`'s outcome, unless `stalled` ends first: then `send` is dropped, which closes its
/// connection on HTTP/1 and resets its stream on HTTP/2.
async fn unless<T>(
    stalled: impl Future<Output = SendError>,
    send: impl Future<Output = T>,
) -> Result<T, SendError> {
    tokio::select! {
        biased;
        sent = send => Ok(sent),
        error = stalled => Err(error),
    }
}

/// What every client is built from: the connect and write-stall limits, and the TLS settings.
struct Base {
    connect_timeout: Duration,
    write_stall: Option<Duration>,
    /// Made on first need and shared by every direct client: the platform's verifier reads the
    /// system's certificates (hundreds of files), once per process rather than once per client,
    /// route and thread.
    tls: OnceLock<rustls::ClientConfig>,
}

impl Base {
    fn build(&self, route: &Route) -> anyhow::Result<RelayClient> {
        let Route::Proxy(url) = route else {
            return self.build_direct();
        };
        let client = proxied(url, self.connect_timeout)?
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .with_context(|| format!("cannot build the HTTP client for relays via {url}"))?;
        Ok(RelayClient {
            way: Way::Proxied(client),
            write_stall: self.write_stall,
        })
    }

    /// A WebSocket client for `route`: HTTP/1 only, no pooling (an upgraded connection is the
    /// socket's), through the route's proxy when it has one.
    fn build_websocket(&self, route: &Route) -> anyhow::Result<WebSocketClient> {
        let Route::Proxy(url) = route else {
            let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .timer(TokioTimer::new())
                .build(self.connector(false)?);
            return Ok(WebSocketClient::Direct(std::sync::Arc::new(client)));
        };
        let client = proxied(url, self.connect_timeout)?
            .http1_only()
            .pool_max_idle_per_host(0)
            .build()
            .with_context(|| format!("cannot build the WebSocket client for relays via {url}"))?;
        Ok(WebSocketClient::Proxied(client))
    }

    fn build_direct(&self) -> anyhow::Result<RelayClient> {
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(self.connector(true)?);
        Ok(RelayClient {
            way: Way::Direct(std::sync::Arc::new(client)),
            write_stall: self.write_stall,
        })
    }

    /// The TLS connector for direct routes: relays' certificates checked by the platform's
    /// verifier (the system's roots, `SSL_CERT_FILE` honoured), as reqwest does; HTTP/2
    /// offered when `http2` (never for a WebSocket handshake, which is HTTP/1 only).
    fn connector(&self, http2: bool) -> anyhow::Result<DirectConnector> {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(self.connect_timeout));
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(Duration::from_secs(30)));
        tcp.enforce_http(false);
        let http = StallingConnector {
            tcp,
            limit: self.write_stall,
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls()?)
            .https_or_http()
            .enable_http1();
        Ok(if http2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.wrap_connector(http)
        })
    }

    /// The shared TLS settings (a copy: the connector sets its own ALPN protocols on it).
    fn tls(&self) -> anyhow::Result<rustls::ClientConfig> {
        if let Some(config) = self.tls.get() {
            return Ok(config.clone());
        }
        use hyper_rustls::ConfigBuilderExt;
        let config = rustls::ClientConfig::builder()
            .try_with_platform_verifier()
            .context("cannot load the system's certificate verifier for https relays")?
            .with_no_client_auth();
        Ok(self.tls.get_or_init(|| config).clone())
    }
}

/// A reqwest client through `url` and only through it (the environment's proxies are never
/// read by reqwest itself), redirects not followed.
fn proxied(
    url: &crate::config::outbound::ProxyUrl,
    connect_timeout: Duration,
) -> anyhow::Result<reqwest::ClientBuilder> {
    let proxy = reqwest::Proxy::all(url.expose())
        .map_err(|_| anyhow::anyhow!("outbound proxy {url} is not usable"))?;
    Ok(reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .proxy(proxy))
}

/// Opens relay connections as hyper's connector does, each under a [`WriteStall`] (beneath
/// TLS, so a relay that stops reading mid-handshake is caught too).
#[derive(Clone)]
pub struct StallingConnector {
    tcp: HttpConnector,
    limit: Option<Duration>,
}

type StallingStream = TokioIo<WriteStall<tokio::net::TcpStream>>;

impl tower_service::Service<http::Uri> for StallingConnector {
    type Response = StallingStream;
    type Error = <HttpConnector as tower_service::Service<http::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<StallingStream, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.tcp.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            let stream = connecting.await?.into_inner();
            Ok(TokioIo::new(WriteStall::new(stream, limit, "relay")))
        })
    }
}
