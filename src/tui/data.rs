//! What the terminal UI shows, as read from the running helper's admin API, and the fetcher
//! that reads it: a thread of its own with its own runtime, polling every second and sending
//! each result over a channel, so the UI thread never waits on the network. Slow actions
//! (a balance refresh, the relay probe) run as tasks beside the polling, not in its way.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::client;
use crate::balance::report::EndpointBalance;

/// How often the fetcher reads everything.
pub const POLL: Duration = Duration::from_secs(1);
/// Recent requests read for the Requests page and the dashboard's percentiles.
pub const RECENT_LIMIT: usize = 200;

/// `GET /runtime/status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Runtime {
    pub version: String,
    pub pid: u32,
    pub uptime_ms: u64,
    pub proxy: String,
    pub config_path: String,
    pub preset: Option<String>,
}

/// One endpoint of `GET /providers`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    pub provider: String,
    pub endpoint: String,
    pub key: String,
    pub host: String,
    pub routable: bool,
    pub skip: Option<SkipWhy>,
}

/// Why routing passes an endpoint over.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SkipWhy {
    pub why: String,
}

/// One row of `GET /request-ledger/recent` (the fields shown).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Request {
    pub started_local: String,
    pub provider: Option<String>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
    pub status: Option<u16>,
    pub outcome: String,
    pub total_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    pub ttfb_ms: Option<f64>,
    pub duration_ms: f64,
}

impl Request {
    /// The ledger's notion of a failed request: an error status, or an outcome other than a
    /// completion (a client that hung up is not the relay's failure).
    pub fn failed(&self) -> bool {
        self.status.is_some_and(|s| s >= 400)
            || !matches!(self.outcome.as_str(), "completed" | "client_disconnected")
    }
}

/// One row of `GET /request-ledger/summary`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SummaryRow {
    pub key: String,
    pub requests: u64,
    pub errors: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
}

/// `GET /request-ledger/summary?by=provider`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub rows: Vec<SummaryRow>,
    pub total: SummaryRow,
}

/// The summary window `d` cycles through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    H1,
    #[default]
    H24,
    D7,
    D30,
}

impl Window {
    /// The `since` parameter, also how the window is shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::H1 => "1h",
            Window::H24 => "24h",
            Window::D7 => "7d",
            Window::D30 => "30d",
        }
    }

    pub fn next(self) -> Window {
        match self {
            Window::H1 => Window::H24,
            Window::H24 => Window::D7,
            Window::D7 => Window::D30,
            Window::D30 => Window::H1,
        }
    }
}

/// What the polls read, besides the fixed routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Query {
    pub window: Window,
    /// Also read the newest failed requests.
    pub errors_only: bool,
}

/// Everything one poll read. A route that failed leaves its part empty and its error in
/// `errors`; the rest is still shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub runtime: Option<Runtime>,
    pub endpoints: Vec<Endpoint>,
    /// The endpoint a request would go to now (`/routing/explain`).
    pub chosen: Option<String>,
    pub recent: Vec<Request>,
    /// The newest failed requests, when asked for.
    pub recent_errors: Vec<Request>,
    pub summary: Option<Summary>,
    /// The window `summary` covers.
    pub window: Window,
    pub balances: Vec<EndpointBalance>,
    pub errors: Vec<String>,
}

/// Something the user asked the helper to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reload,
    /// Switch one endpoint on, or off for 30 minutes.
    Switch {
        provider: String,
        endpoint: String,
        enabled: bool,
    },
    RefreshBalances,
    RelayCapabilities,
}

/// What the fetcher sends the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Data(Box<Snapshot>),
    /// An action finished: `Ok` with lines to show (the probe's verdicts), or the error.
    Done(Action, Result<Vec<String>, String>),
}

/// What the UI sends the fetcher.
#[derive(Debug)]
pub enum Command {
    Query(Query),
    Act(Action),
}

/// The running fetcher; dropping it stops it (its thread ends after the call in flight, which
/// is bounded by the client's timeouts).
pub struct Fetcher {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
}

impl Fetcher {
    /// Starts polling `admin` on a thread of its own; results arrive on the receiver.
    pub fn start(
        admin: SocketAddr,
        query: Query,
    ) -> anyhow::Result<(Fetcher, mpsc::Receiver<Update>)> {
        let (commands, inbox) = tokio::sync::mpsc::unbounded_channel();
        let (updates, receiver) = mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("tui-fetcher".into())
            .spawn(move || runtime.block_on(poll(admin, query, inbox, updates)))?;
        Ok((Fetcher { commands }, receiver))
    }

    /// Sends a command; a fetcher that stopped is ignored (the UI is closing).
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

async fn poll(
    admin: SocketAddr,
    mut query: Query,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Command>,
    updates: mpsc::Sender<Update>,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let snapshot = fetch(admin, query).await;
                if updates.send(Update::Data(Box::new(snapshot))).is_err() {
                    return;
                }
            }
            command = inbox.recv() => match command {
                None => return,
                Some(Command::Query(asked)) => {
                    query = asked;
                    tick.reset_immediately();
                }
                Some(Command::Act(action)) => {
                    let updates = updates.clone();
                    tokio::spawn(async move {
                        let result = act(admin, &action).await.map_err(|e| format!("{e:#}"));
                        let _ = updates.send(Update::Done(action, result));
                    });
                    // Show the action's effect without waiting for the next tick.
                    tick.reset_immediately();
                }
            }
        }
    }
}

/// Reads every route once, all at the same time.
pub async fn fetch(admin: SocketAddr, query: Query) -> Snapshot {
    #[derive(Deserialize)]
    struct Providers {
        providers: Vec<Endpoint>,
    }
    #[derive(Deserialize)]
    struct Recent {
        requests: Vec<Request>,
    }
    #[derive(Deserialize)]
    struct Explained {
        chosen: Option<String>,
    }
    let limit = RECENT_LIMIT.to_string();
    let recent_query = [("limit", limit.as_str())];
    let summary_query = [("since", query.window.as_str()), ("by", "provider")];
    let (runtime, providers, chosen, recent, errors, summary, balances) = tokio::join!(
        client::get_with::<Runtime>(admin, "/runtime/status", &[]),
        client::get_with::<Providers>(admin, "/providers", &[]),
        client::get_with::<Explained>(admin, "/routing/explain", &[]),
        client::get_with::<Recent>(admin, "/request-ledger/recent", &recent_query),
        async {
            if query.errors_only {
                let asked = [("limit", limit.as_str()), ("errors", "true")];
                Some(client::get_with::<Recent>(admin, "/request-ledger/recent", &asked).await)
            } else {
                None
            }
        },
        client::get_with::<Summary>(admin, "/request-ledger/summary", &summary_query),
        client::balances(admin),
    );
    let mut failed = Vec::new();
    let runtime = keep(&mut failed, runtime);
    let endpoints = keep(&mut failed, providers)
        .map(|p| p.providers)
        .unwrap_or_default();
    let chosen = keep(&mut failed, chosen).and_then(|e| e.chosen);
    let recent = keep(&mut failed, recent)
        .map(|r| r.requests)
        .unwrap_or_default();
    let recent_errors = errors
        .and_then(|r| keep(&mut failed, r))
        .map(|r| r.requests)
        .unwrap_or_default();
    let summary = keep(&mut failed, summary);
    let balances = keep(&mut failed, balances).unwrap_or_default();
    Snapshot {
        runtime,
        endpoints,
        chosen,
        recent,
        recent_errors,
        summary,
        window: query.window,
        balances,
        errors: failed,
    }
}

/// The value, or `None` with its error noted.
fn keep<T>(failed: &mut Vec<String>, result: anyhow::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            let text = format!("{e:#}");
            if !failed.contains(&text) {
                failed.push(text);
            }
            None
        }
    }
}

/// Carries out one action through the admin API.
async fn act(admin: SocketAddr, action: &Action) -> anyhow::Result<Vec<String>> {
    match action {
        Action::Reload => {
            let answer = client::post(admin, "/runtime/reload", &json!({})).await?;
            if answer["reloaded"] == false {
                anyhow::bail!("{}", answer["message"].as_str().unwrap_or("reload failed"));
            }
            Ok(Vec::new())
        }
        Action::Switch {
            provider,
            endpoint,
            enabled,
        } => {
            let mut body =
                json!({"provider_id": provider, "endpoint_id": endpoint, "enabled": enabled});
            if !enabled {
                body["minutes"] = json!(30);
                body["reason"] = json!("switched off in the terminal UI");
            }
            client::post(admin, "/providers/runtime", &body).await?;
            Ok(Vec::new())
        }
        Action::RefreshBalances => {
            client::refresh(admin, None).await?;
            Ok(Vec::new())
        }
        Action::RelayCapabilities => {
            let answer = client::post(admin, "/codex/relay-capabilities", &json!({})).await?;
            Ok(verdicts(&answer))
        }
    }
}

/// One line per endpoint from the relay probe's answer: `key: verdict`.
pub fn verdicts(answer: &Value) -> Vec<String> {
    answer["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|report| {
            format!(
                "{}: {}",
                report["endpoint"].as_str().unwrap_or("?"),
                report["summary"].as_str().unwrap_or("?")
            )
        })
        .collect()
}
