//! `codex-helper serve`: load the config (creating it on first run) and run the proxy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::console::ServeConsole;
use super::log_writer::LogTarget;
use super::serve_tui::{self, ServeTui};
use crate::admin::{self, AdminHandle};
use crate::balance;
use crate::balance::service::{BalanceService, ServiceConfig};
use crate::balance::trigger::BalanceTrigger;
use crate::codex::client::CodexClient;
use crate::codex::discover::{self, CodexBinary};
use crate::codex::preset::{PatchPlan, Preset};
use crate::codex::switch::{self, CodexFiles};
use crate::config::LoadedConfig;
use crate::config::bootstrap::{self, Imported};
use crate::config::edit::ConfigEditor;
use crate::config::model::{LedgerSettings, ProxySettings};
use crate::config::{Homes, load};
use crate::ledger::Ledger;
use crate::ledger::place::LedgerPlace;
use crate::ledger::pricing::PriceBook;
use crate::proxy::{self, NoSink, Plan, ProxyState, RecordSink, ServerThreads};
use crate::record::live::LiveRequests;
use crate::routing::RouteGraph;
use crate::routing::affinity::AffinityStore;
use crate::routing::cooldowns;
use crate::running::{self, RunningServe};

/// The port `serve` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 3211;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback (127.0.0.0/8, ::1) lets other machines
    /// use your relays: refused unless [proxy] client_key_env is set (clients then send that
    /// key) or --unsafe-listen-without-client-key is given.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Listen on a non-loopback --host without a client key: anyone who can reach the address
    /// can spend your relay credit. Only for a network that is yours alone.
    #[arg(long)]
    unsafe_listen_without_client_key: bool,
    /// Port to listen on.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Port of the admin API, which `balance refresh` and later the console use; default: the
    /// proxy's port + 1000 (any free port when `--port 0`).
    #[arg(long)]
    admin_port: Option<u16>,
    /// Address of the admin API. Anything but loopback needs CODEX_HELPER_ADMIN_TOKEN (at
    /// least 16 characters), which other machines must then send.
    #[arg(long, default_value = "127.0.0.1")]
    admin_host: String,
    /// Log to the terminal instead of showing the terminal UI. Without it, `serve` in a
    /// terminal (stdin and stdout both terminals) shows the UI, logs to
    /// <helper home>/logs/serve.log meanwhile, and stops when the UI is quit; piped or
    /// redirected, it logs as with this flag.
    #[arg(long)]
    no_tui: bool,
    /// Leave Codex's config alone (by default `serve` switches Codex to the proxy with the
    /// configured preset and switches it back at exit).
    #[arg(long)]
    no_switch: bool,
    /// Run in the background, detached from the terminal (logs in
    /// <helper home>/logs/resident.log); `codex-helper daemon status|stop|restart` manage it.
    #[arg(long)]
    resident: bool,
    /// Serve a team: every request (from this machine too) must carry a team member's key
    /// (`codex-helper keys add NAME`), checked against the team's PostgreSQL
    /// ([team] database_url_env). Leaves this machine's Codex alone (as --no-switch).
    #[arg(long)]
    team: bool,
    /// Set on the background process `--resident` starts.
    #[arg(long, hide = true)]
    detached: bool,
}

/// Whether `serve` with `args` shows the terminal UI (see [`serve_tui::wanted`]).
pub fn tui_wanted(args: &ServeArgs) -> bool {
    use std::io::IsTerminal;
    serve_tui::wanted(
        args.no_tui,
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
        serve_tui::in_foreground(),
    )
}

/// Runs the proxy until a signal, `POST /runtime/shutdown`, or (with `ui`: the log output
/// the terminal UI takes over while it runs) the user quitting the UI.
///
/// In order: [`prepare`] (the config, keys and team services, and every refusal that needs no
/// socket), [`serve`] on a current-thread runtime (sinks, state, services, the listeners,
/// Codex switched), then, once asked to stop, [`Running::stop`].
pub fn run(args: ServeArgs, ui: Option<LogTarget>) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    if args.resident {
        return super::resident::start(&homes, &super::resident::own_args());
    }
    // One serve per home, held until this process ends.
    let _home_lock = super::resident::lock_home(&homes)?;
    if args.detached {
        super::resident::rotate_log(super::resident::log_path(&homes));
    }
    let prepared = prepare(&homes, &args)?;
    raise_open_file_limit();
    proxy::install_tls_provider();
    let threads = serving_threads(prepared.proxy.settings.threads)?;
    // Each serving thread has an event loop of its own and keeps every hop of a connection's
    // requests on itself: the cross-thread wake-ups a shared pool of workers would add
    // dominate a proxy's latency on loopback.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (running, stop_asked) = serve(&args, ui, &homes, prepared, threads).await?;
        stop_asked.wait().await;
        running.stop().await;
        Ok(())
    })
}

/// The process's environment, as config loading and the services read it.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// What `serve` has checked and built before it opens any socket.
struct Prepared {
    loaded: LoadedConfig,
    ledger_place: LedgerPlace,
    addr: SocketAddr,
    proxy: ProxyParts,
}

/// What the proxy's state is built from.
struct ProxyParts {
    plan: Plan,
    settings: ProxySettings,
    client_key: Option<proxy::client_key::ClientKey>,
    team: TeamParts,
    filter_path: PathBuf,
    filter_rules: crate::filter::Rules,
}

/// Team mode's parts (all None without `--team`).
#[derive(Default)]
struct TeamParts {
    member_keys: Option<Arc<dyn proxy::members::MemberKeys>>,
    redis: Option<crate::shared::redis::TeamRedis>,
    limits: Option<Arc<crate::shared::team_limits::TeamLimits>>,
}

/// Loads the config (creating it on first run), and refuses now what would fail later: a
/// bad config or filter, a client key with `--team`, an exposed admin API without its token,
/// an exposed proxy without a client key.
fn prepare(homes: &Homes, args: &ServeArgs) -> anyhow::Result<Prepared> {
    let config_path = homes.helper_config();
    crate::config::migrate::refuse_json_only(homes)?;
    first_run_config(homes, &config_path, args.port)?;
    // The original codex-helper's `mode = …` becomes `preset = …` (comments kept, `.bak` written).
    let mut editor = ConfigEditor::open(&config_path)?;
    if let Some(change) = editor.normalize_client_patch()? {
        editor.save(&crate::routing::check_config)?;
        eprintln!("codex-helper: {}: {change}", config_path.display());
    }
    let loaded = load::load(&config_path)?.context("the config file disappeared while starting")?;
    let plan = Plan::from_config(&loaded, &process_env)?;
    let ledger_place = LedgerPlace::of(homes, &loaded.config.ledger, &process_env)?;
    let settings = loaded
        .config
        .proxy
        .clone()
        .with_env_overrides(&process_env)?;
    proxy::limits::validate(&settings)?;
    let client_key =
        proxy::client_key::ClientKey::from_env(settings.client_key_env.as_deref(), &process_env)?;
    let team = match args.team {
        true => team_parts(homes, &loaded, &ledger_place, client_key.is_some())?,
        false => TeamParts::default(),
    };
    warn_unused(&loaded, &plan);
    // filter.json: a file that cannot be used stops the start here, with its rule and fault.
    let filter_path = crate::filter::path_in(&homes.helper);
    let filter_rules = crate::filter::load(&filter_path)?;
    if !filter_rules.is_empty() {
        let described = crate::filter::watch::describe(&filter_path, &filter_rules);
        eprintln!("codex-helper: {described}");
    }
    let addr = listen_addr(&args.host, args.port)?;
    check_exposure(
        args,
        addr,
        client_key.is_some() || team.member_keys.is_some(),
    )?;
    Ok(Prepared {
        loaded,
        ledger_place,
        addr,
        proxy: ProxyParts {
            plan,
            settings,
            client_key,
            team,
            filter_path,
            filter_rules,
        },
    })
}

/// On first run, writes the config with Codex's active provider as its relay, and says so.
fn first_run_config(homes: &Homes, config_path: &Path, port: u16) -> anyhow::Result<()> {
    let own = || switch::own_config(&CodexFiles::new(&homes.codex));
    match bootstrap::ensure_config(config_path, own, port)? {
        None => {}
        Some(Imported::Provider {
            id,
            base_url,
            env_key,
        }) => eprintln!(
            "codex-helper: created {} with relay `{id}` ({base_url}{}) from Codex's active provider in {}",
            config_path.display(),
            env_key
                .map(|k| format!(", key from ${k}"))
                .unwrap_or_default(),
            homes.codex_config().display()
        ),
        Some(Imported::Nothing { reason }) => eprintln!(
            "codex-helper: created {} with no relay ({reason}). Requests will fail until you add one: \
             `codex-helper provider add ID --base-url URL --auth-token-env VAR`, or a [codex.providers.ID] table.",
            config_path.display()
        ),
    }
    Ok(())
}

/// `serve --team`: the member keys, the team's Redis and the team's limits.
fn team_parts(
    homes: &Homes,
    loaded: &LoadedConfig,
    ledger_place: &LedgerPlace,
    client_key: bool,
) -> anyhow::Result<TeamParts> {
    if client_key {
        anyhow::bail!(
            "--team asks every request for a member's key, and [proxy] client_key_env for a shared key in the same header: \
             remove client_key_env from the config to serve a team"
        );
    }
    let team = &loaded.config.team;
    crate::team::check_timings(team)?;
    let member_keys = start_member_keys(team, &process_env)?;
    let redis = start_team_redis(team, &process_env)?;
    let limits = start_team_limits(team, redis.clone(), homes, ledger_place)?;
    Ok(TeamParts {
        member_keys: Some(member_keys),
        redis,
        limits: Some(limits),
    })
}

/// Says which config keys this version reads but does not use yet, and which relays wait
/// for an environment variable.
fn warn_unused(loaded: &LoadedConfig, plan: &Plan) {
    for key in &loaded.deferred_keys {
        tracing::warn!(
            "{}: `{key}` is recognised but not used by this version yet",
            loaded.path.display()
        );
    }
    for upstream in &plan.graph.upstreams {
        for var in &upstream.credential.missing_env {
            tracing::warn!(
                "relay {}/{}: environment variable {var} is not set; this relay is skipped until it is",
                upstream.provider,
                upstream.endpoint
            );
        }
    }
}

/// Refuses an admin API other machines can reach without its token, and a proxy other
/// machines can reach without a client key (unless the user said so, loudly).
fn check_exposure(args: &ServeArgs, addr: SocketAddr, keyed: bool) -> anyhow::Result<()> {
    use super::serve_exposure::{Exposure, decide};
    let admin_ip = listen_addr(&args.admin_host, 0)?.ip();
    if !crate::net::is_loopback_ip(admin_ip) && admin_access()?.token.is_none() {
        anyhow::bail!(
            "--admin-host {admin_ip} lets other machines reach the admin API: set {} (at least 16 characters) first, or keep it on 127.0.0.1",
            admin::TOKEN_ENV
        );
    }
    let unsafe_flag = args.unsafe_listen_without_client_key;
    match decide(addr, keyed, unsafe_flag).map_err(anyhow::Error::msg)? {
        Exposure::Local => {}
        Exposure::KeyRequired => tracing::info!(
            "the proxy is reachable from other machines at {addr}: their requests must carry the client key and name a host in [proxy] allowed_hosts"
        ),
        Exposure::Open { warning } => eprintln!("codex-helper: {warning}"),
    }
    Ok(())
}

/// Where finished requests go: the ledger, innermost, then balance lookups, notifications,
/// the live view, metrics and team spend.
struct Sinks {
    outermost: Arc<dyn RecordSink>,
    ledger: Option<Ledger>,
    balance_inbox: balance::service::Inbox,
    notifier: Option<crate::notify::Notifier>,
    live: Arc<LiveRequests>,
    metrics: Arc<crate::metrics::Registry>,
}

fn record_sinks(homes: &Homes, prepared: &Prepared) -> Sinks {
    let config = &prepared.loaded.config;
    let ledger = start_ledger(homes, &config.ledger, &prepared.ledger_place);
    let sink = ledger
        .as_ref()
        .map_or_else(|| Arc::new(NoSink) as Arc<dyn RecordSink>, Ledger::sink);
    let (asker, balance_inbox) = balance::service::channel();
    let sink: Arc<dyn RecordSink> = match config.balance.enabled {
        true => Arc::new(BalanceTrigger {
            inner: sink,
            ask: Box::new(move |endpoint| asker.ask(endpoint)),
        }),
        false => sink,
    };
    // Notifications: events found in finished records, delivered on the notifier's thread.
    let notifier = config.notify.enabled.then(|| {
        let channels = crate::notify::deliver::Channels::from_settings(&config.notify, None);
        crate::notify::Notifier::start(&config.notify, channels)
    });
    let sink: Arc<dyn RecordSink> = match &notifier {
        Some(n) => Arc::new(crate::notify::NotifySink::new(
            sink,
            n.handle(),
            &config.notify,
        )),
        None => sink,
    };
    // It sees every request start and end, for the console's present.
    let live = Arc::new(LiveRequests::new(sink));
    let metrics = Arc::new(crate::metrics::Registry::default());
    let sink: Arc<dyn RecordSink> = Arc::new(crate::metrics::MetricsSink::new(
        metrics.clone(),
        live.clone(),
    ));
    let outermost: Arc<dyn RecordSink> = match &prepared.proxy.team.limits {
        Some(limits) => Arc::new(crate::shared::team_limits::SpendSink {
            inner: sink,
            limits: limits.clone(),
        }),
        None => sink,
    };
    Sinks {
        outermost,
        ledger,
        balance_inbox,
        notifier,
        live,
        metrics,
    }
}

/// The Codex this helper serves: its files, and the binary asked for the `/models` catalog.
struct CodexSide {
    files: CodexFiles,
    /// The binary found, when one runs.
    catalog: Option<CodexBinary>,
    /// The one the client uses: the one found, else the configured name.
    binary: PathBuf,
    client: Arc<CodexClient>,
}

impl CodexSide {
    /// Switches Codex to the proxy at `port`, and records the binary found for the next
    /// start; whether Codex was switched.
    fn switch_on(&self, loaded: &LoadedConfig, port: u16) -> bool {
        let switched = switch_codex_on(&self.files, loaded, port, &self.client);
        if let (true, Some(binary)) = (switched, &self.catalog) {
            let _ = switch::record_codex_binary(&self.files, binary);
        }
        switched
    }
}

async fn codex_side(homes: &Homes, configured: &str) -> CodexSide {
    let files = CodexFiles::new(&homes.codex);
    let catalog = catalog_codex(&files, configured).await;
    let binary = catalog
        .as_ref()
        .map_or_else(|| PathBuf::from(configured), |b| b.path.clone());
    let client = Arc::new(CodexClient::new(binary.clone(), homes.helper.join("cache")));
    if discover::configured(configured).is_some() {
        client.pin_binary();
    }
    CodexSide {
        files,
        catalog,
        binary,
        client,
    }
}

/// Binds the proxy, builds its state and services, starts the admin API, switches Codex
/// and says where it listens. Returns what [`Running::stop`] takes down, and what asks for it.
async fn serve(
    args: &ServeArgs,
    ui: Option<LogTarget>,
    homes: &Homes,
    prepared: Prepared,
    threads: usize,
) -> anyhow::Result<(Running, StopAsked)> {
    let (listener, listen) = listen_checked(&prepared)?;
    let route = describe_route(&prepared.proxy.plan.graph);
    let sinks = record_sinks(homes, &prepared);
    let codex = codex_side(homes, &prepared.proxy.settings.codex_binary).await;
    let Prepared {
        loaded,
        ledger_place,
        proxy: parts,
        ..
    } = prepared;
    let (state, services) = start_state(homes, parts, &loaded, &sinks, &codex)?;
    let stop_asked = StopAsked::new()?;
    state.add_proxy_thread()?;
    state.runtimes.add(tokio::runtime::Handle::current());
    let server_threads = ServerThreads::start(&state, threads - 1)?;
    let balances = start_balances(homes, &state, sinks.balance_inbox, &loaded)?;
    let server = proxy::serve_on(listener, state.clone(), server_threads)?;
    let admin_addr = listen_addr(&args.admin_host, admin_port(args.admin_port, args.port))?;
    let (reload_state, reload_path) = (state.clone(), loaded.path.clone());
    let console = ServeConsole {
        balances: balances.as_ref().map(|(_, h)| h.clone()),
        state: state.clone(),
        homes: homes.clone(),
        proxy: server.addr,
        started_ms: crate::time::now_ms(),
        ledger: sinks.ledger.as_ref().map(Ledger::stats),
        ledger_reader: Arc::new(crate::ledger::place::KeptReader::new(ledger_place)),
        codex_binary: codex.binary.clone(),
        reload: Arc::new(move || reload(&reload_state, &reload_path, listen)),
        shutdown: stop_asked.notify.clone(),
        live: sinks.live,
    };
    let admin = start_admin(admin_addr, console).await;
    let pid = announce(homes, args, server.addr, admin.as_ref());
    // Codex is switched before the banner, so whoever waits for the banner sees it done.
    let switched = !args.no_switch && !args.team && codex.switch_on(&loaded, server.addr.port());
    if let Some(admin) = &admin {
        eprintln!("codex-helper console: {}", admin::console_url(admin.addr));
    }
    eprintln!("codex-helper listening on http://{} — {route}", server.addr);
    let (files, client) = (codex.files.clone(), codex.client);
    let config_watch = ConfigWatcher::start(state.clone(), loaded.path, files, client, listen);
    // Once the admin API listens: the UI is its client. Quitting it stops the helper.
    let admin_at = admin.as_ref().map(|a| a.addr);
    let quit = stop_asked.notify.clone();
    let tui = ui.and_then(|logs| ServeTui::start(admin_at, homes, logs, quit));
    let running = Running {
        tui,
        server,
        state,
        homes: homes.clone(),
        admin,
        pid,
        config_watch,
        services,
        balances: balances.map(|(service, _)| service),
        notifier: sinks.notifier,
        switched: switched.then_some(codex.files),
        ledger: sinks.ledger,
    };
    Ok((running, stop_asked))
}

/// The proxy's listening socket and its address, once no relay is the helper itself.
fn listen_checked(prepared: &Prepared) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::from_std(bind(prepared.addr)?)?;
    let listen = listener
        .local_addr()
        .context("the listening socket has no address")?;
    refuse_self_relays(&prepared.proxy.plan.graph, listen, &prepared.loaded.path)?;
    warn_if_codex_hop_is_proxied(&process_env, listen.port());
    Ok((listener, listen))
}

/// What runs beside the proxy, started with its state.
struct Services {
    team_sync: Option<crate::shared::sync::SyncThread>,
    filter_watch: crate::filter::watch::FilterWatcher,
    exhaustion_watch: Option<crate::notify::service::ExhaustionWatch>,
    affinity_writer: Option<crate::routing::affinity::AffinityWriter>,
}

/// The proxy's state, with the relay cooldowns kept from the last run, and the services that
/// run on it: team sync, the filter's watcher, the exhaustion notifications.
fn start_state(
    homes: &Homes,
    parts: ProxyParts,
    loaded: &LoadedConfig,
    sinks: &Sinks,
    codex: &CodexSide,
) -> anyhow::Result<(Arc<ProxyState>, Services)> {
    let affinity = AffinityStore::open(&homes.affinity_state())?;
    let affinity_writer = affinity.writer();
    let ProxyParts {
        plan,
        settings,
        client_key,
        team,
        filter_path,
        filter_rules,
    } = parts;
    // Team mode's routing state sync: its handle in the state, its thread on the state.
    let team_sync = team.redis.clone().map(crate::shared::sync::TeamSync::new);
    let sink = sinks.outermost.clone();
    let state = ProxyState::new(plan, affinity, settings, loaded.path.clone(), sink)?
        .with_client(codex.client.clone())
        .with_client_key(client_key)
        .with_member_keys(team.member_keys)
        .with_team_redis(team.redis)
        .with_team_sync(team_sync.as_ref().map(|s| s.handle()))
        .with_team_limits(team.limits)
        .with_metrics(sinks.metrics.clone());
    let state = Arc::new(state);
    // Before serving: relays cooling down when the last run stopped still are.
    let upstreams = &state.plan().graph.upstreams;
    match cooldowns::restore(&homes.cooldowns(), &state.routing, upstreams) {
        Ok(0) => {}
        Ok(n) => tracing::info!("{n} relay cooldowns kept from the previous run"),
        Err(e) => tracing::warn!("{e:#}"),
    }
    // After the restore: kept cooldowns are shared with the team too.
    let target = crate::shared::sync::weak_target(&state);
    let team_sync = team_sync.map(|sync| sync.start(target)).transpose()?;
    state.filter.set(filter_rules);
    let filter_watch =
        crate::filter::watch::FilterWatcher::start(filter_path, state.filter.clone());
    let exhaustion = crate::notify::EventKind::RelayExhausted;
    let exhaustion_watch = (sinks.notifier.as_ref())
        .filter(|_| loaded.config.notify.wants(exhaustion))
        .map(|n| crate::notify::service::ExhaustionWatch::start(state.clone(), n.handle()));
    let services = Services {
        team_sync,
        filter_watch,
        exhaustion_watch,
        affinity_writer,
    };
    Ok((state, services))
}

/// Balance lookups, when enabled: kept exhaustion is on routing before this returns, so
/// before the first request.
fn start_balances(
    homes: &Homes,
    state: &Arc<ProxyState>,
    inbox: balance::service::Inbox,
    loaded: &LoadedConfig,
) -> anyhow::Result<Option<(BalanceService, balance::service::BalanceHandle)>> {
    let settings = loaded.config.balance.clone();
    if !settings.enabled {
        return Ok(None);
    }
    let config = ServiceConfig {
        settings,
        providers_file: homes.usage_providers(),
        store: Some(homes.balances()),
        env: Arc::new(process_env),
    };
    BalanceService::start(state.clone(), inbox, config).map(Some)
}

/// Writes `serve.json` so commands find this helper; its process id, to withdraw it at exit.
fn announce(
    homes: &Homes,
    args: &ServeArgs,
    proxy: SocketAddr,
    admin: Option<&AdminHandle>,
) -> u32 {
    let running = RunningServe {
        pid: std::process::id(),
        proxy,
        admin: admin.map(|a| a.addr),
        started_ms: crate::time::now_ms(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        resident: args.detached,
        log: args.detached.then(|| super::resident::log_path(homes)),
        args: super::resident::recorded_args(&super::resident::own_args()),
    };
    if let Err(e) = running::announce(&homes.running(), &running) {
        tracing::warn!("commands will not find this codex-helper: {e:#}");
    }
    running.pid
}

/// What asks `serve` to stop: a signal, or `notify` (the admin API, the UI).
struct StopAsked {
    notify: Arc<tokio::sync::Notify>,
    signal: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl StopAsked {
    /// Listens for the signals from now on.
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            notify: Arc::new(tokio::sync::Notify::new()),
            signal: Box::pin(shutdown_signal()?),
        })
    }

    async fn wait(self) {
        tokio::select! {
            () = self.signal => {}
            () = self.notify.notified() => {}
        }
    }
}

/// A serving helper: what [`Running::stop`] takes down.
struct Running {
    tui: Option<ServeTui>,
    server: proxy::ServerHandle,
    state: Arc<ProxyState>,
    homes: Homes,
    admin: Option<AdminHandle>,
    /// The process id `serve.json` names.
    pid: u32,
    config_watch: ConfigWatcher,
    services: Services,
    balances: Option<BalanceService>,
    notifier: Option<crate::notify::Notifier>,
    /// Codex's files, when `serve` switched Codex (it switches it back).
    switched: Option<CodexFiles>,
    ledger: Option<Ledger>,
}

impl Running {
    /// Stops everything, the UI first (what follows is said on the terminal), then the
    /// listeners, then what they fed; each thread joined off this event loop.
    async fn stop(self) {
        if let Some(tui) = self.tui {
            tui.stop().await;
        }
        tracing::info!("shutting down");
        self.server.shutdown().await;
        let (saved, path) = (self.state.clone(), self.homes.cooldowns());
        let save = move || cooldowns::save(&path, &saved.routing);
        if let Ok(Err(e)) = tokio::task::spawn_blocking(save).await {
            tracing::warn!("relay cooldowns not kept for the next run: {e:#}");
        }
        if let Some(admin) = self.admin {
            admin.shutdown().await;
        }
        let services = self.services;
        if let Some(sync) = services.team_sync {
            // At most one bounded Redis call away.
            let _ = tokio::task::spawn_blocking(move || sync.stop()).await;
        }
        running::withdraw(&self.homes.running(), self.pid);
        self.config_watch.stop();
        services.filter_watch.stop();
        if let Some(watch) = services.exhaustion_watch {
            watch.stop();
        }
        if let Some(service) = self.balances {
            // Lookups in flight are abandoned, each bounded by its timeout.
            let _ = tokio::task::spawn_blocking(move || service.stop()).await;
        }
        drop(self.state);
        if let Some(notifier) = self.notifier {
            // The last events, each delivery bounded by its timeout.
            let _ = tokio::task::spawn_blocking(move || notifier.stop()).await;
        }
        if let Some(writer) = services.affinity_writer {
            // The last window's changes.
            let _ = tokio::task::spawn_blocking(move || writer.close()).await;
        }
        if let Some(codex) = self.switched {
            match switch::switch_off(&codex) {
                Ok(report) => eprintln!("codex-helper: {}", report.message),
                Err(e) => eprintln!(
                    "codex-helper: could not switch Codex back: {e:#}; run `codex-helper switch off`"
                ),
            }
        }
        if let Some(ledger) = self.ledger {
            // Read after the shutdown: rows its last flush could not write count too.
            let stats = ledger.stats();
            ledger.shutdown();
            let lost = stats.lost();
            if lost > 0 {
                eprintln!(
                    "codex-helper: {lost} request records could not be written to the ledger"
                );
            }
        }
    }
}

/// The Codex binary asked for the `/models` catalog (see [`discover::for_catalog`]), found on
/// a blocking thread (it runs `--version`, bounded); `None` (said in the log) when none runs.
async fn catalog_codex(codex: &CodexFiles, configured: &str) -> Option<CodexBinary> {
    let recorded = codex.state().ok().flatten().and_then(|s| s.codex_binary);
    let configured = configured.to_string();
    let found =
        tokio::task::spawn_blocking(move || discover::for_catalog(&configured, recorded.as_ref()))
            .await
            .ok()
            .flatten();
    match &found {
        Some(b) => tracing::info!(
            "Codex for /models: {} ({}, {})",
            b.path.display(),
            b.version,
            b.origin.as_str()
        ),
        None => tracing::warn!(
            "no runnable Codex binary found (PATH, npm's global prefix, the usual install folders): /models passes through untranslated; set [proxy] codex_binary"
        ),
    }
    found
}

/// The admin token from the environment, if set; one too short to be a secret is refused.
fn admin_access() -> anyhow::Result<admin::Access> {
    let token = std::env::var(admin::TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(token) = &token
        && token.chars().count() < 16
    {
        anyhow::bail!("{} must be at least 16 characters", admin::TOKEN_ENV);
    }
    Ok(admin::Access {
        token: token.map(crate::routing::Secret::new),
    })
}

/// The admin API's port: as given, else the proxy's + 1000 (any free one when the proxy's was
/// chosen by the system, or past the last port).
fn admin_port(given: Option<u16>, proxy_port: u16) -> u16 {
    given.unwrap_or_else(|| match proxy_port {
        0 => 0,
        port => port.checked_add(1000).unwrap_or(0),
    })
}

/// Starts the admin API on loopback; a port in use is reported, not fatal: the proxy serves
/// without it (commands then work on their own).
async fn start_admin(addr: SocketAddr, console: ServeConsole) -> Option<AdminHandle> {
    let started = async {
        let access = admin_access()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        admin::serve_admin(listener, Arc::new(console), access).await
    };
    match started.await {
        Ok(handle) => {
            tracing::info!("admin API on http://{}", handle.addr);
            Some(handle)
        }
        Err(e) => {
            tracing::warn!("admin API not started on {addr}: {e:#}; choose another --admin-port");
            None
        }
    }
}

/// Binds the listening socket (non-blocking, for the event loops), with an error that says
/// who holds the port when it is taken.
fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            let owner = port_owner(addr.port())
                .map(|o| format!(" by {o}"))
                .unwrap_or_default();
            anyhow::anyhow!("{addr} is already in use{owner}; stop it or choose another --port")
        } else {
            anyhow::anyhow!("cannot listen on {addr}: {e}")
        }
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The threads to serve requests on: `[proxy] threads`, or one per CPU core when it is 0.
fn serving_threads(configured: usize) -> anyhow::Result<usize> {
    const MOST: usize = 256;
    match configured {
        0 => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MOST)),
        n if n > MOST => anyhow::bail!("[proxy] threads = {n}: at most {MOST}"),
        n => Ok(n),
    }
}

/// Switches Codex to the proxy with the configured preset. A problem is reported, not fatal:
/// the proxy still serves. Returns whether Codex was switched (and must be switched back).
fn switch_codex_on(
    codex: &CodexFiles,
    loaded: &LoadedConfig,
    port: u16,
    client: &CodexClient,
) -> bool {
    // A Codex switched to a team relay stays there: switching it here would end that switch
    // without a word, and stopping this helper would then leave Codex off the team.
    if let Ok(Some(state)) = codex.state() {
        if let Some(team) = &state.originals.team_url {
            eprintln!(
                "codex-helper: Codex is switched to the team relay at {team}; this helper leaves it there \
                 (to use this helper instead: `codex-helper switch off`, then start it again)"
            );
            return false;
        }
    }
    let result = (|| -> anyhow::Result<(Preset, String)> {
        let (preset, websocket, compaction) = loaded
            .config
            .codex
            .client_patch
            .as_ref()
            .map(|c| c.resolve())
            .transpose()
            .map_err(|e| anyhow::anyhow!("{}: `codex.client_patch`: {e}", loaded.path.display()))?
            .unwrap_or_default();
        let plan = PatchPlan::new(preset, websocket, compaction).map_err(anyhow::Error::msg)?;
        if preset.needs_helper_credential() {
            super::switch::check_helper_credential(Some(loaded), preset)?;
        }
        // A lost switch state is repaired with the relay's URL from the helper's own provider
        // of the same id (`serve` imported it from Codex's provider in force).
        let relay_base_url = |id: &str| {
            let provider = loaded.config.codex.providers.get(id)?;
            provider.base_url.clone()
        };
        let report = switch::switch_on_repairing(
            codex,
            &plan,
            &format!("http://127.0.0.1:{port}/v1"),
            &relay_base_url,
        )?;
        if let Some(note) = &report.note {
            eprintln!("codex-helper: note: {note}");
        }
        Ok((preset, report.message))
    })();
    match result {
        Ok((preset, message)) => {
            client.set_preset(Some(preset));
            eprintln!("codex-helper: {message}");
            true
        }
        Err(e) => {
            eprintln!("codex-helper: Codex was not switched to the proxy: {e:#}");
            false
        }
    }
}

/// Refuses relays whose address is this proxy's own listener: every request sent there would
/// come straight back and be forwarded again, until a timeout (see [`proxy::loops`]).
fn refuse_self_relays(
    graph: &RouteGraph,
    listen: SocketAddr,
    config: &std::path::Path,
) -> anyhow::Result<()> {
    match graph
        .upstreams
        .iter()
        .find(|u| crate::net::reaches_listener(u.base_url.host(), u.base_url.port(), listen))
    {
        Some(u) => anyhow::bail!(
            "{}: relay `{}` ({}) is this codex-helper itself, listening on {listen}: every \
             request would be forwarded back to it in a loop. Point `codex.providers.{}` at \
             the real relay (Codex's own provider may have pointed at the helper when it was \
             imported), or remove it: `codex-helper provider remove {}`",
            config.display(),
            u.key(),
            u.base_url,
            u.provider,
            u.provider
        ),
        None => Ok(()),
    }
}

/// Codex 0.171 sends its request for `http://127.0.0.1:PORT` through `HTTP_PROXY` /
/// `ALL_PROXY` unless `NO_PROXY` covers 127.0.0.1 (a proxy elsewhere cannot reach the helper,
/// and one that can still sees every prompt). `switch on` cannot change Codex's environment,
/// so the user is told, assuming Codex runs from the same environment as `serve`.
fn warn_if_codex_hop_is_proxied(env: crate::routing::endpoints::EnvLookup<'_>, port: u16) {
    let Ok(proxies) = crate::routing::outbound::EnvProxies::read(env) else {
        return; // Reported with the config.
    };
    if let Some(var) = proxies.captures_loopback() {
        tracing::warn!(
            "{var} is set and NO_PROXY does not cover 127.0.0.1: a Codex started with this \
             environment sends its requests for http://127.0.0.1:{port} to that proxy instead \
             of codex-helper. Add `NO_PROXY=127.0.0.1,localhost,::1` (or extend yours) where \
             Codex runs."
        );
    }
}

/// Which process listens on `port`, e.g. `pid 1234 (codex-helper)` (Linux; `None` elsewhere
/// or when it cannot be seen).
pub(super) fn port_owner(port: u16) -> Option<String> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields.get(1)?.rsplit(':').next()?;
                let listening = fields.get(3) == Some(&"0A");
                (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                    .then(|| fields.get(9).map(|s| s.to_string()))?
            })
        })?;
    let wanted = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == wanted))
        {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", name.trim()));
        }
    }
    None
}

/// Starts the request ledger; without one the proxy still runs (and says why).
fn start_ledger(homes: &Homes, settings: &LedgerSettings, place: &LedgerPlace) -> Option<Ledger> {
    if !settings.enabled {
        return None;
    }
    let prices = match PriceBook::load(&homes.pricing_overrides()) {
        Ok(prices) => prices,
        Err(e) => {
            eprintln!("codex-helper: {e:#}; using the built-in prices");
            PriceBook::built_in()
        }
    };
    let started = match place {
        LedgerPlace::File(path) => Ledger::start(path, settings.clone(), prices),
        LedgerPlace::Postgres(url) => {
            tracing::info!("ledger: PostgreSQL at {}", url.shown());
            crate::ledger::pg::writer::start(
                url.as_ref().clone(),
                &LedgerPlace::spool_path(homes),
                settings.clone(),
                prices,
            )
        }
    };
    match started {
        Ok(ledger) => Some(ledger),
        Err(e) => {
            eprintln!("codex-helper: {e:#}; requests will not be recorded");
            None
        }
    }
}

/// One line: the relays in the order a request without affinity would try them.
fn describe_route(graph: &RouteGraph) -> String {
    let mut order: Vec<String> = Vec::new();
    for upstream in &graph.upstreams {
        let via = match upstream.outbound.route.proxy() {
            Some(proxy) => format!(" via {proxy}"),
            None => String::new(),
        };
        order.push(format!("{} ({}{via})", upstream.key(), upstream.base_url));
    }
    if order.is_empty() {
        "no relay configured".to_string()
    } else {
        format!(
            "relays: {} (entry `{}`, affinity {})",
            order.join(", "),
            graph.entry,
            graph.affinity_policy
        )
    }
}

/// Follows the files that change what the proxy does while it runs, on a thread of its own
/// (reading, parsing and compiling never run on the proxy's event loop):
/// - the helper's config: when it changes, the routing plan is reloaded, so edits (by hand or
///   by `provider` / `routing` commands) apply without a restart; an invalid edit is reported
///   and the running plan kept;
/// - Codex's switch state: `switch on` / `switch off` run by hand while serving change what
///   relays may see (the client preset), and which Codex binary answers for the catalog.
struct ConfigWatcher {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ConfigWatcher {
    /// `client` follows the preset in Codex's switch state (in `codex`).
    fn start(
        state: Arc<ProxyState>,
        path: PathBuf,
        codex: CodexFiles,
        client: Arc<CodexClient>,
        listen: SocketAddr,
    ) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || {
                let modified =
                    |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
                let mut seen = modified(&path);
                // Until told to stop (or the sender is gone), once per `CONFIG_POLL`.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CONFIG_POLL)
                {
                    if let Ok(switch_state) = codex.state() {
                        client.follow_recorded(
                            switch_state.as_ref().and_then(|s| s.codex_binary.as_ref()),
                        );
                        client.set_preset(switch_state.map(|s| s.preset));
                    }
                    let now = modified(&path);
                    if now != seen {
                        seen = now;
                        let _ = reload(&state, &path, listen);
                    }
                }
            })
            .expect("start the config watcher thread");
        Self { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Loads, checks and compiles the config, and puts the new plan in force; says so on stderr
/// and to the caller.
fn reload(
    state: &ProxyState,
    path: &std::path::Path,
    listen: SocketAddr,
) -> anyhow::Result<String> {
    let reloaded = load::load(path).and_then(|loaded| {
        let loaded = loaded.context("the config file was removed")?;
        let plan = Plan::from_config(&loaded, &process_env)?;
        refuse_self_relays(&plan.graph, listen, path)?;
        let route = describe_route(&plan.graph);
        state.reload(plan)?;
        anyhow::Ok(format!("reloaded {} — {route}", path.display()))
    });
    match &reloaded {
        Ok(message) => eprintln!("codex-helper: {message}"),
        Err(e) => eprintln!("codex-helper: {e:#}; still using the previous config"),
    }
    reloaded
}

/// How often the config file is checked for changes.
const CONFIG_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Team mode's Redis, where instances share state; none (each instance on its own state,
/// said at start) without `[team] redis_url`. Redis need not answer yet.
fn start_team_redis(
    team: &crate::config::model::TeamSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<crate::shared::redis::TeamRedis>> {
    use crate::shared::redis::{RedisUrl, TeamRedis};
    let Some(setting) = team.redis_url.as_deref() else {
        tracing::warn!(
            "team mode without [team] redis_url: this instance keeps its own routing state and limits; \
             set it so every instance behind the same address shares them"
        );
        return Ok(None);
    };
    let url = RedisUrl::from_setting(setting, env)?;
    tracing::info!(
        "team mode: sharing state through the team's Redis at {}",
        url.shown()
    );
    let wait = std::time::Duration::from_millis(team.redis_wait_ms);
    Ok(Some(TeamRedis::start(url, wait)?))
}

/// Team mode's limits: concurrency permits across instances (with Redis) and members' own
/// limits, whose spend is priced with the same book as the ledger's.
fn start_team_limits(
    team: &crate::config::model::TeamSettings,
    redis: Option<crate::shared::redis::TeamRedis>,
    homes: &Homes,
    ledger: &LedgerPlace,
) -> anyhow::Result<Arc<crate::shared::team_limits::TeamLimits>> {
    use crate::shared::{member_limits::MemberLimiter, permits::GlobalPermits};
    let lease = std::time::Duration::from_millis(team.permit_lease_ms);
    let permits = match &redis {
        Some(redis) => Some(GlobalPermits::start(redis.clone(), lease)?),
        None => None,
    };
    let prices =
        PriceBook::load(&homes.pricing_overrides()).unwrap_or_else(|_| PriceBook::built_in());
    // The day spend counters are raised to the team's ledger (a SQLite ledger is one
    // instance's, not the team's).
    if let (Some(redis), LedgerPlace::Postgres(_)) = (&redis, ledger) {
        let period = std::time::Duration::from_secs(team.spend_reconcile_secs.max(1));
        crate::shared::spend_reconcile::start(redis.clone(), ledger.clone(), period)?;
    }
    let members = MemberLimiter::start(redis, prices)?;
    Ok(Arc::new(crate::shared::team_limits::TeamLimits {
        permits,
        members,
    }))
}

/// Team mode's member keys: the copy of the team's key table this instance checks requests
/// against, kept by a thread of its own (see [`crate::team::keys`]). The database need not
/// answer yet: until it does, requests are answered `team_keys_unavailable`.
fn start_member_keys(
    team: &crate::config::model::TeamSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Arc<dyn proxy::members::MemberKeys>> {
    use crate::team::keys::{KeyTimings, TeamKeys};
    let url = crate::team::db::DatabaseUrl::from_env(&team.database_url_env, env)?;
    tracing::info!(
        "team mode: every request needs a member's key, checked against the team database at {}",
        url.shown()
    );
    let timings = KeyTimings {
        refresh: std::time::Duration::from_millis(team.key_refresh_ms.max(100)),
        max_age: std::time::Duration::from_secs(team.key_cache_secs),
        ..KeyTimings::default()
    };
    Ok(Arc::new(TeamKeys::start(url, timings)?))
}

/// The address `--host` and `--port` name: an IP address (IPv6 with or without brackets) or
/// `localhost`.
fn listen_addr(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let host = host.trim();
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: std::net::IpAddr = bare.parse().with_context(|| {
        format!("--host {host} is not an IP address or `localhost` (for example 127.0.0.1 or ::1)")
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// Raises the open-file soft limit to the hard limit: every client connection and every
/// upstream connection is a descriptor, and many systems start processes with a soft limit of
/// 1024 while allowing far more.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0
                || limit.rlim_cur >= limit.rlim_max
            {
                return;
            }
            let wanted = limit.rlim_max;
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                tracing::debug!(
                    "could not raise the open-file limit from {}: {}",
                    limit.rlim_cur,
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Ctrl-C and SIGTERM, caught from the moment this is called: whoever sees the banner may
/// signal at once, and the default action (exit without switching Codex back) must not win.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_port_follows_the_proxy_port() {
        assert_eq!(admin_port(None, 3211), 4211);
        assert_eq!(admin_port(None, 0), 0, "both chosen by the system");
        assert_eq!(admin_port(None, 65000), 0, "past the last port");
        assert_eq!(admin_port(Some(5000), 3211), 5000);
    }

    #[test]
    fn hosts_to_listen_on() {
        assert_eq!(
            listen_addr("localhost", 3211).unwrap().to_string(),
            "127.0.0.1:3211"
        );
        assert_eq!(listen_addr("::1", 1).unwrap().to_string(), "[::1]:1");
        assert_eq!(listen_addr("[::1]", 1).unwrap().to_string(), "[::1]:1");
        assert_eq!(listen_addr("0.0.0.0", 1).unwrap().to_string(), "0.0.0.0:1");
        let err = listen_addr("relay.example", 1).unwrap_err().to_string();
        assert!(err.contains("localhost"), "{err}");
    }
}
