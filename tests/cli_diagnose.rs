//! `codex relay-capabilities` and `codex relay-live-smoke` on the real binary, against mock
//! relays with known capabilities (`support::capable_relay`): the classification and the
//! recommendation for each kind of relay, the acknowledgement refused before any request, the
//! live cases with their tokens, and evidence that holds no secret.

mod support;

use serde_json::Value;
use support::capable_relay::{CapableRelay, Models, Profile};
use support::cli::{Homes, LIMIT};

/// Keys long and distinctive enough to be found anywhere they leak.
fn key(name: &str) -> String {
    format!("sk-diag-{name}-7f3e9c1a5b2d8e4f6a0c3b9d")
}

fn leak_key(name: &'static str) -> &'static str {
    Box::leak(key(name).into_boxed_str())
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(homes: &Homes, args: &[&str]) -> Run {
    let output = tokio::time::timeout(LIMIT, homes.command(args).output())
        .await
        .expect("the command ends in time")
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A helper config with one provider per `(id, relay)`, each with its own key (`key(id)`),
/// unless the relay was started with another.
fn configure(homes: &Homes, relays: &[(&str, &CapableRelay)], extra: &str) {
    let mut text = String::from("version = 5\n");
    for (id, relay) in relays {
        text.push_str(&format!(
            "[codex.providers.{id}]\nbase_url = \"{}\"\nauth_token = \"{}\"\n",
            relay.base_url(),
            key(id)
        ));
    }
    text.push_str(extra);
    std::fs::write(homes.helper_config(), text).unwrap();
}

fn endpoint<'a>(report: &'a Value, provider: &str) -> &'a Value {
    report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["provider"] == provider)
        .unwrap_or_else(|| panic!("no endpoint {provider} in {report:#}"))
}

fn probe<'a>(endpoint: &'a Value, name: &str) -> &'a Value {
    endpoint["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == name)
        .unwrap_or_else(|| panic!("no probe {name} in {endpoint:#}"))
}

fn fit<'a>(endpoint: &'a Value, preset: &str) -> &'a str {
    endpoint["presets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["preset"] == preset)
        .and_then(|p| p["fit"].as_str())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_relay_is_classified_and_gets_its_recommendation() {
    let full = CapableRelay::start(Profile::full(leak_key("full"))).await;
    let no_v1 = CapableRelay::start(Profile {
        compact_v1: false,
        image: false,
        ..Profile::full(leak_key("nov1"))
    })
    .await;
    let no_v2 = CapableRelay::start(Profile {
        compact_v2: false,
        models: Models::OpenAi,
        websocket: false,
        ..Profile::full(leak_key("nov2"))
    })
    .await;
    let refused = CapableRelay::start(Profile::full("sk-some-other-key-entirely")).await;
    let stalled = CapableRelay::start(Profile {
        stall: true,
        ..Profile::full(leak_key("stall"))
    })
    .await;
    let chat = CapableRelay::start(Profile {
        responses: false,
        ..Profile::full(leak_key("chat"))
    })
    .await;
    let page = CapableRelay::start(Profile {
        models: Models::Html,
        ..Profile::full(leak_key("page"))
    })
    .await;
    let homes = Homes::new();
    configure(
        &homes,
        &[
            ("full", &full),
            ("nov1", &no_v1),
            ("nov2", &no_v2),
            ("refused", &refused),
            ("stall", &stalled),
            ("chat", &chat),
            ("page", &page),
        ],
        "",
    );
    let started = std::time::Instant::now();
    let out = run(
        &homes,
        &[
            "codex",
            "relay-capabilities",
            "--json",
            "--image",
            "--model",
            "gpt-5.1",
            "--timeout-secs",
            "2",
        ],
    )
    .await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    // Every endpoint at once: the stalled relay's timeout is the whole run's wait.
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{}", out.stdout));
    assert_eq!(report["api_version"], 1);
    assert_eq!(report["current_preset"], "default");
    assert_eq!(report["endpoints"].as_array().unwrap().len(), 7);
    for provider in ["full", "nov1", "nov2", "refused", "stall", "chat", "page"] {
        assert!(
            out.stderr.contains(&format!("{provider}/default")),
            "a progress line per endpoint: {}",
            out.stderr
        );
    }

    let e = endpoint(&report, "full");
    for name in [
        "responses",
        "compact_v1",
        "compact_v2",
        "image_generation",
        "websocket",
    ] {
        assert_eq!(probe(e, name)["support"], "supported", "{name}: {e:#}");
    }
    let models = probe(e, "models");
    assert_eq!(models["catalog"]["shape"], "codex_catalog");
    assert_eq!(models["catalog"]["model_listed"], true);
    assert_eq!(e["recommendation"]["preset"], "official-imagegen");
    assert_eq!(e["recommendation"]["confidence"], "medium");
    assert_eq!(e["recommendation"]["changes_current"], true);
    assert_eq!(probe(e, "responses")["basis"], "validated");
    assert_eq!(probe(e, "websocket")["status"], 101);

    let e = endpoint(&report, "nov1");
    assert_eq!(probe(e, "compact_v1")["support"], "unsupported");
    assert_eq!(probe(e, "image_generation")["support"], "unsupported");
    assert_eq!(e["recommendation"]["preset"], "official-relay");
    assert_eq!(fit(e, "imagegen-bridge"), "fails");

    let e = endpoint(&report, "nov2");
    assert_eq!(probe(e, "compact_v2")["support"], "unsupported");
    assert!(
        probe(e, "compact_v2")["reason"]
            .as_str()
            .unwrap()
            .contains("compaction_trigger")
    );
    assert_eq!(probe(e, "models")["catalog"]["shape"], "openai_list");
    assert_eq!(probe(e, "websocket")["support"], "unsupported");
    assert_eq!(fit(e, "official-relay"), "fails");
    assert_eq!(e["recommendation"]["preset"], "imagegen-bridge");

    let e = endpoint(&report, "refused");
    assert_eq!(probe(e, "responses")["support"], "auth_failed");
    assert_eq!(probe(e, "websocket")["support"], "auth_failed");
    assert_eq!(e["recommendation"]["preset"], Value::Null);
    assert!(
        e["summary"].as_str().unwrap().contains("refused the key"),
        "{e:#}"
    );

    let e = endpoint(&report, "stall");
    assert_eq!(probe(e, "responses")["support"], "error");
    assert!(
        probe(e, "responses")["reason"]
            .as_str()
            .unwrap()
            .contains("within 2 s")
    );
    assert_eq!(e["recommendation"]["preset"], Value::Null);
    assert!(
        e["summary"]
            .as_str()
            .unwrap()
            .contains("could not be checked")
    );

    let e = endpoint(&report, "chat");
    assert_eq!(probe(e, "responses")["support"], "unsupported");
    assert_eq!(probe(e, "chat_completions")["support"], "supported");
    assert!(
        e["summary"]
            .as_str()
            .unwrap()
            .contains("only Chat Completions"),
        "{e:#}"
    );

    let e = endpoint(&report, "page");
    assert_eq!(probe(e, "models")["support"], "error");
    assert!(
        probe(e, "models")["reason"]
            .as_str()
            .unwrap()
            .contains("HTML")
    );

    // Probes spend nothing: no request carried a model, and each relay got only probes.
    for relay in [&full, &no_v1, &no_v2, &chat, &page] {
        for seen in relay.seen() {
            assert!(seen.body.get("model").is_none(), "{seen:?}");
        }
    }
    assert_eq!(
        full.seen()
            .iter()
            .filter(|s| s.path == "/v1/chat/completions")
            .count(),
        0,
        "Chat Completions is asked only when /responses is missing"
    );

    // One evidence record per endpoint, readable with relay-evidence, without any key.
    assert_eq!(report["evidence"]["ids"].as_array().unwrap().len(), 7);
    let back = run(
        &homes,
        &["codex", "relay-evidence", "--json", "--limit", "0"],
    )
    .await;
    assert!(back.ok, "{}", back.stderr);
    let records: Vec<Value> = serde_json::from_str(&back.stdout).unwrap();
    assert_eq!(records.len(), 7);
    assert!(records.iter().all(|r| r["kind"] == "capabilities"));
    let full_record = records.iter().find(|r| r["provider"] == "full").unwrap();
    assert_eq!(full_record["model"], "gpt-5.1");
    assert_eq!(full_record["host"], full.addr.to_string());
    assert_eq!(
        full_record["payload"]["recommendation"]["preset"],
        "official-imagegen"
    );
    let evidence =
        std::fs::read_to_string(homes.helper.path().join("logs/codex_relay_evidence.jsonl"))
            .unwrap();
    for id in ["full", "nov1", "nov2", "refused", "stall", "chat", "page"] {
        let secret = key(id);
        for (what, text) in [
            ("evidence", &evidence),
            ("stdout", &out.stdout),
            ("stderr", &out.stderr),
            ("relay-evidence", &back.stdout),
        ] {
            assert!(!text.contains(&secret), "{id}'s key in the {what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_human_report_is_a_table_with_a_verdict_for_one_provider() {
    let full = CapableRelay::start(Profile {
        image: false,
        ..Profile::full(leak_key("one"))
    })
    .await;
    let other = CapableRelay::start(Profile::full(leak_key("two"))).await;
    let homes = Homes::new();
    configure(&homes, &[("one", &full), ("two", &other)], "");
    let out = run(
        &homes,
        &["codex", "relay-capabilities", "--provider", "one"],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("one/default  {}", full.addr)),
        "{}",
        out.stdout
    );
    for line in [
        "compact_v2        supported*",
        "websocket         supported",
        "verdict: use official-relay (medium confidence)",
        "to switch from default: codex-helper switch on --preset official-relay",
        "Evidence: ",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?} in:\n{}",
            out.stdout
        );
    }
    assert!(
        other.seen().is_empty(),
        "only the provider asked for is probed"
    );

    let unknown = run(
        &homes,
        &["codex", "relay-capabilities", "--provider", "nope"],
    )
    .await;
    assert!(!unknown.ok);
    assert!(
        unknown
            .stderr
            .contains("no enabled provider `nope`; enabled: one.default, two.default"),
        "{}",
        unknown.stderr
    );
    let lone = run(&homes, &["codex", "relay-capabilities", "--endpoint", "x"]).await;
    assert!(!lone.ok, "--endpoint needs --provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_smoke_is_refused_without_the_acknowledgement_before_any_request() {
    let relay = CapableRelay::start(Profile::full(leak_key("ack"))).await;
    let homes = Homes::new();
    configure(&homes, &[("ack", &relay)], "");
    for ack in [None, Some("yes"), Some("run-live-codex-relay-smoke-please")] {
        let mut args = vec!["codex", "relay-live-smoke", "--model", "gpt-5.1"];
        if let Some(ack) = ack {
            args.extend(["--acknowledgement", ack]);
        }
        let out = run(&homes, &args).await;
        assert!(!out.ok);
        assert!(
            out.stderr.contains("may cost money; nothing was sent")
                && out
                    .stderr
                    .contains("--acknowledgement run-live-codex-relay-smoke"),
            "{}",
            out.stderr
        );
    }
    assert!(relay.seen().is_empty(), "the relay saw nothing");
    assert!(
        !homes.helper.path().join("logs").exists(),
        "no evidence for a refused run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_live_case_says_what_it_sent_what_came_back_and_its_tokens() {
    let relay = CapableRelay::start(Profile::full(leak_key("live"))).await;
    let homes = Homes::new();
    configure(
        &homes,
        &[("live", &relay)],
        "[codex.providers.live.model_mapping]\n\"gpt-5.1\" = \"relay-model\"\n",
    );
    let out = run(
        &homes,
        &[
            "codex",
            "relay-live-smoke",
            "--acknowledgement",
            "run-live-codex-relay-smoke",
            "--model",
            "gpt-5.1",
            "--image",
            "--compact-v2",
            "--websocket",
            "--json",
        ],
    )
    .await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["requested_model"], "gpt-5.1");
    assert_eq!(report["upstream_model"], "relay-model");
    assert_eq!(report["passed"], true);
    let results = report["results"].as_array().unwrap();
    let cases: Vec<&str> = results
        .iter()
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    assert_eq!(cases, ["compaction", "image", "compact_v2", "websocket"]);
    let tokens: Vec<u64> = results
        .iter()
        .map(|r| r["tokens"]["total"].as_u64().unwrap())
        .collect();
    assert_eq!(tokens, [48, 60, 60, 60]);
    assert!(
        results[1]["came_back"]
            .as_str()
            .unwrap()
            .contains("not kept")
    );
    assert_eq!(results[0]["sent"]["path"], "/v1/responses/compact");
    assert_eq!(results[3]["status"], 101);

    let seen = relay.seen();
    let models: Vec<&Value> = seen
        .iter()
        .filter(|s| s.method == "POST" || s.method == "WS")
        .map(|s| &s.body["model"])
        .collect();
    assert_eq!(models.len(), 4, "one request per case: {seen:?}");
    assert!(models.iter().all(|m| *m == "relay-model"), "{models:?}");

    let back = run(&homes, &["codex", "relay-evidence", "--kind", "live-smoke"]).await;
    assert!(back.ok);
    assert!(
        back.stdout
            .contains("passed: compaction, image, compact_v2, websocket"),
        "{}",
        back.stdout
    );
    let evidence =
        std::fs::read_to_string(homes.helper.path().join("logs/codex_relay_evidence.jsonl"))
            .unwrap();
    assert!(
        !evidence.contains("iVBORw0KGgo"),
        "no image bytes in the evidence"
    );
    assert!(!evidence.contains(&key("live")));
    assert!(!out.stdout.contains(&key("live")) && !out.stderr.contains(&key("live")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_case_fails_the_command_and_says_why() {
    let relay = CapableRelay::start(Profile {
        compact_v2: false,
        compact_v1: false,
        ..Profile::full(leak_key("weak"))
    })
    .await;
    let other = CapableRelay::start(Profile::full(leak_key("other"))).await;
    let homes = Homes::new();
    configure(&homes, &[("weak", &relay), ("other", &other)], "");
    let ack = [
        "--acknowledgement",
        "run-live-codex-relay-smoke",
        "--model",
        "gpt-5.1",
    ];
    let mut args = vec!["codex", "relay-live-smoke"];
    args.extend(ack);
    let out = run(&homes, &args).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("one endpoint at a time"),
        "{}",
        out.stderr
    );
    assert!(relay.seen().is_empty() && other.seen().is_empty());

    args.extend(["--provider", "weak", "--compact-v2"]);
    let out = run(&homes, &args).await;
    assert!(!out.ok, "a failed case fails the command");
    for line in [
        "compaction: FAILED (HTTP 404",
        "sent: POST /v1/responses/compact",
        "compact_v2: FAILED (HTTP 400",
        "why: the relay answered with an error: Invalid value: 'compaction_trigger'",
        "note: sent real requests to the relay",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?} in:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stderr
            .contains("the live smoke test failed: failed: compaction, compact_v2"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_checks_the_model_first_proves_no_feature() {
    // Without v2 and the image tool, but every request without a model is refused for that
    // alone: the feature probes get the plain request's answer and prove nothing.
    let relay = CapableRelay::start(Profile {
        model_first: true,
        compact_v2: false,
        image: false,
        ..Profile::full(leak_key("first"))
    })
    .await;
    let homes = Homes::new();
    configure(&homes, &[("first", &relay)], "");
    let out = run(
        &homes,
        &[
            "codex",
            "relay-capabilities",
            "--json",
            "--image",
            "--timeout-secs",
            "5",
        ],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let e = endpoint(&report, "first");
    assert_eq!(probe(e, "responses")["support"], "supported");
    for feature in ["compact_v2", "image_generation"] {
        let p = probe(e, feature);
        assert_eq!(p["support"], "error", "{feature}: {p:#}");
        assert!(p["reason"].as_str().unwrap().contains("relay-live-smoke"));
    }
    assert_eq!(e["recommendation"]["preset"], "default");
    assert_eq!(e["recommendation"]["confidence"], "low");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_a_relay_quotes_back_is_masked_everywhere() {
    // Not shaped like a key, so only the configured-secret masking can catch it.
    let ours = "relaykey-ZYXW98765432abcdef";
    let relay = CapableRelay::start(Profile {
        echo_key: true,
        ..Profile::full("the-relay-expects-another-key")
    })
    .await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.providers.echo]\nbase_url = \"{}\"\nauth_token = \"{ours}\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let human = run(
        &homes,
        &["codex", "relay-capabilities", "--timeout-secs", "5"],
    )
    .await;
    let json = run(
        &homes,
        &[
            "codex",
            "relay-capabilities",
            "--json",
            "--timeout-secs",
            "5",
        ],
    )
    .await;
    let smoke = run(
        &homes,
        &[
            "codex",
            "relay-live-smoke",
            "--acknowledgement",
            "run-live-codex-relay-smoke",
            "--model",
            "gpt-5.1",
            "--websocket",
            "--json",
        ],
    )
    .await;
    let evidence = run(
        &homes,
        &["codex", "relay-evidence", "--json", "--limit", "0"],
    )
    .await;
    let file = std::fs::read_to_string(homes.helper.path().join("logs/codex_relay_evidence.jsonl"))
        .unwrap();
    assert!(
        json.stdout
            .contains("Incorrect API key provided: [redacted]"),
        "the relay's words are kept, the key is not: {}",
        json.stdout
    );
    for (what, text) in [
        ("human stdout", &human.stdout),
        ("human stderr", &human.stderr),
        ("json stdout", &json.stdout),
        ("json stderr", &json.stderr),
        ("smoke stdout", &smoke.stdout),
        ("smoke stderr", &smoke.stderr),
        ("relay-evidence", &evidence.stdout),
        ("evidence file", &file),
    ] {
        assert!(
            !text.contains(ours),
            "the key leaked into the {what}:\n{text}"
        );
    }
}
