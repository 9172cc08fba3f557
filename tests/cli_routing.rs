//! `provider` and `routing` commands on the real binary: edits that keep the user's file,
//! `routing explain`, and a running proxy that picks edits up without a restart.

mod support;

use std::time::Duration;

use support::cli::{Homes, run, run_to_end, serve};
use support::mock_relay::MockRelay;

const COMMENTED: &str = "# my relays\nversion = 5\n\n[codex.providers.monthly]  # cheap\nbase_url = \"https://m.example/v1\"\nauth_token_env = \"MONTHLY_KEY\"\n\n\
[codex.routing]\nentry = \"main\"\n\n[codex.routing.routes.main]\nchildren = [\"pool\"]\n\n[codex.routing.routes.pool]\n# nested\nchildren = [\"monthly\"]\n";

#[tokio::test]
async fn provider_commands_edit_the_config_and_keep_its_comments() {
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), COMMENTED).unwrap();
    let (ok, out) = run(
        &homes,
        &[
            "provider",
            "add",
            "paygo",
            "--base-url",
            "https://p.example/v1",
            "--api-key-env",
            "PAYGO_KEY",
            "--tag",
            "billing=paygo",
            "--model-map",
            "gpt-5*=relay-5*",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("Added relay `paygo` and appended to route node `main`"),
        "{out}"
    );
    let text = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(
        text.starts_with("# my relays\nversion = 5\n\n[codex.providers.monthly]  # cheap\n"),
        "{text}"
    );
    assert!(
        text.contains("[codex.routing.routes.pool]\n# nested\nchildren = [\"monthly\"]\n"),
        "nested node untouched: {text}"
    );
    assert!(text.contains("children = [\"pool\", \"paygo\"]"), "{text}");
    assert!(
        text.contains("model_mapping = { \"gpt-5*\" = \"relay-5*\" }"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(homes.helper.path().join("config.toml.bak")).unwrap(),
        COMMENTED
    );

    let (ok, out) = run(&homes, &["provider", "list", "--json"]).await;
    assert!(ok, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[1]["id"], "paygo");
    assert_eq!(list[1]["credential"], "x-api-key $PAYGO_KEY (NOT SET)");

    assert!(run(&homes, &["provider", "disable", "paygo"]).await.0);
    assert!(std::fs::read_to_string(homes.helper_config()).unwrap().contains("[codex.providers.paygo]\nbase_url = \"https://p.example/v1\"\napi_key_env = \"PAYGO_KEY\"\ntags = { billing = \"paygo\" }\nmodel_mapping = { \"gpt-5*\" = \"relay-5*\" }\nenabled = false\n"));
    assert!(run(&homes, &["provider", "enable", "paygo"]).await.0);
    assert!(
        !std::fs::read_to_string(homes.helper_config())
            .unwrap()
            .contains("enabled = false")
    );

    let (ok, out) = run(
        &homes,
        &[
            "provider",
            "add",
            "paygo",
            "--base-url",
            "https://x.example",
        ],
    )
    .await;
    assert!(
        !ok && out.contains("provider `paygo` already exists"),
        "{out}"
    );
    let (ok, out) = run(
        &homes,
        &["provider", "add", "bad", "--base-url", "not-a-url"],
    )
    .await;
    assert!(!ok && out.contains("codex.providers.bad.base_url"), "{out}");
    assert!(
        !std::fs::read_to_string(homes.helper_config())
            .unwrap()
            .contains("[codex.providers.bad]"),
        "a bad edit is not written"
    );

    assert!(run(&homes, &["provider", "remove", "paygo"]).await.0);
    let text = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(
        !text.contains("paygo") && text.contains("children = [\"pool\"]"),
        "{text}"
    );
}

#[tokio::test]
async fn routing_explain_says_what_is_chosen_and_why_others_are_skipped() {
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        "version = 5\n[codex.providers.monthly]\nbase_url = \"https://m.example/v1\"\nauth_token_env = \"UNSET_MONTHLY_KEY\"\n\
         [codex.providers.paygo]\nbase_url = \"https://p.example/v1\"\nsupported_models = { \"gpt-5*\" = true }\n\
         [codex.providers.spare]\nbase_url = \"https://s.example/v1\"\n",
    )
    .unwrap();
    assert!(
        run(&homes, &["routing", "order", "monthly", "paygo", "spare"])
            .await
            .0
    );
    let (ok, out) = run(&homes, &["routing", "explain", "--model", "gpt-5.1"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("monthly.default")
            && out.contains("skipped: environment variable UNSET_MONTHLY_KEY is not set"),
        "{out}"
    );
    assert!(
        out.contains("paygo.default")
            && out.contains("<- chosen: better candidates are unavailable"),
        "{out}"
    );

    let (_, out) = run(&homes, &["routing", "explain", "--model", "o3", "--json"]).await;
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["chosen"], "spare.default");
    assert_eq!(
        e["candidates"][1]["skip_reason"],
        "model o3 is not in supported_models"
    );

    assert!(run(&homes, &["routing", "pin", "paygo"]).await.0);
    let (_, out) = run(&homes, &["routing", "show"]).await;
    assert!(
        out.contains("paygo.default") && !out.contains("spare.default"),
        "{out}"
    );
    let (ok, out) = run(&homes, &["routing", "pin", "nope"]).await;
    assert!(!ok && out.contains("unknown reference `nope`"), "{out}");
}

#[tokio::test]
async fn a_running_proxy_picks_up_a_new_relay_without_a_restart() {
    let relay = MockRelay::start("added later").await;
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), "version = 5\n").unwrap();
    let served = serve(homes.command(&["serve"])).await;
    let post = || async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{}/v1/responses", served.url))
            .header("accept", "text/event-stream")
            .body(r#"{"model":"gpt-5.1","stream":true,"input":"hi"}"#)
            .send()
            .await
            .unwrap()
    };
    codex_helper::proxy::install_tls_provider();
    assert_eq!(post().await.status(), 503);
    assert!(
        run(
            &homes,
            &["provider", "add", "r", "--base-url", &relay.base_url()]
        )
        .await
        .0
    );
    // The proxy checks the file every second; give it a bounded while.
    let mut text = String::new();
    for _ in 0..50 {
        let reply = post().await;
        if reply.status() == 200 {
            text = reply.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains("hi from added later"),
        "the new relay was never used: {text}"
    );
    let (ok, _) = run_to_end(homes.command(&["routing", "show"])).await;
    assert!(ok);
}
