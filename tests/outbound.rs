//! Reaching relays through an outbound HTTP or SOCKS5 proxy: the settings and their
//! precedence, the environment variables (on the real binary), failover when the proxy is down
//! or refuses, and proxy credentials never shown.

mod support;

use std::time::Duration;

use codex_helper::proxy::Outcome;
use codex_helper::proxy::record::AttemptOutcome;
use support::cli::{Homes, run, serve};
use support::mock_relay::MockRelay;
use support::outbound::{ClosedPort, TestOutbound};
use support::{TestProxy, codex_body};
use support::{bounded, client};

/// A streaming Codex turn; the reply's text.
async fn turn(url: &str) -> (u16, String) {
    let reply = client()
        .post(format!("{url}/v1/responses"))
        .header("accept", "text/event-stream")
        .body(codex_body("gpt-5.1", "s1", 500))
        .send()
        .await
        .unwrap();
    (reply.status().as_u16(), reply.text().await.unwrap())
}

/// `[codex.providers.ID]` with `base_url` and the extra lines given.
fn provider(id: &str, base_url: &str, extra: &str) -> String {
    format!("[codex.providers.{id}]\nbase_url = \"{base_url}\"\n{extra}\n")
}

fn order(ids: &[&str]) -> String {
    let ids: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    format!(
        "[codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [{}]\n",
        ids.join(", ")
    )
}

#[tokio::test]
async fn the_global_setting_sends_relays_through_an_http_proxy() {
    bounded(async {
        let relay = MockRelay::start("relay").await;
        let outbound = TestOutbound::http(Some(("alice", "pa55"))).await;
        let config = format!(
            "[proxy]\noutbound_proxy = \"{}\"\n{}",
            outbound.url("http", Some(("alice", "pa55"))),
            provider("r", &relay.base_url(), "")
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let (status, text) = turn(&proxy.url("")).await;
        assert_eq!(status, 200);
        assert!(text.contains("response.completed"), "{text}");
        assert_eq!(outbound.tunnels(), 1);
        assert_eq!(relay.hits(), 1);
        // A body of several slices still goes with its length, whole.
        let big = codex_body("gpt-5.1", "s1", 200_000);
        let reply = client()
            .post(proxy.url("/v1/responses"))
            .header("accept", "text/event-stream")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let received = &relay.received()[1];
        assert_eq!(received.body, big.as_bytes());
        let length = received
            .headers
            .get("content-length")
            .map(|v| v.to_str().unwrap());
        assert_eq!(length, Some(&*received.body.len().to_string()));
        assert!(received.headers.get("transfer-encoding").is_none());
        // Another request reuses the pooled connection through the proxy.
        turn(&proxy.url("")).await;
        assert_eq!(outbound.tunnels(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_provider_setting_beats_the_global_one_and_direct_beats_both() {
    bounded(async {
        let socks_relay = MockRelay::start("socks").await;
        let direct_relay = MockRelay::start("direct").await;
        let global = TestOutbound::http(None).await;
        let socks = TestOutbound::socks5(Some(("bob", "s0cks"))).await;
        let config = format!(
            "[proxy]\noutbound_proxy = \"{}\"\n{}{}{}",
            global.url("http", None),
            provider(
                "viasocks",
                &socks_relay.base_url(),
                &format!(
                    "outbound_proxy = \"{}\"",
                    socks.url("socks5h", Some(("bob", "s0cks")))
                )
            ),
            provider(
                "direct",
                &direct_relay.base_url(),
                "outbound_proxy = \"direct\""
            ),
            order(&["viasocks", "direct"])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let (status, _) = turn(&proxy.url("")).await;
        assert_eq!(status, 200);
        assert_eq!((socks.tunnels(), global.tunnels()), (1, 0));
        // socks5h: the name goes to the proxy, which resolves it.
        assert_eq!(
            socks.targets(),
            [format!("127.0.0.1:{}", socks_relay.addr.port())]
        );

        proxy
            .state
            .routing
            .set_runtime_disabled("viasocks.default", Some(("test".into(), None)));
        let (status, text) = turn(&proxy.url("")).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(direct_relay.hits(), 1);
        assert_eq!((socks.tunnels(), global.tunnels()), (1, 0));
    })
    .await;
}

#[tokio::test]
async fn an_endpoint_setting_beats_its_providers() {
    bounded(async {
        let relay = MockRelay::start("relay").await;
        let socks = TestOutbound::socks5(None).await;
        let config = format!(
            "[codex.providers.p]\noutbound_proxy = \"direct\"\n[codex.providers.p.endpoints.e]\nbase_url = \"{}\"\noutbound_proxy = \"{}\"\n",
            relay.base_url(),
            socks.url("socks5", None)
        );
        let proxy = TestProxy::start(&config, &[]).await;
        assert_eq!(turn(&proxy.url("")).await.0, 200);
        assert_eq!(socks.tunnels(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_down_proxy_fails_over_and_the_record_names_the_proxy_not_its_password() {
    bounded(async {
        let unreachable = MockRelay::start("behind the proxy").await;
        let backup = MockRelay::start("backup").await;
        let port = ClosedPort::new();
        let config = format!(
            "{}{}{}",
            provider(
                "proxied",
                &unreachable.base_url(),
                &format!("outbound_proxy = \"http://carol:hunter2@127.0.0.1:{port}\"")
            ),
            provider("backup", &backup.base_url(), ""),
            order(&["proxied", "backup"])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let (status, text) = turn(&proxy.url("")).await;
        assert_eq!(status, 200);
        assert!(text.contains("hi from backup"), "{text}");
        assert_eq!(unreachable.hits(), 0);

        let records = proxy.records.wait_for(1).await;
        let (record, outcome) = &records[0];
        assert_eq!(*outcome, Outcome::Completed);
        let AttemptOutcome::ConnectError { error } = &record.attempts[0].outcome else {
            panic!("{:?}", record.attempts);
        };
        let shown = format!("http://***@127.0.0.1:{port}");
        assert!(
            error.contains(&format!("outbound proxy {shown}")),
            "{error}"
        );
        let everything = format!("{record:?}");
        assert!(!everything.contains("hunter2"), "{everything}");
        assert!(!everything.contains("carol"), "{everything}");
    })
    .await;
}

#[tokio::test]
async fn a_proxy_that_refuses_the_credentials_is_failed_over_and_said_so() {
    bounded(async {
        let relay = MockRelay::start("relay").await;
        let backup = MockRelay::start("backup").await;
        let strict = TestOutbound::http(Some(("dave", "right"))).await;
        let socks = TestOutbound::socks5(Some(("dave", "right"))).await;
        let config = format!(
            "{}{}{}{}",
            provider(
                "http",
                &relay.base_url(),
                &format!(
                    "outbound_proxy = \"{}\"",
                    strict.url("http", Some(("dave", "wrong")))
                )
            ),
            provider(
                "socks",
                &relay.base_url(),
                &format!(
                    "outbound_proxy = \"{}\"",
                    socks.url("socks5", Some(("dave", "wrong")))
                )
            ),
            provider("backup", &backup.base_url(), ""),
            order(&["http", "socks", "backup"])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let (status, _) = turn(&proxy.url("")).await;
        assert_eq!(status, 200);
        assert_eq!((strict.refused(), socks.refused()), (1, 1));
        assert_eq!(relay.hits(), 0);
        let records = proxy.records.wait_for(1).await;
        let attempts = &records[0].0.attempts;
        let summaries: Vec<String> = attempts.iter().map(|a| a.summary()).collect();
        assert_eq!(summaries.len(), 3, "{summaries:?}");
        assert!(
            summaries[0].contains(&format!("outbound proxy http://***@{}", strict.addr))
                && summaries[0].contains("407"),
            "{summaries:?}"
        );
        assert!(
            summaries[1].contains(&format!("outbound proxy socks5://***@{}", socks.addr)),
            "{summaries:?}"
        );
        assert!(!format!("{summaries:?}").contains("wrong"), "{summaries:?}");
    })
    .await;
}

#[tokio::test]
async fn the_environment_is_used_for_remote_relays_but_never_for_loopback_ones() {
    bounded(async {
        let relay = MockRelay::start("relay").await;
        let outbound = TestOutbound::http(None).await;
        let env = [("HTTP_PROXY", outbound.url("http", None))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Only the proxy knows `relay.test`.
        let remote = format!("http://relay.test:{}/v1", relay.addr.port());
        let proxy = TestProxy::start(&provider("far", &remote, ""), &env).await;
        assert_eq!(turn(&proxy.url("")).await.0, 200);
        assert_eq!(outbound.tunnels(), 1);
        assert_eq!(
            outbound.targets(),
            [format!("relay.test:{}", relay.addr.port())]
        );

        let near = TestProxy::start(&provider("near", &relay.base_url(), ""), &env).await;
        assert_eq!(turn(&near.url("")).await.0, 200);
        assert_eq!(
            outbound.tunnels(),
            1,
            "a loopback relay went through the proxy"
        );

        let mut no_proxy = env.clone();
        no_proxy.push(("NO_PROXY", ".test"));
        let excluded = TestProxy::start(&provider("far", &remote, ""), &no_proxy).await;
        // Direct, `relay.test` does not resolve: the relay cannot be reached.
        let (_, text) = turn(&excluded.url("")).await;
        assert!(text.contains("all_upstreams_failed"), "{text}");
        assert_eq!(outbound.tunnels(), 1, "NO_PROXY was not honoured");
    })
    .await;
}

#[tokio::test]
async fn serve_honours_proxy_environment_variables_and_skips_them_for_loopback() {
    bounded(async {
        let relay = MockRelay::start("relay").await;
        let outbound = TestOutbound::http(None).await;
        let homes = Homes::new();
        let remote = format!("http://relay.test:{}/v1", relay.addr.port());
        std::fs::write(
            homes.helper_config(),
            format!(
                "version = 5\n{}{}{}",
                provider("far", &remote, ""),
                provider("near", &relay.base_url(), ""),
                order(&["far", "near"])
            ),
        )
        .unwrap();
        let mut command = homes.command(&["serve", "--no-switch"]);
        command.env("https_proxy", "http://127.0.0.1:1");
        command.env("HTTP_PROXY", outbound.url("http", None));
        let served = serve(command).await;
        let banner = served.log.join("\n");
        assert!(
            banner.contains(&format!(
                "far.default ({remote} via http://{})",
                outbound.addr
            )),
            "{banner}"
        );
        // Codex run from this environment would send its own requests to that proxy.
        assert!(
            banner.contains("HTTP_PROXY is set and NO_PROXY does not cover 127.0.0.1"),
            "{banner}"
        );
        assert_eq!(turn(&served.url).await.0, 200);
        assert_eq!(outbound.tunnels(), 1);
        assert_eq!(relay.hits(), 1);

        // `near` is loopback: the environment's proxy is not used for it.
        let mut show = homes.command(&["routing", "show"]);
        show.env("HTTP_PROXY", outbound.url("http", None));
        let out = show.output().await.unwrap();
        assert!(out.status.success());
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.contains("direct (loopback relay; $HTTP_PROXY not used)"),
            "{out}"
        );
    })
    .await;
}

#[tokio::test]
async fn proxy_credentials_are_never_shown() {
    bounded(async {
        let homes = Homes::new();
        let secret_url = "socks5://erin:t0psecret@proxy.example:1080";
        std::fs::write(
            homes.helper_config(),
            format!(
                "version = 5\n[proxy]\noutbound_proxy = \"{secret_url}\"\n{}",
                provider("r", "https://relay.example/v1", "")
            ),
        )
        .unwrap();
        for args in [
            &["provider", "show", "r"][..],
            &["provider", "show", "r", "--json"],
            &["provider", "list", "--json"],
            &["routing", "show"],
            &["routing", "explain", "--json"],
        ] {
            let (ok, out) = run(&homes, args).await;
            assert!(ok, "{args:?}: {out}");
            assert!(
                out.contains("socks5://***@proxy.example:1080"),
                "{args:?}: {out}"
            );
            assert!(
                !out.contains("t0psecret") && !out.contains("erin"),
                "{args:?}: {out}"
            );
        }
        let served = serve(homes.command(&["serve", "--no-switch"])).await;
        let log = served.log.join("\n");
        assert!(log.contains("via socks5://***@proxy.example:1080"), "{log}");
        assert!(!log.contains("t0psecret"), "{log}");
        // One helper a home: stopped before the next start is tried.
        served.stop().await;

        // A wrong value is refused with its key, still without the password.
        std::fs::write(
            homes.helper_config(),
            format!(
                "version = 5\n{}",
                provider(
                    "r",
                    "https://relay.example/v1",
                    "outbound_proxy = \"ftp://erin:t0psecret@proxy.example\""
                )
            ),
        )
        .unwrap();
        let (ok, out) = run(&homes, &["serve", "--no-tui", "--no-switch", "--port", "0"]).await;
        assert!(!ok);
        assert!(out.contains("codex.providers.r.outbound_proxy"), "{out}");
        assert!(out.contains("socks5://"), "{out}");
        assert!(!out.contains("t0psecret") && !out.contains("erin"), "{out}");
    })
    .await;
}

/// The attempts of the newest request in the ledger, as `usage chain --json` prints them (the
/// ledger writes in the background: waited for, bounded).
async fn ledger_chain(homes: &Homes) -> String {
    for _ in 0..100 {
        let (ok, out) = run(homes, &["usage", "tail", "--json"]).await;
        // Oldest first: the last one is the newest.
        let trace = out
            .rsplit("\"trace_id\"")
            .next()
            .filter(|_| out.contains("\"trace_id\""))
            .and_then(|rest| rest.split('"').nth(1))
            .map(str::to_string);
        if let (true, Some(trace)) = (ok, trace) {
            let (ok, chain) = run(homes, &["usage", "chain", "--trace-id", &trace, "--json"]).await;
            assert!(ok, "{chain}");
            return chain;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the request did not reach the ledger");
}

#[tokio::test]
async fn a_connect_tunnel_refused_by_the_proxy_fails_over_to_the_next_relay() {
    bounded(async {
        let (tls_relay, ca_pem) = MockRelay::start_tls("tls relay").await;
        let backup = MockRelay::start("backup").await;
        let strict = TestOutbound::http(Some(("frank", "ok"))).await;
        let homes = Homes::new();
        let ca_file = homes.helper.path().join("test-ca.pem");
        std::fs::write(&ca_file, &ca_pem).unwrap();
        std::fs::write(
            homes.helper_config(),
            format!(
                "version = 5\n{}{}{}{}",
                provider(
                    "tunnel",
                    &tls_relay.base_url(),
                    &format!(
                        "outbound_proxy = \"{}\"",
                        strict.url("http", Some(("frank", "ok")))
                    )
                ),
                provider(
                    "refused",
                    &tls_relay.base_url(),
                    &format!(
                        "outbound_proxy = \"{}\"",
                        strict.url("http", Some(("frank", "no")))
                    )
                ),
                provider("backup", &backup.base_url(), ""),
                order(&["refused", "tunnel", "backup"])
            ),
        )
        .unwrap();
        let mut command = homes.command(&["serve", "--no-switch"]);
        command.env("SSL_CERT_FILE", &ca_file);
        let served = serve(command).await;
        let (status, text) = turn(&served.url).await;
        assert_eq!(status, 200, "{text}");
        // `refused` failed over at the CONNECT; `tunnel` answered over TLS through the proxy.
        assert!(text.contains("hi from tls relay"), "{text}");
        assert_eq!(strict.refused(), 1);
        assert_eq!(strict.tunnels(), 1);
        assert_eq!(backup.hits(), 0);
        let out = ledger_chain(&homes).await;
        assert!(
            out.contains(&format!("outbound proxy http://***@{}", strict.addr)),
            "{out}"
        );
        assert!(!out.contains("\"no\"") && !out.contains("frank"), "{out}");
    })
    .await;
}

#[tokio::test]
async fn a_proxy_that_never_answers_times_out_and_fails_over() {
    bounded(async {
        let relay = MockRelay::start("relay").await;
        let backup = MockRelay::start("backup").await;
        // Accepts connections and never says a word.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                open.push(stream);
            }
        });
        let config = format!(
            "[proxy]\nconnect_timeout_ms = 300\n{}{}{}",
            provider(
                "stalled",
                &relay.base_url(),
                &format!("outbound_proxy = \"socks5://{silent_addr}\"")
            ),
            provider("backup", &backup.base_url(), ""),
            order(&["stalled", "backup"])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let started = std::time::Instant::now();
        let (status, text) = turn(&proxy.url("")).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("hi from backup"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let records = proxy.records.wait_for(1).await;
        let AttemptOutcome::ConnectError { error } = &records[0].0.attempts[0].outcome else {
            panic!("{:?}", records[0].0.attempts);
        };
        assert!(
            error.contains(&format!("outbound proxy socks5://{silent_addr}")),
            "{error}"
        );
        held.abort();
    })
    .await;
}

#[tokio::test]
async fn a_running_serve_follows_outbound_proxy_edits_and_refuses_a_relay_that_is_itself() {
    bounded(async {
        let relay = MockRelay::start("relay").await;
        let outbound = TestOutbound::socks5(None).await;
        let homes = Homes::new();
        let config =
            |extra: &str| format!("version = 5\n{}", provider("r", &relay.base_url(), extra));
        std::fs::write(homes.helper_config(), config("")).unwrap();
        let served = serve(homes.command(&["serve", "--no-switch"])).await;
        let mut turns = 1;
        assert_eq!(turn(&served.url).await.0, 200);
        assert_eq!(outbound.tunnels(), 0);

        // Written through a temporary file so the proxy never reads half of it.
        let write = |text: String| {
            let temporary = homes.helper.path().join("config.toml.new");
            std::fs::write(&temporary, text).unwrap();
            std::fs::rename(&temporary, homes.helper_config()).unwrap();
        };
        write(config(&format!(
            "outbound_proxy = \"{}\"",
            outbound.url("socks5", None)
        )));
        // The proxy checks the file every second; give it a bounded while.
        for _ in 0..50 {
            turn(&served.url).await;
            turns += 1;
            if outbound.tunnels() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(outbound.tunnels(), 1, "the edit was never applied");

        // A relay that is the proxy itself is refused; the previous config stays in force.
        let port = served.url.rsplit(':').next().unwrap().to_string();
        write(format!(
            "{}{}{}",
            config(&format!(
                "outbound_proxy = \"{}\"",
                outbound.url("socks5", None)
            )),
            provider("me", &format!("http://127.0.0.1:{port}/v1"), ""),
            order(&["me", "r"])
        ));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let hits = relay.hits();
        let (status, text) = turn(&served.url).await;
        turns += 1;
        assert_eq!(status, 200, "{text}");
        assert_eq!(relay.hits(), hits + 1);
        // Had the edit been taken, `me` would have been tried first (and refused its own
        // request): the ledger would show it.
        let mut recorded = String::new();
        for _ in 0..100 {
            recorded = run(&homes, &["usage", "tail", "--json", "--limit", "100"])
                .await
                .1;
            if recorded.matches("\"trace_id\"").count() >= turns {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            recorded.matches("\"trace_id\"").count(),
            turns,
            "{recorded}"
        );
        assert!(!recorded.contains("\"me\""), "{recorded}");
        assert_eq!(ledger_chain(&homes).await.matches("me.default").count(), 0);
    })
    .await;
}
