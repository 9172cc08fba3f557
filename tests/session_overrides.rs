//! Session overrides and profiles through the proxy: what the relay receives (the body
//! patched, the route pinned), what the record says (model asked and sent, the pin, what was
//! changed), over HTTP and over the Responses WebSocket.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::mock_relay::MockRelay;
use support::ws_relay::{Behaviour, WsRelay};
use support::{TestProxy, bounded};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use codex_helper::routing::overrides::Change;

fn change(session: &str) -> Change {
    Change {
        session_id: session.into(),
        ..Change::default()
    }
}

/// Two relays tried in order `a`, `b`; `b` maps `gpt-5.5` to its own name; `extra` is more
/// config (profiles).
fn config(a: &str, b: &str, extra: &str) -> String {
    format!(
        "{extra}\n[codex.providers.a]\nbase_url = \"{a}\"\n\
         [codex.providers.b]\nbase_url = \"{b}\"\n\
         [codex.providers.b.model_mapping]\n\"gpt-5.5\" = \"b-model\"\n\
         [codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"a\", \"b\"]\n"
    )
}

async fn turn(proxy: &TestProxy, session: &str, body: Value) -> reqwest::Response {
    support::client()
        .post(proxy.url("/v1/responses"))
        .header("content-type", "application/json")
        .header("session-id", session)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn codex_turn() -> Value {
    json!({"model": "gpt-5.1", "input": "hi", "stream": false,
           "reasoning": {"effort": "medium", "summary": "auto"}})
}

#[tokio::test]
async fn a_sessions_overrides_patch_its_body_and_pin_it_before_routing_and_mapping() {
    bounded(async {
        let (a, b) = (MockRelay::start("a").await, MockRelay::start("b").await);
        let proxy = TestProxy::start(&config(&a.base_url(), &b.base_url(), ""), &[]).await;
        proxy.state.overrides.apply(Change {
            model: Some("gpt-5.5".into()),
            reasoning_effort: Some("xhigh".into()),
            service_tier: Some("priority".into()),
            route_target: Some("b".into()),
            ..change("pinned")
        });

        assert_eq!(turn(&proxy, "pinned", codex_turn()).await.status(), 200);
        assert_eq!(a.hits(), 0, "the pin passes over the preferred relay");
        let sent = b.received()[0].json();
        assert_eq!(sent["model"], "b-model", "overridden, then mapped: {sent}");
        assert_eq!(sent["reasoning"]["effort"], "xhigh");
        assert_eq!(sent["reasoning"]["summary"], "auto", "the rest is kept");
        assert_eq!(sent["service_tier"], "priority");
        assert_eq!(sent["input"], "hi");

        // Another session is not touched.
        assert_eq!(turn(&proxy, "other", codex_turn()).await.status(), 200);
        let plain = a.received()[0].json();
        assert_eq!(plain["model"], "gpt-5.1");
        assert_eq!(plain["reasoning"]["effort"], "medium");
        assert!(plain.get("service_tier").is_none());

        let records = proxy.records.wait_for(2).await;
        let (pinned, _) = records
            .iter()
            .find(|(r, _)| r.session.as_ref().is_some_and(|s| s.value == "pinned"))
            .unwrap();
        assert_eq!(pinned.model_requested.as_deref(), Some("gpt-5.1"));
        assert_eq!(pinned.model_sent.as_deref(), Some("b-model"));
        let decision = serde_json::to_value(pinned.decision.as_ref().unwrap()).unwrap();
        assert_eq!(decision["pinned"], "b");
        assert_eq!(
            decision["overrides"]["changed"],
            json!(["model", "service_tier", "reasoning_effort"])
        );
        let candidates: Vec<&str> = decision["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["upstream"].as_str().unwrap())
            .collect();
        assert_eq!(candidates, ["b.default"], "only the pinned target's");

        // Cleared: the session routes as configured again (its affinity is now b, where it
        // last succeeded; a fresh session goes to a).
        proxy.state.overrides.apply(Change {
            clear: vec!["all".into()],
            ..change("pinned")
        });
        assert_eq!(turn(&proxy, "pinned", codex_turn()).await.status(), 200);
        let again = b.received()[1].json();
        assert_eq!(again["model"], "gpt-5.1", "nothing overridden any more");
    })
    .await;
}

#[tokio::test]
async fn the_default_profile_fills_what_codex_leaves_out_and_an_applied_profile_sets() {
    bounded(async {
        let (a, b) = (MockRelay::start("a").await, MockRelay::start("b").await);
        let profiles = "[codex]\ndefault_profile = \"base\"\n\
             [codex.profiles.base]\nmodel = \"never-used\"\nservice_tier = \"flex\"\nreasoning_effort = \"low\"\n\
             [codex.profiles.deep]\nextends = \"base\"\nmodel = \"gpt-5.5\"\nreasoning_effort = \"xhigh\"\n";
        let proxy = TestProxy::start(&config(&a.base_url(), &b.base_url(), profiles), &[]).await;

        // Codex names its model and effort: kept; it never sends a tier: filled.
        assert_eq!(turn(&proxy, "s1", codex_turn()).await.status(), 200);
        let sent = a.received()[0].json();
        assert_eq!(sent["model"], "gpt-5.1");
        assert_eq!(sent["reasoning"]["effort"], "medium");
        assert_eq!(sent["service_tier"], "flex");
        // A request without an effort gets the profile's.
        let bare = json!({"model": "gpt-5.1", "input": "hi", "reasoning": {"summary": "auto"}});
        assert_eq!(turn(&proxy, "s1", bare).await.status(), 200);
        assert_eq!(a.received()[1].json()["reasoning"]["effort"], "low");

        // Applied to a session, a profile sets (its `extends` resolved).
        proxy.state.overrides.apply_profile("s2", Some("deep".into()));
        assert_eq!(turn(&proxy, "s2", codex_turn()).await.status(), 200);
        let deep = a.received()[2].json();
        assert_eq!(deep["model"], "gpt-5.5");
        assert_eq!(deep["reasoning"]["effort"], "xhigh");
        assert_eq!(deep["service_tier"], "flex", "from the profile it extends");

        let records = proxy.records.wait_for(3).await;
        let notes: Vec<Value> = records
            .iter()
            .map(|(r, _)| serde_json::to_value(r.decision.as_ref().unwrap()).unwrap()["overrides"].clone())
            .collect();
        assert!(notes.contains(&json!({"profile": "base", "changed": ["service_tier"]})), "{notes:?}");
        assert!(
            notes.contains(&json!({"profile": "deep", "changed": ["model", "service_tier", "reasoning_effort"]})),
            "{notes:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_body_past_a_mebibyte_is_patched_too_and_kept_whole() {
    bounded(async {
        let (a, b) = (MockRelay::start("a").await, MockRelay::start("b").await);
        let proxy = TestProxy::start(&config(&a.base_url(), &b.base_url(), ""), &[]).await;
        proxy.state.overrides.apply(Change {
            reasoning_effort: Some("high".into()),
            ..change("big")
        });
        let history = "x".repeat(3 << 19);
        let body = json!({"model": "gpt-5.1", "input": history, "reasoning": {"effort": "low"}});
        assert_eq!(turn(&proxy, "big", body).await.status(), 200);
        let sent = a.received()[0].json();
        assert_eq!(sent["reasoning"]["effort"], "high");
        assert_eq!(sent["input"].as_str().map(str::len), Some(3 << 19));
    })
    .await;
}

#[tokio::test]
async fn a_pin_to_a_relay_no_longer_configured_pins_nothing() {
    bounded(async {
        let (a, b) = (MockRelay::start("a").await, MockRelay::start("b").await);
        let proxy = TestProxy::start(&config(&a.base_url(), &b.base_url(), ""), &[]).await;
        proxy.state.overrides.apply(Change {
            route_target: Some("gone.default".into()),
            ..change("s")
        });
        assert_eq!(turn(&proxy, "s", codex_turn()).await.status(), 200);
        assert_eq!((a.hits(), b.hits()), (1, 0), "routed as configured");
        // A pin to one endpoint by its full key works like the provider's.
        proxy.state.overrides.apply(Change {
            route_target: Some("b.default".into()),
            ..change("s")
        });
        assert_eq!(turn(&proxy, "s", codex_turn()).await.status(), 200);
        assert_eq!((a.hits(), b.hits()), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn a_session_pinned_to_a_draining_endpoint_is_still_served_there() {
    bounded(async {
        let (a, b) = (MockRelay::start("a").await, MockRelay::start("b").await);
        let proxy = TestProxy::start(&config(&a.base_url(), &b.base_url(), ""), &[]).await;
        proxy
            .state
            .routing
            .set_draining("b.default", Some(("emptying b".into(), None)));
        proxy.state.overrides.apply(Change {
            route_target: Some("b.default".into()),
            ..change("pinned")
        });
        // A pin to the endpoint itself is the operator's own choice: draining keeps new
        // sessions away, not it.
        assert_eq!(turn(&proxy, "pinned", codex_turn()).await.status(), 200);
        assert_eq!((a.hits(), b.hits()), (0, 1));
        assert_eq!(turn(&proxy, "other", codex_turn()).await.status(), 200);
        assert_eq!(
            (a.hits(), b.hits()),
            (1, 1),
            "a new session skips the draining relay"
        );
    })
    .await;
}

#[tokio::test]
async fn a_websocket_connection_is_pinned_and_each_response_create_is_patched() {
    bounded(async {
        let (a, b) = (
            WsRelay::start("a", Behaviour::Answer).await,
            WsRelay::start("b", Behaviour::Answer).await,
        );
        let proxy = TestProxy::start(&config(&a.base_url(), &b.base_url(), ""), &[]).await;
        proxy.state.overrides.apply(Change {
            model: Some("gpt-5.5".into()),
            reasoning_effort: Some("high".into()),
            route_target: Some("b".into()),
            ..change("thread-ws")
        });

        let url = proxy.url("/v1/responses").replace("http://", "ws://");
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("session-id", "thread-ws".parse().unwrap());
        let stream = tokio::net::TcpStream::connect(proxy.server.as_ref().unwrap().addr)
            .await
            .unwrap();
        let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .unwrap();
        assert_eq!(response.status(), 101);
        let create = json!({"type": "response.create", "model": "gpt-5.1", "stream": true,
                            "reasoning": {"effort": "low"}, "input": []});
        let mut turn = async || {
            socket
                .send(Message::text(create.to_string()))
                .await
                .unwrap();
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message
                    && text.as_str().contains("response.completed")
                {
                    break;
                }
            }
        };
        turn().await;
        // Changed while the connection is open: the next response.create gets the change.
        proxy.state.overrides.apply(Change {
            clear: vec!["model".into(), "reasoning_effort".into()],
            ..change("thread-ws")
        });
        turn().await;
        socket.close(None).await.unwrap();

        assert!(a.frames().is_empty(), "pinned to b");
        let frame = &b.frames()[0];
        assert_eq!(frame["type"], "response.create");
        assert_eq!(frame["model"], "b-model", "overridden, then mapped");
        assert_eq!(frame["reasoning"]["effort"], "high");
        let records = proxy.records.wait_for(1).await;
        assert_eq!(
            records[0].0.model_requested.as_deref(),
            Some("gpt-5.1"),
            "as Codex asked"
        );
        assert_eq!(records[0].0.model_sent.as_deref(), Some("b-model"));
        let note = records[0].0.decision.as_ref().unwrap().overrides.as_ref();
        assert_eq!(
            note.map(|n| n.changed.clone()),
            Some(vec!["model", "reasoning_effort"]),
            "the record says what the overrides changed"
        );
        let second = &b.frames()[1];
        assert_eq!(
            second["model"], "gpt-5.1",
            "the override cleared mid-connection"
        );
        assert_eq!(second["reasoning"]["effort"], "low");
    })
    .await;
}

#[tokio::test]
async fn a_pin_to_a_provider_leaves_its_draining_endpoint_to_its_other_one() {
    bounded(async {
        let (main, spare) = (
            MockRelay::start("main").await,
            MockRelay::start("spare").await,
        );
        let config = format!(
            "[codex.providers.b]\n\
             [codex.providers.b.endpoints.main]\nbase_url = \"{}\"\npriority = 0\n\
             [codex.providers.b.endpoints.spare]\nbase_url = \"{}\"\npriority = 1\n",
            main.base_url(),
            spare.base_url()
        );
        let proxy = TestProxy::start(&config, &[]).await;
        proxy
            .state
            .routing
            .set_draining("b.main", Some(("emptying".into(), None)));
        proxy.state.overrides.apply(Change {
            route_target: Some("b".into()),
            ..change("s")
        });
        assert_eq!(turn(&proxy, "s", codex_turn()).await.status(), 200);
        assert_eq!((main.hits(), spare.hits()), (0, 1));
    })
    .await;
}
