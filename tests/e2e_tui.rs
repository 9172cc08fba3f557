//! End to end in a real pseudo-terminal: `codex-helper serve` shows its terminal UI inside
//! tmux while the real Codex CLI (pinned `@openai/codex`) makes a request through it to a
//! mock relay on loopback; the UI shows the request, `codex-helper tui` attached beside it
//! quits without stopping the helper, and `q` in `serve`'s own UI stops the helper, which
//! switches Codex back.
//!
//! Everything is isolated as in `e2e_codex.rs`: temporary helper and Codex homes, Codex kept on
//! loopback (`reference/codex-protocol.md` §12), tmux on a socket of its own that a guard kills
//! whatever happens. tmux and Codex are installed by `scripts/test`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cli::Homes;
use support::codex_cli;
use support::mock_relay::MockRelay;

/// How long the screen is watched for something to appear.
const SCREEN_LIMIT: Duration = Duration::from_secs(30);
/// How often the screen is read meanwhile.
const SCREEN_POLL: Duration = Duration::from_millis(200);
/// A `codex exec` run's bound.
const CODEX_LIMIT: Duration = Duration::from_secs(120);
/// A single tmux command's bound.
const TMUX_LIMIT: Duration = Duration::from_secs(10);

/// Runs `command` to its end within `limit`, or kills it and fails.
fn bounded_output(mut command: Command, limit: Duration, what: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A tmux server on a socket of its own, killed on drop (a failed assertion included).
struct Tmux {
    dir: tempfile::TempDir,
}

impl Tmux {
    fn new() -> Self {
        let present = Command::new("tmux")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            present,
            "tmux is not installed: run `scripts/test`, which installs it (apt-get install tmux)"
        );
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("tmux.sock")
    }

    /// A tmux command on this server, with the environment the helper must see (the server
    /// copies it when the first command starts it).
    fn command(&self, args: &[&str], homes: &Homes) -> Command {
        let mut command = Command::new("tmux");
        command
            .arg("-S")
            .arg(self.socket())
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .env("CODEX_HELPER_HOME", homes.helper.path())
            .env("CODEX_HOME", homes.codex.path())
            .env_remove("TMUX")
            .env_remove("CODEX_HELPER_LOG")
            .env_remove("CODEX_HELPER_ADMIN_TOKEN")
            .env_remove("CODEX_HELPER_REQUEST_BODY_ENCODING");
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            command.env_remove(var);
        }
        command
    }

    fn run(&self, args: &[&str], homes: &Homes) -> String {
        let output = bounded_output(self.command(args, homes), TMUX_LIMIT, "tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn send(&self, target: &str, keys: &str, homes: &Homes) {
        self.run(&["send-keys", "-t", target, keys], homes);
    }

    fn screen(&self, target: &str, homes: &Homes) -> String {
        self.run(&["capture-pane", "-p", "-t", target], homes)
    }

    /// Reads the screen until `wanted` holds (bounded by [`SCREEN_LIMIT`]); fails with the
    /// last screen.
    fn wait_for(
        &self,
        target: &str,
        homes: &Homes,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen(target, homes);
            if wanted(&screen) {
                return screen;
            }
            assert!(
                started.elapsed() < SCREEN_LIMIT,
                "{what} did not appear within {SCREEN_LIMIT:?}; the screen:\n{screen}"
            );
            std::thread::sleep(SCREEN_POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let mut kill = Command::new("tmux");
        kill.arg("-S").arg(self.socket()).arg("kill-server");
        if let Ok(mut child) = kill.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
            let started = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && started.elapsed() < TMUX_LIMIT {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A shell command line running `args` of the helper, then saying how it ended and staying
/// (so the pane, and the last screen, remain readable).
fn shell_line(args: &str, label: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_codex-helper");
    format!("'{bin}' {args}; echo \"{label} exited with status $?\"; sleep 300")
}

/// `codex exec "say hi"` with `home` as its `CODEX_HOME` (and `HOME`).
fn codex_exec(home: &Path, work: &Path) -> (bool, String, String) {
    let mut command = Command::new(codex_cli::bin());
    command
        .args(["exec", "--skip-git-repo-check", "say hi"])
        .current_dir(work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CODEX_HOME", home)
        .env("CODEX_HELPER_E2E_KEY", "e2e-client-key")
        .env("RUST_LOG", "error");
    let output = bounded_output(command, CODEX_LIMIT, "codex exec");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The running helper's announcement (`state/serve.json`): its proxy and admin addresses.
fn announced(homes: &Homes) -> serde_json::Value {
    let path = homes.helper.path().join("state").join("serve.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is not readable: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The Dashboard's request count, from a line like `requests   3 (0 errors)`.
fn dashboard_requests(screen: &str) -> Option<u64> {
    screen.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("requests")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_ui_of_serve_shows_codexs_request_and_q_stops_the_helper() {
    let relay = MockRelay::start("the relay behind the tui").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.providers.relay]\nbase_url = \"{}\"\nauth_token = \"helper-key\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let original = codex_cli::loopback_config(&relay.base_url().replace("/v1", ""));
    let codex_config_path = homes.codex.path().join("config.toml");
    std::fs::write(&codex_config_path, &original).unwrap();
    let auth = "{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"sk-user\"\n}\n";
    std::fs::write(homes.codex.path().join("auth.json"), auth).unwrap();

    // The blocking parts (tmux, Codex, polling the screen) run beside the mock relay's runtime.
    let result = tokio::task::spawn_blocking(move || {
        let tmux = Tmux::new();
        tmux.run(
            &[
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                "-s",
                "e2e",
                "-n",
                "serve",
                &shell_line("serve --port 0", "helper"),
            ],
            &homes,
        );
        let serve = "e2e:serve";
        let screen = tmux.wait_for(serve, &homes, "serve's terminal UI", |s| {
            s.contains("1 Dashboard")
                && s.contains("4 Requests")
                && s.contains("endpoints routable")
        });
        assert!(
            screen.contains("q quit and stop the helper"),
            "the status bar says q stops the helper:\n{screen}"
        );

        // Codex was switched to the proxy before the UI started.
        let running = announced(&homes);
        let proxy = running["proxy"].as_str().unwrap().to_string();
        let admin = running["admin"].as_str().unwrap().to_string();
        let switched = std::fs::read_to_string(&codex_config_path).unwrap();
        assert!(
            switched.contains(&format!("http://{proxy}/v1")),
            "Codex points at the proxy at {proxy}:\n{switched}"
        );

        // The real Codex, from a copy of the switched settings, through the proxy.
        let codex_home = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        for name in ["config.toml", "auth.json"] {
            std::fs::copy(homes.codex.path().join(name), codex_home.path().join(name)).unwrap();
        }
        let (ok, stdout, stderr) = codex_exec(codex_home.path(), work.path());
        assert!(
            ok && stdout.contains("hi from the relay behind the tui"),
            "codex exec through the helper\nstdout: {stdout}\nstderr: {stderr}"
        );

        // The Requests page (key 4) lists it: its model and its relay.
        tmux.send(serve, "4", &homes);
        let screen = tmux.wait_for(serve, &homes, "Codex's request on the Requests page", |s| {
            s.lines()
                .any(|l| l.contains("gpt-5.1") && l.contains("relay/default") && l.contains("200"))
        });
        assert!(screen.contains("provider/endpoint"), "{screen}");
        // The Dashboard (key 1) counts it.
        tmux.send(serve, "1", &homes);
        tmux.wait_for(serve, &homes, "the request counted on the Dashboard", |s| {
            dashboard_requests(s).is_some_and(|n| n >= 1)
        });
        // While the UI owns the screen, log lines go to the file, never on it.
        let screen = tmux.screen(serve, &homes);
        assert!(
            !screen.contains("codex_helper::request") && !screen.contains(" INFO "),
            "a log line reached the UI's screen:\n{screen}"
        );
        let log_path = homes.helper.path().join("logs").join("serve.log");
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(
            log.contains("terminal UI started")
                && log.contains("codex_helper::request")
                && log.contains("path=/v1/responses"),
            "the request's log line is in {}:\n{log}",
            log_path.display()
        );
        tmux.send(serve, "6", &homes);
        tmux.wait_for(serve, &homes, "the log file on the Settings page", |s| {
            s.lines()
                .any(|l| l.contains("log file") && l.contains(&log_path.display().to_string()))
        });

        // `codex-helper tui` attached beside it: `q` there leaves the helper running.
        tmux.run(
            &[
                "new-window",
                "-t",
                "e2e",
                "-n",
                "attached",
                &shell_line("tui", "tui"),
            ],
            &homes,
        );
        let attached = "e2e:attached";
        tmux.wait_for(attached, &homes, "the attached UI's dashboard", |s| {
            s.contains("q quit (the helper keeps running)")
                && dashboard_requests(s).is_some_and(|n| n >= 1)
        });
        tmux.send(attached, "q", &homes);
        tmux.wait_for(attached, &homes, "the attached UI's exit", |s| {
            s.contains("tui exited with status 0")
        });
        let running_after = announced(&homes);
        assert_eq!(
            running_after["pid"], running["pid"],
            "the helper still runs"
        );
        let alive =
            std::net::TcpStream::connect_timeout(&admin.parse().unwrap(), Duration::from_secs(2));
        assert!(alive.is_ok(), "the helper's admin API still answers");
        tmux.screen(serve, &homes)
            .contains("q quit and stop the helper")
            .then_some(())
            .expect("serve's UI is still on");

        // `q` in serve's own UI stops the helper, which switches Codex back.
        tmux.send(serve, "q", &homes);
        let screen = tmux.wait_for(serve, &homes, "the helper's exit", |s| {
            s.contains("helper exited with status")
        });
        assert!(
            screen.contains("helper exited with status 0"),
            "a clean exit:\n{screen}"
        );
        assert!(
            screen.contains("terminal UI on; logs go to")
                && screen.contains("Codex's own settings are back"),
            "the terminal is back with the messages around the UI:\n{screen}"
        );
        assert_eq!(
            std::fs::read_to_string(&codex_config_path).unwrap(),
            original,
            "Codex's config is switched back byte for byte"
        );
        assert!(
            !homes
                .helper
                .path()
                .join("state")
                .join("serve.json")
                .exists(),
            "the running-serve file is withdrawn"
        );
        // `tmux` is dropped here, or on any failure above: its server is killed either way.
    });
    tokio::time::timeout(Duration::from_secs(300), result)
        .await
        .expect("the test exceeded its time bound")
        .unwrap();
    let turn = relay
        .received()
        .into_iter()
        .find(|r| r.path_and_query == "/v1/responses")
        .expect("Codex's turn reached the relay");
    assert_eq!(turn.headers["authorization"], "Bearer helper-key");
}

/// Homes with one relay and no Codex config (nothing to switch: `--no-switch` is not needed).
fn plain_homes(relay_base: &str) -> Homes {
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!("version = 5\n[codex.providers.relay]\nbase_url = \"{relay_base}\"\nauth_token = \"k\"\n"),
    )
    .unwrap();
    homes
}

/// Starts `serve_line` (a shell line) in a new tmux session `e2e`, window `serve`.
fn start(tmux: &Tmux, homes: &Homes, serve_line: &str) {
    tmux.run(
        &[
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            "-s",
            "e2e",
            "-n",
            "serve",
            serve_line,
        ],
        homes,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_the_ui_of_a_bare_codex_helper_stops_it_and_the_terminal_is_restored() {
    let relay = MockRelay::start("r").await;
    let homes = plain_homes(&relay.base_url());
    let result = tokio::task::spawn_blocking(move || {
        let tmux = Tmux::new();
        // A bare `codex-helper` is `serve`, with the UI too.
        start(&tmux, &homes, &shell_line("--port 0", "helper"));
        tmux.wait_for("e2e:serve", &homes, "serve's terminal UI", |s| {
            s.contains("q quit and stop the helper")
        });
        tmux.send("e2e:serve", "C-c", &homes);
        let screen = tmux.wait_for("e2e:serve", &homes, "the helper's exit", |s| {
            s.contains("helper exited with status")
        });
        assert!(screen.contains("helper exited with status 0"), "{screen}");
        assert!(
            !screen.contains("1 Dashboard"),
            "the main screen is back:\n{screen}"
        );
        // Raw mode is off again: the shell's line discipline echoes and ends lines as usual.
        let stty = cooked(&tmux, "e2e:serve", &homes);
        assert!(
            stty.contains(" icanon") && stty.contains(" echo"),
            "the terminal is in cooked mode again: {stty}"
        );
    });
    tokio::time::timeout(Duration::from_secs(120), result)
        .await
        .expect("the test exceeded its time bound")
        .unwrap();
}

/// In a terminal but with stdout piped (`serve | tee`), `serve` logs on the terminal as with
/// `--no-tui`; Ctrl-C (a signal now, the terminal is not raw) stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_stdout_piped_in_a_terminal_logs_instead_of_drawing() {
    let relay = MockRelay::start("r").await;
    let homes = plain_homes(&relay.base_url());
    let result = tokio::task::spawn_blocking(move || {
        let tmux = Tmux::new();
        let bin = env!("CARGO_BIN_EXE_codex-helper");
        let line = format!(
            "'{bin}' serve --port 0 | cat; echo \"helper exited with status ${{PIPESTATUS[0]}}\"; sleep 300"
        );
        start(
            &tmux,
            &homes,
            &format!("bash -c '{}'", line.replace('\'', "'\\''")),
        );
        let screen = tmux.wait_for("e2e:serve", &homes, "the logged start", |s| {
            s.contains("listening on") && s.contains("admin API on")
        });
        assert!(!screen.contains("terminal UI"), "{screen}");
        std::thread::sleep(Duration::from_millis(1500));
        let screen = tmux.screen("e2e:serve", &homes);
        assert!(
            !screen.contains("1 Dashboard"),
            "no UI was drawn:\n{screen}"
        );
        tmux.send("e2e:serve", "C-c", &homes);
        let screen = tmux.wait_for("e2e:serve", &homes, "the helper's exit", |s| {
            s.contains("helper exited with status")
        });
        assert!(
            screen.contains("shutting down") && screen.contains("helper exited with status 0"),
            "{screen}"
        );
        assert!(!homes.helper.path().join("logs").join("serve.log").exists());
    });
    tokio::time::timeout(Duration::from_secs(120), result)
        .await
        .expect("the test exceeded its time bound")
        .unwrap();
}

/// The UI is the admin API's client: when that cannot start (its port is taken), `serve` says
/// so and keeps serving with its logs on the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_admin_api_serve_falls_back_to_logging_and_keeps_serving() {
    let relay = MockRelay::start("still serving").await;
    let homes = plain_homes(&relay.base_url());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin_port = taken.local_addr().unwrap().port().to_string();
    let result = tokio::task::spawn_blocking(move || {
        let tmux = Tmux::new();
        start(
            &tmux,
            &homes,
            &shell_line(
                &format!("serve --port 0 --admin-port {admin_port}"),
                "helper",
            ),
        );
        let screen = tmux.wait_for("e2e:serve", &homes, "the fallback warning", |s| {
            s.contains("the terminal UI needs the admin API")
        });
        assert!(!screen.contains("1 Dashboard"), "{screen}");
        let proxy = announced(&homes)["proxy"].as_str().unwrap().to_string();
        drop(taken);
        (tmux, homes, proxy)
    })
    .await
    .unwrap();
    let (tmux, homes, proxy) = result;
    // Still serving: a request goes through, and its log line shows on the terminal.
    let reply = support::sse_post(
        format!("http://{proxy}/v1/responses"),
        r#"{"model":"gpt-5.1","stream":true,"input":"hi"}"#,
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(reply.contains("hi from still serving"), "{reply}");
    let result = tokio::task::spawn_blocking(move || {
        tmux.wait_for("e2e:serve", &homes, "the request's log line", |s| {
            s.contains("codex_helper::request")
        });
        tmux.send("e2e:serve", "C-c", &homes);
        let screen = tmux.wait_for("e2e:serve", &homes, "the helper's exit", |s| {
            s.contains("helper exited with status")
        });
        assert!(screen.contains("helper exited with status 0"), "{screen}");
    });
    tokio::time::timeout(Duration::from_secs(120), result)
        .await
        .expect("the test exceeded its time bound")
        .unwrap();
}

/// `stty -a` of the terminal behind `target` (` icanon` in cooked mode, `-icanon` in raw).
fn cooked(tmux: &Tmux, target: &str, homes: &Homes) -> String {
    let tty = tmux.run(
        &["display-message", "-p", "-t", target, "#{pane_tty}"],
        homes,
    );
    let mut stty = Command::new("stty");
    stty.args(["-a", "-F", tty.trim()]);
    String::from_utf8_lossy(&bounded_output(stty, TMUX_LIMIT, "stty").stdout).into_owned()
}

/// Stopped from outside (`POST /runtime/shutdown`, as SIGTERM would), `serve` ends its UI
/// first, so the terminal is back before it says what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_from_the_admin_api_ends_the_ui_and_puts_the_terminal_back() {
    let relay = MockRelay::start("r").await;
    let homes = plain_homes(&relay.base_url());
    let (tmux, homes) = tokio::task::spawn_blocking(move || {
        let tmux = Tmux::new();
        start(&tmux, &homes, &shell_line("serve --port 0", "helper"));
        tmux.wait_for("e2e:serve", &homes, "serve's terminal UI", |s| {
            s.contains("q quit and stop the helper")
        });
        let raw = cooked(&tmux, "e2e:serve", &homes);
        assert!(raw.contains("-icanon"), "the UI runs in raw mode: {raw}");
        (tmux, homes)
    })
    .await
    .unwrap();
    let admin = announced(&homes)["admin"].as_str().unwrap().to_string();
    let reply = support::client()
        .post(format!(
            "http://{admin}{}/runtime/shutdown",
            codex_helper::admin::BASE
        ))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    let result = tokio::task::spawn_blocking(move || {
        let screen = tmux.wait_for("e2e:serve", &homes, "the helper's exit", |s| {
            s.contains("helper exited with status")
        });
        assert!(
            screen.contains("shutting down") && screen.contains("helper exited with status 0"),
            "{screen}"
        );
        let stty = cooked(&tmux, "e2e:serve", &homes);
        assert!(stty.contains(" icanon") && stty.contains(" echo"), "{stty}");
    });
    tokio::time::timeout(Duration::from_secs(120), result)
        .await
        .expect("the test exceeded its time bound")
        .unwrap();
}
