//! Ledger figures: how fast the writer stores rows, and how long `usage summary --by model`
//! takes over one million rows. Run with `cargo bench --bench ledger`. Uses a temporary folder.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use codex_helper::config::model::LedgerSettings;
use codex_helper::ledger::Ledger;
use codex_helper::ledger::pricing::PriceBook;
use codex_helper::ledger::query::{self, GroupBy};
use codex_helper::ledger::row::LedgerRow;
use codex_helper::ledger::store;
use codex_helper::proxy::Outcome;
use codex_helper::proxy::record::{Attempt, AttemptOutcome, RequestRecord};
use codex_helper::record::usage::Usage;

const ROWS: u64 = 1_000_000;
const SINK_ROWS: u64 = 50_000;
const MODELS: [&str; 6] = [
    "gpt-5.1",
    "gpt-5.1-codex",
    "gpt-5.4",
    "gpt-5.4-mini",
    "gpt-5.5",
    "o3",
];
const PROVIDERS: [&str; 4] = ["monthly", "backup", "paygo", "spare"];

fn main() {
    let dir = tempfile::tempdir().unwrap();

    // 1. The writer, fed through the proxy's sink, as requests finish.
    let path = dir.path().join("sink.sqlite3");
    let ledger = Ledger::start(&path, LedgerSettings::default(), PriceBook::built_in()).unwrap();
    let sink = ledger.sink();
    let started = Instant::now();
    let mut record = RequestRecord::new(String::new(), "POST".into(), "/v1/responses".into());
    record.usage = Some(Usage {
        input_tokens: 12_000,
        cached_input_tokens: 10_000,
        output_tokens: 300,
        reasoning_tokens: 120,
        total_tokens: 12_300,
    });
    record.attempts.push(Attempt {
        provider: "monthly".into(),
        endpoint: "default".into(),
        outcome: AttemptOutcome::Responded { status: 200 },
        duration_ms: 900,
    });
    let mut handoff = Duration::ZERO;
    for i in 0..SINK_ROWS {
        record.trace_id = format!("bench-{i}");
        record.model_sent = Some(MODELS[i as usize % MODELS.len()].to_string());
        // The proxy hands over the finished record it already shares.
        let finished = std::sync::Arc::new(record.clone());
        let t = Instant::now();
        sink.record(&finished, Outcome::Completed);
        handoff += t.elapsed();
        // Pace the producer like a (very) busy proxy so the queue is not the limit.
        if i % 4096 == 4095 {
            ledger.flush();
        }
    }
    ledger.flush();
    let elapsed = started.elapsed();
    let stats = ledger.stats();
    println!(
        "writer: {} rows in {:.2} s = {:.0} rows/s written; proxy-side hand-off {:.2} µs/row; lost {}",
        stats.written.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        SINK_ROWS as f64 / elapsed.as_secs_f64(),
        handoff.as_secs_f64() * 1e6 / SINK_ROWS as f64,
        stats.lost()
    );
    drop(ledger);

    // 2. One million rows over 30 days, then the summary.
    let path = dir.path().join("big.sqlite3");
    let mut conn = store::open(&path).unwrap();
    let now = codex_helper::time::now_ms();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..ROWS {
        batch.push(LedgerRow {
            trace_id: format!("gen-{i}"),
            started_ms: now - (ROWS - i) * 2_592, // 30 days
            session_id: Some(format!("session-{}", i % 5_000)),
            method: "POST".into(),
            path: "/v1/responses".into(),
            streaming: true,
            model_requested: Some(MODELS[i as usize % MODELS.len()].into()),
            model_sent: Some(MODELS[i as usize % MODELS.len()].into()),
            provider: Some(PROVIDERS[i as usize % PROVIDERS.len()].into()),
            endpoint: Some("default".into()),
            status: Some(if i % 50 == 0 { 502 } else { 200 }),
            outcome: "completed".into(),
            attempts_json: r#"[{"provider":"monthly","endpoint":"default","outcome":"responded","status":200,"duration_ms":900}]"#.into(),
            decision_json: Some(r#"{"graph_key":"g1:0000000000000000","chosen":"monthly.default","why":"affinity"}"#.into()),
            input_tokens: Some(12_000),
            cached_input_tokens: Some(10_000),
            output_tokens: Some(300),
            reasoning_tokens: Some(120),
            total_tokens: Some(12_300),
            ttfb_ms: Some(350.0),
            duration_ms: 2_000.0,
            bytes_in: 40_000,
            bytes_out: 9_000,
            cost_usd: Some(0.004),
            price_source: Some("built-in".into()),
            ..Default::default()
        });
        if batch.len() == 10_000 {
            store::insert(&mut conn, &batch).unwrap();
            batch.clear();
        }
    }
    let fill = started.elapsed();
    drop(conn);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "bulk insert: {ROWS} rows in {:.1} s ({:.0} rows/s), database {:.0} MiB",
        fill.as_secs_f64(),
        ROWS as f64 / fill.as_secs_f64(),
        size as f64 / 1048576.0
    );

    let conn = store::open_read_only(&path).unwrap();
    for (label, since) in [("all 30 days", 0), ("last 24 h", now - 86_400_000)] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let rows = query::summary(&conn, since, GroupBy::Model).unwrap();
            times.push(t.elapsed());
            assert_eq!(rows.len(), MODELS.len());
        }
        times.sort();
        println!(
            "usage summary --by model, {label}: median {:.0} ms (min {:.0}, max {:.0}) over 5 runs",
            times[2].as_secs_f64() * 1000.0,
            times[0].as_secs_f64() * 1000.0,
            times[4].as_secs_f64() * 1000.0
        );
    }
}
