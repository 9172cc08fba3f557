//! `codex-helper balance show|refresh`: relays' balances and quotas.
//!
//! A running `serve` knows the freshest balances and routes by them, so both commands ask it
//! first (through its admin API, found in the running-serve file) and work on their own when
//! none runs: `show` reads the snapshot store, `refresh` looks balances up itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::balance_view::{self, ProviderBalances, Source, prefer_live};
use crate::admin::client;
use crate::balance::report::{EndpointBalance, RefreshReport};
use crate::balance::snapshot::Snapshot;
use crate::config::{Homes, LoadedConfig};
use crate::ledger::report::burn_forecast;
use crate::proxy::Plan;
use crate::running::{self, RunningServe};
use crate::time::now_ms;

/// The burn forecast looks this far back.
const FORECAST_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, clap::Subcommand)]
pub enum BalanceCommand {
    /// Each relay endpoint's balance or quota, its state and last lookup, and the burn forecast.
    ///
    /// Per endpoint: amounts (exact decimals), when it was last looked up and how that went,
    /// whether exhaustion takes it out of routing; per provider: how long the money lasts at
    /// the last 24 hours' spend (from the ledger). States: ok, unlimited, unknown (never looked up), stale (too old to trust), exhausted,
    /// error (the last lookup failed; never taken for exhaustion). Asks the running
    /// `codex-helper serve` when there is one, else reads the stored snapshots.
    Show {
        /// Only this provider (an id from the config).
        #[arg(long)]
        provider: Option<String>,
        /// Print JSON for scripts (amounts as exact decimal strings).
        #[arg(long)]
        json: bool,
    },
    /// Look balances up now.
    ///
    /// Through the running `codex-helper serve` when there is one, so its routing sees the
    /// result; otherwise from this command.
    Refresh {
        /// Only this provider's endpoints (an id from the config).
        #[arg(long)]
        provider: Option<String>,
        /// Print JSON for scripts (amounts as exact decimal strings).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: BalanceCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let loaded = super::existing_config(&homes)?;
    // Reported, not fatal: lookups use the built-in adapters meanwhile (the file is not touched).
    if let Err(e) = crate::balance::providers::load(&homes.usage_providers()) {
        eprintln!("codex-helper: {e}; the built-in balance adapters are used until it is fixed");
    }
    match command {
        BalanceCommand::Show { provider, json } => {
            check_provider(&loaded, provider.as_deref())?;
            show(&homes, &loaded, provider.as_deref(), json)
        }
        BalanceCommand::Refresh { provider, json } => {
            check_provider(&loaded, provider.as_deref())?;
            refresh(&homes, &loaded, provider.as_deref(), json)
        }
    }
}

/// A `--provider` must name a configured provider: a typo would otherwise show nothing.
fn check_provider(loaded: &LoadedConfig, provider: Option<&str>) -> anyhow::Result<()> {
    let Some(id) = provider else { return Ok(()) };
    let known: Vec<String> = loaded.config.codex.providers.keys().cloned().collect();
    if known.iter().any(|k| k == id) {
        return Ok(());
    }
    Err(crate::admin::UnknownProvider {
        id: id.to_string(),
        known,
    })
    .with_context(|| format!("--provider {id}"))
}

/// The running serve's admin API, if one announced itself and is alive. Only a loopback
/// address is believed: the file is ours, but a command must not be sent off the machine.
fn running_admin(homes: &Homes) -> Option<(RunningServe, SocketAddr)> {
    let running = running::find(&homes.running())?;
    let admin = running.admin.filter(|a| a.ip().is_loopback())?;
    Some((running, admin))
}

fn show(
    homes: &Homes,
    loaded: &LoadedConfig,
    provider: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let now = now_ms();
    let live = match running_admin(homes) {
        Some((_, admin)) => Some(super::block_on(client::balances(admin))?),
        None => None,
    };
    // Anything the running serve cannot answer, the store still can.
    let (balances, source) = match prefer_live(live, |_| true)? {
        Source::Live(balances) => (balances, "live"),
        Source::Fallback { why } => {
            if let Some(why) = why {
                eprintln!("codex-helper: showing the stored balances instead: {why}");
            }
            (stored_balances(homes, loaded, now)?, "store")
        }
    };
    let balances = balances
        .into_iter()
        .filter(|b| provider.is_none_or(|p| b.provider == p))
        .collect();
    let mut groups = balance_view::group(balances);
    add_forecasts(homes, &mut groups, now)?;
    if json {
        let out = json!({"source": source, "providers": groups});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if groups.is_empty() {
        match provider {
            Some(id) => println!("Provider `{id}` has no enabled endpoint."),
            None => println!("No enabled relay endpoint in {}.", loaded.path.display()),
        }
        return Ok(());
    }
    print!("{}", balance_view::render(&groups, now));
    if source == "store" {
        println!(
            "(from {}; a running `codex-helper serve` has the freshest)",
            homes.balances().display()
        );
    }
    Ok(())
}

/// Every enabled endpoint of the config, with its stored snapshot (`unknown` without one).
fn stored_balances(
    homes: &Homes,
    loaded: &LoadedConfig,
    now: u64,
) -> anyhow::Result<Vec<EndpointBalance>> {
    let env = |name: &str| std::env::var(name).ok();
    let plan = Plan::from_config(loaded, &env)?;
    let mut snapshots = read_snapshots(&homes.balances())?;
    let max_exhausted_ms = loaded.config.balance.max_exhausted_ms;
    Ok(plan
        .graph
        .upstreams
        .iter()
        .map(|u| {
            balance_view::endpoint_balance(
                &u.provider,
                u.key.as_str(),
                snapshots.remove(u.key.as_str()),
                now,
                max_exhausted_ms,
            )
        })
        .collect())
}

/// The stored snapshots by endpoint; none when the store does not exist yet. Opened read-only
/// so `show` never creates or changes it.
fn read_snapshots(path: &std::path::Path) -> anyhow::Result<HashMap<String, Snapshot>> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the balance store {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(2))?;
    let all = crate::balance::store::all(&conn)
        .with_context(|| format!("cannot read the balance store {}", path.display()))?;
    Ok(all.into_iter().collect())
}

/// Each provider's burn forecast from the ledger (none without a ledger).
pub(super) fn add_forecasts(
    homes: &Homes,
    groups: &mut [ProviderBalances],
    now: u64,
) -> anyhow::Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let Some(ledger) = crate::ledger::place::LedgerPlace::configured(homes)?.open()? else {
        return Ok(());
    };
    for group in groups {
        let money = balance_view::money_left(&group.endpoints);
        group.forecast = Some(burn_forecast(
            ledger.as_ref(),
            Some(&group.provider),
            FORECAST_WINDOW,
            now,
            money,
        )?);
    }
    Ok(())
}

fn refresh(
    homes: &Homes,
    loaded: &LoadedConfig,
    provider: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let running = running_admin(homes);
    let live = match &running {
        Some((_, admin)) => Some(super::block_on(client::refresh(*admin, provider))?),
        None => None,
    };
    // Only a serve that cannot be reached is worked around; one that refused has said why.
    let unreachable = |e: &anyhow::Error| e.downcast_ref::<client::Unreachable>().is_some();
    let (report, via) = match prefer_live(live, unreachable)? {
        Source::Live(report) => {
            let pid = running.as_ref().map_or(0, |(r, _)| r.pid);
            (report, format!("the running codex-helper (pid {pid})"))
        }
        Source::Fallback { why } => {
            if let Some(why) = why {
                eprintln!("codex-helper: refreshing from this command instead: {why}");
            } else if let Some(r) = running::find(&homes.running()) {
                eprintln!(
                    "codex-helper: the running codex-helper (pid {}) has no admin API; \
                     refreshing from this command instead",
                    r.pid
                );
            }
            let report = crate::balance::service::refresh_standalone(homes, loaded, provider)?;
            (report, "this command".to_string())
        }
    };
    print_refresh(&report, &via, json)
}

fn print_refresh(report: &RefreshReport, via: &str, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("{} (by {via}).", balance_view::refresh_summary(report));
    let groups = balance_view::group(report.balances.clone());
    print!("{}", balance_view::render(&groups, now_ms()));
    Ok(())
}
