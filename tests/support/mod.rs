//! Shared test support: the mock relay and an in-process proxy harness.

#![allow(dead_code)]

pub mod capable_relay;
pub mod cli;
pub mod codex_cli;
pub mod mock_relay;
pub mod outbound;
pub mod raw_ws;
pub mod tap;
pub mod team;
pub mod team_services;
pub mod ws_relay;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_helper::config::load;
use codex_helper::proxy::{
    self, Outcome, Plan, ProxyState, RecordSink, RequestRecord, ServerHandle,
};
use codex_helper::routing::affinity::AffinityStore;
use codex_helper::time::Clock;

/// Every test is bounded: nothing here may hang CI.
pub const TEST_LIMIT: Duration = Duration::from_secs(30);

/// Runs `future` within [`TEST_LIMIT`], or fails the test.
pub async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, future)
        .await
        .expect("test exceeded its time bound")
}

/// An HTTP client that talks to loopback directly (no proxy from the environment).
pub fn client() -> reqwest::Client {
    proxy::install_tls_provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A streaming POST the way Codex sends one.
pub fn sse_post(url: String, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    client()
        .post(url)
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(body)
}

/// Collects finished request records.
#[derive(Default)]
pub struct Records(Mutex<Vec<(RequestRecord, Outcome)>>);

impl RecordSink for Records {
    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome) {
        self.0
            .lock()
            .unwrap()
            .push((RequestRecord::clone(record), outcome));
    }
}

impl Records {
    pub fn all(&self) -> Vec<(RequestRecord, Outcome)> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` records exist; streamed bodies finish their record when the
    /// client has read them to the end.
    pub async fn wait_for(&self, n: usize) -> Vec<(RequestRecord, Outcome)> {
        for _ in 0..200 {
            if self.0.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.all()
    }
}

/// Hands each record to two sinks.
pub struct Tee(pub Arc<Records>, pub Arc<dyn RecordSink>);

impl RecordSink for Tee {
    fn record(&self, record: &Arc<RequestRecord>, outcome: Outcome) {
        self.0.record(record, outcome);
        self.1.record(record, outcome);
    }
}

/// A proxy running in this process on an ephemeral loopback port.
pub struct TestProxy {
    pub server: Option<ServerHandle>,
    pub records: Arc<Records>,
    pub state: Arc<ProxyState>,
    /// Codex as the proxy's client, as `serve` sets it up: tests set its preset.
    pub codex: Arc<codex_helper::codex::client::CodexClient>,
}

impl TestProxy {
    /// Starts a proxy from config text (the `version = 5` line is added) and environment.
    pub async fn start(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_sink(config, env, None).await
    }

    /// Like [`TestProxy::start`], also handing every record to `extra` (e.g. a ledger).
    pub async fn start_with_sink(
        config: &str,
        env: &[(&str, &str)],
        extra: Option<Arc<dyn RecordSink>>,
    ) -> Self {
        Self::launch(config, env, extra, Clock::real()).await
    }

    /// Like [`TestProxy::start`], on `clock` (a [`Clock::manual`] the test advances, so
    /// cooldowns pass without waiting).
    pub async fn start_with_clock(config: &str, env: &[(&str, &str)], clock: Clock) -> Self {
        Self::launch(config, env, None, clock).await
    }

    /// The general form: an extra sink and a clock.
    pub async fn launch(
        config: &str,
        env: &[(&str, &str)],
        extra: Option<Arc<dyn RecordSink>>,
        clock: Clock,
    ) -> Self {
        proxy::install_tls_provider();
        let path = Path::new("/test/config.toml");
        let loaded =
            load::parse(path, &format!("version = 5\n{config}")).expect("valid test config");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| env.get(name).cloned();
        let plan = Plan::from_config(&loaded, &lookup).expect("valid route plan");
        let settings = loaded.config.proxy.clone();
        let records = Arc::new(Records::default());
        let sink: Arc<dyn RecordSink> = match extra {
            Some(extra) => Arc::new(Tee(records.clone(), extra)),
            None => records.clone(),
        };
        let codex = Arc::new(codex_helper::codex::client::CodexClient::new(
            settings.codex_binary.clone().into(),
            std::env::temp_dir().join("codex-helper-catalog"),
        ));
        let state = Arc::new(
            ProxyState::new(
                plan,
                AffinityStore::in_memory(),
                settings,
                path.to_path_buf(),
                sink,
            )
            .unwrap()
            .with_clock(clock)
            .with_client(codex.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = proxy::serve(listener, state.clone()).unwrap();
        Self {
            server: Some(server),
            records,
            state,
            codex,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.as_ref().unwrap().addr)
    }
}

/// A config with one provider per relay, tried in the order given.
pub fn providers(relays: &[(&str, &str)]) -> String {
    providers_with_routing(relays, "")
}

/// Like [`providers`], with extra `[codex.routing]` keys (e.g. `affinity_policy = "hard"`).
pub fn providers_with_routing(relays: &[(&str, &str)], routing_keys: &str) -> String {
    let mut text = String::new();
    for (id, base_url) in relays {
        text.push_str(&format!(
            "[codex.providers.{id}]\nbase_url = \"{base_url}\"\n"
        ));
    }
    let order: Vec<String> = relays.iter().map(|(id, _)| format!("\"{id}\"")).collect();
    text.push_str(&format!(
        "[codex.routing]\nentry = \"main\"\n{routing_keys}\n[codex.routing.routes.main]\nchildren = [{}]\n",
        order.join(", ")
    ));
    text
}

/// A Codex-like `/responses` body of about `size` bytes.
pub fn codex_body(model: &str, session: &str, size: usize) -> String {
    let filler = "x".repeat(size.saturating_sub(400));
    serde_json::json!({
        "model": model,
        "stream": true,
        "input": [{"type":"message","role":"user","content":[{"type":"input_text","text":filler}]}],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "reasoning": {"effort":"medium","summary":"auto"},
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": session,
    })
    .to_string()
}

/// One streamed turn through the proxy at `url` in `session`: the name of the mock relay that
/// answered (`hi from NAME`), else the whole answer.
pub async fn turn(url: &str, session: &str) -> String {
    let text = client()
        .post(format!("{url}/v1/responses"))
        .header("accept", "text/event-stream")
        .header("session-id", session)
        .body(codex_body("gpt-5.1", session, 500))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.split("hi from ")
        .nth(1)
        .and_then(|rest| rest.split(['"', ' ']).next())
        .unwrap_or(&text)
        .to_string()
}
