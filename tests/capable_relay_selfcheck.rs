//! The capability mock relay (`support::capable_relay`) checked against its own rules, once
//! each, so tests built on it can trust what it answers: a stall, auth (HTTP and WebSocket),
//! the four `/models` shapes, `/responses` with and without each capability, streamed and not,
//! `/responses/compact`, Chat Completions, the Responses WebSocket and unknown routes.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::capable_relay::{CapableRelay, Models, Profile};
use support::{bounded, client};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const KEY: &str = "sk-relay-test";

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

// Each test builds one HTTP client and passes it around: building one loads the platform's
// TLS roots, which costs tens of milliseconds in a debug build.

fn url(relay: &CapableRelay, path: &str) -> String {
    format!("{}{path}", relay.base_url())
}

/// A reply's status, content type and body text.
async fn parts(reply: reqwest::Response) -> (u16, String, String) {
    let status = reply.status().as_u16();
    let content_type = reply
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, reply.text().await.unwrap())
}

async fn get(http: &reqwest::Client, relay: &CapableRelay, path: &str) -> (u16, String, String) {
    let reply = http
        .get(url(relay, path))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    parts(reply).await
}

async fn post(
    http: &reqwest::Client,
    relay: &CapableRelay,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let reply = http
        .post(url(relay, path))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    parts(reply).await
}

/// Asserts an OpenAI-shaped JSON error and returns its `error` object.
fn openai_error(reply: &(u16, String, String), status: u16) -> Value {
    assert_eq!(reply.0, status, "{}", reply.2);
    assert_eq!(reply.1, "application/json");
    let body: Value = serde_json::from_str(&reply.2).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    body["error"].clone()
}

/// The `data:` payloads of an SSE body.
fn sse_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// Opens the Responses WebSocket with `key`; `Err` carries a refused handshake.
async fn connect(relay: &CapableRelay, key: &str) -> Result<Socket, tungstenite::Error> {
    let mut request = url(relay, "/responses")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let stream = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let (socket, response) = tokio_tungstenite::client_async(request, stream).await?;
    assert_eq!(response.status(), 101);
    Ok(socket)
}

/// The status of a refused WebSocket handshake.
fn refused_status(result: Result<Socket, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected handshake error: {other}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

/// The next text frame, as JSON.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await.expect("a frame").unwrap() {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Pong(_) | Message::Ping(_) => {}
            other => panic!("unexpected frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn stall_records_the_head_and_never_answers_until_dropped() {
    bounded(async {
        let http = client();
        let relay = CapableRelay::start(Profile {
            stall: true,
            ..Profile::full(KEY)
        })
        .await;
        let pending = tokio::spawn(http.get(url(&relay, "/models")).send());
        while relay.seen().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let seen = relay.seen();
        assert_eq!(
            (seen[0].method.as_str(), seen[0].path.as_str()),
            ("GET", "/v1/models")
        );
        assert!(!pending.is_finished());
        drop(relay);
        // Dropping the relay closes the stalled connection: the client fails, it does not hang.
        assert!(pending.await.unwrap().is_err());
    })
    .await;
}

#[tokio::test]
async fn auth_is_checked_first_for_http_and_websocket() {
    bounded(async {
        let http = client();
        let relay = CapableRelay::start(Profile::full(KEY)).await;
        let anonymous = parts(http.get(url(&relay, "/models")).send().await.unwrap()).await;
        let wrong = parts(
            http.get(url(&relay, "/nowhere"))
                .bearer_auth("sk-other")
                .send()
                .await
                .unwrap(),
        )
        .await;
        for reply in [anonymous, wrong] {
            let error = openai_error(&reply, 401);
            assert_eq!(error["message"], "Incorrect API key provided.");
            assert_eq!(error["code"], "invalid_api_key");
        }
        assert_eq!(refused_status(connect(&relay, "sk-other").await), 401);
        assert_eq!(relay.seen().len(), 3, "refused requests are recorded too");
    })
    .await;
}

#[tokio::test]
async fn models_in_each_shape() {
    bounded(async {
        let http = client();
        let start = |models| {
            CapableRelay::start(Profile {
                models,
                ..Profile::full(KEY)
            })
        };
        let codex = get(&http, &start(Models::Codex).await, "/models").await;
        assert_eq!((codex.0, codex.1.as_str()), (200, "application/json"));
        let codex: Value = serde_json::from_str(&codex.2).unwrap();
        let slugs: Vec<&str> = codex["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["gpt-5.1", "gpt-5.5"]);
        let first = &codex["models"][0];
        assert_eq!(first["shell_type"], "shell_command");
        assert_eq!(
            first["truncation_policy"],
            json!({"mode": "bytes", "limit": 10000})
        );
        assert!(first["priority"].is_u64() && first["supported_reasoning_levels"].is_array());

        let openai = get(&http, &start(Models::OpenAi).await, "/models").await;
        let openai: Value = serde_json::from_str(&openai.2).unwrap();
        assert_eq!(openai["object"], "list");
        assert_eq!(openai["data"][1]["id"], "gpt-5.5");

        let missing = get(&http, &start(Models::Missing).await, "/models").await;
        openai_error(&missing, 404);

        let html = get(&http, &start(Models::Html).await, "/models").await;
        assert_eq!(html.0, 200);
        assert!(html.1.starts_with("text/html") && html.2.contains("<html"));
    })
    .await;
}

#[tokio::test]
async fn responses_refuses_what_the_profile_lacks() {
    bounded(async {
        let http = client();
        let chat_only = CapableRelay::start(Profile {
            responses: false,
            ..Profile::full(KEY)
        })
        .await;
        let error = openai_error(&post(&http, &chat_only, "/responses", "{}").await, 404);
        assert_eq!(error["message"], "Invalid URL (POST /v1/responses)");

        let bare = CapableRelay::start(Profile {
            compact_v2: false,
            image: false,
            ..Profile::full(KEY)
        })
        .await;
        openai_error(&post(&http, &bare, "/responses", "not json").await, 400);
        let trigger = json!({"model": "gpt-5.1", "input": [
            {"type": "message", "role": "user", "content": "hi"}, {"type": "compaction_trigger"}]});
        let error = openai_error(
            &post(&http, &bare, "/responses", &trigger.to_string()).await,
            400,
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid value: 'compaction_trigger'.")
        );
        assert_eq!(
            (error["param"].as_str(), error["code"].as_str()),
            (Some("input[1].type"), Some("invalid_value"))
        );
        let image =
            json!({"model": "gpt-5.1", "input": [], "tools": [{"type": "image_generation"}]});
        let error = openai_error(
            &post(&http, &bare, "/responses", &image.to_string()).await,
            400,
        );
        assert_eq!(
            (error["param"].as_str(), error["code"].as_str()),
            (Some("tools"), Some("unsupported_tool"))
        );
        let error = openai_error(
            &post(&http, &bare, "/responses", r#"{"input":[]}"#).await,
            400,
        );
        assert_eq!(error["message"], "Missing required parameter: 'model'.");
        assert_eq!(error["code"], "missing_required_parameter");
    })
    .await;
}

#[tokio::test]
async fn responses_answers_streamed_and_not() {
    bounded(async {
        let http = client();
        let relay = CapableRelay::start(Profile::full(KEY)).await;
        let plain = json!({"model": "gpt-5.5", "stream": true, "input": []});
        let (status, content_type, text) =
            post(&http, &relay, "/responses", &plain.to_string()).await;
        assert_eq!((status, content_type.as_str()), (200, "text/event-stream"));
        let events = sse_events(&text);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[0]["response"]["id"], "resp_mock_1");
        assert_eq!(events[0]["response"]["model"], "gpt-5.5");
        assert_eq!(
            events[1]["item"]["content"],
            json!([{"type": "output_text", "text": "OK"}])
        );
        assert_eq!(events[2]["response"]["status"], "completed");
        assert_eq!(
            events[2]["response"]["usage"],
            json!({"input_tokens": 50, "output_tokens": 10, "total_tokens": 60})
        );

        let trigger =
            json!({"model": "gpt-5.1", "stream": true, "input": [{"type": "compaction_trigger"}]});
        let events = sse_events(
            &post(&http, &relay, "/responses", &trigger.to_string())
                .await
                .2,
        );
        assert_eq!(
            events[1]["item"],
            json!({"type": "compaction", "id": "cmp_1", "encrypted_content": "opaque-summary"})
        );
        assert_eq!(events[0]["response"]["id"], "resp_mock_2");

        let image = json!({"model": "gpt-5.1", "stream": true, "input": [],
            "tools": [{"type": "image_generation", "output_format": "png"}]});
        let events = sse_events(
            &post(&http, &relay, "/responses", &image.to_string())
                .await
                .2,
        );
        assert_eq!(events[1]["item"]["type"], "image_generation_call");
        assert_eq!(events[1]["item"]["result"], "iVBORw0KGgo=");

        let whole = json!({"model": "gpt-5.1", "input": []});
        let (status, content_type, text) =
            post(&http, &relay, "/responses", &whole.to_string()).await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        let response: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(response["object"], "response");
        assert_eq!(response["status"], "completed");
        assert_eq!(response["output"][0]["type"], "message");
        assert_eq!(response["usage"]["total_tokens"], 60);

        let seen = relay.seen();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[3].body, whole);
        assert_eq!(seen[3].headers["authorization"], format!("Bearer {KEY}"));
    })
    .await;
}

#[tokio::test]
async fn compact_and_chat_completions() {
    bounded(async {
        let http = client();
        let without = CapableRelay::start(Profile {
            compact_v1: false,
            ..Profile::full(KEY)
        })
        .await;
        let error = openai_error(
            &post(&http, &without, "/responses/compact", "{}").await,
            404,
        );
        assert_eq!(error["message"], "Invalid URL (POST /v1/responses/compact)");

        let relay = CapableRelay::start(Profile::full(KEY)).await;
        let error = openai_error(
            &post(&http, &relay, "/responses/compact", r#"{"input":[]}"#).await,
            400,
        );
        assert_eq!(error["param"], "model");
        let (status, _, text) = post(
            &http,
            &relay,
            "/responses/compact",
            r#"{"model":"gpt-5.1","input":[]}"#,
        )
        .await;
        assert_eq!(status, 200);
        let compacted: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(compacted["id"], "resp_compact_1");
        assert_eq!(compacted["object"], "response.compaction");
        assert_eq!(
            compacted["output"][0]["encrypted_content"],
            "opaque-summary"
        );
        assert_eq!(compacted["usage"]["total_tokens"], 48);

        let error = openai_error(
            &post(&http, &relay, "/chat/completions", r#"{"model":"gpt-5.1"}"#).await,
            400,
        );
        assert_eq!(error["message"], "Missing required parameter: 'messages'.");
        let chat = json!({"model": "gpt-5.1", "messages": [{"role": "user", "content": "hi"}]});
        let (status, _, text) = post(&http, &relay, "/chat/completions", &chat.to_string()).await;
        assert_eq!(status, 200);
        let chat: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(chat["choices"][0]["message"]["content"], "OK");
        assert_eq!(chat["usage"]["total_tokens"], 6);
    })
    .await;
}

#[tokio::test]
async fn websocket_answers_frames_pings_and_close() {
    bounded(async {
        let without = CapableRelay::start(Profile {
            websocket: false,
            ..Profile::full(KEY)
        })
        .await;
        assert_eq!(refused_status(connect(&without, KEY).await), 404);

        let relay = CapableRelay::start(Profile::full(KEY)).await;
        let mut socket = connect(&relay, KEY).await.unwrap();
        let create = json!({"type": "response.create", "model": "gpt-5.1", "input": []});
        socket
            .send(Message::text(create.to_string()))
            .await
            .unwrap();
        let created = next_json(&mut socket).await;
        assert_eq!(created["type"], "response.created");
        assert_eq!(created["response"]["id"], "resp_mock_1");
        let delta = next_json(&mut socket).await;
        assert_eq!(
            (delta["type"].as_str(), delta["delta"].as_str()),
            (Some("response.output_text.delta"), Some("OK"))
        );
        let completed = next_json(&mut socket).await;
        assert_eq!(completed["type"], "response.completed");
        assert_eq!(completed["response"]["usage"]["total_tokens"], 60);

        socket.send(Message::text("not json")).await.unwrap();
        assert_eq!(
            next_json(&mut socket).await,
            json!({"type": "error", "error": {"message": "bad frame"}})
        );

        socket
            .send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap();
        match socket.next().await.unwrap().unwrap() {
            Message::Pong(payload) => assert_eq!(&payload[..], b"are you there"),
            other => panic!("expected a pong, got {other:?}"),
        }

        socket.close(None).await.unwrap();
        // The relay echoes the close and the stream ends.
        while let Some(Ok(message)) = socket.next().await {
            assert!(matches!(message, Message::Close(_)), "{message:?}");
        }

        let seen = relay.seen();
        let summary: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.path.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("GET", "/v1/responses"),
                ("WS", "/v1/responses"),
                ("WS", "/v1/responses")
            ]
        );
        assert_eq!(seen[1].body, create);
        assert_eq!(seen[2].body, Value::Null);
    })
    .await;
}

#[tokio::test]
async fn other_routes_are_not_found() {
    bounded(async {
        let http = client();
        let relay = CapableRelay::start(Profile::full(KEY)).await;
        let error = openai_error(&get(&http, &relay, "/responses").await, 404);
        assert_eq!(error["message"], "Invalid URL (GET /v1/responses)");
        openai_error(&post(&http, &relay, "/models", "{}").await, 404);
        openai_error(&get(&http, &relay, "/embeddings").await, 404);
    })
    .await;
}
