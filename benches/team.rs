//! What team mode adds to a request: `serve --team` (the member key checked, state shared
//! through Redis, its ledger in PostgreSQL) next to a single `serve` and the direct path to
//! the same mock upstream, measured in the same run, interleaved: latency p50/p99 at
//! concurrency 1 (JSON and SSE), then requests per second and latency p50/p99 at
//! concurrency 32.
//!
//! Starts its own PostgreSQL and Redis on loopback (Debian's `postgresql` and `redis-server`,
//! as the tests do: `tests/support/team_services.rs`), two team instances sharing them (the
//! second only takes part in the shared state; requests go to the first), and the real
//! binary. Run with `cargo bench --bench team`. Loopback only; every loop is bounded.

mod common;
#[allow(dead_code)]
#[path = "../tests/support/team_services.rs"]
mod team_services;

use std::time::{Duration, Instant};

use bytes::Bytes;

use common::ProxyProcess;
use common::load::{
    BenchClient, CONCURRENT, Target, codex_like_body, row_ms, send, start_upstream, throughput,
};
use team_services::{Postgres, Redis};

const SEQUENTIAL: usize = 1000;
const BODY_BYTES: usize = 20 * 1024;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binary: std::ffi::OsString = env!("CARGO_BIN_EXE_codex-helper").into();
    let (postgres, redis) = tokio::task::spawn_blocking(|| {
        (
            Postgres::start().expect("PostgreSQL"),
            Redis::start().expect("Redis"),
        )
    })
    .await
    .unwrap();
    let database = postgres.url();
    let upstream = start_upstream().addr;
    let relay =
        format!("version = 5\n[codex.providers.bench]\nbase_url = \"http://{upstream}/v1\"\n");
    let team_config = format!(
        "{relay}[team]\nredis_url = \"redis://127.0.0.1:{}/0\"\n[ledger]\nurl = \"env:CODEX_HELPER_DATABASE_URL\"\n",
        redis.port()
    );
    let env = [("CODEX_HELPER_DATABASE_URL", database.as_str())];
    let single = ProxyProcess::start(&relay, binary.clone());
    let team = ProxyProcess::start_with(&team_config, binary.clone(), &["--team"], &env);
    let _second = ProxyProcess::start_with(&team_config, binary.clone(), &["--team"], &env);
    let key = add_member(&binary, team.home(), &database);

    let client = common::load::client();
    let targets = [
        (
            "direct",
            Target::new(format!("http://{upstream}/v1/responses")),
        ),
        (
            "single",
            Target::new(format!("http://{}/v1/responses", single.addr)),
        ),
        (
            "team",
            Target {
                url: format!("http://{}/v1/responses", team.addr),
                key,
            },
        ),
    ];
    let body = Bytes::from(codex_like_body(BODY_BYTES));
    wait_until_served(&client, &targets[2].1, &body).await;
    for _ in 0..200 {
        for (_, target) in &targets {
            send(&client, target, &body, false).await;
        }
    }

    println!(
        "codex-helper team mode over single mode: {} KiB request body, loopback; PostgreSQL and Redis on loopback\n",
        BODY_BYTES / 1024
    );
    print!("{:<36}", "");
    for (name, _) in &targets {
        print!(" {name:>14}");
    }
    println!();
    for (label, sse) in [("JSON", false), ("SSE", true)] {
        let mut totals = vec![Vec::new(); targets.len()];
        for i in 0..SEQUENTIAL {
            for k in 0..targets.len() {
                let index = (i + k) % targets.len();
                totals[index].push(send(&client, &targets[index].1, &body, sse).await.total);
            }
        }
        for (q, name) in [(0.50, "p50"), (0.99, "p99")] {
            row_ms(&format!("{label} latency {name}, c=1"), &mut totals, q);
        }
    }
    for (label, sse) in [("JSON", false), ("SSE", true)] {
        let mut rps = Vec::new();
        let mut latencies = Vec::new();
        for (_, target) in &targets {
            let run = throughput(&client, target, &body, sse).await;
            rps.push(run.rps);
            latencies.push(run.latencies);
        }
        print!("{:<36}", format!("{label} requests/s, c={CONCURRENT}"));
        for value in &rps {
            print!(" {value:>14.0}");
        }
        println!();
        for (q, name) in [(0.50, "p50"), (0.99, "p99")] {
            row_ms(
                &format!("{label} latency {name}, c={CONCURRENT}"),
                &mut latencies,
                q,
            );
        }
    }
    println!("\nLatency rows: the direct path in ms, then what each proxy adds to it.");
    drop((postgres, redis));
}

/// `keys add bench` against the team's database: the member key requests carry.
fn add_member(binary: &std::ffi::OsString, home: &std::path::Path, database: &str) -> String {
    let out = std::process::Command::new(binary)
        .args(["keys", "add", "bench", "--json"])
        .env("CODEX_HELPER_HOME", home)
        .env("CODEX_HELPER_DATABASE_URL", database)
        .output()
        .expect("run keys add");
    assert!(
        out.status.success(),
        "keys add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    added["key"].as_str().unwrap().to_string()
}

/// Waits (bounded) until the team instance has read the keys and answers a request.
async fn wait_until_served(client: &BenchClient, target: &Target, body: &Bytes) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let probe = Target {
        url: target.url.replace("/v1/responses", "/readyz"),
        key: target.key.clone(),
    };
    while Instant::now() < deadline {
        let request = http::Request::get(&probe.url)
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        if client
            .request(request)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(client, target, body, false).await;
}
