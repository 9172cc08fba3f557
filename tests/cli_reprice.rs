//! `usage reprice` on the real binary: prices added or changed after the fact reach the stored
//! rows and the summaries; a dry run changes nothing. And the service tier a relay reports is
//! what prices a response.

mod support;

use codex_helper::ledger::pricing::PriceBook;
use codex_helper::ledger::row::LedgerRow;
use codex_helper::proxy::Outcome;
use codex_helper::proxy::sse::SseTap;
use codex_helper::record::RequestRecord;
use serde_json::Value;
use support::cli::{Homes, run};

async fn json(homes: &Homes, args: &[&str]) -> Value {
    let (ok, out) = run(homes, args).await;
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

async fn total(homes: &Homes) -> (f64, u64) {
    let summary = json(
        homes,
        &[
            "usage",
            "summary",
            "--since",
            "2025-01-01",
            "--by",
            "model",
            "--json",
        ],
    )
    .await;
    (
        summary["total"]["cost_usd"].as_f64().unwrap(),
        summary["total"]["unpriced"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn reprice_applies_new_prices_to_stored_requests() {
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        "version = 5\n[codex.providers.old]\nbase_url = \"http://127.0.0.1:9\"\nprice_multiplier = 0.5\n",
    )
    .unwrap();
    let logs = homes.helper.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // The original codex-helper's log: a gpt-5.1 request (priced at import, 1.25 + 1.0) and
    // one of a relay's own model the ledger has no price for.
    std::fs::write(
        logs.join("requests.jsonl"),
        "{\"timestamp_ms\":1764300000000,\"trace_id\":\"a\",\"status_code\":200,\"provider_id\":\"old\",\"model\":\"gpt-5.1\",\"usage\":{\"input_tokens\":1000000,\"output_tokens\":100000}}\n\
         {\"timestamp_ms\":1764300005000,\"trace_id\":\"b\",\"status_code\":200,\"provider_id\":\"old\",\"model\":\"relay-x\",\"usage\":{\"input_tokens\":1000000,\"output_tokens\":100000}}\n",
    )
    .unwrap();
    let (ok, out) = run(&homes, &["usage", "import"]).await;
    assert!(ok, "{out}");
    assert_eq!(total(&homes).await, (2.25, 1));

    // The user prices the relay's model and corrects gpt-5.1 afterwards.
    std::fs::write(
        homes.helper.path().join("pricing_overrides.toml"),
        "[models.\"relay-x\"]\ninput_per_1m_usd = 1\noutput_per_1m_usd = 10\n\
         [models.\"gpt-5.1\"]\ninput_per_1m_usd = 2\noutput_per_1m_usd = 20\n",
    )
    .unwrap();
    let dry = json(&homes, &["usage", "reprice", "--dry-run", "--json"]).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["rows"].as_u64(), dry["changed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(dry["newly_priced"], 1);
    // Rows recorded without a multiplier take the provider's from the config: × 0.5.
    assert_eq!(dry["cost_before_usd"], 2.25);
    assert_eq!(dry["cost_after_usd"], 3.0);
    assert_eq!(total(&homes).await, (2.25, 1), "a dry run changes nothing");

    let (ok, out) = run(&homes, &["usage", "reprice", "--model", "RELAY-X"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "Changed 1 of 1 priced request(s) (1 newly priced): $0.0000 before, $1.0000 after."
        ),
        "{out}"
    );
    assert_eq!(total(&homes).await, (3.25, 0));

    let done = json(
        &homes,
        &["usage", "reprice", "--since", "2025-01-01", "--json"],
    )
    .await;
    assert_eq!(done["changed"], 1);
    assert_eq!(total(&homes).await, (3.0, 0));
    let tail = json(&homes, &["usage", "find", "--model", "gpt-5.1", "--json"]).await;
    // One row: `find --json` prints a line per request.
    assert_eq!(tail["cost_usd"], 2.0, "(2 + 2) × 0.5: {tail}");

    let again = json(&homes, &["usage", "reprice", "--json"]).await;
    assert_eq!(again["changed"], 0);
    let (ok, out) = run(&homes, &["usage", "reprice", "--since", "lately"]).await;
    assert!(!ok && out.contains("expected e.g. 30m"), "{out}");
}

#[test]
fn the_tier_a_stream_reports_prices_the_response() {
    let mut tap = SseTap::default();
    tap.feed(
        b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5.4\",\"service_tier\":\"flex\",\
          \"usage\":{\"input_tokens\":1000000,\"output_tokens\":0,\"total_tokens\":1000000}}}\n\n",
    );
    assert_eq!(tap.service_tier.as_deref(), Some("flex"));
    let mut record = RequestRecord::new("t".into(), "POST".into(), "/v1/responses".into());
    record.model_sent = Some("gpt-5.4".into());
    record.usage = tap.usage;
    record.service_tier = tap.service_tier.clone();
    let row = LedgerRow::from_record(
        &record,
        Outcome::Completed,
        Default::default(),
        &PriceBook::built_in(),
    );
    assert_eq!(row.service_tier.as_deref(), Some("flex"));
    assert_eq!(row.cost_usd, Some(1.25), "half of gpt-5.4's 2.50");
    assert_eq!(row.price_multiplier, Some(1.0));
}
