//! The helper config file, as typed data.
//!
//! The keys follow the original codex-helper's `version = 5` layout so an existing file keeps
//! working. Keys we know but do not act on yet are parsed into [`Deferred`] fields and reported
//! at start-up, rather than rejected (which would break existing files) or silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::outbound::OutboundSetting;
use super::v5_retry::{RetryLayerConfig, StatusList};

/// The config format version this build writes.
pub const CURRENT_VERSION: u32 = 5;

/// A key that is recognised but not acted upon by this build.
pub type Deferred = Option<toml::Value>;

/// `~/.codex-helper/config.toml`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelperConfig {
    /// Format version: 5 (4 is the same shape and is accepted).
    pub version: Option<u32>,
    #[serde(default)]
    pub codex: CodexSection,
    /// How the proxy itself behaves (timeouts, body limits).
    #[serde(default)]
    pub proxy: ProxySettings,
    /// The request ledger.
    #[serde(default)]
    pub ledger: LedgerSettings,
    /// Balance lookups and what routing does with an exhausted relay.
    #[serde(default)]
    pub balance: BalanceSettings,
    /// `[team]`: what `serve --team` shares with the team's other instances.
    #[serde(default)]
    pub team: TeamSettings,

    // Sections of the original codex-helper that later work will give a meaning.
    /// When to retry, fail over and cool down.
    #[serde(default)]
    pub retry: RetryConfig,

    #[schemars(with = "Option<serde_json::Value>")]
    pub default_service: Deferred,
    /// `[notify]`: events for the user (long turns, failovers, exhausted relays, all blocked).
    #[serde(default)]
    pub notify: super::notify::NotifySettings,
    #[schemars(with = "Option<serde_json::Value>")]
    pub ui: Deferred,
    #[schemars(with = "Option<serde_json::Value>")]
    pub claude: Deferred,
}

/// `[codex]`: the Codex service.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodexSection {
    /// `[codex.providers.<id>]`: the user's relays.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[codex.routing]`: the route graph. Absent means every enabled provider in name order.
    pub routing: Option<RoutingConfig>,

    /// `[codex.client_patch]`: how `switch on` (and `serve`) patch Codex.
    pub client_patch: Option<ClientPatchConfig>,
    /// The profile whose values fill in what a request leaves out (never what it sets).
    pub default_profile: Option<String>,
    /// `[codex.profiles.<name>]`: named sets of model, reasoning effort and service tier that
    /// the console applies to a session.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
}

/// `[codex.profiles.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Another profile this one starts from; its own keys win.
    pub extends: Option<String>,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub service_tier: Option<String>,
    /// The original's station binding, dropped by its own migration: read, not acted on.
    #[schemars(with = "Option<serde_json::Value>")]
    pub station: Deferred,
}

/// `[codex.providers.<id>]`: one relay account, reachable at one or more endpoints.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Display name.
    pub alias: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Shorthand for an endpoint named `default` with priority 0.
    pub base_url: Option<String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Name of an environment variable holding the bearer token.
    pub auth_token_env: Option<String>,
    /// Sent as `X-API-Key: <key>`.
    pub api_key: Option<String>,
    /// Name of an environment variable holding the `X-API-Key` value.
    pub api_key_env: Option<String>,
    /// The original's `[…auth]` table of the keys above (they win over it).
    pub auth: Option<super::v5_auth::ProviderAuth>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Models this provider serves (exact or single-`*` wildcard). Empty means all.
    #[serde(default, alias = "supportedModels")]
    pub supported_models: BTreeMap<String, bool>,
    /// Requested model → model sent upstream (exact or single-`*` wildcard).
    #[serde(default, alias = "modelMapping")]
    pub model_mapping: BTreeMap<String, String>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointConfig>,
    /// Concurrency limits for every endpoint of this provider (an endpoint may override).
    pub limits: Option<Limits>,

    /// Multiplies this relay's prices (e.g. 0.5 for a relay that charges half the list price).
    pub price_multiplier: Option<f64>,
    /// How this relay is reached: a proxy URL, `"direct"` or `"env"`; over `[proxy]`'s.
    pub outbound_proxy: Option<OutboundSetting>,
}

/// `limits`: how many requests may be in flight at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// More than this and a request goes to the next candidate. Must be at least 1.
    pub max_concurrent_requests: Option<u32>,
    /// Endpoints with the same group share one count (one account behind several addresses).
    pub limit_group: Option<String>,
}

/// `[codex.providers.<id>.endpoints.<id>]`: one address of a provider.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub base_url: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Lower is tried first.
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Overrides the provider's entries of the same name.
    #[serde(default, alias = "supportedModels")]
    pub supported_models: BTreeMap<String, bool>,
    /// Overrides the provider's entries of the same name.
    #[serde(default, alias = "modelMapping")]
    pub model_mapping: BTreeMap<String, String>,
    /// Overrides the provider's `limits`, field by field.
    pub limits: Option<Limits>,
    /// Overrides the provider's `outbound_proxy`.
    pub outbound_proxy: Option<OutboundSetting>,
}

/// `[codex.routing]`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    #[serde(default = "main_node")]
    pub entry: String,
    #[serde(default)]
    pub routes: BTreeMap<String, RouteNode>,

    /// How strongly a session sticks to the endpoint that served it.
    #[serde(default)]
    pub affinity_policy: AffinityPolicy,
    /// `fallback-sticky`: how long a session may stay on a fallback once the preferred group is
    /// back. Unset: no limit; 0: return at once.
    pub fallback_ttl_ms: Option<u64>,
    /// `fallback-sticky`: after this long on a fallback, the preferred group is tried again.
    pub reprobe_preferred_after_ms: Option<u64>,
}

impl std::fmt::Display for AffinityPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::PreferredGroup => "preferred-group",
            Self::FallbackSticky => "fallback-sticky",
            Self::Hard => "hard",
        })
    }
}

/// `[codex.routing] affinity_policy`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum AffinityPolicy {
    /// No stickiness: always the best available candidate.
    Off,
    /// Sticky within the best available group; back to a better group as soon as it is up.
    PreferredGroup,
    /// Stay on the endpoint that last served the session while it is available.
    #[default]
    FallbackSticky,
    /// Only the endpoint that served the session; if it is down, the request fails.
    Hard,
}

/// `[codex.routing.routes.<node>]`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteNode {
    #[serde(default)]
    pub strategy: Strategy,
    /// Providers, other nodes, or `provider.endpoint`, in order.
    #[serde(default)]
    pub children: Vec<String>,
    /// Free-form notes; not used for routing.
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<toml::Value>,
    /// `manual-sticky`: the one provider, node or `provider.endpoint` to use.
    pub target: Option<String>,
    /// `tag-preferred`: a child is preferred when any provider in it has all tags of any map.
    pub prefer_tags: Option<Vec<BTreeMap<String, String>>>,
    /// `tag-preferred`: `continue` to the other children when no preferred one is available,
    /// or `stop`.
    pub on_exhausted: Option<OnExhausted>,
    /// `conditional`: what the request must match for `then`; otherwise `default`.
    pub when: Option<When>,
    pub then: Option<String>,
    pub default: Option<String>,
}

/// `on_exhausted` of a `tag-preferred` node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnExhausted {
    #[default]
    Continue,
    Stop,
}

/// `when` of a `conditional` node: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Exact, case-sensitive.
    pub model: Option<String>,
    /// Exact request path, case-sensitive.
    pub path: Option<String>,
    /// Case-insensitive.
    pub method: Option<String>,
    /// Header name (case-insensitive) → exact value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body `service_tier`, case-insensitive.
    pub service_tier: Option<String>,
    /// Body `reasoning.effort`, case-insensitive.
    pub reasoning_effort: Option<String>,
}

impl When {
    pub fn is_empty(&self) -> bool {
        self == &When::default()
    }
}

/// How a route node orders its children.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    OrderedFailover,
    TagPreferred,
    ManualSticky,
    Conditional,
}

/// `[proxy]`: how the proxy talks to clients and upstreams.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// Time allowed to open a connection to an upstream before trying the next one.
    pub connect_timeout_ms: u64,
    /// Time allowed until an upstream's response headers arrive before trying the next one.
    pub response_header_timeout_ms: u64,
    /// A stream silent for this long is ended with a `response.failed` event. 0 disables.
    pub stream_idle_timeout_ms: u64,
    /// Largest request body accepted as sent on the wire.
    pub max_request_body_bytes: u64,
    /// Largest request body accepted after `Content-Encoding` decoding.
    pub max_decoded_body_bytes: u64,
    /// Most bytes of request bodies held at once, across every client: a body arriving past
    /// it is answered 503 `request_bodies_over_budget`, so a crowd of large uploads cannot
    /// take the machine's memory. 0 disables; otherwise at least `max_request_body_bytes` and
    /// `max_decoded_body_bytes`, so any one body the caps allow fits.
    pub max_request_bytes_in_flight: u64,
    /// `auto` decodes compressed request bodies; `passthrough` forwards them untouched.
    /// `CODEX_HELPER_REQUEST_BODY_ENCODING` overrides it.
    pub request_body_encoding: BodyEncodingMode,
    /// The Codex binary asked for its bundled model metadata (`codex debug models --bundled`)
    /// when a relay's `/models` list is translated for Codex. The default `codex` means: the
    /// one `switch on` found and recorded, else a search (`codex::discover`).
    pub codex_binary: String,
    /// Time allowed to receive a whole request body; a slower or stalled upload gets 408.
    pub request_body_timeout_ms: u64,
    /// Names besides loopback ones (`localhost`, `127.0.0.1`, `[::1]`) that requests may be
    /// addressed to (`Host`), e.g. when the proxy is reached through a reverse proxy. `"*"`
    /// allows any. Without this, a web page using DNS rebinding could spend relay credit.
    pub allowed_hosts: Vec<String>,
    /// How relays are reached when their provider does not say: a proxy URL (`http`,
    /// `https`, `socks5`, `socks5h`), `"direct"`, or `"env"` (the default: `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, never for loopback relays).
    pub outbound_proxy: Option<OutboundSetting>,
    /// Threads serving requests, each with an event loop of its own; 0 (the default) means one
    /// per CPU core. Connections are handed to them in turn; each stays on its thread.
    pub threads: usize,
    /// Time a client has to send a whole request head (request line and headers): from the
    /// connection's opening, or on a kept-alive connection from the next request's first
    /// byte. A slower client (a slowloris) is disconnected. 0 disables; otherwise at least 100.
    pub header_read_timeout_ms: u64,
    /// A kept-alive client connection with no request for this long is closed (above Codex's
    /// own 90 s, so Codex closes first and never sends into a closing socket). 0 disables;
    /// otherwise at least 100.
    pub keep_alive_idle_timeout_ms: u64,
    /// A connection, a client's or a relay's, on which a write has waited this long for the
    /// peer to make room is closed: a client that stops reading its answer, a relay that never
    /// reads a request's body. What it held (its relay connection, concurrency permit, queued
    /// body) is freed. 0 disables; otherwise at least 100. Where a relay's socket cannot show
    /// it (an HTTP/2 relay that grants no flow-control window, a relay through an outbound
    /// proxy), a request body its HTTP layer has not asked more of for this long counts.
    /// Sockets and HTTP/1 report progress in steps of hundreds of KiB, so a peer must take
    /// that much within the limit: short limits also cut off slow but steady peers.
    pub write_stall_timeout_ms: u64,
    /// Largest request head (request line and headers) in bytes, at least 8192; a larger one
    /// is answered 431 and the connection closed.
    pub max_header_bytes: usize,
    /// Most header fields in one request, at least 16; more are answered 431.
    pub max_headers: usize,
    /// Most client connections open at once, at least 1. Past it a new connection is answered
    /// 503 `too_many_connections` with `Retry-After` and closed.
    pub max_client_connections: usize,
    /// Name of an environment variable holding the client key (at least 16 characters; the
    /// key itself is never written in this file). When set, a request from another machine,
    /// or relayed by a proxy on this one (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`), must
    /// carry `Authorization: Bearer <key>` or is answered 401; the key never reaches a relay.
    /// Needed (or `serve --unsafe-listen-without-client-key`) to listen beyond loopback.
    pub client_key_env: Option<String>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 10_000,
            response_header_timeout_ms: 300_000,
            stream_idle_timeout_ms: 300_000,
            max_request_body_bytes: 32 << 20,
            max_decoded_body_bytes: 64 << 20,
            max_request_bytes_in_flight: 512 << 20,
            request_body_encoding: BodyEncodingMode::Auto,
            codex_binary: "codex".into(),
            request_body_timeout_ms: 60_000,
            allowed_hosts: Vec::new(),
            outbound_proxy: None,
            threads: 0,
            header_read_timeout_ms: 30_000,
            keep_alive_idle_timeout_ms: 120_000,
            write_stall_timeout_ms: 60_000,
            max_header_bytes: 64 << 10,
            max_headers: 100,
            max_client_connections: 1024,
            client_key_env: None,
        }
    }
}

/// What the proxy does with a compressed request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BodyEncodingMode {
    /// Decode it, so the body can be read and relays that only take plain JSON get plain JSON.
    #[default]
    Auto,
    /// Forward the original bytes and headers unchanged.
    #[serde(alias = "preserve", alias = "raw")]
    Passthrough,
}

impl Strategy {
    /// The name a config file uses (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderedFailover => "ordered-failover",
            Self::TagPreferred => "tag-preferred",
            Self::ManualSticky => "manual-sticky",
            Self::Conditional => "conditional",
        }
    }
}

impl ProxySettings {
    /// `write_stall_timeout_ms` as a limit: None when it is 0.
    pub fn write_stall_limit(&self) -> Option<std::time::Duration> {
        (self.write_stall_timeout_ms > 0)
            .then(|| std::time::Duration::from_millis(self.write_stall_timeout_ms))
    }

    /// Applies `CODEX_HELPER_REQUEST_BODY_ENCODING` (read once, at start-up), which wins over
    /// the file so a user can switch decoding off without editing it.
    pub fn with_env_overrides(
        mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        if let Some(value) =
            env("CODEX_HELPER_REQUEST_BODY_ENCODING").filter(|v| !v.trim().is_empty())
        {
            self.request_body_encoding = BodyEncodingMode::parse(&value).ok_or_else(|| {
                anyhow::anyhow!(
                    "CODEX_HELPER_REQUEST_BODY_ENCODING=\"{value}\" is not valid; allowed: auto, passthrough"
                )
            })?;
        }
        Ok(self)
    }
}

impl BodyEncodingMode {
    /// Reads the `CODEX_HELPER_REQUEST_BODY_ENCODING` spelling; `None` for anything unknown.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "passthrough" | "preserve" | "raw" => Some(Self::Passthrough),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

fn main_node() -> String {
    "main".to_string()
}

/// `[retry]`: retry and failover policy. A `profile` sets every value; keys set here override it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default)]
    pub profile: RetryProfile,
    /// Tries on one endpoint for a retryable failure before failing over (1 = no retry).
    pub same_upstream_attempts: Option<u32>,
    /// First backoff between tries on one endpoint; doubles each try.
    pub backoff_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    /// Random extra wait, 0 to this, added to each backoff.
    pub jitter_ms: Option<u64>,
    /// Longest `Retry-After` honoured before failing over instead of waiting.
    pub retry_after_max_ms: Option<u64>,
    /// Cooldown after an endpoint fails over; grows by `cooldown_factor` per repeated failure.
    pub cooldown_secs: Option<u64>,
    pub cooldown_factor: Option<f64>,
    /// The longest cooldown: a growing one stops here, and a relay's `Retry-After` is believed
    /// up to this.
    pub cooldown_max_secs: Option<u64>,
    /// Cooldown after a Cloudflare challenge page (the relay needs a browser check).
    pub cloudflare_challenge_cooldown_secs: Option<u64>,
    /// A streamed reply is held until its first real event; this long without one fails over.
    pub first_event_timeout_ms: Option<u64>,

    // The original codex-helper's v5 names (see `v5_retry` and `routing::retry::rules`).
    /// Tries on the same endpoint, and what they act on.
    pub upstream: Option<RetryLayerConfig>,
    /// Failing over to the next candidate, and what it acts on.
    pub provider: Option<RetryLayerConfig>,
    /// Statuses handed back to the client as they are (unless a layer's `on_class` names the
    /// failure's class).
    pub never_on_status: Option<StatusList>,
    /// Failure classes handed back to the client as they are.
    #[schemars(with = "Option<Vec<super::v5_retry::ClassName>>")]
    pub never_on_class: Option<Vec<String>>,
    /// Cooldown after a Cloudflare 524 (origin timeout); unset: the growing cooldown.
    pub cloudflare_timeout_cooldown_secs: Option<u64>,
    /// The original's name for `cooldown_secs`.
    pub transport_cooldown_secs: Option<u64>,
    /// The original's name for `cooldown_factor`.
    pub cooldown_backoff_factor: Option<f64>,
    /// The original's name for `cooldown_max_secs`.
    pub cooldown_backoff_max_secs: Option<u64>,
    /// Legacy multi-station failover switch: no effect on route graphs (as in the original).
    pub allow_cross_station_before_first_output: Option<bool>,
    /// `[retry.reasoning_guard]` of later original releases: read, not acted on.
    #[schemars(with = "Option<serde_json::Value>")]
    pub reasoning_guard: Deferred,
}

/// Named sets of retry values.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RetryProfile {
    /// One retry on the same endpoint, then fail over.
    #[default]
    Balanced,
    /// Several retries on the same endpoint before failing over (relay-side state matters).
    SameUpstream,
    /// Fail over at once; short cooldowns.
    AggressiveFailover,
    /// Retry the cheap primary harder and cool the rest longer before spending elsewhere.
    CostPrimary,
}

/// `[team]`: team mode (`serve --team`), where several instances serve one team.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TeamSettings {
    /// The environment variable holding the team's PostgreSQL URL
    /// (`postgres://USER:PASSWORD@HOST:PORT/DBNAME`), where members' keys live. The URL is
    /// never written in this file: it usually carries a password.
    pub database_url_env: String,
    /// How often (ms) each instance reads the keys again: disabling or removing a key takes
    /// effect within this. A key added elsewhere works at once.
    #[schemars(range(min = 100, max = 3_600_000))]
    pub key_refresh_ms: u64,
    /// How long (seconds) an instance keeps checking keys against its last copy while the
    /// database is unreachable; past it, requests are answered `team_keys_unavailable`.
    pub key_cache_secs: u64,
    /// The team's Redis, where instances share routing state and count limits:
    /// `redis://HOST:PORT/DB` (a password as `redis://:PASSWORD@HOST…`), or `env:NAME` for a
    /// URL held by an environment variable. Unset: each instance keeps its own state.
    pub redis_url: Option<String>,
    /// The longest (ms) a request waits on Redis; past it, the instance goes on with its own
    /// copy of the state.
    #[schemars(range(min = 1, max = 1000))]
    pub redis_wait_ms: u64,
    /// How long (ms) a global concurrency permit lives in Redis without renewal: a held
    /// permit is renewed every third of it, so an instance that dies gives its permits back
    /// within this.
    #[schemars(range(min = 1000, max = 3_600_000))]
    pub permit_lease_ms: u64,
    /// How often (seconds) the members' day spend counters in Redis are raised to what the
    /// PostgreSQL ledger (`[ledger] url`) recorded, by one instance at a time.
    #[schemars(range(min = 1, max = 86_400))]
    pub spend_reconcile_secs: u64,
}

impl Default for TeamSettings {
    fn default() -> Self {
        Self {
            database_url_env: "CODEX_HELPER_DATABASE_URL".to_string(),
            key_refresh_ms: 2_000,
            key_cache_secs: 600,
            redis_url: None,
            redis_wait_ms: 20,
            permit_lease_ms: 20_000,
            spend_reconcile_secs: 300,
        }
    }
}

/// `[ledger]`: where requests are recorded and for how long.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSettings {
    /// `false` records nothing (the log line is still written).
    pub enabled: bool,
    /// Rows older than this are deleted.
    pub retention_days: u32,
    /// At most this many rows are kept (the oldest go first).
    pub max_rows: u64,
    /// A hard cap on the database file; past it, new rows are lost (and counted) until
    /// retention makes room. Unset: no cap beyond `max_rows`.
    pub max_size_mb: Option<u64>,
    /// How often (seconds) retention deletes what `retention_days` and `max_rows` let go; it
    /// also runs once at start. Lower it only to see retention at work (the soak benchmark).
    pub retention_interval_secs: u64,
    /// The ledger in PostgreSQL instead of the SQLite file (a team's instances then share one
    /// ledger): `postgres://USER:PASSWORD@HOST:PORT/DBNAME`, or `env:VAR` naming an environment
    /// variable that holds that URL (so the password stays out of this file). Unset: SQLite.
    pub url: Option<String>,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        // A year of heavy use: a few thousand requests a day.
        Self {
            enabled: true,
            retention_days: 400,
            max_rows: 2_000_000,
            max_size_mb: None,
            retention_interval_secs: 600,
            url: None,
        }
    }
}

/// `[balance]`: when relays' balances are looked up and how long exhaustion keeps a relay out
/// of routing. Which adapter reads which relay is in `usage_providers.json`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceSettings {
    /// `false`: no balance is ever looked up (and none takes a relay out of routing).
    pub enabled: bool,
    /// Look every relay up once, in the background, when `serve` starts.
    pub refresh_on_start: bool,
    /// A request that succeeds (streamed), gets a 429 or finds every relay blocked asks for
    /// its relays' balances this long after; more such requests in between change nothing.
    #[schemars(range(max = 2_592_000_000_u64))]
    pub request_refresh_delay_ms: u64,
    /// An exhausted relay is looked up again this often, so a refill is noticed without
    /// traffic to it. 0 disables.
    #[schemars(range(max = 2_592_000_000_u64))]
    pub exhausted_recheck_ms: u64,
    /// Exhaustion takes a relay out of routing for at most this long after its lookup (less
    /// when the relay says when its window resets).
    #[schemars(range(max = 2_592_000_000_u64))]
    pub max_exhausted_ms: u64,
    /// After a lookup that cannot succeed by retrying (the key is invalid, the account is
    /// inactive) the relay is not asked again for this long, except on demand.
    #[schemars(range(max = 2_592_000_000_u64))]
    pub terminal_backoff_ms: u64,
    /// Time allowed for one balance lookup.
    #[schemars(range(min = 100, max = 120_000))]
    pub timeout_ms: u64,
}

impl Default for BalanceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            refresh_on_start: true,
            request_refresh_delay_ms: 60_000,
            exhausted_recheck_ms: 600_000,
            max_exhausted_ms: 24 * 3_600_000,
            terminal_backoff_ms: 6 * 3_600_000,
            timeout_ms: 6_000,
        }
    }
}

/// `[codex.client_patch]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatchConfig {
    /// `default`, `chatgpt-bridge`, `imagegen-bridge`, `official-relay` or `official-imagegen`.
    pub preset: Option<String>,
    /// The original codex-helper's older name for `preset`.
    pub mode: Option<String>,
    #[serde(default)]
    pub responses_websocket: bool,
    /// `auto`, `local`, `remote-v1` or `remote-v2`.
    pub compaction: Option<String>,
    #[schemars(with = "Option<serde_json::Value>")]
    pub translate_models: Deferred,
    #[schemars(with = "Option<serde_json::Value>")]
    pub hosted_image_generation: Deferred,
}

impl ClientPatchConfig {
    /// The preset and switches it names; `preset` and `mode` must agree when both are set.
    pub fn resolve(
        &self,
    ) -> Result<
        (
            crate::codex::preset::Preset,
            bool,
            crate::codex::preset::Compaction,
        ),
        String,
    > {
        use crate::codex::preset::{Compaction, Preset};
        let parse = |v: &Option<String>| {
            v.as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(Preset::parse)
                .transpose()
        };
        let preset = match (parse(&self.preset)?, parse(&self.mode)?) {
            (Some(p), Some(m)) if p != m => {
                return Err(format!(
                    "conflicting codex.client_patch preset/mode values: `{p}` and `{m}`; keep only `preset`"
                ));
            }
            (p, m) => p.or(m).unwrap_or_default(),
        };
        let compaction = self
            .compaction
            .as_deref()
            .map(Compaction::parse)
            .transpose()?
            .unwrap_or_default();
        Ok((preset, self.responses_websocket, compaction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strategy_name_reads_back_as_that_strategy() {
        for strategy in [
            Strategy::OrderedFailover,
            Strategy::TagPreferred,
            Strategy::ManualSticky,
            Strategy::Conditional,
        ] {
            let read: Strategy =
                serde_json::from_value(serde_json::Value::from(strategy.as_str())).unwrap();
            assert_eq!(read, strategy);
        }
    }
}
