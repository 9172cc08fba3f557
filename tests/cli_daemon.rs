//! Resident mode with the real binary: `serve --resident`, `daemon status|stop|restart`, a
//! second start refused, and a restart that keeps a session's affinity, a relay's cooldown and
//! a balance.
//! Loopback ports only; every wait bounded; the helper is killed at the end even on failure.

mod support;

use serde_json::Value;
use support::cli::{Homes, run};
use support::mock_relay::{Fault, MockRelay};
use support::{client, providers, turn};

/// Kills the resident helpers a test started, whatever happens to the test.
#[derive(Default)]
struct Cleanup(std::sync::Mutex<Vec<u32>>);

impl Cleanup {
    fn track(&self, pid: u32) {
        self.0.lock().unwrap().push(pid);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in self.0.lock().unwrap().iter() {
            // SAFETY: signals a process this test started.
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
            }
        }
    }
}

async fn status(homes: &Homes) -> (bool, Value) {
    let (ok, out) = run(homes, &["daemon", "status", "--json"]).await;
    let json = out.find('{').map_or(Value::Null, |start| {
        let end = out.rfind('}').unwrap();
        serde_json::from_str(&out[start..=end]).unwrap_or(Value::Null)
    });
    (ok, json)
}

/// Starts the resident helper; its pid (tracked for cleanup).
async fn start(homes: &Homes, cleanup: &Cleanup, env: &[(&str, &str)]) -> u32 {
    let mut command = homes.command(&["serve", "--resident", "--port", "0", "--no-switch"]);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(support::cli::LIMIT * 2, command.output())
        .await
        .expect("serve --resident returned in time")
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let (_, json) = status(homes).await;
    if let Some(pid) = json["pid"].as_u64() {
        cleanup.track(pid as u32);
    }
    assert!(output.status.success(), "{text}");
    assert!(text.contains("running in the background"), "{text}");
    json["pid"].as_u64().expect("a pid") as u32
}

/// The proxy's URL from `daemon status`.
async fn proxy_url(homes: &Homes) -> String {
    let (ok, json) = status(homes).await;
    assert!(ok, "{json}");
    format!("http://{}", json["proxy"].as_str().unwrap())
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks the process exists.
    let exists = unsafe { libc::kill(pid as i32, 0) == 0 };
    exists
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
}

#[tokio::test]
async fn resident_start_status_refusal_stop() {
    let cleanup = Cleanup::default();
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), "version = 5\n").unwrap();
    let pid = start(&homes, &cleanup, &[]).await;

    let (ok, json) = status(&homes).await;
    assert!(ok);
    assert_eq!(json["running"], true);
    assert_eq!(json["resident"], true);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        json["admin_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{json}"
    );
    assert!(
        json["log"].as_str().unwrap().ends_with("logs/resident.log"),
        "{json}"
    );
    // The announcement is private to the user.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(homes.helper.path().join("state/serve.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (ok, out) = run(&homes, &["daemon", "status"]).await;
    assert!(ok && out.contains(&format!("pid {pid}")), "{out}");
    // `doctor` knows the helper on its port is this home's own.
    let port = json["proxy"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let (_, out) = run(&homes, &["doctor", "--json", "--offline", "--port", &port]).await;
    assert!(
        out.contains("\"findings\"") && !out.contains("port.conflict"),
        "{out}"
    );

    // A second serve on the same home, in the foreground or resident, is refused.
    for args in [
        &["serve", "--no-tui", "--port", "0", "--no-switch"][..],
        &["serve", "--resident", "--port", "0", "--no-switch"][..],
    ] {
        let (ok, out) = run(&homes, args).await;
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.contains("already running") && out.contains(&format!("pid {pid}")),
            "{args:?}: {out}"
        );
    }
    assert!(alive(pid));

    let (ok, out) = run(&homes, &["daemon", "stop"]).await;
    assert!(
        ok && out.contains(&format!("stopped codex-helper (pid {pid})")),
        "{out}"
    );
    assert!(!alive(pid), "gone once stop returns");
    let (ok, json) = status(&homes).await;
    assert!(!ok, "status says no helper by its exit code");
    assert_eq!(json["running"], false);
    assert!(!homes.helper.path().join("state/serve.json").exists());
    let (ok, out) = run(&homes, &["daemon", "stop"]).await;
    assert!(!ok && out.contains("no codex-helper is running"), "{out}");
    let log = std::fs::read_to_string(homes.helper.path().join("logs/resident.log")).unwrap();
    assert!(log.contains("listening on"), "{log}");
}

#[tokio::test]
async fn a_stale_announcement_does_not_block_a_start() {
    let cleanup = Cleanup::default();
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), "version = 5\n").unwrap();
    // A helper killed with -9 leaves its announcement; the pid here is this test's own (alive).
    std::fs::create_dir_all(homes.helper.path().join("state")).unwrap();
    std::fs::write(
        homes.helper.path().join("state/serve.json"),
        format!(
            "{{\"pid\": {}, \"proxy\": \"127.0.0.1:9\", \"admin\": null, \"started_ms\": 1}}",
            std::process::id()
        ),
    )
    .unwrap();
    let (ok, json) = status(&homes).await;
    assert!(
        !ok && json["running"] == false,
        "no lock held: not running ({json})"
    );
    let (ok, out) = run(&homes, &["daemon", "stop"]).await;
    assert!(!ok && out.contains("no codex-helper is running"), "{out}");
    let pid = start(&homes, &cleanup, &[]).await;
    assert_ne!(pid, std::process::id());
    let (ok, out) = run(&homes, &["daemon", "stop"]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_restart_keeps_affinity_cooldowns_and_balances() {
    let cleanup = Cleanup::default();
    let a = MockRelay::start("a").await;
    let b = MockRelay::start("b").await;
    a.always(Some(Fault::status(500)));
    // b's balance: looked up once, when asked (never at start), so a restart must keep it.
    b.answer_get(
        "/v1/usage",
        200,
        r#"{"isValid": true, "mode": "quota_limited", "remaining": 7.25, "quota": {"limit": 20, "used": 12.75, "remaining": 7.25}}"#,
    );
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n{}[balance]\nrefresh_on_start = false\nrequest_refresh_delay_ms = 3600000\n",
            // b's own key: its balance is looked up with it.
            providers(&[("a", &a.base_url()), ("b", &b.base_url())]).replace(
                "[codex.providers.b]\n",
                "[codex.providers.b]\nauth_token = \"sk-daemon-b-0123456789\"\n"
            )
        ),
    )
    .unwrap();
    let first = start(&homes, &cleanup, &[]).await;
    let url = proxy_url(&homes).await;
    assert_eq!(turn(&url, "kept-session").await, "b", "a fails, b answers");
    let admin = |json: &Value| {
        format!(
            "http://{}/__codex_helper/api/v1",
            json["admin"].as_str().unwrap()
        )
    };
    let b_balance = |balances: &Value| {
        balances["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["endpoint"] == "b.default")
            .cloned()
            .unwrap_or_else(|| panic!("no b.default in {balances}"))
    };
    let (_, json) = status(&homes).await;
    let refreshed: Value = client()
        .post(format!("{}/providers/balances/refresh", admin(&json)))
        .json(&serde_json::json!({"provider_id": "b"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b_balance(&refreshed)["status"], "ok", "{refreshed}");
    let lookups = b.hits_on("/v1/usage");
    assert!(lookups >= 1, "b's balance was looked up");
    let (ok, before) = run(&homes, &["routing", "explain", "--session", "kept-session"]).await;
    assert!(ok && before.contains("cooling down"), "{before}");

    let (ok, out) = run(&homes, &["daemon", "restart"]).await;
    let (_, json) = status(&homes).await;
    if let Some(pid) = json["pid"].as_u64() {
        cleanup.track(pid as u32);
    }
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("stopped codex-helper (pid {first})")),
        "{out}"
    );
    let second = json["pid"].as_u64().unwrap() as u32;
    assert_ne!(second, first);
    assert!(!alive(first));

    // The new process still has a cooling down and the session bound to b.
    let (ok, after) = run(&homes, &["routing", "explain", "--session", "kept-session"]).await;
    assert!(ok, "{after}");
    assert!(
        after.contains("cooling down") && after.contains("HTTP 500"),
        "{after}"
    );
    assert!(after.contains("bound to b.default"), "{after}");
    assert!(
        after.contains(&format!("pid {second}")),
        "asked of the new helper: {after}"
    );
    let sessions: Value = {
        let admin = json["admin"].as_str().unwrap();
        client()
            .get(format!("http://{admin}/__codex_helper/api/v1/sessions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let kept = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s.to_string().contains("kept-session"))
        .unwrap_or_else(|| panic!("no kept-session in {sessions}"));
    assert!(kept.to_string().contains("b.default"), "{kept}");
    // b's balance came back with the new process, without asking b again.
    let balances: Value = client()
        .get(format!("{}/providers/balances", admin(&json)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept_balance = b_balance(&balances);
    assert_eq!(kept_balance["status"], "ok", "{balances}");
    assert!(kept_balance.to_string().contains("7.25"), "{kept_balance}");
    assert_eq!(
        b.hits_on("/v1/usage"),
        lookups,
        "not looked up again after the restart"
    );
    let hits_on_a = a.hits();
    a.always(None);
    assert_eq!(turn(&proxy_url(&homes).await, "kept-session").await, "b");
    assert_eq!(a.hits(), hits_on_a, "a is still cooling down: not tried");

    let (ok, out) = run(&homes, &["daemon", "stop"]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_resident_start_that_fails_says_why() {
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), "version = 5\nnot_a_key = 1\n").unwrap();
    let (ok, out) = run(
        &homes,
        &["serve", "--resident", "--port", "0", "--no-switch"],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("exited") && out.contains("not_a_key"),
        "the detached helper's own error, from its log: {out}"
    );
    let (ok, json) = status(&homes).await;
    assert!(!ok && json["running"] == false);
}
