//! The Responses WebSocket through the proxy, at the frame level, against mock relays that
//! speak it: the relay's key and mapped model reach the relay, events come back as they are,
//! each response is one record with its usage, failover before the handshake, and a relay
//! that breaks mid-response gives the client an error and a close, not a hang.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::outbound::ClosedPort;
use support::ws_relay::{Behaviour, WsRelay};
use support::{TestProxy, bounded};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use codex_helper::proxy::Outcome;

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a WebSocket to the proxy as Codex does (its key, session and turn metadata).
async fn connect(proxy: &TestProxy) -> Socket {
    let url = proxy.url("/v1/responses").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", "Bearer codex-own-key".parse().unwrap());
    headers.insert("session-id", "thread-1".parse().unwrap());
    headers.insert(
        "openai-beta",
        "responses_websockets=2026-02-06".parse().unwrap(),
    );
    headers.insert(
        "x-codex-turn-metadata",
        r#"{"model":"gpt-5.1","request_kind":"prewarm"}"#.parse().unwrap(),
    );
    let addr = proxy.server.as_ref().unwrap().addr;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("the proxy accepts the upgrade");
    assert_eq!(response.status(), 101);
    socket
}

fn create(model: &str, text: &str) -> Message {
    Message::text(
        json!({"type": "response.create", "model": model, "stream": true,
               "input": [{"type": "message", "role": "user",
                          "content": [{"type": "input_text", "text": text}]}]})
        .to_string(),
    )
}

/// The client's events until the response ends (or the connection does).
async fn events(socket: &mut Socket) -> Vec<Value> {
    let mut events = Vec::new();
    while let Some(message) = socket.next().await {
        match message {
            Ok(Message::Text(text)) => {
                let event: Value = serde_json::from_str(text.as_str()).unwrap();
                let last = matches!(
                    event["type"].as_str(),
                    Some("response.completed" | "response.failed" | "error")
                );
                events.push(event);
                if last {
                    break;
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    events
}

fn keyed(relays: &[(&str, &str)], extra: &str) -> String {
    let mut text = String::new();
    for (id, base) in relays {
        text.push_str(&format!(
            "[codex.providers.{id}]\nbase_url = \"{base}\"\nauth_token = \"sk-{id}-relay-key\"\n"
        ));
    }
    let order: Vec<String> = relays.iter().map(|(id, _)| format!("\"{id}\"")).collect();
    text.push_str(&format!(
        "[codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [{}]\n{extra}",
        order.join(", ")
    ));
    text
}

#[tokio::test]
async fn turns_are_bridged_with_the_relays_key_and_mapped_model_and_recorded_one_per_response() {
    bounded(async {
        let relay = WsRelay::start("a", Behaviour::Answer).await;
        let config = keyed(&[("a", &relay.base_url())], "")
            + "[codex.providers.a.model_mapping]\n\"gpt-5.1\" = \"relay-model\"\n";
        let proxy = TestProxy::start(&config, &[]).await;
        let websockets = || proxy.state.metrics.websockets.get();
        assert_eq!(websockets(), 0);
        let mut socket = connect(&proxy).await;
        assert_eq!(websockets(), 1, "counted from the upgrade");

        for turn in ["first", "second"] {
            socket.send(create("gpt-5.1", turn)).await.unwrap();
            let events = events(&mut socket).await;
            let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
            assert_eq!(
                kinds,
                [
                    "response.created",
                    "response.output_item.added",
                    "response.output_text.delta",
                    "response.output_item.done",
                    "response.completed"
                ]
            );
            assert_eq!(events[2]["delta"], "hi from a");
        }
        socket.close(None).await.unwrap();
        while websockets() != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }

        let handshake = &relay.handshakes()[0];
        assert_eq!(handshake["authorization"], "Bearer sk-a-relay-key");
        assert_eq!(handshake["openai-beta"], "responses_websockets=2026-02-06");
        let frames = relay.frames();
        assert_eq!(frames.len(), 2);
        assert!(
            frames.iter().all(|f| f["model"] == "relay-model"),
            "{frames:?}"
        );
        assert_eq!(frames[1]["input"][0]["content"][0]["text"], "second");

        let records = proxy.records.wait_for(2).await;
        assert_eq!(
            records.len(),
            2,
            "one record per response, none for the handshake"
        );
        for (record, outcome) in &records {
            assert_eq!(*outcome, Outcome::Completed);
            assert_eq!(record.provider.as_deref(), Some("a"));
            assert_eq!(record.model_requested.as_deref(), Some("gpt-5.1"));
            assert_eq!(record.model_sent.as_deref(), Some("relay-model"));
            assert_eq!(record.usage.as_ref().unwrap().total_tokens, 1205);
            assert!(record.ttfb.is_some());
            assert_eq!(
                record.session.as_ref().map(|s| s.value.as_str()),
                Some("thread-1")
            );
        }
        assert_ne!(records[0].0.trace_id, records[1].0.trace_id);
    })
    .await;
}

#[tokio::test]
async fn a_dead_first_relay_is_failed_over_before_the_handshake() {
    bounded(async {
        let closed = ClosedPort::new();
        let dead = format!("http://127.0.0.1:{closed}/v1");
        let relay = WsRelay::start("b", Behaviour::Answer).await;
        let config = keyed(&[("dead", &dead), ("b", &relay.base_url())], "");
        let proxy = TestProxy::start(&config, &[]).await;
        let mut socket = connect(&proxy).await;
        socket.send(create("gpt-5.1", "hi")).await.unwrap();
        let events = events(&mut socket).await;
        assert_eq!(events.last().unwrap()["type"], "response.completed");
        assert_eq!(relay.handshakes().len(), 1);
        let records = proxy.records.wait_for(1).await;
        let record = &records[0].0;
        assert_eq!(record.provider.as_deref(), Some("b"));
        assert_eq!(record.attempts.len(), 1, "the dead relay's attempt is kept");
        assert_eq!(record.attempts[0].provider, "dead");
    })
    .await;
}

#[tokio::test]
async fn a_relay_that_drops_mid_response_gives_the_client_an_error_and_a_close() {
    bounded(async {
        let relay = WsRelay::start("a", Behaviour::DropMidResponse).await;
        let proxy = TestProxy::start(&keyed(&[("a", &relay.base_url())], ""), &[]).await;
        let mut socket = connect(&proxy).await;
        socket.send(create("gpt-5.1", "hi")).await.unwrap();
        let events = events(&mut socket).await;
        let last = events.last().unwrap();
        assert_eq!(last["type"], "error", "{events:?}");
        assert_eq!(last["error"]["code"], "relay_connection_lost");
        // Then a close that says why (1011: an internal error on the server's side), not a
        // hang and not a reset.
        let next = socket.next().await;
        let Some(Ok(Message::Close(Some(frame)))) = &next else {
            panic!("expected a close frame, got {next:?}");
        };
        assert_eq!(u16::from(frame.code), 1011, "{frame:?}");
        assert_eq!(frame.reason.as_str(), "relay connection lost");
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].1, Outcome::UpstreamStreamError);
    })
    .await;
}

#[tokio::test]
async fn a_lone_relay_that_broke_still_takes_the_next_connection() {
    bounded(async {
        let relay = WsRelay::start("a", Behaviour::DropMidResponse).await;
        let proxy = TestProxy::start(&keyed(&[("a", &relay.base_url())], ""), &[]).await;
        for _ in 0..2 {
            let mut socket = connect(&proxy).await;
            socket.send(create("gpt-5.1", "hi")).await.unwrap();
            assert_eq!(events(&mut socket).await.last().unwrap()["type"], "error");
        }
        assert_eq!(relay.handshakes().len(), 2, "not cooled down to nowhere");
    })
    .await;
}

#[tokio::test]
async fn a_relay_silent_in_a_response_is_ended_after_the_idle_timeout() {
    bounded(async {
        let relay = WsRelay::start("a", Behaviour::StallMidResponse).await;
        let config = keyed(
            &[("a", &relay.base_url())],
            "[proxy]\nstream_idle_timeout_ms = 300\n",
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let mut socket = connect(&proxy).await;
        socket.send(create("gpt-5.1", "hi")).await.unwrap();
        let events = events(&mut socket).await;
        let last = events.last().unwrap();
        assert_eq!(last["error"]["code"], "relay_connection_lost", "{events:?}");
        assert!(
            last["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no message from the relay")
        );
    })
    .await;
}

#[tokio::test]
async fn previous_response_not_found_reaches_codex_as_the_relay_sent_it() {
    bounded(async {
        let relay = WsRelay::start("a", Behaviour::PreviousNotFound).await;
        let proxy = TestProxy::start(&keyed(&[("a", &relay.base_url())], ""), &[]).await;
        let mut socket = connect(&proxy).await;
        socket.send(create("gpt-5.1", "hi")).await.unwrap();
        let first = events(&mut socket).await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["error"]["code"], "previous_response_not_found");
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].1, Outcome::FailedInStream);
        // The connection stays usable: Codex decides (it reconnects with the full input).
        socket.send(create("gpt-5.1", "again")).await.unwrap();
        assert_eq!(events(&mut socket).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_relay_echoing_its_key_in_an_error_event_does_not_show_it_to_the_client() {
    bounded(async {
        let relay = WsRelay::start("a", Behaviour::EchoesKey).await;
        let proxy = TestProxy::start(&keyed(&[("a", &relay.base_url())], ""), &[]).await;
        let mut socket = connect(&proxy).await;
        socket.send(create("gpt-5.1", "hi")).await.unwrap();
        let hidden = "*".repeat("sk-a-relay-key".len());
        // In the response, then outside any.
        for _ in 0..2 {
            let error = events(&mut socket).await;
            let message = &error[0]["error"]["message"];
            assert_eq!(message, &format!("bad key: Bearer {hidden}"));
        }
        let records = proxy.records.wait_for(1).await;
        assert_eq!(records[0].1, Outcome::FailedInStream);
    })
    .await;
}

#[tokio::test]
async fn a_relay_behind_an_outbound_socks_proxy_is_bridged_through_it() {
    bounded(async {
        let relay = WsRelay::start("a", Behaviour::Answer).await;
        let socks = support::outbound::TestOutbound::socks5(None).await;
        let config = format!(
            "[proxy]\noutbound_proxy = \"{}\"\n{}",
            socks.url("socks5h", None),
            keyed(&[("a", &relay.base_url())], "")
        );
        let proxy = TestProxy::start(&config, &[]).await;
        let mut socket = connect(&proxy).await;
        socket.send(create("gpt-5.1", "hi")).await.unwrap();
        assert_eq!(
            events(&mut socket).await.last().unwrap()["type"],
            "response.completed"
        );
        assert_eq!(socks.tunnels(), 1, "the handshake went through the proxy");
        assert_eq!(
            relay.handshakes()[0]["authorization"],
            "Bearer sk-a-relay-key"
        );
    })
    .await;
}

/// A handshake as Codex sends it, offering permessage-deflate as Codex 0.171.0 does.
fn deflate_handshake() -> String {
    "GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
     Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
     authorization: Bearer codex-own-key\r\nsession-id: thread-1\r\n\
     x-codex-turn-metadata: {\"model\":\"gpt-5.1\"}\r\n\r\n"
        .to_string()
}

#[tokio::test]
async fn permessage_deflate_is_spoken_with_each_side_and_the_relays_headers_reach_the_client() {
    use support::raw_ws::{
        self, DeflateRelay, Deflater, Inflater, TEXT, read_frame, read_head, write_frame,
    };
    use tokio::io::AsyncWriteExt;
    bounded(async {
        let relay = DeflateRelay::start(Some("permessage-deflate")).await;
        let config = keyed(&[("a", &relay.base_url())], "")
            + "[codex.providers.a.model_mapping]\n\"gpt-5.1\" = \"relay-model\"\n";
        let proxy = TestProxy::start(&config, &[]).await;
        let addr = proxy.server.as_ref().unwrap().addr;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(deflate_handshake().as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // RFC 6455 §1.3's example key and its answer.
        assert_eq!(
            raw_ws::header(&head, "sec-websocket-accept").as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(
            raw_ws::header(&head, "sec-websocket-extensions").as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            raw_ws::header(&head, "x-codex-turn-state").as_deref(),
            Some("ts-relay"),
            "the relay's answer headers reach Codex: {head}"
        );
        assert_eq!(
            raw_ws::header(&head, "openai-model").as_deref(),
            Some("gpt-5.1"),
            "the model Codex asked for, so a mapping does not look like a reroute"
        );

        // Two turns, each side keeping its compression window across them.
        let (mut deflater, mut inflater) = (Deflater::default(), Inflater::default());
        for turn in ["first turn", "second turn"] {
            let create = create("gpt-5.1", turn).into_text().unwrap();
            let compressed = deflater.deflate(create.as_bytes());
            write_frame(&mut stream, TEXT, true, true, &compressed).await;
            loop {
                let frame = read_frame(&mut stream).await;
                assert!(frame.rsv1 && frame.fin && !frame.masked, "{frame:?}");
                assert_eq!(frame.opcode, TEXT);
                let event: Value =
                    serde_json::from_slice(&inflater.inflate(&frame.payload)).unwrap();
                if event["type"] == "response.output_text.delta" {
                    assert_eq!(event["delta"], "squeezed hello");
                }
                if event["type"] == "response.completed" {
                    break;
                }
            }
        }

        let relay_head = &relay.heads()[0];
        assert_eq!(
            raw_ws::header(relay_head, "sec-websocket-extensions").as_deref(),
            Some("permessage-deflate"),
            "the proxy offers what it can honour, not Codex's window parameter"
        );
        assert_eq!(
            raw_ws::header(relay_head, "authorization").as_deref(),
            Some("Bearer sk-a-relay-key")
        );
        let messages = relay.messages();
        assert_eq!(messages.len(), 2);
        for ((message, compressed), turn) in messages.iter().zip(["first turn", "second turn"]) {
            assert!(compressed, "the proxy compresses towards the relay");
            assert_eq!(message["model"], "relay-model");
            assert_eq!(message["input"][0]["content"][0]["text"], turn);
        }
        let records = proxy.records.wait_for(2).await;
        assert!(
            records
                .iter()
                .all(|(r, o)| *o == Outcome::Completed
                    && r.usage.as_ref().unwrap().total_tokens == 742),
            "{records:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_client_without_deflate_gets_plain_frames_from_a_compressing_relay() {
    bounded(async {
        let relay = support::raw_ws::DeflateRelay::start(Some("permessage-deflate")).await;
        let proxy = TestProxy::start(&keyed(&[("a", &relay.base_url())], ""), &[]).await;
        let mut socket = connect(&proxy).await;
        for _ in 0..2 {
            socket.send(create("gpt-5.1", "hi")).await.unwrap();
            let events = events(&mut socket).await;
            assert_eq!(events[1]["delta"], "squeezed hello");
            assert_eq!(events.last().unwrap()["type"], "response.completed");
        }
        let messages = relay.messages();
        assert_eq!(messages.len(), 2);
        assert!(messages.iter().all(|(_, compressed)| *compressed));
    })
    .await;
}

#[tokio::test]
async fn a_relay_agreeing_to_what_was_not_offered_is_failed_over() {
    bounded(async {
        // The proxy never offers to limit its own window; a relay that imposes one cannot be
        // spoken to (RFC 7692 §7.1.2.2), so the connection goes to the next relay.
        let odd = support::raw_ws::DeflateRelay::start(Some(
            "permessage-deflate; client_max_window_bits=9",
        ))
        .await;
        let good = WsRelay::start("b", Behaviour::Answer).await;
        let config = keyed(&[("odd", &odd.base_url()), ("b", &good.base_url())], "");
        let proxy = TestProxy::start(&config, &[]).await;
        let mut socket = connect(&proxy).await;
        socket.send(create("gpt-5.1", "hi")).await.unwrap();
        let events = events(&mut socket).await;
        assert_eq!(events[2]["delta"], "hi from b");
        assert_eq!(odd.heads().len(), 1);
        let records = proxy.records.wait_for(1).await;
        let attempt = format!("{:?}", records[0].0.attempts);
        assert!(attempt.contains("client_max_window_bits=9"), "{attempt}");
    })
    .await;
}
