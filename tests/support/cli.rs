//! Running the real binaries with temporary homes.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const LIMIT: Duration = Duration::from_secs(20);

pub struct Homes {
    pub helper: tempfile::TempDir,
    pub codex: tempfile::TempDir,
}

impl Homes {
    /// The running serve's admin API base URL, from the file it announces itself in.
    pub fn admin_base(&self) -> String {
        let running: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.helper.path().join("state/serve.json")).unwrap(),
        )
        .unwrap();
        format!(
            "http://{}/__codex_helper/api/v1",
            running["admin"].as_str().expect("the admin API is running")
        )
    }

    pub fn new() -> Self {
        Self {
            helper: tempfile::tempdir().unwrap(),
            codex: tempfile::tempdir().unwrap(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_codex-helper"));
        command
            .args(args)
            .env("CODEX_HELPER_HOME", self.helper.path())
            .env("CODEX_HOME", self.codex.path())
            .env_remove("CODEX_HELPER_REQUEST_BODY_ENCODING")
            // Only a test that sets a proxy variable gets one.
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    pub fn helper_config(&self) -> std::path::PathBuf {
        self.helper.path().join("config.toml")
    }
}

/// A running `serve`, with the stderr lines read up to the listening line.
pub struct Served {
    pub child: Child,
    pub url: String,
    /// The stderr lines up to the listening line.
    pub log: Vec<String>,
    /// Every stderr line after it, as they come.
    pub later: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    /// Stops it as Ctrl-C does (its state saved, its home lock released) and waits, bounded.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        tokio::time::timeout(LIMIT, self.child.wait())
            .await
            .expect("serve stops in time")
            .unwrap();
    }

    /// Every stderr line so far, once one contains `needle` (or after [`LIMIT`]). A line
    /// logged through `tracing` reaches stderr up to 25 ms after the ones printed directly (the
    /// log writer gathers lines), so one logged before "listening" may come after it.
    pub async fn log_with(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let log = self.log_so_far();
            if log.contains(needle) || tokio::time::Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every stderr line so far.
    pub fn log_so_far(&self) -> String {
        let later = self.later.lock().unwrap();
        self.log
            .iter()
            .chain(later.iter())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub async fn serve(mut command: Command) -> Served {
    let mut child = command.args(["--no-tui", "--port", "0"]).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let url = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("serve exited before listening:\n{}", log.join("\n"));
    })
    .await
    .expect("serve did not start listening in time");
    // Keep draining stderr so the child never blocks on a full pipe.
    let later = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = later.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    Served {
        child,
        url,
        log,
        later,
    }
}

pub async fn run_to_end(mut command: Command) -> (bool, String) {
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a command to its end (bounded); success and stdout + stderr together.
pub async fn run(homes: &Homes, args: &[&str]) -> (bool, String) {
    let output = tokio::time::timeout(LIMIT, homes.command(args).output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// One admin API call (`GET`, else `POST` with `body` as JSON): the status, the JSON answer
/// and its text (for checks that no secret is in it).
pub async fn admin_call(
    method: &str,
    url: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value, String) {
    let client = super::client();
    let mut request = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"));
    (status, json, text)
}

/// Whether this system has a Codex in the fixed folders discovery searches whatever `PATH` and
/// `HOME` say (then a "none found" case cannot be set up by the test).
pub fn system_codex() -> bool {
    [
        "/opt/homebrew/bin/codex",
        "/usr/local/bin/codex",
        "/usr/bin/codex",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}
