//! End to end: the real Codex CLI (pinned `@openai/codex`) through the proxy to mock relays.
//!
//! Codex runs with an isolated `CODEX_HOME` whose config keeps it on loopback
//! (`reference/codex-protocol.md` §12). The test command (`scripts/test`) installs Codex into
//! `tools/codex-cli/node_modules`; `CODEX_E2E_BIN` can point at another binary.

mod support;

use codex_helper::proxy::Outcome;
use codex_helper::proxy::record::AttemptOutcome;
use support::codex_cli::{self, CODEX_VERSION, CodexRun, run_codex_at};
use support::mock_relay::{Fault, MockRelay};
use support::{TestProxy, providers};

/// An isolated Codex home whose only provider is the proxy at `proxy_base`.
fn codex_home(proxy_base: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        codex_cli::loopback_config(proxy_base),
    )
    .unwrap();
    home
}

/// An isolated Codex: its home and the folder it runs in, kept across runs (for `resume`).
struct Codex {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Codex {
    fn new(proxy_base: &str) -> Self {
        Self {
            home: codex_home(proxy_base),
            work: tempfile::tempdir().unwrap(),
        }
    }
}

async fn codex_exec(proxy_base: &str, prompt: &str) -> CodexRun {
    let codex = Codex::new(proxy_base);
    run_codex(&codex, &["exec", "--skip-git-repo-check", prompt]).await
}

async fn run_codex(codex: &Codex, args: &[&str]) -> CodexRun {
    run_codex_with(codex, args, &[]).await
}

async fn run_codex_with(codex: &Codex, args: &[&str], env: &[(&str, &str)]) -> CodexRun {
    run_codex_at(codex.home.path(), codex.work.path(), args, env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_gets_the_relays_reply_through_the_proxy() {
    let relay = MockRelay::start("the mock relay").await;
    let proxy = TestProxy::start(
        &providers(&[("relay", &relay.base_url())]),
        &[("RELAY_KEY", "x")],
    )
    .await;
    let run = codex_exec(&proxy.url(""), "say hi").await;
    assert!(
        run.success,
        "codex exec failed\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("hi from the mock relay"),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );

    let received = relay.received();
    let turn = received
        .iter()
        .find(|r| r.path_and_query == "/v1/responses")
        .expect("a /v1/responses request");
    let thread = turn.headers["session-id"].to_str().unwrap().to_string();
    assert_eq!(turn.json()["prompt_cache_key"], thread.as_str());
    assert_eq!(
        turn.headers["authorization"], "Bearer e2e-client-key",
        "no helper credential: Codex's own passes through"
    );

    let records = proxy.records.wait_for(1).await;
    let (record, outcome) = records
        .iter()
        .find(|(r, _)| r.path == "/v1/responses")
        .unwrap();
    assert_eq!(*outcome, Outcome::Completed);
    assert_eq!(
        record.session.as_ref().map(|s| s.value.as_str()),
        Some(thread.as_str())
    );
    assert!(record.usage.is_some_and(|u| u.total_tokens > 0));
    assert!(
        record
            .client
            .as_deref()
            .is_some_and(|c| c.starts_with(&format!("codex_exec/{CODEX_VERSION}")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_still_succeeds_when_the_first_relay_is_dead() {
    let mut first = MockRelay::start("the first relay").await;
    let second = MockRelay::start("the second relay").await;
    let proxy = TestProxy::start(
        &providers(&[("first", &first.base_url()), ("second", &second.base_url())]),
        &[],
    )
    .await;
    first.kill();
    let run = codex_exec(&proxy.url(""), "say hi").await;
    assert!(
        run.success,
        "codex exec failed\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("hi from the second relay"),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    assert_eq!(first.hits(), 0);

    let records = proxy.records.wait_for(1).await;
    let (record, _) = records
        .iter()
        .find(|(r, _)| r.path == "/v1/responses")
        .unwrap();
    assert!(
        matches!(
            record.attempts[0].outcome,
            AttemptOutcome::ConnectError { .. }
        ),
        "{:?}",
        record.attempts
    );
    assert_eq!(record.provider.as_deref(), Some("second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_thread_stays_on_its_relay_after_the_preferred_one_recovers() {
    let preferred = MockRelay::start("the preferred relay").await;
    let fallback = MockRelay::start("the fallback relay").await;
    preferred.always(Some(Fault::status(502)));
    let config = format!(
        "{}[retry]\nprofile = \"aggressive-failover\"\ncooldown_secs = 0\n",
        providers(&[
            ("preferred", &preferred.base_url()),
            ("fallback", &fallback.base_url())
        ])
    );
    let proxy = TestProxy::start(&config, &[]).await;
    let codex = Codex::new(&proxy.url(""));

    let first = run_codex(&codex, &["exec", "--skip-git-repo-check", "say hi"]).await;
    assert!(
        first.success && first.stdout.contains("hi from the fallback relay"),
        "stdout: {}\nstderr: {}",
        first.stdout,
        first.stderr
    );
    // The preferred relay is back; the thread must not move.
    preferred.always(None);
    let second = run_codex(
        &codex,
        &[
            "exec",
            "--skip-git-repo-check",
            "resume",
            "--last",
            "say hi again",
        ],
    )
    .await;
    assert!(
        second.success && second.stdout.contains("hi from the fallback relay"),
        "stdout: {}\nstderr: {}",
        second.stdout,
        second.stderr
    );

    let turns: Vec<_> = fallback
        .received()
        .into_iter()
        .filter(|r| r.path_and_query == "/v1/responses")
        .collect();
    assert_eq!(turns.len(), 2, "both turns reached the fallback relay");
    assert_eq!(
        turns[0].headers["session-id"], turns[1].headers["session-id"],
        "one thread"
    );
    assert_eq!(
        preferred
            .received()
            .iter()
            .filter(|r| r.path_and_query == "/v1/responses")
            .count(),
        1,
        "only the failed first try"
    );
    let records = proxy.records.wait_for(2).await;
    let last = records
        .iter()
        .rev()
        .find(|(r, _)| r.path == "/v1/responses")
        .unwrap();
    assert_eq!(
        last.0.decision.as_ref().unwrap().affinity.as_deref(),
        Some("fallback.default")
    );
}

/// `switch on` with each preset, a real `codex exec` through the served proxy, then
/// `switch off` leaves Codex's files byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_preset_switches_on_serves_codex_and_switches_off_cleanly() {
    use support::cli::{Homes, run, serve};
    let relay = MockRelay::start("the relay behind the helper").await;
    for preset in [
        "default",
        "imagegen-bridge",
        "official-relay",
        "official-imagegen",
    ] {
        let homes = Homes::new();
        std::fs::write(
            homes.helper_config(),
            format!("version = 5\n[codex.providers.relay]\nbase_url = \"{}\"\nauth_token = \"helper-key\"\n", relay.base_url()),
        )
        .unwrap();
        // The user's Codex: loopback-only settings (§12) and their own relay as the provider.
        let original = codex_home(&relay.base_url().replace("/v1", ""));
        let config = std::fs::read_to_string(original.path().join("config.toml"))
            .unwrap()
            .replace(
                "[model_providers.helper]",
                "# my relay\n[model_providers.helper]",
            );
        std::fs::write(homes.codex.path().join("config.toml"), &config).unwrap();
        let auth = "{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"sk-user\"\n}\n";
        std::fs::write(homes.codex.path().join("auth.json"), auth).unwrap();
        // `serve` switches Codex to itself at start (default preset) and back at exit.
        let served = serve(homes.command(&["serve"])).await;
        let port = served.url.rsplit(':').next().unwrap().to_string();

        let (ok, out) = run(
            &homes,
            &["switch", "on", "--preset", preset, "--port", &port],
        )
        .await;
        assert!(ok, "{preset}: {out}");
        let (_, status) = run(&homes, &["switch", "status", "--json"]).await;
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(
            (status["enabled"].as_bool(), status["preset"].as_str()),
            (Some(true), Some(preset))
        );

        let codex = Codex {
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
        };
        for name in ["config.toml", "auth.json"] {
            std::fs::copy(homes.codex.path().join(name), codex.home.path().join(name)).unwrap();
        }
        let run_codex_result =
            run_codex(&codex, &["exec", "--skip-git-repo-check", "say hi"]).await;
        assert!(
            run_codex_result.success
                && run_codex_result
                    .stdout
                    .contains("hi from the relay behind the helper"),
            "{preset}\nstdout: {}\nstderr: {}",
            run_codex_result.stdout,
            run_codex_result.stderr
        );
        let turn = relay
            .received()
            .into_iter()
            .rev()
            .find(|r| r.path_and_query == "/v1/responses")
            .unwrap();
        assert_eq!(
            turn.headers["authorization"], "Bearer helper-key",
            "{preset}: the relay gets the helper's key"
        );

        let (ok, out) = run(&homes, &["switch", "off"]).await;
        assert!(ok, "{out}");
        assert_eq!(
            std::fs::read_to_string(homes.codex.path().join("config.toml")).unwrap(),
            config,
            "{preset}"
        );
        assert_eq!(
            std::fs::read_to_string(homes.codex.path().join("auth.json")).unwrap(),
            auth,
            "{preset}"
        );
    }
}

/// Codex fetches the relay's model list through the proxy as a translated catalog: no
/// "fallback metadata" warning, and its requests carry the full system prompt from Codex's
/// bundled metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_reads_the_translated_catalog_and_keeps_its_full_system_prompt() {
    use support::cli::{Homes, run, serve};
    let relay = MockRelay::start("the catalog relay").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[proxy]\ncodex_binary = \"{}\"\n[codex.providers.relay]\nbase_url = \"{}\"\nauth_token = \"k\"\n",
            codex_cli::bin().display(),
            relay.base_url()
        ),
    )
    .unwrap();
    let original = codex_home("http://127.0.0.1:9");
    std::fs::copy(
        original.path().join("config.toml"),
        homes.codex.path().join("config.toml"),
    )
    .unwrap();
    let served = serve(homes.command(&["serve"])).await;
    let port = served.url.rsplit(':').next().unwrap().to_string();
    let (ok, out) = run(&homes, &["switch", "on", "--port", &port]).await;
    assert!(ok, "{out}");
    let (_, status) = run(&homes, &["switch", "status", "--json"]).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    // The catalog names the Codex it came from: its version and where it was found.
    let catalog = status["models_catalog"].as_str().unwrap();
    assert!(
        catalog.starts_with(&format!(
            "translated for Codex from the bundled metadata of Codex {CODEX_VERSION} ("
        )) && catalog.contains("tools/codex-cli/node_modules"),
        "{catalog}"
    );

    let codex = Codex {
        home: tempfile::tempdir().unwrap(),
        work: tempfile::tempdir().unwrap(),
    };
    std::fs::copy(
        homes.codex.path().join("config.toml"),
        codex.home.path().join("config.toml"),
    )
    .unwrap();
    let result = run_codex(&codex, &["exec", "--skip-git-repo-check", "say hi"]).await;
    assert!(
        result.success && result.stdout.contains("hi from the catalog relay"),
        "stdout: {}\nstderr: {}",
        result.stdout,
        result.stderr
    );
    assert!(
        !result.stderr.contains("fallback metadata"),
        "{}",
        result.stderr
    );
    assert!(
        relay
            .received()
            .iter()
            .any(|r| r.path_and_query == format!("/v1/models?client_version={CODEX_VERSION}"))
    );

    // The system prompt Codex sent is the catalog entry's base_instructions.
    codex_helper::proxy::install_tls_provider();
    let catalog: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!(
            "{}/v1/models?client_version={CODEX_VERSION}",
            served.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = catalog["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["slug"] == "gpt-5.1")
        .expect("gpt-5.1 in the catalog");
    let prompt = entry["base_instructions"].as_str().unwrap();
    assert!(prompt.len() > 10_000, "a real prompt, not a placeholder");
    let turn = relay
        .received()
        .into_iter()
        .find(|r| r.path_and_query == "/v1/responses")
        .unwrap();
    let first = &turn.json()["input"][0];
    assert_eq!(first["role"], "developer");
    assert_eq!(first["content"][0]["text"].as_str(), Some(prompt));
}

/// `official-relay`: Codex believes it talks to OpenAI, so it compacts remotely (v2); the
/// compaction request and the turn after it go to the same relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_relay_compacts_remotely_on_the_same_relay() {
    use support::cli::{Homes, run, serve};
    let first = MockRelay::start("first").await;
    let second = MockRelay::start("second").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.client_patch]\npreset = \"official-relay\"\n[codex.providers.a]\nbase_url = \"{}\"\nauth_token = \"k\"\n[codex.providers.b]\nbase_url = \"{}\"\nauth_token = \"k\"\n",
            first.base_url(),
            second.base_url()
        ),
    )
    .unwrap();
    let original = codex_home("http://127.0.0.1:9");
    let config = std::fs::read_to_string(original.path().join("config.toml"))
        .unwrap()
        .replacen(
            "model = \"gpt-5.1\"\n",
            "model = \"gpt-5.1\"\nmodel_auto_compact_token_limit = 1000\n",
            1,
        );
    std::fs::write(homes.codex.path().join("config.toml"), &config).unwrap();
    let served = serve(homes.command(&["serve"])).await;
    let _ = &served;
    let codex = Codex {
        home: tempfile::tempdir().unwrap(),
        work: tempfile::tempdir().unwrap(),
    };
    std::fs::copy(
        homes.codex.path().join("config.toml"),
        codex.home.path().join("config.toml"),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(codex.home.path().join("config.toml"))
            .unwrap()
            .contains("name = \"OpenAI\"")
    );

    let one = run_codex(&codex, &["exec", "--skip-git-repo-check", "say hi"]).await;
    assert!(
        one.success,
        "stdout: {}\nstderr: {}",
        one.stdout, one.stderr
    );
    let two = run_codex(
        &codex,
        &[
            "exec",
            "--skip-git-repo-check",
            "resume",
            "--last",
            "and again",
        ],
    )
    .await;
    assert!(
        two.success,
        "stdout: {}\nstderr: {}",
        two.stdout, two.stderr
    );

    let turns: Vec<_> = first
        .received()
        .into_iter()
        .filter(|r| r.path_and_query == "/v1/responses")
        .collect();
    let compaction = turns.iter().position(|r| {
        r.json()["input"]
            .as_array()
            .and_then(|i| i.last())
            .is_some_and(|l| l["type"] == "compaction_trigger")
    });
    let compaction = compaction.unwrap_or_else(|| {
        panic!(
            "no compaction_trigger request reached the relay; {} turns",
            turns.len()
        )
    });
    let after = turns
        .get(compaction + 1)
        .expect("a turn after the compaction");
    let carried = after.json()["input"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["type"] == "compaction" && i["encrypted_content"] == "compacted by first");
    assert!(carried, "the next turn carries the relay's compaction item");
    assert_eq!(
        second
            .received()
            .iter()
            .filter(|r| r.path_and_query == "/v1/responses")
            .count(),
        0,
        "everything stayed on one relay"
    );
    let (ok, _) = run(&homes, &["switch", "status"]).await;
    assert!(ok);
}

/// chatgpt-bridge: Codex keeps its ChatGPT login, but its token and account id never reach a
/// relay; the relay gets the helper's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatgpt_bridge_keeps_codexs_login_away_from_the_relay() {
    use base64::Engine;
    use support::cli::{Homes, run, serve};
    let relay = MockRelay::start("the bridge relay").await;
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), format!("version = 5\n[codex.providers.relay]\nbase_url = \"{}\"\nauth_token = \"helper-key\"\n", relay.base_url())).unwrap();
    let jwt = |claims: serde_json::Value| {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("eyJhbGciOiJub25lIn0.{payload}.c2ln")
    };
    let auth = serde_json::to_string_pretty(&serde_json::json!({
        "auth_mode": "chatgpt", "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": jwt(serde_json::json!({"email":"me@example.com","exp":4102444800u64,"https://api.openai.com/auth":{"chatgpt_plan_type":"plus","chatgpt_account_id":"acct-e2e"}})),
            "access_token": jwt(serde_json::json!({"exp":4102444800u64})),
            "refresh_token": "fake-refresh-token",
            "account_id": "acct-e2e"
        },
        "last_refresh": "2026-11-28T00:00:00Z"
    }))
    .unwrap();
    let original = codex_home("http://127.0.0.1:9");
    std::fs::copy(
        original.path().join("config.toml"),
        homes.codex.path().join("config.toml"),
    )
    .unwrap();
    std::fs::write(homes.codex.path().join("auth.json"), &auth).unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let port = served.url.rsplit(':').next().unwrap().to_string();
    let (ok, out) = run(
        &homes,
        &[
            "switch",
            "on",
            "--preset",
            "chatgpt-bridge",
            "--port",
            &port,
        ],
    )
    .await;
    assert!(ok, "{out}");

    let codex = Codex {
        home: tempfile::tempdir().unwrap(),
        work: tempfile::tempdir().unwrap(),
    };
    for name in ["config.toml", "auth.json"] {
        std::fs::copy(homes.codex.path().join(name), codex.home.path().join(name)).unwrap();
    }
    let refresh = format!("{}/oauth/token", served.url);
    let result = run_codex_with(
        &codex,
        &["exec", "--skip-git-repo-check", "say hi"],
        &[("CODEX_REFRESH_TOKEN_URL_OVERRIDE", &refresh)],
    )
    .await;
    assert!(
        result.success && result.stdout.contains("hi from the bridge relay"),
        "stdout: {}\nstderr: {}",
        result.stdout,
        result.stderr
    );
    for r in relay.received() {
        let seen = format!("{:?}", r.headers);
        assert!(
            !seen.contains("acct-e2e") && !seen.contains("eyJhbGciOiJub25lIn0"),
            "{} leaked Codex's login: {seen}",
            r.path_and_query
        );
    }
    let turn = relay
        .received()
        .into_iter()
        .find(|r| r.path_and_query == "/v1/responses")
        .unwrap();
    assert_eq!(turn.headers["authorization"], "Bearer helper-key");

    let (ok, _) = run(&homes, &["switch", "off"]).await;
    assert!(ok);
    assert_eq!(
        std::fs::read_to_string(homes.codex.path().join("auth.json")).unwrap(),
        auth
    );
    assert_eq!(
        std::fs::read_to_string(homes.codex.path().join("config.toml")).unwrap(),
        std::fs::read_to_string(original.path().join("config.toml")).unwrap()
    );
}

/// The thread ids of Codex's rollouts in `home`, with the provider each is tagged with.
fn threads(home: &std::path::Path) -> Vec<(String, String)> {
    codex_helper::codex::sessions::rollouts(home)
        .into_iter()
        .map(|r| (r.thread_id, r.provider))
        .collect()
}

/// The `/v1/responses` turns a relay got, as (session id, authorization, request body text).
fn turns(relay: &MockRelay) -> Vec<(String, String, String)> {
    relay
        .received()
        .into_iter()
        .filter(|r| r.path_and_query == "/v1/responses" && r.method == "POST")
        .map(|r| {
            let header = |name: &str| {
                r.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            (
                header("session-id"),
                header("authorization"),
                String::from_utf8_lossy(&r.body).into_owned(),
            )
        })
        .collect()
}

fn assert_ran(run: &CodexRun, what: &str) {
    assert!(
        run.success,
        "{what}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
}

/// Stops a `serve` the way a user does (Ctrl-C), which switches Codex back.
async fn stop(served: support::cli::Served) {
    served.stop().await;
}

/// A user's history survives `serve` switching Codex on and off, for a custom provider (in
/// place, with `default` and with `official-relay`, which still compacts remotely through the
/// proxy) and for the built-in provider (through `openai_base_url`): a thread made before
/// resumes with its history while switched on, and one made while switched on resumes after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_resume_with_their_history_across_switch_on_and_off() {
    use support::cli::{Homes, serve};
    for (what, preset, builtin) in [
        ("custom provider, default", "default", false),
        ("custom provider, official-relay", "official-relay", false),
        ("built-in provider, official-relay", "official-relay", true),
    ] {
        let relay = MockRelay::start("the user's relay").await;
        let homes = Homes::new();
        std::fs::write(
            homes.helper_config(),
            format!(
                "version = 5\n[codex.client_patch]\npreset = \"{preset}\"\n[codex.providers.helper]\nbase_url = \"{}\"\nauth_token = \"helper-key\"\n",
                relay.base_url()
            ),
        )
        .unwrap();
        // The user's own Codex, straight to their relay (loopback only, §12).
        let direct = codex_home(&relay.base_url().replace("/v1", ""));
        let mut config = std::fs::read_to_string(direct.path().join("config.toml")).unwrap();
        if preset == "official-relay" {
            config = config.replacen(
                "model = \"gpt-5.1\"\n",
                "model = \"gpt-5.1\"\nmodel_auto_compact_token_limit = 1000\n",
                1,
            );
        }
        if builtin {
            // The built-in provider, pointed at the user's own gateway, with an API key login.
            let table = config.find("[model_providers.helper]").unwrap();
            config.truncate(table);
            config = config.replacen(
                "model_provider = \"helper\"\n",
                &format!("openai_base_url = \"{}\"\n", relay.base_url()),
                1,
            );
            std::fs::write(
                homes.codex.path().join("auth.json"),
                "{\"auth_mode\":\"apikey\",\"OPENAI_API_KEY\":\"e2e-client-key\"}",
            )
            .unwrap();
        }
        std::fs::write(homes.codex.path().join("config.toml"), &config).unwrap();
        let home = homes.codex.path();
        let work = tempfile::tempdir().unwrap();

        // Before: a thread straight to the relay.
        let before = run_codex_at(
            home,
            work.path(),
            &["exec", "--skip-git-repo-check", "first words"],
            &[],
        )
        .await;
        assert_ran(&before, what);
        let first = turns(&relay);
        let (thread, auth, _) = first.last().unwrap().clone();
        assert_eq!(
            auth, "Bearer e2e-client-key",
            "{what}: straight to the relay"
        );
        let provider = if builtin { "openai" } else { "helper" };
        assert_eq!(
            threads(home),
            vec![(thread.clone(), provider.to_string())],
            "{what}"
        );

        // Switched on: `resume --last` finds it, and the turn carries its history.
        let served = serve(homes.command(&["serve"])).await;
        let resumed = run_codex_at(
            home,
            work.path(),
            &[
                "exec",
                "--skip-git-repo-check",
                "resume",
                "--last",
                "second words",
            ],
            &[],
        )
        .await;
        assert_ran(&resumed, what);
        let (session, auth, body) = turns(&relay).last().unwrap().clone();
        assert_eq!(auth, "Bearer helper-key", "{what}: through the proxy");
        assert_eq!(session, thread, "{what}: the same thread");
        assert!(
            body.contains("first words") && body.contains("second words"),
            "{what}: the history came along"
        );
        assert_eq!(threads(home).len(), 1, "{what}: no new thread was started");
        if preset == "official-relay" {
            assert!(
                turns(&relay)
                    .iter()
                    .any(|(_, auth, body)| auth == "Bearer helper-key"
                        && body.contains("compaction_trigger")),
                "{what}: Codex still compacts remotely, through the proxy"
            );
        }

        // A thread made while switched on.
        let during = run_codex_at(
            home,
            work.path(),
            &["exec", "--skip-git-repo-check", "third words"],
            &[],
        )
        .await;
        assert_ran(&during, what);
        let (during_thread, _, _) = turns(&relay).last().unwrap().clone();
        assert_ne!(during_thread, thread);

        // Switched off: Codex's file is back, and the thread made meanwhile resumes.
        stop(served).await;
        assert_eq!(
            std::fs::read_to_string(home.join("config.toml")).unwrap(),
            config,
            "{what}"
        );
        let after = run_codex_at(
            home,
            work.path(),
            &[
                "exec",
                "--skip-git-repo-check",
                "resume",
                &during_thread,
                "fourth words",
            ],
            &[],
        )
        .await;
        assert_ran(&after, what);
        let (session, auth, body) = turns(&relay).last().unwrap().clone();
        assert_eq!(
            auth, "Bearer e2e-client-key",
            "{what}: straight to the relay again"
        );
        assert_eq!(session, during_thread, "{what}");
        assert!(
            body.contains("third words") && body.contains("fourth words"),
            "{what}"
        );
        assert!(
            threads(home).iter().all(|(_, p)| p == provider),
            "{what}: every thread has the user's provider: {:?}",
            threads(home)
        );
    }
}

/// Threads an older codex-helper tagged `codex_proxy` (it pointed Codex at a provider of its
/// own): `switch off` leaves them resumable through an alias, and `session retag` moves them
/// to the user's provider for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_tagged_codex_proxy_stay_resumable_and_can_be_retagged() {
    use codex_helper::codex::patch;
    use codex_helper::codex::preset::{Compaction, PatchPlan, Preset};
    use support::cli::{Homes, run};
    let relay = MockRelay::start("the user's relay").await;
    let proxy = TestProxy::start(
        &format!(
            "[codex.providers.helper]\nbase_url = \"{}\"\nauth_token = \"helper-key\"\n[codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"helper\"]\n",
            relay.base_url()
        ),
        &[],
    )
    .await;
    let homes = Homes::new();
    let home = homes.codex.path();
    let work = tempfile::tempdir().unwrap();
    let direct = codex_home(&relay.base_url().replace("/v1", ""));
    let config = std::fs::read_to_string(direct.path().join("config.toml")).unwrap();

    // What an older codex-helper left: Codex on `codex_proxy`, and a switch state without a
    // redirect (older states have none).
    let plan = PatchPlan::new(Preset::Default, false, Compaction::Auto).unwrap();
    let mut originals = patch::helper_table_originals(Some(&config)).unwrap();
    let legacy = patch::switch_on(Some(&config), &plan, &proxy.url("/v1"), &mut originals).unwrap();
    std::fs::write(home.join("config.toml"), &legacy).unwrap();
    let mut state = serde_json::json!({
        "version": 1, "preset": "default", "originals": originals, "auth": null,
    });
    state["originals"]
        .as_object_mut()
        .unwrap()
        .remove("redirect");
    std::fs::write(
        home.join(codex_helper::codex::switch::STATE_FILE),
        state.to_string(),
    )
    .unwrap();
    let made = run_codex_at(
        home,
        work.path(),
        &["exec", "--skip-git-repo-check", "words from long ago"],
        &[],
    )
    .await;
    assert_ran(&made, "a thread through the older helper");
    let (thread, provider) = threads(home).pop().unwrap();
    assert_eq!(provider, "codex_proxy");

    // switch off: the helper's table becomes an alias of the user's provider.
    let (ok, out) = run(&homes, &["switch", "off"]).await;
    assert!(ok, "{out}");
    let off = std::fs::read_to_string(home.join("config.toml")).unwrap();
    assert!(off.starts_with(&config), "the user's config is back: {off}");
    assert!(off.contains(patch::ALIAS_MARK), "{off}");
    // Codex resumes a thread only with its own provider in force, so the alias is chosen for
    // the one command, as `switch off` says.
    assert!(out.contains("-c model_provider=codex_proxy"), "{out}");
    let resumed = run_codex_at(
        home,
        work.path(),
        &[
            "exec",
            "--skip-git-repo-check",
            "-c",
            "model_provider=codex_proxy",
            "resume",
            &thread,
            "and now",
        ],
        &[],
    )
    .await;
    assert_ran(&resumed, "resume through the alias");
    let (session, auth, body) = turns(&relay).last().unwrap().clone();
    assert_eq!(
        (session.as_str(), auth.as_str()),
        (thread.as_str(), "Bearer e2e-client-key")
    );
    assert!(body.contains("words from long ago"));

    // Without the alias, Codex refuses the thread: that is what `session retag` is for.
    std::fs::write(home.join("config.toml"), &config).unwrap();
    let refused = run_codex_at(
        home,
        work.path(),
        &["exec", "--skip-git-repo-check", "resume", &thread, "again"],
        &[],
    )
    .await;
    assert!(
        !refused.success && refused.stderr.contains("codex_proxy"),
        "stdout: {}\nstderr: {}",
        refused.stdout,
        refused.stderr
    );

    let (ok, out) = run(
        &homes,
        &["session", "retag", "--from", "codex_proxy", "--to", "nope"],
    )
    .await;
    assert!(!ok && out.contains("not configured"), "{out}");
    let (ok, out) = run(
        &homes,
        &[
            "session",
            "retag",
            "--from",
            "codex_proxy",
            "--to",
            "helper",
            "--dry-run",
        ],
    )
    .await;
    assert!(
        ok && out.contains("Would retag 1 thread(s)") && out.contains(&thread),
        "{out}"
    );
    assert_eq!(
        threads(home),
        vec![(thread.clone(), "codex_proxy".to_string())]
    );
    let (ok, out) = run(
        &homes,
        &[
            "session",
            "retag",
            "--from",
            "codex_proxy",
            "--to",
            "helper",
        ],
    )
    .await;
    assert!(ok && out.contains("Retagged 1 thread(s)"), "{out}");
    assert!(out.contains("1 row(s) of Codex's thread index"), "{out}");
    assert_eq!(threads(home), vec![(thread.clone(), "helper".to_string())]);
    assert!(
        std::fs::read_dir(homes.helper.path().join("backups"))
            .unwrap()
            .count()
            == 1,
        "a copy of the originals is kept"
    );
    let last = run_codex_at(
        home,
        work.path(),
        &[
            "exec",
            "--skip-git-repo-check",
            "resume",
            "--last",
            "once more",
        ],
        &[],
    )
    .await;
    assert_ran(&last, "resume --last after the retag");
    let (session, _, body) = turns(&relay).last().unwrap().clone();
    assert_eq!(session, thread, "resume --last finds the retagged thread");
    assert!(body.contains("words from long ago") && body.contains("once more"));
}

/// A served proxy with the `official-relay` preset, Codex's files switched to it, and a Codex
/// to run against it. `websocket` is `responses_websocket` in the helper's config.
async fn official_relay(
    relay: &MockRelay,
    websocket: bool,
) -> (support::cli::Homes, support::cli::Served, Codex) {
    use support::cli::{Homes, serve};
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.client_patch]\npreset = \"official-relay\"\nresponses_websocket = {websocket}\n[codex.providers.a]\nbase_url = \"{}\"\nauth_token = \"relay-key-0123456789\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let original = codex_home("http://127.0.0.1:9");
    std::fs::copy(
        original.path().join("config.toml"),
        homes.codex.path().join("config.toml"),
    )
    .unwrap();
    let served = serve(homes.command(&["serve"])).await;
    let codex = Codex {
        home: tempfile::tempdir().unwrap(),
        work: tempfile::tempdir().unwrap(),
    };
    std::fs::copy(
        homes.codex.path().join("config.toml"),
        codex.home.path().join("config.toml"),
    )
    .unwrap();
    (homes, served, codex)
}

/// `official-relay --responses-websocket`: Codex's turns (a new one and a resumed one) go over
/// the Responses WebSocket through the proxy to a relay that speaks it, and the ledger has one
/// row per turn with the relay's exact tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_relay_turns_go_over_the_responses_websocket() {
    use support::cli::run;
    let relay = MockRelay::start("a").await;
    relay.speak_websocket();
    let (homes, served, codex) = official_relay(&relay, true).await;
    let config = std::fs::read_to_string(codex.home.path().join("config.toml")).unwrap();
    assert!(config.contains("supports_websockets = true"), "{config}");
    // Codex reaches the proxy through a tap, to see what goes over the wire between them.
    let proxy = served
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let tap = support::tap::Tap::start(proxy.parse().unwrap()).await;
    assert!(config.contains(proxy), "{config}");
    let config = config.replace(proxy, &tap.addr.to_string());
    std::fs::write(codex.home.path().join("config.toml"), config).unwrap();

    let one = run_codex(&codex, &["exec", "--skip-git-repo-check", "say hi"]).await;
    assert_ran(&one, "the first turn");
    assert!(one.stdout.contains("hi from a"), "{}", one.stdout);
    let two = run_codex(
        &codex,
        &[
            "exec",
            "--skip-git-repo-check",
            "resume",
            "--last",
            "and again",
        ],
    )
    .await;
    assert_ran(&two, "the resumed turn");

    let received = relay.received();
    let turns: Vec<serde_json::Value> = received
        .iter()
        .filter(|r| r.method == "WS")
        .map(|r| r.json())
        .filter(|f| f["type"] == "response.create" && f["generate"] != false)
        .collect();
    assert!(turns.len() >= 2, "{} turns over the WebSocket", turns.len());
    assert!(
        !received
            .iter()
            .any(|r| r.method == "POST" && r.path_and_query == "/v1/responses"),
        "no turn fell back to HTTP"
    );
    let handshake = received
        .iter()
        .find(|r| r.method == "GET" && r.path_and_query == "/v1/responses")
        .unwrap();
    assert_eq!(
        handshake.headers["authorization"],
        "Bearer relay-key-0123456789"
    );
    // permessage-deflate was agreed with Codex: its frames and the proxy's come compressed.
    let sockets: Vec<_> = tap
        .wires()
        .into_iter()
        .map(|w| {
            (
                support::tap::websocket_frames(&w.from_client),
                support::tap::websocket_frames(&w.from_server),
            )
        })
        .filter(|((head, _), _)| head.starts_with("GET /v1/responses"))
        .collect();
    assert!(
        !sockets.is_empty(),
        "Codex opened WebSockets through the tap"
    );
    for ((asked, sent), (answered, received)) in &sockets {
        let asked = asked.to_ascii_lowercase();
        assert!(
            asked.contains("sec-websocket-extensions: permessage-deflate"),
            "{asked}"
        );
        let answered = answered.to_ascii_lowercase();
        assert!(
            answered.contains("sec-websocket-extensions: permessage-deflate\r\n"),
            "{answered}"
        );
        let data = |frames: &Vec<(bool, u8)>| -> Vec<bool> {
            frames
                .iter()
                .filter(|(_, op)| matches!(op, 1 | 2))
                .map(|(rsv1, _)| *rsv1)
                .collect()
        };
        let (sent, received) = (data(sent), data(received));
        assert!(
            sent.contains(&true),
            "Codex compressed its messages: {sent:?}"
        );
        assert!(
            !received.is_empty() && received.iter().all(|c| *c),
            "the proxy compressed its messages: {received:?}"
        );
    }

    let (ok, out) = run(&homes, &["switch", "status", "--json"]).await;
    assert!(ok, "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["responses_websocket"]["in_use"], true, "{out}");
    assert_eq!(
        status["responses_websocket"]["relays"][0]["acceptance"]["result"], "accepts",
        "{out}"
    );

    stop(served).await;
    let (ok, out) = run(&homes, &["usage", "tail", "--json", "--limit", "50"]).await;
    assert!(ok, "{out}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .flat_map(|v: serde_json::Value| match v {
            serde_json::Value::Array(rows) => rows,
            row => vec![row],
        })
        .filter(|r| r["path"] == "/v1/responses")
        .collect();
    assert_eq!(rows.len(), turns.len(), "one ledger row per turn: {out}");
    assert!(rows.iter().all(|r| r["total_tokens"] == 1205), "{out}");
}

/// With `responses_websocket` on and a relay that refuses the transport, Codex falls back to
/// HTTP at once: the proxy answers its one upgrade 426, and Codex tries no other (a 404 would
/// cost it seven handshakes with backoff, about 6 s). Counted on the wire, not timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refusing_the_websocket_costs_codex_no_time() {
    let relay = MockRelay::start("a").await;
    for websocket in [false, true] {
        let (homes, served, codex) = official_relay(&relay, websocket).await;
        // Codex reaches the proxy through a tap, to count its upgrade attempts.
        let proxy = served
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let tap = support::tap::Tap::start(proxy.parse().unwrap()).await;
        let config = std::fs::read_to_string(codex.home.path().join("config.toml")).unwrap();
        assert!(config.contains(proxy), "{config}");
        let config = config.replace(proxy, &tap.addr.to_string());
        std::fs::write(codex.home.path().join("config.toml"), config).unwrap();

        let run = run_codex(&codex, &["exec", "--skip-git-repo-check", "say hi"]).await;
        assert_ran(&run, "a turn");
        let wires = tap.wires();
        let count = |haystack: &[u8], needle: &str| {
            String::from_utf8_lossy(haystack)
                .to_ascii_lowercase()
                .matches(needle)
                .count()
        };
        let upgrades: usize = wires
            .iter()
            .map(|w| count(&w.from_client, "sec-websocket-key:"))
            .sum();
        let refused: usize = wires
            .iter()
            .map(|w| count(&w.from_server, "http/1.1 426"))
            .sum();
        let posts: usize = wires
            .iter()
            .map(|w| count(&w.from_client, "post /v1/responses "))
            .sum();
        if websocket {
            assert_eq!((upgrades, refused), (1, 1), "one upgrade, answered 426");
        } else {
            assert_eq!(upgrades, 0, "no upgrade with the transport off");
        }
        assert!(posts >= 1, "the turn went over HTTP");
        let handshakes = relay
            .received()
            .iter()
            .filter(|r| r.method == "GET" && r.path_and_query == "/v1/responses")
            .count();
        assert!(handshakes <= 1, "{handshakes} handshakes reached the relay");
        // `switch status` asks the relay itself (one more handshake).
        let (ok, out) = support::cli::run(&homes, &["switch", "status"]).await;
        assert!(ok, "{out}");
        if websocket {
            assert!(out.contains("Responses WebSocket: in use"), "{out}");
            assert!(out.contains("a.default: refuses it (HTTP 426)"), "{out}");
        } else {
            assert!(out.contains("Responses WebSocket: not in use"), "{out}");
        }
        stop(served).await;
    }
}
