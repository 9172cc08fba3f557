//! `codex relay-evidence` on the real binary, reading an evidence log written by hand in the
//! record's shape (so the file format, not only the library's round trip, is what is tested).

mod support;

use serde_json::{Value, json};
use support::cli::{Homes, LIMIT};

/// What a run printed, stdout and stderr apart: `--json` must keep stdout to the array.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `codex relay-evidence` with `extra`, in UTC so the shown times are known.
async fn evidence(homes: &Homes, extra: &[&str]) -> Output {
    let mut args = vec!["codex", "relay-evidence"];
    args.extend_from_slice(extra);
    let mut command = homes.command(&args);
    command.env("TZ", "UTC");
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    Output {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn evidence_json(homes: &Homes, extra: &[&str]) -> (Vec<String>, String) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = evidence(homes, &args).await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let records: Vec<Value> = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON array ({e}):\n{}", out.stdout));
    let ids = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    (ids, out.stderr)
}

/// One record line, as the diagnostics write them.
fn line(id: &str, at_ms: u64, provider: &str, kind: &str, model: Option<&str>) -> String {
    json!({
        "schema_version": 1,
        "id": id,
        "at_ms": at_ms,
        "kind": kind,
        "helper_version": "0.1.0",
        "codex_version": "0.50.0",
        "provider": provider,
        "endpoint": "main",
        "host": format!("{provider}.example"),
        "model": model,
        "payload": {"summary": format!("{kind} run {id}"), "checks": []},
    })
    .to_string()
}

fn logs(homes: &Homes) -> std::path::PathBuf {
    homes.helper.path().join("logs")
}

/// Five records, oldest first: two in the rotated file, three and a bad line in the active one.
fn seed(homes: &Homes) {
    std::fs::create_dir_all(logs(homes)).unwrap();
    let rotated = [
        line("r1", 1_767_225_601_000, "alpha", "capabilities", None),
        line("r2", 1_767_323_045_000, "beta", "live_smoke", Some("gpt-5")),
    ];
    let active = [
        line(
            "r3",
            1_767_326_400_000,
            "alpha",
            "live_smoke",
            Some("gpt-5"),
        ),
        "{\"not\": \"a record\"".to_string(),
        line("r4", 1_767_436_200_000, "beta", "capabilities", None),
        line(
            "r5",
            1_767_571_199_000,
            "alpha",
            "capabilities",
            Some("gpt-5-mini"),
        ),
    ];
    let file = logs(homes).join("codex_relay_evidence.jsonl");
    std::fs::write(
        logs(homes).join("codex_relay_evidence.jsonl.1"),
        rotated.join("\n") + "\n",
    )
    .unwrap();
    std::fs::write(file, active.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn json_lists_records_newest_first_across_files_with_filters_and_a_limit() {
    let homes = Homes::new();
    seed(&homes);

    let (ids, stderr) = evidence_json(&homes, &[]).await;
    assert_eq!(ids, ["r5", "r4", "r3", "r2", "r1"]);
    assert!(
        stderr.contains("1 lines in the log were not readable records and were skipped"),
        "{stderr}"
    );

    let (ids, _) = evidence_json(&homes, &["--provider", "alpha"]).await;
    assert_eq!(ids, ["r5", "r3", "r1"]);
    let (ids, _) = evidence_json(&homes, &["--kind", "live-smoke"]).await;
    assert_eq!(ids, ["r3", "r2"]);
    let (ids, _) = evidence_json(&homes, &["--kind", "live_smoke"]).await;
    assert_eq!(ids, ["r3", "r2"], "the record's own spelling is taken too");
    let (ids, _) = evidence_json(&homes, &["--kind", "capabilities", "--provider", "beta"]).await;
    assert_eq!(ids, ["r4"]);
    let (ids, _) = evidence_json(&homes, &["--limit", "2"]).await;
    assert_eq!(ids, ["r5", "r4"]);
    let (ids, _) = evidence_json(&homes, &["--provider", "alpha", "--limit", "2"]).await;
    assert_eq!(ids, ["r5", "r3"]);
    let (ids, _) = evidence_json(&homes, &["--provider", "gamma"]).await;
    assert!(ids.is_empty());
}

#[tokio::test]
async fn the_human_form_is_one_line_per_record_newest_first() {
    let homes = Homes::new();
    seed(&homes);
    let out = evidence(&homes, &["--limit", "3"]).await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "2026-01-04 23:59:59  capabilities  alpha/main  alpha.example  gpt-5-mini  capabilities run r5",
            "2026-01-03 10:30:00  capabilities  beta/main   beta.example   -           capabilities run r4",
            "2026-01-02 04:00:00  live_smoke    alpha/main  alpha.example  gpt-5       live_smoke run r3",
            "1 lines in the log were not readable records and were skipped",
        ],
        "{}",
        out.stdout
    );

    let out = evidence(&homes, &["--provider", "gamma"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("no evidence matches"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn a_missing_log_is_no_evidence_yet_and_nothing_is_created() {
    let homes = Homes::new();
    let out = evidence(&homes, &[]).await;
    assert!(out.ok, "{}", out.stderr);
    let path = logs(&homes).join("codex_relay_evidence.jsonl");
    assert_eq!(
        out.stdout.trim_end(),
        format!("no evidence yet ({})", path.display())
    );
    let out = evidence(&homes, &["--provider", "alpha"]).await;
    assert!(
        out.stdout.starts_with("no evidence yet"),
        "a filter over nothing is still nothing yet: {}",
        out.stdout
    );

    let (ids, stderr) = evidence_json(&homes, &[]).await;
    assert!(ids.is_empty() && stderr.is_empty(), "{stderr}");
    assert!(!logs(&homes).exists(), "reading created the logs folder");
}

#[tokio::test]
async fn an_unknown_kind_is_refused_naming_the_kinds() {
    let homes = Homes::new();
    let out = evidence(&homes, &["--kind", "smoke"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("capabilities") && out.stderr.contains("live-smoke"),
        "{}",
        out.stderr
    );
}
