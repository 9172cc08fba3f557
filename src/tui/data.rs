//! What the terminal UI shows, as read from the running helper's admin API, and the fetcher
//! that reads it: a thread of its own with its own runtime, polling every second and sending
//! each result over a channel, so the UI thread never waits on the network. Slow actions
//! (a balance refresh, the relay probe, a session override) run as tasks beside the polling,
//! not in its way. Sessions are read at most every [`SESSIONS_EVERY`] (the helper reads the
//! ledger for them), and at once after a session action; profiles at start and after a reload.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

pub use super::overrides::{Effort, Overrides, Profile, Profiles, Session, SessionChange};
use crate::admin::client;
use crate::balance::report::EndpointBalance;

/// How often the fetcher reads everything.
pub const POLL: Duration = Duration::from_secs(1);
/// Recent requests read for the Requests page and the dashboard's percentiles.
pub const RECENT_LIMIT: usize = 200;
/// The least time between two polls of `GET /sessions`.
pub const SESSIONS_EVERY: Duration = Duration::from_secs(2);
/// Sessions read for the Sessions page.
pub const SESSIONS_LIMIT: usize = 200;

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
    /// The ledger's row id: the row's identity when the list moves.
    pub id: i64,
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
    /// The sessions as last read; `None` until a read succeeded.
    pub sessions: Option<Vec<Session>>,
    /// Why the last read of the sessions failed (also in `errors`).
    pub sessions_error: Option<String>,
    /// The profiles as last read; `None` until a read succeeded.
    pub profiles: Option<Profiles>,
    /// Why the last read of the profiles failed (shown when a profile is asked for, not on
    /// the status line: a helper without profiles is not broken).
    pub profiles_error: Option<String>,
    /// When this was read (ms since the epoch): "how long ago" is counted from here.
    pub at_ms: u64,
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
    /// Change one session's overrides.
    Session {
        session: String,
        change: SessionChange,
    },
    /// Pin the entry route node to `provider` in the config file (`POST /routing/persisted`):
    /// unlike a session pin it outlives the helper, which reloads the edited file.
    PinInConfig {
        provider: String,
    },
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
    // A finished action comes back here, so what it changed is read at once.
    let (finished, mut finished_rx) = tokio::sync::mpsc::unbounded_channel::<Action>();
    let mut schedule = Schedule::default();
    let mut cache = Cache::default();
    loop {
        tokio::select! {
            at = tick.tick() => {
                // The tick's own instant: ticks a second apart count as a second apart.
                let (sessions, profiles) = schedule.take(at.into_std());
                let mut snapshot = fetch(admin, query).await;
                cache.read(admin, sessions, profiles).await;
                schedule.profiles_failed(cache.profiles_error.is_some());
                cache.fill(&mut snapshot);
                if updates.send(Update::Data(Box::new(snapshot))).is_err() {
                    return;
                }
            }
            Some(action) = finished_rx.recv() => {
                schedule.after(&action);
                tick.reset_immediately();
            }
            command = inbox.recv() => match command {
                None => return,
                Some(Command::Query(asked)) => {
                    query = asked;
                    tick.reset_immediately();
                }
                Some(Command::Act(action)) => {
                    let updates = updates.clone();
                    let finished = finished.clone();
                    tokio::spawn(async move {
                        let result = act(admin, &action).await.map_err(|e| format!("{e:#}"));
                        let _ = updates.send(Update::Done(action.clone(), result));
                        let _ = finished.send(action);
                    });
                }
            }
        }
    }
}

/// Which slower routes a poll reads besides the fixed ones: the sessions at most every
/// [`SESSIONS_EVERY`] (and at once after a session action), the profiles at start, after a
/// reload, and again with the sessions while they could not be read.
#[derive(Debug, Clone)]
pub struct Schedule {
    sessions_last: Option<Instant>,
    sessions_now: bool,
    profiles_now: bool,
    profiles_retry: bool,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            sessions_last: None,
            sessions_now: true,
            profiles_now: true,
            profiles_retry: false,
        }
    }
}

impl Schedule {
    /// `(sessions, profiles)`: what the poll at `now` reads; counts them as read.
    pub fn take(&mut self, now: Instant) -> (bool, bool) {
        let sessions = self.sessions_now
            || self
                .sessions_last
                .is_none_or(|last| now.saturating_duration_since(last) >= SESSIONS_EVERY);
        if sessions {
            self.sessions_last = Some(now);
            self.sessions_now = false;
        }
        let profiles = self.profiles_now || (self.profiles_retry && sessions);
        self.profiles_now = false;
        (sessions, profiles)
    }

    /// What a finished action asks to be read again.
    pub fn after(&mut self, action: &Action) {
        match action {
            Action::Session { .. } => self.sessions_now = true,
            Action::Reload => {
                self.sessions_now = true;
                self.profiles_now = true;
            }
            _ => {}
        }
    }

    /// Whether the last read of the profiles failed (it is tried again with the sessions).
    pub fn profiles_failed(&mut self, failed: bool) {
        self.profiles_retry = failed;
    }
}

/// The sessions and profiles as last read, put into every snapshot between reads.
#[derive(Debug, Default)]
struct Cache {
    sessions: Option<Vec<Session>>,
    sessions_error: Option<String>,
    profiles: Option<Profiles>,
    profiles_error: Option<String>,
}

impl Cache {
    async fn read(&mut self, admin: SocketAddr, sessions: bool, profiles: bool) {
        let (read_sessions, read_profiles) = tokio::join!(
            async {
                match sessions {
                    true => Some(fetch_sessions(admin).await),
                    false => None,
                }
            },
            async {
                match profiles {
                    true => Some(fetch_profiles(admin).await),
                    false => None,
                }
            },
        );
        match read_sessions {
            Some(Ok(read)) => {
                self.sessions = Some(read);
                self.sessions_error = None;
            }
            Some(Err(e)) => self.sessions_error = Some(format!("{e:#}")),
            None => {}
        }
        match read_profiles {
            Some(Ok(read)) => {
                self.profiles = Some(read);
                self.profiles_error = None;
            }
            Some(Err(e)) => self.profiles_error = Some(format!("{e:#}")),
            None => {}
        }
    }

    fn fill(&self, snapshot: &mut Snapshot) {
        snapshot.sessions = self.sessions.clone();
        snapshot.sessions_error = self.sessions_error.clone();
        if let Some(error) = &self.sessions_error {
            if !snapshot.errors.contains(error) {
                snapshot.errors.push(error.clone());
            }
        }
        snapshot.profiles = self.profiles.clone();
        snapshot.profiles_error = self.profiles_error.clone();
    }
}

/// `GET /sessions`, the newest first.
pub async fn fetch_sessions(admin: SocketAddr) -> anyhow::Result<Vec<Session>> {
    #[derive(Deserialize)]
    struct Sessions {
        sessions: Vec<Session>,
    }
    let limit = SESSIONS_LIMIT.to_string();
    let answer: Sessions =
        client::get_with(admin, "/sessions", &[("limit", limit.as_str())]).await?;
    Ok(answer.sessions)
}

/// `GET /profiles`.
pub async fn fetch_profiles(admin: SocketAddr) -> anyhow::Result<Profiles> {
    client::get_with(admin, "/profiles", &[]).await
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
        at_ms: crate::time::now_ms(),
        errors: failed,
        ..Snapshot::default()
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
        Action::Session { session, change } => {
            let (route, body) = change.request(session);
            client::post(admin, route, &body).await?;
            Ok(Vec::new())
        }
        Action::PinInConfig { provider } => {
            let body = json!({"pin": provider});
            let answer = client::post(admin, "/routing/persisted", &body).await?;
            Ok(vec![pinned(&answer, provider)])
        }
    }
}

/// The line `POST /routing/persisted`'s answer gives the status bar: which node now goes
/// where, and in which file (the user may have several configs).
pub fn pinned(answer: &Value, provider: &str) -> String {
    format!(
        "{} → {provider} ({})",
        answer["entry"].as_str().unwrap_or("?"),
        answer["config_path"].as_str().unwrap_or("?")
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_read_at_most_every_two_seconds_and_at_once_after_an_action() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut schedule = Schedule::default();
        assert_eq!(schedule.take(at(0)), (true, true), "both at start");
        assert_eq!(schedule.take(at(1000)), (false, false));
        assert_eq!(schedule.take(at(2000)), (true, false));
        assert_eq!(schedule.take(at(3000)), (false, false));
        // A session action: read again at the next poll, whatever the time.
        schedule.after(&Action::Session {
            session: "s".into(),
            change: SessionChange::ClearPin,
        });
        assert_eq!(schedule.take(at(3100)), (true, false));
        assert_eq!(schedule.take(at(4000)), (false, false));
        // A reload: the profiles too.
        schedule.after(&Action::Reload);
        assert_eq!(schedule.take(at(4100)), (true, true));
        // Profiles that failed are tried again with the sessions, not every poll.
        schedule.profiles_failed(true);
        assert_eq!(schedule.take(at(5000)), (false, false));
        assert_eq!(schedule.take(at(6100)), (true, true));
        schedule.profiles_failed(false);
        assert_eq!(schedule.take(at(8100)), (true, false));
        // Other actions change nothing here.
        schedule.after(&Action::RefreshBalances);
        assert_eq!(schedule.take(at(8200)), (false, false));
    }
}
