//! The request ledger with a real proxy and mock relays: one row per request, pricing,
//! retention, and a writer that survives a locked or full database.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use codex_helper::config::model::LedgerSettings;
use codex_helper::ledger::Ledger;
use codex_helper::ledger::pricing::PriceBook;
use codex_helper::ledger::query::{self, Filter, GroupBy};
use codex_helper::ledger::row::LedgerRow;
use codex_helper::ledger::store;
use rusqlite::Connection;
use support::mock_relay::{Fault, MockRelay, USAGE};
use support::{TestProxy, codex_body, providers};

const LIMIT: Duration = Duration::from_secs(30);

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("test exceeded its time bound")
}

fn client() -> reqwest::Client {
    codex_helper::proxy::install_tls_provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn turn(proxy: &TestProxy, model: &str, session: &str) -> String {
    client()
        .post(proxy.url("/v1/responses"))
        .header("accept", "text/event-stream")
        .header("session-id", session)
        .header("thread-id", format!("{session}-thread"))
        .body(codex_body(model, session, 1000))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    ledger: Ledger,
}

fn ledger(settings: LedgerSettings, prices: PriceBook) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let ledger = Ledger::start(&path, settings, prices).unwrap();
    Setup {
        _dir: dir,
        path,
        ledger,
    }
}

fn rows(path: &std::path::Path) -> Vec<serde_json::Value> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT trace_id, preset, session_id, session_source, thread_id, client, method, path, streaming, model_requested, model_sent, model_answered, provider, endpoint, status, outcome, error_class, attempts_json, decision_json, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens, ttfb_ms, duration_ms, bytes_in, bytes_out, cost_usd, price_source FROM requests ORDER BY id")
        .unwrap();
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    stmt.query_map([], |r| {
        let mut obj = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            let v: rusqlite::types::Value = r.get(i)?;
            obj.insert(
                name.clone(),
                match v {
                    rusqlite::types::Value::Null => serde_json::Value::Null,
                    rusqlite::types::Value::Integer(n) => n.into(),
                    rusqlite::types::Value::Real(f) => f.into(),
                    rusqlite::types::Value::Text(t) => t.into(),
                    rusqlite::types::Value::Blob(_) => serde_json::Value::Null,
                },
            );
        }
        Ok(serde_json::Value::Object(obj))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test]
async fn each_request_is_one_row_with_its_fields() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let setup = ledger(LedgerSettings::default(), PriceBook::built_in());
        let config = format!(
            "{}[codex.providers.second.model_mapping]\n\"gpt-5\" = \"gpt-5.4\"\n[retry]\nprofile = \"aggressive-failover\"\n",
            providers(&[("first", &first.base_url()), ("second", &second.base_url())])
        );
        let proxy = TestProxy::start_with_sink(&config, &[], Some(setup.ledger.sink())).await;
        proxy.codex.set_preset(Some(codex_helper::codex::preset::Preset::OfficialRelay));

        // 1: streamed, served by the first relay.
        turn(&proxy, "gpt-5.1", "s1").await;
        // 2: not streamed.
        client().post(proxy.url("/v1/responses")).json(&serde_json::json!({"model":"gpt-5.1","input":"hi"})).send().await.unwrap().text().await.unwrap();
        // 3: the first relay fails; two attempts; the second relay maps the model.
        first.push(Fault::status(502));
        turn(&proxy, "gpt-5", "s3").await;
        // 4: a stream that breaks after output (on the second relay: the first is cooling down).
        second.push(Fault::ResetMidStream { after_events: 4 });
        turn(&proxy, "gpt-5.1", "s4").await;
        proxy.records.wait_for(4).await;
        setup.ledger.flush();

        let rows = rows(&setup.path);
        assert_eq!(rows.len(), 4, "exactly one row per request");
        let r = &rows[0];
        assert_eq!(r["preset"], "official-relay");
        assert_eq!((r["session_id"].as_str(), r["session_source"].as_str(), r["thread_id"].as_str()), (Some("s1"), Some("header:session-id"), Some("s1-thread")));
        assert_eq!((r["method"].as_str(), r["path"].as_str(), r["streaming"].as_i64()), (Some("POST"), Some("/v1/responses"), Some(1)));
        assert_eq!((r["model_requested"].as_str(), r["model_sent"].as_str(), r["model_answered"].as_str()), (Some("gpt-5.1"), Some("gpt-5.1"), Some("gpt-5.1")));
        assert_eq!((r["provider"].as_str(), r["endpoint"].as_str(), r["status"].as_i64(), r["outcome"].as_str()), (Some("first"), Some("default"), Some(200), Some("completed")));
        let (input, cached, output, reasoning, total) = USAGE;
        assert_eq!(
            [&r["input_tokens"], &r["cached_input_tokens"], &r["output_tokens"], &r["reasoning_tokens"], &r["total_tokens"]].map(|v| v.as_u64().unwrap()),
            [input, cached, output, reasoning, total]
        );
        // gpt-5.1: 200 fresh × 1.25 + 1000 cached × 0.125 + 5 × 10, per million.
        let expected = (200.0 * 1.25 + 1000.0 * 0.125 + 5.0 * 10.0) / 1e6;
        assert!((r["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12);
        assert!(r["price_source"].as_str().unwrap().starts_with("built-in"));
        assert!(r["ttfb_ms"].as_f64().unwrap() >= 0.0 && r["duration_ms"].as_f64().unwrap() >= r["ttfb_ms"].as_f64().unwrap());
        assert!(r["bytes_in"].as_u64().unwrap() >= 500 && r["bytes_out"].as_u64().unwrap() > 100);
        assert!(r["decision_json"].as_str().unwrap().contains("\"chosen\":\"first.default\""));
        assert_eq!(r["client"], serde_json::Value::Null, "no user agent was sent");

        assert_eq!(rows[1]["streaming"].as_i64(), Some(0));
        assert_eq!(rows[1]["total_tokens"].as_u64(), Some(total));

        let r = &rows[2];
        let attempts: Vec<serde_json::Value> = serde_json::from_str(r["attempts_json"].as_str().unwrap()).unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!((attempts[0]["outcome"].as_str(), attempts[0]["class"].as_str()), (Some("failed_status"), Some("server_error")));
        assert_eq!((r["model_requested"].as_str(), r["model_sent"].as_str()), (Some("gpt-5"), Some("gpt-5.4")));
        let expected = (200.0 * 2.5 + 1000.0 * 0.25 + 5.0 * 15.0) / 1e6;
        assert!((r["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12, "priced by the model actually sent");

        assert_eq!((rows[3]["outcome"].as_str(), rows[3]["error_class"].as_str()), (Some("upstream_stream_error"), Some("upstream_stream_error")));

        for row in &rows {
            let text = row.to_string();
            assert!(!text.contains("hi from") && !text.contains("xxxxxxxx"), "no bodies in the ledger");
        }
    })
    .await;
}

#[test]
fn cost_uses_overrides_wildcards_and_multipliers() {
    use codex_helper::record::usage::Usage;
    let book = PriceBook::from_overrides("[models.\"relay-*\"]\ninput_per_1m_usd = 4\noutput_per_1m_usd = 8\ncached_input_per_1m_usd = 1\n").unwrap();
    let usage = Usage {
        input_tokens: 1_000_000,
        cached_input_tokens: 500_000,
        output_tokens: 100_000,
        reasoning_tokens: 0,
        total_tokens: 1_100_000,
    };
    let cost = book.cost("relay-gpt-5", &usage, 0.5).unwrap();
    assert!(
        (cost.usd - (2.0 + 0.5 + 0.8) * 0.5).abs() < 1e-9,
        "{}",
        cost.usd
    );
    assert_eq!(cost.source, "pricing_overrides.toml (relay-*) × 0.5");
}

fn row(trace: &str, started_ms: u64) -> LedgerRow {
    LedgerRow {
        trace_id: trace.into(),
        started_ms,
        method: "POST".into(),
        path: "/v1/responses".into(),
        outcome: "completed".into(),
        attempts_json: "[]".into(),
        ..Default::default()
    }
}

#[test]
fn retention_deletes_by_age_then_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = store::open(&dir.path().join("l.sqlite3")).unwrap();
    let rows: Vec<LedgerRow> = (0..10)
        .map(|i| row(&format!("t{i}"), 1_000 * (i + 1)))
        .collect();
    assert_eq!(store::insert(&mut conn, &rows).unwrap(), 10);
    assert_eq!(
        store::insert(&mut conn, &rows).unwrap(),
        0,
        "a trace id is stored once"
    );
    assert_eq!(
        store::apply_retention(&conn, 3_500, 100).unwrap(),
        3,
        "t0..t2 are too old"
    );
    assert_eq!(
        store::apply_retention(&conn, 0, 4).unwrap(),
        3,
        "only the newest 4 stay"
    );
    let left: Vec<String> = conn
        .prepare("SELECT trace_id FROM requests ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, ["t6", "t7", "t8", "t9"]);
}

/// `[ledger] retention_interval_secs`: retention runs once at start, then again only after
/// the interval (between batches), so a lower interval deletes during the run.
#[tokio::test]
async fn retention_runs_again_after_its_interval() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        for (interval, kept) in [(1, 2), (600, 6)] {
            let setup = ledger(
                LedgerSettings {
                    max_rows: 2,
                    retention_interval_secs: interval,
                    ..Default::default()
                },
                PriceBook::built_in(),
            );
            let proxy = TestProxy::start_with_sink(
                &providers(&[("r", &relay.base_url())]),
                &[],
                Some(setup.ledger.sink()),
            )
            .await;
            for i in 0..5 {
                turn(&proxy, "gpt-5.1", &format!("s{i}")).await;
                proxy.records.wait_for(i + 1).await;
                setup.ledger.flush();
            }
            // Past the short interval: the next batch is followed by retention.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            turn(&proxy, "gpt-5.1", "s5").await;
            proxy.records.wait_for(6).await;
            setup.ledger.flush();
            // Retention runs after a batch's flush is answered: the next flush waits for it.
            setup.ledger.flush();
            assert_eq!(
                rows(&setup.path).len(),
                kept,
                "max_rows 2, retention every {interval} s"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_locked_or_full_database_costs_records_not_requests() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let setup = ledger(LedgerSettings::default(), PriceBook::built_in());
        let proxy = TestProxy::start_with_sink(
            &providers(&[("r", &relay.base_url())]),
            &[],
            Some(setup.ledger.sink()),
        )
        .await;
        turn(&proxy, "gpt-5.1", "a").await;
        setup.ledger.flush();

        // Another process holds the write lock for longer than the writer waits (2 s).
        let locker = Connection::open(&setup.path).unwrap();
        locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let text = turn(&proxy, "gpt-5.1", "b").await;
        assert!(text.contains("hi from r"), "the request itself succeeds");
        setup.ledger.flush();
        let stats = setup.ledger.stats();
        assert_eq!(
            stats.failed.load(Ordering::Relaxed),
            1,
            "the lost record is counted"
        );
        locker.execute_batch("ROLLBACK").unwrap();
        drop(locker);

        turn(&proxy, "gpt-5.1", "c").await;
        proxy.records.wait_for(3).await;
        setup.ledger.flush();
        assert_eq!(
            stats.written.load(Ordering::Relaxed),
            2,
            "writing resumes once the lock is gone"
        );
        assert_eq!(rows(&setup.path).len(), 2);
    })
    .await;

    bounded(async {
        // A database capped at its current size behaves like a full disk.
        let relay = MockRelay::start("r").await;
        let setup = ledger(
            LedgerSettings {
                max_size_mb: Some(0),
                ..Default::default()
            },
            PriceBook::built_in(),
        );
        let proxy = TestProxy::start_with_sink(
            &providers(&[("r", &relay.base_url())]),
            &[],
            Some(setup.ledger.sink()),
        )
        .await;
        for i in 0..30 {
            assert!(
                turn(&proxy, "gpt-5.1", &format!("s{i}"))
                    .await
                    .contains("hi from r")
            );
            // One row per batch, so each insert meets the cap on its own.
            proxy.records.wait_for(i + 1).await;
            setup.ledger.flush();
        }
        let stats = setup.ledger.stats();
        let (written, failed) = (
            stats.written.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
        );
        assert!(
            failed > 0,
            "the full database lost records (written {written})"
        );
        assert_eq!(
            written + failed,
            30,
            "every record is either written or counted as lost"
        );
    })
    .await;
}

#[tokio::test]
async fn summaries_and_filters_read_what_was_written() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let setup = ledger(LedgerSettings::default(), PriceBook::built_in());
        let proxy = TestProxy::start_with_sink(
            &providers(&[("r", &relay.base_url())]),
            &[],
            Some(setup.ledger.sink()),
        )
        .await;
        turn(&proxy, "gpt-5.1", "s1").await;
        turn(&proxy, "gpt-5.4", "s1").await;
        relay.push(Fault::Status {
            status: 400,
            body: r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#.into(),
            retry_after: None,
        });
        turn(&proxy, "gpt-5.4", "s2").await;
        proxy.records.wait_for(3).await;
        setup.ledger.flush();

        let conn = store::open_read_only(&setup.path).unwrap();
        let by_model = query::summary(&conn, 0, GroupBy::Model).unwrap();
        assert_eq!(
            by_model
                .iter()
                .map(|r| (r.key.as_str(), r.requests, r.errors))
                .collect::<Vec<_>>(),
            [("gpt-5.4", 2, 1), ("gpt-5.1", 1, 0)]
        );
        assert!((by_model[1].cache_hit_rate - 1000.0 / 1200.0).abs() < 1e-9);
        let total = query::total(&query::summary(&conn, 0, GroupBy::Session).unwrap());
        assert_eq!((total.requests, total.total_tokens), (3, 2 * USAGE.4));
        assert_eq!(query::summary(&conn, 0, GroupBy::Day).unwrap().len(), 1);
        let errors = query::find(
            &conn,
            &Filter {
                errors_only: true,
                ..Default::default()
            },
            10,
        )
        .unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].status, Some(400));
        assert_eq!(
            query::find(
                &conn,
                &Filter {
                    session: Some("s1".into()),
                    ..Default::default()
                },
                10
            )
            .unwrap()
            .len(),
            2
        );
        let chain = query::chain(&conn, &errors[0].trace_id).unwrap().unwrap();
        assert_eq!(chain.attempts[0]["provider"], "r");
        assert!(query::since_ms(&conn, "2026-11-28", 0).unwrap() > 0);
        assert!(query::since_ms(&conn, "yesterday", 0).is_err());
        assert_eq!(
            query::since_ms(&conn, "2h", 10_000_000).unwrap(),
            10_000_000 - 7_200_000
        );
    })
    .await;
}

#[test]
fn importing_twice_adds_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"timestamp_ms\":1764300000000,\"request_id\":1,\"trace_id\":\"codex-1\",\"status_code\":200,\"model\":\"gpt-5.1\",\"usage\":{\"input_tokens\":10,\"output_tokens\":2,\"total_tokens\":12}}\n";
    let mut conn = store::open(&dir.path().join("l.sqlite3")).unwrap();
    let (rows, _) =
        codex_helper::ledger::import::read_rows(text.as_bytes(), &PriceBook::built_in());
    assert_eq!(store::insert(&mut conn, &rows).unwrap(), 1);
    let (rows, _) =
        codex_helper::ledger::import::read_rows(text.as_bytes(), &PriceBook::built_in());
    assert_eq!(store::insert(&mut conn, &rows).unwrap(), 0);
    let _ = Arc::new(());
}

#[test]
fn rollup_summaries_match_the_rows_for_any_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = store::open(&dir.path().join("l.sqlite3")).unwrap();
    let models = ["gpt-5.1", "gpt-5.4", "o3"];
    let rows: Vec<LedgerRow> = (0..500u64)
        .map(|i| LedgerRow {
            model_sent: Some(models[i as usize % 3].into()),
            provider: Some(if i % 2 == 0 { "a" } else { "b" }.into()),
            session_id: Some(format!("s{}", i % 7)),
            status: Some(if i % 10 == 0 { 502 } else { 200 }),
            total_tokens: Some(i),
            input_tokens: Some(2 * i),
            cached_input_tokens: Some(i),
            cost_usd: (i % 5 != 0).then_some(0.001),
            ..row(&format!("t{i}"), 1_000_000 + i * 97_003)
        })
        .collect();
    store::insert(&mut conn, &rows).unwrap();
    for since in [
        0,
        1_000_000 + 4_000_000,
        1_000_000 + 12_345_678,
        1_000_000 + 30_000_000,
    ] {
        let expected: Vec<&LedgerRow> = rows.iter().filter(|r| r.started_ms >= since).collect();
        for by in [
            GroupBy::Model,
            GroupBy::Provider,
            GroupBy::Session,
            GroupBy::Day,
        ] {
            let total = query::total(&query::summary(&conn, since, by).unwrap());
            assert_eq!(
                total.requests,
                expected.len() as u64,
                "{by:?} since {since}"
            );
            assert_eq!(
                total.total_tokens,
                expected
                    .iter()
                    .map(|r| r.total_tokens.unwrap())
                    .sum::<u64>(),
                "{by:?} since {since}"
            );
            assert_eq!(
                total.errors,
                expected.iter().filter(|r| r.status == Some(502)).count() as u64,
                "{by:?} since {since}"
            );
            assert_eq!(
                total.unpriced,
                expected.iter().filter(|r| r.cost_usd.is_none()).count() as u64,
                "{by:?} since {since}"
            );
        }
    }
    // Retention takes the rollups along.
    store::apply_retention(&conn, 0, 10).unwrap();
    let total = query::total(&query::summary(&conn, 0, GroupBy::Model).unwrap());
    assert!(
        total.requests <= 10 + 10,
        "only the buckets of the rows left remain: {}",
        total.requests
    );
}

/// The tier a relay says it processed a response in (`response.service_tier`, in a JSON body or
/// on a stream's final event) is recorded and prices the row: flex at half, priority at twice
/// the standard price.
#[tokio::test]
async fn the_tier_a_relay_reports_is_recorded_and_priced() {
    bounded(async {
        let relay = MockRelay::start("tiered").await;
        let setup = ledger(LedgerSettings::default(), PriceBook::built_in());
        let config = providers(&[("tiered", &relay.base_url())]);
        let proxy = TestProxy::start_with_sink(&config, &[], Some(setup.ledger.sink())).await;
        let ask = |body: serde_json::Value, stream: bool| {
            let mut request = client().post(proxy.url("/v1/responses")).json(&body);
            if stream {
                request = request.header("accept", "text/event-stream");
            }
            async move { request.send().await.unwrap().text().await.unwrap() }
        };
        let reply = ask(
            serde_json::json!({"model":"gpt-5.1","input":"hi","stream":true,"service_tier":"flex"}),
            true,
        )
        .await;
        assert!(reply.contains("\"service_tier\":\"flex\""), "{reply}");
        ask(
            serde_json::json!({"model":"gpt-5.1","input":"hi","service_tier":"priority"}),
            false,
        )
        .await;
        ask(serde_json::json!({"model":"gpt-5.1","input":"hi"}), false).await;
        proxy.records.wait_for(3).await;
        setup.ledger.flush();

        let conn = Connection::open(&setup.path).unwrap();
        let rows: Vec<(Option<String>, f64)> = conn
            .prepare("SELECT service_tier, cost_usd FROM requests ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows.iter().map(|r| r.0.as_deref()).collect::<Vec<_>>(),
            [Some("flex"), Some("priority"), None]
        );
        let standard = rows[2].1;
        assert!(standard > 0.0);
        assert!((rows[0].1 - standard * 0.5).abs() < 1e-12, "flex: {rows:?}");
        assert!(
            (rows[1].1 - standard * 2.0).abs() < 1e-12,
            "priority: {rows:?}"
        );
    })
    .await;
}
