//! `codex-helper serve` as a user runs it: the real binary, temporary homes, loopback only.

mod support;

use std::path::Path;

use support::cli::{Homes, LIMIT, run, run_to_end, serve};
use support::mock_relay::MockRelay;

fn post(url: &str) -> reqwest::RequestBuilder {
    codex_helper::proxy::install_tls_provider();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{url}/v1/responses"))
        .header("accept", "text/event-stream")
        .body(r#"{"model":"gpt-5.1","stream":true,"input":"hi","prompt_cache_key":"s1"}"#)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn first_run_imports_codexs_active_provider_and_serves_through_it() {
    let relay = MockRelay::start("imported").await;
    let homes = Homes::new();
    write(
        &homes.codex.path().join("config.toml"),
        &format!(
            "model_provider = \"myrelay\"\n[model_providers.myrelay]\nname = \"My relay\"\nbase_url = \"{}\"\nenv_key = \"MY_RELAY_KEY\"\nwire_api = \"responses\"\n",
            relay.base_url()
        ),
    );
    let codex_before = std::fs::read_to_string(homes.codex.path().join("config.toml")).unwrap();
    let mut command = homes.command(&["serve"]);
    command.env("MY_RELAY_KEY", "relay-secret-value");
    let mut served = serve(command).await;

    let log = served.log.join("\n");
    assert!(
        log.contains("with relay `myrelay`") && log.contains("key from $MY_RELAY_KEY"),
        "{log}"
    );
    assert!(
        !log.contains("relay-secret-value"),
        "secrets never reach the log"
    );
    let config = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(
        config.contains("[codex.providers.myrelay]")
            && config.contains("auth_token_env = \"MY_RELAY_KEY\""),
        "{config}"
    );
    let codex_now = std::fs::read_to_string(homes.codex.path().join("config.toml")).unwrap();
    assert!(
        codex_now.contains("model_provider = \"myrelay\"")
            && codex_now.contains(&format!("base_url = \"{}/v1\"", served.url)),
        "serve redirected Codex's own provider to itself: {codex_now}"
    );

    let text = post(&served.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hi from imported"), "{text}");
    assert_eq!(
        relay.received()[0].headers["authorization"],
        "Bearer relay-secret-value"
    );

    // SIGTERM ends it cleanly.
    let pid = served.child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(LIMIT, served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(homes.codex.path().join("config.toml")).unwrap(),
        codex_before,
        "exit puts Codex's file back byte for byte"
    );
}

#[tokio::test]
async fn with_nothing_to_import_it_starts_and_explains_how_to_add_a_relay() {
    let homes = Homes::new();
    let served = serve(homes.command(&[])).await;
    let log = served.log.join("\n");
    assert!(
        log.contains("with no relay (Codex has no config.toml yet)"),
        "{log}"
    );
    assert!(homes.helper_config().exists());
    let reply = post(&served.url).send().await.unwrap();
    assert_eq!(reply.status(), 503);
    let body = reply.text().await.unwrap();
    assert!(body.contains("codex-helper provider add"), "{body}");
}

#[tokio::test]
async fn an_invalid_config_is_refused_with_the_file_and_key() {
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        "version = 5\n[codex.providers.a]\nbase_url = \"http://127.0.0.1:9\"\nenabled = \"yes\"\n",
    );
    let (ok, stderr) = run_to_end(homes.command(&["serve", "--no-tui", "--port", "0"])).await;
    assert!(!ok);
    let file = homes.helper_config().display().to_string();
    assert!(
        stderr.contains(&format!("{file}: `codex.providers.a.enabled`")),
        "{stderr}"
    );
    assert!(stderr.contains("invalid type"), "{stderr}");
}

#[tokio::test]
async fn a_bad_body_encoding_override_is_refused() {
    let homes = Homes::new();
    write(&homes.helper_config(), "version = 5\n");
    let mut command = homes.command(&["serve", "--no-tui", "--port", "0"]);
    command.env("CODEX_HELPER_REQUEST_BODY_ENCODING", "sometimes");
    let (ok, stderr) = run_to_end(command).await;
    assert!(!ok);
    assert!(stderr.contains("CODEX_HELPER_REQUEST_BODY_ENCODING=\"sometimes\" is not valid; allowed: auto, passthrough"), "{stderr}");
}

#[tokio::test]
async fn the_passthrough_override_reaches_the_proxy() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n[codex.providers.r]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    );
    let mut command = homes.command(&["serve"]);
    command.env("CODEX_HELPER_REQUEST_BODY_ENCODING", "passthrough");
    let served = serve(command).await;
    let gzipped = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(br#"{"model":"gpt-5.1"}"#).unwrap();
        e.finish().unwrap()
    };
    let reply = post(&served.url)
        .header("content-encoding", "gzip")
        .body(gzipped.clone())
        .send()
        .await
        .unwrap();
    reply.bytes().await.unwrap();
    assert_eq!(relay.received()[0].body, gzipped);
    assert_eq!(relay.received()[0].headers["content-encoding"], "gzip");
}

#[tokio::test]
async fn relays_are_reached_over_https() {
    let (relay, ca_pem) = MockRelay::start_tls("tls relay").await;
    let homes = Homes::new();
    let ca_file = homes.helper.path().join("test-ca.pem");
    write(&ca_file, &ca_pem);
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n[codex.providers.tls]\nbase_url = \"{}\"\nauth_token = \"tls-secret\"\n",
            relay.base_url()
        ),
    );
    let mut command = homes.command(&["serve"]);
    // The platform verifier reads extra roots from here on Linux.
    command.env("SSL_CERT_FILE", &ca_file);
    let served = serve(command).await;
    let text = post(&served.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hi from tls relay"), "{text}");
    assert_eq!(
        relay.received()[0].headers["authorization"],
        "Bearer tls-secret"
    );
}

#[tokio::test]
async fn a_taken_port_gives_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let homes = Homes::new();
    write(&homes.helper_config(), "version = 5\n");
    let (ok, stderr) = run_to_end(homes.command(&["serve", "--no-tui", "--port", &port])).await;
    assert!(!ok);
    // The port is held by this test process, and the message says so.
    let me = format!("is already in use by pid {}", std::process::id());
    assert!(
        stderr.contains(&format!("127.0.0.1:{port} ")) && stderr.contains(&me),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_legacy_mode_is_normalised_and_a_crash_is_repaired_by_the_next_start() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n# how Codex is patched\n[codex.client_patch]\nmode = \"official_relay_bridge\"\n\n[codex.providers.r]\nbase_url = \"{}\"\nauth_token = \"k\"\n",
            relay.base_url()
        ),
    );
    let codex_config = "model = \"gpt-5.1\"\n# mine\n";
    write(&homes.codex.path().join("config.toml"), codex_config);

    let mut served = serve(homes.command(&["serve"])).await;
    let log = served.log.join("\n");
    assert!(
        log.contains("`mode = \"official_relay_bridge\"` is now `preset = \"official-relay\"`"),
        "{log}"
    );
    let helper = std::fs::read_to_string(homes.helper_config()).unwrap();
    assert!(
        helper.contains(
            "# how Codex is patched\n[codex.client_patch]\npreset = \"official-relay\"\n"
        ),
        "{helper}"
    );
    let switched = std::fs::read_to_string(homes.codex.path().join("config.toml")).unwrap();
    assert!(
        switched.contains(&format!("openai_base_url = \"{}/v1\"", served.url)),
        "the built-in provider is redirected, as official-relay allows: {switched}"
    );

    // A crash: no switch off.
    served.child.kill().await.unwrap();
    assert!(
        homes
            .codex
            .path()
            .join("codex-helper-switch-state.json")
            .exists()
    );

    // The next start takes over the state; its clean exit restores the original.
    let mut served = serve(homes.command(&["serve"])).await;
    let pid = served.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(LIMIT, served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(homes.codex.path().join("config.toml")).unwrap(),
        codex_config
    );
    assert!(
        !homes
            .codex
            .path()
            .join("codex-helper-switch-state.json")
            .exists()
    );
}

#[tokio::test]
async fn a_clean_exit_saves_every_sessions_affinity() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n[codex.providers.r]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    );
    let mut served = serve(homes.command(&["serve", "--no-switch"])).await;
    // Two sessions in quick succession: the second falls in the writer's window, so only the
    // exit writes it.
    for session in ["s1", "s2"] {
        let body = format!(
            r#"{{"model":"gpt-5.1","stream":true,"input":"hi","prompt_cache_key":"{session}"}}"#
        );
        let text = tokio::time::timeout(LIMIT, post(&served.url).body(body).send())
            .await
            .unwrap()
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("hi from r"), "{text}");
    }
    let pid = served.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(LIMIT, served.child.wait())
        .await
        .unwrap()
        .unwrap();

    let (ok, out) = run(&homes, &["routing", "explain", "--session", "s2"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("Affinity: bound to r.default (first_success)"),
        "{out}"
    );
}

#[tokio::test]
async fn both_binaries_answer_help() {
    for bin in [env!("CARGO_BIN_EXE_codex-helper"), env!("CARGO_BIN_EXE_ch")] {
        let output = std::process::Command::new(bin)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success());
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("serve") && text.contains("Codex"), "{text}");
    }
}

/// A field of `/proc/PID/status` in KiB (Linux).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[tokio::test]
async fn a_crowd_of_compressed_bombs_costs_a_few_caps_not_one_per_request() {
    use std::io::Write;
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    let cap: usize = 32 << 20;
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n[proxy]\nmax_decoded_body_bytes = {cap}\n[codex.providers.a]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    );
    let mut command = homes.command(&["serve", "--no-switch"]);
    command.env("RUST_LOG", "warn");
    let served = serve(command).await;
    let pid = served.child.id().unwrap();
    let before = proc_status_kib(pid, "VmHWM:");

    // Each decompresses to twice the cap: refused with 413, but only after filling the cap.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.write_all(&vec![b' '; 2 * cap]).unwrap();
    let bomb = bytes::Bytes::from(encoder.finish().unwrap());
    codex_helper::proxy::install_tls_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let requests = (0..24).map(|_| {
        client
            .post(format!("{}/v1/responses", served.url))
            .header("content-encoding", "zstd")
            .header("content-type", "application/json")
            .body(bomb.clone())
            .send()
    });
    let replies = tokio::time::timeout(LIMIT, futures_util::future::join_all(requests))
        .await
        .expect("bombs answered in time");
    for reply in replies {
        assert_eq!(reply.unwrap().status(), 413);
    }
    let peak_mib = proc_status_kib(pid, "VmHWM:") / 1024;
    eprintln!("serve's peak resident memory after the bombs: {peak_mib} MiB");
    // Decoding at most a few bodies at once bounds the peak near (cores × cap); one decode per
    // request would be 24 caps (768 MiB) and more.
    assert!(
        peak_mib < 200,
        "peak resident memory {peak_mib} MiB (was {} MiB before the bombs)",
        before / 1024
    );
    assert_eq!(relay.hits(), 0);
}

#[tokio::test]
async fn serve_raises_its_open_file_limit_and_listens_on_localhost() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n[codex.providers.a]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    );
    // Start with a low soft limit, as many login shells do.
    let mut command = tokio::process::Command::new("sh");
    command
        .args([
            "-c",
            "ulimit -S -n 256 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_codex-helper"),
            "serve",
            "--no-switch",
            "--host",
            "localhost",
        ])
        .env("CODEX_HELPER_HOME", homes.helper.path())
        .env("CODEX_HOME", homes.codex.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let served = serve(command).await;
    assert!(
        served.url.starts_with("http://127.0.0.1:"),
        "{}",
        served.url
    );
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", served.child.id().unwrap())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        numbers[0], numbers[1],
        "soft limit raised to the hard one: {open_files}"
    );
    assert_ne!(numbers[0], "256", "{open_files}");
    let text = post(&served.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hi from r"), "{text}");
}

#[tokio::test]
async fn first_run_imports_the_users_relay_even_while_codex_is_switched_on() {
    let relay = MockRelay::start("the user's relay").await;
    let homes = Homes::new();
    write(
        &homes.codex.path().join("config.toml"),
        &format!(
            "model_provider = \"mine\"\n[model_providers.mine]\nbase_url = \"{}\"\nwire_api = \"responses\"\n",
            relay.base_url()
        ),
    );
    let (ok, out) = support::cli::run(&homes, &["switch", "on"]).await;
    assert!(ok, "{out}");
    assert!(!homes.helper_config().exists());

    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let log = served.log.join("\n");
    assert!(
        log.contains(&format!("with relay `mine` ({}", relay.base_url())),
        "the relay from before the switch, not the helper itself: {log}"
    );
    let text = post(&served.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hi from the user's relay"), "{text}");
}

#[tokio::test]
async fn a_stderr_nobody_reads_does_not_stall_requests() {
    use tokio::io::AsyncBufReadExt;
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n[codex.providers.a]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    );
    let mut child = homes
        .command(&["serve", "--no-tui", "--no-switch", "--port", "0"])
        .spawn()
        .unwrap();
    // Read up to the banner, then stop reading: the pipe (64 KiB) fills with request lines.
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(LIMIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("serve exited");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        }
    })
    .await
    .unwrap();
    codex_helper::proxy::install_tls_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let served = tokio::time::timeout(LIMIT, async {
        for _ in 0..400 {
            let reply = client
                .post(format!("{url}/v1/responses"))
                .header("accept", "text/event-stream")
                .body(r#"{"model":"gpt-5.1","stream":true,"input":"hi"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200);
            reply.bytes().await.unwrap();
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "requests stalled behind a full stderr pipe (each logs a line)"
    );
    drop(lines);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn requests_are_served_on_the_configured_threads() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n[proxy]\nthreads = 3\n[codex.providers.a]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    );
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let pid = served.child.id().unwrap();
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("proxy-"))
        .collect();
    assert_eq!(names.len(), 2, "two threads beside the main one: {names:?}");
    // Each client has a connection of its own; connections are handed to the threads in turn.
    let answers = futures_util::future::join_all((0..24).map(|_| async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let reply = client
            .post(format!("{}/v1/responses", served.url))
            .header("content-type", "application/json")
            .body(r#"{"model":"gpt-5.1","input":"hi"}"#)
            .send()
            .await
            .unwrap();
        (reply.status(), reply.text().await.unwrap())
    }));
    for (status, text) in tokio::time::timeout(LIMIT, answers).await.unwrap() {
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("hi from r"), "{text}");
    }
    assert_eq!(relay.hits(), 24);
}

#[tokio::test]
async fn an_absurd_thread_count_is_refused() {
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        "version = 5\n[proxy]\nthreads = 100000\n[codex.providers.a]\nbase_url = \"http://127.0.0.1:9\"\n",
    );
    let (ok, stderr) = run_to_end(homes.command(&["serve", "--no-tui", "--port", "0"])).await;
    assert!(!ok);
    assert!(
        stderr.contains("[proxy] threads = 100000: at most 256"),
        "{stderr}"
    );
}

/// Without `--no-tui` but with stdout a pipe (as under a service manager or `| tee`), `serve`
/// logs to stderr as ever: no terminal UI is drawn on stdout and no log file taken instead.
#[tokio::test]
async fn piped_serve_without_no_tui_logs_as_before_and_draws_no_ui() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let relay = MockRelay::start("piped").await;
    let homes = Homes::new();
    write(
        &homes.helper_config(),
        &format!(
            "version = 5\n[codex.providers.a]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    );
    let mut child = homes
        .command(&["serve", "--no-switch", "--port", "0"])
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let url = tokio::time::timeout(LIMIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("serve exited");
            log.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        }
    })
    .await
    .unwrap();
    let text = post(&url).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("hi from piped"), "{text}");
    // The request's log line arrives on stderr, not in a file.
    tokio::time::timeout(LIMIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("serve exited");
            log.push(line.clone());
            if line.contains("codex_helper::request") && line.contains("path=/v1/responses") {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no request log line on stderr:\n{}", log.join("\n")));
    let pid = child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    let mut drawn = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            rest.push_str(&line);
            rest.push('\n');
        }
        stdout.read_to_end(&mut drawn).await.unwrap();
    })
    .await
    .unwrap();
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(rest.contains("shutting down"), "{rest}");
    assert!(
        drawn.is_empty(),
        "nothing is drawn on a piped stdout (an alternate screen, a UI): {:?}",
        String::from_utf8_lossy(&drawn)
    );
    let all = format!("{}\n{rest}", log.join("\n"));
    assert!(!all.contains("terminal UI"), "{all}");
    assert!(
        !homes.helper.path().join("logs").join("serve.log").exists(),
        "the log is not diverted to a file"
    );
}
