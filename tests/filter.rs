//! `filter.json` rules on the way to the relay: applied after the relay's model mapping, over
//! HTTP (small and large bodies) and to WebSocket `response.create` messages; a bad file
//! stops `serve` with the file, the rule and what is wrong, and a bad edit while serving keeps
//! the rules in force.

mod support;

use std::path::Path;

use codex_helper::filter::Rules;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::cli::{Homes, run_to_end, serve};
use support::mock_relay::{Fault, MockRelay};
use support::ws_relay::{Behaviour, WsRelay};
use support::{TestProxy, bounded, client, codex_body, providers};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn rules(text: &str) -> Rules {
    Rules::compile(Path::new("/test/filter.json"), text).unwrap()
}

/// Maps the model, then renames the mapped one and takes a marker out of the text.
const RULES: &str = r#"[
    {"op": "replace", "source": "\"relay-model\"", "target": "\"relay-model-filtered\""},
    {"op": "remove", "source": "\\s*\\[private:[^\\]]*\\]"}
]"#;

fn mapped(relay: &MockRelay) -> String {
    providers(&[("a", &relay.base_url())])
        + "[codex.providers.a.model_mapping]\n\"gpt-5.1\" = \"relay-model\"\n"
}

#[tokio::test]
async fn the_relay_gets_the_body_filtered_after_its_model_mapping() {
    bounded(async {
        let relay = MockRelay::start("a").await;
        let proxy = TestProxy::start(&mapped(&relay), &[]).await;
        proxy.state.filter.set(rules(RULES));
        let body = json!({"model": "gpt-5.1", "stream": true,
            "input": [{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "fix it [private: my-token-123] now"}]}]});
        // A body labelled only `identity` is plain text too: filtered the same.
        for label in ["", "identity", "Identity, identity"] {
            let mut request = client()
                .post(proxy.url("/v1/responses"))
                .header("session-id", "s1");
            if !label.is_empty() {
                request = request.header("content-encoding", label);
            }
            let reply = request.body(body.to_string()).send().await.unwrap();
            assert_eq!(reply.status(), 200, "{label}");
            reply.text().await.unwrap();
        }
        for got in relay.received() {
            let got = got.json();
            // The rule saw the mapped model: mapping came first.
            assert_eq!(got["model"], "relay-model-filtered");
            assert_eq!(got["input"][0]["content"][0]["text"], "fix it now");
        }
        assert_eq!(relay.received().len(), 3);
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].0.model_requested.as_deref(), Some("gpt-5.1"));
    })
    .await;
}

#[tokio::test]
async fn each_attempt_is_filtered_after_its_own_relays_mapping() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.push(Fault::status(502));
        let config = providers(&[("first", &first.base_url()), ("second", &second.base_url())])
            + "[codex.providers.first.model_mapping]\n\"gpt-5.1\" = \"first-model\"\n\
               [codex.providers.second.model_mapping]\n\"gpt-5.1\" = \"second-model\"\n\
               [retry]\nprofile = \"aggressive-failover\"\n";
        let proxy = TestProxy::start(&config, &[]).await;
        proxy.state.filter.set(rules(
            r#"[{"op": "replace", "source": "(\\w+)-model", "target": "$1-filtered"}]"#,
        ));
        let text = client()
            .post(proxy.url("/v1/responses"))
            .body(codex_body("gpt-5.1", "s", 500))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("hi from second"), "{text}");
        assert_eq!(first.received()[0].json()["model"], "first-filtered");
        assert_eq!(second.received()[0].json()["model"], "second-filtered");
    })
    .await;
}

#[tokio::test]
async fn a_large_body_is_filtered_too_and_no_rules_leave_bytes_alone() {
    bounded(async {
        let relay = MockRelay::start("a").await;
        let proxy = TestProxy::start(&mapped(&relay), &[]).await;
        // Past the inline limit (1 MiB): filtered on a blocking thread.
        let big = codex_body("gpt-5.1", "s2", 3 << 20).replace("xxxxxxxx", "xxxxxxxy");
        let send = |body: String| {
            client()
                .post(proxy.url("/v1/responses"))
                .header("session-id", "s2")
                .body(body)
                .send()
        };
        send(big.clone()).await.unwrap().text().await.unwrap();
        proxy.state.filter.set(rules(
            r#"[{"op": "replace", "source": "y", "target": "z"}]"#,
        ));
        send(big.clone()).await.unwrap().text().await.unwrap();
        let received = relay.received();
        let unfiltered = String::from_utf8(received[0].body.to_vec()).unwrap();
        let filtered = String::from_utf8(received[1].body.to_vec()).unwrap();
        assert_eq!(unfiltered, big.replace("\"gpt-5.1\"", "\"relay-model\""));
        assert!(filtered.len() > (3 << 20) - 1000);
        assert!(!filtered.contains('y') && filtered.contains("xxxxxxxz"));
        assert_eq!(filtered, unfiltered.replace('y', "z"));
    })
    .await;
}

/// Sends one `response.create` with `text` over the proxy's WebSocket under `filter`, and
/// returns the frame the relay got.
async fn relayed_create(filter: &str, text: &str) -> serde_json::Value {
    let relay = WsRelay::start("a", Behaviour::Answer).await;
    let config = providers(&[("a", &relay.base_url())])
        + "[codex.providers.a.model_mapping]\n\"gpt-5.1\" = \"relay-model\"\n";
    let proxy = TestProxy::start(&config, &[]).await;
    proxy.state.filter.set(rules(filter));
    let url = proxy.url("/v1/responses").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("session-id", "thread-1".parse().unwrap());
    let addr = proxy.server.as_ref().unwrap().addr;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let create = json!({"type": "response.create", "model": "gpt-5.1", "stream": true,
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}]});
    socket
        .send(Message::text(create.to_string()))
        .await
        .unwrap();
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message {
            if text.as_str().contains("response.completed") {
                break;
            }
        }
    }
    socket.close(None).await.unwrap();
    relay.frames().remove(0)
}

#[tokio::test]
async fn websocket_response_create_messages_are_filtered_after_mapping() {
    bounded(async {
        let frame = relayed_create(RULES, "hello [private: x] there").await;
        assert_eq!(frame["model"], "relay-model-filtered");
        assert_eq!(frame["input"][0]["content"][0]["text"], "hello there");
    })
    .await;
}

#[tokio::test]
async fn a_websocket_message_the_rules_would_break_goes_unfiltered() {
    bounded(async {
        // Cutting the first byte of `é` out leaves no valid UTF-8: no text message can carry it.
        let breaking = r#"[{"op": "replace", "source": "hello", "target": "bye"},
                           {"op": "remove", "source": "(?-u:\\xC3)"}]"#;
        let frame = relayed_create(breaking, "hello café").await;
        assert_eq!(frame["input"][0]["content"][0]["text"], "hello café");
        assert_eq!(frame["model"], "relay-model");
    })
    .await;
}

#[tokio::test]
async fn serve_refuses_a_bad_filter_file_naming_the_rule() {
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), "version = 5\n").unwrap();
    let filter = homes.helper.path().join("filter.json");
    std::fs::write(
        &filter,
        r#"[{"op": "remove", "source": "a"}, {"op": "replace", "source": "b"}]"#,
    )
    .unwrap();
    let (ok, stderr) = run_to_end(homes.command(&["serve", "--no-tui", "--port", "0"])).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: rule 1: `replace` needs a `target`",
            filter.display()
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_follows_the_filter_file_and_keeps_good_rules_over_a_bad_edit() {
    let relay = MockRelay::start("a").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!("version = 5\n{}", providers(&[("a", &relay.base_url())])),
    )
    .unwrap();
    let filter = homes.helper.path().join("filter.json");
    std::fs::write(
        &filter,
        r#"{"op": "replace", "source": "gpt-5\\.1", "target": "one"}"#,
    )
    .unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    assert!(
        served
            .log_so_far()
            .contains("filter.json: 1 filter rule(s)"),
        "{}",
        served.log_so_far()
    );
    let post = || {
        client()
            .post(format!("{}/v1/responses", served.url))
            .body(codex_body("gpt-5.1", "s", 500))
            .send()
    };
    post().await.unwrap().text().await.unwrap();
    std::fs::write(&filter, r#"[{"op": "replace", "source": "gpt-5\\.1", "target": "two"}, {"op": "bogus", "source": "x"}]"#).unwrap();
    // Bounded wait for the watcher to say it kept the rules.
    let said = tokio::time::timeout(support::cli::LIMIT, async {
        loop {
            let log = served.log_so_far();
            if log.contains("still using the previous filter rules") {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the watcher reported the bad edit");
    assert!(said.contains("rule 1: unknown variant `bogus`"), "{said}");
    post().await.unwrap().text().await.unwrap();
    let models: Vec<_> = relay
        .received()
        .iter()
        .map(|r| r.json()["model"].clone())
        .collect();
    assert_eq!(models, ["one", "one"]);
}
