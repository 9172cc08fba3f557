//! Where `usage` reads the ledger: the running serve's admin API when one runs
//! (`GET /request-ledger/recent|summary`: what it says is live, the reading the console sees),
//! else the ledger itself (the SQLite file, or `[ledger] url`'s PostgreSQL). A serve that cannot be reached is worked around with the file; one
//! that answers with a refusal is believed.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::admin::client::{self, Unreachable};
use crate::ledger::place::LedgerPlace;
use crate::ledger::query::{Filter, GroupBy, RequestLine};
use crate::ledger::read::Reader;
use crate::ledger::report::{SummaryReport, summary_report};
use crate::running::RunningServe;
use crate::time::now_ms;

/// The most rows the admin API gives at once; more are read from the file.
const LIVE_LIMIT: usize = 1000;

pub enum Source {
    Live {
        running: RunningServe,
        admin: SocketAddr,
    },
    File(Reader),
}

impl Source {
    /// The running serve's API if one is announced, else the ledger at `ledger` (which exists).
    pub fn open(running: Option<RunningServe>, ledger: &LedgerPlace) -> anyhow::Result<Source> {
        match running.and_then(|r| r.admin.map(|admin| (r, admin))) {
            Some((running, admin)) => Ok(Source::Live { running, admin }),
            None => Ok(Source::File(open(ledger)?)),
        }
    }

    /// `live` or `file`: the `source` field of `--json` answers.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Live { .. } => "live",
            Source::File(_) => "file",
        }
    }

    /// Said under a text answer that came from the running serve (none for the file: the
    /// commands read it as they always did).
    pub fn note(&self) -> Option<String> {
        match self {
            Source::Live { running, .. } => Some(format!(
                "(live: from the running codex-helper, pid {}, through its admin API)",
                running.pid
            )),
            Source::File(_) => None,
        }
    }

    /// The newest `limit` requests matching `filter`, newest first.
    pub fn recent(
        &mut self,
        ledger: &LedgerPlace,
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<Vec<RequestLine>> {
        if let Source::Live { admin, .. } = self {
            if limit <= LIVE_LIMIT {
                match super::block_on(live_recent(*admin, filter, limit))? {
                    Ok(lines) => return Ok(lines),
                    Err(e) => self.fall_back(ledger, e)?,
                }
            } else {
                *self = Source::File(open(ledger)?);
            }
        }
        let Source::File(conn) = self else {
            unreachable!("a live source answered above or became the file");
        };
        conn.find(filter, limit)
    }

    /// `usage summary`'s report.
    pub fn summary(
        &mut self,
        ledger: &LedgerPlace,
        since: &str,
        by: GroupBy,
        balance: Option<f64>,
    ) -> anyhow::Result<SummaryReport> {
        if let Source::Live { admin, .. } = self {
            let balance_text = balance.map(|b| b.to_string());
            let mut query = vec![("since", since), ("by", by.as_str())];
            query.extend(balance_text.as_deref().map(|b| ("balance", b)));
            let asked = super::block_on(client::get_with::<SummaryReport>(
                *admin,
                "/request-ledger/summary",
                &query,
            ))?;
            match asked {
                Ok(report) => return Ok(report),
                Err(e) => self.fall_back(ledger, e)?,
            }
        }
        let Source::File(conn) = self else {
            unreachable!("a live source answered above or became the file");
        };
        summary_report(conn.as_ref(), since, by, balance, now_ms())
    }

    /// A serve that cannot be reached: the file instead, said on stderr. Any other failure
    /// is the answer.
    fn fall_back(&mut self, ledger: &LedgerPlace, error: anyhow::Error) -> anyhow::Result<()> {
        if error.downcast_ref::<Unreachable>().is_none() {
            return Err(error);
        }
        eprintln!("codex-helper: {error:#}; reading the ledger instead");
        *self = Source::File(open(ledger)?);
        Ok(())
    }
}

/// A reader of `ledger`, which exists.
fn open(ledger: &LedgerPlace) -> anyhow::Result<Reader> {
    ledger
        .open()?
        .ok_or_else(|| anyhow::anyhow!("the ledger has no requests yet"))
}

async fn live_recent(
    admin: SocketAddr,
    filter: &Filter,
    limit: usize,
) -> anyhow::Result<Vec<RequestLine>> {
    #[derive(Deserialize)]
    struct Recent {
        requests: Vec<RequestLine>,
    }
    let limit_text = limit.to_string();
    let mut query = vec![("limit", limit_text.as_str())];
    query.extend(filter.provider.as_deref().map(|p| ("provider", p)));
    query.extend(filter.model.as_deref().map(|m| ("model", m)));
    query.extend(filter.session.as_deref().map(|s| ("session", s)));
    if filter.errors_only {
        query.push(("errors", "true"));
    }
    let answer: Recent = client::get_with(admin, "/request-ledger/recent", &query).await?;
    // The API has no `after_id`: the rows after it are picked here (`tail --follow`).
    Ok(answer
        .requests
        .into_iter()
        .filter(|l| filter.after_id.is_none_or(|after| l.id > after))
        .collect())
}
