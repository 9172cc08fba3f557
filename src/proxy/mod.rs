//! The proxy: Codex's requests in, relays' responses out.
//!
//! A request's life is a sequence of named phases in [`pipeline`]: read and decode the body,
//! identify the session, plan the candidates, then try each one (build, send, classify) until
//! one answers, stream that answer back through a tap, and record what happened.

pub mod attempt;
pub mod body_budget;
pub mod client_key;
pub mod clients;
pub mod coalesce;
pub mod coding;
pub mod filter;
pub mod guard;
pub mod headers;
pub mod health;
pub mod idle;
pub mod images;
pub mod inspect;
pub mod limits;
pub mod loops;
pub mod member_limits;
pub mod members;
pub mod overrides;
pub mod payload;
pub mod pipeline;
pub mod receive;
pub mod record;
pub mod relay_body;
pub mod replies;
pub mod router;
pub mod runtimes;
pub mod server;
pub mod session;
pub mod sse;
pub mod team_state;
pub mod watched_body;
pub mod websocket;
pub mod write_stall;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::sync::RwLock;

use crate::config::model::ProxySettings;
use crate::redact::Redactor;
use crate::routing::RouteGraph;
use crate::routing::affinity::AffinityStore;
use crate::routing::outbound::{EnvProxies, OutboundDefaults};
use crate::routing::overrides::SessionOverrides;
use crate::routing::overrides::profiles::Profiles;
use crate::routing::retry::RetryPolicy;
use crate::routing::runtime::RoutingState;
use crate::time::Clock;

pub use crate::client_side::{AnyClient, ClientAuth, ClientSide};
pub use record::{Outcome, RequestRecord};
pub use server::{ServerHandle, ServerThreads, serve, serve_on};

pub use record::{NoSink, RecordSink};

/// The part of the config that can change while the proxy runs (see [`ProxyState::reload`]).
#[derive(Debug)]
pub struct Plan {
    pub graph: RouteGraph,
    pub retry: RetryPolicy,
    /// `[codex.profiles]`, resolved, and the default profile.
    pub profiles: Profiles,
    /// Masks the relays' credentials (and anything shaped like one) in relay text we keep.
    pub redactor: Arc<Redactor>,
    /// The config file's bytes this plan was compiled from: an edit through the admin API
    /// refuses to write over a file that changed since.
    pub config_fingerprint: crate::config::load::Fingerprint,
}

impl Plan {
    /// Compiles the routing parts of a loaded config. `env` gives the relays' key variables
    /// and the proxy variables (`HTTPS_PROXY`, …, see [`crate::routing::outbound`]).
    pub fn from_config(
        loaded: &crate::config::LoadedConfig,
        env: crate::routing::endpoints::EnvLookup<'_>,
    ) -> Result<Self, crate::config::ConfigError> {
        let outbound = OutboundDefaults {
            global: loaded.config.proxy.outbound_proxy.clone(),
            env: EnvProxies::read(env).map_err(|message| {
                crate::config::ConfigError::new(&loaded.path, "proxy.outbound_proxy", message)
            })?,
        };
        let graph = crate::routing::compile(&loaded.config.codex, &loaded.path, env, &outbound)?;
        let profiles =
            crate::routing::overrides::profiles::compile(&loaded.config.codex, &loaded.path)?;
        // Relay keys, and proxy passwords in case a proxy or relay echoes one back.
        let secrets = graph.upstreams.iter().flat_map(|u| {
            [&u.credential.bearer, &u.credential.api_key]
                .into_iter()
                .flatten()
                .map(|s| s.expose().to_string())
                .chain(
                    u.outbound
                        .route
                        .proxy()
                        .and_then(|p| p.password())
                        .map(str::to_string),
                )
        });
        Ok(Self {
            redactor: Arc::new(Redactor::new(secrets)),
            graph,
            retry: RetryPolicy::resolve(&loaded.config.retry, &loaded.path)?,
            profiles,
            config_fingerprint: loaded.fingerprint,
        })
    }
}

/// Everything the proxy needs to serve requests. Cheap to share: requests hold an `Arc`.
pub struct ProxyState {
    plan: RwLock<Arc<Plan>>,
    pub routing: RoutingState,
    /// The monotonic clock for everything that expires in memory (cooldowns, probes,
    /// signals); shared with `routing`. Real unless a test sets one ([`ProxyState::with_clock`]).
    clock: Clock,
    pub settings: ProxySettings,
    /// Where the config lives, for error messages that tell the user what to edit.
    pub config_path: PathBuf,
    /// The relay clients, one per serving thread and outbound route; see [`ProxyState::client_for`].
    clients: clients::UpstreamClients,
    pub sink: Arc<dyn RecordSink>,
    trace_prefix: String,
    next_request: AtomicU64,
    /// The client served (see [`client_side`]).
    client: Arc<dyn ClientSide>,
    /// Request bodies being decompressed at once (see `receive::decode_body`).
    pub decode_slots: tokio::sync::Semaphore,
    /// The bytes of request bodies held at once ([`body_budget`]).
    pub body_budget: body_budget::BodyBudget,
    /// This process's mark on the requests it forwards (see [`loops`]).
    pub instance: loops::InstanceId,
    /// Relays that recently refused the WebSocket transport (see [`websocket`]).
    pub websocket_refusals: websocket::Refusals,
    /// What operators set for sessions through the admin API (see [`crate::routing::overrides`]).
    pub overrides: SessionOverrides,
    /// The `filter.json` rules in force (phase 4a, [`filter`]); none unless `serve` sets them.
    pub filter: crate::filter::FilterSlot,
    /// The key clients from other machines present ([`client_key`]); none unless `serve` sets it.
    pub client_key: Option<client_key::ClientKey>,
    /// Team mode's member keys ([`members`]): every request must carry one. None unless
    /// `serve --team` sets them.
    pub member_keys: Option<Arc<dyn members::MemberKeys>>,
    /// The team's Redis (see [`crate::shared`]), where team instances share state. None
    /// unless `serve --team` has `[team] redis_url`.
    pub team_redis: Option<crate::shared::redis::TeamRedis>,
    /// The request side of team mode's routing state sync ([`team_state`]). None unless
    /// `serve --team` has `[team] redis_url`.
    pub team_sync: Option<crate::shared::sync::SyncHandle>,
    /// Team mode's limits: concurrency across instances, members' own ([`member_limits`]).
    pub team_limits: Option<Arc<crate::shared::team_limits::TeamLimits>>,
    /// The counters `GET /metrics` shows (see [`crate::metrics`]); `serve` shares them with
    /// its record sink.
    pub metrics: Arc<crate::metrics::Registry>,
    /// The serving event loops, for the alive-task count (see [`runtimes`]).
    pub runtimes: runtimes::ServingRuntimes,
}

impl ProxyState {
    pub fn new(
        plan: Plan,
        affinity: AffinityStore,
        settings: ProxySettings,
        config_path: PathBuf,
        sink: Arc<dyn RecordSink>,
    ) -> anyhow::Result<Self> {
        let clients = clients::UpstreamClients::new(
            Duration::from_millis(settings.connect_timeout_ms),
            settings.write_stall_limit(),
        );
        clients.prepare(&plan.graph.upstreams)?;
        let started_ms = crate::time::now_ms();
        let clock = Clock::real();
        let body_budget = body_budget::BodyBudget::new(settings.max_request_bytes_in_flight);
        Ok(Self {
            plan: RwLock::new(Arc::new(plan)),
            routing: RoutingState::new(affinity, clock.clone()),
            clock,
            settings,
            config_path,
            clients,
            sink,
            trace_prefix: format!("{started_ms:x}"),
            next_request: AtomicU64::new(1),
            client: Arc::new(AnyClient),
            decode_slots: tokio::sync::Semaphore::new(decode_slot_count()),
            body_budget,
            instance: loops::InstanceId::random(),
            websocket_refusals: websocket::Refusals::default(),
            overrides: SessionOverrides::default(),
            filter: crate::filter::FilterSlot::default(),
            client_key: None,
            member_keys: None,
            team_redis: None,
            team_sync: None,
            team_limits: None,
            metrics: Arc::default(),
            runtimes: runtimes::ServingRuntimes::default(),
        })
    }

    /// A proxy state for a command that asks relays something (balances, WebSocket probes)
    /// without serving: the config's plan and settings, no affinity kept, no records.
    pub fn for_command(loaded: &crate::config::LoadedConfig) -> anyhow::Result<Self> {
        let env = |name: &str| std::env::var(name).ok();
        let plan = Plan::from_config(loaded, &env)?;
        install_tls_provider();
        Self::new(
            plan,
            AffinityStore::in_memory(),
            loaded.config.proxy.clone(),
            loaded.path.clone(),
            Arc::new(NoSink),
        )
    }

    /// Serves `client` (for Codex, `codex::client::CodexClient`); without this the
    /// proxy knows nothing of its client ([`AnyClient`]).
    pub fn with_client(mut self, client: Arc<dyn ClientSide>) -> Self {
        self.client = client;
        self
    }

    /// Asks every request for a team member's key (see [`members`]).
    pub fn with_member_keys(mut self, keys: Option<Arc<dyn members::MemberKeys>>) -> Self {
        self.member_keys = keys;
        self
    }

    /// Shares state with the team's other instances through `redis` (see [`crate::shared`]).
    pub fn with_team_redis(mut self, redis: Option<crate::shared::redis::TeamRedis>) -> Self {
        self.team_redis = redis;
        self
    }

    /// Shares routing state with the team's other instances through `sync` (see [`team_state`]).
    pub fn with_team_sync(mut self, sync: Option<crate::shared::sync::SyncHandle>) -> Self {
        self.team_sync = sync;
        self
    }

    /// Applies team mode's limits (see [`crate::shared::team_limits`]).
    pub fn with_team_limits(
        mut self,
        limits: Option<Arc<crate::shared::team_limits::TeamLimits>>,
    ) -> Self {
        self.team_limits = limits;
        self
    }

    /// Asks clients from other machines for `key` (see [`client_key`]).
    pub fn with_client_key(mut self, key: Option<client_key::ClientKey>) -> Self {
        self.client_key = key;
        self
    }

    /// Counts into `metrics` (the registry its record sink counts into too).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Registry>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The client served.
    pub fn client(&self) -> &Arc<dyn ClientSide> {
        &self.client
    }

    /// Runs on `clock` instead of the real one, so a test can let a cooldown pass at once.
    /// Call it before the first request: the routing state starts afresh on the new clock
    /// (only the affinity store is kept).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.routing = RoutingState::new(self.routing.affinity, clock.clone());
        self.clock = clock;
        self
    }

    /// The monotonic clock (see [`crate::time`]).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The plan in force; a request keeps the one it started with.
    pub fn plan(&self) -> Arc<Plan> {
        self.plan.read().expect("plan lock").clone()
    }

    /// Puts a new plan in force for the requests that start from now on. The HTTP clients of
    /// routes the plan still uses are kept (with their pooled connections); new routes get
    /// one. Building a client can read the system's certificates: call this off the event loop.
    pub fn reload(&self, plan: Plan) -> anyhow::Result<()> {
        self.clients.prepare(&plan.graph.upstreams)?;
        *self.plan.write().expect("plan lock") = Arc::new(plan);
        Ok(())
    }

    /// Makes the calling thread one that serves requests: it gets its relay clients now, so
    /// none is built on its event loop (see [`clients`]).
    pub fn add_proxy_thread(&self) -> anyhow::Result<()> {
        self.clients.add_this_thread()
    }

    /// The HTTP client for requests to `upstream`: the one place that chooses it, for relay
    /// requests and for anything else the helper asks a relay (balances, diagnostics).
    pub fn client_for(
        &self,
        upstream: &crate::routing::Upstream,
    ) -> anyhow::Result<clients::RelayClient> {
        self.clients.get(&upstream.outbound.route)
    }

    /// The HTTP/1 client that opens WebSockets to `upstream` (on its outbound route).
    pub fn websocket_client(
        &self,
        upstream: &crate::routing::Upstream,
    ) -> anyhow::Result<clients::WebSocketClient> {
        self.clients.websocket(&upstream.outbound.route)
    }

    /// A trace id unique across restarts: process start time and a counter.
    pub(crate) fn next_trace_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.trace_prefix)
    }
}

/// How many request bodies may be decompressed at once: one per core (decoding is CPU work;
/// more at once only holds more memory), at most four.
fn decode_slot_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Installs the process-wide TLS crypto provider for upstream HTTPS (once; later calls are no-ops).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
