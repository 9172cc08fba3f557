//! What the admin API serves from a running `serve`: the [`Console`] over its proxy state,
//! balance service, ledger and diagnostics. Here, at the top, so the admin API and the engines
//! need not know each other. Disk and SQLite work runs on blocking threads, never on the event
//! loop the admin API shares with the proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::{
    Console, EvidenceQuery, Problem, RecentQuery, SeriesQuery, SummaryQuery, UnknownProvider,
};
use crate::balance::report::{EndpointBalance, RefreshReport};
use crate::balance::service::BalanceHandle;
use crate::codex::preset::{Compaction, Preset};
use crate::config::Homes;
use crate::diagnose::capabilities::Options;
use crate::diagnose::evidence::{EvidenceFilter, EvidenceKind, EvidenceLog};
use crate::diagnose::exchange::Limits;
use crate::diagnose::{self, Context, Targets, smoke};
use crate::ledger::place::KeptReader;
use crate::ledger::read::LedgerRead;
use crate::ledger::report::{SinceError, summary_report};
use crate::ledger::writer::LedgerStats;
use crate::ledger::{query, series};
use crate::proxy::ProxyState;
use crate::record::live::LiveRequests;
use crate::routing::Upstream;
use crate::time::Millis;

/// Reloads the config; `Ok` says what is now in force.
pub type Reload = Arc<dyn Fn() -> anyhow::Result<String> + Send + Sync>;

pub struct ServeConsole {
    /// `None` when `[balance] enabled = false`.
    pub balances: Option<BalanceHandle>,
    pub state: Arc<ProxyState>,
    pub homes: Homes,
    pub proxy: SocketAddr,
    pub started_ms: u64,
    /// `None` when the ledger is off.
    pub ledger: Option<Arc<LedgerStats>>,
    /// Where the ledger is read from (the SQLite file, or `[ledger] url`'s PostgreSQL).
    pub ledger_reader: Arc<KeptReader>,
    pub codex_binary: PathBuf,
    pub reload: Reload,
    /// Notified to stop the serve.
    pub shutdown: Arc<tokio::sync::Notify>,
    /// Requests in flight and the last finished ones.
    pub live: Arc<LiveRequests>,
}

impl ServeConsole {
    /// Whether `upstream` takes a request of no session now, and if not, why (`detail`, the
    /// typed reason, and `why`, its text): what `/providers` and `/routing` show.
    pub(super) fn skip_now(&self, upstream: &Upstream, now: Millis) -> (bool, Option<Value>) {
        let skip = self
            .state
            .routing
            .skip_reason(upstream, None, false, false, false, now);
        let shown = skip
            .as_ref()
            .map(|s| json!({"detail": s, "why": s.describe()}));
        (skip.is_none(), shown)
    }

    fn context(&self) -> (Arc<ProxyState>, EvidenceLog, PathBuf) {
        (
            self.state.clone(),
            EvidenceLog::new(self.homes.relay_evidence()),
            self.codex_binary.clone(),
        )
    }
}

impl Console for ServeConsole {
    fn balances(&self) -> Vec<EndpointBalance> {
        self.balances
            .as_ref()
            .map(BalanceHandle::balances)
            .unwrap_or_default()
    }

    fn refresh_balances(
        &self,
        provider: Option<String>,
    ) -> BoxFuture<'static, anyhow::Result<RefreshReport>> {
        let handle = self.balances.clone();
        async move {
            let Some(handle) = handle else {
                anyhow::bail!(
                    "balance lookups are off in this codex-helper ([balance] enabled = false)"
                );
            };
            if let Some(id) = &provider {
                let known = handle.providers();
                if !known.contains(id) {
                    return Err(UnknownProvider {
                        id: id.clone(),
                        known,
                    }
                    .into());
                }
            }
            handle.refresh(provider).await
        }
        .boxed()
    }

    fn runtime(&self) -> anyhow::Result<Value> {
        let plan = self.state.plan();
        let now = crate::time::now_ms();
        let ledger = self.ledger.as_ref().map(|stats| {
            use std::sync::atomic::Ordering::Relaxed;
            json!({"written": stats.written.load(Relaxed), "dropped": stats.dropped.load(Relaxed),
                   "failed": stats.failed.load(Relaxed), "spooled": stats.spooled.load(Relaxed)})
        });
        Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "started_ms": self.started_ms,
            "uptime_ms": now.saturating_sub(self.started_ms),
            "proxy": format!("http://{}", self.proxy),
            "config_path": self.state.config_path.display().to_string(),
            "endpoints": plan.graph.upstreams.iter().map(|u| u.key().to_string()).collect::<Vec<_>>(),
            "entry": plan.graph.entry,
            "preset": self.state.client().preset_name(),
            "ledger": ledger,
            "balances": self.balances.is_some(),
            "tasks": self.state.runtimes.alive_tasks(),
        }))
    }

    fn reload(&self) -> BoxFuture<'static, anyhow::Result<Value>> {
        let reload = self.reload.clone();
        async move {
            let done = tokio::task::spawn_blocking(move || reload()).await?;
            match done {
                Ok(message) => Ok(json!({"reloaded": true, "message": message})),
                // The previous config stays in force: that is the answer, not a server error.
                Err(e) => Ok(json!({"reloaded": false, "message": format!("{e:#}; still using the previous config")})),
            }
        }
        .boxed()
    }

    fn shutdown(&self) -> anyhow::Result<()> {
        self.shutdown.notify_one();
        Ok(())
    }

    fn providers(&self) -> anyhow::Result<Value> {
        let plan = self.state.plan();
        let now = self.state.clock().now();
        let endpoints: Vec<Value> = plan
            .graph
            .upstreams
            .iter()
            .map(|u| {
                let (routable, skip) = self.skip_now(u, now);
                json!({
                    "provider": u.provider,
                    "endpoint": u.endpoint,
                    "key": u.key().as_str(),
                    "host": diagnose::capabilities::host(u),
                    "routable": routable,
                    "skip": skip,
                    "price_multiplier": u.price_multiplier,
                    "limit": u.limit.as_ref().map(|l| json!({"max": l.max, "group": l.group})),
                })
            })
            .collect();
        Ok(json!({ "providers": endpoints }))
    }

    fn set_runtime(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        self.runtime_switch(body)
    }

    fn persist_default_profile(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        self.write_default_profile(body)
    }

    fn persist_routing(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        self.write_routing(body)
    }

    fn explain(&self, model: Option<String>, session: Option<String>) -> anyhow::Result<Value> {
        let explanation = self.explain_now(model.as_deref(), session.as_deref());
        Ok(serde_json::to_value(explanation)?)
    }

    fn profiles(&self) -> anyhow::Result<Value> {
        Ok(self.profiles_json())
    }

    fn session_overrides(&self) -> anyhow::Result<Value> {
        Ok(self.session_overrides_json())
    }

    fn set_session_overrides(&self, body: Value) -> anyhow::Result<Value> {
        ServeConsole::set_session_overrides(self, body)
    }

    fn apply_session_profile(&self, body: Value) -> anyhow::Result<Value> {
        ServeConsole::apply_session_profile(self, body)
    }

    fn snapshot(&self, recent: usize) -> BoxFuture<'static, anyhow::Result<Value>> {
        let (active, mut finished) = self.live.snapshot();
        finished.truncate(recent);
        let runtime = self.runtime();
        let endpoints = self.providers();
        let balances = self.balances();
        let sessions: Vec<Value> = self
            .state
            .routing
            .affinity
            .recent(20)
            .into_iter()
            .map(|(id, binding)| {
                json!({"session": id, "upstream": binding.upstream,
                    "last_selected_ms": binding.last_selected_ms, "change_reason": binding.change_reason,
                    "overrides": self.overrides_of(&id)})
            })
            .collect();
        let reader = self.ledger_reader.clone();
        async move {
            let usage = tokio::task::spawn_blocking(move || usage_rollups(&reader)).await??;
            Ok(json!({
                "at_ms": crate::time::now_ms(),
                "runtime": runtime?,
                "active": active,
                "recent": finished,
                "sessions": sessions,
                "endpoints": endpoints?["providers"],
                "balances": balances,
                "usage": usage,
            }))
        }
        .boxed()
    }

    fn sessions(&self, limit: usize) -> BoxFuture<'static, anyhow::Result<Value>> {
        self.sessions_json(limit)
    }

    fn session(&self, id: String) -> BoxFuture<'static, anyhow::Result<Value>> {
        let binding = self.state.routing.affinity.any(&id);
        let next = self.explain_now(None, Some(&id));
        let overrides = self.overrides_of(&id);
        let reader = self.ledger_reader.clone();
        async move {
            let session = id.clone();
            let requests = tokio::task::spawn_blocking(move || {
                let filter = query::Filter {
                    session: Some(session),
                    ..query::Filter::default()
                };
                let found = reader.read(|ledger| ledger.find(&filter, 20))?;
                anyhow::Ok(found.unwrap_or_default())
            })
            .await??;
            if binding.is_none() && requests.is_empty() && overrides.is_null() {
                return Err(Problem::not_found(format!("no session `{id}` is known")).into());
            }
            Ok(
                json!({"session": id, "binding": binding, "next": next, "requests": requests,
                "overrides": overrides}),
            )
        }
        .boxed()
    }

    fn ledger_recent(&self, query: RecentQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        let reader = self.ledger_reader.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let filter = query::Filter {
                    errors_only: query.errors_only,
                    provider: query.provider,
                    model: query.model,
                    session: query.session,
                    after_id: None,
                };
                let rows = read_ledger(&reader, |ledger| ledger.find(&filter, query.limit))?;
                Ok(json!({ "requests": rows }))
            })
            .await?
        }
        .boxed()
    }

    fn ledger_series(&self, query: SeriesQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        let reader = self.ledger_reader.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let now = crate::time::now_ms();
                let days = query
                    .day_starts
                    .map(|given| series::day_starts(&given, now).map_err(Problem::bad_request))
                    .transpose()?;
                let series = read_ledger(&reader, |ledger| {
                    let bounds = series::bounds(ledger.clock(), query.window, now, days)?;
                    let (from, to) = (bounds[0], bounds[bounds.len() - 1]);
                    let samples = ledger.series_samples(from, to, &query.filter)?;
                    Ok(series::assemble(query.window, bounds, samples))
                })?;
                Ok(serde_json::to_value(series)?)
            })
            .await?
        }
        .boxed()
    }

    fn ledger_chain(&self, trace_id: String) -> BoxFuture<'static, anyhow::Result<Value>> {
        let reader = self.ledger_reader.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let chain =
                    read_ledger(&reader, |ledger| ledger.chain(&trace_id))?.ok_or_else(|| {
                        Problem::not_found(format!("the ledger has no request `{trace_id}`"))
                    })?;
                Ok(serde_json::to_value(chain)?)
            })
            .await?
        }
        .boxed()
    }

    fn ledger_summary(&self, q: SummaryQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        let reader = self.ledger_reader.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let by_name = q.by.as_deref().unwrap_or("provider");
                let by = query::GroupBy::parse(by_name).ok_or_else(|| {
                    Problem::bad_request(format!(
                        "`by` is {}, not `{by_name}`",
                        query::GroupBy::names()
                    ))
                })?;
                let balance = q
                    .balance
                    .map(|b| b.parse::<f64>().ok().filter(|b| b.is_finite() && *b >= 0.0))
                    .map(|b| {
                        b.ok_or_else(|| {
                            Problem::bad_request("`balance` is a number of USD, 0 or more")
                        })
                    })
                    .transpose()?;
                let since = q.since.unwrap_or_else(|| "24h".into());
                let report = read_ledger(&reader, |ledger| {
                    summary_report(ledger, &since, by, balance, crate::time::now_ms())
                })
                .map_err(|e| match e.downcast::<SinceError>() {
                    Ok(since) => Problem::bad_request(since.to_string()).into(),
                    Err(e) => e,
                })?;
                Ok(serde_json::to_value(report)?)
            })
            .await?
        }
        .boxed()
    }

    fn forecast(&self) -> BoxFuture<'static, anyhow::Result<Value>> {
        let balances = self.balances();
        let homes = self.homes.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut groups = super::balance_view::group(balances);
                super::balance::add_forecasts(&homes, &mut groups, crate::time::now_ms())?;
                Ok(json!({ "providers": groups }))
            })
            .await?
        }
        .boxed()
    }

    fn relay_capabilities(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let (state, evidence, codex_binary) = self.context();
        async move {
            let asked: CapabilitiesBody = parse_body(body)?;
            let current = asked
                .preset
                .as_deref()
                .map(Preset::parse)
                .transpose()
                .map_err(Problem::bad_request)?;
            let compaction = asked
                .compaction
                .as_deref()
                .map(Compaction::parse)
                .transpose()
                .map_err(Problem::bad_request)?
                .unwrap_or_default();
            let options = Options {
                model: asked.model.clone(),
                compaction,
                image: asked.image,
                current,
                limits: Limits {
                    timeout: timeout(asked.timeout_secs, 15, 300)?,
                    body_cap: 2 << 20,
                },
            };
            let targets = Targets {
                provider: asked.provider_id,
                endpoint: asked.endpoint_id,
            };
            let ctx = Context {
                state: &state,
                evidence,
                codex_binary,
            };
            let (reports, note) = diagnose::relay_capabilities(&ctx, &targets, &options, &|_| {})
                .await
                .map_err(|e| Problem::bad_request(format!("{e:#}")))?;
            Ok(
                json!({"api_version": 1, "model": asked.model, "compaction": compaction,
                "current_preset": current, "endpoints": reports, "evidence": note}),
            )
        }
        .boxed()
    }

    fn relay_live_smoke(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let (state, evidence, codex_binary) = self.context();
        async move {
            // Before anything else: without the acknowledgement, nothing is read or sent.
            let acknowledgement = body.get("acknowledgement").and_then(Value::as_str);
            smoke::check_acknowledgement(acknowledgement).map_err(Problem::bad_request)?;
            let asked: SmokeBody = parse_body(body)?;
            let cases = smoke::cases(asked.image, asked.compact_v2, asked.websocket);
            let limits = Limits {
                timeout: timeout(asked.timeout_secs, 120, 600)?,
                body_cap: 16 << 20,
            };
            let targets = Targets {
                provider: asked.provider_id,
                endpoint: asked.endpoint_id,
            };
            let ctx = Context {
                state: &state,
                evidence,
                codex_binary,
            };
            let (report, note) = diagnose::relay_live_smoke(
                &ctx,
                Some(smoke::ACKNOWLEDGEMENT),
                &targets,
                &asked.model,
                &cases,
                limits,
                &|_| {},
            )
            .await
            .map_err(|e| Problem::bad_request(format!("{e:#}")))?;
            let mut answer = serde_json::to_value(&report)?;
            answer["api_version"] = json!(1);
            answer["evidence"] = serde_json::to_value(&note)?;
            Ok(answer)
        }
        .boxed()
    }

    fn relay_evidence(&self, q: EvidenceQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        let log = EvidenceLog::new(self.homes.relay_evidence());
        async move {
            let kind = match q.kind.as_deref() {
                None => None,
                Some("capabilities") => Some(EvidenceKind::Capabilities),
                Some("live_smoke" | "live-smoke") => Some(EvidenceKind::LiveSmoke),
                Some(other) => {
                    return Err(Problem::bad_request(format!(
                        "`kind` is capabilities or live_smoke, not `{other}`"
                    ))
                    .into());
                }
            };
            let filter = EvidenceFilter {
                limit: q.limit,
                provider: q.provider,
                kind,
            };
            let read = tokio::task::spawn_blocking(move || log.read(&filter)).await??;
            Ok(json!({"records": read.records, "skipped": read.skipped}))
        }
        .boxed()
    }

    fn routing(&self) -> anyhow::Result<Value> {
        self.routing_view()
    }

    fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.metrics_text())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapabilitiesBody {
    provider_id: Option<String>,
    endpoint_id: Option<String>,
    model: Option<String>,
    preset: Option<String>,
    compaction: Option<String>,
    #[serde(default)]
    image: bool,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmokeBody {
    #[allow(dead_code)]
    acknowledgement: String,
    model: String,
    provider_id: Option<String>,
    endpoint_id: Option<String>,
    #[serde(default)]
    image: bool,
    #[serde(default)]
    compact_v2: bool,
    #[serde(default)]
    websocket: bool,
    timeout_secs: Option<u64>,
}

pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: Value) -> anyhow::Result<T> {
    serde_json::from_value(body).map_err(|e| Problem::bad_request(format!("the body: {e}")).into())
}

fn timeout(given: Option<u64>, default: u64, max: u64) -> anyhow::Result<Duration> {
    match given.unwrap_or(default) {
        secs @ 1.. if secs <= max => Ok(Duration::from_secs(secs)),
        _ => Err(Problem::bad_request(format!("`timeout_secs` is 1 to {max}")).into()),
    }
}

/// Totals of the last hour and day, and the day by provider; `null` without a ledger.
fn usage_rollups(reader: &KeptReader) -> anyhow::Result<Value> {
    let now = crate::time::now_ms();
    let sums = reader.read(|ledger| {
        let hour = ledger.summary(now.saturating_sub(3_600_000), query::GroupBy::Provider)?;
        let day = ledger.summary(now.saturating_sub(24 * 3_600_000), query::GroupBy::Provider)?;
        Ok(json!({
            "last_hour": query::total(&hour),
            "last_24h": query::total(&day),
            "by_provider_24h": day,
        }))
    });
    Ok(unless_database_away(reader, sums)?
        .flatten()
        .unwrap_or(Value::Null))
}

/// A PostgreSQL ledger that cannot be read leaves the status and sessions without their usage
/// (said in the log) rather than failing them: the proxy serves on meanwhile.
fn unless_database_away<T>(
    reader: &KeptReader,
    answer: anyhow::Result<Option<T>>,
) -> anyhow::Result<Option<Option<T>>> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(e) if reader.place().kind() == "postgres" => {
            tracing::debug!("usage left out: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Each session's totals over the last 24 hours (none when there is no ledger yet).
pub(super) fn session_usage(reader: &KeptReader) -> anyhow::Result<Vec<query::SummaryRow>> {
    let since = crate::time::now_ms().saturating_sub(24 * 3_600_000);
    let rows = reader.read(|ledger| ledger.summary(since, query::GroupBy::Session));
    Ok(unless_database_away(reader, rows)?
        .flatten()
        .unwrap_or_default())
}

/// `read` over the ledger; not found when there is none yet.
fn read_ledger<T>(
    reader: &KeptReader,
    read: impl FnOnce(&dyn LedgerRead) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    reader
        .read(read)?
        .ok_or_else(|| Problem::not_found("the ledger has no requests yet").into())
}
