//! The soak: does the proxy stay flat under hours of ordinary traffic?
//!
//! Runs the real `codex-helper serve` (the bench profile's release build) in front of two mock
//! relays on loopback, a flaky one first (every 5th request a 502, so the proxy fails over) and
//! a steady one, and sends Codex-like traffic at a steady rate for a while: SSE streams, JSON,
//! streams the client drops after the first event, and requests the relays refuse with a 400.
//! Every 10 s it samples the proxy's RSS and open file descriptors (from /proc), its alive
//! tokio tasks (`tasks` of `GET /runtime/status`), the ledger's size on disk (database + WAL)
//! and row count, and the traffic's counters; it appends each sample to `soak.csv` and redraws
//! `soak.png` (a panel per series against time), and at the end prints start/end/max of each
//! series and whether it stayed flat (the first 10 minutes against the last 10).
//! The ledger keeps at most `--max-rows` rows and its retention runs every minute, so
//! retention works during the run and the ledger must stay bounded too.
//!
//! `cargo bench --bench soak -- [--secs 3600] [--rate 30] [--out DIR] [--max-rows 5000]`;
//! `-- --plot DIR/soak.csv` redraws the PNG beside a CSV. `CODEX_HELPER_BENCH_BIN=path`
//! soaks another build. Loopback only; bounded by `--secs`.

#[path = "../common/mod.rs"]
mod common;
mod load;
mod png;
mod relays;
mod sample;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::ProxyProcess;
use sample::{Probe, Sample};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The windows compared for "flat": the first and the last this long (a sixth of the run
/// when it is shorter than an hour).
const FLAT_WINDOW_S: f64 = 600.0;
/// A series is flat when its last window's peak is within this of its first window's peak
/// (relative), or within [`FLAT_SLACK`] (absolute, for small counts such as fds).
const FLAT_TOLERANCE: f64 = 0.10;
const FLAT_SLACK: f64 = 8.0;

struct Options {
    secs: u64,
    rate: u32,
    out: PathBuf,
    max_rows: u64,
    plot: Option<PathBuf>,
}

fn options() -> Options {
    let mut options = Options {
        secs: 3600,
        rate: 30,
        out: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak"),
        max_rows: 5000,
        plot: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--secs" => options.secs = value().parse().expect("--secs: seconds"),
            "--rate" => options.rate = value().parse().expect("--rate: requests per second"),
            "--out" => options.out = value().into(),
            "--max-rows" => options.max_rows = value().parse().expect("--max-rows: rows"),
            "--plot" => options.plot = Some(value().into()),
            // `cargo bench` passes `--bench`; libtest's other flags mean nothing here.
            _ => {}
        }
    }
    options
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = options();
    if let Some(csv) = &options.plot {
        let samples = read_csv(csv);
        let png = csv.with_extension("png");
        std::fs::write(&png, plot(&samples)).expect("write the PNG");
        println!("{} samples → {}", samples.len(), png.display());
        summary(&samples);
        return;
    }
    std::fs::create_dir_all(&options.out).expect("create the output directory");
    let flaky = relays::start(5).await;
    let steady = relays::start(0).await;
    let config = format!(
        "version = 5\n\
         [codex.providers.flaky]\nbase_url = \"http://{flaky}/v1\"\n\
         [codex.providers.steady]\nbase_url = \"http://{steady}/v1\"\n\
         [ledger]\nmax_rows = {}\nretention_interval_secs = 60\n",
        options.max_rows
    );
    let binary = std::env::var_os("CODEX_HELPER_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_codex-helper").into());
    let proxy = ProxyProcess::start(&config, binary);
    let admin = proxy.admin.expect("the admin API listens");
    let probe = Probe::new(proxy.child.id(), admin, proxy.home().join("ledger.sqlite3"));
    let csv_path = options.out.join("soak.csv");
    let png_path = options.out.join("soak.png");
    let mut csv = std::fs::File::create(&csv_path).expect("create the CSV");
    writeln!(csv, "{}", sample::COLUMNS).unwrap();
    println!(
        "soak: {} s at {} requests/s through codex-helper (pid {}), ledger max_rows {}; samples every {} s → {}",
        options.secs,
        options.rate,
        proxy.child.id(),
        options.max_rows,
        SAMPLE_EVERY.as_secs(),
        csv_path.display()
    );

    let counters = Arc::new(load::Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(load::run(
        format!("http://{}/v1/responses", proxy.addr),
        options.rate,
        counters.clone(),
        stop.clone(),
    ));
    let started = Instant::now();
    let deadline = Duration::from_secs(options.secs);
    let mut samples: Vec<Sample> = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let elapsed = started.elapsed();
        let sample = probe.take(elapsed.as_secs_f64(), &counters).await;
        writeln!(csv, "{}", sample.csv()).unwrap();
        csv.flush().unwrap();
        samples.push(sample.clone());
        if samples.len() % 6 == 0 {
            println!(
                "{:>6.0} s  rss {:>7} KiB  fds {:>4}  tasks {:>4?}  ledger {:>9} B {:>6} rows  sent {:>7}  errors {}",
                sample.t_s,
                sample.rss_kib,
                sample.fds,
                sample.tasks,
                sample.ledger_bytes,
                sample.ledger_rows,
                sample.sent,
                sample.errors
            );
            std::fs::write(&png_path, plot(&samples)).unwrap();
        }
        if proxy_exited(&proxy) {
            println!("codex-helper exited during the soak");
            break;
        }
        if elapsed >= deadline {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(40), traffic).await;
    std::fs::write(&png_path, plot(&samples)).unwrap();
    println!("CSV: {}\nPNG: {}", csv_path.display(), png_path.display());
    summary(&samples);
}

fn proxy_exited(proxy: &ProxyProcess) -> bool {
    !Path::new(&format!("/proc/{}", proxy.child.id())).exists()
        || std::fs::read_to_string(format!("/proc/{}/stat", proxy.child.id())).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn read_csv(path: &Path) -> Vec<Sample> {
    let text = std::fs::read_to_string(path).expect("read the CSV");
    text.lines().skip(1).filter_map(Sample::parse).collect()
}

fn plot(samples: &[Sample]) -> Vec<u8> {
    let times: Vec<f64> = samples.iter().map(|s| s.t_s).collect();
    let series = |title: &'static str, f: fn(&Sample) -> f64| png::Series {
        title,
        values: samples.iter().map(f).collect(),
    };
    // Requests per second between two samples.
    let mut rate = vec![0.0];
    rate.extend(
        samples
            .windows(2)
            .map(|w| (w[1].sent - w[0].sent) as f64 / (w[1].t_s - w[0].t_s).max(1.0)),
    );
    png::chart(
        &times,
        &[
            series("RSS (MIB)", |s| s.rss_kib as f64 / 1024.0),
            series("OPEN FDS", |s| s.fds as f64),
            series("TOKIO TASKS", |s| s.tasks.map_or(f64::NAN, |t| t as f64)),
            series("LEDGER DB+WAL (MIB)", |s| s.ledger_bytes as f64 / 1048576.0),
            series("LEDGER ROWS", |s| s.ledger_rows as f64),
            png::Series {
                title: "REQUESTS/S SENT",
                values: rate,
            },
            series("ERRORS (TOTAL)", |s| s.errors as f64),
        ],
    )
}

/// One series of the samples.
type Column = fn(&Sample) -> f64;

/// Start, end and peak of each series, the traffic's totals, and flat or not.
fn summary(samples: &[Sample]) {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        println!("no samples");
        return;
    };
    let duration = last.t_s;
    let window = FLAT_WINDOW_S
        .min(duration / 6.0)
        .max(SAMPLE_EVERY.as_secs_f64());
    println!(
        "\nsoak summary over {:.0} s ({} samples); flat = peak of the last {:.0} s within {:.0}% (or {FLAT_SLACK}) of the peak of the first {:.0} s",
        duration,
        samples.len(),
        window,
        FLAT_TOLERANCE * 100.0,
        window
    );
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>12} {:>12}  verdict",
        "series", "start", "end", "max", "first peak", "last peak"
    );
    let series: [(&str, Column); 5] = [
        ("rss KiB", |s| s.rss_kib as f64),
        ("open fds", |s| s.fds as f64),
        ("tokio tasks", |s| s.tasks.map_or(f64::NAN, |t| t as f64)),
        ("ledger bytes", |s| s.ledger_bytes as f64),
        ("ledger rows", |s| s.ledger_rows as f64),
    ];
    let mut all_flat = true;
    for (name, f) in series {
        let peak = |from: f64, to: f64| {
            samples
                .iter()
                .filter(|s| s.t_s >= from && s.t_s <= to)
                .map(f)
                .fold(0.0, f64::max)
        };
        let first_peak = peak(0.0, window);
        let last_peak = peak(duration - window, duration);
        let max = samples.iter().map(f).fold(0.0, f64::max);
        let flat = last_peak <= first_peak * (1.0 + FLAT_TOLERANCE)
            || last_peak - first_peak <= FLAT_SLACK;
        all_flat &= flat;
        println!(
            "{name:<16} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>12.0}  {}",
            f(first),
            f(last),
            max,
            first_peak,
            last_peak,
            if flat {
                "flat".to_string()
            } else {
                format!(
                    "GREW {:+.1}%",
                    (last_peak / first_peak.max(1.0) - 1.0) * 100.0
                )
            }
        );
    }
    println!(
        "requests sent {} (ok {}, aborted by the client {}, refused as asked {}), errors {}, ticks skipped {}, ledger rows lost {}, {:.1} requests/s",
        last.sent,
        last.ok,
        last.aborted,
        last.refused,
        last.errors,
        last.skipped,
        last.ledger_dropped,
        last.sent as f64 / duration.max(1.0)
    );
    println!(
        "verdict: {}",
        if all_flat {
            "FLAT"
        } else {
            "NOT FLAT (see above)"
        }
    );
}
