//! Slow and hostile clients, and binding safety, against the real `serve` binary.
//!
//! Every wait is bounded (by `support::cli::LIMIT` or a loop with a deadline) and nothing is
//! timed: a test asserts what happened (closed, answered, recorded), never how fast. The
//! only non-loopback address used is `0.0.0.0` with a system-chosen port, for start-up
//! checks, and that server is stopped at once; requests always go to loopback.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::cli::{Homes, LIMIT, Served, run, run_to_end, serve};
use support::mock_relay::MockRelay;

const RELAY_KEY: &str = "relay-key-0123456789";
const CLIENT_KEY: &str = "client-key-abcdef0123456789";
const CLIENT_KEY_ENV: &str = "CODEX_HELPER_TEST_CLIENT_KEY";

/// A config with one relay at `base_url` and these `[proxy]` lines (no balance lookups: the
/// relay sees only the requests a test makes).
fn config(base_url: &str, proxy: &str) -> String {
    format!(
        "version = 5\n[balance]\nenabled = false\n[proxy]\n{proxy}\n[codex.providers.r]\nbase_url = \"{base_url}\"\nauth_token = \"{RELAY_KEY}\"\n"
    )
}

/// `serve --no-switch` (plus `args`) on a system-chosen loopback port with `config`.
async fn start(homes: &Homes, config: &str, args: &[&str], env: &[(&str, &str)]) -> Served {
    std::fs::write(homes.helper_config(), config).unwrap();
    let mut all = vec!["serve", "--no-switch"];
    all.extend_from_slice(args);
    let mut command = homes.command(&all);
    command.env_remove(CLIENT_KEY_ENV);
    for (name, value) in env {
        command.env(name, value);
    }
    serve(command).await
}

/// A mock relay and `serve` in front of it with these `[proxy]` lines.
async fn serve_relay(proxy: &str) -> (MockRelay, Homes, Served) {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    let served = start(&homes, &config(&relay.base_url(), proxy), &[], &[]).await;
    (relay, homes, served)
}

/// Sends `request` on a new connection; what the server answered before closing it.
async fn answer_then_close(served: &Served, request: &str) -> String {
    let mut stream = connect(served).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let (closed, answer) = closed_by_server(&mut stream).await;
    assert!(closed, "the server closes the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

fn addr(served: &Served) -> SocketAddr {
    served
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("serve listens on an address")
}

async fn connect(served: &Served) -> TcpStream {
    tokio::time::timeout(LIMIT, TcpStream::connect(addr(served)))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A small request the proxy answers itself, whole (with a length): a browser's, refused 403.
const ANSWERED_BY_THE_PROXY: &str =
    "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://page.example\r\n\r\n";

/// Sends [`ANSWERED_BY_THE_PROXY`] on `stream` and reads the answer: its status and text.
async fn ask(stream: &mut TcpStream) -> (u16, String) {
    stream
        .write_all(ANSWERED_BY_THE_PROXY.as_bytes())
        .await
        .unwrap();
    read_response(stream).await
}

/// Reads one response (head, then a body by length or chunks); its status and text.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    tokio::time::timeout(LIMIT, async {
        let mut data = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = find(&data, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let body = &data[end + 4..];
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().unwrap());
                let complete = match length {
                    Some(length) => body.len() >= length,
                    None if head.contains("transfer-encoding: chunked") => {
                        body.ends_with(b"0\r\n\r\n")
                    }
                    None => false,
                };
                if complete {
                    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                    return (status, String::from_utf8_lossy(&data).into_owned());
                }
            }
            let n = stream.read(&mut chunk).await.expect("read a response");
            assert!(
                n > 0,
                "closed before a whole response: {}",
                String::from_utf8_lossy(&data)
            );
            data.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a response in time")
}

fn find(data: &[u8], needle: &[u8]) -> Option<usize> {
    data.windows(needle.len()).position(|w| w == needle)
}

/// Whether the server closes `stream` (end of file or a reset) within the bound; what it sent
/// before, if anything, is returned too.
async fn closed_by_server(stream: &mut TcpStream) -> (bool, Vec<u8>) {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(LIMIT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    (read.is_ok(), seen)
}

/// A streamed Codex turn through `url`, read whole: status and text.
async fn turn(url: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let mut request = support::sse_post(
        format!("{url}/v1/responses"),
        support::codex_body("gpt-5.1", "s-1", 400),
    );
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let reply = tokio::time::timeout(LIMIT, request.send())
        .await
        .expect("answered in time")
        .expect("answered");
    let status = reply.status().as_u16();
    (status, reply.text().await.unwrap())
}

// ---- Part 2: slow and hostile clients ----

#[tokio::test]
async fn a_half_sent_head_is_closed_by_the_header_timeout() {
    // A long keep-alive: only the head timeout can close this connection.
    let (relay, _homes, served) =
        serve_relay("header_read_timeout_ms = 300\nkeep_alive_idle_timeout_ms = 600000").await;
    let mut slow = connect(&served).await;
    slow.write_all(b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let (closed, answer) = closed_by_server(&mut slow).await;
    assert!(
        closed,
        "a client that never finishes its head is disconnected"
    );
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"));
    assert_eq!(
        relay.hits_on("/v1/responses"),
        0,
        "nothing reached the relay"
    );
    // A client that sends its head at once is served as usual.
    let (status, text) = turn(&served.url, &[]).await;
    assert_eq!(status, 200, "{text}");
    served.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_and_a_busy_one_is_not() {
    // A long head timeout: only the keep-alive limit can close the idle connection.
    let (relay, _homes, served) =
        serve_relay("header_read_timeout_ms = 600000\nkeep_alive_idle_timeout_ms = 300").await;
    let mut kept = connect(&served).await;
    let (status, _) = ask(&mut kept).await;
    assert_eq!(status, 403);
    let (closed, more) = closed_by_server(&mut kept).await;
    assert!(closed, "an idle kept-alive connection is closed");
    assert!(more.is_empty(), "{}", String::from_utf8_lossy(&more));

    // A stream that is silent for longer than the keep-alive limit is busy, not idle.
    relay.push(support::mock_relay::Fault::StallMidStream {
        after_events: 1,
        pause: Duration::from_millis(1500),
    });
    let (status, text) = turn(&served.url, &[]).await;
    assert_eq!(status, 200);
    assert!(text.contains("response.completed"), "{text}");
    served.stop().await;
}

#[tokio::test]
async fn oversized_heads_and_too_many_headers_get_431() {
    let (relay, _homes, served) = serve_relay("max_header_bytes = 8192\nmax_headers = 20").await;
    let huge = "x".repeat(16 << 10);
    let big = format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {huge}\r\n\r\n");
    let answer = answer_then_close(&served, &big).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let headers: String = (0..30).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let many = format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n");
    let answer = answer_then_close(&served, &many).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(relay.hits_on("/v1/responses"), 0);

    // Codex-sized requests are unaffected.
    let (status, text) = turn(&served.url, &[("x-extra", "1")]).await;
    assert_eq!(status, 200, "{text}");
    served.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_get_a_clear_answer_and_a_freed_place_is_reused() {
    let (_relay, _homes, served) = serve_relay("max_client_connections = 3").await;
    // Three connections, each answered once (so surely accepted) and kept open.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&served).await;
        assert_eq!(ask(&mut stream).await.0, 403);
        held.push(stream);
    }
    let mut fourth = connect(&served).await;
    let (status, text) = ask(&mut fourth).await;
    assert_eq!(status, 503, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1"), "{text}");
    assert!(lower.contains("connection: close"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_client_connections")
    );
    assert!(closed_by_server(&mut fourth).await.0);

    // One leaves: its place is given back (once the server has seen it go).
    drop(held.pop());
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut again = connect(&served).await;
        match ask(&mut again).await.0 {
            403 => break,
            503 => assert!(
                Instant::now() < deadline,
                "the freed place was never reused"
            ),
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served.stop().await;
}

/// Reads a request head from `stream`: what was read (the head and any body bytes that came
/// with it) and where the head ends; None when the connection ends first.
async fn read_head(stream: &mut TcpStream) -> Option<(Vec<u8>, usize)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&data, b"\r\n\r\n") {
            return Some((data, end + 4));
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A relay that answers one request with a head and a first piece of body, then holds the
/// connection open and counts when the proxy closes it.
struct HoldingRelay {
    addr: SocketAddr,
    closed: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl HoldingRelay {
    async fn start(json: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let closed = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (seen_closed, seen_requests) = (closed.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (closed, requests) = (seen_closed.clone(), seen_requests.clone());
                tokio::spawn(async move {
                    // The request head (the body is small and comes with it or right after).
                    if read_head(&mut stream).await.is_none() {
                        return;
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let head = if json {
                        // Announces more than it sends, and more than the proxy reads whole
                        // before answering (so it is streamed).
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n{\"id\":\"resp_1\",\"object\":\"response\",".to_string()
                    } else {
                        let event = r#"{"type":"response.created","response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5.1"}}"#;
                        let delta = r#"{"type":"response.output_text.delta","delta":"hel"}"#;
                        let body = format!(
                            "event: response.created\ndata: {event}\n\nevent: response.output_text.delta\ndata: {delta}\n\n"
                        );
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n",
                            body.len()
                        )
                    };
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    // Hold: the next read ends only when the proxy closes the connection.
                    let mut chunk = [0u8; 8192];
                    loop {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            closed,
            requests,
        }
    }
}

/// The newest ledger row, waited for (bounded).
async fn last_row(homes: &Homes) -> serde_json::Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let (ok, out) = run(homes, &["usage", "tail", "--limit", "1", "--json"]).await;
        assert!(ok, "{out}");
        if let Ok(row) = serde_json::from_str::<serde_json::Value>(out.trim()) {
            return row;
        }
        assert!(Instant::now() < deadline, "no ledger row: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_client_leaving_mid_stream_cancels_the_relay_request_and_is_recorded() {
    for json in [false, true] {
        let relay = HoldingRelay::start(json).await;
        let homes = Homes::new();
        let served = start(
            &homes,
            &config(&format!("http://{}/v1", relay.addr), ""),
            &[],
            &[],
        )
        .await;
        let mut client = connect(&served).await;
        let body = if json {
            r#"{"model":"gpt-5.1","input":"hi"}"#
        } else {
            r#"{"model":"gpt-5.1","input":"hi","stream":true}"#
        };
        let accept = if json {
            "application/json"
        } else {
            "text/event-stream"
        };
        client
            .write_all(
                format!(
                    "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\naccept: {accept}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        // Read until the relay's first piece of body has come through, then leave.
        let mut seen = Vec::new();
        let first = tokio::time::timeout(LIMIT, async {
            let mut chunk = [0u8; 4096];
            while find(&seen, b"resp_1").is_none() {
                let n = client.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
                seen.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        assert!(
            first.is_ok(),
            "the first piece did not arrive (json: {json}): {}\n{}",
            String::from_utf8_lossy(&seen),
            served.log_so_far()
        );
        assert!(seen.starts_with(b"HTTP/1.1 200"));
        drop(client);

        let deadline = Instant::now() + LIMIT;
        while relay.closed.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "the relay connection was not closed after the client left (json: {json})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(relay.requests.load(Ordering::SeqCst), 1);
        let row = last_row(&homes).await;
        assert_eq!(row["outcome"], "client_disconnected", "json: {json}: {row}");
        served.stop().await;
    }
}

#[tokio::test]
async fn a_slowloris_crowd_does_not_stop_normal_requests() {
    // The crowd is below the connection cap (the default, 1024): what keeps normal requests
    // going is that a slow connection costs only a small task while it waits, and the head
    // timeout ends it later (a crowd larger than the cap would meet the cap's 503, and so
    // would everyone else: the cap protects the process, a client key and loopback
    // binding keep crowds out). The head timeout is long here so the crowd stays connected
    // for the whole test.
    const CROWD: usize = 300;
    let (relay, _homes, served) = serve_relay("header_read_timeout_ms = 120000").await;
    let mut crowd = Vec::with_capacity(CROWD);
    for i in 0..CROWD {
        let mut slow = connect(&served).await;
        slow.write_all(
            format!("POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{i}: ").as_bytes(),
        )
        .await
        .unwrap();
        crowd.push(slow);
    }
    // The crowd keeps dribbling, one byte per connection per round, while normal requests go.
    let dribble = tokio::spawn(async move {
        for _ in 0..50 {
            for slow in &mut crowd {
                let _ = slow.write_all(b"x").await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        crowd
    });
    for _ in 0..10 {
        let (status, text) = turn(&served.url, &[]).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("response.completed"), "{text}");
    }
    let mut crowd = tokio::time::timeout(LIMIT, dribble)
        .await
        .expect("the crowd's rounds end")
        .unwrap();
    // The crowd was connected all along: none of its connections was closed.
    let mut byte = [0u8; 1];
    let open = crowd
        .iter_mut()
        .filter(|slow| {
            matches!(slow.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(open, CROWD, "the whole crowd stayed connected");
    assert_eq!(
        relay.hits_on("/v1/responses"),
        10,
        "only the normal requests reached the relay"
    );
    drop(crowd);
    served.stop().await;
}

// ---- Part 3: binding safety ----

/// A config whose relay is never reached (start-up checks only), with or without a client key.
fn write_unreachable_config(homes: &Homes, keyed: bool) {
    let proxy = if keyed {
        format!("client_key_env = \"{CLIENT_KEY_ENV}\"")
    } else {
        String::new()
    };
    std::fs::write(
        homes.helper_config(),
        config("http://127.0.0.1:9/v1", &proxy),
    )
    .unwrap();
}

fn serve_args<'a>(host: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "serve",
        "--no-switch",
        "--no-tui",
        "--port",
        "0",
        "--host",
        host,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn listening_beyond_loopback_is_refused_without_a_client_key_or_the_flag() {
    let homes = Homes::new();
    write_unreachable_config(&homes, false);
    for host in ["0.0.0.0", "::"] {
        let mut command = homes.command(&serve_args(host, &[]));
        command.env_remove(CLIENT_KEY_ENV);
        let output = tokio::time::timeout(LIMIT, command.output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{host}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("refusing to listen on"), "{stderr}");
        assert!(stderr.contains("relay credit"), "{stderr}");
        assert!(stderr.contains("client_key_env"), "{stderr}");
        assert!(
            stderr.contains("--unsafe-listen-without-client-key"),
            "{stderr}"
        );
    }
    // A client key named but not set is refused too: a server meant to be protected never
    // starts open.
    write_unreachable_config(&homes, true);
    let mut command = homes.command(&serve_args("0.0.0.0", &[]));
    command.env_remove(CLIENT_KEY_ENV);
    let (ok, stderr) = run_to_end(command).await;
    assert!(!ok);
    assert!(
        stderr.contains(CLIENT_KEY_ENV) && stderr.contains("not set"),
        "{stderr}"
    );
    // An admin token is not a client key.
    let mut command = homes.command(&serve_args("0.0.0.0", &[]));
    command
        .env_remove(CLIENT_KEY_ENV)
        .env("CODEX_HELPER_ADMIN_TOKEN", "admin-token-0123456789");
    write_unreachable_config(&homes, false);
    let (ok, stderr) = run_to_end(command).await;
    assert!(!ok);
    assert!(stderr.contains("refusing to listen on"), "{stderr}");
    // Nor is a client key an admin token: the admin API beyond loopback still needs its own.
    write_unreachable_config(&homes, true);
    let mut command = homes.command(&serve_args("127.0.0.1", &["--admin-host", "0.0.0.0"]));
    command
        .env(CLIENT_KEY_ENV, CLIENT_KEY)
        .env_remove("CODEX_HELPER_ADMIN_TOKEN");
    let (ok, stderr) = run_to_end(command).await;
    assert!(!ok);
    assert!(stderr.contains("CODEX_HELPER_ADMIN_TOKEN"), "{stderr}");
    assert!(!stderr.contains(CLIENT_KEY), "{stderr}");
}

#[tokio::test]
async fn the_loud_flag_or_a_client_key_lets_it_listen_beyond_loopback() {
    let homes = Homes::new();
    // With the flag: it starts and says, loudly, what that means. Stopped at once.
    let served = start(
        &homes,
        &config("http://127.0.0.1:9/v1", ""),
        &["--host", "0.0.0.0", "--unsafe-listen-without-client-key"],
        &[],
    )
    .await;
    let log = served.log_so_far();
    assert!(log.contains("WITHOUT A CLIENT KEY"), "{log}");
    assert!(log.contains("spend your credit"), "{log}");
    served.stop().await;

    // With a client key: it starts with no such warning. Stopped at once.
    let served = start(
        &homes,
        &config(
            "http://127.0.0.1:9/v1",
            &format!("client_key_env = \"{CLIENT_KEY_ENV}\""),
        ),
        &["--host", "0.0.0.0"],
        &[(CLIENT_KEY_ENV, CLIENT_KEY)],
    )
    .await;
    let log = served.log_so_far();
    assert!(!log.contains("WITHOUT A CLIENT KEY"), "{log}");
    assert!(!log.contains(CLIENT_KEY), "the key is never logged");
    served.stop().await;
}

#[tokio::test]
async fn with_a_client_key_requests_need_it_and_the_relay_never_sees_it() {
    let relay = MockRelay::start("r").await;
    let homes = Homes::new();
    let served = start(
        &homes,
        &config(
            &relay.base_url(),
            &format!("client_key_env = \"{CLIENT_KEY_ENV}\""),
        ),
        &[],
        &[(CLIENT_KEY_ENV, CLIENT_KEY)],
    )
    .await;
    // The test cannot connect from another machine: a request relayed by a proxy on this
    // one (`X-Forwarded-For`) is asked for the key the same way. (The peer-address rule is
    // unit-tested in `proxy::client_key`.)
    let relayed = ("x-forwarded-for", "192.0.2.7");
    let (status, text) = turn(&served.url, &[relayed]).await;
    assert_eq!(status, 401, "{text}");
    let error: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["code"], "client_key_required");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains(CLIENT_KEY_ENV),
        "{text}"
    );
    let wrong = "Bearer client-key-abcdef012345678X";
    let (status, text) = turn(&served.url, &[relayed, ("authorization", wrong)]).await;
    assert_eq!(status, 401);
    assert!(text.contains("bad_client_key"), "{text}");
    // The WebSocket handshake is asked too.
    let handshake = support::client()
        .get(format!("{}/v1/responses", served.url))
        .header("x-forwarded-for", "192.0.2.7")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status().as_u16(), 401);
    assert_eq!(
        relay.hits_on("/v1/responses"),
        0,
        "nothing refused reached the relay"
    );

    let bearer = format!("Bearer {CLIENT_KEY}");
    let (status, text) = turn(&served.url, &[relayed, ("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("response.completed"), "{text}");
    // This machine's own Codex (loopback, not relayed) is not asked for it.
    let (status, _) = turn(
        &served.url,
        &[("authorization", "Bearer codex-helper-placeholder")],
    )
    .await;
    assert_eq!(status, 200);

    let received = relay.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {RELAY_KEY}").as_str(),
            "the relay gets its own credential"
        );
        let all = format!("{:?}", request.headers);
        assert!(
            !all.contains(CLIENT_KEY),
            "the relay saw the client key: {all}"
        );
    }
    let log = served.log_so_far();
    assert!(!log.contains(CLIENT_KEY), "the key is never logged");
    served.stop().await;
}

// ---- Peers that stop taking bytes (`write_stall_timeout_ms`) ----

/// A loopback listener whose accepted sockets buffer little, so a peer that stops reading
/// stops the writer after a few KiB rather than megabytes.
fn small_buffer_listener() -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(16).unwrap()
}

/// A relay that reads a request's head, then nothing until told to `listen`: it then reads
/// to the end of the connection and counts the body bytes that reached it.
struct DeafRelay {
    addr: SocketAddr,
    listen: Arc<tokio::sync::Notify>,
    heard: Arc<tokio::sync::Mutex<Option<usize>>>,
}

impl DeafRelay {
    fn start() -> Self {
        let listener = small_buffer_listener();
        let addr = listener.local_addr().unwrap();
        let listen = Arc::new(tokio::sync::Notify::new());
        let heard = Arc::new(tokio::sync::Mutex::new(None));
        let (told, count) = (listen.clone(), heard.clone());
        tokio::spawn(async move {
            // One connection: the request under test.
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let Some((data, head_end)) = read_head(&mut stream).await else {
                return;
            };
            told.notified().await;
            let mut chunk = [0u8; 4096];
            let mut body = data.len() - head_end;
            while let Ok(n @ 1..) = stream.read(&mut chunk).await {
                body += n;
            }
            *count.lock().await = Some(body);
        });
        Self {
            addr,
            listen,
            heard,
        }
    }

    /// Reads what is left of the connection (bounded): the body bytes that reached the relay.
    async fn body_heard(&self) -> usize {
        self.listen.notify_one();
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(body) = *self.heard.lock().await {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "the relay's connection stayed open"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Posts `body` through `served` (whose relay will stop taking it, with a write-stall limit
/// of 300 ms): the answer is a 502 saying `stalled` for 300 ms, long before any header
/// timeout.
async fn refused_for_a_stalled_body(served: &Served, body: String, stalled: &str) {
    let reply = tokio::time::timeout(
        LIMIT,
        support::client()
            .post(format!("{}/v1/responses", served.url))
            .header("content-type", "application/json")
            .body(body)
            .send(),
    )
    .await
    .expect("answered long before the relay's header timeout")
    .expect("answered");
    let status = reply.status().as_u16();
    let text = reply.text().await.unwrap();
    assert_eq!(status, 502, "{stalled}: {text}");
    assert!(
        text.contains(&format!("{stalled} for 300 ms (write_stall_timeout_ms)")),
        "{stalled}: {text}"
    );
}

#[tokio::test]
async fn a_relay_that_stops_reading_the_request_fails_the_attempt_and_frees_it() {
    // Directly, the relay's socket is watched; through an outbound proxy (reqwest's
    // connection), how the body is asked for.
    let outbound = support::outbound::TestOutbound::http(None).await;
    for (route, stalled) in [
        ("", "the relay took no bytes"),
        (
            &*format!("outbound_proxy = \"http://{}\"", outbound.addr),
            "the relay took no more of the request body",
        ),
    ] {
        let relay = DeafRelay::start();
        let homes = Homes::new();
        let proxy = format!(
            "write_stall_timeout_ms = 300\nresponse_header_timeout_ms = 600000\nmax_request_body_bytes = 67108864\n{route}"
        );
        let served = start(
            &homes,
            &config(&format!("http://{}/v1", relay.addr), &proxy),
            &[],
            &[],
        )
        .await;
        // Far more than the relay's and the proxy's socket buffers hold.
        let body = format!(
            r#"{{"model":"gpt-5.1","input":"{}"}}"#,
            "x".repeat(24 << 20)
        );
        refused_for_a_stalled_body(&served, body.clone(), stalled).await;
        // The proxy closed the relay's connection with most of the body never sent.
        let heard = relay.body_heard().await;
        assert!(
            heard < body.len() / 2,
            "{route}: {heard} of {} bytes",
            body.len()
        );
        let row = last_row(&homes).await;
        assert_eq!(row["status"], 502, "{route}: {row}");
        assert_eq!(row["error_class"], "transport", "{route}: {row}");
        served.stop().await;
    }
    assert!(
        outbound.tunnels() > 0,
        "the second relay was reached through the proxy"
    );
}

/// A relay that answers with an event stream it writes as fast as it is taken, until its
/// connection is closed (or 1 GiB, which a test never reaches); counts the closes.
struct FloodingRelay {
    addr: SocketAddr,
    closed: Arc<AtomicUsize>,
}

impl FloodingRelay {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let closed = Arc::new(AtomicUsize::new(0));
        let seen_closed = closed.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let closed = seen_closed.clone();
                tokio::spawn(async move {
                    if read_head(&mut stream).await.is_none() {
                        return;
                    }
                    let created = r#"{"type":"response.created","response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5.1"}}"#;
                    let delta = r#"{"type":"response.output_text.delta","delta":"flood"}"#;
                    let first = format!("event: response.created\ndata: {created}\n\n");
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n",
                        first.len()
                    );
                    let events =
                        format!("event: response.output_text.delta\ndata: {delta}\n\n").repeat(256);
                    let piece = format!("{:x}\r\n{events}\r\n", events.len());
                    let mut sent = head.len();
                    let mut write = stream.write_all(head.as_bytes()).await;
                    while write.is_ok() && sent < 1 << 30 {
                        write = stream.write_all(piece.as_bytes()).await;
                        sent += piece.len();
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self { addr, closed }
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_its_relay_request_ends() {
    let relay = FloodingRelay::start().await;
    let homes = Homes::new();
    let served = start(
        &homes,
        &config(
            &format!("http://{}/v1", relay.addr),
            "write_stall_timeout_ms = 300\nstream_idle_timeout_ms = 600000",
        ),
        &[],
        &[],
    )
    .await;
    // A client whose socket buffers little, and that stops reading after the head.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut client = tokio::time::timeout(LIMIT, socket.connect(addr(&served)))
        .await
        .expect("connect in time")
        .expect("connect");
    let body = r#"{"model":"gpt-5.1","input":"hi","stream":true}"#;
    client
        .write_all(
            format!(
                "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\naccept: text/event-stream\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(LIMIT, client.read_exact(&mut head))
        .await
        .expect("the head in time")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    // Not reading: the proxy gives up on the client and ends the relay request.
    let deadline = Instant::now() + LIMIT;
    while relay.closed.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the relay connection was still being written to\n{}",
            served.log_so_far()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = last_row(&homes).await;
    assert_eq!(row["outcome"], "client_disconnected", "{row}");
    // And the client's connection is closed.
    let (closed, _) = closed_by_server(&mut client).await;
    assert!(closed, "the client's connection is closed");
    served.stop().await;
}

#[tokio::test]
async fn bodies_past_the_shared_budget_are_refused_until_one_is_done() {
    const MIB: usize = 1 << 20;
    let (relay, homes, served) = serve_relay(&format!(
        "max_request_body_bytes = {MIB}\nmax_decoded_body_bytes = {MIB}\nmax_request_bytes_in_flight = {MIB}"
    ))
    .await;
    // One client sends all but 100 bytes of a body the caps allow, then waits: the proxy
    // holds what it sent, and a turn's few hundred bytes no longer fit.
    let mut holder = connect(&served).await;
    let head = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {MIB}\r\n\r\n"
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    holder.write_all(&vec![b' '; MIB - 100]).await.unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        // Until the proxy has read the held bytes, a turn may still fit.
        let (status, text) = turn(&served.url, &[]).await;
        if status == 503 {
            assert!(
                text.contains("request_bodies_over_budget")
                    && text.contains("max_request_bytes_in_flight"),
                "{text}"
            );
            break;
        }
        assert_eq!(status, 200, "{text}");
        assert!(Instant::now() < deadline, "no turn was refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = last_row(&homes).await;
    assert_eq!(row["status"], 503, "{row}");
    let relayed = relay.received().len();

    // The holder leaves: its bytes are given back and turns go through again.
    drop(holder);
    loop {
        let (status, text) = turn(&served.url, &[]).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        relay.received().len() > relayed,
        "the turn after reached the relay"
    );
}

#[tokio::test]
async fn a_declared_length_past_the_cap_is_refused_before_the_body_is_sent() {
    let (relay, _homes, served) = serve_relay("max_request_body_bytes = 100000").await;
    let mut stream = connect(&served).await;
    // The head alone: a proxy that waited for the body would answer only at its timeout.
    let head = "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100001\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let (status, text) = read_response(&mut stream).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("proxy.max_request_body_bytes"), "{text}");
    assert!(relay.received().is_empty());
}

/// An HTTPS relay speaking HTTP/2 (by ALPN) with 64 KiB flow-control windows, which takes a
/// request's head and never reads its body, so it never grants the window a longer body
/// needs. Its socket keeps taking bytes (window updates aside, there are none to send). Counts
/// the requests it was given up on.
struct WindowlessRelay {
    addr: SocketAddr,
    ca: String,
    dropped: Arc<AtomicUsize>,
}

/// Counts a request given up on (its stream reset, its service future dropped).
struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl WindowlessRelay {
    async fn start() -> Self {
        let (tls, ca) = support::mock_relay::tls_for_localhost(vec![b"h2".to_vec()]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let counter = dropped.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tls, counter) = (tls.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let held = (request, CountOnDrop(counter.clone()));
                        async move {
                            let _held = held;
                            std::future::pending::<
                                Result<
                                    http::Response<http_body_util::Full<bytes::Bytes>>,
                                    std::convert::Infallible,
                                >,
                            >()
                            .await
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .initial_stream_window_size(65_535)
                    .initial_connection_window_size(65_535)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Self { addr, ca, dropped }
    }
}

#[tokio::test]
async fn an_http2_relay_that_grants_no_window_fails_the_attempt_and_frees_it() {
    let relay = WindowlessRelay::start().await;
    let homes = Homes::new();
    let ca_file = homes.helper.path().join("test-ca.pem");
    std::fs::write(&ca_file, &relay.ca).unwrap();
    let proxy = "write_stall_timeout_ms = 300\nresponse_header_timeout_ms = 600000";
    let base_url = format!("https://localhost:{}/v1", relay.addr.port());
    // The platform verifier reads extra roots from here on Linux.
    let env = [("SSL_CERT_FILE", ca_file.to_str().unwrap())];
    let served = start(&homes, &config(&base_url, proxy), &[], &env).await;
    let body = format!(r#"{{"model":"gpt-5.1","input":"{}"}}"#, "x".repeat(1 << 20));
    refused_for_a_stalled_body(&served, body, "the relay took no more of the request body").await;
    // The request was given up on at the relay too: its stream reset.
    let deadline = Instant::now() + LIMIT;
    while relay.dropped.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the relay's request stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = last_row(&homes).await;
    assert_eq!(row["status"], 502, "{row}");
    assert_eq!(row["error_class"], "transport", "{row}");
    served.stop().await;
}
