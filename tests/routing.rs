//! Routing against mock relays: retries, failover, health, limits, affinity, continuity.

mod support;

use std::sync::Arc;
use std::time::Duration;

use codex_helper::proxy::Outcome;
use codex_helper::proxy::record::AttemptOutcome;
use codex_helper::routing::retry::FailureClass;
use codex_helper::time::Clock;
use futures_util::StreamExt;
use serde_json::Value;
use support::mock_relay::{Fault, MockRelay, sse_events};
use support::{TestProxy, codex_body, providers, providers_with_routing};
use support::{bounded, client};

/// A streaming Codex turn for `session`.
async fn turn(proxy: &TestProxy, session: &str) -> reqwest::Response {
    client()
        .post(proxy.url("/v1/responses"))
        .header("accept", "text/event-stream")
        .header("session-id", session)
        .body(codex_body("gpt-5.1", session, 500))
        .send()
        .await
        .unwrap()
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn two(first: &MockRelay, second: &MockRelay, extra: &str) -> String {
    format!(
        "{}{extra}",
        providers(&[("first", &first.base_url()), ("second", &second.base_url())])
    )
}

#[tokio::test]
async fn a_500_is_retried_on_the_same_relay_and_a_429_waits_for_retry_after() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.push(Fault::status(500));
        let proxy = TestProxy::start(&two(&first, &second, ""), &[]).await;

        let text = turn(&proxy, "s1").await.text().await.unwrap();
        assert!(text.contains("hi from first"), "{text}");
        first.push(Fault::Status {
            status: 429,
            body: "{}".into(),
            retry_after: Some(1),
        });
        let text = turn(&proxy, "s2").await.text().await.unwrap();
        assert!(text.contains("hi from first"), "{text}");
        assert_eq!((first.hits(), second.hits()), (4, 0));

        let records = proxy.records.wait_for(2).await;
        let classes: Vec<Vec<String>> = records
            .iter()
            .map(|(r, _)| {
                r.attempts
                    .iter()
                    .map(|a| {
                        format!("{:?}", a.outcome)
                            .split(' ')
                            .next()
                            .unwrap()
                            .to_string()
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            classes,
            [["FailedStatus", "Responded"], ["FailedStatus", "Responded"]]
        );
        // The 429's Retry-After (1 s) was waited for before the second try.
        let waited = records[1].0.attempts[0].duration_ms;
        let total = records[1].0.started.elapsed().as_millis() as u64;
        assert!(total >= 1000 + waited, "the retry waited for Retry-After");
        assert!(matches!(
            records[1].0.attempts[0].outcome,
            AttemptOutcome::FailedStatus {
                status: 429,
                retry_after_secs: Some(1),
                ..
            }
        ));
    })
    .await;
}

#[tokio::test]
async fn a_failure_hidden_in_a_200_fails_over_without_the_client_seeing_it() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.always(Some(Fault::FailedInStream));
        let proxy = TestProxy::start(
            &two(
                &first,
                &second,
                "[retry]\nprofile = \"aggressive-failover\"\n",
            ),
            &[],
        )
        .await;
        let reply = turn(&proxy, "s").await;
        assert_eq!(reply.status(), 200);
        let text = reply.text().await.unwrap();
        assert_eq!(
            text.as_bytes(),
            sse_events("gpt-5.1", "hi from second").concat(),
            "not a byte of the failed stream"
        );
        let records = proxy.records.wait_for(1).await;
        assert!(
            matches!(
                records[0].0.attempts[0].outcome,
                AttemptOutcome::FailedStream {
                    class: FailureClass::FailedInStream,
                    ..
                }
            ),
            "{:?}",
            records[0].0.attempts
        );
        assert_eq!(records[0].1, Outcome::Completed);
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_stalls_before_its_first_event_fails_over() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        // response.created and response.in_progress, then nothing.
        first.always(Some(Fault::StallMidStream {
            after_events: 2,
            pause: Duration::from_secs(30),
        }));
        let proxy = TestProxy::start(
            &two(
                &first,
                &second,
                "[retry]\nprofile = \"aggressive-failover\"\nfirst_event_timeout_ms = 300\n",
            ),
            &[],
        )
        .await;
        let text = turn(&proxy, "s").await.text().await.unwrap();
        assert_eq!(
            text.as_bytes(),
            sse_events("gpt-5.1", "hi from second").concat()
        );
        let records = proxy.records.wait_for(1).await;
        assert!(matches!(
            records[0].0.attempts[0].outcome,
            AttemptOutcome::FailedStream {
                class: FailureClass::FirstEventTimeout,
                ..
            }
        ));
    })
    .await;
}

#[tokio::test]
async fn the_concurrency_cap_moves_the_extra_request_to_the_next_candidate() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let release = Arc::new(tokio::sync::Notify::new());
        first.push(Fault::HoldMidStream { after_events: 3, release: release.clone() });
        let config = format!(
            "[codex.providers.first]\nbase_url = \"{}\"\nlimits = {{ max_concurrent_requests = 1 }}\n[codex.providers.second]\nbase_url = \"{}\"\n",
            first.base_url(),
            second.base_url()
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let held = turn(&proxy, "a").await;
        let mut held_stream = held.bytes_stream();
        held_stream.next().await.unwrap().unwrap();
        // The first relay's one slot is taken by the held stream.
        let text = turn(&proxy, "b").await.text().await.unwrap();
        assert!(text.contains("hi from second"), "{text}");
        let records = proxy.records.wait_for(1).await;
        let skip = records[0].0.decision.as_ref().unwrap().candidates[0].skip.as_ref().unwrap().describe();
        assert!(skip.contains("1 requests already in flight"), "{skip}");
        release.notify_one();
        while held_stream.next().await.is_some() {}
        // The slot is free again once the held stream ended.
        let text = turn(&proxy, "c").await.text().await.unwrap();
        assert!(text.contains("hi from first"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn when_every_candidate_is_blocked_streams_get_response_failed_and_others_a_503() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.always(Some(Fault::status(502)));
        second.always(Some(Fault::status(503)));
        let clock = Clock::manual();
        let proxy = TestProxy::start_with_clock(
            &two(
                &first,
                &second,
                "[retry]\nprofile = \"aggressive-failover\"\ncooldown_secs = 20\n",
            ),
            &[],
            clock.clone(),
        )
        .await;
        // The first request fails on both and cools them down.
        turn(&proxy, "s").await.text().await.unwrap();
        assert_eq!((first.hits(), second.hits()), (1, 1));

        let reply = turn(&proxy, "s").await;
        assert_eq!(reply.status(), 200);
        let all = events(&reply.text().await.unwrap());
        assert_eq!(all.len(), 1);
        let response = &all[0]["response"];
        assert_eq!(response["error"]["code"], "rate_limit_exceeded");
        assert_eq!(
            response["metadata"]["codex_helper_error"],
            "route_unavailable"
        );
        assert_eq!(response["metadata"]["retry_after_secs"], 20);
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("first.default: cooling down for 20s after first/default: HTTP 502"),
            "{message}"
        );

        // Five seconds on, the cooldowns have 15 s left.
        clock.advance(Duration::from_secs(5));
        let wall = codex_helper::time::now_ms();
        let reply = client()
            .post(proxy.url("/v1/responses"))
            .json(&serde_json::json!({"model":"gpt-5.1","input":"x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 503);
        let retry_after: u64 = reply.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(retry_after, 15);
        let body: Value = reply.json().await.unwrap();
        let skipped = body["error"]["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[1]["upstream"], "second.default");
        assert_eq!(
            skipped[1]["reason"],
            "cooling down for 15s after second/default: HTTP 503"
        );
        // As the ledger stores it: the end of the cooldown as a time of day.
        let records = proxy.records.wait_for(3).await;
        let stored = serde_json::to_value(records[2].0.decision.as_ref()).unwrap();
        let until = stored["candidates"][0]["skip"]["until_ms"]
            .as_u64()
            .unwrap();
        let now = codex_helper::time::now_ms();
        assert!(
            (wall + 15_000..=now + 15_000).contains(&until),
            "until {until}, wall clock {wall}..{now}"
        );
        assert_eq!(
            (first.hits(), second.hits()),
            (1, 1),
            "nothing was sent to a cooling relay"
        );
    })
    .await;
}

#[tokio::test]
async fn on_exhausted_stop_never_reaches_the_fallback() {
    bounded(async {
        let monthly = MockRelay::start("monthly").await;
        let paygo = MockRelay::start("paygo").await;
        monthly.always(Some(Fault::status(500)));
        let config = format!(
            "[codex.providers.monthly]\nbase_url = \"{}\"\ntags = {{ billing = \"monthly\" }}\n\
             [codex.providers.paygo]\nbase_url = \"{}\"\ntags = {{ billing = \"paygo\" }}\n\
             [codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nstrategy = \"tag-preferred\"\n\
             children = [\"paygo\", \"monthly\"]\nprefer_tags = [{{ billing = \"monthly\" }}]\non_exhausted = \"stop\"\n",
            monthly.base_url(),
            paygo.base_url()
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let all = events(&turn(&proxy, "s").await.text().await.unwrap());
        assert_eq!(all[0]["type"], "response.failed");
        assert_eq!(paygo.hits(), 0, "the pay-as-you-go relay is never used");
        assert_eq!(monthly.hits(), 2, "one retry on the same relay, then nothing else to try");
    })
    .await;
}

#[tokio::test]
async fn a_session_stays_on_its_fallback_after_the_preferred_relay_recovers() {
    bounded(async {
        let preferred = MockRelay::start("preferred").await;
        let fallback = MockRelay::start("fallback").await;
        preferred.push(Fault::status(502));
        let config = format!(
            "{}[retry]\nprofile = \"aggressive-failover\"\ncooldown_secs = 0\n",
            providers(&[
                ("preferred", &preferred.base_url()),
                ("fallback", &fallback.base_url())
            ])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        assert!(
            turn(&proxy, "thread-1")
                .await
                .text()
                .await
                .unwrap()
                .contains("hi from fallback")
        );
        // The preferred relay is healthy again (no cooldown), yet the session stays.
        assert!(
            turn(&proxy, "thread-1")
                .await
                .text()
                .await
                .unwrap()
                .contains("hi from fallback")
        );
        // A new session starts on the preferred relay.
        assert!(
            turn(&proxy, "thread-2")
                .await
                .text()
                .await
                .unwrap()
                .contains("hi from preferred")
        );
        let records = proxy.records.wait_for(3).await;
        let decision = |i: usize| records[i].0.decision.clone().unwrap();
        assert_eq!(
            decision(0)
                .affinity_change
                .map(|c| c.to_string())
                .as_deref(),
            Some("first_success")
        );
        assert_eq!(decision(1).affinity.as_deref(), Some("fallback.default"));
        assert_eq!(decision(1).why.unwrap().as_str(), "affinity");
        assert_eq!(decision(1).affinity_change, None);
    })
    .await;
}

#[tokio::test]
async fn a_session_moved_by_a_failure_records_the_failure_class_by_name() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let config = format!(
            "{}[retry]\nprofile = \"aggressive-failover\"\n",
            providers(&[("first", &first.base_url()), ("second", &second.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let text = turn(&proxy, "thread-1").await.text().await.unwrap();
        assert!(text.contains("hi from first"), "{text}");
        first.push(Fault::status(503));
        let text = turn(&proxy, "thread-1").await.text().await.unwrap();
        assert!(text.contains("hi from second"), "{text}");

        // As the ledger stores it (`decision_json`).
        let records = proxy.records.wait_for(2).await;
        let stored = |i: usize| serde_json::to_value(records[i].0.decision.as_ref()).unwrap();
        assert_eq!(stored(0)["affinity_change"], "first_success");
        assert_eq!(stored(1)["affinity_change"], "failover_after_server_error");
        assert_eq!(stored(1)["why"], "failover");
    })
    .await;
}

#[tokio::test]
async fn preferred_group_returns_and_hard_fails_clearly() {
    bounded(async {
        for (policy, expect_second) in [("preferred-group", "hi from preferred"), ("hard", "")] {
            let preferred = MockRelay::start("preferred").await;
            let mut fallback = MockRelay::start("fallback").await;
            preferred.push(Fault::status(502));
            let config = format!(
                "{}[retry]\nprofile = \"aggressive-failover\"\ncooldown_secs = 0\n",
                providers_with_routing(
                    &[
                        ("preferred", &preferred.base_url()),
                        ("fallback", &fallback.base_url())
                    ],
                    &format!("affinity_policy = \"{policy}\"")
                )
            );
            let proxy = TestProxy::start(&config, &[]).await;
            assert!(
                turn(&proxy, "t")
                    .await
                    .text()
                    .await
                    .unwrap()
                    .contains("hi from fallback"),
                "{policy}"
            );
            if policy == "hard" {
                fallback.kill();
                let reply = turn(&proxy, "t").await;
                let text = reply.text().await.unwrap();
                assert!(
                    text.contains("session_relay_unavailable")
                        && text.contains("bound to relay fallback.default"),
                    "{text}"
                );
                assert!(
                    !text.contains("hi from preferred"),
                    "hard never moves a session"
                );
            } else {
                assert!(
                    turn(&proxy, "t")
                        .await
                        .text()
                        .await
                        .unwrap()
                        .contains(expect_second),
                    "{policy}"
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_compaction_request_is_refused_rather_than_sent_to_another_relay() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let proxy = TestProxy::start(&two(&first, &second, "[retry]\nprofile = \"aggressive-failover\"\n"), &[]).await;
        assert!(turn(&proxy, "t").await.text().await.unwrap().contains("hi from first"));
        first.always(Some(Fault::status(502)));
        let body = serde_json::json!({"model":"gpt-5.1","stream":true,"prompt_cache_key":"t",
            "input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]},{"type":"compaction_trigger"}]});
        let reply = client().post(proxy.url("/v1/responses")).header("accept", "text/event-stream").header("session-id", "t").json(&body).send().await.unwrap();
        let text = reply.text().await.unwrap();
        assert!(text.contains("session_relay_unavailable"), "{text}");
        assert_eq!(second.hits(), 0, "the compaction never reached a relay that cannot read it");
        let records = proxy.records.wait_for(2).await;
        assert_eq!(records[1].1, Outcome::ContinuityBroken);
        assert!(records[1].0.decision.as_ref().unwrap().relay_bound);
    })
    .await;
}

#[tokio::test]
async fn a_new_plan_applies_to_the_next_request_and_resets_affinity() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let proxy = TestProxy::start(&two(&first, &second, ""), &[]).await;
        assert!(
            turn(&proxy, "t")
                .await
                .text()
                .await
                .unwrap()
                .contains("hi from first")
        );
        let path = std::path::Path::new("/test/config.toml");
        let reordered = format!(
            "version = 5\n{}",
            providers(&[("second", &second.base_url()), ("first", &first.base_url())])
        );
        let loaded = codex_helper::config::load::parse(path, &reordered).unwrap();
        proxy
            .state
            .reload(codex_helper::proxy::Plan::from_config(&loaded, &|_| None).unwrap())
            .unwrap();
        assert!(
            turn(&proxy, "t")
                .await
                .text()
                .await
                .unwrap()
                .contains("hi from second"),
            "a changed graph starts the session afresh"
        );
        let records = proxy.records.wait_for(2).await;
        assert_ne!(
            records[0].0.decision.as_ref().unwrap().graph_key,
            records[1].0.decision.as_ref().unwrap().graph_key
        );
        assert_eq!(records[1].0.decision.as_ref().unwrap().affinity, None);
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_breaks_after_output_cools_its_relay_down() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.push(Fault::ResetMidStream { after_events: 4 });
        let proxy = TestProxy::start(&two(&first, &second, ""), &[]).await;

        let broken = turn(&proxy, "s1").await.text().await.unwrap();
        assert!(
            broken.contains("output_item.added") && broken.contains("upstream_stream_error"),
            "output, then the break ended with response.failed: {broken}"
        );

        // Codex retries (here: another turn): the broken relay is cooling down, so the turn
        // goes to the next one instead of landing on the same break.
        let retried = turn(&proxy, "s2").await.text().await.unwrap();
        assert!(retried.contains("hi from second"), "{retried}");
        let records = proxy.records.wait_for(2).await;
        let skip = &records[1].0.decision.as_ref().unwrap().candidates[0].skip;
        assert!(
            matches!(
                skip,
                Some(codex_helper::routing::select::Skip::Unhealthy(_))
            ),
            "{skip:?}"
        );
        assert_eq!(
            first
                .received()
                .iter()
                .filter(|r| r.path_and_query == "/v1/responses")
                .count(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn a_probe_whose_client_went_away_does_not_hold_its_relay() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let config = two(
            &first,
            &second,
            "[retry]\nprofile = \"aggressive-failover\"\ncooldown_secs = 30\n",
        );
        let clock = Clock::manual();
        let proxy = TestProxy::start_with_clock(&config, &[], clock.clone()).await;
        first.push(Fault::status(502));
        assert!(
            turn(&proxy, "a")
                .await
                .text()
                .await
                .unwrap()
                .contains("hi from second")
        );
        // A moment before the cooldown ends, a new session still goes past the first relay.
        clock.advance(Duration::from_millis(29_999));
        let text = turn(&proxy, "early").await.text().await.unwrap();
        assert!(text.contains("hi from second"), "{text}");
        assert_eq!(first.hits(), 1, "nothing was sent to a cooling relay");

        // The cooldown ends; the next request is the half-open probe, and its client gives up
        // while the relay is still silent.
        clock.advance(Duration::from_millis(1));
        first.push(Fault::StallBeforeHeaders(Duration::from_secs(5)));
        let gave_up = tokio::time::timeout(Duration::from_millis(300), turn(&proxy, "b")).await;
        assert!(gave_up.is_err(), "the client gave up");
        tokio::time::sleep(Duration::from_millis(50)).await;

        // The probe went with its request: the next request may probe at once.
        let text = turn(&proxy, "c").await.text().await.unwrap();
        assert!(text.contains("hi from first"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_draining_relay_keeps_its_sessions_and_takes_no_new_ones() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let proxy = TestProxy::start(&two(&first, &second, ""), &[]).await;
        let answered = |text: String, by: &str| {
            assert!(text.contains(&format!("hi from {by}")), "{by}: {text}");
        };
        answered(turn(&proxy, "bound").await.text().await.unwrap(), "first");

        proxy
            .state
            .routing
            .set_draining("first.default", Some(("moving off".into(), None)));
        // The thread that lives on the draining relay stays there; a new one goes elsewhere.
        answered(turn(&proxy, "bound").await.text().await.unwrap(), "first");
        answered(turn(&proxy, "new").await.text().await.unwrap(), "second");

        let records = proxy.records.wait_for(3).await;
        let stored = |i: usize| serde_json::to_value(records[i].0.decision.as_ref()).unwrap();
        assert_eq!(stored(1)["chosen"], "first.default");
        assert_eq!(stored(1)["why"], "affinity");
        assert_eq!(stored(1)["candidates"][0]["skip"], Value::Null);
        assert_eq!(stored(2)["chosen"], "second.default");
        let skip = &stored(2)["candidates"][0]["skip"];
        assert_eq!(skip["kind"], "draining", "{skip}");
        assert_eq!(skip["reason"], "moving off");

        // Back to normal: a new session starts on the preferred relay again.
        proxy.state.routing.set_draining("first.default", None);
        answered(turn(&proxy, "later").await.text().await.unwrap(), "first");
    })
    .await;
}
