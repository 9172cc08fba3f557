//! The ledger in PostgreSQL (`[ledger] url`) against a real PostgreSQL on loopback (started by
//! the test): a real `serve` writes its rows there and `usage` reads them back (by provider and
//! by member); rows wait in the spool while the database is away and land once when it is back
//! (also after a restart), and `doctor` says so; `usage reprice` rewrites stored costs and
//! rollups in step; `usage import --from-sqlite` copies a SQLite ledger once; a password in the
//! URL never shows.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use codex_helper::ledger::row::LedgerRow;
use support::cli::{Homes, Served, serve};
use support::mock_relay::{MockRelay, USAGE};
use support::team_services::Postgres;

/// Any password is accepted (the test server trusts loopback); it must never be shown.
const PASSWORD: &str = "ledger-pw-5e2c91";
const LEDGER_ENV: &str = "LEDGER_DB_URL";
const RELAY_KEY: &str = "relay-upstream-secret-ledger-3b8a";

/// A new database on the shared server, and its URL with a password in it.
fn database(name: &str) -> (&'static Postgres, String, String) {
    let pg = Postgres::shared().expect("a PostgreSQL for the test (scripts/test installs it)");
    let plain = pg.create_database(name).unwrap();
    let with_password = plain.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    (pg, plain, with_password)
}

fn config(relay: &MockRelay, extra: &str) -> String {
    format!(
        "version = 5\n[ledger]\nurl = \"env:{LEDGER_ENV}\"\n{extra}\n\
         [codex.providers.relay]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n",
        relay.base_url()
    )
}

/// `codex-helper ARGS` with the ledger's URL in the environment: success, stdout, stderr.
async fn run(homes: &Homes, ledger_url: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = homes.command(args);
    command
        .env(LEDGER_ENV, ledger_url)
        .env("CODEX_HELPER_DATABASE_URL", ledger_url);
    let output = tokio::time::timeout(support::cli::LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        !out.contains(PASSWORD) && !err.contains(PASSWORD),
        "{args:?} showed the password:\n{out}{err}"
    );
    (output.status.success(), out, err)
}

async fn json_of(homes: &Homes, ledger_url: &str, args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = run(homes, ledger_url, args).await;
    assert!(ok, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

async fn start_serve(homes: &Homes, ledger_url: &str, args: &[&str]) -> Served {
    let mut command = homes.command(args);
    command
        .env(LEDGER_ENV, ledger_url)
        .env("CODEX_HELPER_DATABASE_URL", ledger_url)
        .env("RELAY_KEY", RELAY_KEY);
    serve(command).await
}

/// One `/v1/responses` turn, with a member's key when given; the status.
async fn turn(base: &str, key: Option<&str>) -> u16 {
    let mut request = support::client()
        .post(format!("{base}/v1/responses"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"model": "gpt-5.1", "input": "hi", "stream": false}).to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status().as_u16()
}

/// The summary row keyed `key`, from `usage summary --json`.
fn row_of<'a>(summary: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    summary["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row `{key}` in {summary}"))
}

/// How many rows the ledger's database holds, and the rollups' request total (none before the
/// writer first reached it and made its tables).
fn counts(pg: &Postgres, url: &str) -> (u64, u64) {
    let out = match pg.psql(
        url,
        "SELECT (SELECT COUNT(*) FROM codex_helper_requests), (SELECT COALESCE(SUM(requests), 0) FROM codex_helper_usage_rollup)",
    ) {
        Ok(out) => out,
        Err(e) if format!("{e:#}").contains("does not exist") => return (0, 0),
        Err(e) => panic!("{e:#}"),
    };
    let mut parts = out.trim().split('|').map(|n| n.parse::<u64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// Polls `check` every 100 ms until it holds (bounded).
async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_serve_writes_its_ledger_to_postgres_and_usage_reads_it_by_provider_and_user() {
    let (pg, plain, url) = database("ledger_team_serve");
    let relay = MockRelay::start("relay").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        config(&relay, "[team]\nkey_refresh_ms = 200\n"),
    )
    .unwrap();
    let mut keys = Vec::new();
    for name in ["ana", "bo"] {
        let added = json_of(&homes, &url, &["keys", "add", name, "--json"]).await;
        keys.push(added["key"].as_str().unwrap().to_string());
    }
    let served = start_serve(&homes, &url, &["serve", "--team", "--no-switch"]).await;
    for (key, turns) in keys.iter().zip([3, 2]) {
        for _ in 0..turns {
            assert_eq!(turn(&served.url, Some(key)).await, 200);
        }
    }
    // While it serves, `usage` asks it (its admin API reads PostgreSQL).
    let mut live = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        live = json_of(
            &homes,
            &url,
            &["usage", "summary", "--by", "user", "--json"],
        )
        .await;
        if live["total"]["requests"] == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(live["source"], "live");
    assert_eq!(row_of(&live, "ana")["requests"], 3, "{live}");
    // The console's charts read the same rows, by window and provider, and a month by days.
    let api = homes.admin_base();
    for (query, want) in [
        ("window=1h", 5),
        ("window=24h&provider=relay", 5),
        ("window=1h&provider=other", 0),
        ("window=30d", 5),
    ] {
        let (status, series, _) =
            support::cli::admin_call("GET", &format!("{api}/request-ledger/series?{query}"), None)
                .await;
        assert_eq!(status, 200, "{query}: {series}");
        let buckets = series["buckets"].as_array().unwrap();
        let requests: u64 = buckets
            .iter()
            .map(|b| b["requests"].as_u64().unwrap())
            .sum();
        assert_eq!(requests, want, "{query}: {series}");
        if want > 0 {
            assert!(
                buckets
                    .iter()
                    .any(|b| b["latency_p50_ms"].as_f64().is_some()),
                "{query}: {series}"
            );
        }
    }
    let log = served.log_so_far();
    served.stop().await;
    assert!(
        !log.contains(PASSWORD),
        "the serve's log showed the password:\n{log}"
    );
    assert!(
        log.contains("127.0.0.1:"),
        "the log says where the ledger is:\n{log}"
    );
    assert!(
        !homes.helper.path().join("ledger.sqlite3").exists(),
        "no SQLite ledger"
    );
    assert_eq!(counts(pg, &plain), (5, 5));

    // Stopped: `usage` reads PostgreSQL itself, and answers the same.
    let (input, cached, output, _, total) = USAGE;
    let by_user = json_of(
        &homes,
        &url,
        &["usage", "summary", "--by", "user", "--json"],
    )
    .await;
    assert_eq!(by_user["source"], "file");
    for (name, n) in [("ana", 3), ("bo", 2)] {
        let row = row_of(&by_user, name);
        assert_eq!(row["requests"], n, "{by_user}");
        assert_eq!(row["errors"], 0);
        assert_eq!(row["input_tokens"], input * n);
        assert_eq!(row["cached_input_tokens"], cached * n);
        assert_eq!(row["output_tokens"], output * n);
        assert_eq!(row["total_tokens"], total * n);
    }
    let by_provider = json_of(
        &homes,
        &url,
        &["usage", "summary", "--by", "provider", "--json"],
    )
    .await;
    assert_eq!(
        by_provider["rows"].as_array().unwrap().len(),
        1,
        "{by_provider}"
    );
    assert_eq!(row_of(&by_provider, "relay")["requests"], 5);
    assert_eq!(row_of(&by_provider, "relay")["total_tokens"], total * 5);
    assert_eq!(
        by_provider["forecast"]["requests"], 5,
        "the last hour's burn: {by_provider}"
    );
    for by in ["model", "day", "session"] {
        let summary = json_of(&homes, &url, &["usage", "summary", "--by", by, "--json"]).await;
        assert_eq!(summary["total"]["requests"], 5, "--by {by}: {summary}");
    }
    let (ok, text, err) = run(&homes, &url, &["usage", "summary", "--by", "user"]).await;
    assert!(
        ok && text.contains("ana") && text.contains("bo"),
        "{text}{err}"
    );

    // The request listing and one request's chain.
    let (ok, found, err) = run(
        &homes,
        &url,
        &["usage", "find", "--provider", "relay", "--json"],
    )
    .await;
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = found
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == 200 && l["provider"] == "relay")
    );
    let trace = lines[0]["trace_id"].as_str().unwrap();
    let chain = json_of(
        &homes,
        &url,
        &["usage", "chain", "--trace-id", trace, "--json"],
    )
    .await;
    assert_eq!(chain["trace_id"], trace);
    assert_eq!(chain["attempts"].as_array().unwrap().len(), 1, "{chain}");
    let (ok, _, err) = run(
        &homes,
        &url,
        &["usage", "chain", "--trace-id", "no-such-trace"],
    )
    .await;
    assert!(!ok && err.contains("no request with trace id"), "{err}");

    // A price changed afterwards reaches the stored rows and the rollups in step.
    let cost_by = |summary: &serde_json::Value| summary["total"]["cost_usd"].as_f64().unwrap();
    let by_model = ["usage", "summary", "--by", "model", "--json"];
    let before = cost_by(&json_of(&homes, &url, &by_model).await);
    std::fs::write(
        homes.helper.path().join("pricing_overrides.toml"),
        "[models.\"gpt-5.1\"]\ninput_per_1m_usd = 100\ncached_input_per_1m_usd = 10\noutput_per_1m_usd = 1000\n",
    )
    .unwrap();
    let dry = json_of(&homes, &url, &["usage", "reprice", "--dry-run", "--json"]).await;
    assert_eq!(
        (dry["rows"].as_u64(), dry["changed"].as_u64()),
        (Some(5), Some(5)),
        "{dry}"
    );
    assert_eq!(
        cost_by(&json_of(&homes, &url, &by_model).await),
        before,
        "a dry run changes nothing"
    );
    let done = json_of(
        &homes,
        &url,
        &["usage", "reprice", "--model", "GPT-5.1", "--json"],
    )
    .await;
    assert_eq!(
        (done["rows"].as_u64(), done["changed"].as_u64()),
        (Some(5), Some(5)),
        "{done}"
    );
    // 200 uncached at 100, 1,000 cached at 10, 5 out at 1,000 per million, five times.
    let want = 5.0 * (200.0 * 100.0 + 1000.0 * 10.0 + 5.0 * 1000.0) / 1e6;
    let after = done["cost_after_usd"].as_f64().unwrap();
    assert!((after - want).abs() < 1e-9, "{done}");
    for by in ["model", "provider", "user", "session"] {
        let summary = json_of(&homes, &url, &["usage", "summary", "--by", by, "--json"]).await;
        assert!(
            (cost_by(&summary) - want).abs() < 1e-9,
            "--by {by}: {summary}"
        );
    }
    let sums = pg
        .psql(&plain, "SELECT (SELECT SUM(cost_usd) FROM codex_helper_requests)::TEXT || ' ' || (SELECT SUM(cost_usd) FROM codex_helper_usage_rollup)::TEXT")
        .unwrap();
    let sums: Vec<f64> = sums
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        (sums[0] - want).abs() < 1e-9 && (sums[1] - want).abs() < 1e-9,
        "{sums:?}"
    );
    let again = json_of(&homes, &url, &["usage", "reprice", "--json"]).await;
    assert_eq!(again["changed"], 0, "{again}");
    let (ok, text, err) = run(&homes, &url, &["usage", "reprice", "--since", "2h"]).await;
    assert!(ok && text.contains("Changed 0 of 5"), "{text}{err}");
    // Member keys never reach the ledger.
    let stored = pg.psql(&plain, "SELECT string_agg(attempts_json || COALESCE(decision_json, ''), '') FROM codex_helper_requests").unwrap();
    for key in &keys {
        assert!(!stored.contains(key.as_str()));
    }
}

/// A TCP forwarder to PostgreSQL that can be cut: while down, connections are refused (closed
/// at once) and the open ones are ended.
struct Cable {
    port: u16,
    up: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Cable {
    async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(false));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (is_up, cut) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_up.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let mut cut = cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
        }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// `url` through this forwarder.
    fn url(&self, url: &str, pg: &Postgres) -> String {
        url.replace(&format!(":{}/", pg.port()), &format!(":{}/", self.port))
    }
}

/// `doctor --json --offline`'s findings.
async fn doctor_findings(homes: &Homes, url: &str) -> Vec<serde_json::Value> {
    let (_, out, err) = run(homes, url, &["doctor", "--json", "--offline"]).await;
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}{err}"));
    report["findings"].as_array().cloned().unwrap_or_default()
}

fn finding<'a>(findings: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    findings
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {findings:?}"))
}

fn spool_lines(homes: &Homes) -> Option<usize> {
    std::fs::read_to_string(homes.helper.path().join("state/ledger-spool.jsonl"))
        .ok()
        .map(|text| text.lines().count())
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_wait_in_the_spool_while_the_database_is_away_and_land_once_when_it_returns() {
    let (pg, plain, direct) = database("ledger_spool");
    let cable = Cable::start(pg.port()).await;
    let url = cable.url(&direct, pg);
    let relay = MockRelay::start("relay").await;
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), config(&relay, "")).unwrap();

    // Away from the start: the serve still serves, the rows wait on disk.
    let served = start_serve(&homes, &url, &["serve", "--no-switch"]).await;
    for _ in 0..3 {
        assert_eq!(turn(&served.url, None).await, 200);
    }
    eventually("3 rows spooled", Duration::from_secs(20), || {
        spool_lines(&homes) == Some(3)
    })
    .await;
    let spool = homes.helper.path().join("state/ledger-spool.jsonl");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&spool).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(counts(pg, &plain), (0, 0));
    // The admin API still answers: the console's snapshot without the usage it cannot read, the
    // summary with the database's error.
    let api = homes.admin_base();
    let (status, snapshot, text) =
        support::cli::admin_call("GET", &format!("{api}/snapshot"), None).await;
    assert_eq!(status, 200, "{snapshot}");
    assert!(snapshot["usage"].is_null(), "{snapshot}");
    assert_eq!(
        snapshot["runtime"]["ledger"]["spooled"], 3,
        "the rows waiting on disk: {snapshot}"
    );
    assert!(!text.contains(PASSWORD));
    let (status, _, text) =
        support::cli::admin_call("GET", &format!("{api}/request-ledger/summary"), None).await;
    assert!(
        status >= 500 && text.contains("ledger database") && !text.contains(PASSWORD),
        "{status} {text}"
    );

    // `doctor` says the database cannot be read and how many rows wait.
    let findings = doctor_findings(&homes, &url).await;
    let down = finding(&findings, "ledger.unreachable");
    assert_eq!(down["severity"], "error", "{down}");
    let spooled = finding(&findings, "ledger.spooled");
    assert!(
        spooled["message"]
            .as_str()
            .unwrap()
            .starts_with("3 request records"),
        "{spooled}"
    );

    // Back: the spool is replayed, in order, and removed; new rows follow.
    cable.set(true);
    eventually("the spool replayed", Duration::from_secs(30), || {
        counts(pg, &plain) == (3, 3)
    })
    .await;
    eventually("the spool removed", Duration::from_secs(10), || {
        !spool.exists()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(turn(&served.url, None).await, 200);
    }
    eventually("new rows written", Duration::from_secs(20), || {
        counts(pg, &plain) == (5, 5)
    })
    .await;
    let findings = doctor_findings(&homes, &url).await;
    let reachable = finding(&findings, "ledger.postgres");
    assert!(
        reachable["message"].as_str().unwrap().contains(" s ago"),
        "{reachable}"
    );
    assert!(
        !findings
            .iter()
            .any(|f| f["id"] == "ledger.spooled" || f["id"] == "ledger.unreachable"),
        "{findings:?}"
    );
    let order = pg
        .psql(
            &plain,
            "SELECT string_agg(started_ms::TEXT, ',' ORDER BY id) FROM codex_helper_requests",
        )
        .unwrap();
    let started: Vec<u64> = order
        .trim()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        started.windows(2).all(|w| w[0] <= w[1]),
        "written in order: {started:?}"
    );

    // Away again, and stopped while away: the spool outlives the process.
    cable.set(false);
    for _ in 0..2 {
        assert_eq!(turn(&served.url, None).await, 200);
    }
    let log = served.log_so_far();
    served.stop().await;
    assert_eq!(
        spool_lines(&homes),
        Some(2),
        "the rows left at the stop wait on disk"
    );
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(log.contains("spool"), "the outage is logged:\n{log}");

    // The next start replays them, once.
    cable.set(true);
    let served = start_serve(&homes, &url, &["serve", "--no-switch"]).await;
    eventually("the left spool replayed", Duration::from_secs(30), || {
        counts(pg, &plain) == (7, 7)
    })
    .await;
    eventually("the spool removed", Duration::from_secs(10), || {
        !spool.exists()
    })
    .await;
    served.stop().await;
    assert_eq!(counts(pg, &plain), (7, 7), "every row exactly once");
    let summary = json_of(&homes, &url, &["usage", "summary", "--json"]).await;
    assert_eq!(row_of(&summary, "relay")["requests"], 7);
}

fn sqlite_row(i: u64, user: &str) -> LedgerRow {
    LedgerRow {
        trace_id: format!("imported-{i}"),
        started_ms: codex_helper::time::now_ms() - 60_000 + i,
        method: "POST".into(),
        path: "/v1/responses".into(),
        provider: Some("old-relay".into()),
        model_sent: Some("gpt-5".into()),
        status: Some(200),
        outcome: "completed".into(),
        attempts_json: "[]".into(),
        input_tokens: Some(100),
        cached_input_tokens: Some(40),
        output_tokens: Some(10),
        total_tokens: Some(110),
        cost_usd: Some(0.01),
        duration_ms: 12.0,
        user: Some(user.into()),
        ..LedgerRow::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn import_from_sqlite_copies_a_ledger_once() {
    let (pg, plain, url) = database("ledger_import");
    let relay = MockRelay::start("relay").await;
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), config(&relay, "")).unwrap();
    let sqlite = homes.helper.path().join("old-ledger.sqlite3");
    {
        let mut conn = codex_helper::ledger::store::open(&sqlite).unwrap();
        let rows: Vec<_> = (0..450)
            .map(|i| sqlite_row(i, if i % 3 == 0 { "ana" } else { "bo" }))
            .collect();
        codex_helper::ledger::store::insert(&mut conn, &rows).unwrap();
    }
    let path = sqlite.to_str().unwrap();
    let first = json_of(
        &homes,
        &url,
        &["usage", "import", "--from-sqlite", path, "--json"],
    )
    .await;
    assert_eq!(
        (
            first["rows"].as_u64(),
            first["copied"].as_u64(),
            first["already_present"].as_u64()
        ),
        (Some(450), Some(450), Some(0)),
        "{first}"
    );
    let again = json_of(
        &homes,
        &url,
        &["usage", "import", "--from-sqlite", path, "--json"],
    )
    .await;
    assert_eq!(
        (again["copied"].as_u64(), again["already_present"].as_u64()),
        (Some(0), Some(450)),
        "{again}"
    );
    assert_eq!(counts(pg, &plain), (450, 450));
    let (ok, text, err) = run(&homes, &url, &["usage", "import", "--from-sqlite", path]).await;
    assert!(
        ok && text.contains("0 copied") && text.contains("450 already there"),
        "{text}{err}"
    );
    let by_user = json_of(
        &homes,
        &url,
        &["usage", "summary", "--by", "user", "--json"],
    )
    .await;
    assert_eq!(row_of(&by_user, "ana")["requests"], 150);
    assert_eq!(row_of(&by_user, "bo")["requests"], 300);
    assert_eq!(row_of(&by_user, "bo")["cached_input_tokens"], 40 * 300);

    // Without [ledger] url there is nowhere to copy to.
    let plain_homes = Homes::new();
    let (ok, _, err) = run(
        &plain_homes,
        &url,
        &["usage", "import", "--from-sqlite", path],
    )
    .await;
    assert!(!ok && err.contains("[ledger] url"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_ledger_url_stops_serve_naming_the_key_and_never_the_password() {
    let relay = MockRelay::start("relay").await;
    let homes = Homes::new();
    let bad = format!(
        "version = 5\n[ledger]\nurl = \"mysql://u:{PASSWORD}@h/d\"\n[codex.providers.relay]\nbase_url = \"{}\"\n",
        relay.base_url()
    );
    std::fs::write(homes.helper_config(), bad).unwrap();
    let (ok, out, err) = run(
        &homes,
        "",
        &["serve", "--no-tui", "--no-switch", "--port", "0"],
    )
    .await;
    assert!(
        !ok && err.contains("ledger.url") && err.contains("env:VAR"),
        "{out}{err}"
    );
    // env:VAR with the variable unset: said before serving.
    std::fs::write(homes.helper_config(), config(&relay, "")).unwrap();
    let mut command = homes.command(&["serve", "--no-tui", "--no-switch", "--port", "0"]);
    command.env_remove(LEDGER_ENV);
    let (ok, err) = support::cli::run_to_end(command).await;
    assert!(
        !ok && err.contains(&format!("{LEDGER_ENV} is not set")),
        "{err}"
    );
}
