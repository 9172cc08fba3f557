//! `codex-helper usage reprice`: the ledger's stored costs recomputed with the prices in force
//! (see [`crate::ledger::reprice`]), in the SQLite ledger or the PostgreSQL one.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::config::Homes;
use crate::ledger::pg::read::PgReader;
use crate::ledger::place::LedgerPlace;
use crate::ledger::pricing::PriceBook;
use crate::ledger::read::LedgerRead;
use crate::ledger::reprice::{self, RepriceFilter};
use crate::ledger::{query, store};

#[derive(Debug, clap::Args)]
pub struct RepriceArgs {
    /// Only requests from this time on: 30m, 24h, 7d, or a date (local midnight) like
    /// 2026-11-01. Default: every request.
    #[arg(long)]
    since: Option<String>,
    /// Only requests before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only requests priced by this model (the model sent to the relay), ignoring case.
    #[arg(long)]
    model: Option<String>,
    /// Only say what would change.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(homes: &Homes, place: &LedgerPlace, args: RepriceArgs) -> anyhow::Result<()> {
    let book = PriceBook::load(&homes.pricing_overrides())?;
    let multipliers = provider_multipliers(homes)?;
    let multiplier = |provider: &str| multipliers.get(provider).copied();
    let report = match place {
        LedgerPlace::File(path) => {
            if !path.exists() {
                anyhow::bail!(
                    "no ledger at {} yet: it is created when the proxy first runs",
                    path.display()
                );
            }
            let mut conn = store::open(path)?;
            let filter = filter(&args, &conn)?;
            reprice::reprice(&mut conn, &book, &filter, &multiplier, args.dry_run)?
        }
        LedgerPlace::Postgres(url) => {
            let mut ledger = PgReader::connect(url)?;
            let filter = filter(&args, ledger.clock())?;
            reprice::reprice(&mut ledger, &book, &filter, &multiplier, args.dry_run)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let verb = if args.dry_run {
        "Would change"
    } else {
        "Changed"
    };
    println!(
        "{verb} {} of {} priced request(s){}: ${:.4} before, ${:.4} after.",
        report.changed,
        report.rows,
        if report.newly_priced > 0 {
            format!(" ({} newly priced)", report.newly_priced)
        } else {
            String::new()
        },
        report.cost_before_usd,
        report.cost_after_usd
    );
    for model in &report.models {
        println!(
            "  {:<24} {:>6} row(s)  ${:.4} -> ${:.4}",
            model.model, model.changed, model.cost_before_usd, model.cost_after_usd
        );
    }
    if report.now_unpriced > 0 {
        println!(
            "{} request(s) lost their price: their model has none now (see `codex-helper pricing list`).",
            report.now_unpriced
        );
    }
    Ok(())
}

/// The rows `args` select; `clock` reads dates as local midnights.
fn filter(args: &RepriceArgs, clock: &rusqlite::Connection) -> anyhow::Result<RepriceFilter> {
    let now = crate::time::now_ms();
    Ok(RepriceFilter {
        since_ms: args
            .since
            .as_deref()
            .map(|t| query::since_ms(clock, t, now))
            .transpose()?,
        until_ms: args
            .until
            .as_deref()
            .map(|t| query::since_ms(clock, t, now).context("--until"))
            .transpose()?,
        model: args.model.clone(),
    })
}

/// Each configured provider's `price_multiplier`, for rows recorded without one.
fn provider_multipliers(homes: &Homes) -> anyhow::Result<BTreeMap<String, f64>> {
    let Some(loaded) = crate::config::load::load(&homes.helper_config())? else {
        return Ok(BTreeMap::new());
    };
    Ok(loaded
        .config
        .codex
        .providers
        .iter()
        .filter_map(|(name, p)| p.price_multiplier.map(|m| (name.clone(), m)))
        .collect())
}
