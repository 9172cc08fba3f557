//! `config …` commands and the new `provider add` flags on the real binary: migration with a
//! diff and a .bak, `serve` refusing an older config, validate, init, the Codex import, the
//! retry profile, inline secrets, and the JSON Schema.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::cli::{Homes, run, run_to_end};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/migrate")
            .join(name),
    )
    .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn an_old_config_is_refused_by_serve_then_migrated_with_a_diff_and_a_backup() {
    let homes = Homes::new();
    let v1 = fixture("v1.toml");
    std::fs::write(homes.helper_config(), &v1).unwrap();

    let (ok, stderr) = run_to_end(homes.command(&["serve", "--no-tui", "--port", "0"])).await;
    assert!(!ok, "serve must not start on a half-understood config");
    assert!(stderr.contains("version 1 (stations)"), "{stderr}");
    assert!(
        stderr.contains("codex-helper config migrate --write"),
        "{stderr}"
    );

    let (ok, out) = run(&homes, &["config", "migrate"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("-[codex.configs.monthly]"),
        "a unified diff: {out}"
    );
    assert!(out.contains("+[codex.providers.monthly]"), "{out}");
    assert!(out.contains("+version = 5"), "{out}");
    assert!(out.contains("Nothing written"), "{out}");
    assert!(out.contains("warning: disabled stations left out"), "{out}");
    assert_eq!(std::fs::read_to_string(homes.helper_config()).unwrap(), v1);

    let (ok, out) = run(&homes, &["config", "migrate", "--write"]).await;
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(homes.helper_config()).unwrap(),
        fixture("v1.expected.toml")
    );
    assert_eq!(
        std::fs::read_to_string(homes.helper.path().join("config.toml.bak")).unwrap(),
        v1
    );
    let (ok, out) = run(&homes, &["config", "migrate", "--write"]).await;
    assert!(ok && out.contains("already version 5"), "{out}");
    let (ok, out) = run(&homes, &["config", "validate"]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_config_json_home_is_refused_then_migrated_to_config_toml() {
    let homes = Homes::new();
    let json = homes.helper.path().join("config.json");
    std::fs::write(&json, fixture("config.json")).unwrap();
    let (ok, stderr) = run_to_end(homes.command(&["serve", "--no-tui", "--port", "0"])).await;
    assert!(!ok);
    assert!(
        stderr.contains("config.json is a config of the original"),
        "{stderr}"
    );
    assert!(
        !homes.helper_config().exists(),
        "no empty config.toml was created"
    );

    let (ok, out) = run(&homes, &["config", "migrate", "--write"]).await;
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(homes.helper_config()).unwrap(),
        fixture("config.expected.toml")
    );
    assert_eq!(
        std::fs::read_to_string(&json).unwrap(),
        fixture("config.json")
    );
}

#[tokio::test]
async fn validate_names_every_error_and_the_ignored_keys() {
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        "version = 5\n[retry.upstream]\non_staus = \"429\"\n",
    )
    .unwrap();
    let (ok, out) = run(&homes, &["config", "validate", "--json"]).await;
    assert!(!ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(
        out.lines()
            .take_while(|l| !l.starts_with("codex-helper:"))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["errors"][0]["key"], "retry.upstream.on_staus");
    assert!(
        json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("on_staus"),
        "{json}"
    );

    std::fs::write(
        homes.helper_config(),
        "version = 5\n[retry]\nallow_cross_station_before_first_output = true\n[retry.provider]\non_class = [\"teapot\"]\n",
    )
    .unwrap();
    let (ok, out) = run(&homes, &["config", "validate"]).await;
    assert!(!ok);
    assert!(
        out.contains("`retry.provider.on_class`: unknown failure class `teapot`"),
        "{out}"
    );

    std::fs::write(
        homes.helper_config(),
        "version = 5\n[retry]\nallow_cross_station_before_first_output = true\n[codex.providers.a]\nbase_url = \"https://a.example\"\nauth_token_env = \"CH_TEST_SURELY_UNSET\"\n",
    )
    .unwrap();
    let (ok, out) = run(&homes, &["config", "validate", "--json"]).await;
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(
        json["ignored_keys"],
        serde_json::json!(["retry.allow_cross_station_before_first_output"])
    );
    assert_eq!(
        json["missing_env"],
        serde_json::json!(["CH_TEST_SURELY_UNSET"])
    );
}

/// `config validate` checks "as `serve` would": a `[proxy]` limit `serve` refuses to start
/// with is an error here too (it used to be called valid).
#[tokio::test]
async fn validate_refuses_the_proxy_limits_serve_refuses() {
    let homes = Homes::new();
    for (limits, said) in [
        (
            "header_read_timeout_ms = 10",
            "header_read_timeout_ms = 10 is too short",
        ),
        ("max_headers = 2", "max_headers = 2 is too small"),
    ] {
        std::fs::write(
            homes.helper_config(),
            format!(
                "version = 5\n[proxy]\n{limits}\n[codex.providers.a]\nbase_url = \"http://127.0.0.1:9/v1\"\n"
            ),
        )
        .unwrap();
        let (ok, out) = run(&homes, &["config", "validate"]).await;
        assert!(!ok, "{out}");
        assert!(
            out.contains("`proxy`: [proxy] ") && out.contains(said),
            "{out}"
        );
        let (served, out) = run(&homes, &["serve", "--no-tui", "--no-switch", "--port", "0"]).await;
        assert!(!served && out.contains(said), "serve refuses it too: {out}");
    }
}

#[tokio::test]
async fn init_path_and_retry_profile() {
    let homes = Homes::new();
    std::fs::write(
        homes.codex.path().join("config.toml"),
        "model_provider = \"relay\"\n[model_providers.relay]\nbase_url = \"https://relay.example/v1\"\nenv_key = \"RELAY_KEY\"\n",
    )
    .unwrap();
    let (ok, out) = run(&homes, &["config", "path"]).await;
    assert!(ok);
    assert_eq!(out.trim(), homes.helper_config().display().to_string());

    let (ok, out) = run(&homes, &["config", "init"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("relay `relay`"), "{out}");
    let (ok, out) = run(&homes, &["config", "init"]).await;
    assert!(!ok && out.contains("--force"), "{out}");
    let (ok, out) = run(&homes, &["config", "init", "--force", "--no-import"]).await;
    assert!(ok, "{out}");
    assert!(
        !std::fs::read_to_string(homes.helper_config())
            .unwrap()
            .contains("[codex.providers.relay]")
    );
    assert!(homes.helper.path().join("config.toml.bak").exists());

    let (ok, out) = run(
        &homes,
        &["config", "set-retry-profile", "aggressive-failover"],
    )
    .await;
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(
        text.contains("[retry]\nprofile = \"aggressive-failover\"\n"),
        "{text}"
    );
    let (ok, out) = run(&homes, &["config", "set-retry-profile", "fastest"]).await;
    assert!(!ok && out.contains("cost-primary"), "{out}");
}

#[tokio::test]
async fn import_from_codex_adds_its_providers_with_their_keys() {
    let homes = Homes::new();
    std::fs::write(
        homes.codex.path().join("config.toml"),
        "[model_providers.alpha]\nname = \"Alpha\"\nbase_url = \"https://alpha.example/v1\"\nenv_key = \"CH_TEST_ALPHA_UNSET\"\n\
         [model_providers.mine]\nbase_url = \"http://127.0.0.1:3211/v1\"\n",
    )
    .unwrap();
    std::fs::write(
        homes.codex.path().join("auth.json"),
        r#"{"CH_TEST_ALPHA_UNSET": "sk-alpha-secret"}"#,
    )
    .unwrap();
    std::fs::write(homes.helper_config(), "# mine\nversion = 5\n").unwrap();
    std::fs::set_permissions(
        homes.helper_config(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (ok, out) = run(&homes, &["config", "import-from-codex"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("Imported from Codex: alpha"), "{out}");
    assert!(out.contains("Skipped `mine`"), "{out}");
    assert!(
        out.contains("warning: a relay key is now stored in"),
        "{out}"
    );
    assert!(!out.contains("sk-alpha-secret"), "{out}");
    let text = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(text.starts_with("# mine\nversion = 5\n"), "{text}");
    assert!(text.contains("alias = \"Alpha\""), "{text}");
    assert!(text.contains("auth_token = \"sk-alpha-secret\""), "{text}");
    assert_eq!(mode(&homes.helper_config()), 0o600);

    // A second import keeps what is there; overwrite shows, then replaces.
    let (ok, out) = run(&homes, &["config", "import-from-codex"]).await;
    assert!(ok && out.contains("Kept provider `alpha`"), "{out}");
    std::fs::write(
        homes.codex.path().join("config.toml"),
        "[model_providers.beta]\nbase_url = \"https://beta.example/v1\"\nenv_key = \"BETA_KEY\"\n",
    )
    .unwrap();
    let (ok, out) = run(&homes, &["config", "overwrite-from-codex", "--dry-run"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("-[codex.providers.alpha]") && out.contains("+[codex.providers.beta]"),
        "{out}"
    );
    assert!(
        std::fs::read_to_string(homes.helper_config())
            .unwrap()
            .contains("alpha")
    );
    let (ok, out) = run(&homes, &["config", "overwrite-from-codex", "--yes"]).await;
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(
        !text.contains("alpha") && text.contains("[codex.providers.beta]"),
        "{text}"
    );
}

#[tokio::test]
async fn provider_add_takes_endpoints_alias_disabled_and_inline_keys() {
    let homes = Homes::new();
    // A config readable by others becomes private once it holds a key.
    std::fs::write(homes.helper_config(), "version = 5\n").unwrap();
    std::fs::set_permissions(
        homes.helper_config(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (ok, out) = run(
        &homes,
        &[
            "provider",
            "add",
            "multi",
            "--alias",
            "Multi relay",
            "--disabled",
            "--endpoint",
            "hk=https://hk.multi.example/v1",
            "--endpoint",
            "us=https://us.multi.example/v1@5",
            "--api-key",
            "sk-inline-key",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("warning: the relay key is stored in"), "{out}");
    assert!(!out.contains("sk-inline-key"), "{out}");
    let text = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(
        text.contains("[codex.providers.multi]\nalias = \"Multi relay\"\nenabled = false\napi_key = \"sk-inline-key\"\n"),
        "{text}"
    );
    assert!(text.contains("[codex.providers.multi.endpoints.hk]\nbase_url = \"https://hk.multi.example/v1\"\npriority = 0\n"), "{text}");
    assert!(text.contains("[codex.providers.multi.endpoints.us]\nbase_url = \"https://us.multi.example/v1\"\npriority = 5\n"), "{text}");
    assert_eq!(mode(&homes.helper_config()), 0o600);

    let (ok, out) = run(
        &homes,
        &[
            "provider",
            "add",
            "multi",
            "--base-url",
            "https://x.example",
        ],
    )
    .await;
    assert!(!ok && out.contains("--replace"), "{out}");
    let (ok, out) = run(
        &homes,
        &[
            "provider",
            "add",
            "multi",
            "--base-url",
            "https://x.example",
            "--auth-token-env",
            "X_KEY",
            "--replace",
        ],
    )
    .await;
    assert!(ok && out.contains("Replaced relay `multi`"), "{out}");
    let text = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(
        !text.contains("sk-inline-key") && text.contains("auth_token_env = \"X_KEY\""),
        "{text}"
    );

    let (ok, out) = run(&homes, &["provider", "add", "none"]).await;
    assert!(!ok && out.contains("--base-url"), "{out}");
}

#[tokio::test]
async fn config_schema_prints_the_checked_in_schema() {
    let homes = Homes::new();
    let output = homes.command(&["config", "schema"]).output().await.unwrap();
    assert!(output.status.success());
    let checked_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config.schema.json"),
    )
    .unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), checked_in);
}

#[tokio::test]
async fn serve_starts_on_the_originals_v5_file_and_names_the_keys_without_effect() {
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), fixture("v5.toml")).unwrap();
    let mut served = support::cli::serve(homes.command(&["serve", "--no-switch"])).await;
    let log = served.log_so_far();
    for key in [
        "retry.provider.max_attempts",
        "retry.allow_cross_station_before_first_output",
        "retry.upstream.strategy",
    ] {
        assert!(
            log.contains(&format!("`{key}` is recognised but not used")),
            "{key}: {log}"
        );
    }
    assert!(!log.contains("retry.upstream.on_status"), "{log}");
    served.child.kill().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(homes.helper_config()).unwrap(),
        fixture("v5.toml"),
        "loaded as it is, not rewritten"
    );
}
