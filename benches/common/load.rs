//! The load the benches send: a fast mock upstream, Codex-like requests, latency quantiles,
//! throughput at a fixed concurrency, and CPU time read from `/proc`.

use std::convert::Infallible;
use std::net::SocketAddr;
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

/// Clients at once in a throughput run, and the requests they share.
pub const CONCURRENT: usize = 32;
pub const CONCURRENT_REQUESTS: usize = 8000;

pub type BenchClient = Client<HttpConnector, Full<Bytes>>;

/// A client with Nagle off and a connection pool, as Codex's.
pub fn client() -> BenchClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Where a request goes and the key it presents (`Authorization: Bearer KEY`).
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub key: String,
}

impl Target {
    /// `url` with a key no relay checks.
    pub fn new(url: String) -> Self {
        Self {
            url,
            key: "bench".to_string(),
        }
    }
}

/// One latency row: each path's quantile, and for the proxies what they add to the direct path.
pub fn row_ms(label: &str, samples: &mut [Vec<Duration>], q: f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let values: Vec<f64> = samples.iter_mut().map(|s| ms(quantile(s, q))).collect();
    print!("{label:<36}");
    print!(" {:>11.3} ms", values[0]);
    for value in &values[1..] {
        print!(" {:>+11.3} ms", value - values[0]);
    }
    println!();
}

/// Two rows: each path's CPU µs per request and each proxy's ratio to the floor (the direct
/// column), then how many times per request its threads were put on a CPU.
pub fn row_cpu(label: &str, used: &[CpuUse], requests: usize) {
    let us = |u: &CpuUse| u.time.as_secs_f64() * 1e6 / requests as f64;
    let floor = us(&used[0]);
    print!("{label:<36}");
    print!(" {floor:>11.1} µs");
    for value in &used[1..] {
        let value = us(value);
        print!(
            " {:>7.1} µs {:>4.2}×",
            value,
            value / floor.max(f64::MIN_POSITIVE)
        );
    }
    println!();
    // Under each figure of the row above (the floor's is 15 wide, a proxy's 17); `-` where
    // the kernel keeps no count.
    print!("{:<36}", "  runs on a CPU/request");
    for (i, value) in used.iter().enumerate() {
        let width = if i == 0 { 14 } else { 16 };
        match value.runs {
            Some(runs) => print!(" {:>width$.1}", runs as f64 / requests as f64),
            None => print!(" {:>width$}", "-"),
        }
    }
    println!();
}

/// What a process or thread has used of the CPUs so far: the scheduler's nanoseconds on a CPU,
/// and how many times it was put on one (each wake-up from a wait is one). The second is why a
/// figure moves between machines: on a virtual machine, waking an idle core costs more than
/// the work a wake-up does, and that cost lands on whoever is woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuUse {
    pub time: Duration,
    /// `None` where the kernel keeps no count (no `schedstat`).
    pub runs: Option<u64>,
}

impl Default for CpuUse {
    fn default() -> Self {
        Self {
            time: Duration::ZERO,
            runs: Some(0),
        }
    }
}

impl std::ops::Add for CpuUse {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            time: self.time + other.time,
            runs: self.runs.zip(other.runs).map(|(a, b)| a + b),
        }
    }
}

impl std::ops::AddAssign for CpuUse {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

impl CpuUse {
    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            time: self.time.saturating_sub(earlier.time),
            runs: self
                .runs
                .zip(earlier.runs)
                .map(|(a, b)| a.saturating_sub(b)),
        }
    }
}

/// CPU use so far of process `pid`: each thread's `/proc/PID/task/*/schedstat` (nanoseconds on
/// a CPU, then times run), summed, where the kernel keeps it; else user + system time from
/// `/proc/PID/stat`, whose 10 ms ticks are too coarse for a few thousand requests, with no count.
/// (A thread that ended takes its use with it: the measured processes keep theirs alive.)
pub fn cpu_use(pid: u32) -> CpuUse {
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    schedstat(&proc).unwrap_or_else(|| stat_time(&proc))
}

/// Every thread's `schedstat`, summed; `None` when the kernel keeps none.
fn schedstat(proc: &std::path::Path) -> Option<CpuUse> {
    let mut total = None;
    for task in std::fs::read_dir(proc.join("task")).ok()? {
        // A thread may end between the listing and the read.
        if let Some(used) = thread_schedstat(&task.ok()?.path()) {
            *total.get_or_insert(CpuUse::default()) += used;
        }
    }
    total
}

/// The `schedstat` of the thread whose `/proc` folder is `task`: "ns-on-cpu ns-waiting runs".
fn thread_schedstat(task: &std::path::Path) -> Option<CpuUse> {
    let text = std::fs::read_to_string(task.join("schedstat")).ok()?;
    let mut fields = text.split_whitespace();
    let time = Duration::from_nanos(fields.next()?.parse().ok()?);
    let runs = fields.nth(1)?.parse().ok()?;
    Some(CpuUse {
        time,
        runs: Some(runs),
    })
}

/// User + system time from the `stat` of a process or thread folder, in 10 ms ticks.
fn stat_time(dir: &std::path::Path) -> CpuUse {
    let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = 100; // USER_HZ on Linux
    CpuUse {
        time: Duration::from_millis(ticks * 1000 / hz),
        runs: None,
    }
}

/// The CPU clock of one thread of this process, readable from any thread.
#[derive(Clone)]
pub struct ThreadClock(std::path::PathBuf);

impl ThreadClock {
    /// The calling thread's clock.
    pub fn current() -> Self {
        let task = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        Self(std::path::Path::new("/proc").join(task))
    }

    /// CPU use so far, as [`cpu_use`] reads it.
    pub fn used(&self) -> CpuUse {
        thread_schedstat(&self.0).unwrap_or_else(|| stat_time(&self.0))
    }
}

pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

pub struct Sample {
    pub first_byte: Duration,
    pub total: Duration,
}

pub async fn send(client: &BenchClient, target: &Target, body: &Bytes, sse: bool) -> Sample {
    let started = Instant::now();
    let request = Request::post(&target.url)
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
        .header("authorization", format!("Bearer {}", target.key))
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

/// A run at a fixed concurrency: requests per second and every request's latency.
pub struct Run {
    pub rps: f64,
    pub latencies: Vec<Duration>,
}

/// `CONCURRENT` clients sharing `CONCURRENT_REQUESTS` requests.
pub async fn throughput(client: &BenchClient, target: &Target, body: &Bytes, sse: bool) -> Run {
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(CONCURRENT_REQUESTS));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENT {
        let (client, target, body, remaining) = (
            client.clone(),
            target.clone(),
            body.clone(),
            remaining.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                latencies.push(send(&client, &target, &body, sse).await.total);
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(CONCURRENT_REQUESTS);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Run {
        rps: CONCURRENT_REQUESTS as f64 / started.elapsed().as_secs_f64(),
        latencies,
    }
}

/// A Codex-like `/responses` body of about `size` bytes.
pub fn codex_like_body(size: usize) -> String {
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

/// The mock upstream: where it listens, and the clock of the thread it runs on.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub cpu: ThreadClock,
}

/// The upstream answers at once: a fixed JSON body, or ten SSE events written as a burst.
///
/// It serves on a thread of its own with a current-thread runtime, kept on the second core
/// ([`pin_to_cpu`]), as the load generator runs on another: the two are read apart, and the
/// floor is what one hyper server plus one hyper client cost. (On one shared two-worker runtime
/// their CPU per request swung between about 70 and 120 µs from run to run, with the workers'
/// searching and waking, while the proxies' own figures held.)
pub fn start_upstream() -> MockUpstream {
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mock-upstream".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            pin_to_cpu(1);
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                ready.send((addr, ThreadClock::current())).unwrap();
                serve_mock(listener).await
            })
        })
        .unwrap();
    let (addr, cpu) = started.recv().expect("the mock upstream starts");
    MockUpstream { addr, cpu }
}

async fn serve_mock(listener: tokio::net::TcpListener) {
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
}

/// Keeps the calling thread on the `nth` of the CPUs it was allowed at start (counting round),
/// so `taskset -c 0 cargo bench …` puts the whole bench, proxies included, on one core.
///
/// The floor is two threads handing each request to each other. Left to the scheduler, they
/// sometimes shared a core for a whole run and sometimes not, and a hand-off across cores costs
/// about twice the CPU: the floor came out anywhere from 45 to 94 µs per JSON request on one
/// machine. On two cores of their own they always cross, as a client, a proxy and a relay in
/// separate processes do. On one core nothing crosses and nothing waits for an idle core to
/// wake, so the figures are the work alone. (Call it after spawning any child process:
/// children inherit it.)
pub fn pin_to_cpu(nth: usize) {
    // SAFETY: `set` and `allowed` are plain bit sets initialised before use; the calls read
    // and fill them, and only this thread's affinity changes.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &allowed))
            .collect();
        let Some(&cpu) = cpus.get(nth % cpus.len().max(1)) else {
            return;
        };
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size, &set);
    }
}
