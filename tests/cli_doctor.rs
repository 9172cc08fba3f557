//! `codex-helper doctor --json` on fixture homes: one setup per finding, the real binary,
//! loopback only, every run bounded.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::{Homes, LIMIT, run};
use support::outbound::free_port;

/// A folder holding only a fake `codex` that prints `version`, for `PATH`.
fn fake_codex(dir: &Path, version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join("codex");
    std::fs::write(&path, format!("#!/bin/sh\necho 'codex-cli {version}'\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// `doctor --json` (and `extra`) with `PATH` holding only a fake Codex, `HOME` in the fixture:
/// whether it succeeded, and its findings.
async fn doctor(homes: &Homes, extra: &[&str], env: &[(&str, &str)]) -> (bool, Vec<Value>, String) {
    let bin = fake_codex(homes.helper.path(), "0.171.0");
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    let mut command = homes.command(&args);
    command
        .env("PATH", &bin)
        .env("HOME", homes.helper.path())
        .env_remove("DOCTOR_TEST_KEY");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(report["ok"], output.status.success(), "{report}");
    let text = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    (
        output.status.success(),
        report["findings"].as_array().unwrap().clone(),
        text,
    )
}

/// `doctor --json --offline` on a free port: the findings that need no relay and no helper.
async fn offline(homes: &Homes) -> (bool, Vec<Value>, String) {
    doctor(
        homes,
        &["--offline", "--port", &free_port().to_string()],
        &[],
    )
    .await
}

fn find<'a>(findings: &'a [Value], id: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {findings:#?}"))
}

fn has(findings: &[Value], id: &str) -> bool {
    findings.iter().any(|f| f["id"] == id)
}

fn write_config(homes: &Homes, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(homes.helper_config(), text).unwrap();
    std::fs::set_permissions(homes.helper_config(), std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_fresh_home_is_missing_its_config_and_has_no_error() {
    let homes = Homes::new();
    let (ok, findings, _) = offline(&homes).await;
    assert!(ok, "{findings:#?}");
    assert_eq!(find(&findings, "config.missing")["severity"], "info");
    assert!(
        find(&findings, "config.missing")["fix"]
            .as_str()
            .unwrap()
            .contains("codex-helper serve")
    );
    let binary = find(&findings, "codex.binary");
    assert!(
        binary["message"].as_str().unwrap().contains("0.171.0"),
        "found on PATH: {binary}"
    );
    assert_eq!(find(&findings, "clock.skipped")["severity"], "info");
}

#[tokio::test]
async fn an_invalid_config_is_an_error_and_the_exit_code_says_so() {
    let homes = Homes::new();
    write_config(
        &homes,
        "version = 5\n[codex.providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\nbase_urll = \"typo\"\n",
        0o600,
    );
    let (ok, findings, _) = offline(&homes).await;
    assert!(!ok);
    let invalid = find(&findings, "config.invalid");
    assert_eq!(invalid["severity"], "error");
    assert!(
        invalid["message"].as_str().unwrap().contains("base_urll"),
        "{invalid}"
    );
}

#[tokio::test]
async fn ignored_keys_missing_variables_and_inline_secrets_in_a_readable_file() {
    let homes = Homes::new();
    write_config(
        &homes,
        "version = 5\n[ui]\ntheme = \"dark\"\n\
         [codex.providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\nauth_token_env = \"DOCTOR_TEST_KEY\"\n\
         [codex.providers.b]\nbase_url = \"http://127.0.0.1:2/v1\"\nauth_token = \"sk-inline-doctor-secret\"\n",
        0o644,
    );
    let (ok, findings, text) = offline(&homes).await;
    assert!(!ok, "a readable file holding a secret is an error");
    assert_eq!(find(&findings, "config.ignored_key")["severity"], "warning");
    assert!(
        find(&findings, "config.ignored_key")["message"]
            .as_str()
            .unwrap()
            .contains("`ui`")
    );
    let missing = find(&findings, "credential.missing_env");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("DOCTOR_TEST_KEY"),
        "{missing}"
    );
    assert!(
        missing["fix"]
            .as_str()
            .unwrap()
            .contains("export DOCTOR_TEST_KEY=")
    );
    let inline = find(&findings, "secret.inline");
    assert!(
        inline["message"]
            .as_str()
            .unwrap()
            .contains("codex.providers.b.auth_token")
    );
    let mode = find(&findings, "config.mode");
    assert_eq!(mode["severity"], "error");
    assert!(
        mode["fix"].as_str().unwrap().starts_with("chmod 600 "),
        "{mode}"
    );
    assert!(
        !text.contains("sk-inline-doctor-secret"),
        "the secret is never printed"
    );

    // Set the variable and close the file: only the inline secret is left to say.
    write_config(
        &homes,
        &std::fs::read_to_string(homes.helper_config()).unwrap(),
        0o600,
    );
    let (ok, findings, _) = doctor(
        &homes,
        &["--offline", "--port", &free_port().to_string()],
        &[("DOCTOR_TEST_KEY", "k")],
    )
    .await;
    assert!(ok, "{findings:#?}");
    assert!(!has(&findings, "credential.missing_env") && !has(&findings, "config.mode"));
    assert!(has(&findings, "secret.inline"));
}

#[tokio::test]
async fn codex_pointing_at_a_helper_that_is_not_running() {
    let homes = Homes::new();
    let port = free_port().to_string();
    let (ok, out) = run(&homes, &["switch", "on", "--port", &port]).await;
    assert!(ok, "{out}");
    let (ok, findings, _) = doctor(&homes, &["--offline"], &[]).await;
    assert!(!ok);
    let down = find(&findings, "proxy.not_running");
    assert_eq!(down["severity"], "error");
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{down}"
    );
    assert!(down["fix"].as_str().unwrap().contains("serve --resident"));
}

#[tokio::test]
async fn codexs_config_changed_behind_the_switch() {
    let homes = Homes::new();
    let (ok, out) = run(
        &homes,
        &["switch", "on", "--port", &free_port().to_string()],
    )
    .await;
    assert!(ok, "{out}");
    // The user points Codex elsewhere by hand; the switch state is left behind.
    std::fs::write(
        homes.codex.path().join("config.toml"),
        "model_provider = \"mine\"\n[model_providers.mine]\nname = \"Mine\"\nbase_url = \"https://relay.example/v1\"\n",
    )
    .unwrap();
    let (_, findings, _) = offline(&homes).await;
    let drift = find(&findings, "codex.drift");
    assert_eq!(drift["severity"], "warning");
    assert!(
        drift["message"]
            .as_str()
            .unwrap()
            .contains("no longer points at codex-helper"),
        "{drift}"
    );
    assert!(
        !has(&findings, "proxy.not_running"),
        "Codex no longer points at the helper"
    );
}

#[tokio::test]
async fn another_program_on_the_helpers_port() {
    let homes = Homes::new();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port().to_string();
    let (ok, findings, _) = doctor(&homes, &["--offline", "--port", &port], &[]).await;
    assert!(!ok);
    let conflict = find(&findings, "port.conflict");
    assert_eq!(conflict["severity"], "error");
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains(&format!("port {port} is taken")),
        "{conflict}"
    );
    drop(squatter);
}

#[tokio::test]
async fn the_codex_binary_configured_or_not_found() {
    let homes = Homes::new();
    write_config(
        &homes,
        "version = 5\n[proxy]\ncodex_binary = \"/nonexistent/codex\"\n",
        0o600,
    );
    let (ok, findings, _) = offline(&homes).await;
    assert!(ok, "a warning only: {findings:#?}");
    let broken = find(&findings, "codex.binary_not_runnable");
    assert_eq!(broken["severity"], "warning");
    assert!(
        broken["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/codex")
    );

    // No codex on PATH nor in the home's install folders: found only if the system has one.
    write_config(&homes, "version = 5\n", 0o600);
    std::fs::remove_dir_all(homes.helper.path().join("bin")).unwrap();
    let mut command = homes.command(&[
        "doctor",
        "--json",
        "--offline",
        "--port",
        &free_port().to_string(),
    ]);
    command
        .env("PATH", "/nonexistent")
        .env("HOME", homes.helper.path());
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let system_has_one = support::cli::system_codex();
    if system_has_one {
        assert!(has(findings, "codex.binary"), "{findings:#?}");
    } else {
        assert_eq!(
            find(findings, "codex.binary_missing")["severity"],
            "warning"
        );
    }
}

#[tokio::test]
async fn ledger_health() {
    let homes = Homes::new();
    let ledger = homes.helper.path().join("ledger.sqlite3");
    {
        let mut conn = rusqlite::Connection::open(&ledger).unwrap();
        conn.execute_batch("CREATE TABLE t (a TEXT); CREATE INDEX t_a ON t (a);")
            .unwrap();
        let rows = conn.transaction().unwrap();
        for i in 0..2_000 {
            rows.execute(
                "INSERT INTO t VALUES (?1)",
                [format!("row {i} {}", "x".repeat(100))],
            )
            .unwrap();
        }
        rows.commit().unwrap();
    }
    let port = free_port().to_string();
    let (ok, findings, _) = doctor(&homes, &["--offline", "--port", &port], &[]).await;
    assert!(ok, "{findings:#?}");
    assert_eq!(find(&findings, "ledger.size")["severity"], "info");
    assert!(!has(&findings, "ledger.corrupt"));

    // Damage pages in the middle of the file: the index's pages no longer read as a b-tree.
    let mut bytes = std::fs::read(&ledger).unwrap();
    let page = 4096;
    let pages = bytes.len() / page;
    for p in pages / 2..pages - 1 {
        bytes[p * page..p * page + 64].fill(0xA5);
    }
    std::fs::write(&ledger, &bytes).unwrap();
    let (ok, findings, _) = doctor(&homes, &["--offline", "--port", &port], &[]).await;
    assert!(!ok);
    let corrupt = find(&findings, "ledger.corrupt");
    assert_eq!(corrupt["severity"], "error");

    // Not a database at all.
    std::fs::write(
        &ledger,
        b"this is not sqlite, just text that fills a header or more of it",
    )
    .unwrap();
    let (ok, findings, _) = doctor(&homes, &["--offline", "--port", &port], &[]).await;
    assert!(!ok);
    assert_eq!(find(&findings, "ledger.unreadable")["severity"], "error");
}

/// A loopback "relay" answering every request with a `Date` ten minutes behind.
async fn slow_clock_relay() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(LIMIT, socket.read(&mut buf)).await;
            let behind = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
            let reply = format!(
                "HTTP/1.1 404 Not Found\r\nDate: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                http_date(behind)
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (port, task)
}

/// An IMF-fixdate for `at` (test side, written independently of the parser under test).
fn http_date(at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test]
async fn a_relay_whose_clock_is_ten_minutes_behind() {
    let homes = Homes::new();
    let (port, relay) = slow_clock_relay().await;
    write_config(
        &homes,
        &format!(
            "version = 5\n[codex.providers.slow]\nbase_url = \"http://127.0.0.1:{port}/v1\"\n"
        ),
        0o600,
    );
    let (ok, findings, _) = doctor(&homes, &["--port", &free_port().to_string()], &[]).await;
    assert!(!ok, "ten minutes is an error");
    let skew = find(&findings, "clock.skew");
    assert_eq!(skew["severity"], "error");
    let message = skew["message"].as_str().unwrap();
    assert!(
        message.contains("slow.default") && message.contains("behind"),
        "{message}"
    );
    let secs: i64 = message
        .split(" s ")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((595..=605).contains(&secs), "{message}");
    relay.abort();

    // Offline: no relay is asked.
    let (_, findings, _) = offline(&homes).await;
    assert!(has(&findings, "clock.skipped") && !has(&findings, "clock.skew"));
}

#[tokio::test]
async fn a_switch_state_that_does_not_read() {
    let homes = Homes::new();
    std::fs::write(
        homes.codex.path().join("codex-helper-switch-state.json"),
        "{ half a file",
    )
    .unwrap();
    let (ok, findings, _) = offline(&homes).await;
    assert!(!ok);
    let unreadable = find(&findings, "codex.unreadable");
    assert_eq!(unreadable["severity"], "error");
    assert!(
        unreadable["message"]
            .as_str()
            .unwrap()
            .contains("codex-helper-switch-state.json"),
        "{unreadable}"
    );
}
