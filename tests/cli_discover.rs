//! Codex binary discovery with the real binary: `switch on` finds a Codex that is not on
//! `PATH` (an install folder under `HOME`), records it in the switch state, `switch status`
//! shows it, and `serve` uses the recorded one for the `/models` catalog.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::{Homes, LIMIT, serve};
use support::mock_relay::MockRelay;

/// A fake Codex in `<home>/.volta/bin` printing `version`.
fn volta_codex(home: &Path, version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = home.join(".volta").join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join("codex");
    // `--version`, and `debug models --bundled` with one entry the test can recognise.
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = debug ]; then echo '{{\"models\":[{{\"slug\":\"gpt-5.1\",\"display_name\":\"GPT-5.1\",\"base_instructions\":\"from the volta codex\"}}]}}'; else echo 'codex-cli {version}'; fi\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn stdout_of(mut command: tokio::process::Command) -> (bool, String) {
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test]
async fn switch_on_records_the_codex_it_found_and_serve_uses_it() {
    let homes = Homes::new();
    let user_home = tempfile::tempdir().unwrap();
    let codex = volta_codex(user_home.path(), "0.171.0");
    let with_env = |args: &[&str]| {
        let mut command = homes.command(args);
        // No codex (and no npm) on PATH: only the install folder has one.
        command
            .env("PATH", "/nonexistent")
            .env("HOME", user_home.path());
        command
    };

    let (ok, out) = stdout_of(with_env(&["switch", "on", "--port", "3999", "--json"])).await;
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["codex_binary"]["path"], codex.display().to_string());
    assert_eq!(report["codex_binary"]["version"], "0.171.0");
    assert_eq!(report["codex_binary"]["origin"], "install_dir");
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(homes.codex.path().join("codex-helper-switch-state.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["codex_binary"]["path"],
        codex.display().to_string(),
        "{state}"
    );

    let (ok, out) = stdout_of(with_env(&["switch", "status", "--json"])).await;
    assert!(ok, "{out}");
    let json_start = out.find('{').unwrap();
    let status: Value =
        serde_json::from_str(&out[json_start..out.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(status["codex_binary"]["version"], "0.171.0");
    assert!(
        status["models_catalog"]
            .as_str()
            .unwrap()
            .contains("Codex 0.171.0"),
        "{status}"
    );
    let (ok, out) = stdout_of(with_env(&["switch", "status"])).await;
    assert!(
        ok && out.contains(&format!("Codex 0.171.0 ({}", codex.display())),
        "{out}"
    );

    // `serve` from an environment where no search finds it (a service manager's): the
    // recorded binary is used.
    let relay = MockRelay::start("r").await;
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.providers.r]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let mut command = homes.command(&["serve", "--no-switch"]);
    let elsewhere = tempfile::tempdir().unwrap();
    command
        .env("PATH", "/nonexistent")
        .env("HOME", elsewhere.path());
    let mut served = serve(command).await;
    let logged = format!("Codex for /models: {} (0.171.0", codex.display());
    let log = served.log_with(&logged).await;
    assert!(log.contains(&logged), "{log}");
    // The relay's list, translated with the recorded Codex's bundled metadata.
    let catalog: Value = support::client()
        .get(format!("{}/v1/models?client_version=0.171.0", served.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = catalog["models"]
        .as_array()
        .unwrap_or_else(|| panic!("{catalog}"));
    assert!(
        models
            .iter()
            .any(|m| m["base_instructions"] == "from the volta codex"),
        "{catalog}"
    );
    served.child.kill().await.unwrap();
}

#[tokio::test]
async fn without_any_codex_switch_on_says_so() {
    let homes = Homes::new();
    let user_home = tempfile::tempdir().unwrap();
    let system_has_one = support::cli::system_codex();
    let mut command = homes.command(&["switch", "on", "--port", "3999"]);
    command
        .env("PATH", "/nonexistent")
        .env("HOME", user_home.path());
    let (ok, out) = stdout_of(command).await;
    assert!(ok, "{out}");
    if !system_has_one {
        assert!(out.contains("No runnable Codex binary was found"), "{out}");
        let state =
            std::fs::read_to_string(homes.codex.path().join("codex-helper-switch-state.json"))
                .unwrap();
        assert!(!state.contains("codex_binary"), "nothing recorded: {state}");
    }
}
