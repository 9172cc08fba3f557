//! The web console in a real browser: the real binary with mock relays and real ledger rows,
//! and `tests/console/run.mjs` driving Debian's Chromium through Playwright (`playwright-core`,
//! never a downloaded browser). `scripts/test` installs both.
//!
//! This side makes the facts (which session has how many requests, which relay's balance will
//! change) and hands them to the browser test as `FACTS`; the browser test checks that the
//! pages show them and that the console's actions act. Screenshots of every page land in
//! `target/tmp/console-screenshots/`.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cli::{Homes, serve};
use support::mock_relay::{Fault, MockRelay};
use support::{client, codex_body};

const KEY_A: &str = "sk-console-a-SECRET-0123456789";
const KEY_B: &str = "sk-console-b-SECRET-0123456789";
const TOKEN: &str = "console-admin-token-0123456789";
/// The browser test's whole run.
const BROWSER_LIMIT: Duration = Duration::from_secs(240);

fn sub2api(remaining: f64) -> String {
    json!({"isValid": true, "mode": "quota_limited", "remaining": remaining,
           "quota": {"limit": 20, "used": 20.0 - remaining, "remaining": remaining}})
    .to_string()
}

/// Two relays behind one entry node; balances looked up only when asked, so the console's
/// Refresh is what changes them.
fn config(a: &MockRelay, b: &MockRelay) -> String {
    format!(
        "version = 5\n[codex.providers.a]\nbase_url = \"{}\"\nauth_token = \"{KEY_A}\"\n\
         [codex.providers.b]\nbase_url = \"{}\"\nauth_token = \"{KEY_B}\"\n\
         [codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"a\", \"b\"]\n\
         [balance]\nrefresh_on_start = false\nrequest_refresh_delay_ms = 3600000\n",
        a.base_url(),
        b.base_url()
    )
}

/// One streamed turn in `session`; its status.
async fn turn(proxy: &str, session: &str) -> u16 {
    let reply = client()
        .post(format!("{proxy}/v1/responses"))
        .header("accept", "text/event-stream")
        .header("session-id", session)
        .body(codex_body("gpt-5.1", session, 200))
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    let _ = reply.bytes().await;
    status
}

async fn admin_get(base: &str, route: &str) -> Value {
    client()
        .get(format!("{base}{route}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What the browser test needs that `scripts/test` installs; a clear failure without it.
fn browser_tools() -> PathBuf {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    assert!(
        chromium.exists(),
        "{} is missing: run scripts/test, which installs Debian's chromium",
        chromium.display()
    );
    assert!(
        repo()
            .join("tests/console/node_modules/playwright-core")
            .exists(),
        "tests/console/node_modules is missing: run scripts/test, which installs playwright-core there"
    );
    chromium
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_console_shows_the_helper_and_acts_in_a_real_browser() {
    let chromium = browser_tools();
    let a = MockRelay::start("a").await;
    let b = MockRelay::start("b").await;
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), config(&a, &b)).unwrap();
    let mut command = homes.command(&["serve", "--no-switch"]);
    command.env("CODEX_HELPER_ADMIN_TOKEN", TOKEN);
    let served = serve(command).await;
    let console_line = served
        .log
        .iter()
        .find_map(|l| l.strip_prefix("codex-helper console: "))
        .unwrap_or_else(|| panic!("serve names no console URL:\n{}", served.log.join("\n")))
        .to_string();
    let base = homes.admin_base();
    assert!(
        base.starts_with(console_line.trim_end_matches('/')),
        "{console_line} vs {base}"
    );

    // Real ledger rows: three turns in one session, a failover in a second, a client error
    // in a third.
    let session = "console-session-one";
    for _ in 0..3 {
        assert_eq!(turn(&served.url, session).await, 200);
    }
    a.push(Fault::status(500));
    assert_eq!(turn(&served.url, "console-session-two").await, 200);
    a.push(Fault::status(400));
    assert_eq!(turn(&served.url, "console-session-three").await, 400);
    let requests_total = 5;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recent = admin_get(&base, "/request-ledger/recent").await;
        if recent["requests"].as_array().map(Vec::len) == Some(requests_total) {
            break;
        }
        assert!(Instant::now() < deadline, "the ledger rows: {recent}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing looked up yet: the console's Refresh is what brings this in.
    a.answer_get("/v1/usage", 200, &sub2api(7.25));

    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).unwrap();
    let facts = json!({
        "session": {"id": session, "requests": 3},
        "providers": ["a", "b"],
        "endpoint_to_disable": "b.default",
        "balance_provider": "a",
        "balance_after_refresh": {"state": "ok", "amount": "7.25"},
        "requests_total": requests_total,
        "window_requests": requests_total,
        "failover_session": "console-session-two",
        "error_session": "console-session-three",
    });
    let run = tokio::process::Command::new("node")
        .arg(repo().join("tests/console/run.mjs"))
        .current_dir(repo())
        .env("CONSOLE_URL", &console_line)
        .env("ADMIN_TOKEN", TOKEN)
        .env("SCREENSHOTS", &screenshots)
        .env("FACTS", facts.to_string())
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_LIMIT, run)
        .await
        .expect("the browser test ran past its limit")
        .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );

    // What the browser did, as the helper sees it.
    let providers = admin_get(&base, "/providers").await;
    let state_of = |key: &str| {
        providers["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .map(|e| (e["routable"].clone(), e["skip"]["detail"]["kind"].clone()))
            .unwrap()
    };
    assert_eq!(
        state_of("b.default"),
        (json!(false), json!("runtime_disabled")),
        "the console's disable reached the helper: {providers}"
    );
    assert_eq!(state_of("a.default").0, json!(true), "{providers}");
    let balances = admin_get(&base, "/providers/balances").await;
    let a_balance = balances["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["endpoint"] == "a.default")
        .unwrap();
    assert_eq!(a_balance["status"], "ok", "{balances}");
    for page in [
        "overview",
        "routing",
        "sessions",
        "requests",
        "usage",
        "diagnostics",
        "token-prompt",
    ] {
        let shot = screenshots.join(format!("{page}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "no screenshot of {page} at {}", shot.display());
    }
    let log = served.log_so_far();
    for key in [KEY_A, KEY_B, TOKEN] {
        assert!(!log.contains(key), "a secret in the serve log");
    }
}
