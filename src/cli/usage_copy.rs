//! `usage import --from-sqlite PATH`: copies a SQLite ledger into the PostgreSQL ledger
//! `[ledger] url` names, page by page; rows already there (by trace id) are skipped, so running
//! it again adds nothing.

use std::path::Path;

use serde_json::json;

use crate::ledger::pg::copy::sqlite_rows_after;
use crate::ledger::pg::read::PgReader;
use crate::ledger::pg::writer::BATCH;
use crate::ledger::place::LedgerPlace;
use crate::ledger::store;

pub fn run(place: &LedgerPlace, from: &Path, json: bool) -> anyhow::Result<()> {
    let LedgerPlace::Postgres(url) = place else {
        anyhow::bail!(
            "--from-sqlite copies a SQLite ledger into the PostgreSQL ledger: set [ledger] url in the config first"
        );
    };
    if !from.is_file() {
        anyhow::bail!("{} is not a file", from.display());
    }
    let source = store::open_read_only(from)?;
    let mut target = PgReader::connect(url)?;
    let (mut read, mut copied, mut last_id) = (0usize, 0usize, 0i64);
    loop {
        let page = sqlite_rows_after(&source, last_id, BATCH)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", from.display()))?;
        let Some((id, _)) = page.last() else {
            break;
        };
        last_id = *id;
        let rows: Vec<_> = page.into_iter().map(|(_, row)| row).collect();
        read += rows.len();
        copied += target.insert(&rows)?;
    }
    let skipped = read - copied;
    if json {
        println!(
            "{}",
            json!({"from": from, "to": url.shown(), "rows": read, "copied": copied, "already_present": skipped})
        );
    } else {
        println!(
            "Read {read} rows from {}: {copied} copied into the PostgreSQL ledger at {}, {skipped} already there.",
            from.display(),
            url.shown()
        );
    }
    Ok(())
}
