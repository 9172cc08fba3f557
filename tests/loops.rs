//! No forwarding loops: a relay that is the helper itself is refused at start-up, in
//! `provider add` and in first-run import, and a loop through another hop is answered at once
//! with 508 `forwarding_loop` instead of going round until a timeout.

mod support;

use std::time::{Duration, Instant};

use codex_helper::config::load;
use codex_helper::proxy::record::AttemptOutcome;
use codex_helper::proxy::{Outcome, Plan};
use codex_helper::routing::retry::FailureClass;
use support::bounded;
use support::cli::{Homes, LIMIT, run, run_to_end};
use support::mock_relay::MockRelay;
use support::outbound::free_port;
use support::{TestProxy, codex_body, providers};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Points a running test proxy at other relays.
fn route(proxy: &TestProxy, relays: &[(&str, &str)]) {
    let text = format!("version = 5\n{}", providers(relays));
    let loaded = load::parse(std::path::Path::new("/test/config.toml"), &text).unwrap();
    proxy
        .state
        .reload(Plan::from_config(&loaded, &|_| None).unwrap())
        .unwrap();
}

/// A streaming Codex turn: status and body.
async fn turn(proxy: &TestProxy) -> (u16, String) {
    let reply = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(proxy.url("/v1/responses"))
        .header("accept", "text/event-stream")
        .body(codex_body("gpt-5.1", "s1", 500))
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

#[tokio::test]
async fn a_loop_through_another_helper_is_answered_at_once_with_508() {
    bounded(async {
        let a = TestProxy::start("", &[]).await;
        let b = TestProxy::start("", &[]).await;
        route(&a, &[("to-b", &b.url("/v1"))]);
        route(&b, &[("to-a", &a.url("/v1"))]);

        let started = Instant::now();
        let (status, body) = turn(&a).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(status, 508, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "forwarding_loop");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("relay `to-b.default` leads back"),
            "{message}"
        );

        // A: the looped request refused on arrival, and the client's request naming its relay.
        let records = a.records.wait_for(2).await;
        let (inner, inner_outcome) = &records[0];
        assert_eq!(*inner_outcome, Outcome::Rejected);
        assert_eq!(inner.status, Some(508));
        assert!(inner.error.as_deref().unwrap().contains("forwarding loop"));
        let (outer, outer_outcome) = &records[1];
        assert_eq!(*outer_outcome, Outcome::AllUpstreamsFailed);
        assert_eq!(outer.status, Some(508));
        assert!(outer.error.as_deref().unwrap().contains("to-b.default"));
        assert!(matches!(
            outer.attempts[..],
            [codex_helper::proxy::record::Attempt {
                outcome: AttemptOutcome::FailedStatus {
                    status: 508,
                    class: FailureClass::ForwardingLoop,
                    ..
                },
                ..
            }]
        ));
        // B went round once: one request, failed over at once, no retries.
        let b_records = b.records.wait_for(1).await;
        assert_eq!(b_records.len(), 1);
        assert_eq!(b_records[0].0.attempts.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_relay_that_is_the_helper_itself_is_failed_over() {
    bounded(async {
        let good = MockRelay::start("good").await;
        let proxy = TestProxy::start("", &[]).await;
        let me = proxy.url("/v1");
        route(&proxy, &[("me", &me), ("good", &good.base_url())]);
        let (status, body) = turn(&proxy).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("hi from good"), "{body}");
        let records = proxy.records.wait_for(2).await;
        let outer = records.iter().find(|(r, _)| r.provider.is_some()).unwrap();
        assert_eq!(outer.0.provider.as_deref(), Some("good"));
        let AttemptOutcome::FailedStatus { class, .. } = &outer.0.attempts[0].outcome else {
            panic!("{:?}", outer.0.attempts);
        };
        assert_eq!(*class, FailureClass::ForwardingLoop);
    })
    .await;
}

#[tokio::test]
async fn serve_refuses_a_relay_at_its_own_address() {
    bounded(async {
        let homes = Homes::new();
        let port = free_port().to_string();
        std::fs::write(
            homes.helper_config(),
            format!(
                "version = 5\n[codex.providers.myself]\nbase_url = \"http://localhost:{port}/v1\"\n"
            ),
        )
        .unwrap();
        let (ok, stderr) =
            run_to_end(homes.command(&["serve", "--no-tui", "--no-switch", "--port", &port])).await;
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains("relay `myself.default`")
                && stderr.contains("is this codex-helper itself")
                && stderr.contains("loop"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test]
async fn provider_add_refuses_the_helpers_own_address() {
    bounded(async {
        let homes = Homes::new();
        let (ok, out) = run(
            &homes,
            &["provider", "add", "me", "--base-url", "http://127.0.0.1:3211/v1"],
        )
        .await;
        assert!(!ok, "{out}");
        assert!(out.contains("relay `me`") && out.contains("loop"), "{out}");
        assert!(!homes.helper_config().exists());

        // The port Codex is switched to counts too.
        std::fs::write(
            homes.codex.path().join("config.toml"),
            "model_provider = \"codex_proxy\"\n[model_providers.codex_proxy]\nbase_url = \"http://127.0.0.1:4000/v1\"\n",
        )
        .unwrap();
        let (ok, out) = run(
            &homes,
            &["provider", "add", "me", "--base-url", "http://localhost:4000"],
        )
        .await;
        assert!(!ok && out.contains("port 4000"), "{out}");
        let (ok, out) = run(
            &homes,
            &["provider", "add", "ok", "--base-url", "http://127.0.0.1:4001/v1"],
        )
        .await;
        assert!(ok, "{out}");
    })
    .await;
}

#[tokio::test]
async fn first_run_does_not_import_a_codex_provider_that_is_the_helper() {
    bounded(async {
        let homes = Homes::new();
        let port = free_port().to_string();
        std::fs::write(
            homes.codex.path().join("config.toml"),
            format!(
                "model_provider = \"was-switched\"\n[model_providers.was-switched]\nbase_url = \"http://127.0.0.1:{port}/v1\"\n"
            ),
        )
        .unwrap();
        let mut child = homes
            .command(&["serve", "--no-tui", "--no-switch", "--port", &port])
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        tokio::time::timeout(LIMIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let done = line.contains("listening on");
                log.push(line);
                if done {
                    break;
                }
            }
        })
        .await
        .unwrap();
        let log = log.join("\n");
        assert!(
            log.contains("provider `was-switched`") && log.contains("loop back"),
            "{log}"
        );
        let config = std::fs::read_to_string(homes.helper_config()).unwrap();
        assert!(
            !config.contains(&format!("127.0.0.1:{port}"))
                && !config.lines().any(|l| l.starts_with("[codex.providers")),
            "{config}"
        );
    })
    .await;
}
