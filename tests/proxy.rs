//! The proxy core against mock relays: a real server on an ephemeral loopback port.

mod support;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codex_helper::proxy::Outcome;
use codex_helper::proxy::record::AttemptOutcome;
use futures_util::StreamExt;
use serde_json::Value;
use support::mock_relay::{Fault, MockRelay, USAGE, sse_events};
use support::{TestProxy, codex_body, providers};
use support::{bounded, client, sse_post};

/// The `data:` payloads of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("every event is JSON"))
        .collect()
}

#[tokio::test]
async fn streams_a_codex_turn_through_and_records_it() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let reply = sse_post(
            proxy.url("/v1/responses?x=1"),
            codex_body("gpt-5.1", "body-session", 2000),
        )
        .header("session-id", "thread-123")
        .header("user-agent", "codex_exec/0.171.0")
        .send()
        .await
        .unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.headers()["content-type"], "text/event-stream");
        // The relay said another model; Codex must see the one it asked for.
        assert_eq!(reply.headers()["openai-model"], "gpt-5.1");
        let body = reply.bytes().await.unwrap();
        assert_eq!(
            body,
            sse_events("gpt-5.1", "hi from relay-a").concat(),
            "bytes pass through unchanged"
        );

        let received = relay.received();
        assert_eq!(received.len(), 1);
        assert_eq!(
            received[0].path_and_query, "/v1/responses?x=1",
            "the /v1 prefix is not doubled"
        );
        assert_eq!(received[0].headers["session-id"], "thread-123");
        assert!(
            received[0]
                .headers
                .get("host")
                .is_some_and(|h| h != "127.0.0.1")
        );

        let records = proxy.records.wait_for(1).await;
        let (record, outcome) = &records[0];
        assert_eq!(*outcome, Outcome::Completed);
        let session = record.session.as_ref().unwrap();
        assert_eq!(
            (session.value.as_str(), session.source.to_string().as_str()),
            ("thread-123", "header:session-id")
        );
        assert_eq!(record.provider.as_deref(), Some("a"));
        assert_eq!(record.client.as_deref(), Some("codex_exec/0.171.0"));
        assert!(record.streaming);
        let usage = record.usage.expect("usage parsed from response.completed");
        assert_eq!(
            (
                usage.input_tokens,
                usage.cached_input_tokens,
                usage.output_tokens,
                usage.reasoning_tokens,
                usage.total_tokens
            ),
            USAGE
        );
        assert!(record.ttfb.is_some());
    })
    .await;
}

#[tokio::test]
async fn the_stream_is_forwarded_as_it_arrives_not_buffered() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        let release = Arc::new(tokio::sync::Notify::new());
        relay.push(Fault::HoldMidStream {
            after_events: 3,
            release: release.clone(),
        });
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let reply = sse_post(proxy.url("/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap();
        let mut stream = reply.bytes_stream();
        // The relay holds the rest of the reply until the client has seen the first three
        // events; a buffering proxy would never deliver them and the test would time out.
        let expected_head: Bytes = sse_events("gpt-5.1", "hi from relay-a")[..3]
            .concat()
            .into();
        let mut seen = Vec::new();
        while seen.len() < expected_head.len() {
            seen.extend_from_slice(&stream.next().await.unwrap().unwrap());
        }
        assert_eq!(seen, expected_head);
        release.notify_one();
        while let Some(chunk) = stream.next().await {
            seen.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(seen, sse_events("gpt-5.1", "hi from relay-a").concat());
        assert_eq!(relay.received()[0].path_and_query, "/v1/responses");
    })
    .await;
}

fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    match encoding {
        "zstd" => {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "gzip" | "x-gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            brotli::CompressorWriter::new(&mut out, 4096, 5, 22)
                .write_all(data)
                .unwrap();
            out
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn compressed_request_bodies_reach_the_relay_as_plain_json() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let plain = codex_body("gpt-5.1", "s", 20_000);
        let stacked = compress("zstd", &compress("gzip", plain.as_bytes()));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("zstd", compress("zstd", plain.as_bytes())),
            ("gzip", compress("gzip", plain.as_bytes())),
            ("x-gzip", compress("gzip", plain.as_bytes())),
            ("br", compress("br", plain.as_bytes())),
            ("deflate", compress("deflate", plain.as_bytes())),
            ("gzip, zstd", stacked),
        ];
        for (i, (encoding, body)) in cases.into_iter().enumerate() {
            let reply = sse_post(proxy.url("/v1/responses"), body)
                .header("content-encoding", encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200, "{encoding}");
            reply.bytes().await.unwrap();
            let got = &relay.received()[i];
            assert_eq!(got.body, plain.as_bytes(), "{encoding}");
            assert!(got.headers.get("content-encoding").is_none(), "{encoding}");
            assert_eq!(
                got.headers["content-length"],
                plain.len().to_string().as_str(),
                "{encoding}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn corrupt_and_unsupported_bodies_get_a_400_naming_the_encoding() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        for (encoding, body) in [
            ("zstd", b"definitely not zstd".to_vec()),
            ("compress", b"x".to_vec()),
        ] {
            let reply = sse_post(proxy.url("/v1/responses"), body)
                .header("content-encoding", encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 400);
            let error: Value = reply.json().await.unwrap();
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains(&format!("\"{encoding}\"")), "{message}");
            assert_eq!(error["error"]["code"], "invalid_content_encoding");
        }
        assert_eq!(relay.hits(), 0, "no upstream is contacted for a bad body");
        let records = proxy.records.wait_for(2).await;
        assert!(
            records
                .iter()
                .all(|(r, o)| *o == Outcome::Rejected && r.status == Some(400))
        );
    })
    .await;
}

#[tokio::test]
async fn decompression_bombs_and_oversized_bodies_get_a_413() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let config = format!(
            "{}[proxy]\nmax_request_body_bytes = 100000\nmax_decoded_body_bytes = 1000000\n",
            providers(&[("a", &relay.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let bomb = compress("zstd", &vec![b' '; 50 << 20]);
        assert!(bomb.len() < 100_000);
        let reply = sse_post(proxy.url("/v1/responses"), bomb)
            .header("content-encoding", "zstd")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 413);
        assert!(
            reply
                .text()
                .await
                .unwrap()
                .contains("larger than the limit of 1000000 bytes")
        );

        let reply = sse_post(proxy.url("/v1/responses"), vec![b'x'; 200_000])
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 413);
        assert!(
            reply
                .text()
                .await
                .unwrap()
                .contains("proxy.max_request_body_bytes")
        );
        assert_eq!(relay.hits(), 0);
    })
    .await;
}

#[tokio::test]
async fn passthrough_mode_forwards_compressed_bytes_and_headers_unchanged() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let config = format!(
            "{}[proxy]\nrequest_body_encoding = \"passthrough\"\n",
            providers(&[("a", &relay.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let compressed = compress("zstd", codex_body("gpt-5.1", "s", 3000).as_bytes());
        let reply = sse_post(proxy.url("/v1/responses"), compressed.clone())
            .header("content-encoding", "zstd")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        reply.bytes().await.unwrap();
        let got = &relay.received()[0];
        assert_eq!(got.body, compressed);
        assert_eq!(got.headers["content-encoding"], "zstd");
    })
    .await;
}

#[tokio::test]
async fn session_id_comes_from_each_source() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let no_key = |extra: Value| {
            let mut body: Value = serde_json::from_str(&codex_body("gpt-5.1", "", 500)).unwrap();
            body.as_object_mut().unwrap().remove("prompt_cache_key");
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body.to_string()
        };
        let cases = [
            (
                "session_id",
                Some("h1"),
                no_key(serde_json::json!({})),
                "header:session_id",
                "h1",
            ),
            (
                "session-id",
                Some("h2"),
                no_key(serde_json::json!({})),
                "header:session-id",
                "h2",
            ),
            (
                "conversation_id",
                Some("h3"),
                no_key(serde_json::json!({})),
                "header:conversation_id",
                "h3",
            ),
            (
                "thread-id",
                Some("h4"),
                no_key(serde_json::json!({})),
                "header:thread-id",
                "h4",
            ),
            (
                "x-session-id",
                Some("h5"),
                no_key(serde_json::json!({})),
                "header:x-session-id",
                "h5",
            ),
            (
                "x-none",
                None,
                no_key(serde_json::json!({"prompt_cache_key":"pck"})),
                "body:prompt_cache_key",
                "pck",
            ),
            (
                "x-none",
                None,
                no_key(serde_json::json!({"metadata":{"session_id":"meta"}})),
                "body:metadata.session_id",
                "meta",
            ),
        ];
        for (i, (header, value, body, source, expected)) in cases.iter().enumerate() {
            let mut request = sse_post(proxy.url("/v1/responses"), body.clone());
            if let Some(value) = value {
                request = request.header(*header, *value);
            }
            request.send().await.unwrap().bytes().await.unwrap();
            let records = proxy.records.wait_for(i + 1).await;
            let session = records[i].0.session.clone().expect(source);
            assert_eq!(
                (session.value.as_str(), session.source.to_string()),
                (*expected, source.to_string())
            );
        }
    })
    .await;
}

#[tokio::test]
async fn model_mapping_changes_only_the_model_value() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let config = format!(
            "[codex.providers.a]\nbase_url = \"{}\"\nmodel_mapping = {{ \"gpt-5*\" = \"relay-5*\" }}\n",
            relay.base_url()
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let body = "{\n  \"input\": [{\"model\": \"gpt-5.1\"}],\n  \"model\":   \"gpt-5.1\" ,\n  \"stream\":true,\"x\":1.50}";
        let reply = sse_post(proxy.url("/v1/responses"), body).send().await.unwrap();
        assert_eq!(reply.headers()["openai-model"], "gpt-5.1");
        reply.bytes().await.unwrap();
        let expected = body.replacen("\"model\":   \"gpt-5.1\"", "\"model\":   \"relay-5.1\"", 1);
        assert_eq!(relay.received()[0].body, expected.as_bytes());
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].0.model_requested.as_deref(), Some("gpt-5.1"));
        assert_eq!(records[0].0.model_sent.as_deref(), Some("relay-5.1"));
    })
    .await;
}

#[tokio::test]
async fn fails_over_before_the_first_byte() {
    bounded(async {
        let closed = support::outbound::ClosedPort::new();
        let dead = format!("http://127.0.0.1:{closed}/v1");
        type Check = fn(&AttemptOutcome) -> bool;
        let cases: Vec<(&str, Option<Fault>, Check)> = vec![
            ("connect refused", None, |o| {
                matches!(o, AttemptOutcome::ConnectError { .. })
            }),
            ("500", Some(Fault::status(500)), |o| {
                matches!(o, AttemptOutcome::FailedStatus { status: 500, .. })
            }),
            ("429", Some(Fault::status(429)), |o| {
                matches!(o, AttemptOutcome::FailedStatus { status: 429, .. })
            }),
            (
                "timeout",
                Some(Fault::StallBeforeHeaders(Duration::from_secs(5))),
                |o| matches!(o, AttemptOutcome::Timeout { after_ms: 300 }),
            ),
            ("reset", Some(Fault::ResetBeforeHeaders), |o| {
                matches!(o, AttemptOutcome::TransportError { .. })
            }),
        ];
        for (name, fault, first_outcome) in cases {
            let first = MockRelay::start("first").await;
            let second = MockRelay::start("second").await;
            let first_url = match &fault {
                Some(fault) => {
                    first.always(Some(fault.clone()));
                    first.base_url()
                }
                None => dead.clone(),
            };
            let config = format!(
                "{}[proxy]\nresponse_header_timeout_ms = 300\n[retry]\nprofile = \"aggressive-failover\"\n",
                providers(&[("first", &first_url), ("second", &second.base_url())])
            );
            let proxy = TestProxy::start(&config, &[]).await;
            let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200, "{name}");
            let text = reply.text().await.unwrap();
            assert!(text.contains("hi from second"), "{name}: {text}");
            assert_eq!(second.hits(), 1, "{name}");
            let records = proxy.records.wait_for(1).await;
            let record = &records[0].0;
            assert_eq!(record.attempts.len(), 2, "{name}");
            assert!(
                first_outcome(&record.attempts[0].outcome),
                "{name}: {:?}",
                record.attempts[0]
            );
            assert_eq!(
                record.attempts[1].outcome,
                AttemptOutcome::Responded { status: 200 }
            );
            assert_eq!(record.provider.as_deref(), Some("second"));
        }
    })
    .await;
}

#[tokio::test]
async fn a_small_json_body_that_breaks_before_reaching_the_client_fails_over() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.push(Fault::ResetMidJson);
        let config = format!(
            "{}[retry]\nprofile = \"aggressive-failover\"\n",
            providers(&[("first", &first.base_url()), ("second", &second.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let reply = client()
            .post(proxy.url("/v1/responses"))
            .json(&serde_json::json!({"model":"gpt-5.1","input":"hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["output"][0]["content"][0]["text"], "hi from second");
        let records = proxy.records.wait_for(1).await;
        assert!(
            matches!(
                records[0].0.attempts[0].outcome,
                AttemptOutcome::TransportError { .. }
            ),
            "{:?}",
            records[0].0.attempts
        );
        assert_eq!(records[0].1, Outcome::Completed);
    })
    .await;
}

#[tokio::test]
async fn a_client_that_goes_away_is_still_recorded() {
    bounded(async {
        let relay = MockRelay::start("slow").await;
        relay.push(Fault::StallBeforeHeaders(Duration::from_secs(10)));
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let result = sse_post(
            proxy.url("/v1/responses"),
            codex_body("gpt-5.1", "gone", 500),
        )
        .timeout(Duration::from_millis(300))
        .send()
        .await;
        assert!(result.is_err());
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records.len(), 1, "the abandoned request has a record");
        assert_eq!(records[0].1, Outcome::ClientDisconnected);
        assert_eq!(records[0].0.session.as_ref().unwrap().value, "gone");
    })
    .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_after_the_terminal_event_completed_its_request() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let never = Arc::new(tokio::sync::Notify::new());
        // All events, including response.completed, then the relay keeps the stream open.
        relay.push(Fault::HoldMidStream {
            after_events: 10,
            release: never.clone(),
        });
        relay.push(Fault::HoldMidStream {
            after_events: 3,
            release: never.clone(),
        });
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        for (n, wanted) in [(1, "response.completed"), (2, "response.output_item.added")] {
            let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
                .send()
                .await
                .unwrap();
            let mut stream = reply.bytes_stream();
            let mut seen = Vec::new();
            while !String::from_utf8_lossy(&seen).contains(wanted) {
                seen.extend_from_slice(&stream.next().await.unwrap().unwrap());
            }
            drop(stream); // as Codex does once it has what it needs
            proxy.records.wait_for(n).await;
        }
        let records = proxy.records.all();
        assert_eq!(records[0].1, Outcome::Completed);
        assert_eq!(records[0].0.usage.unwrap().total_tokens, USAGE.4);
        assert_eq!(records[1].1, Outcome::ClientDisconnected);
    })
    .await;
}

#[tokio::test]
async fn client_errors_are_returned_as_is_without_failover() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.push(Fault::Status {
            status: 400,
            body: r#"{"error":{"message":"bad input","type":"invalid_request_error"}}"#.into(),
            retry_after: None,
        });
        let proxy = TestProxy::start(
            &providers(&[("first", &first.base_url()), ("second", &second.base_url())]),
            &[],
        )
        .await;
        let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 400);
        assert!(reply.text().await.unwrap().contains("bad input"));
        assert_eq!(second.hits(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_mid_stream_reset_ends_with_response_failed_and_no_replay() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.push(Fault::ResetMidStream { after_events: 4 });
        let proxy = TestProxy::start(
            &providers(&[("first", &first.base_url()), ("second", &second.base_url())]),
            &[],
        )
        .await;
        let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let text = reply
            .text()
            .await
            .expect("the client gets a complete body, not a cut");
        let head: Vec<u8> = sse_events("gpt-5.1", "hi from first")[..4].concat();
        assert!(text.as_bytes().starts_with(&head));
        // The half-sent event is closed off, then one well-formed response.failed follows.
        let tail = &text[head.len()..];
        assert!(
            tail.contains("\n\nevent: response.failed\ndata: "),
            "{tail}"
        );
        let last = events(
            tail.split("\n\n")
                .skip(1)
                .collect::<Vec<_>>()
                .join("\n\n")
                .as_str(),
        )
        .pop()
        .unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["response"]["error"]["code"], "server_error");
        assert!(text.ends_with("\n\n"));
        assert_eq!(second.hits(), 0, "no failover once output was sent");
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].1, Outcome::UpstreamStreamError);
    })
    .await;
}

#[tokio::test]
async fn a_stalled_stream_ends_with_response_failed() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        relay.push(Fault::StallMidStream {
            after_events: 4,
            pause: Duration::from_secs(10),
        });
        let config = format!(
            "{}[proxy]\nstream_idle_timeout_ms = 300\n",
            providers(&[("a", &relay.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap();
        let text = reply.text().await.unwrap();
        let all = events(&text);
        assert_eq!(all.len(), 5);
        assert_eq!(all[4]["type"], "response.failed");
        assert!(
            all[4]["response"]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no data from the upstream")
        );
        assert_eq!(
            proxy.records.wait_for(1).await[0].1,
            Outcome::UpstreamStreamError
        );
    })
    .await;
}

#[tokio::test]
async fn when_everything_fails_codex_streams_get_a_retryable_response_failed() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.always(Some(Fault::status(502)));
        second.always(Some(Fault::Status {
            status: 429,
            body: "slow down".into(),
            retry_after: Some(7),
        }));
        // No same-endpoint retries and no cooldown for the 502, so the second request tries
        // the first relay again; the 429's Retry-After (7 s) cools the second one down.
        let config = format!(
            "{}[retry]\nprofile = \"aggressive-failover\"\ncooldown_secs = 0\n",
            providers(&[("first", &first.base_url()), ("second", &second.base_url())])
        );
        let proxy = TestProxy::start(&config, &[]).await;

        let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.headers()["content-type"], "text/event-stream");
        let all = events(&reply.text().await.unwrap());
        assert_eq!(all.len(), 1);
        let response = &all[0]["response"];
        assert_eq!(all[0]["type"], "response.failed");
        assert_eq!(response["error"]["code"], "rate_limit_exceeded");
        assert_eq!(response["metadata"]["retry_after_secs"], 7);
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("first/default: HTTP 502") && message.contains("try again in 7s"),
            "{message}"
        );

        // A non-streaming request: a 502 listing the attempt, and the relay it could not try.
        let reply = client()
            .post(proxy.url("/v1/responses"))
            .json(&serde_json::json!({"model":"gpt-5.1","input":"hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 502);
        let retry_after: u64 = reply.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (6..=7).contains(&retry_after),
            "the second relay's cooldown: {retry_after}"
        );
        let error: Value = reply.json().await.unwrap();
        let attempts = error["error"]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            (
                attempts[0]["provider"].as_str(),
                attempts[0]["outcome"].as_str(),
                attempts[0]["status"].as_u64(),
                attempts[0]["class"].as_str()
            ),
            (
                Some("first"),
                Some("failed_status"),
                Some(502),
                Some("server_error")
            )
        );
        let skipped = &error["error"]["skipped"][0];
        assert_eq!(skipped["upstream"], "second.default");
        assert!(
            skipped["reason"]
                .as_str()
                .unwrap()
                .starts_with("cooling down for"),
            "{skipped}"
        );
        assert_eq!(second.hits(), 1);
        assert_eq!(
            proxy.records.wait_for(2).await[1].1,
            Outcome::AllUpstreamsFailed
        );
    })
    .await;
}

#[tokio::test]
async fn usage_is_read_from_json_replies_and_compressed_streams() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let reply = client()
            .post(proxy.url("/v1/responses"))
            .json(&serde_json::json!({"model":"gpt-5.1","input":"hi"}))
            .send()
            .await
            .unwrap();
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["output"][0]["content"][0]["text"], "hi from r");

        for (i, encoding) in ["gzip", "zstd"].into_iter().enumerate() {
            relay.push(Fault::Compressed(encoding));
            let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
                .send()
                .await
                .unwrap();
            assert!(
                reply.headers().get("content-encoding").is_none(),
                "{encoding}: the proxy decodes what it reads"
            );
            let text = reply.text().await.unwrap();
            assert_eq!(
                text.as_bytes(),
                sse_events("gpt-5.1", "hi from r").concat(),
                "{encoding}"
            );
            let records = proxy.records.wait_for(i + 2).await;
            assert_eq!(
                records[i + 1].0.usage.unwrap().total_tokens,
                USAGE.4,
                "{encoding}"
            );
        }
        let records = proxy.records.wait_for(1).await;
        let usage = records[0].0.usage.expect("usage from the JSON reply");
        assert_eq!(
            (usage.input_tokens, usage.cached_input_tokens),
            (USAGE.0, USAGE.1)
        );
        assert!(!records[0].0.streaming);
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_ends_without_response_completed_is_recorded_as_such() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        relay.push(Fault::EndEarly { after_events: 5 });
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let text = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            text.as_bytes(),
            sse_events("gpt-5.1", "hi from r")[..5].concat(),
            "passed on as the relay sent it"
        );
        assert_eq!(
            proxy.records.wait_for(1).await[0].1,
            Outcome::EndedWithoutTerminalEvent
        );
    })
    .await;
}

#[tokio::test]
async fn a_failure_after_output_in_a_200_stream_is_passed_on_and_recorded() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        relay.push(Fault::FailedAfterOutput);
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let text = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(events(&text).last().unwrap()["type"], "response.failed");
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].1, Outcome::FailedInStream);
        assert!(
            records[0]
                .0
                .error
                .as_deref()
                .unwrap()
                .contains("mock relay: failed in stream")
        );
    })
    .await;
}

#[tokio::test]
async fn a_relay_echoing_its_key_in_a_failure_event_does_not_show_it_to_the_client() {
    bounded(async {
        let key = "relay-secret-0123456789";
        let relay = MockRelay::start("r").await;
        let config = format!(
            "[codex.providers.r]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n",
            relay.base_url()
        );
        let proxy = TestProxy::start(&config, &[("RELAY_KEY", key)]).await;
        let hidden = "*".repeat(key.len());

        // Mid-stream, in a failure event after output; the record has it masked too.
        relay.push(Fault::EchoesKey);
        let text = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains(key), "{text}");
        let last = events(&text).pop().unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(
            last["response"]["error"]["message"],
            format!("you sent: Bearer {hidden}")
        );
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].1, Outcome::FailedInStream);
        let error = records[0].0.error.as_deref().unwrap();
        assert!(
            !error.contains(key) && error.contains("[redacted]"),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn credentials_replace_the_clients_and_missing_ones_skip_the_relay() {
    bounded(async {
        let no_env = MockRelay::start("no-env").await;
        let bearer = MockRelay::start("bearer").await;
        let config = format!(
            "[codex.providers.a]\nbase_url = \"{}\"\nauth_token_env = \"UNSET_KEY\"\n\
             [codex.providers.b]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\napi_key = \"inline-key\"\n",
            no_env.base_url(),
            bearer.base_url()
        );
        let proxy = TestProxy::start(&config, &[("RELAY_KEY", "relay-secret")]).await;
        let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .header("authorization", "Bearer codex-own-token")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        reply.bytes().await.unwrap();
        assert_eq!(no_env.hits(), 0, "a relay whose key variable is unset is skipped");
        let got = &bearer.received()[0];
        assert_eq!(got.headers["authorization"], "Bearer relay-secret");
        assert_eq!(got.headers["x-api-key"], "inline-key");
        let records = proxy.records.wait_for(1).await;
        let decision = records[0].0.decision.as_ref().unwrap();
        assert_eq!(
            decision.candidates[0].skip.as_ref().map(|s| s.describe()).as_deref(),
            Some("environment variable UNSET_KEY is not set")
        );
        assert_eq!(records[0].0.attempts.len(), 1, "skipped candidates are not attempts");

        // Without a configured credential the client's own passes through.
        let open = MockRelay::start("open").await;
        let proxy = TestProxy::start(&providers(&[("open", &open.base_url())]), &[]).await;
        sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .header("authorization", "Bearer codex-own-token")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(open.received()[0].headers["authorization"], "Bearer codex-own-token");
    })
    .await;
}

#[tokio::test]
async fn bridge_presets_keep_codexs_own_login_from_relays() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("r", &relay.base_url())]), &[]).await;
        proxy
            .codex
            .set_preset(Some(codex_helper::codex::preset::Preset::ChatgptBridge));
        sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .header("authorization", "Bearer chatgpt-access-token")
            .header("chatgpt-account-id", "acct-1")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let got = &relay.received()[0];
        assert!(
            got.headers.get("authorization").is_none()
                && got.headers.get("chatgpt-account-id").is_none()
        );
        proxy
            .codex
            .set_preset(Some(codex_helper::codex::preset::Preset::Default));
        sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .header("authorization", "Bearer own")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            relay.received()[1].headers["authorization"],
            "Bearer own",
            "default: passes through"
        );
    })
    .await;
}

#[tokio::test]
async fn without_any_relay_each_request_says_how_to_add_one() {
    bounded(async {
        let proxy = TestProxy::start("", &[]).await;
        let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 503);
        let error: Value = reply.json().await.unwrap();
        assert_eq!(error["error"]["code"], "no_relay_configured");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("codex-helper provider add") && message.contains("/test/config.toml"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
async fn other_paths_and_methods_are_forwarded_too() {
    bounded(async {
        let relay = MockRelay::start("r").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let reply = client()
            .get(proxy.url("/v1/models?client_version=0.171.0"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let list: Value = reply.json().await.unwrap();
        assert_eq!(list["data"][0]["id"], "gpt-5.1");
        assert_eq!(
            relay.received()[0].path_and_query,
            "/v1/models?client_version=0.171.0"
        );
        assert_eq!(relay.received()[0].method, "GET");
    })
    .await;
}

/// `/healthz` and `/readyz` answer from the proxy itself (no relay IO), for load balancers.
#[tokio::test]
async fn health_routes_answer_without_a_relay() {
    let relay = MockRelay::start("relay").await;
    let proxy = TestProxy::start(
        &providers(&[("relay", &relay.base_url())]),
        &[("RELAY_KEY", "x")],
    )
    .await;
    for (path, body) in [
        ("/healthz", serde_json::json!({"status": "ok"})),
        ("/readyz", serde_json::json!({"ready": true})),
    ] {
        let response = client().get(proxy.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.json::<serde_json::Value>().await.unwrap(), body);
    }
    assert_eq!(relay.hits(), 0);
}

#[tokio::test]
async fn a_streaming_turn_gets_events_however_the_relay_labels_its_reply() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        // Events without a content type are events: served, and labelled for Codex.
        first.push(Fault::Unlabelled);
        // A `200 {"error": …}` is not: tried again, then failed over, the relay's words kept.
        let busy = Fault::Status {
            status: 200,
            body: r#"{"error":{"message":"upstream busy"}}"#.into(),
            retry_after: None,
        };
        first.push(busy.clone());
        first.push(busy);
        let proxy = TestProxy::start(
            &providers(&[("first", &first.base_url()), ("second", &second.base_url())]),
            &[],
        )
        .await;
        for (i, from) in ["first", "second"].into_iter().enumerate() {
            let reply = sse_post(proxy.url("/v1/responses"), codex_body("gpt-5.1", "s", 500))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200);
            assert_eq!(
                reply.headers()["content-type"],
                "text/event-stream",
                "{from}"
            );
            let text = reply.text().await.unwrap();
            let want = sse_events("gpt-5.1", &format!("hi from {from}")).concat();
            assert_eq!(text.as_bytes(), want, "{from}");
            let records = proxy.records.wait_for(i + 1).await;
            assert_eq!(records[i].1, Outcome::Completed, "{from}");
        }
        let records = proxy.records.wait_for(2).await;
        let failed: Vec<String> = records[1]
            .0
            .attempts
            .iter()
            .filter_map(|a| match &a.outcome {
                AttemptOutcome::FailedStream { class, detail, .. } => {
                    Some(format!("{} {detail}", class.as_str()))
                }
                _ => None,
            })
            .collect();
        let want = "empty_stream a reply labelled application/json to a streaming request: the \
                    stream ended before any event: {\"error\":{\"message\":\"upstream busy\"}}";
        assert_eq!(failed, [want, want]);
    })
    .await;
}
