//! The OpenAI Images entrypoints against mock relays: translated to a Responses call with the
//! hosted `image_generation` tool, routed like any request, answered in the Images shape.

mod support;

use codex_helper::proxy::Outcome;
use serde_json::{Value, json};
use support::mock_relay::{Fault, IMAGE_B64, IMAGE_CREATED_AT, MockRelay, REVISED_PROMPT, USAGE};
use support::{TestProxy, bounded, client, providers};

/// POSTs `body` as JSON and returns the status and the JSON answer.
async fn post_json(proxy: &TestProxy, path: &str, body: Value) -> (u16, Value) {
    let reply = client()
        .post(proxy.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    assert_eq!(reply.headers()["content-type"], "application/json");
    (status, reply.json().await.unwrap())
}

/// The usage the mock reports, as the Images API names it.
fn images_usage() -> Value {
    let (input, cached, output, _, total) = USAGE;
    json!({"input_tokens":input,"input_tokens_details":{"cached_tokens":cached},
        "output_tokens":output,"total_tokens":total})
}

#[tokio::test]
async fn a_generation_is_a_forced_image_tool_call_and_comes_back_as_b64_json() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let (status, answer) = post_json(
            &proxy,
            "/v1/images/generations",
            json!({"model":"gpt-image-1","prompt":"a red fox","n":1,"size":"1024x1024",
                "quality":"high","background":"opaque","output_format":"png","moderation":"low"}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            json!({"created":IMAGE_CREATED_AT,
                "data":[{"b64_json":IMAGE_B64,"revised_prompt":REVISED_PROMPT}],
                "background":"opaque","output_format":"png","size":"1024x1024","quality":"high",
                "usage":images_usage()})
        );

        let received = relay.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].path_and_query, "/v1/responses");
        assert_eq!(received[0].headers["content-type"], "application/json");
        assert_eq!(
            received[0].json(),
            json!({"model":"gpt-5.5",
                "input":[{"role":"user","content":[{"type":"input_text","text":"a red fox"}]}],
                "tools":[{"type":"image_generation","size":"1024x1024","quality":"high",
                    "background":"opaque","output_format":"png","moderation":"low"}],
                "tool_choice":{"type":"image_generation"},"stream":false})
        );

        let records = proxy.records.wait_for(1).await;
        let (record, outcome) = &records[0];
        assert_eq!(*outcome, Outcome::Completed);
        assert_eq!(record.path, "/v1/images/generations", "the client's path");
        assert_eq!(record.status, Some(200));
        assert_eq!(record.provider.as_deref(), Some("a"));
        assert_eq!(record.model_requested.as_deref(), Some("gpt-image-1"));
        assert_eq!(
            record.model_sent.as_deref(),
            Some("gpt-5.5"),
            "what is priced"
        );
        let usage = record.usage.expect("usage from the Responses answer");
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
    })
    .await;
}

#[tokio::test]
async fn the_path_without_v1_works_and_n_above_one_is_refused_before_any_relay() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let (status, answer) = post_json(
            &proxy,
            "/images/generations",
            json!({"prompt":"a fox","model":"gpt-5.1"}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(relay.received()[0].json()["model"], "gpt-5.1");

        let (status, answer) = post_json(
            &proxy,
            "/v1/images/generations",
            json!({"prompt":"two foxes","n":2}),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(answer["error"]["param"], "n");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        assert!(answer["error"]["message"].as_str().unwrap().contains("n=1"));
        assert_eq!(relay.hits(), 1, "the refused request reached no relay");
        let records = proxy.records.wait_for(2).await;
        assert_eq!(records[1].1, Outcome::Rejected);
    })
    .await;
}

#[tokio::test]
async fn json_edits_carry_data_urls_and_file_ids() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let data_url = format!("data:image/png;base64,{IMAGE_B64}");
        let (status, answer) = post_json(
            &proxy,
            "/v1/images/edits",
            json!({"model":"gpt-image-1","prompt":"add a hat",
                "images":[{"image_url":data_url}],"size":"1024x1024"}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"][0]["b64_json"], IMAGE_B64);
        let (status, _) = post_json(
            &proxy,
            "/v1/images/edits",
            json!({"prompt":"add a hat","images":[{"file_id":"file-123"}]}),
        )
        .await;
        assert_eq!(status, 200);

        let received = relay.received();
        assert_eq!(
            received[0].json()["input"][0]["content"],
            json!([{"type":"input_text","text":"add a hat"},
                {"type":"input_image","image_url":data_url}])
        );
        assert_eq!(received[0].json()["tools"][0]["size"], "1024x1024");
        assert_eq!(
            received[1].json()["input"][0]["content"][1],
            json!({"type":"input_image","file_id":"file-123"})
        );
        let records = proxy.records.wait_for(2).await;
        assert_eq!(records[0].0.path, "/v1/images/edits");
    })
    .await;
}

#[tokio::test]
async fn a_multipart_edit_sends_its_files_as_data_urls() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let png = b"\x89PNG\r\n\x1a\nfake image bytes";
        let mut body = Vec::new();
        let part = |body: &mut Vec<u8>, head: &str, data: &[u8]| {
            body.extend_from_slice(
                format!("--form-b\r\nContent-Disposition: form-data; {head}\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        };
        part(&mut body, "name=\"prompt\"", b"add a hat");
        part(&mut body, "name=\"model\"", b"gpt-image-1");
        part(&mut body, "name=\"quality\"", b"low");
        part(
            &mut body,
            "name=\"image[]\"; filename=\"a.png\"\r\nContent-Type: image/png",
            png,
        );
        part(&mut body, "name=\"mask\"; filename=\"mask.png\"", png);
        body.extend_from_slice(b"--form-b--\r\n");
        let reply = client()
            .post(proxy.url("/v1/images/edits"))
            .header("content-type", "multipart/form-data; boundary=form-b")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let answer: Value = reply.json().await.unwrap();
        assert_eq!(answer["data"][0]["b64_json"], IMAGE_B64);
        assert_eq!(answer["quality"], "low");

        use base64::Engine;
        let url = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
        let sent = relay.received()[0].json();
        assert_eq!(sent["model"], "gpt-5.5");
        assert_eq!(
            sent["input"][0]["content"],
            json!([{"type":"input_text","text":"add a hat"},
                {"type":"input_image","image_url":url}])
        );
        assert_eq!(
            sent["tools"][0],
            json!({"type":"image_generation","quality":"low","input_image_mask":{"image_url":url}})
        );
    })
    .await;
}

#[tokio::test]
async fn relay_errors_become_images_errors_with_their_status() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        relay.push(Fault::Status {
            status: 400,
            body: r#"{"error":{"message":"Your request was rejected","type":"invalid_request_error","param":"prompt","code":"moderation_blocked"}}"#.into(),
            retry_after: None,
        });
        let request = json!({"prompt":"something"});
        let (status, answer) = post_json(&proxy, "/v1/images/generations", request.clone()).await;
        assert_eq!(status, 400);
        assert_eq!(
            answer,
            json!({"error":{"message":"Your request was rejected","type":"invalid_request_error",
                "param":"prompt","code":"moderation_blocked"}})
        );

        // A 500 is retried and then nothing is left: the proxy's 502, in the Images shape.
        relay.always(Some(Fault::status(500)));
        let (status, answer) = post_json(&proxy, "/v1/images/generations", request).await;
        assert_eq!(status, 502, "{answer}");
        assert_eq!(answer["error"]["type"], "image_generation_route_failed");
        assert_eq!(answer["error"]["code"], "all_upstreams_failed");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("HTTP 500"), "{message}");
        assert!(answer["error"].as_object().unwrap().contains_key("param"));

        let records = proxy.records.wait_for(2).await;
        assert_eq!(records[0].0.status, Some(400));
        assert_eq!(records[1].1, Outcome::AllUpstreamsFailed);
    })
    .await;
}

#[tokio::test]
async fn a_502_from_the_first_relay_fails_over_to_the_second() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.always(Some(Fault::status(502)));
        let proxy = TestProxy::start(
            &providers(&[("first", &first.base_url()), ("second", &second.base_url())]),
            &[],
        )
        .await;
        let (status, answer) = post_json(
            &proxy,
            "/v1/images/generations",
            json!({"prompt":"a red fox"}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"][0]["b64_json"], IMAGE_B64);
        assert!(first.hits() >= 1);
        assert_eq!(second.hits(), 1);
        assert_eq!(second.received()[0].path_and_query, "/v1/responses");

        let records = proxy.records.wait_for(1).await;
        let record = &records[0].0;
        assert_eq!(record.provider.as_deref(), Some("second"));
        assert!(record.attempts.len() >= 2, "{:?}", record.attempts);
        assert!(record.usage.is_some());
    })
    .await;
}

#[tokio::test]
async fn a_2xx_without_an_image_is_a_502_with_its_usage_recorded() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        // The mock's plain reply (a text message, no image), gzip-compressed: decoded, read
        // whole, found without an image.
        relay.push(Fault::Compressed("gzip"));
        let proxy = TestProxy::start(&providers(&[("a", &relay.base_url())]), &[]).await;
        let (status, answer) =
            post_json(&proxy, "/v1/images/generations", json!({"prompt":"a fox"})).await;
        assert_eq!(status, 502, "{answer}");
        assert_eq!(answer["error"]["code"], "image_generation_missing_result");
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].0.status, Some(502));
        assert!(
            records[0].0.usage.is_some(),
            "the relay's usage is still priced"
        );
    })
    .await;
}

#[tokio::test]
async fn a_relay_key_echoed_in_an_error_never_reaches_the_client() {
    bounded(async {
        let relay = MockRelay::start("relay-a").await;
        let config = format!(
            "[codex.providers.a]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n[codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"a\"]\n",
            relay.base_url()
        );
        let key = "sk-relay-secret-0123456789abcdef";
        let proxy = TestProxy::start(&config, &[("RELAY_KEY", key)]).await;
        relay.push(Fault::Status {
            status: 400,
            body: format!(r#"{{"error":{{"message":"bad key Bearer {key}","type":"invalid_request_error"}}}}"#),
            retry_after: None,
        });
        let (status, answer) =
            post_json(&proxy, "/v1/images/generations", json!({"prompt":"a fox"})).await;
        assert_eq!(status, 400);
        assert!(!answer.to_string().contains(key), "{answer}");
        assert_eq!(
            relay.received()[0].headers["authorization"],
            format!("Bearer {key}").as_str(),
            "the relay's own credential was sent"
        );
        let records = proxy.records.wait_for(1).await;
        assert!(!records[0].0.error.clone().unwrap_or_default().contains(key));
    })
    .await;
}

#[tokio::test]
async fn a_2xx_without_an_image_fails_over_to_a_relay_that_makes_one() {
    bounded(async {
        let a = MockRelay::start("relay-a").await;
        let b = MockRelay::start("relay-b").await;
        // A relay without the image tool answers the call with plain text.
        a.push(Fault::Compressed("gzip"));
        let config = providers(&[("a", &a.base_url()), ("b", &b.base_url())]);
        let proxy = TestProxy::start(&config, &[]).await;
        let (status, answer) =
            post_json(&proxy, "/v1/images/generations", json!({"prompt":"a fox"})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"][0]["b64_json"], IMAGE_B64);
        assert_eq!((a.hits(), b.hits()), (1, 1));

        let records = proxy.records.wait_for(1).await;
        let (record, outcome) = &records[0];
        assert_eq!(*outcome, Outcome::Completed);
        assert_eq!(record.provider.as_deref(), Some("b"));
        let attempts = serde_json::to_value(&record.attempts).unwrap();
        assert_eq!(attempts[0]["provider"], "a");
        assert_eq!(attempts[0]["class"], "image_generation_missing_result");
        assert_eq!(attempts[1]["provider"], "b");

        // Not a health failure: the next request goes to the first relay again.
        let (status, _) =
            post_json(&proxy, "/v1/images/generations", json!({"prompt":"a cat"})).await;
        assert_eq!(status, 200);
        assert_eq!(a.hits(), 2, "relay a is not cooled down");
    })
    .await;
}

#[tokio::test]
async fn an_answer_that_breaks_while_it_is_read_fails_over() {
    bounded(async {
        let a = MockRelay::start("relay-a").await;
        let b = MockRelay::start("relay-b").await;
        // A relay streaming its answer (it may, though asked not to) breaks after it began:
        // past the point where an attempt is judged, but before the client saw anything.
        a.push(Fault::ResetMidStream { after_events: 4 });
        let config = providers(&[("a", &a.base_url()), ("b", &b.base_url())]);
        let proxy = TestProxy::start(&config, &[]).await;
        let (status, answer) =
            post_json(&proxy, "/v1/images/generations", json!({"prompt":"a fox"})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"][0]["b64_json"], IMAGE_B64);
        let records = proxy.records.wait_for(1).await;
        let (record, outcome) = &records[0];
        assert_eq!(*outcome, Outcome::Completed);
        assert_eq!(record.provider.as_deref(), Some("b"));
        let attempts = serde_json::to_value(&record.attempts).unwrap();
        assert_eq!(attempts[0]["provider"], "a");
        assert_eq!(attempts[0]["class"], "transport", "{attempts}");
        assert_eq!(attempts[1]["provider"], "b");
    })
    .await;
}
