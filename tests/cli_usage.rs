//! `usage` and `pricing` commands on the real binary, against a ledger the real proxy wrote.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use support::cli::{Homes, run, serve};
use support::client;
use support::mock_relay::MockRelay;

async fn turn(url: &str, session: &str) {
    client()
        .post(format!("{url}/v1/responses"))
        .header("accept", "text/event-stream")
        .header("session-id", session)
        .body(r#"{"model":"gpt-5.1","stream":true,"input":"hi"}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
}

/// Stops `serve` with SIGTERM and waits for it (it flushes the ledger on the way out).
async fn stop(served: &mut support::cli::Served) {
    let pid = served.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(support::cli::LIMIT, served.child.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn usage_commands_report_what_the_proxy_recorded() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.providers.monthly]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let (ok, out) = run(&homes, &["usage", "summary"]).await;
    assert!(ok && out.contains("No requests recorded yet"), "{out}");

    let mut served = serve(homes.command(&["serve"])).await;
    turn(&served.url, "s1").await;
    turn(&served.url, "s2").await;
    stop(&mut served).await;

    let (ok, out) = run(&homes, &["usage", "summary", "--by", "model"]).await;
    assert!(ok, "{out}");
    let model_line = out
        .lines()
        .find(|l| l.starts_with("gpt-5.1"))
        .unwrap_or_else(|| panic!("{out}"));
    let fields: Vec<&str> = model_line.split_whitespace().collect();
    assert_eq!(
        (fields[1], fields[2]),
        ("2", "0"),
        "2 requests, 0 errors: {model_line}"
    );
    assert!(model_line.contains("83.3%"), "cache hit rate: {model_line}");
    assert!(out.contains("Last hour:"), "{out}");

    let (_, out) = run(
        &homes,
        &[
            "usage",
            "summary",
            "--json",
            "--since",
            "7d",
            "--balance",
            "10",
        ],
    )
    .await;
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["total"]["requests"], 2);
    assert_eq!(summary["rows"][0]["key"], "monthly");
    assert!(summary["forecast"]["cost_per_hour_usd"].as_f64().unwrap() > 0.0);

    let (_, out) = run(&homes, &["usage", "tail", "--limit", "1", "--json"]).await;
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["session_id"], "s2");
    let trace = line["trace_id"].as_str().unwrap().to_string();

    let (_, out) = run(&homes, &["usage", "find", "--session", "s1"]).await;
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("monthly/default") && out.contains("completed"),
        "{out}"
    );
    let (_, out) = run(&homes, &["usage", "find", "--errors"]).await;
    assert!(out.contains("No matching requests"), "{out}");

    let (ok, out) = run(&homes, &["usage", "chain", "--trace-id", &trace]).await;
    assert!(
        ok && out.contains("attempt 1: monthly/default responded HTTP 200"),
        "{out}"
    );
    assert!(out.contains("route: chosen monthly.default"), "{out}");
    let (ok, out) = run(&homes, &["usage", "chain", "--trace-id", "nope"]).await;
    assert!(
        !ok && out.contains("no request with trace id nope"),
        "{out}"
    );

    let (ok, out) = run(&homes, &["pricing", "list"]).await;
    assert!(
        ok && out
            .lines()
            .any(|l| l.starts_with("gpt-5.1 ") && l.contains("1.250")),
        "{out}"
    );
}

#[tokio::test]
async fn with_a_running_helper_usage_and_switch_status_answer_from_it() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.providers.monthly]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let json = |out: &str| -> serde_json::Value {
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let mut served = serve(homes.command(&["serve"])).await;
    turn(&served.url, "live-1").await;
    // The ledger writes on its own thread: wait (bounded) for the row, read through the API.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let (ok, out) = run(&homes, &["usage", "tail", "--limit", "1", "--json"]).await;
        assert!(ok, "{out}");
        if !out.trim().is_empty() && !out.contains("No requests recorded yet") {
            break json(&out);
        }
        assert!(std::time::Instant::now() < deadline, "no row: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(line["session_id"], "live-1");
    assert_eq!(line["source"], "live", "{line}");

    let (ok, out) = run(&homes, &["usage", "summary", "--json", "--by", "session"]).await;
    assert!(ok, "{out}");
    let summary = json(&out);
    assert_eq!(summary["source"], "live");
    assert_eq!(summary["by"], "session");
    assert_eq!(summary["rows"][0]["key"], "live-1");
    assert_eq!(summary["total"]["requests"], 1);
    let (_, out) = run(&homes, &["usage", "summary"]).await;
    assert!(
        out.contains("(live: from the running codex-helper, pid"),
        "{out}"
    );
    let (_, out) = run(&homes, &["usage", "find", "--session", "live-1"]).await;
    assert!(out.contains("monthly/default"), "{out}");
    assert!(
        out.contains("(live: from the running codex-helper"),
        "{out}"
    );

    let (ok, out) = run(&homes, &["switch", "status", "--json"]).await;
    assert!(ok, "{out}");
    let status = json(&out);
    assert_eq!(status["source"], "live", "{status}");
    assert_eq!(status["running"]["proxy"], served.url.trim_end_matches('/'));
    assert_eq!(status["running"]["codex_points_here"], true, "{status}");
    assert_eq!(status["running"]["preset"], status["preset"]);
    let (_, out) = run(&homes, &["switch", "status"]).await;
    assert!(out.contains("Running codex-helper (live, pid"), "{out}");
    assert!(out.contains("Codex points at it"), "{out}");

    stop(&mut served).await;
    let (ok, out) = run(&homes, &["usage", "summary", "--json", "--by", "session"]).await;
    assert!(ok, "{out}");
    let summary = json(&out);
    assert_eq!(summary["source"], "file");
    assert_eq!(summary["total"]["requests"], 1);
    let (_, out) = run(&homes, &["usage", "tail", "--limit", "1", "--json"]).await;
    assert_eq!(json(&out)["source"], "file");
    let (_, out) = run(&homes, &["usage", "summary"]).await;
    assert!(!out.contains("(live:"), "{out}");
    let (ok, out) = run(&homes, &["switch", "status", "--json"]).await;
    assert!(ok, "{out}");
    let status = json(&out);
    assert_eq!(status["source"], "files");
    assert_eq!(status["running"], serde_json::Value::Null);
}

#[tokio::test]
async fn import_is_idempotent() {
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), "version = 5\n").unwrap();
    let logs = homes.helper.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("requests.jsonl"),
        "{\"timestamp_ms\":1764300000000,\"request_id\":1,\"trace_id\":\"codex-1\",\"status_code\":200,\"provider_id\":\"old\",\"model\":\"gpt-5.1\",\"usage\":{\"input_tokens\":10,\"output_tokens\":2,\"total_tokens\":12}}\n\
         {\"timestamp_ms\":1764300005000,\"request_id\":2,\"trace_id\":\"codex-2\",\"status_code\":502}\nbroken line\n",
    )
    .unwrap();
    let (ok, out) = run(&homes, &["usage", "import"]).await;
    assert!(
        ok && out.contains("Read 3 records")
            && out.contains("(1 invalid lines skipped): 2 imported, 0 already"),
        "{out}"
    );
    let (_, out) = run(&homes, &["usage", "import", "--json"]).await;
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            report["imported"].as_u64(),
            report["already_present"].as_u64()
        ),
        (Some(0), Some(2))
    );
    let (_, out) = run(
        &homes,
        &["usage", "summary", "--since", "2025-01-01", "--json"],
    )
    .await;
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            summary["total"]["requests"].as_u64(),
            summary["total"]["errors"].as_u64()
        ),
        (Some(2), Some(1))
    );
}

#[tokio::test]
async fn killing_the_proxy_mid_write_leaves_a_readable_ledger() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.providers.r]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let mut served = serve(homes.command(&["serve"])).await;
    // A bounded burst: 208 requests, 16 at a time, with the process killed while it runs.
    let url = served.url.clone();
    let answered = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let answered = answered.clone();
        async move {
            let mut tasks = Vec::new();
            for worker in 0..16 {
                let url = url.clone();
                let answered = answered.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..13 {
                        let session = format!("w{worker}-{i}");
                        if tokio::time::timeout(Duration::from_secs(5), turn(&url, &session))
                            .await
                            .is_ok()
                        {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    });
    // Killed once some requests were answered (and their batch had time to commit), while
    // the rest are in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while answered.load(Ordering::Relaxed) < 16 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    served.child.kill().await.unwrap(); // SIGKILL: no clean shutdown
    let _ = tokio::time::timeout(Duration::from_secs(30), load).await;

    let path = homes.helper.path().join("ledger.sqlite3");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (ok, out) = run(&homes, &["usage", "summary", "--json"]).await;
    assert!(ok, "{out}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    // 16 workers × 13 requests were sent; the kill loses the last batch at most.
    let rows = summary["total"]["requests"].as_u64().unwrap();
    assert!(
        (1..=16 * 13).contains(&rows),
        "{rows} rows for 208 requests sent"
    );
}
