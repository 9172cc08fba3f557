//! What the proxy adds, measured against the direct path in the same run.
//!
//! Starts a fast mock upstream in this process and the real `codex-helper` binary in another,
//! then sends the same ~20 KB Codex-like request to both, interleaved, and prints:
//! added latency p50/p99 at concurrency 1 (JSON and SSE), added time to first byte for a burst
//! SSE reply, requests per second at concurrency 32, the proxy's CPU time per request, and its
//! idle and peak RSS. Run with `cargo bench --bench proxy_overhead`. Loopback only; every loop
//! is bounded by a request count.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

const SEQUENTIAL: usize = 2000;
const CONCURRENT: usize = 32;
const CONCURRENT_REQUESTS: usize = 8000;
const BODY_BYTES: usize = 20 * 1024;

type BenchClient = Client<HttpConnector, Full<Bytes>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let upstream = start_upstream().await;
    let proxy = ProxyProcess::start(upstream);
    let direct = format!("http://{upstream}/v1/responses");
    let proxied = format!("http://{}/v1/responses", proxy.addr);
    let body = Bytes::from(codex_like_body(BODY_BYTES));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: BenchClient = Client::builder(TokioExecutor::new()).build(connector);

    // Warm up both paths (connection pools, allocator, page cache).
    for _ in 0..200 {
        send(&client, &direct, &body, false).await;
        send(&client, &proxied, &body, false).await;
    }
    let idle_rss = proxy.memory_kib("VmRSS");

    println!(
        "codex-helper proxy overhead: {} request body, SSE replies are a burst of 10 events, loopback\n",
        human(BODY_BYTES)
    );
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "", "direct", "proxy", "added"
    );

    for (label, sse) in [("JSON", false), ("SSE", true)] {
        let (mut d_total, mut p_total, mut d_first, mut p_first) = (vec![], vec![], vec![], vec![]);
        for i in 0..SEQUENTIAL {
            // Alternate which path goes first so neither always gets the warmer cache.
            let order = if i % 2 == 0 {
                [&direct, &proxied]
            } else {
                [&proxied, &direct]
            };
            for url in order {
                let sample = send(&client, url, &body, sse).await;
                if url == &direct {
                    d_total.push(sample.total);
                    d_first.push(sample.first_byte);
                } else {
                    p_total.push(sample.total);
                    p_first.push(sample.first_byte);
                }
            }
        }
        for (q, name) in [(0.50, "p50"), (0.99, "p99")] {
            row(
                &format!("{label} latency {name}, c=1"),
                quantile(&mut d_total, q),
                quantile(&mut p_total, q),
            );
        }
        if sse {
            for (q, name) in [(0.50, "p50"), (0.99, "p99")] {
                row(
                    &format!("SSE time to first byte {name}, c=1"),
                    quantile(&mut d_first, q),
                    quantile(&mut p_first, q),
                );
            }
        }
    }

    let cpu_before = proxy.cpu_time();
    let mut proxied_requests = 0;
    for (label, sse) in [("JSON", false), ("SSE", true)] {
        let (mut direct_rps, mut proxy_rps) = (0.0, 0.0);
        for _round in 0..2 {
            direct_rps += throughput(&client, &direct, &body, sse).await / 2.0;
            proxy_rps += throughput(&client, &proxied, &body, sse).await / 2.0;
            proxied_requests += CONCURRENT_REQUESTS;
        }
        println!(
            "{:<34} {:>12.0} {:>12.0} {:>11.1}%",
            format!("{label} requests/s, c={CONCURRENT}"),
            direct_rps,
            proxy_rps,
            (proxy_rps / direct_rps - 1.0) * 100.0
        );
    }
    let cpu = proxy.cpu_time() - cpu_before;
    println!(
        "\nproxy CPU time per request (c={CONCURRENT} runs): {:.1} µs",
        cpu.as_secs_f64() * 1e6 / proxied_requests as f64
    );
    println!(
        "proxy RSS idle: {:.1} MiB, peak (after {CONCURRENT} concurrent streams): {:.1} MiB",
        idle_rss as f64 / 1024.0,
        proxy.memory_kib("VmHWM") as f64 / 1024.0
    );
}

fn row(label: &str, direct: Duration, proxy: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<34} {:>9.3} ms {:>9.3} ms {:>+9.3} ms",
        ms(direct),
        ms(proxy),
        ms(proxy) - ms(direct)
    );
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

struct Sample {
    first_byte: Duration,
    total: Duration,
}

async fn send(client: &BenchClient, url: &str, body: &Bytes, sse: bool) -> Sample {
    let started = Instant::now();
    let request = Request::post(url)
        .header("content-type", "application/json")
        .header(
            "accept",
            if sse {
                "text/event-stream"
            } else {
                "application/json"
            },
        )
        .header("session-id", "019a0000-0000-7000-8000-000000000000")
        .header("authorization", "Bearer bench")
        .body(Full::new(body.clone()))
        .unwrap();
    let mut response = client.request(request).await.expect("request failed");
    assert!(
        response.status().is_success(),
        "status {}",
        response.status()
    );
    let mut first_byte = None;
    while let Some(frame) = response.body_mut().frame().await {
        frame.expect("body error");
        first_byte.get_or_insert_with(|| started.elapsed());
    }
    let total = started.elapsed();
    Sample {
        first_byte: first_byte.unwrap_or(total),
        total,
    }
}

/// Requests per second with `CONCURRENT` clients sharing `CONCURRENT_REQUESTS` requests.
async fn throughput(client: &BenchClient, url: &str, body: &Bytes, sse: bool) -> f64 {
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(CONCURRENT_REQUESTS));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENT {
        let (client, url, body, remaining) = (
            client.clone(),
            url.to_string(),
            body.clone(),
            remaining.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                send(&client, &url, &body, sse).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    CONCURRENT_REQUESTS as f64 / started.elapsed().as_secs_f64()
}

/// A Codex-like `/responses` body of about `size` bytes.
fn codex_like_body(size: usize) -> String {
    let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(size / 57);
    serde_json::json!({
        "model": "gpt-5.1",
        "stream": true,
        "input": [
            {"type":"message","role":"developer","content":[{"type":"input_text","text":text}]},
            {"type":"message","role":"user","content":[{"type":"input_text","text":"say hi"}]}
        ],
        "tools": [], "tool_choice": "auto", "parallel_tool_calls": true,
        "reasoning": {"effort":"medium","summary":"auto"}, "store": false,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a0000-0000-7000-8000-000000000000"
    })
    .to_string()
}

/// The upstream answers at once: a fixed JSON body, or ten SSE events written as a burst.
async fn start_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let events: Arc<Vec<Bytes>> = Arc::new(
        (0..10)
            .map(|i| {
                let data = if i == 9 {
                    r#"{"type":"response.completed","response":{"id":"resp_b","usage":{"input_tokens":5000,"input_tokens_details":{"cached_tokens":4000},"output_tokens":20,"total_tokens":5020}}}"#.to_string()
                } else {
                    format!(r#"{{"type":"response.output_text.delta","sequence_number":{i},"delta":"word {i} "}}"#)
                };
                let kind = serde_json::from_str::<serde_json::Value>(&data).unwrap()["type"].as_str().unwrap().to_string();
                Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
            })
            .collect(),
    );
    let json = Bytes::from_static(br#"{"id":"resp_b","object":"response","status":"completed","output":[],"usage":{"input_tokens":5000,"output_tokens":20,"total_tokens":5020}}"#);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (events, json) = (events.clone(), json.clone());
            let service = service_fn(move |request: Request<Incoming>| {
                let (events, json) = (events.clone(), json.clone());
                async move {
                    let sse = request
                        .headers()
                        .get("accept")
                        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
                    request.into_body().collect().await.ok();
                    let response = if sse {
                        let frames = futures_util::stream::iter(
                            (0..events.len())
                                .map(move |i| Ok::<_, Infallible>(Frame::data(events[i].clone()))),
                        );
                        Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(StreamBody::new(frames).boxed())
                            .unwrap()
                    } else {
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(json).boxed())
                            .unwrap()
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The real `codex-helper` binary, configured with the mock upstream as its one relay.
struct ProxyProcess {
    child: Child,
    addr: SocketAddr,
    _home: tempfile::TempDir,
}

impl ProxyProcess {
    fn start(upstream: SocketAddr) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config.toml"),
            format!("version = 5\n[codex.providers.bench]\nbase_url = \"http://{upstream}/v1\"\n"),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_codex-helper"))
            .args(["serve", "--no-tui", "--no-switch", "--port", "0"])
            .env("CODEX_HELPER_HOME", home.path())
            .env("CODEX_HOME", home.path().join("codex"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start codex-helper");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("codex-helper exited before listening")
                .unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // The proxy logs one line per request; drain them as a terminal would.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            _home: home,
        }
    }

    /// User + system CPU time of the proxy process so far.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = 100; // USER_HZ on Linux
        Duration::from_millis(ticks * 1000 / hz)
    }

    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn human(bytes: usize) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}
