//! `codex-helper codex relay-evidence`: the relay diagnostics' evidence log, newest first.
//!
//! Read only: the log is written by the diagnostics themselves (`diagnose::evidence`).

use anyhow::Context;

use crate::config::Homes;
use crate::diagnose::evidence::{EvidenceFilter, EvidenceKind, EvidenceLog, EvidenceRecord};
use crate::ledger::query;

#[derive(Debug, clap::Args)]
pub struct EvidenceArgs {
    /// At most this many records, newest first (0: all of them).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Only this provider's records (its id; not checked against the config, since evidence
    /// outlives a removed provider).
    #[arg(long)]
    provider: Option<String>,
    /// Only records of this kind.
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// Print the records as a JSON array for scripts (nothing else on stdout).
    #[arg(long)]
    json: bool,
}

/// `--kind`: the command-line spelling of [`EvidenceKind`] (the record's own spelling,
/// `live_smoke`, is taken too).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KindArg {
    /// Records of the capabilities diagnostic.
    Capabilities,
    /// Records of the live smoke test.
    #[value(alias = "live_smoke")]
    LiveSmoke,
}

impl KindArg {
    fn kind(self) -> EvidenceKind {
        match self {
            KindArg::Capabilities => EvidenceKind::Capabilities,
            KindArg::LiveSmoke => EvidenceKind::LiveSmoke,
        }
    }
}

pub fn run(args: EvidenceArgs) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let log = EvidenceLog::new(homes.relay_evidence());
    let filtered = args.provider.is_some() || args.kind.is_some();
    let filter = EvidenceFilter {
        limit: args.limit,
        provider: args.provider,
        kind: args.kind.map(KindArg::kind),
    };
    let read = log.read(&filter)?;
    let skipped = (read.skipped > 0).then(|| {
        format!(
            "{} lines in the log were not readable records and were skipped",
            read.skipped
        )
    });

    if args.json {
        println!("{}", serde_json::to_string_pretty(&read.records)?);
        if let Some(skipped) = skipped {
            eprintln!("codex-helper: {skipped}");
        }
        return Ok(());
    }
    if read.records.is_empty() {
        // Tell "nothing recorded" from "nothing of that": the fix differs (run a diagnostic,
        // or loosen the filters).
        let any = filtered
            && !log
                .read(&EvidenceFilter {
                    limit: 1,
                    ..EvidenceFilter::default()
                })?
                .records
                .is_empty();
        if any {
            println!("no evidence matches (drop --provider or --kind to see all of it)");
        } else {
            println!("no evidence yet ({})", log.path().display());
        }
    } else {
        let rows = rows(&read.records)?;
        print!("{}", render(&rows));
    }
    if let Some(skipped) = skipped {
        println!("{skipped}");
    }
    Ok(())
}

/// One record's columns, as shown.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    time: String,
    kind: String,
    endpoint: String,
    host: String,
    model: String,
    summary: String,
}

/// The records' columns; times in local time, as the `usage` commands show them (through
/// SQLite's `localtime`, on an in-memory connection: no ledger is needed).
fn rows(records: &[EvidenceRecord]) -> anyhow::Result<Vec<Row>> {
    let conn = rusqlite::Connection::open_in_memory()
        .context("cannot open an in-memory SQLite database to show local times")?;
    records
        .iter()
        .map(|r| {
            let time = query::local_datetime(&conn, r.at_ms)
                .context("cannot convert a record's time to local time")?
                .unwrap_or_else(|| format!("@{} ms", r.at_ms));
            Ok(Row {
                time,
                kind: r.kind.as_str().to_string(),
                endpoint: shown(&format!("{}/{}", r.provider, r.endpoint)),
                host: shown(&r.host),
                model: shown(r.model.as_deref().unwrap_or("-")),
                summary: shown(r.payload["summary"].as_str().unwrap_or("-")),
            })
        })
        .collect()
}

/// One line per row, the columns aligned; the summary last, as long as it is.
fn render(rows: &[Row]) -> String {
    let width = |column: fn(&Row) -> &str| {
        rows.iter()
            .map(|r| column(r).chars().count())
            .max()
            .unwrap_or(0)
    };
    let kind = width(|r| &r.kind);
    let endpoint = width(|r| &r.endpoint);
    let host = width(|r| &r.host);
    let model = width(|r| &r.model);
    let mut out = String::new();
    for r in rows {
        let line = format!(
            "{}  {:<kind$}  {:<endpoint$}  {:<host$}  {:<model$}  {}",
            r.time, r.kind, r.endpoint, r.host, r.model, r.summary
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` with control characters as spaces: a summary may quote a relay, and a relay's
/// escape sequences must not reach the user's terminal.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, endpoint: &str, model: &str, summary: &str) -> Row {
        Row {
            time: "2026-01-02 03:04:05".into(),
            kind: kind.into(),
            endpoint: endpoint.into(),
            host: "relay.example".into(),
            model: model.into(),
            summary: summary.into(),
        }
    }

    #[test]
    fn columns_line_up_and_the_summary_comes_last() {
        let text = render(&[
            row("live_smoke", "a/default", "gpt-5", "2 of 2 passed"),
            row("capabilities", "longer/main", "-", "-"),
        ]);
        assert_eq!(
            text,
            "2026-01-02 03:04:05  live_smoke    a/default    relay.example  gpt-5  2 of 2 passed\n\
             2026-01-02 03:04:05  capabilities  longer/main  relay.example  -      -\n"
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(shown("ok\u{1b}[31m red\nline"), "ok [31m red line");
    }
}
