//! What the proxy adds, measured against the direct path in the same run.
//!
//! Starts a fast mock upstream in this process and the real `codex-helper` binary in another,
//! with two yardsticks in front of the same mock: a bare hyper proxy (codex-helper's HTTP stack
//! with nothing else, see [`common::bare_proxy`]) and, when `nginx` is installed, nginx as a
//! plain reverse proxy (Debian's `nginx-light`). It then sends the same ~20 KB Codex-like request
//! through each, interleaved, and prints: latency p50/p99 at concurrency 1 (JSON and SSE),
//! time to first byte of a burst SSE reply, requests per second at concurrency 32, CPU time
//! per request of each proxy at concurrency 1 and 32 next to the floor (the CPU the mock
//! upstream and the load generator spend per request on the direct path: a hyper server plus
//! a hyper client doing the same work, each on a thread and a core of its own, printed apart)
//! with the times per request each path's threads were put on a CPU, and the proxy's idle and
//! peak RSS. `taskset -c 0 cargo bench --bench proxy_overhead` runs it all on one core, where
//! the CPU figures are the work alone, without the cost of waking idle cores.
//! Run with `cargo bench --bench proxy_overhead`; `CODEX_HELPER_BENCH_BIN=path` measures
//! another build of the binary instead, `CODEX_HELPER_BENCH_BASELINE=path` another build beside
//! it (a "baseline" column, interleaved with the others). Loopback only; every loop is bounded by a request count.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;

use common::ProxyProcess;
use common::bare_proxy::BareProxy;
use common::load::{
    BenchClient, CONCURRENT, CONCURRENT_REQUESTS, CpuUse, Target, ThreadClock, codex_like_body,
    cpu_use, row_cpu, row_ms, send, start_upstream, throughput,
};

const SEQUENTIAL: usize = 2000;
/// Rounds the concurrency-1 CPU blocks are split into (see where they are measured).
const CPU_ROUNDS: usize = 8;
const BODY_BYTES: usize = 20 * 1024;

/// One way to the mock upstream, and whose CPU it is measured by.
struct Path {
    name: &'static str,
    target: Target,
    meter: Meter,
}

/// Whose CPU a path's figure is.
enum Meter {
    /// The direct path: the floor, the mock upstream's thread and the load generator's.
    Floor {
        mock: ThreadClock,
        load: ThreadClock,
    },
    /// A proxy: its whole process.
    Process(u32),
}

impl Meter {
    fn read(&self) -> CpuUse {
        match self {
            Meter::Floor { mock, load } => mock.used() + load.used(),
            Meter::Process(pid) => cpu_use(*pid),
        }
    }

    /// The mock upstream's part of the floor.
    fn mock(&self) -> Option<CpuUse> {
        match self {
            Meter::Floor { mock, .. } => Some(mock.used()),
            Meter::Process(_) => None,
        }
    }
}

fn main() {
    // The "hyper" column's process is this binary, re-run: it serves here and never returns.
    common::bare_proxy::serve_if_asked();
    // The load generator is this thread alone (the mock upstream has its own), so its CPU is
    // read apart from the mock's.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    let mock = start_upstream();
    let upstream = mock.addr;
    // `CODEX_HELPER_BENCH_BIN` measures another build instead of this one;
    // `CODEX_HELPER_BENCH_BASELINE` measures another build (e.g. an older commit's) beside it,
    // interleaved in the same run, for before/after figures on a noisy machine.
    let binary = std::env::var_os("CODEX_HELPER_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_codex-helper").into());
    let proxy = ProxyProcess::start(&one_relay(upstream), binary.clone());
    let baseline = std::env::var_os("CODEX_HELPER_BENCH_BASELINE")
        .map(|binary| ProxyProcess::start(&one_relay(upstream), binary));
    // The same build with a default profile that fills `service_tier`: every request's body
    // is patched (phase 2b), the cost of profiles and session overrides.
    let profiled = ProxyProcess::start(&with_default_profile(upstream), binary);
    let bare = BareProxy::start(upstream);
    let nginx = Nginx::start(upstream);
    let mut paths = vec![
        Path {
            name: "direct",
            target: Target::new(format!("http://{upstream}/v1/responses")),
            meter: Meter::Floor {
                mock: mock.cpu.clone(),
                load: ThreadClock::current(),
            },
        },
        Path {
            name: "codex-helper",
            target: Target::new(format!("http://{}/v1/responses", proxy.addr)),
            meter: Meter::Process(proxy.child.id()),
        },
    ];
    paths.push(Path {
        name: "+profile",
        target: Target::new(format!("http://{}/v1/responses", profiled.addr)),
        meter: Meter::Process(profiled.child.id()),
    });
    if let Some(baseline) = &baseline {
        paths.push(Path {
            name: "baseline",
            target: Target::new(format!("http://{}/v1/responses", baseline.addr)),
            meter: Meter::Process(baseline.child.id()),
        });
    }
    paths.push(Path {
        name: "hyper",
        target: Target::new(format!("http://{}/v1/responses", bare.addr)),
        meter: Meter::Process(bare.child.id()),
    });
    if let Some(nginx) = &nginx {
        paths.push(Path {
            name: "nginx",
            target: Target::new(format!("http://{}/v1/responses", nginx.addr)),
            meter: Meter::Process(nginx.child.id()),
        });
    }
    let body = Bytes::from(codex_like_body(BODY_BYTES));

    let client: BenchClient = common::load::client();

    // The load generator on the first core, the mock on the second (see `pin_to_cpu`); every
    // child process is started by now, so none inherits it.
    common::load::pin_to_cpu(0);
    // Warm up every path (connection pools, allocator, page cache).
    for _ in 0..200 {
        for path in &paths {
            send(&client, &path.target, &body, false).await;
        }
    }
    let idle_rss = proxy.memory_kib("VmRSS");
    let baseline_idle_rss = baseline.as_ref().map(|b| b.memory_kib("VmRSS"));

    println!(
        "codex-helper proxy overhead: {} request body, SSE replies are a burst of 10 events, loopback{}\n",
        human(BODY_BYTES),
        if nginx.is_some() {
            ""
        } else {
            " (nginx not installed: no yardstick)"
        }
    );
    print!("{:<36}", "");
    for path in &paths {
        print!(" {:>14}", path.name);
    }
    println!();

    for (label, sse) in [("JSON", false), ("SSE", true)] {
        let mut totals = vec![Vec::new(); paths.len()];
        let mut firsts = vec![Vec::new(); paths.len()];
        for i in 0..SEQUENTIAL {
            // Rotate which path goes first so none always gets the warmer cache.
            for k in 0..paths.len() {
                let index = (i + k) % paths.len();
                let sample = send(&client, &paths[index].target, &body, sse).await;
                totals[index].push(sample.total);
                firsts[index].push(sample.first_byte);
            }
        }
        for (q, name) in [(0.50, "p50"), (0.99, "p99")] {
            row_ms(&format!("{label} latency {name}, c=1"), &mut totals, q);
        }
        if sse {
            for (q, name) in [(0.50, "p50"), (0.99, "p99")] {
                row_ms(&format!("SSE first byte {name}, c=1"), &mut firsts, q);
            }
        }
        // CPU in blocks per path (reading /proc per request would cost more than a request),
        // interleaved in rounds whose order rotates, and the median round kept per path: a
        // burst of noise on this shared machine then spoils one round, not one path's figure.
        // Each round is (CPU, the mock's part of it): the mock's part is the floor's only.
        let mut rounds = vec![Vec::new(); paths.len()];
        for round in 0..CPU_ROUNDS {
            for k in 0..paths.len() {
                let index = (round + k) % paths.len();
                let path = &paths[index];
                let (before, mock_before) = (path.meter.read(), path.meter.mock());
                for _ in 0..SEQUENTIAL / CPU_ROUNDS {
                    send(&client, &path.target, &body, sse).await;
                }
                let mock = match (mock_before, path.meter.mock()) {
                    (Some(before), Some(after)) => after.since(before),
                    _ => CpuUse::default(),
                };
                rounds[index].push((path.meter.read().since(before), mock));
            }
        }
        // The median round by CPU, with the mock's part of that same round.
        let medians: Vec<(CpuUse, CpuUse)> = rounds
            .iter_mut()
            .map(|r| {
                r.sort_unstable();
                r[r.len() / 2]
            })
            .collect();
        let cpu: Vec<CpuUse> = medians.iter().map(|m| m.0).collect();
        let label = format!("{label} CPU/request, c=1");
        row_cpu(&label, &cpu, SEQUENTIAL / CPU_ROUNDS);
        floor_split(cpu[0], medians[0].1, SEQUENTIAL / CPU_ROUNDS);
    }

    for (label, sse) in [("JSON", false), ("SSE", true)] {
        let mut rps = vec![0.0; paths.len()];
        let mut cpu = vec![CpuUse::default(); paths.len()];
        let mut mock_cpu = CpuUse::default();
        for _round in 0..2 {
            for (index, path) in paths.iter().enumerate() {
                let (before, mock_before) = (path.meter.read(), path.meter.mock());
                rps[index] += throughput(&client, &path.target, &body, sse).await.rps / 2.0;
                cpu[index] += path.meter.read().since(before);
                if let (Some(before), Some(after)) = (mock_before, path.meter.mock()) {
                    mock_cpu += after.since(before);
                }
            }
        }
        print!("{:<36}", format!("{label} requests/s, c={CONCURRENT}"));
        for value in &rps {
            print!(" {value:>14.0}");
        }
        println!();
        row_cpu(
            &format!("{label} CPU/request, c={CONCURRENT}"),
            &cpu,
            2 * CONCURRENT_REQUESTS,
        );
        floor_split(cpu[0], mock_cpu, 2 * CONCURRENT_REQUESTS);
    }
    println!(
        "\nThe direct column's CPU is the floor: the mock upstream and the load generator (this \
         process, a thread each) per request.\nA proxy's ratio is its CPU per request over that floor.\nRuns on a CPU: the times a \
         path's threads were woken and put on a CPU, per request. Where waking an idle core is \
         dear (a virtual machine without halt polling), a path that is woken more pays more \
         CPU and latency for it than for its work; `taskset -c 0` before `cargo bench` puts the \
         whole bench on one core, where no core idles.\nhyper: a bare proxy on \
         codex-helper's HTTP stack (no routing, inspection, log or ledger), the least that stack \
         costs here."
    );
    println!(
        "codex-helper RSS idle: {:.1} MiB, peak (after {CONCURRENT} concurrent streams): {:.1} MiB",
        idle_rss as f64 / 1024.0,
        proxy.memory_kib("VmHWM") as f64 / 1024.0
    );
    if let (Some(baseline), Some(idle)) = (&baseline, baseline_idle_rss) {
        println!(
            "baseline RSS idle: {:.1} MiB, peak: {:.1} MiB",
            idle as f64 / 1024.0,
            baseline.memory_kib("VmHWM") as f64 / 1024.0
        );
    }
}

/// The floor's two parts, under its row: the mock upstream's CPU and the load generator's.
fn floor_split(floor: CpuUse, mock: CpuUse, requests: usize) {
    let us = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
    println!(
        "{:<36} {:>8.1} µs mock + {:.1} µs load generator",
        "  floor",
        us(mock.time),
        us(floor.time.saturating_sub(mock.time))
    );
}

/// The helper's config with the mock upstream as its one relay.
fn one_relay(upstream: SocketAddr) -> String {
    format!("version = 5\n[codex.providers.bench]\nbase_url = \"http://{upstream}/v1\"\n")
}

/// [`one_relay`] with a default profile that fills `service_tier` (Codex never sends one).
fn with_default_profile(upstream: SocketAddr) -> String {
    format!(
        "{}[codex]\ndefault_profile = \"bench\"\n[codex.profiles.bench]\nservice_tier = \"flex\"\n",
        one_relay(upstream)
    )
}

fn human(bytes: usize) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}

/// nginx as a plain reverse proxy in front of the mock, as a yardstick: one process (no
/// master), keep-alive to the upstream, no buffering, no access log.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Option<Self> {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let dir = tempfile::tempdir().unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let d = dir.path().display();
        let config = format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               upstream mock {{ server {upstream}; keepalive 64; }}\n\
               server {{ listen {addr}; client_max_body_size 64m; client_body_buffer_size 64k;\n\
                 location / {{ proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
                   proxy_buffering off; tcp_nodelay on; }} }} }}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(binary)
            .args(["-p", &d.to_string(), "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // Wait (bounded) until it listens.
        let ready = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::net::TcpStream::connect(addr).is_ok()
        });
        let nginx = Self {
            child,
            addr,
            _dir: dir,
        };
        ready.then_some(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
