//! `balance show` on the real binary, with isolated homes and a pre-seeded snapshot store.

mod support;

use codex_helper::balance::snapshot::{Amounts, QuotaPeriod, Reading, Snapshot};
use codex_helper::balance::store;
use codex_helper::ledger::row::LedgerRow;
use codex_helper::time::now_ms;
use serde_json::Value;
use support::cli::{Homes, run};

const HOUR: u64 = 3_600_000;

/// Two relays, one of them with two endpoints; each with a literal key that must never show.
const CONFIG: &str = "version = 5\n\
[codex.providers.monthly]\nbase_url = \"https://m.example/v1\"\nauth_token = \"sk-secret-monthly-0123456789\"\n\
[codex.providers.paygo]\nauth_token = \"sk-secret-paygo-0123456789\"\n\
[codex.providers.paygo.endpoints.main]\nbase_url = \"https://p.example/v1\"\n\
[codex.providers.paygo.endpoints.spare]\nbase_url = \"https://p2.example/v1\"\npriority = 1\n";

fn homes() -> Homes {
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), CONFIG).unwrap();
    homes
}

fn snapshot(reading: Reading, now: u64) -> Snapshot {
    Snapshot::new(
        "new_api",
        "usage_provider:new_api",
        reading,
        true,
        (now - 60_000, now + HOUR),
        None,
    )
}

/// `monthly.default` ok with amounts, `paygo.main` exhausted, `paygo.spare` never looked up.
fn seed_store(homes: &Homes) {
    let now = now_ms();
    let conn = store::open(&homes.helper.path().join("balances.sqlite3")).unwrap();
    let ok = Reading {
        amounts: Amounts {
            total_balance: Some("12.345678901234567".parse().unwrap()),
            quota_period: Some(QuotaPeriod::Daily),
            quota_remaining: Some("3".parse().unwrap()),
            quota_limit: Some("10".parse().unwrap()),
            plan_name: Some("Pro".into()),
            ..Amounts::default()
        },
        exhausted: Some(false),
        ..Reading::default()
    };
    store::save(&conn, "monthly.default", &snapshot(ok, now)).unwrap();
    let empty = Reading {
        amounts: Amounts {
            total_balance: Some("0".parse().unwrap()),
            ..Amounts::default()
        },
        exhausted: Some(true),
        ..Reading::default()
    };
    store::save(&conn, "paygo.main", &snapshot(empty, now)).unwrap();
}

async fn show_json(homes: &Homes, extra: &[&str]) -> Value {
    let mut args = vec!["balance", "show", "--json"];
    args.extend_from_slice(extra);
    let (ok, out) = run(homes, &args).await;
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn no_secret(text: &str) {
    assert!(
        !text.contains("sk-secret"),
        "a configured key was printed:\n{text}"
    );
}

#[tokio::test]
async fn show_reports_each_endpoints_state_and_the_providers_aggregate() {
    let homes = homes();
    seed_store(&homes);
    let shown = show_json(&homes, &[]).await;
    no_secret(&shown.to_string());
    assert_eq!(shown["source"], "store");
    let providers = shown["providers"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = providers
        .iter()
        .map(|p| {
            (
                p["provider"].as_str().unwrap(),
                p["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [("monthly", "ok"), ("paygo", "exhausted")]);

    let monthly = &providers[0]["endpoints"][0];
    assert_eq!(monthly["endpoint"], "monthly.default");
    assert_eq!(monthly["status"], "ok");
    assert_eq!(monthly["snapshot"]["total_balance"], "12.345678901234567");
    assert_eq!(monthly["snapshot"]["plan_name"], "Pro");
    assert_eq!(monthly["routing_exhausted_until_ms"], Value::Null);

    let paygo = providers[1]["endpoints"].as_array().unwrap();
    assert_eq!(paygo[0]["endpoint"], "paygo.main");
    assert_eq!(paygo[0]["status"], "exhausted");
    assert!(paygo[0]["routing_exhausted_until_ms"].as_u64().unwrap() > now_ms());
    assert_eq!(paygo[1]["endpoint"], "paygo.spare");
    assert_eq!(paygo[1]["status"], "unknown");
    assert_eq!(paygo[1]["snapshot"], Value::Null);
    assert_eq!(
        providers[0]["forecast"],
        Value::Null,
        "no ledger, no forecast"
    );

    let (ok, text) = run(&homes, &["balance", "show"]).await;
    assert!(ok, "{text}");
    no_secret(&text);
    assert!(text.contains("monthly  ok"), "{text}");
    assert!(text.contains("balance 12.345678901234567 USD"), "{text}");
    assert!(text.contains("daily quota: 3 USD left of 10 USD"), "{text}");
    assert!(text.contains("paygo  exhausted"), "{text}");
    assert!(text.contains("out of routing for"), "{text}");
    assert!(text.contains("never looked up"), "{text}");

    let only = show_json(&homes, &["--provider", "paygo"]).await;
    assert_eq!(only["providers"].as_array().unwrap().len(), 1);
    assert_eq!(only["providers"][0]["provider"], "paygo");
}

#[tokio::test]
async fn show_without_a_store_lists_every_endpoint_as_unknown_and_creates_nothing() {
    let homes = homes();
    let shown = show_json(&homes, &[]).await;
    let states: Vec<(&str, &str)> = shown["providers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["endpoints"].as_array().unwrap())
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("monthly.default", "unknown"),
            ("paygo.main", "unknown"),
            ("paygo.spare", "unknown")
        ]
    );
    assert!(
        !homes.helper.path().join("balances.sqlite3").exists(),
        "show does not create the store"
    );
    let (ok, text) = run(&homes, &["balance", "show"]).await;
    assert!(ok && text.contains("never looked up"), "{text}");
    no_secret(&text);
}

#[tokio::test]
async fn an_unknown_provider_is_refused_naming_the_known_ones() {
    let homes = homes();
    for command in ["show", "refresh"] {
        let (ok, out) = run(&homes, &["balance", command, "--provider", "nope"]).await;
        assert!(!ok, "{out}");
        assert!(
            out.contains("nope") && out.contains("monthly, paygo"),
            "{command}: {out}"
        );
        no_secret(&out);
    }
}

#[tokio::test]
async fn the_forecast_burns_the_providers_balance_at_its_recent_spend() {
    let homes = homes();
    seed_store(&homes);
    let now = now_ms();
    // $1 an hour on `monthly` over the last four hours; `paygo` spends nothing.
    let rows: Vec<LedgerRow> = (1..=4)
        .map(|i| LedgerRow {
            trace_id: format!("t{i}"),
            started_ms: now - i * HOUR + 60_000,
            method: "POST".into(),
            path: "/v1/responses".into(),
            provider: Some("monthly".into()),
            endpoint: Some("default".into()),
            outcome: "completed".into(),
            attempts_json: "[]".into(),
            total_tokens: Some(1000),
            cost_usd: Some(1.0),
            ..LedgerRow::default()
        })
        .collect();
    let mut conn =
        codex_helper::ledger::store::open(&homes.helper.path().join("ledger.sqlite3")).unwrap();
    codex_helper::ledger::store::insert(&mut conn, &rows).unwrap();
    drop(conn);

    let shown = show_json(&homes, &[]).await;
    let monthly = &shown["providers"][0]["forecast"];
    assert_eq!(monthly["requests"], 4);
    let hours = monthly["hours_until_balance_zero"].as_f64().unwrap();
    assert!((11.0..14.0).contains(&hours), "{monthly}");
    let paygo = &shown["providers"][1]["forecast"];
    assert_eq!(paygo["requests"], 0);
    assert_eq!(paygo["hours_until_balance_zero"], Value::Null);

    let (ok, text) = run(&homes, &["balance", "show", "--provider", "monthly"]).await;
    assert!(ok && text.contains("balance lasts ≈"), "{text}");
}

// ---- against mock relays, with and without a running serve -------------------------------

mod live {
    use super::support::cli::{Homes, LIMIT, run, serve};
    use super::support::mock_relay::MockRelay;
    use super::support::turn;
    use serde_json::{Value, json};

    const KEY_A: &str = "sk-live-a-SECRET-0123456789";
    const KEY_B: &str = "sk-live-b-SECRET-0123456789";

    fn sub2api(remaining: f64) -> String {
        json!({"isValid": true, "mode": "quota_limited", "remaining": remaining,
               "quota": {"limit": 20, "used": 20.0 - remaining, "remaining": remaining}})
        .to_string()
    }

    fn config(a: &MockRelay, b: &MockRelay, balance: &str) -> String {
        format!(
            "version = 5\n[codex.providers.a]\nbase_url = \"{}\"\nauth_token = \"{KEY_A}\"\n\
             [codex.providers.b]\nbase_url = \"{}\"\nauth_token = \"{KEY_B}\"\n\
             [codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"a\", \"b\"]\n\
             [balance]\n{balance}\n",
            a.base_url(),
            b.base_url()
        )
    }

    fn no_key(what: &str, text: &str) {
        for key in [KEY_A, KEY_B] {
            assert!(!text.contains(key), "a configured key in {what}:\n{text}");
        }
    }

    /// Runs a `--json` command: its stdout parsed (stderr shown when it is not JSON).
    async fn json_of(homes: &Homes, args: &[&str]) -> Value {
        let output = tokio::time::timeout(LIMIT, homes.command(args).output())
            .await
            .unwrap()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(output.status.success(), "{stdout}{stderr}");
        no_key(&args.join(" "), &stdout);
        no_key(&args.join(" "), &stderr);
        assert!(
            !stderr.contains("instead"),
            "not from the running serve: {stderr}"
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\nstderr: {stderr}"))
    }

    fn endpoint<'a>(report: &'a Value, name: &str) -> &'a Value {
        report["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["endpoint"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    }

    #[tokio::test]
    async fn balance_commands_reach_the_running_serve_and_its_routing_sees_the_result() {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        a.answer_get("/v1/usage", 200, &sub2api(0.0));
        b.answer_get("/v1/usage", 200, &sub2api(9.0));
        let homes = Homes::new();
        std::fs::write(
            homes.helper_config(),
            config(&a, &b, "refresh_on_start = false"),
        )
        .unwrap();
        let mut served = serve(homes.command(&["serve", "--no-switch"])).await;
        assert!(homes.helper.path().join("state/serve.json").exists());

        let report = json_of(&homes, &["balance", "refresh", "--json"]).await;
        assert_eq!(endpoint(&report, "a.default")["status"], "exhausted");
        assert_eq!(endpoint(&report, "b.default")["status"], "ok");
        assert_eq!(
            a.received()
                .iter()
                .find(|r| r.path_and_query == "/v1/usage")
                .unwrap()
                .headers["authorization"],
            format!("Bearer {KEY_A}").as_str(),
            "the relay's own key"
        );
        assert_eq!(
            turn(&served.url, "one").await,
            "b",
            "the proxy routes around a"
        );
        let (ok, out) = run(&homes, &["routing", "explain"]).await;
        assert!(ok, "{out}");
        assert!(
            out.contains("exhausted (balance: a says none left)"),
            "{out}"
        );

        let shown = json_of(&homes, &["balance", "show", "--json"]).await;
        assert_eq!(shown["source"], "live");

        a.answer_get("/v1/usage", 200, &sub2api(4.0));
        let (ok, out) = run(&homes, &["balance", "refresh", "--provider", "a"]).await;
        assert!(ok, "{out}");
        no_key("balance refresh", &out);
        assert!(out.contains("running codex-helper"), "{out}");
        assert_eq!(turn(&served.url, "two").await, "a", "refilled");

        let pid = served.child.id().unwrap();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = tokio::time::timeout(LIMIT, served.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
        no_key("the serve log", &served.log_so_far());
        assert!(
            !homes.helper.path().join("state/serve.json").exists(),
            "withdrawn at exit"
        );
        let store = std::fs::read(homes.helper.path().join("balances.sqlite3")).unwrap();
        no_key("balances.sqlite3", &String::from_utf8_lossy(&store));
    }

    #[tokio::test]
    async fn balance_refresh_and_show_work_without_a_serve() {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        a.answer_get("/v1/usage", 200, &sub2api(2.5));
        // b's balance APIs fail, echoing the key they were sent.
        let echo = json!({"error": {"message": format!("invalid key {KEY_B}")}}).to_string();
        for path in [
            "/v1/usage",
            "/api/usage/token/",
            "/api/user/self",
            "/user/balance",
        ] {
            b.answer_get(path, 401, &echo);
        }
        let homes = Homes::new();
        std::fs::write(homes.helper_config(), config(&a, &b, "")).unwrap();

        let report = json_of(&homes, &["balance", "refresh", "--json"]).await;
        assert_eq!(
            (report["attempted"].as_u64(), report["failed"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(endpoint(&report, "a.default")["status"], "ok");
        assert_eq!(endpoint(&report, "b.default")["status"], "error");

        let shown = json_of(&homes, &["balance", "show", "--json"]).await;
        assert_eq!(shown["source"], "store");
        let providers = shown["providers"].as_array().unwrap();
        let state =
            |id: &str| providers.iter().find(|p| p["provider"] == id).unwrap()["status"].clone();
        assert_eq!((state("a"), state("b")), (json!("ok"), json!("error")));
        let (ok, out) = run(&homes, &["balance", "show"]).await;
        assert!(ok, "{out}");
        no_key("balance show", &out);
        assert!(out.contains("2.5"), "{out}");
        // b echoed its key: neither the store nor the report keeps it.
        assert!(
            endpoint(&report, "b.default")
                .to_string()
                .contains("[redacted]")
        );
        let store = std::fs::read(homes.helper.path().join("balances.sqlite3")).unwrap();
        no_key("balances.sqlite3", &String::from_utf8_lossy(&store));
    }

    #[tokio::test]
    async fn a_malformed_usage_providers_file_is_reported_and_left_byte_identical() {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        let homes = Homes::new();
        std::fs::write(
            homes.helper_config(),
            config(&a, &b, "refresh_on_start = false"),
        )
        .unwrap();
        let file = homes.helper.path().join("usage_providers.json");
        let broken = "{\r\n  \"providers\": [\r\n    {\"id\": \"x\", \"kind\": \"sub2api_usage\", \"domains\": [\"a.example\"], \"poll_interval_secs\": \"often\"}\r\n  ]\r\n}\r\n";
        std::fs::write(&file, broken).unwrap();

        let mut served = serve(homes.command(&["serve", "--no-switch"])).await;
        let reported = || {
            let log = served.log_so_far();
            log.contains("usage_providers.json:3:") && log.contains("poll_interval_secs")
        };
        for _ in 0..100 {
            if reported() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(reported(), "{}", served.log_so_far());
        let (ok, out) = run(&homes, &["balance", "refresh"]).await;
        assert!(ok, "built-in adapters and discovery still work: {out}");
        assert!(
            out.contains("usage_providers.json:3:") && out.contains("built-in balance adapters"),
            "the command says so too: {out}"
        );
        served.child.kill().await.unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), broken);
    }
}
