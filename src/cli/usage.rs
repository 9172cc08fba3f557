//! `codex-helper usage …` and `codex-helper pricing list`: reading the ledger.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::usage_source::Source;
use crate::config::Homes;
use crate::ledger::import;
use crate::ledger::pg::read::PgReader;
use crate::ledger::place::LedgerPlace;
use crate::ledger::pricing::PriceBook;
use crate::ledger::query::{Filter, GroupBy, RequestLine, SummaryRow};
use crate::ledger::report::SummaryReport;
use crate::ledger::store;

#[derive(Debug, clap::Subcommand)]
pub enum UsageCommand {
    /// Requests, tokens, cache hit rate, cost and errors, grouped; with the burn forecast.
    Summary {
        /// How far back: 30m, 24h, 7d, or a date (local midnight) like 2026-11-01.
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long, value_enum, default_value = "provider")]
        by: GroupBy,
        /// Remaining balance in USD, to forecast when it runs out.
        #[arg(long)]
        balance: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// The latest requests.
    Tail {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Keep printing new requests as they are recorded (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Requests matching filters, newest first.
    Find {
        #[arg(long)]
        errors: bool,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        session: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The attempt chain and route decision of one request.
    Chain {
        #[arg(long)]
        trace_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Recompute stored costs with the prices in force (after a price change, or prices
    /// added for models the ledger could not price), by each response's service tier.
    Reprice(super::usage_reprice::RepriceArgs),
    /// Import the original codex-helper's request log, or copy a SQLite ledger into the
    /// PostgreSQL one (`--from-sqlite`); safe to run again.
    Import {
        /// Default: ~/.codex-helper/logs/requests.jsonl.
        #[arg(long, conflicts_with = "from_sqlite")]
        file: Option<PathBuf>,
        /// A SQLite ledger (e.g. ~/.codex-helper/ledger.sqlite3) to copy into the PostgreSQL
        /// ledger `[ledger] url` names; rows already there are skipped.
        #[arg(long, value_name = "LEDGER_SQLITE3")]
        from_sqlite: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: UsageCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let place = LedgerPlace::configured(&homes)?;
    // The commands that write the ledger, or may make it.
    match command {
        UsageCommand::Reprice(args) => return super::usage_reprice::run(&homes, &place, args),
        UsageCommand::Import {
            from_sqlite: Some(from),
            json,
            ..
        } => return super::usage_copy::run(&place, &from, json),
        UsageCommand::Import { file, json, .. } => return import_log(&homes, &place, file, json),
        _ => {}
    }
    if let LedgerPlace::File(path) = &place {
        if !path.exists() {
            println!(
                "No requests recorded yet: the ledger ({}) is created when the proxy first runs.",
                path.display()
            );
            return Ok(());
        }
    }
    let mut source = Source::open(crate::running::find(&homes.running()), &place)?;
    match command {
        UsageCommand::Summary {
            since,
            by,
            balance,
            json,
        } => summary(&mut source, &place, &since, by, balance, json),
        UsageCommand::Tail {
            limit,
            follow,
            json,
        } => tail(&mut source, &place, limit, follow, json),
        UsageCommand::Find {
            errors,
            provider,
            model,
            session,
            limit,
            json,
        } => {
            let filter = Filter {
                errors_only: errors,
                provider,
                model,
                session,
                after_id: None,
            };
            let lines = source.recent(&place, &filter, limit)?;
            if lines.is_empty() && !json {
                println!("No matching requests.");
            }
            print_lines(&lines, json, &source);
            Ok(())
        }
        UsageCommand::Chain { trace_id, json } => chain(&place, &trace_id, json),
        UsageCommand::Import { .. } | UsageCommand::Reprice(_) => unreachable!("handled above"),
    }
}

/// `usage import`: the original's request log (`file`, else its default place) into the ledger.
fn import_log(
    homes: &Homes,
    place: &LedgerPlace,
    file: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let file = file.unwrap_or_else(|| homes.helper.join("logs").join("requests.jsonl"));
    let reader = std::io::BufReader::new(
        std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?,
    );
    let prices = PriceBook::load(&homes.pricing_overrides())?;
    let (rows, report) = import::read_rows(reader, &prices);
    let added = match place {
        LedgerPlace::File(path) => {
            let mut conn = store::open(path)?;
            let mut added = 0;
            for chunk in rows.chunks(1000) {
                added += store::insert(&mut conn, chunk)?;
            }
            added
        }
        LedgerPlace::Postgres(url) => PgReader::connect(url)?.insert(&rows)?,
    };
    if json {
        println!(
            "{}",
            json!({"file": file, "lines": report.lines, "invalid": report.invalid, "imported": added, "already_present": report.rows as usize - added})
        );
    } else {
        println!(
            "Read {} records from {} ({} invalid lines skipped): {added} imported, {} already in the ledger.",
            report.lines,
            file.display(),
            report.invalid,
            report.rows as usize - added
        );
    }
    Ok(())
}

/// `usage summary`: the rows, their total and the last hour's burn.
fn summary(
    source: &mut Source,
    place: &LedgerPlace,
    since: &str,
    by: GroupBy,
    balance: Option<f64>,
    json: bool,
) -> anyhow::Result<()> {
    let report = source.summary(place, since, by, balance)?;
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["source"] = json!(source.name());
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let SummaryReport {
        rows,
        total,
        forecast,
        ..
    } = report;
    println!("Since {since}, by {}:", by.as_str());
    println!(
        "{:<28} {:>8} {:>6} {:>9} {:>9} {:>8} {:>9} {:>9} {:>6} {:>10}",
        "KEY",
        "REQUESTS",
        "ERRORS",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "REASONING",
        "TOTAL",
        "CACHE",
        "COST"
    );
    for row in rows.iter().chain(std::iter::once(&total)) {
        print_summary_row(row);
    }
    if total.unpriced > 0 {
        println!(
            "{} requests have no price (see `codex-helper pricing list`); their cost is not included.",
            total.unpriced
        );
    }
    print!(
        "Last hour: {} tokens/h, ${:.4}/h ({} requests, {})",
        tokens(forecast.tokens_per_hour as u64),
        forecast.cost_per_hour_usd,
        forecast.requests,
        forecast.confidence.as_str()
    );
    if let Some(cost) = forecast.projected_cost_until_midnight_usd {
        print!("; until midnight ≈ ${cost:.4}");
    }
    if let Some(hours) = forecast.hours_until_balance_zero {
        print!("; balance lasts ≈ {hours:.1} h");
    }
    println!();
    if let Some(note) = source.note() {
        println!("{note}");
    }
    Ok(())
}

/// `usage tail`: the latest `limit` requests, oldest first, then (`follow`) each new one.
fn tail(
    source: &mut Source,
    place: &LedgerPlace,
    limit: usize,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut lines = source.recent(place, &Filter::default(), limit)?;
    lines.reverse();
    let mut last = lines.last().map_or(0, |l| l.id);
    print_lines(&lines, json, source);
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let filter = Filter {
            after_id: Some(last),
            ..Default::default()
        };
        let mut new = source.recent(place, &filter, 1000)?;
        new.reverse();
        if let Some(l) = new.last() {
            last = l.id;
        }
        print_lines(&new, json, source);
    }
}

/// `usage chain`: one request's attempts and route decision, read from the ledger.
fn chain(place: &LedgerPlace, trace_id: &str, json: bool) -> anyhow::Result<()> {
    // One request's whole chain is read from the ledger (the API lists requests only).
    let ledger = place.open()?.context("the ledger has no requests yet")?;
    let chain = ledger
        .chain(trace_id)?
        .with_context(|| format!("no request with trace id {trace_id} in the ledger"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&chain)?);
        return Ok(());
    }
    println!(
        "{} at {}: {} (HTTP {})",
        chain.trace_id,
        chain.started_local,
        chain.outcome,
        chain.status.map_or("-".into(), |s| s.to_string())
    );
    if let Some(error) = &chain.error {
        println!("  error: {error}");
    }
    if let Some(decision) = &chain.decision {
        print_decision(decision);
    }
    for (i, a) in chain.attempts.as_array().into_iter().flatten().enumerate() {
        let detail = a
            .get("status")
            .map(|s| format!("HTTP {s}"))
            .or_else(|| a.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .or_else(|| a.get("detail").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_default();
        println!(
            "  attempt {}: {}/{} {} {} ({} ms)",
            i + 1,
            a["provider"].as_str().unwrap_or("?"),
            a["endpoint"].as_str().unwrap_or("?"),
            a["outcome"].as_str().unwrap_or("?"),
            detail,
            a["duration_ms"]
        );
    }
    Ok(())
}

/// A chain's route decision: what was chosen and why, and each candidate.
fn print_decision(decision: &serde_json::Value) {
    println!(
        "  route: chosen {} ({}), affinity {} → {}, policy {}",
        decision["chosen"].as_str().unwrap_or("-"),
        decision["why"].as_str().unwrap_or("-"),
        decision["affinity"].as_str().unwrap_or("none"),
        decision["affinity_change"].as_str().unwrap_or("unchanged"),
        decision["affinity_policy"].as_str().unwrap_or("-")
    );
    for c in decision["candidates"].as_array().into_iter().flatten() {
        let skip = c["skip"].as_object().map(|s| {
            s.get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("skipped")
                .to_string()
        });
        println!(
            "    candidate {} (group {}){}",
            c["upstream"].as_str().unwrap_or("?"),
            c["group"],
            skip.map(|s| format!(": skipped, {s}")).unwrap_or_default()
        );
    }
}

fn tokens(n: u64) -> String {
    match n {
        n if n >= 10_000_000 => format!("{:.0}M", n as f64 / 1e6),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0}k", n as f64 / 1e3),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn print_summary_row(r: &SummaryRow) {
    println!(
        "{:<28} {:>8} {:>6} {:>9} {:>9} {:>8} {:>9} {:>9} {:>5.1}% {:>10}",
        truncate(&r.key, 28),
        r.requests,
        r.errors,
        tokens(r.input_tokens),
        tokens(r.cached_input_tokens),
        tokens(r.output_tokens),
        tokens(r.reasoning_tokens),
        tokens(r.total_tokens),
        r.cache_hit_rate * 100.0,
        format!("${:.4}", r.cost_usd)
    );
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(width - 1).collect::<String>())
    }
}

/// The lines as text, or one JSON object per line with the `source` it was read from; a
/// live text answer ends with a note on stderr.
fn print_lines(lines: &[RequestLine], json: bool, source: &Source) {
    for l in lines {
        if json {
            let mut value = serde_json::to_value(l).unwrap_or_default();
            value["source"] = json!(source.name());
            println!("{}", serde_json::to_string(&value).unwrap_or_default());
            continue;
        }
        println!(
            "{} {} {} {} {} {}/{} {} {} tok {} ttfb {} {:.0} ms trace={}",
            l.started_local,
            l.method,
            l.path,
            l.status.map_or("-".into(), |s| s.to_string()),
            l.outcome,
            l.provider.as_deref().unwrap_or("-"),
            l.endpoint.as_deref().unwrap_or("-"),
            l.model.as_deref().unwrap_or("-"),
            l.total_tokens.map_or("-".into(), tokens),
            l.cost_usd.map_or("$-".into(), |c| format!("${c:.4}")),
            l.ttfb_ms.map_or("-".into(), |t| format!("{t:.0}ms")),
            l.duration_ms,
            l.trace_id
        );
    }
    if !json && !lines.is_empty() {
        if let Some(note) = source.note() {
            eprintln!("{note}");
        }
    }
}

/// `codex-helper pricing list`.
pub fn pricing_list(json: bool) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let book = PriceBook::load(&homes.pricing_overrides())?;
    let table = book.table();
    if json {
        let rows: Vec<_> = table.iter().map(|(model, price, source)| json!({"model": model, "input_per_1m_usd": price.input, "cached_input_per_1m_usd": price.cached_input, "output_per_1m_usd": price.output, "source": source})).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "USD per 1M tokens. Overrides: {}",
        homes.pricing_overrides().display()
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8}  SOURCE",
        "MODEL", "INPUT", "CACHED", "OUTPUT"
    );
    for (model, price, source) in table {
        println!(
            "{model:<22} {:>8.3} {:>8.3} {:>8.3}  {source}",
            price.input, price.cached_input, price.output
        );
    }
    let tiers: Vec<String> = book
        .tiers()
        .iter()
        .map(|(tier, m)| format!("{tier} × {m}"))
        .collect();
    println!(
        "Service tiers (as each response reports it; others at the standard price): {}",
        tiers.join(", ")
    );
    Ok(())
}
