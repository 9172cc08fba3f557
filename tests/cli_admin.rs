//! The admin API of a real running `serve`: every route in its OpenAPI document answers as
//! documented, the ledger and runtime routes see what the proxy did, the diagnostics run
//! through it (the acknowledgement refused with nothing sent), no configured key in any
//! answer, and `POST /runtime/shutdown` stops the helper.

mod support;

use serde_json::{Value, json};
use support::capable_relay::{CapableRelay, Profile};
use support::cli::{Homes, serve};

const KEY: &str = "sk-admin-test-4c1d9e7f2a6b8c3d5e0f";

fn runtime_pid(homes: &Homes) -> Value {
    let running: Value = serde_json::from_str(
        &std::fs::read_to_string(homes.helper.path().join("state/serve.json")).unwrap(),
    )
    .unwrap();
    running["pid"].clone()
}

use support::cli::admin_call as call;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_and_sees_the_running_proxy() {
    let relay = CapableRelay::start(Profile::full(KEY)).await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.providers.main]\nbase_url = \"{}\"\nauth_token = \"{KEY}\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let mut served = serve(homes.command(&["serve", "--no-switch"])).await;
    let base = homes.admin_base();

    // One request through the proxy, for the ledger.
    let reply = support::client()
        .post(format!("{}/v1/responses", served.url))
        .header("content-type", "application/json")
        .header("session-id", "thread-admin")
        .body(json!({"model": "gpt-5.1", "input": "hi", "stream": false}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);

    // The ledger writes on its own thread: wait (bounded) for the row.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let trace_id = loop {
        let (_, recent, _) = call("GET", &format!("{base}/request-ledger/recent"), None).await;
        if let Some(row) = recent["requests"].as_array().and_then(|r| r.first()) {
            break row["trace_id"].as_str().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ledger row: {recent}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    let (status, doc, _) = call("GET", &format!("{base}/openapi.json"), None).await;
    assert_eq!(status, 200);
    let (_, capabilities, _) = call("GET", &format!("{base}/capabilities"), None).await;
    let listed: Vec<(String, String)> = capabilities["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut documented = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        documented, sorted,
        "the document and /capabilities list the same routes"
    );

    // Every documented route answers (shutdown last, on its own).
    let mut answers = std::collections::HashMap::new();
    for (method, path) in &documented {
        if path.ends_with("/runtime/shutdown") {
            continue;
        }
        let body = match path.rsplit('/').next().unwrap() {
            "relay-capabilities" => Some(json!({"timeout_secs": 5})),
            "relay-live-smoke" => Some(json!({"model": "gpt-5.1"})),
            _ if method == "POST" => Some(json!({})),
            _ => None,
        };
        // A documented path parameter gets the session and request the request above made.
        let path = &path
            .replace("{id}", "thread-admin")
            .replace("{trace_id}", &trace_id);
        let url = format!(
            "http://{}{path}",
            base.trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap()
        );
        // The one route that is not JSON: the Prometheus text format (`tests/metrics.rs`).
        if path.ends_with("/metrics") {
            let reply = support::client().get(&url).send().await.unwrap();
            assert_eq!(reply.status(), 200, "{path}");
            let text = reply.text().await.unwrap();
            assert!(text.contains("codex_helper_requests_total{"), "{text}");
            assert!(
                !text.contains(KEY),
                "{method} {path} answered the relay's key"
            );
            continue;
        }
        let (status, answer, text) = call(method, &url, body).await;
        assert!(
            status != 404 && status != 405,
            "{method} {path}: {status} {text}"
        );
        assert!(
            !text.contains(KEY),
            "{method} {path} answered the relay's key"
        );
        answers.insert(
            path.rsplit("/api/v1").next().unwrap().to_string(),
            (status, answer),
        );
    }

    let (status, snapshot) = &answers["/snapshot"];
    assert_eq!(*status, 200, "{snapshot}");
    let finished = &snapshot["recent"][0];
    assert_eq!(finished["model_requested"], "gpt-5.1");
    assert_eq!(finished["model_sent"], "gpt-5.1");
    assert_eq!(finished["provider"], "main");
    assert_eq!(finished["status"], 200);
    assert_eq!(finished["session"], "thread-admin");
    assert!(
        snapshot["active"].as_array().unwrap().is_empty(),
        "nothing in flight: {snapshot}"
    );
    assert_eq!(snapshot["endpoints"][0]["key"], "main.default");
    assert_eq!(snapshot["usage"]["last_24h"]["requests"], 1);
    assert_eq!(snapshot["sessions"][0]["session"], "thread-admin");
    assert_eq!(snapshot["runtime"]["pid"], runtime_pid(&homes));

    let (status, forecast) = &answers["/usage/forecast"];
    assert_eq!(*status, 200, "{forecast}");
    assert_eq!(forecast["providers"][0]["provider"], "main");
    assert_eq!(
        forecast["providers"][0]["forecast"]["requests"], 1,
        "the forecast counts the one request: {forecast}"
    );

    let (status, sessions) = &answers["/sessions"];
    assert_eq!(*status, 200, "{sessions}");
    let listed = &sessions["sessions"][0];
    assert_eq!(listed["session"], "thread-admin");
    assert_eq!(listed["upstream"], "main.default");
    assert_eq!(listed["requests_24h"], 1, "{sessions}");
    let (status, one) = &answers["/sessions/thread-admin"];
    assert_eq!(*status, 200, "{one}");
    assert_eq!(one["binding"]["upstream"], "main.default");
    assert_eq!(one["next"]["chosen"], "main.default");
    assert_eq!(one["next"]["why"], "affinity", "{one}");
    assert_eq!(one["requests"].as_array().unwrap().len(), 1);
    let (status, _, _) = call("GET", &format!("{base}/sessions/nobody"), None).await;
    assert_eq!(status, 404);

    let (status, runtime) = &answers["/runtime/status"];
    assert_eq!(*status, 200);
    assert_eq!(runtime["endpoints"], json!(["main.default"]));
    assert_eq!(runtime["proxy"], served.url.trim_end_matches('/'));
    // The admin API's own connection is a task on a serving event loop, at least.
    assert!(
        runtime["tasks"].as_u64().is_some_and(|n| n >= 1),
        "{runtime}"
    );
    let (_, providers) = &answers["/providers"];
    assert_eq!(providers["providers"][0]["key"], "main.default");
    assert_eq!(providers["providers"][0]["routable"], true);

    let (status, recent) = &answers["/request-ledger/recent"];
    assert_eq!(*status, 200, "{recent}");
    let rows = recent["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{recent}");
    assert_eq!(rows[0]["provider"], "main");
    assert_eq!(rows[0]["model_requested"], "gpt-5.1");
    assert_eq!(rows[0]["model_sent"], "gpt-5.1");
    assert_eq!(rows[0]["path"], "/v1/responses");
    let (status, series) = &answers["/request-ledger/series"];
    assert_eq!(*status, 200, "{series}");
    let buckets = series["buckets"].as_array().unwrap();
    assert_eq!((series["window"].as_str(), buckets.len()), (Some("1h"), 60));
    assert_eq!(buckets.last().unwrap()["requests"], 1, "{series}");
    let (status, chain) = &answers[&format!("/request-ledger/chain/{trace_id}")];
    assert_eq!(*status, 200, "{chain}");
    assert_eq!(chain["trace_id"], trace_id.as_str());
    assert_eq!(chain["status"], 200);
    assert_eq!(
        chain["attempts"].as_array().map(Vec::len),
        Some(1),
        "{chain}"
    );
    let (status, missing, _) =
        call("GET", &format!("{base}/request-ledger/chain/nope"), None).await;
    assert_eq!(status, 404, "{missing}");
    let (status, bad, _) = call(
        "GET",
        &format!("{base}/request-ledger/series?window=7d"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    // 30 days as the caller's own midnights: its buckets are those days, the request in the last.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let day = 86_400_000;
    let next = (now / day + 1) * day + 3_600_000; // a zone an hour off UTC
    let days: Vec<String> = (0..=30)
        .rev()
        .map(|back| (next - back * day).to_string())
        .collect();
    let (status, month, _) = call(
        "GET",
        &format!(
            "{base}/request-ledger/series?window=30d&day_starts={}",
            days.join(",")
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{month}");
    let buckets = month["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 30, "{month}");
    assert_eq!(buckets[0]["start_ms"], next - 30 * day);
    assert_eq!(buckets[29]["end_ms"], next);
    let in_days: u64 = buckets
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(in_days, 1, "{month}");
    for (query, says) in [
        (
            format!("window=30d&day_starts={}", days[1..].join(",")),
            "takes 31",
        ),
        (format!("window=1h&day_starts={}", days.join(",")), "30d"),
        ("window=30d&day_starts=1,x".to_string(), "comma-separated"),
    ] {
        let (status, bad, _) = call(
            "GET",
            &format!("{base}/request-ledger/series?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {bad}");
        assert!(
            bad["error"]["message"].as_str().unwrap().contains(says),
            "{query}: {bad}"
        );
    }
    let (_, summary) = &answers["/request-ledger/summary"];
    assert_eq!(summary["total"]["requests"], 1, "{summary}");
    assert_eq!(summary["by"], "provider");
    assert_eq!(summary["forecast"]["requests"], 1, "{summary}");
    let (status, routing) = &answers["/routing"];
    assert_eq!(*status, 200, "{routing}");
    assert_eq!(routing["entry"], "(all providers)");
    assert_eq!(routing["upstreams"][0]["key"], "main.default");
    assert_eq!(routing["upstreams"][0]["state"]["routable"], true);

    let (status, capabilities_run) = &answers["/codex/relay-capabilities"];
    assert_eq!(*status, 200, "{capabilities_run}");
    assert_eq!(
        capabilities_run["endpoints"][0]["recommendation"]["preset"],
        "official-relay"
    );
    let (status, refused) = &answers["/codex/relay-live-smoke"];
    assert_eq!(*status, 400);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was sent")
    );
    assert!(
        !relay
            .seen()
            .iter()
            .any(|s| s.body.get("model").is_some_and(|m| m == "gpt-5.1")
                && s.path == "/v1/responses/compact"),
        "no live case ran"
    );
    // Asked again: the loop read the evidence before the capabilities run wrote its record.
    let (_, evidence, _) = call("GET", &format!("{base}/codex/relay-evidence"), None).await;
    let records = evidence["records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        1,
        "the capabilities run's record: {evidence}"
    );
    assert_eq!(records[0]["kind"], "capabilities");
    let (_, reloaded) = &answers["/runtime/reload"];
    assert_eq!(reloaded["reloaded"], true, "{reloaded}");

    // Mistakes: an unknown parameter, a bad value.
    let (status, error, _) = call(
        "GET",
        &format!("{base}/request-ledger/recent?colour=red"),
        None,
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, error, _) = call(
        "GET",
        &format!("{base}/request-ledger/summary?by=planet"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("day or user") && message.contains("planet"),
        "{error}"
    );

    // A runtime switch, seen live by `routing explain` (which asks the running proxy).
    let off =
        json!({"provider_id": "main", "enabled": false, "minutes": 5, "reason": "maintenance"});
    let (status, changed, _) = call("POST", &format!("{base}/providers/runtime"), Some(off)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["changed"], json!(["main.default"]));
    let explain = |args: &'static [&'static str]| {
        let homes = &homes;
        async move {
            let out = tokio::time::timeout(support::cli::LIMIT, homes.command(args).output())
                .await
                .unwrap()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let explained: Value = serde_json::from_str(
        &explain(&["routing", "explain", "--model", "gpt-5.1", "--json"]).await,
    )
    .unwrap();
    assert_eq!(
        explained["candidates"][0]["skip"]["kind"], "runtime_disabled",
        "{explained}"
    );
    assert_eq!(explained["chosen"], Value::Null);
    let human = explain(&["routing", "explain"]).await;
    assert!(human.contains("maintenance"), "{human}");
    assert!(
        human.contains("(live: from the running codex-helper"),
        "{human}"
    );
    let on = json!({"provider_id": "main", "enabled": true});
    let (status, _, _) = call("POST", &format!("{base}/providers/runtime"), Some(on)).await;
    assert_eq!(status, 200);
    let (_, providers, _) = call("GET", &format!("{base}/providers"), None).await;
    assert_eq!(providers["providers"][0]["routable"], true);
    let (status, _, _) = call(
        "POST",
        &format!("{base}/providers/runtime"),
        Some(json!({"provider_id": "nope", "enabled": false})),
    )
    .await;
    assert_eq!(status, 404);

    // `status` reads the same API.
    let out = tokio::time::timeout(
        support::cli::LIMIT,
        homes.command(&["status", "--json"]).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status_json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status_json["running"], true);
    assert_eq!(status_json["providers"][0]["key"], "main.default");
    assert_eq!(status_json["usage_24h"]["total"]["requests"], 1);

    let (status, stopping, _) = call("POST", &format!("{base}/runtime/shutdown"), None).await;
    assert_eq!((status, &stopping["shutting_down"]), (200, &json!(true)));
    let exited = tokio::time::timeout(std::time::Duration::from_secs(15), served.child.wait())
        .await
        .expect("the helper stops")
        .unwrap();
    assert!(exited.success());
    let out = tokio::time::timeout(support::cli::LIMIT, homes.command(&["status"]).output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("codex-helper is not running."), "{text}");
    assert!(text.contains("main.default"), "{text}");
}

#[tokio::test]
async fn an_admin_api_open_to_the_network_needs_its_token() {
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        "version = 5\n[codex.providers.main]\nbase_url = \"http://127.0.0.1:9/v1\"\nauth_token = \"k-0123456789\"\n",
    )
    .unwrap();
    let mut command = homes.command(&[
        "serve",
        "--no-switch",
        "--no-tui",
        "--port",
        "0",
        "--admin-host",
        "0.0.0.0",
    ]);
    command.env_remove("CODEX_HELPER_ADMIN_TOKEN");
    let out = tokio::time::timeout(support::cli::LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CODEX_HELPER_ADMIN_TOKEN"), "{stderr}");

    let mut short = homes.command(&[
        "serve",
        "--no-switch",
        "--no-tui",
        "--port",
        "0",
        "--admin-host",
        "0.0.0.0",
    ]);
    short.env("CODEX_HELPER_ADMIN_TOKEN", "short");
    let out = tokio::time::timeout(support::cli::LIMIT, short.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_in_the_snapshot() {
    let relay = CapableRelay::start(Profile {
        stall: true,
        ..Profile::full(KEY)
    })
    .await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.providers.main]\nbase_url = \"{}\"\nauth_token = \"{KEY}\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let base = homes.admin_base();
    let url = format!("{}/v1/responses", served.url);
    let pending = tokio::spawn(async move {
        let _ = support::client()
            .post(url)
            .header("content-type", "application/json")
            .header("session-id", "thread-waiting")
            .body(json!({"model": "gpt-5.1", "input": "hi", "stream": true}).to_string())
            .send()
            .await;
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // A request is in the snapshot from its arrival, and announced again once its body has
    // been read (session and model known): wait for that, not for the first sighting (on a
    // loaded machine the poll can fall between the two).
    let active = loop {
        let (_, snapshot, _) = call("GET", &format!("{base}/snapshot"), None).await;
        if let Some(first) = snapshot["active"].as_array().and_then(|a| a.first())
            && !first["session"].is_null()
        {
            break first.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never in flight: {snapshot}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(active["path"], "/v1/responses");
    assert_eq!(active["session"], "thread-waiting");
    assert_eq!(active["model_requested"], "gpt-5.1");
    assert_eq!(active["streaming"], true);
    pending.abort();
    drop(served);
}

/// A streaming turn of `session` through the proxy at `url`; the relay's text.
async fn turn(url: &str, session: &str) -> String {
    support::client()
        .post(format!("{url}/v1/responses"))
        .header("accept", "text/event-stream")
        .header("session-id", session)
        .body(json!({"model": "gpt-5.1", "input": "hi", "stream": true}).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A command's stdout; it must succeed.
async fn stdout(homes: &Homes, args: &[&str]) -> String {
    let out = tokio::time::timeout(support::cli::LIMIT, homes.command(args).output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_and_persisted_switches_go_through_the_api() {
    let first = support::mock_relay::MockRelay::start("first").await;
    let second = support::mock_relay::MockRelay::start("second").await;
    let homes = Homes::new();
    let first_line = format!("base_url = \"{}\"   # the cheap one\n", first.base_url());
    let config = format!(
        "# my relays — keep this comment\nversion = 5\n\n[ui]   # not acted on, kept\ntheme = \"dark\"\n\n[codex.providers.first]\nauth_token = \"{KEY}\"\n{first_line}\n[codex.providers.second]\nbase_url = \"{}\"\n\n[codex.routing]\nentry = \"main\"\n\n[codex.routing.routes.main]\nchildren = [\"first\", \"second\"]   # first first\nmetadata = {{ owner = \"me\" }}\n",
        second.base_url()
    );
    std::fs::write(homes.helper_config(), &config).unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let base = homes.admin_base();
    let runtime = format!("{base}/providers/runtime");

    // The graph in force.
    let (status, routing, text) = call("GET", &format!("{base}/routing"), None).await;
    assert_eq!(status, 200, "{routing}");
    assert!(!text.contains(KEY), "no key: {text}");
    assert_eq!(routing["entry"], "main");
    assert_eq!(routing["affinity_policy"], "fallback-sticky");
    assert_eq!(routing["nodes"][0]["name"], "main");
    assert_eq!(routing["nodes"][0]["strategy"], "ordered-failover");
    assert_eq!(routing["nodes"][0]["children"][0]["kind"], "provider");
    assert_eq!(
        routing["nodes"][0]["children"][0]["endpoints"],
        json!(["first.default"])
    );
    let upstream = &routing["upstreams"][0];
    assert_eq!(upstream["key"], "first.default");
    assert_eq!(upstream["host"], "127.0.0.1");
    assert_eq!(upstream["state"]["routable"], true, "{upstream}");

    assert!(turn(&served.url, "bound").await.contains("hi from first"));

    // Draining: the bound thread stays, a new one goes to the other relay.
    let drain = json!({"provider_id": "first", "state": "draining", "reason": "emptying"});
    let (status, drained, _) = call("POST", &runtime, Some(drain)).await;
    assert_eq!(status, 200, "{drained}");
    assert_eq!(
        (&drained["changed"], &drained["state"]),
        (&json!(["first.default"]), &json!("draining"))
    );
    let (_, routing, _) = call("GET", &format!("{base}/routing"), None).await;
    let state = &routing["upstreams"][0]["state"];
    assert_eq!(
        state["runtime"]["draining"]["reason"], "emptying",
        "{state}"
    );
    assert_eq!(state["skip"]["detail"]["kind"], "draining");
    let (_, providers, _) = call("GET", &format!("{base}/providers"), None).await;
    assert_eq!(
        providers["providers"][0]["skip"]["detail"]["kind"],
        "draining"
    );
    let new: Value =
        serde_json::from_str(&stdout(&homes, &["routing", "explain", "--json"]).await).unwrap();
    assert_eq!(new["candidates"][0]["skip"]["kind"], "draining", "{new}");
    assert_eq!(new["chosen"], "second.default");
    let human = stdout(&homes, &["routing", "explain"]).await;
    assert!(
        human.contains("draining (no new sessions): emptying"),
        "{human}"
    );
    let kept: Value = serde_json::from_str(
        &stdout(
            &homes,
            &["routing", "explain", "--session", "bound", "--json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(kept["chosen"], "first.default", "{kept}");
    assert!(turn(&served.url, "bound").await.contains("hi from first"));
    assert!(turn(&served.url, "new").await.contains("hi from second"));

    // The ledger's route decision names the reason.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let trace = loop {
        let (_, recent, _) = call(
            "GET",
            &format!("{base}/request-ledger/recent?session=new"),
            None,
        )
        .await;
        if let Some(trace) = recent["requests"][0]["trace_id"].as_str() {
            break trace.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no row: {recent}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let chain: Value = serde_json::from_str(
        &stdout(&homes, &["usage", "chain", "--trace-id", &trace, "--json"]).await,
    )
    .unwrap();
    assert_eq!(
        chain["decision"]["candidates"][0]["skip"]["kind"], "draining",
        "{chain}"
    );

    let (status, normal, _) = call(
        "POST",
        &runtime,
        Some(json!({"provider_id": "first", "state": "normal"})),
    )
    .await;
    assert_eq!((status, &normal["state"]), (200, &json!("normal")));
    assert!(turn(&served.url, "fresh").await.contains("hi from first"));

    // Persisted: written into the file with every other byte kept, and in force at once.
    let off = json!({"provider_id": "first", "enabled": false, "persist": true});
    let (status, persisted, text) = call("POST", &runtime, Some(off)).await;
    assert_eq!(status, 200, "{persisted}");
    assert!(!text.contains(KEY));
    assert_eq!(persisted["persisted"]["target"], "first");
    assert_eq!(persisted["in_force"], json!([]));
    let written = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert_eq!(
        written,
        config.replace(&first_line, &format!("{first_line}enabled = false\n"))
    );
    let (_, routing, _) = call("GET", &format!("{base}/routing"), None).await;
    let keys: Vec<&str> = routing["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["second.default"], "{routing}");
    assert_eq!(
        routing["nodes"][0]["children"][0]["endpoints"],
        json!([]),
        "a disabled provider has no endpoint in force"
    );
    assert!(turn(&served.url, "after").await.contains("hi from second"));
    let on = json!({"provider_id": "first", "enabled": true, "persist": true});
    let (status, _, _) = call("POST", &runtime, Some(on)).await;
    assert_eq!(status, 200);
    assert_eq!(
        std::fs::read_to_string(homes.helper_config()).unwrap(),
        config,
        "on again: the file as it was, byte for byte"
    );

    // A hand edit the running helper has not taken (here: one it cannot) is never written over.
    let edited = format!("{config}[bogus]\nx = 1\n");
    std::fs::write(homes.helper_config(), &edited).unwrap();
    let off = json!({"provider_id": "first", "enabled": false, "persist": true});
    let (status, refused, _) = call("POST", &runtime, Some(off.clone())).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "conflict");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changed on disk since it was loaded; reload first (POST /runtime/reload)"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read_to_string(homes.helper_config()).unwrap(),
        edited,
        "the file is untouched"
    );
    // Mistakes are named: draining is not persisted; an unknown endpoint is not there.
    let (status, _, _) = call(
        "POST",
        &runtime,
        Some(json!({"provider_id": "first", "state": "draining", "persist": true})),
    )
    .await;
    assert_eq!(status, 400);
    std::fs::write(homes.helper_config(), &config).unwrap();
    let (_, reloaded, _) = call("POST", &format!("{base}/runtime/reload"), None).await;
    assert_eq!(reloaded["reloaded"], true, "{reloaded}");
    let (status, missing, _) = call(
        "POST",
        &runtime,
        Some(json!({"provider_id": "second", "endpoint_id": "eu", "enabled": false, "persist": true})),
    )
    .await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(
        std::fs::read_to_string(homes.helper_config()).unwrap(),
        config
    );
}

/// The console's other config writes: the default profile and the entry node, with the same
/// editor (comments and unknown keys kept), checked before they are written, refused over a
/// file changed on disk, and in force as soon as they answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_profile_and_the_entry_node_are_written_through_the_api() {
    let first = support::mock_relay::MockRelay::start("first").await;
    let second = support::mock_relay::MockRelay::start("second").await;
    let homes = Homes::new();
    let config = format!(
        "# keep me\nversion = 5\n[ui]\ntheme = \"dark\"\n\
         [codex.profiles.deep]   # the slow one\nreasoning_effort = \"xhigh\"\n\
         [codex.providers.first]\nbase_url = \"{}\"\n[codex.providers.second]\nbase_url = \"{}\"\n\
         [codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"first\", \"second\"]\n",
        first.base_url(),
        second.base_url()
    );
    std::fs::write(homes.helper_config(), &config).unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let base = homes.admin_base();
    let file = || std::fs::read_to_string(homes.helper_config()).unwrap();
    let profile_url = format!("{base}/profiles/default/persisted");
    let routing_url = format!("{base}/routing/persisted");

    let (status, set, _) = call("POST", &profile_url, Some(json!({"profile": "deep"}))).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["default_profile"], "deep");
    let (_, profiles, _) = call("GET", &format!("{base}/profiles"), None).await;
    assert_eq!(profiles["default_profile"], "deep", "in force at once");
    let written = file();
    assert!(written.contains("default_profile = \"deep\""), "{written}");
    assert!(
        written.starts_with("# keep me\nversion = 5\n[ui]\ntheme = \"dark\"\n")
            && written.contains("[codex.profiles.deep]   # the slow one\n"),
        "{written}"
    );
    // An unknown profile is refused before anything is written.
    let (status, refused, _) = call("POST", &profile_url, Some(json!({"profile": "fast"}))).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("default_profile"),
        "{refused}"
    );
    assert_eq!(file(), written);
    let (status, _, _) = call("POST", &profile_url, Some(json!({"profile": null}))).await;
    assert_eq!(status, 200);
    assert_eq!(file(), config, "removed: the file as it was");

    // The entry node: reorder, and the next new session goes to the new first child.
    let order = json!({"order": ["second", "first"]});
    let (status, ordered, _) = call("POST", &routing_url, Some(order)).await;
    assert_eq!(status, 200, "{ordered}");
    assert_eq!(ordered["entry"], "main");
    assert!(
        file().contains("children = [\"second\", \"first\"]"),
        "{}",
        file()
    );
    assert!(
        turn(&served.url, "new-session")
            .await
            .contains("hi from second")
    );
    let (status, pinned, _) = call("POST", &routing_url, Some(json!({"pin": "first"}))).await;
    assert_eq!(status, 200, "{pinned}");
    let (_, routing, _) = call("GET", &format!("{base}/routing"), None).await;
    assert_eq!(
        routing["nodes"][0]["strategy"], "manual-sticky",
        "{routing}"
    );
    // A child that does not exist is refused by the same check `serve` makes.
    let before = file();
    let (status, refused, _) = call("POST", &routing_url, Some(json!({"order": ["ghost"]}))).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ghost"),
        "{refused}"
    );
    let (status, refused, _) = call("POST", &routing_url, Some(json!({}))).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(file(), before);

    // A hand edit not yet taken is never written over.
    let edited = format!("{before}[bogus]\nx = 1\n");
    std::fs::write(homes.helper_config(), &edited).unwrap();
    let (status, refused, _) = call("POST", &routing_url, Some(json!({"order": ["first"]}))).await;
    assert_eq!(status, 409, "{refused}");
    let (status, _, _) = call("POST", &profile_url, Some(json!({"profile": "deep"}))).await;
    assert_eq!(status, 409);
    assert_eq!(file(), edited);
}
