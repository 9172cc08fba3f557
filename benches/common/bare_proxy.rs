//! A bare hyper reverse proxy, as a yardstick beside nginx: codex-helper's own HTTP stack
//! (hyper-util's HTTP/1 server on one current-thread runtime, its pooled legacy client, Nagle
//! off, bodies streamed through) with nothing else: no routing, no body inspection, no log
//! line, no ledger. Its CPU per request is the least a proxy built on this stack spends in the
//! harness, so the gap between it and codex-helper is what codex-helper's own work costs.
//!
//! It runs as a child process (CPU is read per process): the bench binary itself, re-run with
//! [`UPSTREAM_ENV`] set, which [`serve_if_asked`] notices before the bench starts.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// Set (to the upstream's address) in the child's environment: "be the bare proxy".
const UPSTREAM_ENV: &str = "CODEX_HELPER_BENCH_BARE_PROXY_UPSTREAM";

/// The bare proxy in a child process, killed on drop.
pub struct BareProxy {
    pub child: Child,
    pub addr: SocketAddr,
}

impl BareProxy {
    /// Re-runs this bench binary as a bare proxy in front of `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("the bench's own path"))
            .env(UPSTREAM_ENV, upstream.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the bare hyper proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the bare proxy's address");
        let addr = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the bare proxy printed {line:?}, not its address"));
        Self { child, addr }
    }
}

impl Drop for BareProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the child [`BareProxy::start`] runs: serves until killed, never returning. Anywhere else
/// it returns at once.
pub fn serve_if_asked() {
    let Some(upstream) = std::env::var_os(UPSTREAM_ENV) else {
        return;
    };
    let upstream: SocketAddr = upstream
        .to_str()
        .and_then(|u| u.parse().ok())
        .expect("an upstream address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(serve(upstream));
    std::process::exit(0);
}

async fn serve(upstream: SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap());
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait a little rather than spin on the error.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let service = service_fn(move |request: http::Request<Incoming>| {
            let client = client.clone();
            async move {
                let (mut parts, body) = request.into_parts();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = format!("http://{upstream}{path}").parse().unwrap();
                let answer = match client.request(http::Request::from_parts(parts, body)).await {
                    Ok(response) => response.map(http_body_util::Either::Left),
                    Err(_) => http::Response::builder()
                        .status(502)
                        .body(http_body_util::Either::Right(http_body_util::Empty::new()))
                        .unwrap(),
                };
                Ok::<_, Infallible>(answer)
            }
        });
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .http1_only()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
