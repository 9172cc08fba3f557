//! The balance service: one thread that looks relays' balances up, keeps the latest snapshot
//! of each endpoint (in memory and in `balances.sqlite3`) and tells routing which endpoints
//! are out of balance.
//!
//! It never runs on a proxy event loop, and a proxied request never waits for it: requests
//! only queue endpoint names ([`Asker`]), which [`Schedule`] turns into at most one lookup per
//! endpoint per window. Lookups run concurrently (a few at a time) while the service keeps
//! taking commands; every change of state (schedule, snapshots, store, routing) is made by
//! its one loop when a batch of lookups ends. Two short locks are shared: the view (what the
//! handle reads) and the asks pending (what the [`Asker`] need not send again); neither is
//! held while taking the other, nor across an `.await`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::discover;
use super::effect::{self, Effect};
use super::lookup::{self, LookupContext, LookupOutcome};
use super::parse::Kind;
use super::providers::{self, UsageProvider, UsageProviders};
use super::report::{EndpointBalance, RefreshReport};
use super::schedule::{Asked, Looked, Rules, Schedule};
use super::snapshot::{Reading, Snapshot};
use super::store;
use super::team_share;
use crate::config::model::BalanceSettings;
use crate::config::{Homes, LoadedConfig};
use crate::proxy::ProxyState;
use crate::routing::Upstream;
use crate::time::now_ms;

/// Lookups in flight at once.
const CONCURRENCY: usize = 6;
/// A snapshot is stale after three of its adapter's poll intervals.
const STALE_AFTER_INTERVALS: u64 = 3;
/// The poll floor of auto-discovered adapters (configured ones have their own).
const AUTO_FLOOR: Duration = Duration::from_secs(providers::DEFAULT_POLL_SECS);
/// While lookups are queued the loop looks at the clock at least this often (a test's
/// manual clock moves without waking it).
const QUEUE_TICK: Duration = Duration::from_secs(1);
/// A snapshot's `source`: this and the adapter kind.
const SOURCE_PREFIX: &str = "usage_provider:";
/// Commands queued at most; asks beyond it are dropped (another request will ask again).
const INBOX: usize = 1024;

/// What the service is told.
enum Command {
    /// A request's reason to look at `endpoint` (see [`super::trigger`]).
    Ask(String),
    Refresh {
        provider: Option<String>,
        reply: oneshot::Sender<RefreshReport>,
    },
}

/// Queues requests' asks; cheap and never blocking, for the proxy's event loops. An endpoint
/// already asked for is not sent again until the service has looked it up, so a busy proxy
/// does not wake the service once per request.
#[derive(Clone)]
pub struct Asker {
    tx: mpsc::Sender<Command>,
    pending: Pending,
}

/// Endpoints asked for and not yet looked up.
type Pending = Arc<Mutex<HashSet<String>>>;

impl Asker {
    pub fn ask(&self, endpoint: &str) {
        let mut pending = self.pending.lock().expect("balance asks lock");
        if pending.contains(endpoint) {
            return;
        }
        if self.tx.try_send(Command::Ask(endpoint.to_string())).is_ok() {
            pending.insert(endpoint.to_string());
        }
    }
}

/// The service's end of the channel, until it starts.
pub struct Inbox {
    tx: mpsc::Sender<Command>,
    rx: mpsc::Receiver<Command>,
    pending: Pending,
}

/// The channel requests ask through: made before the proxy (whose record sink asks), handed
/// to [`BalanceService::start`] once the proxy exists.
pub fn channel() -> (Asker, Inbox) {
    let (tx, rx) = mpsc::channel(INBOX);
    let pending = Pending::default();
    let asker = Asker {
        tx: tx.clone(),
        pending: pending.clone(),
    };
    (asker, Inbox { tx, rx, pending })
}

/// An environment lookup the service's thread can own.
pub type SharedEnv = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where the service reads and keeps things.
pub struct ServiceConfig {
    pub settings: BalanceSettings,
    /// `usage_providers.json`.
    pub providers_file: PathBuf,
    /// `balances.sqlite3`; `None` keeps snapshots in memory only.
    pub store: Option<PathBuf>,
    /// The environment for `token_env` and `{{env:…}}`.
    pub env: SharedEnv,
}

/// The running service: stop it before the proxy state is dropped.
pub struct BalanceService {
    /// Not a command: a full inbox must not hold a stop back.
    stop: Arc<tokio::sync::Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Asks the running service for balances and refreshes; cheap to clone.
#[derive(Clone)]
pub struct BalanceHandle {
    tx: mpsc::Sender<Command>,
    view: Arc<View>,
}

/// What the handle reads without asking the service's loop.
struct View {
    state: Arc<ProxyState>,
    known: Mutex<Known>,
}

/// The latest snapshot of each endpoint, and what routing was told.
#[derive(Default)]
struct Known {
    snapshots: HashMap<String, Snapshot>,
    /// Until when (epoch ms) each endpoint is out of routing for its balance, as put on
    /// routing: a later failed lookup leaves it, so it is not the latest snapshot's to say.
    out_until: HashMap<String, u64>,
}

impl View {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().expect("balance view lock")
    }
}

impl BalanceService {
    /// Starts the service on a thread of its own. Kept snapshots are loaded and their
    /// exhaustion put on routing before this returns; the start-up refresh (when configured)
    /// runs in the background.
    pub fn start(
        state: Arc<ProxyState>,
        inbox: Inbox,
        config: ServiceConfig,
    ) -> anyhow::Result<(BalanceService, BalanceHandle)> {
        // Without its store the service still works, in memory.
        let store = config.store.as_ref().and_then(|path| {
            store::open(path)
                .inspect_err(|e| tracing::warn!("{e:#}; balances are kept in memory only"))
                .ok()
        });
        let view = Arc::new(View {
            state: state.clone(),
            known: Mutex::default(),
        });
        let mut engine = Engine {
            rules: Rules::new(&config.settings),
            schedule: Schedule::default(),
            discovered: HashMap::new(),
            waiting: HashMap::new(),
            adapters: UsageProviders::default(),
            providers_error: None,
            pending: inbox.pending.clone(),
            view: view.clone(),
            store,
            config,
        };
        engine.restore();
        engine.reload_adapters(); // A broken `usage_providers.json` is reported at start-up.
        let Inbox { tx, rx, .. } = inbox;
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the balance service's event loop")?;
        let thread = std::thread::Builder::new()
            .name("balance".into())
            .spawn(move || runtime.block_on(engine.run(rx, stopped)))
            .context("cannot start the balance service's thread")?;
        let handle = BalanceHandle { tx, view };
        let service = BalanceService {
            stop,
            thread: Some(thread),
        };
        Ok((service, handle))
    }

    /// Stops the service; lookups in flight are abandoned (their snapshots are not kept).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BalanceService {
    fn drop(&mut self) {
        self.halt();
    }
}

impl BalanceHandle {
    /// Looks up every endpoint (of one provider with `provider`) now, whatever the schedule
    /// says, and answers when done. A call identical to one still running shares its result.
    pub async fn refresh(&self, provider: Option<String>) -> anyhow::Result<RefreshReport> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Refresh { provider, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the balance service has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the balance service stopped before the refresh ended"))
    }

    /// The providers of the plan in force (with at least one enabled endpoint), in order.
    pub fn providers(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .view
            .state
            .plan()
            .graph
            .upstreams
            .iter()
            .map(|u| u.provider.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Every configured endpoint's balance as known now.
    pub fn balances(&self) -> Vec<EndpointBalance> {
        let plan = self.view.state.plan();
        balances_of(plan.graph.upstreams.iter(), &self.view.known(), now_ms())
    }
}

/// The balances of `upstreams` at `now_ms`.
fn balances_of<'a>(
    upstreams: impl Iterator<Item = &'a Upstream>,
    known: &Known,
    now_ms: u64,
) -> Vec<EndpointBalance> {
    upstreams
        .map(|u| {
            let key = u.key().as_str();
            EndpointBalance::new(
                &u.provider,
                key,
                known.snapshots.get(key).cloned(),
                known.out_until.get(key).copied(),
                now_ms,
            )
        })
        .collect()
}

/// One endpoint to look up.
struct Job {
    upstream: Upstream,
    /// The configured adapter for its host; `None`: discover one.
    adapter: Option<UsageProvider>,
    /// The kind that answered last time discovery ran for this host.
    remembered: Option<Kind>,
    previous: Option<Snapshot>,
}

/// One lookup's result.
struct Found {
    endpoint: String,
    host: String,
    snapshot: Snapshot,
    terminal: bool,
    missing_token: bool,
    /// The kind discovery settled on.
    discovered: Option<Kind>,
}

/// A batch of lookups and who waits for it: a refresh (its filter) or the schedule (`None`).
type Batch = (Option<Option<String>>, Vec<Found>);

/// The service's state, owned by its loop.
struct Engine {
    config: ServiceConfig,
    rules: Rules,
    schedule: Schedule,
    /// Per host, the adapter kind auto-discovery found.
    discovered: HashMap<String, Kind>,
    /// Refreshes running, by provider filter, and the callers waiting for each (with whether
    /// they joined a refresh already running).
    waiting: HashMap<Option<String>, Vec<(oneshot::Sender<RefreshReport>, bool)>>,
    /// The adapters in force, read again from `usage_providers.json` for every batch.
    adapters: UsageProviders,
    /// The last `usage_providers.json` problem reported (each one is logged once).
    providers_error: Option<String>,
    /// Shared with the [`Asker`]: an endpoint leaves it when a lookup of it ends.
    pending: Pending,
    view: Arc<View>,
    store: Option<rusqlite::Connection>,
}

impl Engine {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, stop: Arc<tokio::sync::Notify>) {
        let mut batches = FuturesUnordered::new();
        if self.config.settings.refresh_on_start {
            // As a refresh of everything: one asked for meanwhile joins it.
            self.waiting.insert(None, Vec::new());
            batches.push(self.start_batch(Some(None), Select::All));
        }
        loop {
            let tick = self.tick();
            tokio::select! {
                () = stop.notified() => return,
                command = rx.recv() => match command {
                    Some(Command::Ask(endpoint)) => self.ask(&endpoint),
                    Some(Command::Refresh { provider, reply }) => {
                        let running = self.waiting.contains_key(&provider);
                        self.waiting.entry(provider.clone()).or_default().push((reply, running));
                        if !running {
                            let select = provider.clone().map_or(Select::All, Select::Provider);
                            batches.push(self.start_batch(Some(provider), select));
                        }
                    }
                    None => return,
                },
                Some((refresh, found)) = batches.next(), if !batches.is_empty() => {
                    self.finish(refresh, found);
                }
                () = sleep(tick), if tick.is_some() => {
                    let due = self.schedule.take_due(self.view.state.clock().now());
                    if !due.is_empty() {
                        batches.push(self.start_batch(None, Select::Endpoints(due)));
                    }
                }
            }
        }
    }

    /// How long until the loop must look at the queue again, if anything is queued.
    fn tick(&self) -> Option<Duration> {
        let due = self.schedule.next_due()?;
        let left = due.saturating_sub(self.view.state.clock().now());
        Some(Duration::from_millis(left).min(QUEUE_TICK))
    }

    /// Puts kept snapshots of configured endpoints back in the view and their exhaustion on
    /// routing, so a restart does not forget a relay that is out of balance.
    fn restore(&mut self) {
        let Some(conn) = &self.store else { return };
        let kept = match store::all(conn) {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!("balance store: {e:#}");
                return;
            }
        };
        let plan = self.view.state.plan();
        let keys: Vec<String> = plan
            .graph
            .upstreams
            .iter()
            .map(|u| u.key().to_string())
            .collect();
        if let Err(e) = store::retain(conn, &keys) {
            tracing::warn!("balance store: {e:#}");
        }
        let now = now_ms();
        let max = self.config.settings.max_exhausted_ms;
        let restored = effect::apply_kept(
            &self.view.state.routing,
            kept,
            |endpoint| plan.graph.upstreams.iter().any(|u| *u.key() == *endpoint),
            now,
            max,
        );
        let clock_now = self.view.state.clock().now();
        let mut known = self.view.known();
        for (endpoint, snapshot, out_until) in restored {
            if let Some(until_ms) = out_until {
                known.out_until.insert(endpoint.clone(), until_ms);
                self.schedule.recheck(&endpoint, clock_now, &self.rules);
            }
            // What discovery found before the restart, so it does not probe every relay again.
            let upstream = plan.graph.upstreams.iter().find(|u| *u.key() == *endpoint);
            if let Some(u) = upstream.filter(|u| snapshot.adapter == u.provider) {
                if let Some(kind) = discovered_kind(&snapshot) {
                    self.discovered.insert(u.base_url.host().to_string(), kind);
                }
            }
            known.snapshots.insert(endpoint, snapshot);
        }
    }

    /// A request asked for `endpoint`'s balance: queue it by the rules.
    fn ask(&mut self, endpoint: &str) {
        let plan = self.view.state.plan();
        let Some(upstream) = plan.graph.upstreams.iter().find(|u| *u.key() == *endpoint) else {
            self.pending
                .lock()
                .expect("balance asks lock")
                .remove(endpoint);
            return;
        };
        let floor = match self.adapters.for_host(upstream.base_url.host()).next() {
            Some(adapter) if !adapter.refresh_on_request => None,
            Some(adapter) => adapter.poll_interval(),
            None => Some(AUTO_FLOOR),
        };
        let now = self.view.state.clock().now();
        let floor_ms = floor.map(|f| f.as_millis() as u64);
        if self.schedule.request(endpoint, now, floor_ms, &self.rules) == Asked::NotWanted {
            // Let later asks through: the adapter (or its file) may change.
            self.pending
                .lock()
                .expect("balance asks lock")
                .remove(endpoint);
        }
    }

    /// Reads the adapters in force: the file's, or the built-in ones when it has a problem
    /// (logged once; the file is never written).
    fn reload_adapters(&mut self) {
        self.adapters = match providers::load(&self.config.providers_file) {
            Ok(providers) => {
                self.providers_error = None;
                providers
            }
            Err(e) => {
                let message = e.to_string();
                if self.providers_error.as_deref() != Some(&message) {
                    tracing::warn!(
                        "{message}; using the built-in balance adapters until it is fixed"
                    );
                    self.providers_error = Some(message);
                }
                providers::built_in()
            }
        };
    }

    /// Starts looking up the `select`ed endpoints. `refresh` names the refresh that waits
    /// for the batch, if one does.
    fn start_batch(&mut self, refresh: Option<Option<String>>, select: Select) -> BatchFuture {
        self.reload_adapters();
        let plan = self.view.state.plan();
        // Endpoints a reload took away are forgotten.
        let configured = |e: &str| plan.graph.upstreams.iter().any(|u| *u.key() == *e);
        self.schedule.retain(configured);
        self.pending
            .lock()
            .expect("balance asks lock")
            .retain(|e| configured(e));
        let providers = &self.adapters;
        let known = self.view.known();
        let jobs: Vec<Job> = plan
            .graph
            .upstreams
            .iter()
            .filter(|u| select.covers(u))
            .map(|u| Job {
                upstream: u.clone(),
                adapter: providers.for_host(u.base_url.host()).next().cloned(),
                remembered: self.discovered.get(u.base_url.host()).copied(),
                previous: known.snapshots.get(u.key().as_str()).cloned(),
            })
            .collect();
        drop(known);
        let state = self.view.state.clone();
        let env = self.config.env.clone();
        let timeout = Duration::from_millis(self.config.settings.timeout_ms);
        Box::pin(async move {
            let found = futures_util::stream::iter(jobs)
                .map(|job| look_up_one(&state, &*env, timeout, job))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            (refresh, found)
        })
    }

    /// Takes a batch's results in: schedule, view, store, routing, then the waiting callers.
    fn finish(&mut self, refresh: Option<Option<String>>, found: Vec<Found>) {
        let now = now_ms();
        let mut report = RefreshReport {
            provider_filter: refresh.clone().flatten(),
            endpoints_matched: found.len(),
            ..RefreshReport::default()
        };
        let mut pending = self.pending.lock().expect("balance asks lock");
        for found in &found {
            pending.remove(&found.endpoint);
        }
        drop(pending);
        for found in &found {
            if found.missing_token {
                report.missing_token += 1;
            } else {
                report.attempted += 1;
                if found.snapshot.error.is_some() {
                    report.failed += 1;
                } else {
                    report.refreshed += 1;
                }
            }
            self.take_in(found, now);
        }
        let Some(filter) = refresh else { return };
        report.balances = {
            let plan = self.view.state.plan();
            let covered = plan
                .graph
                .upstreams
                .iter()
                .filter(|u| found.iter().any(|f| *u.key() == *f.endpoint));
            balances_of(covered, &self.view.known(), now)
        };
        for (reply, joined) in self.waiting.remove(&filter).into_iter().flatten() {
            let _ = reply.send(RefreshReport {
                deduplicated: joined,
                ..report.clone()
            });
        }
    }

    /// One lookup's result: the view, routing, the schedule, discovery, the store. A result
    /// older than the one already known (two batches looked the same endpoint up at once)
    /// changes nothing.
    fn take_in(&mut self, found: &Found, now: u64) {
        let max = self.config.settings.max_exhausted_ms;
        let mut known = self.view.known();
        let newer = known
            .snapshots
            .get(&found.endpoint)
            .is_some_and(|s| s.fetched_at_ms > found.snapshot.fetched_at_ms);
        if newer {
            return;
        }
        known
            .snapshots
            .insert(found.endpoint.clone(), found.snapshot.clone());
        let effect = effect::effect(&found.snapshot, now, max);
        match &effect {
            Effect::Exhaust { until_ms, .. } => {
                known.out_until.insert(found.endpoint.clone(), *until_ms);
            }
            Effect::Clear => {
                known.out_until.remove(&found.endpoint);
            }
            Effect::Leave => {}
        }
        let still_out = known
            .out_until
            .get(&found.endpoint)
            .is_some_and(|until| *until > now);
        drop(known);
        effect::apply(&self.view.state.routing, &found.endpoint, effect, now);
        let looked = Looked {
            terminal: found.terminal,
            routing_exhausted: still_out,
        };
        let clock_now = self.view.state.clock().now();
        self.schedule
            .looked_up(&found.endpoint, clock_now, looked, &self.rules);
        if let Some(kind) = found.discovered {
            self.discovered.insert(found.host.clone(), kind);
        }
        if let Some(conn) = &self.store {
            if let Err(e) = store::save(conn, &found.endpoint, &found.snapshot) {
                tracing::warn!("balance store: {e:#}");
            }
        }
    }
}

/// Which endpoints a batch looks up.
enum Select {
    All,
    Provider(String),
    Endpoints(Vec<String>),
}

impl Select {
    fn covers(&self, upstream: &Upstream) -> bool {
        match self {
            Select::All => true,
            Select::Provider(provider) => upstream.provider == *provider,
            Select::Endpoints(endpoints) => endpoints.iter().any(|e| *upstream.key() == **e),
        }
    }
}

/// Not `Send`: batches run on the service's own single-threaded event loop.
type BatchFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Batch>>>;

/// Looks one endpoint up with its configured adapter, or discovers one.
async fn look_up_one(
    state: &ProxyState,
    env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    timeout: Duration,
    job: Job,
) -> Found {
    let Job {
        upstream,
        adapter,
        remembered,
        previous,
    } = job;
    // Team mode: another instance's poll of this window, when it is not this one's turn.
    let window = adapter
        .as_ref()
        .and_then(UsageProvider::poll_interval)
        .unwrap_or(AUTO_FLOOR);
    let endpoint = upstream.key().as_str();
    if let Some(snapshot) = team_share::polled_elsewhere(state, endpoint, window, timeout).await {
        return Found {
            endpoint: endpoint.to_string(),
            host: upstream.base_url.host().to_string(),
            snapshot,
            terminal: false,
            missing_token: false,
            discovered: None,
        };
    }
    let now = now_ms();
    let redactor = state.plan().redactor.clone();
    let configured = adapter.is_some();
    let (adapter, outcome, discovered) = match state.client_for(&upstream) {
        Err(e) => {
            let error = redactor.redact(&format!("{e:#}")).into_owned();
            let adapter = adapter
                .unwrap_or_else(|| UsageProvider::auto(&upstream.provider, Kind::Sub2apiUsage));
            (adapter, failed(error), None)
        }
        Ok(client) => {
            let ctx = LookupContext {
                client: &client,
                env,
                now_ms: now,
                timeout,
                redactor: &redactor,
            };
            match adapter {
                Some(adapter) => {
                    let outcome = lookup::look_up(&ctx, &adapter, &upstream).await;
                    (adapter, outcome, None)
                }
                None => {
                    let (kind, outcome) = discover::discover(&ctx, &upstream, remembered).await;
                    let adapter =
                        UsageProvider::auto(&upstream.provider, kind.unwrap_or(Kind::Sub2apiUsage));
                    (adapter, outcome, kind)
                }
            }
        }
    };
    let interval = adapter.poll_interval().unwrap_or(AUTO_FLOOR);
    let stale_after = now + STALE_AFTER_INTERVALS * interval.as_millis() as u64;
    let source = if configured || discovered.is_some() {
        format!("{SOURCE_PREFIX}{}", adapter.kind.as_str())
    } else {
        "auto_discovery".to_string()
    };
    let snapshot = Snapshot::new(
        &adapter.id,
        &source,
        outcome.reading,
        adapter.trusts_exhaustion(),
        (now, stale_after),
        previous.as_ref(),
    );
    if !outcome.missing_token {
        team_share::publish(state, upstream.key().as_str(), &snapshot).await;
    }
    Found {
        endpoint: upstream.key().to_string(),
        host: upstream.base_url.host().to_string(),
        snapshot,
        terminal: outcome.terminal,
        missing_token: outcome.missing_token,
        discovered,
    }
}

/// The kind a successful snapshot was read with (`usage_provider:<kind>`).
fn discovered_kind(snapshot: &Snapshot) -> Option<Kind> {
    if snapshot.error.is_some() {
        return None;
    }
    let name = snapshot.source.strip_prefix(SOURCE_PREFIX)?;
    serde_json::from_value(serde_json::Value::from(name)).ok()
}

/// A lookup that could not be made.
fn failed(error: String) -> LookupOutcome {
    LookupOutcome {
        reading: Reading {
            error: Some(error),
            ..Reading::default()
        },
        terminal: false,
        missing_token: false,
    }
}

async fn sleep(tick: Option<Duration>) {
    tokio::time::sleep(tick.unwrap_or(QUEUE_TICK)).await;
}

/// A refresh without a running proxy (`balance refresh` when no `serve` runs): the same
/// lookups, snapshots and store. No routing sees it until a proxy starts and reads the store.
pub fn refresh_standalone(
    homes: &Homes,
    loaded: &LoadedConfig,
    provider: Option<&str>,
) -> anyhow::Result<RefreshReport> {
    let state = Arc::new(ProxyState::for_command(loaded)?);
    let (_asker, inbox) = channel();
    let config = ServiceConfig {
        settings: BalanceSettings {
            refresh_on_start: false,
            ..loaded.config.balance.clone()
        },
        providers_file: homes.usage_providers(),
        store: Some(homes.balances()),
        env: Arc::new(|name: &str| std::env::var(name).ok()),
    };
    let (service, handle) = BalanceService::start(state, inbox, config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(handle.refresh(provider.map(str::to_string)));
    service.stop();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_asked_for_once_until_the_service_has_looked_it_up() {
        let (asker, mut inbox) = channel();
        for _ in 0..100 {
            asker.ask("a.default");
        }
        asker.ask("b.default");
        let mut asked = Vec::new();
        while let Ok(Command::Ask(endpoint)) = inbox.rx.try_recv() {
            asked.push(endpoint);
        }
        assert_eq!(asked, ["a.default", "b.default"]);

        // The lookup of `a` ended: the next request asks again.
        inbox.pending.lock().unwrap().remove("a.default");
        asker.ask("a.default");
        asker.ask("b.default");
        assert!(matches!(inbox.rx.try_recv(), Ok(Command::Ask(e)) if e == "a.default"));
        assert!(inbox.rx.try_recv().is_err());
    }

    #[test]
    fn a_successful_snapshot_names_the_kind_discovery_found() {
        let reading = Reading {
            exhausted: Some(false),
            ..Reading::default()
        };
        let mut snapshot = Snapshot::new(
            "relay",
            "usage_provider:new_api_token_usage",
            reading,
            true,
            (1, 2),
            None,
        );
        assert_eq!(discovered_kind(&snapshot), Some(Kind::NewApiTokenUsage));
        snapshot.error = Some("HTTP 500".into());
        assert_eq!(discovered_kind(&snapshot), None);
        snapshot.error = None;
        snapshot.source = "auto_discovery".into();
        assert_eq!(discovered_kind(&snapshot), None);
    }
}
