//! What the proxy refuses and bounds, against mock relays and raw clients: memory held before
//! the first event, base-path joining, credential echoes, browser and foreign-host requests,
//! dot segments, empty answers, slow uploads, keep-alive-only streams.

mod support;

use std::time::Duration;

use codex_helper::proxy::Outcome;
use codex_helper::proxy::record::AttemptOutcome;
use codex_helper::routing::retry::FailureClass;
use serde_json::Value;
use support::mock_relay::{Fault, MockRelay};
use support::{TestProxy, codex_body, providers};
use support::{bounded, client, sse_post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `head` (and `body`) on a raw connection and returns everything the proxy answered
/// before closing, or what arrived within `wait`. Raw, because HTTP clients normalise the
/// very things these tests send (dot segments, `Host`).
async fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8], wait: Duration) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if response_complete(&answer) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(wait, read).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether `bytes` hold a whole response with a `content-length` (the connection may stay open).
fn response_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .is_some_and(|len| body.len() >= len)
}

fn addr(proxy: &TestProxy) -> std::net::SocketAddr {
    proxy.server.as_ref().unwrap().addr
}

fn post_head(path: &str, host: &str, extra: &str, body_len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{extra}content-length: {body_len}\r\nconnection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn a_relay_that_floods_before_its_first_event_is_failed_over() {
    bounded(async {
        let floods = [
            ("comments", Fault::CommentsBeforeEvents { bytes: 8 << 20 }),
            (
                "gzip newlines",
                Fault::GzipNewlinesBeforeEvents { bytes: 16 << 20 },
            ),
        ];
        for (name, flood) in floods {
            let first = MockRelay::start("first").await;
            let second = MockRelay::start("second").await;
            first.push(flood);
            let proxy = TestProxy::start(
                &providers(&[("first", &first.base_url()), ("second", &second.base_url())]),
                &[],
            )
            .await;
            let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
                .send()
                .await
                .unwrap();
            let text = reply.text().await.unwrap();
            assert!(text.contains("hi from second"), "{name}: {text}");
            assert!(!text.contains(": ppp"), "{name}: nothing of the flood reaches the client");
            let records = proxy.records.wait_for(1).await;
            let record = &records[0].0;
            assert!(
                matches!(
                    &record.attempts[0].outcome,
                    AttemptOutcome::FailedStream { class: FailureClass::PreambleTooLarge, detail, .. }
                        if detail.contains("before the stream's first event")
                ),
                "{name}: {:?}",
                record.attempts[0]
            );
            assert_eq!(record.provider.as_deref(), Some("second"), "{name}");
        }
    })
    .await;
}

#[tokio::test]
async fn base_urls_ending_in_v1_do_not_get_a_second_v1() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        for (base_path, want) in [
            ("/api/v1", "/api/v1/responses"),
            ("/openai/v1", "/openai/v1/responses"),
            ("/v1", "/v1/responses"),
            ("/codex", "/codex/v1/responses"),
            ("", "/v1/responses"),
        ] {
            let base = format!("http://{}{base_path}", relay.addr);
            let proxy = TestProxy::start(&providers(&[("a", &base)]), &[]).await;
            let text = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(text.contains("hi from r"), "{base_path}: {text}");
            let last = relay.received().pop().unwrap();
            assert_eq!(last.path_and_query, want, "base path {base_path:?}");
        }
    })
    .await;
}

const KEY: &str = "relay-secret-key-0123456789";

/// A relay that answers with our own request headers in its error body, as some do.
fn echo(status: u16) -> Fault {
    Fault::Status {
        status,
        body: format!(
            r#"{{"error":{{"message":"invalid key Bearer {KEY}","request_headers":{{"authorization":"Bearer {KEY}","x-api-key":"{KEY}","x-other":"sk-unrelated0123456789"}}}}}}"#
        ),
        retry_after: None,
    }
}

#[tokio::test]
async fn a_relay_echoing_our_key_does_not_get_it_stored_or_shown() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let config = format!(
            "[codex.providers.a]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n[codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"a\"]\n",
            relay.base_url()
        );
        // A fresh proxy per case: a 401 cools the relay down.
        let mut records = Vec::new();
        let proxy = TestProxy::start(&config, &[("RELAY_KEY", KEY)]).await;

        // 401 is failed over; with nowhere else to go, the client gets a 502 listing attempts.
        relay.push(echo(401));
        let reply = client()
            .post(proxy.url("/v1/responses"))
            .header("content-type", "application/json")
            .body(r#"{"model":"gpt-5.1","input":"hi"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 502);
        let body = reply.text().await.unwrap();
        assert!(body.contains("invalid key"), "the relay's message stays: {body}");
        assert!(!body.contains(KEY) && !body.contains("sk-unrelated"), "{body}");
        assert!(body.contains("[redacted]"), "{body}");
        records.extend(proxy.records.wait_for(1).await);

        // A client error is passed on, without the key.
        let proxy = TestProxy::start(&config, &[("RELAY_KEY", KEY)]).await;
        relay.push(echo(400));
        let reply = client()
            .post(proxy.url("/v1/responses"))
            .header("content-type", "application/json")
            .body(r#"{"model":"gpt-5.1","input":"hi"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 400);
        let body = reply.text().await.unwrap();
        assert!(!body.contains(KEY), "{body}");
        let json: Value = serde_json::from_str(&body).expect("still JSON");
        assert_eq!(json["error"]["request_headers"]["x-api-key"], "[redacted]");
        records.extend(proxy.records.wait_for(1).await);

        // A Codex stream gets a response.failed whose message lists the attempts.
        let proxy = TestProxy::start(&config, &[("RELAY_KEY", KEY)]).await;
        relay.push(echo(401));
        let text = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("response.failed") && !text.contains(KEY), "{text}");

        records.extend(proxy.records.wait_for(1).await);
        assert_eq!(records.len(), 3);
        for (record, _) in &records {
            let stored = format!("{:?} {:?}", record.attempts, record.error);
            assert!(!stored.contains(KEY), "{stored}");
            let json = serde_json::to_string(&record.attempts).unwrap();
            assert!(!json.contains(KEY), "{json}");
        }
        let AttemptOutcome::FailedStatus { body_preview, .. } = &records[0].0.attempts[0].outcome
        else {
            panic!("{:?}", records[0].0.attempts[0]);
        };
        assert!(body_preview.contains("invalid key Bearer [redacted]"), "{body_preview}");
    })
    .await;
}

#[tokio::test]
async fn browser_and_foreign_host_requests_are_refused_before_any_relay_io() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let port = addr(&proxy).port();
        let body = br#"{"model":"gpt-5.1","input":"spend my credit"}"#;
        let local = format!("127.0.0.1:{port}");
        let cases = [
            (
                "text/plain from a web page",
                format!(
                    "POST /v1/responses HTTP/1.1\r\nhost: {local}\r\norigin: https://evil.example\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                ),
                "browser_request_refused",
            ),
            (
                "CORS preflight",
                format!(
                    "OPTIONS /v1/responses HTTP/1.1\r\nhost: {local}\r\norigin: https://evil.example\r\naccess-control-request-method: POST\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                ),
                "browser_request_refused",
            ),
            (
                "DNS rebinding",
                post_head("/v1/responses", &format!("evil.example:{port}"), "", body.len()),
                "host_not_allowed",
            ),
            (
                "LAN address",
                post_head("/v1/responses", &format!("192.168.1.20:{port}"), "", body.len()),
                "host_not_allowed",
            ),
        ];
        for (name, head, code) in cases {
            let send: &[u8] = if head.starts_with("OPTIONS") { b"" } else { body };
            let answer = raw(addr(&proxy), &head, send, Duration::from_secs(5)).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "{name}: {answer}");
            assert!(answer.contains(code), "{name}: {answer}");
        }
        assert_eq!(relay.hits(), 0, "nothing reached the relay");

        // Loopback names, with any port, are Codex's and pass.
        for host in [local.as_str(), "localhost", "[::1]:3211", "[::ffff:127.0.0.1]:3211"] {
            let answer = raw(
                addr(&proxy),
                &post_head("/v1/responses", host, "", body.len()),
                body,
                Duration::from_secs(5),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
        }
        assert_eq!(relay.hits(), 4);
    })
    .await;
}

#[tokio::test]
async fn allowed_hosts_let_a_named_host_through() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let config = format!(
            "{}[proxy]\nallowed_hosts = [\"helper.team.lan\"]\n",
            providers(&[("a", &relay.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let body = br#"{"model":"gpt-5.1","input":"hi"}"#;
        let ok = raw(
            addr(&proxy),
            &post_head("/v1/responses", "helper.team.lan:3211", "", body.len()),
            body,
            Duration::from_secs(5),
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let refused = raw(
            addr(&proxy),
            &post_head("/v1/responses", "other.team.lan", "", body.len()),
            body,
            Duration::from_secs(5),
        )
        .await;
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        assert_eq!(relay.hits(), 1);
    })
    .await;
}

#[tokio::test]
async fn dot_segments_cannot_leave_the_relays_base_path() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let base = format!("http://{}/tenantA/v1", relay.addr);
        let proxy = TestProxy::start(&providers(&[("a", &base)]), &[]).await;
        let body = br#"{"model":"gpt-5.1","input":"hi"}"#;
        for path in [
            "/v1/../../tenantB/v1/responses",
            "/v1/%2e%2e/%2e%2e/tenantB/v1/responses",
            "/v1/%2E%2E/%2E%2E/tenantB/v1/responses",
            "/v1/..%2f..%2ftenantB/v1/responses",
        ] {
            let answer = raw(
                addr(&proxy),
                &post_head(path, "127.0.0.1", "", body.len()),
                body,
                Duration::from_secs(5),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
            assert!(answer.contains("invalid_path"), "{path}: {answer}");
        }
        assert_eq!(relay.hits(), 0);
        let records = proxy.records.wait_for(4).await;
        assert!(records.iter().all(|(_, o)| *o == Outcome::Rejected));
    })
    .await;
}

#[tokio::test]
async fn empty_answers_are_recorded_as_completed_with_their_status() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        for status in [204u16, 200, 404] {
            relay.push(Fault::Empty { status });
            let reply = client()
                .post(proxy.url("/v1/responses"))
                .header("content-type", "application/json")
                .body(r#"{"model":"gpt-5.1","input":"hi"}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status().as_u16(), status);
            assert_eq!(reply.bytes().await.unwrap().len(), 0);
        }
        let records = proxy.records.wait_for(3).await;
        let seen: Vec<(Option<u16>, Outcome)> =
            records.iter().map(|(r, o)| (r.status, *o)).collect();
        assert_eq!(
            seen,
            vec![
                (Some(204), Outcome::Completed),
                (Some(200), Outcome::Completed),
                (Some(404), Outcome::Completed)
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_stalled_upload_gets_408_instead_of_holding_the_connection() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let config = format!(
            "{}[proxy]\nrequest_body_timeout_ms = 300\n",
            providers(&[("a", &relay.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        // Announces 1000 bytes, sends 10, then waits.
        let answer = raw(
            addr(&proxy),
            &post_head("/v1/responses", "127.0.0.1", "", 1000),
            b"{\"model\":",
            Duration::from_secs(10),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_body_timeout"), "{answer}");
        assert_eq!(relay.hits(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_stream_of_only_keep_alive_comments_counts_as_idle() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        relay.push(Fault::KeepAliveAfterEvents {
            after_events: 4,
            every: Duration::from_millis(50),
            count: 60,
        });
        let config = format!(
            "{}[proxy]\nstream_idle_timeout_ms = 400\n",
            providers(&[("a", &relay.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let text = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains(": keep-alive"),
            "comments are still forwarded"
        );
        assert!(!text.contains("response.completed"), "{text}");
        assert!(text.contains("no data from the upstream"), "{text}");
        assert_eq!(
            proxy.records.wait_for(1).await[0].1,
            Outcome::UpstreamStreamError
        );
    })
    .await;
}

#[tokio::test]
async fn websocket_upgrades_a_relay_refuses_get_426_so_codex_uses_http_at_once() {
    bounded(async {
        // The mock relay answers a WebSocket upgrade with 426, like a relay without it.
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let head = "GET /v1/responses HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nopenai-beta: responses_websockets=2026-02-06\r\n\r\n";
        for _ in 0..3 {
            let answer = raw(addr(&proxy), head, b"", Duration::from_secs(5)).await;
            assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
            assert!(answer.contains("websocket_not_supported"), "{answer}");
        }
        assert_eq!(relay.hits(), 1, "the refusal is remembered: one handshake, not three");
    })
    .await;
}
