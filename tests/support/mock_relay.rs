//! A mock Responses API relay on loopback, which can misbehave on demand.
//!
//! It answers `GET …/models` with an OpenAI-style list and `POST …/responses` with an SSE stream
//! shaped like a real relay's (ending in `response.completed` with usage), or with JSON when the
//! client does not stream. Queued [`Fault`]s change the next answers: any status, a reset before
//! headers or mid-stream, a stall, `response.failed` inside a 200 stream, compressed replies,
//! redirects, Cloudflare error pages, malformed or huge events, endless keep-alives; those that
//! come before an answer apply to a WebSocket handshake too.
//! Every request is recorded for assertions.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The usage every successful mock reply reports.
pub const USAGE: (u64, u64, u64, u64, u64) = (1200, 1000, 5, 2, 1205);

/// A way to misbehave, used for one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body (JSON error bodies look like relays' own).
    Status {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// Close the connection without any response.
    ResetBeforeHeaders,
    /// Send the status and headers and this many SSE events, then break the connection.
    ResetMidStream { after_events: usize },
    /// A JSON reply that announces its full length, sends half, then breaks the connection.
    ResetMidJson,
    /// A JSON reply that announces its full length, sends half, then goes silent for `pause`
    /// before the rest.
    StallMidJson(Duration),
    /// Send this many events, then close the stream cleanly without `response.completed`.
    EndEarly { after_events: usize },
    /// Wait this long before answering at all.
    StallBeforeHeaders(Duration),
    /// Send this many events, then go silent for the duration, then finish normally.
    StallMidStream {
        after_events: usize,
        pause: Duration,
    },
    /// Send this many events, then wait until `release` is notified, then finish normally.
    HoldMidStream {
        after_events: usize,
        release: Arc<tokio::sync::Notify>,
    },
    /// A 200 stream whose first real event is `response.failed` (a failure hidden in a 200).
    FailedInStream,
    /// A 200 stream that fails after some output.
    FailedAfterOutput,
    /// The normal reply, compressed with `gzip`, `deflate` (zlib), `br` or `zstd` and labelled
    /// so; `x-unknown` labels gzip bytes with a coding nobody decodes, `x-stacked` with `br`
    /// two thousand times.
    Compressed(&'static str),
    /// A 200 event stream that sends `bytes` of keep-alive comments before its events.
    CommentsBeforeEvents { bytes: usize },
    /// A gzip-encoded 200 event stream that inflates to `bytes` newlines before its events.
    GzipNewlinesBeforeEvents { bytes: usize },
    /// Sends `after_events` events, then a keep-alive comment every `every`, `count` times,
    /// then the rest.
    KeepAliveAfterEvents {
        after_events: usize,
        every: Duration,
        count: usize,
    },
    /// This status with `Content-Length: 0` and no body.
    Empty { status: u16 },
    /// A redirect (`status` 3xx) to `location`, as a relay behind a misconfigured front or
    /// a hostile one answers. A WebSocket upgrade gets it too.
    Redirect { status: u16, location: String },
    /// This status with Cloudflare's headers (`server: cloudflare`, `cf-ray`) and an HTML
    /// error page, as Cloudflare answers for an origin that failed (520–524).
    Cloudflare { status: u16 },
    /// A 200 that is not what it says: an event stream of lines that are not events (no
    /// field name, `data:` that is not JSON), or, for JSON, a body cut short mid-object
    /// with an honest length.
    Malformed,
    /// The normal reply with one more `response.output_text.delta` holding `bytes` of text,
    /// after `after_events` events (for JSON: the text starts with them).
    HugeEvent { after_events: usize, bytes: usize },
    /// The normal event stream with its content type taken off, as some relays send it.
    Unlabelled,
    /// A stream whose `response.failed`, after some output, echoes the request's
    /// `Authorization` value, as relays that quote the request's headers do. The event comes
    /// in two reads, 100 ms apart, split just after the key.
    EchoesKey,
    /// Sends `after_events` events, then a keep-alive comment every `every`, forever.
    EndlessComments {
        after_events: usize,
        every: Duration,
    },
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Fault::Status {
            status,
            body: format!(
                r#"{{"error":{{"message":"mock relay error {status}","type":"server_error"}}}}"#
            ),
            retry_after: None,
        }
    }
}

/// A request as the relay received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Default)]
struct Shared {
    faults: VecDeque<Fault>,
    always: Option<Fault>,
    received: Vec<Received>,
    /// `GET` paths answered with a fixed status and JSON body (balance endpoints).
    fixed: std::collections::HashMap<String, (u16, String)>,
    /// Accept Responses WebSocket upgrades (off: answer them 426, like most relays).
    websocket: bool,
    /// How an accepted WebSocket answers its `response.create` frames.
    ws_behaviour: Option<super::ws_relay::Behaviour>,
}

/// The queued (or standing) fault, taken when it is one a WebSocket handshake can meet:
/// anything that happens before an answer. Others stay for the frames' answers, which
/// [`super::ws_relay::Behaviour`] shapes instead.
fn take_handshake_fault(shared: &Mutex<Shared>) -> Option<Fault> {
    let mut shared = shared.lock().unwrap();
    let next = shared.faults.front().or(shared.always.as_ref())?;
    let before_answer = matches!(
        next,
        Fault::Status { .. }
            | Fault::ResetBeforeHeaders
            | Fault::StallBeforeHeaders(_)
            | Fault::Redirect { .. }
            | Fault::Cloudflare { .. }
            | Fault::Empty { .. }
    );
    if !before_answer {
        return None;
    }
    shared.faults.pop_front().or_else(|| shared.always.clone())
}

/// A running mock relay.
pub struct MockRelay {
    pub addr: SocketAddr,
    pub name: String,
    scheme: &'static str,
    shared: Arc<Mutex<Shared>>,
    task: Option<JoinHandle<()>>,
}

/// TLS for `localhost` with a certificate from a fresh test CA, offering `alpn` (e.g. `h2`;
/// none: HTTP/1.1). Returns the acceptor and the CA certificate (PEM) a client must trust.
pub fn tls_for_localhost(alpn: Vec<Vec<u8>>) -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "codex-helper test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    config.alpn_protocols = alpn;
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

impl MockRelay {
    /// Starts a relay on an ephemeral loopback port. `name` appears in its replies.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, None).await
    }

    /// Starts a relay that speaks HTTPS for `localhost`, with a certificate from a fresh test
    /// CA. Returns the relay and the CA certificate (PEM) a client must trust.
    pub async fn start_tls(name: &str) -> (Self, String) {
        let (acceptor, ca) = tls_for_localhost(Vec::new());
        (Self::start_with(name, Some(acceptor)).await, ca)
    }

    async fn start_with(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let name = name.to_string();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = {
            let shared = shared.clone();
            let name = name.clone();
            tokio::spawn(async move {
                // Connections live in this set, so aborting the relay closes them too.
                let mut connections = JoinSet::new();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let name = name.clone();
                    let service =
                        service_fn(move |request| handle(shared.clone(), name.clone(), request));
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let builder = http1::Builder::new();
                        match tls {
                            Some(tls) => {
                                if let Ok(stream) = tls.accept(stream).await {
                                    let _ = builder
                                        .serve_connection(TokioIo::new(stream), service)
                                        .with_upgrades()
                                        .await;
                                }
                            }
                            None => {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .with_upgrades()
                                    .await;
                            }
                        }
                    });
                    while connections.try_join_next().is_some() {}
                }
            })
        };
        Self {
            addr,
            name,
            scheme,
            shared,
            task: Some(task),
        }
    }

    /// Base URL with `/v1`, as users configure relays.
    pub fn base_url(&self) -> String {
        match self.scheme {
            // The test certificate is for `localhost`.
            "https" => format!("https://localhost:{}/v1", self.addr.port()),
            _ => format!("http://{}/v1", self.addr),
        }
    }

    /// Queues a fault for the next request that has none queued before it.
    pub fn push(&self, fault: Fault) {
        self.shared.lock().unwrap().faults.push_back(fault);
    }

    /// Applies `fault` to every request (after queued ones), or stops doing so with `None`.
    pub fn always(&self, fault: Option<Fault>) {
        self.shared.lock().unwrap().always = fault;
    }

    /// Answers `GET path` with `status` and `body` from now on (a balance endpoint, say);
    /// other paths are unaffected. Paths not set answer 404 to a `GET` that is not `/models`.
    pub fn answer_get(&self, path: &str, status: u16, body: &str) {
        self.shared
            .lock()
            .unwrap()
            .fixed
            .insert(path.to_string(), (status, body.to_string()));
    }

    /// Speaks the Responses WebSocket transport from now on: an upgrade on `…/responses` gets
    /// 101, and each `response.create` frame a streamed answer (see [`super::ws_relay`]).
    /// Frames are recorded as requests with method `WS`.
    pub fn speak_websocket(&self) {
        self.shared.lock().unwrap().websocket = true;
    }

    /// Like [`MockRelay::speak_websocket`], answering each `response.create` as `behaviour`
    /// says (a drop, a stall, a failure…). Queued faults that happen before an answer
    /// (statuses, resets, stalls, redirects) still apply to the handshake.
    pub fn speak_websocket_as(&self, behaviour: super::ws_relay::Behaviour) {
        let mut shared = self.shared.lock().unwrap();
        shared.websocket = true;
        shared.ws_behaviour = Some(behaviour);
    }

    /// Requests received for `path` (the query ignored).
    pub fn hits_on(&self, path: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| r.path_and_query.split('?').next() == Some(path))
            .count()
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    pub fn hits(&self) -> usize {
        self.shared.lock().unwrap().received.len()
    }

    /// Kills the relay: the port stops accepting and open connections are dropped.
    pub fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for MockRelay {
    fn drop(&mut self) {
        self.kill();
    }
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

async fn handle(
    shared: Arc<Mutex<Shared>>,
    name: String,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let wants_websocket =
        shared.lock().unwrap().websocket && request.headers().contains_key("sec-websocket-key");
    // A fault that happens before any answer applies to a WebSocket handshake as well.
    let handshake_fault = if wants_websocket {
        take_handshake_fault(&shared)
    } else {
        None
    };
    if wants_websocket && handshake_fault.is_none() {
        return Ok(accept_websocket(shared, name, &mut request));
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let received = Received {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body,
    };
    let upgrade = parts
        .headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade && handshake_fault.is_none() {
        // Like a relay without WebSocket support that says so: Codex uses HTTP at once.
        shared.lock().unwrap().received.push(received);
        return Ok(json_reply(StatusCode::UPGRADE_REQUIRED, "{}"));
    }
    let handshake = handshake_fault.is_some();
    let fault = {
        let mut shared = shared.lock().unwrap();
        shared.received.push(received.clone());
        handshake_fault.or_else(|| shared.faults.pop_front().or_else(|| shared.always.clone()))
    };
    if parts.method == http::Method::GET && !handshake {
        let fixed = shared.lock().unwrap().fixed.get(parts.uri.path()).cloned();
        if let Some((status, body)) = fixed {
            if let Some(Fault::StallBeforeHeaders(pause)) = &fault {
                tokio::time::sleep(*pause).await;
            }
            return Ok(json_reply(StatusCode::from_u16(status).unwrap(), body));
        }
    }
    let path = parts.uri.path().trim_end_matches('/');
    if path.ends_with("/models") && parts.method == http::Method::GET && !handshake {
        let list = serde_json::json!({"object":"list","data":[
            {"id":"gpt-5.1","object":"model","owned_by":name},
            {"id":"gpt-5.1-codex","object":"model","owned_by":name}]});
        return Ok(json_reply(StatusCode::OK, list.to_string()));
    }
    if parts.method == http::Method::GET && !handshake {
        return Ok(json_reply(
            StatusCode::NOT_FOUND,
            r#"{"error":{"message":"not found","type":"not_found"}}"#,
        ));
    }
    let streaming = parts
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
        || serde_json::from_slice::<serde_json::Value>(&received.body)
            .ok()
            .and_then(|b| b["stream"].as_bool())
            == Some(true);
    let model = serde_json::from_slice::<serde_json::Value>(&received.body)
        .ok()
        .and_then(|b| b["model"].as_str().map(str::to_string))
        .unwrap_or_else(|| "gpt-5.1".into());
    let text = format!("hi from {name}");
    // Remote compaction v2: a request ending in a `compaction_trigger` item gets exactly one
    // `compaction` output item, as Codex requires.
    let compaction = serde_json::from_slice::<serde_json::Value>(&received.body)
        .ok()
        .and_then(|b| b["input"].as_array().and_then(|i| i.last().cloned()))
        .is_some_and(|last| last["type"] == "compaction_trigger");
    if compaction && fault.is_none() {
        return Ok(compaction_reply(&model, &name));
    }
    // Images: a request with the hosted `image_generation` tool gets an image.
    if fault.is_none() && asks_for_image(&received.body) {
        return Ok(image_reply(&model));
    }

    match fault {
        Some(Fault::Status {
            status,
            body,
            retry_after,
        }) => {
            let mut reply = json_reply(StatusCode::from_u16(status).unwrap(), body);
            if let Some(secs) = retry_after {
                reply.headers_mut().insert("retry-after", secs.into());
            }
            Ok(reply)
        }
        Some(Fault::ResetBeforeHeaders) => {
            Err(std::io::Error::other("mock relay: reset before headers"))
        }
        Some(Fault::ResetMidJson) => {
            let whole = Bytes::from(response_object(&model, &text).to_string());
            let half = whole.slice(..whole.len() / 2);
            let stream =
                futures_util::stream::iter([Ok(half)]).chain(futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Err(std::io::Error::other("mock relay: reset mid-body"))
                }));
            let mut reply = sse_reply(stream.boxed());
            reply
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            reply
                .headers_mut()
                .insert("content-length", whole.len().into());
            Ok(reply)
        }
        Some(Fault::StallMidJson(pause)) => {
            let whole = Bytes::from(response_object(&model, &text).to_string());
            let (half, rest) = (
                whole.slice(..whole.len() / 2),
                whole.slice(whole.len() / 2..),
            );
            let stream = futures_util::stream::iter([Ok(half)]).chain(futures_util::stream::once(
                async move {
                    tokio::time::sleep(pause).await;
                    Ok(rest)
                },
            ));
            let mut reply = sse_reply(stream.boxed());
            let headers = reply.headers_mut();
            headers.insert("content-type", "application/json".parse().unwrap());
            headers.insert("content-length", whole.len().into());
            Ok(reply)
        }
        Some(Fault::EndEarly { after_events }) => {
            let head: Vec<Bytes> = sse_events(&model, &text)
                .into_iter()
                .take(after_events)
                .collect();
            Ok(sse_reply(
                futures_util::stream::iter(head.into_iter().map(Ok)).boxed(),
            ))
        }
        Some(Fault::StallBeforeHeaders(pause)) => {
            tokio::time::sleep(pause).await;
            Ok(normal_reply(streaming, &model, &text, None))
        }
        Some(Fault::ResetMidStream { after_events }) => {
            let mut head: Vec<Bytes> = sse_events(&model, &text)
                .into_iter()
                .take(after_events)
                .collect();
            // Half an event, then the break, as a real cut looks.
            head.push(Bytes::from_static(
                b"event: response.output_text.delta\ndata: {\"type\":\"resp",
            ));
            let stream = futures_util::stream::iter(head.into_iter().map(Ok)).chain(
                futures_util::stream::once(async {
                    // Give hyper time to flush what was sent, so the break really is mid-stream.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Err(std::io::Error::other("mock relay: reset mid-stream"))
                }),
            );
            Ok(sse_reply(stream.boxed()))
        }
        Some(Fault::StallMidStream {
            after_events,
            pause,
        }) => Ok(paused_reply(
            &model,
            &text,
            after_events,
            tokio::time::sleep(pause),
        )),
        Some(Fault::HoldMidStream {
            after_events,
            release,
        }) => Ok(paused_reply(&model, &text, after_events, async move {
            release.notified().await
        })),
        Some(Fault::EchoesKey) => {
            let authorization = parts.headers.get("authorization");
            let echo = format!(
                "you sent: {}",
                authorization.and_then(|v| v.to_str().ok()).unwrap_or("")
            );
            let failed = sse(
                "response.failed",
                serde_json::json!({"type":"response.failed","response":{"id":"resp_mock","status":"failed",
                "error":{"code":"server_error","message":echo}}}),
            );
            let split = failed.len() - 20;
            let events = [
                sse_events(&model, &text)[0].clone(),
                sse_events(&model, &text)[2].clone(),
                failed.slice(..split),
            ];
            let rest = failed.slice(split..);
            let stream = futures_util::stream::iter(events.map(Ok)).chain(
                futures_util::stream::once(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(rest)
                }),
            );
            Ok(sse_reply(stream.boxed()))
        }
        Some(fault @ (Fault::FailedInStream | Fault::FailedAfterOutput)) => {
            let mut events = vec![
                sse(
                    "response.created",
                    serde_json::json!({"type":"response.created","response":{"id":"resp_mock","status":"in_progress"}}),
                ),
                sse(
                    "response.failed",
                    serde_json::json!({"type":"response.failed","response":{"id":"resp_mock","status":"failed",
                    "error":{"code":"server_error","message":"mock relay: failed in stream"}}}),
                ),
            ];
            if matches!(fault, Fault::FailedAfterOutput) {
                events.insert(1, sse_events(&model, &text)[2].clone());
            }
            Ok(sse_reply(
                futures_util::stream::iter(events.into_iter().map(Ok)).boxed(),
            ))
        }
        Some(Fault::Compressed(encoding)) => {
            let plain: Vec<u8> = if streaming {
                sse_events(&model, &text).concat()
            } else {
                response_object(&model, &text).to_string().into_bytes()
            };
            let compressed = match encoding {
                "gzip" => {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(&plain).unwrap();
                    e.finish().unwrap()
                }
                "zstd" => zstd::encode_all(&plain[..], 3).unwrap(),
                "deflate" => {
                    let mut e =
                        flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(&plain).unwrap();
                    e.finish().unwrap()
                }
                "br" => {
                    let mut out = Vec::new();
                    let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    e.write_all(&plain).unwrap();
                    drop(e);
                    out
                }
                // A coding nobody decodes here: the bytes are gzip's, the label is not.
                // `x-stacked`: gzip's bytes labelled with thousands of codings.
                "x-unknown" | "x-stacked" => {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(&plain).unwrap();
                    e.finish().unwrap()
                }
                other => panic!("mock relay cannot compress with {other}"),
            };
            let mut reply = if streaming {
                sse_reply(futures_util::stream::iter([Ok(Bytes::from(compressed))]).boxed())
            } else {
                json_reply(StatusCode::OK, compressed)
            };
            let label = match encoding {
                "x-stacked" => vec!["br"; 2000].join(", "),
                other => other.to_string(),
            };
            reply
                .headers_mut()
                .insert("content-encoding", label.parse().unwrap());
            Ok(reply)
        }
        Some(Fault::CommentsBeforeEvents { bytes }) => {
            let line = Bytes::from(format!(": {}\n", "p".repeat(16 * 1024 - 3)));
            let comments = futures_util::stream::iter(
                std::iter::repeat_n(line.clone(), bytes.div_ceil(line.len())).map(Ok),
            );
            let events = futures_util::stream::iter(sse_events(&model, &text).into_iter().map(Ok));
            Ok(sse_reply(comments.chain(events).boxed()))
        }
        Some(Fault::GzipNewlinesBeforeEvents { bytes }) => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let newlines = vec![b'\n'; 1 << 20];
            for _ in 0..bytes.div_ceil(newlines.len()) {
                e.write_all(&newlines).unwrap();
            }
            e.write_all(&sse_events(&model, &text).concat()).unwrap();
            let compressed = e.finish().unwrap();
            let mut reply =
                sse_reply(futures_util::stream::iter([Ok(Bytes::from(compressed))]).boxed());
            reply
                .headers_mut()
                .insert("content-encoding", "gzip".parse().unwrap());
            Ok(reply)
        }
        Some(Fault::KeepAliveAfterEvents {
            after_events,
            every,
            count,
        }) => {
            let all = sse_events(&model, &text);
            let head = all[..after_events].to_vec();
            let tail = all[after_events..].to_vec();
            let pings = futures_util::stream::iter(0..count).then(move |_| async move {
                tokio::time::sleep(every).await;
                Ok(Bytes::from_static(b": keep-alive\n\n"))
            });
            let stream = futures_util::stream::iter(head.into_iter().map(Ok))
                .chain(pings)
                .chain(futures_util::stream::iter(tail.into_iter().map(Ok)));
            Ok(sse_reply(stream.boxed()))
        }
        Some(Fault::Empty { status }) => {
            let body = http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync();
            let mut reply = Response::new(body);
            *reply.status_mut() = StatusCode::from_u16(status).unwrap();
            if status != 204 && status != 304 {
                reply.headers_mut().insert("content-length", 0.into());
            }
            Ok(reply)
        }
        Some(Fault::Redirect { status, location }) => {
            let mut reply = json_reply(StatusCode::from_u16(status).unwrap(), "");
            reply
                .headers_mut()
                .insert("location", location.parse().unwrap());
            Ok(reply)
        }
        Some(Fault::Cloudflare { status }) => {
            let page = format!(
                "<!DOCTYPE html><html><head><title>{status}: origin error</title></head>\
                 <body>Error code {status}. cloudflare</body></html>"
            );
            let mut reply = json_reply(StatusCode::from_u16(status).unwrap(), page);
            let headers = reply.headers_mut();
            headers.insert("content-type", "text/html; charset=UTF-8".parse().unwrap());
            headers.insert("server", "cloudflare".parse().unwrap());
            headers.insert("cf-ray", "8f0000000000abcd-HKG".parse().unwrap());
            Ok(reply)
        }
        Some(Fault::Unlabelled) => {
            let events = futures_util::stream::iter(sse_events(&model, &text).into_iter().map(Ok));
            let mut reply = sse_reply(events.boxed());
            reply.headers_mut().remove("content-type");
            Ok(reply)
        }
        Some(Fault::Malformed) => {
            if !streaming {
                let whole = response_object(&model, &text).to_string();
                return Ok(json_reply(
                    StatusCode::OK,
                    whole[..whole.len() / 2].to_string(),
                ));
            }
            let lines = [
                "this is not an event\n\n",
                "event: response.created\ndata: {\"type\":\"response.created\",\n\n",
                "data: [1, 2\n\n",
                "\u{0}\u{1}binary\n\n",
            ];
            Ok(sse_reply(
                futures_util::stream::iter(lines.map(|l| Ok(Bytes::from(l)))).boxed(),
            ))
        }
        Some(Fault::HugeEvent {
            after_events,
            bytes,
        }) => {
            // Spliced in as text: serialising megabytes is slow in a debug build.
            let big = "h".repeat(bytes);
            if !streaming {
                let whole = response_object(&model, &format!("HUGE{text}")).to_string();
                return Ok(json_reply(StatusCode::OK, whole.replacen("HUGE", &big, 1)));
            }
            let mut events = sse_events(&model, &text);
            let delta = format!(
                "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\
                 \"item_id\":\"msg_mock\",\"output_index\":0,\"content_index\":0,\"delta\":\"{big}\"}}\n\n"
            );
            events.insert(after_events.min(events.len()), Bytes::from(delta));
            Ok(sse_reply(
                futures_util::stream::iter(events.into_iter().map(Ok)).boxed(),
            ))
        }
        Some(Fault::EndlessComments {
            after_events,
            every,
        }) => {
            let head = sse_events(&model, &text)[..after_events].to_vec();
            let pings = futures_util::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some((Ok(Bytes::from_static(b": keep-alive\n\n")), ()))
            });
            let stream = futures_util::stream::iter(head.into_iter().map(Ok)).chain(pings);
            Ok(sse_reply(stream.boxed()))
        }
        None => {
            let tier = serde_json::from_slice::<serde_json::Value>(&received.body)
                .ok()
                .and_then(|b| b["service_tier"].as_str().map(str::to_string));
            Ok(normal_reply(streaming, &model, &text, tier.as_deref()))
        }
    }
}

/// The normal reply; a request that asked for a service tier is answered as processed in it,
/// as OpenAI says on the final response (`response.service_tier`).
fn normal_reply(streaming: bool, model: &str, text: &str, tier: Option<&str>) -> Response<Body> {
    let mut response = response_object(model, text);
    if let Some(tier) = tier {
        response["service_tier"] = tier.into();
    }
    if streaming {
        let mut events = sse_events(model, text);
        if tier.is_some() {
            *events.last_mut().unwrap() = sse(
                "response.completed",
                serde_json::json!({"type":"response.completed","sequence_number":9,"response":response}),
            );
        }
        sse_reply(futures_util::stream::iter(events.into_iter().map(Ok)).boxed())
    } else {
        json_reply(StatusCode::OK, response.to_string())
    }
}

/// The normal events, with `pause` awaited after the first `after_events` of them.
fn paused_reply(
    model: &str,
    text: &str,
    after_events: usize,
    pause: impl std::future::Future<Output = ()> + Send + 'static,
) -> Response<Body> {
    let all = sse_events(model, text);
    let tail = all[after_events.min(all.len())..].to_vec();
    let head = all[..after_events.min(all.len())].to_vec();
    let stream = futures_util::stream::iter(head.into_iter().map(Ok))
        .chain(
            futures_util::stream::once(pause)
                .filter_map(|()| async { None::<Result<Bytes, std::io::Error>> }),
        )
        .chain(futures_util::stream::iter(tail.into_iter().map(Ok)));
    sse_reply(stream.boxed())
}

fn compaction_reply(model: &str, name: &str) -> Response<Body> {
    let item = serde_json::json!({"type":"compaction","id":"cmp_mock","encrypted_content":format!("compacted by {name}")});
    let events = vec![
        sse(
            "response.created",
            serde_json::json!({"type":"response.created","response":{"id":"resp_cmp","status":"in_progress","model":model,"output":[]}}),
        ),
        sse(
            "response.output_item.done",
            serde_json::json!({"type":"response.output_item.done","output_index":0,"item":item}),
        ),
        sse(
            "response.completed",
            serde_json::json!({"type":"response.completed","response":{"id":"resp_cmp","status":"completed","model":model,
            "output":[item],"usage":{"input_tokens":100,"output_tokens":10,"total_tokens":110}}}),
        ),
    ];
    sse_reply(futures_util::stream::iter(events.into_iter().map(Ok)).boxed())
}

/// Answers a WebSocket upgrade with 101 and serves the connection in the background.
fn accept_websocket(
    shared: Arc<Mutex<Shared>>,
    name: String,
    request: &mut Request<Incoming>,
) -> Response<Body> {
    let key = request.headers()["sec-websocket-key"].as_bytes().to_vec();
    shared.lock().unwrap().received.push(Received {
        method: "GET".into(),
        path_and_query: request.uri().path().to_string(),
        headers: request.headers().clone(),
        body: Bytes::new(),
    });
    let path = request.uri().path().to_string();
    let behaviour = shared
        .lock()
        .unwrap()
        .ws_behaviour
        .unwrap_or(super::ws_relay::Behaviour::Answer);
    let upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(io) = upgrade.await else { return };
        let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(io),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let record = |frame: &serde_json::Value| {
            shared.lock().unwrap().received.push(Received {
                method: "WS".into(),
                path_and_query: path.clone(),
                headers: HeaderMap::new(),
                body: Bytes::from(frame.to_string()),
            });
        };
        super::ws_relay::respond(&mut socket, &name, behaviour, record).await;
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap()
}

fn json_reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let body = http_body_util::Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut reply = Response::new(body);
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    reply
        .headers_mut()
        .insert("x-request-id", "req_mock".parse().unwrap());
    reply
}

fn sse_reply(
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>>,
) -> Response<Body> {
    let body = BodyExt::boxed_unsync(StreamBody::new(stream.map(|chunk| chunk.map(Frame::data))));
    let mut reply = Response::new(body);
    reply
        .headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    reply
        .headers_mut()
        .insert("openai-model", "relay-internal-model".parse().unwrap());
    reply
}

fn sse(event: &str, data: serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn usage() -> serde_json::Value {
    let (input, cached, output, reasoning, total) = USAGE;
    serde_json::json!({"input_tokens":input,"input_tokens_details":{"cached_tokens":cached},
        "output_tokens":output,"output_tokens_details":{"reasoning_tokens":reasoning},"total_tokens":total})
}

fn message_item(text: &str, status: &str) -> serde_json::Value {
    serde_json::json!({"type":"message","id":"msg_mock","status":status,"role":"assistant",
        "content":[{"type":"output_text","text":text,"annotations":[]}]})
}

fn response_object(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"id":"resp_mock","object":"response","status":"completed","model":model,
        "output":[message_item(text, "completed")],"usage":usage()})
}

/// The events of one successful streamed reply, one `Bytes` per event.
pub fn sse_events(model: &str, text: &str) -> Vec<Bytes> {
    let (first, second) = text.split_at(text.len() / 2);
    let created = serde_json::json!({"id":"resp_mock","object":"response","status":"in_progress","model":model,"output":[]});
    vec![
        sse(
            "response.created",
            serde_json::json!({"type":"response.created","sequence_number":0,"response":created}),
        ),
        sse(
            "response.in_progress",
            serde_json::json!({"type":"response.in_progress","sequence_number":1,"response":created}),
        ),
        sse(
            "response.output_item.added",
            serde_json::json!({"type":"response.output_item.added","sequence_number":2,"output_index":0,
            "item":{"type":"message","id":"msg_mock","status":"in_progress","role":"assistant","content":[]}}),
        ),
        sse(
            "response.content_part.added",
            serde_json::json!({"type":"response.content_part.added","sequence_number":3,"item_id":"msg_mock",
            "output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}),
        ),
        sse(
            "response.output_text.delta",
            serde_json::json!({"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_mock",
            "output_index":0,"content_index":0,"delta":first}),
        ),
        sse(
            "response.output_text.delta",
            serde_json::json!({"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_mock",
            "output_index":0,"content_index":0,"delta":second}),
        ),
        sse(
            "response.output_text.done",
            serde_json::json!({"type":"response.output_text.done","sequence_number":6,"item_id":"msg_mock",
            "output_index":0,"content_index":0,"text":text}),
        ),
        sse(
            "response.content_part.done",
            serde_json::json!({"type":"response.content_part.done","sequence_number":7,"item_id":"msg_mock",
            "output_index":0,"content_index":0,"part":{"type":"output_text","text":text,"annotations":[]}}),
        ),
        sse(
            "response.output_item.done",
            serde_json::json!({"type":"response.output_item.done","sequence_number":8,"output_index":0,
            "item":message_item(text, "completed")}),
        ),
        sse(
            "response.completed",
            serde_json::json!({"type":"response.completed","sequence_number":9,
            "response":{"id":"resp_mock","object":"response","status":"completed","model":model,
            "output":[message_item(text, "completed")],"usage":usage()}}),
        ),
    ]
}

/// A 1×1 PNG, base64: the `result` of every mock `image_generation_call`.
pub const IMAGE_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
/// The `revised_prompt` of every mock `image_generation_call`.
pub const REVISED_PROMPT: &str = "a mock image, revised";
/// The `created_at` of the mock's image responses.
pub const IMAGE_CREATED_AT: u64 = 1_700_000_000;

/// Whether a request body lists the hosted `image_generation` tool.
fn asks_for_image(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|b| b["tools"].as_array().cloned())
        .is_some_and(|tools| tools.iter().any(|t| t["type"] == "image_generation"))
}

/// A Responses JSON answer with one `image_generation_call` item, as a relay gives for a
/// request that forces the hosted image tool.
fn image_reply(model: &str) -> Response<Body> {
    let call = serde_json::json!({"type":"image_generation_call","id":"ig_mock","status":"completed",
        "result":IMAGE_B64,"revised_prompt":REVISED_PROMPT,"size":"1024x1024","output_format":"png"});
    let response = serde_json::json!({"id":"resp_img","object":"response","status":"completed",
        "created_at":IMAGE_CREATED_AT,"model":model,"output":[call],"usage":usage()});
    json_reply(StatusCode::OK, response.to_string())
}
