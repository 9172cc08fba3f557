//! Reading the ledger for the `usage` commands. Time zones are SQLite's `localtime`, so day
//! boundaries are the user's local midnights.

use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde::Serialize;

/// How `usage summary` groups rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Provider,
    Model,
    Session,
    Day,
    /// The team member whose key a request carried (team mode; `-` for other requests).
    User,
}

impl GroupBy {
    pub const ALL: [GroupBy; 5] = [
        GroupBy::Provider,
        GroupBy::Model,
        GroupBy::Session,
        GroupBy::Day,
        GroupBy::User,
    ];

    /// The name users give and JSON carries: exactly the serde (and clap) name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Provider => "provider",
            GroupBy::Model => "model",
            GroupBy::Session => "session",
            GroupBy::Day => "day",
            GroupBy::User => "user",
        }
    }

    pub fn parse(name: &str) -> Option<GroupBy> {
        GroupBy::ALL.into_iter().find(|by| by.as_str() == name)
    }

    /// Every name, for messages: `provider, model, session, day or user`.
    pub fn names() -> String {
        let names: Vec<&str> = GroupBy::ALL.iter().map(|by| by.as_str()).collect();
        let (last, rest) = names.split_last().expect("GroupBy has names");
        format!("{} or {last}", rest.join(", "))
    }

    fn sql(self) -> &'static str {
        match self {
            GroupBy::Provider => "COALESCE(provider, '-')",
            GroupBy::Model => "COALESCE(model_sent, model_requested, '-')",
            GroupBy::Session => "COALESCE(session_id, '-')",
            GroupBy::Day => "date(started_ms / 1000, 'unixepoch', 'localtime')",
            GroupBy::User => "COALESCE(user_name, '-')",
        }
    }
}

/// A failed request: an error status or an outcome other than success (a client that hung up
/// is not the relay's failure).
pub(crate) const IS_ERROR: &str =
    "(COALESCE(status, 0) >= 400 OR outcome NOT IN ('completed', 'client_disconnected'))";

/// One line of `usage summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct SummaryRow {
    pub key: String,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
    /// Cached share of input tokens, 0–1.
    pub cache_hit_rate: f64,
    pub cost_usd: f64,
    /// Requests with tokens but no price: the cost is a lower bound when this is not zero.
    pub unpriced: u64,
}

/// Parses `--since`: `30m`, `24h`, `7d`, or a local date `YYYY-MM-DD`. Returns ms since the epoch.
pub fn since_ms(conn: &Connection, text: &str, now_ms: u64) -> anyhow::Result<u64> {
    let text = text.trim();
    let unit = |suffix: char, ms: u64| {
        text.strip_suffix(suffix)
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| now_ms.saturating_sub(n * ms))
    };
    if let Some(ms) = unit('m', 60_000)
        .or_else(|| unit('h', 3_600_000))
        .or_else(|| unit('d', 86_400_000))
    {
        return Ok(ms);
    }
    // A local date: SQLite turns local midnight into UTC seconds.
    let secs: Option<i64> = conn
        .query_row(
            "SELECT CAST(strftime('%s', ?1, 'utc') AS INTEGER) WHERE date(?1) = ?1",
            [text],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    secs.map(|s| s.max(0) as u64 * 1000).ok_or_else(|| {
        anyhow::anyhow!("--since `{text}`: expected e.g. 30m, 24h, 7d or a date like 2026-11-28")
    })
}

/// Requests, tokens, cache hit rate, cost and errors since `since_ms`, grouped, most tokens first.
///
/// By provider, model or day the sums come from the 15-minute rollups, plus the raw rows of the
/// partial bucket at the start; by session or user they come from the rows.
pub fn summary(conn: &Connection, since_ms: u64, by: GroupBy) -> rusqlite::Result<Vec<SummaryRow>> {
    let bucket = super::store::BUCKET_MS;
    let full_from = since_ms.div_ceil(bucket) * bucket;
    let raw = |key: &str, until: &str| {
        format!(
            "SELECT {key} AS k, 1 AS requests, {IS_ERROR} AS errors, COALESCE(input_tokens, 0) AS input, COALESCE(cached_input_tokens, 0) AS cached,
                    COALESCE(output_tokens, 0) AS output, COALESCE(reasoning_tokens, 0) AS reasoning, COALESCE(total_tokens, 0) AS total,
                    COALESCE(cost_usd, 0) AS cost, (cost_usd IS NULL AND input_tokens IS NOT NULL) AS unpriced
             FROM requests WHERE started_ms >= ?1 {until}"
        )
    };
    let source = match by {
        GroupBy::Session | GroupBy::User => raw(by.sql(), ""),
        _ => {
            let rollup_key = match by {
                GroupBy::Provider => "provider",
                GroupBy::Model => "model",
                _ => "date(bucket_ms / 1000, 'unixepoch', 'localtime')",
            };
            format!(
                "SELECT {rollup_key} AS k, requests, errors, input_tokens AS input, cached_input_tokens AS cached, output_tokens AS output,
                        reasoning_tokens AS reasoning, total_tokens AS total, cost_usd AS cost, unpriced
                 FROM usage_rollup WHERE bucket_ms >= ?2
                 UNION ALL {}",
                raw(by.sql(), "AND started_ms < ?2")
            )
        }
    };
    let sql = format!(
        "SELECT k, SUM(requests), SUM(errors), SUM(input), SUM(cached), SUM(output), SUM(reasoning), SUM(total), SUM(cost), SUM(unpriced)
         FROM ({source}) GROUP BY k ORDER BY 8 DESC, 2 DESC"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let params: &[&dyn rusqlite::ToSql] = if matches!(by, GroupBy::Session | GroupBy::User) {
        &[&(since_ms as i64)]
    } else {
        &[&(since_ms as i64), &(full_from as i64)]
    };
    let rows = stmt.query_map(params, |r| {
        let input: i64 = r.get(3)?;
        let cached: i64 = r.get(4)?;
        Ok(SummaryRow {
            key: r.get(0)?,
            requests: r.get::<_, i64>(1)? as u64,
            errors: r.get::<_, i64>(2)? as u64,
            input_tokens: input as u64,
            cached_input_tokens: cached as u64,
            output_tokens: r.get::<_, i64>(5)? as u64,
            reasoning_tokens: r.get::<_, i64>(6)? as u64,
            total_tokens: r.get::<_, i64>(7)? as u64,
            cache_hit_rate: if input > 0 {
                cached as f64 / input as f64
            } else {
                0.0
            },
            cost_usd: r.get(8)?,
            unpriced: r.get::<_, i64>(9)? as u64,
        })
    })?;
    rows.collect()
}

/// The totals over every group.
pub fn total(rows: &[SummaryRow]) -> SummaryRow {
    let mut t = SummaryRow {
        key: "total".into(),
        ..Default::default()
    };
    for r in rows {
        t.requests += r.requests;
        t.errors += r.errors;
        t.input_tokens += r.input_tokens;
        t.cached_input_tokens += r.cached_input_tokens;
        t.output_tokens += r.output_tokens;
        t.reasoning_tokens += r.reasoning_tokens;
        t.total_tokens += r.total_tokens;
        t.cost_usd += r.cost_usd;
        t.unpriced += r.unpriced;
    }
    t.cache_hit_rate = if t.input_tokens > 0 {
        t.cached_input_tokens as f64 / t.input_tokens as f64
    } else {
        0.0
    };
    t
}

/// One request, as `usage tail` / `usage find` show it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RequestLine {
    pub id: i64,
    pub trace_id: String,
    pub started_ms: u64,
    /// Local time, `YYYY-MM-DD HH:MM:SS`.
    pub started_local: String,
    pub method: String,
    pub path: String,
    pub session_id: Option<String>,
    pub provider: Option<String>,
    pub endpoint: Option<String>,
    /// The model sent, else the one asked for.
    pub model: Option<String>,
    /// What the client asked for, and what went to the relay after model mapping.
    pub model_requested: Option<String>,
    pub model_sent: Option<String>,
    pub status: Option<u16>,
    pub outcome: String,
    pub error_class: Option<String>,
    pub total_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    pub ttfb_ms: Option<f64>,
    pub duration_ms: f64,
}

/// Filters for `usage find` (all optional; text filters are exact).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub errors_only: bool,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub session: Option<String>,
    /// Only rows with an id above this (for `tail --follow`).
    pub after_id: Option<i64>,
}

/// `filter` as a `WHERE` clause (empty when it filters nothing) and its text arguments, in
/// order; `param(n)` spells the n-th (1-based) placeholder in the database's dialect.
pub(crate) fn filter_sql(
    filter: &Filter,
    param: impl Fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut args: Vec<String> = Vec::new();
    if filter.errors_only {
        clauses.push(IS_ERROR.to_string());
    }
    if let Some(p) = &filter.provider {
        args.push(p.clone());
        clauses.push(format!("provider = {}", param(args.len())));
    }
    if let Some(m) = &filter.model {
        args.push(m.clone());
        clauses.push(format!(
            "(model_sent = {n} OR model_requested = {n})",
            n = param(args.len())
        ));
    }
    if let Some(s) = &filter.session {
        args.push(s.clone());
        clauses.push(format!("session_id = {}", param(args.len())));
    }
    if let Some(id) = filter.after_id {
        clauses.push(format!("id > {id}"));
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (filter_sql, args)
}

/// The newest `limit` requests matching `filter`, newest first.
pub fn find(
    conn: &Connection,
    filter: &Filter,
    limit: usize,
) -> rusqlite::Result<Vec<RequestLine>> {
    let (filter_sql, args) = filter_sql(filter, |n| format!("?{n}"));
    let sql = format!(
        "SELECT id, trace_id, started_ms, datetime(started_ms / 1000, 'unixepoch', 'localtime'), method, path, session_id, provider, endpoint,
                COALESCE(model_sent, model_requested), status, outcome, error_class, total_tokens, cost_usd, ttfb_ms, duration_ms,
                model_requested, model_sent
         FROM requests {filter_sql} ORDER BY id DESC LIMIT {limit}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok(RequestLine {
            id: r.get(0)?,
            trace_id: r.get(1)?,
            started_ms: r.get::<_, i64>(2)? as u64,
            started_local: r.get(3)?,
            method: r.get(4)?,
            path: r.get(5)?,
            session_id: r.get(6)?,
            provider: r.get(7)?,
            endpoint: r.get(8)?,
            model: r.get(9)?,
            status: r.get(10)?,
            outcome: r.get(11)?,
            error_class: r.get(12)?,
            total_tokens: r.get::<_, Option<i64>>(13)?.map(|n| n as u64),
            cost_usd: r.get(14)?,
            ttfb_ms: r.get(15)?,
            duration_ms: r.get(16)?,
            model_requested: r.get(17)?,
            model_sent: r.get(18)?,
        })
    })?;
    rows.collect()
}

/// The attempt chain and route decision of one request.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    pub trace_id: String,
    pub started_local: String,
    pub outcome: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub attempts: serde_json::Value,
    pub decision: Option<serde_json::Value>,
}

pub fn chain(conn: &Connection, trace_id: &str) -> rusqlite::Result<Option<Chain>> {
    conn.query_row(
        "SELECT trace_id, datetime(started_ms / 1000, 'unixepoch', 'localtime'), outcome, status, error, attempts_json, decision_json
         FROM requests WHERE trace_id = ?1",
        [trace_id],
        |r| {
            let attempts: String = r.get(5)?;
            let decision: Option<String> = r.get(6)?;
            Ok(Chain {
                trace_id: r.get(0)?,
                started_local: r.get(1)?,
                outcome: r.get(2)?,
                status: r.get(3)?,
                error: r.get(4)?,
                attempts: serde_json::from_str(&attempts).unwrap_or(serde_json::Value::Null),
                decision: decision.and_then(|d| serde_json::from_str(&d).ok()),
            })
        },
    )
    .optional()
}

/// `(started_ms, total_tokens, cost_usd)` of requests since `since_ms`, for the forecast.
pub fn spend_since(
    conn: &Connection,
    since_ms: u64,
) -> rusqlite::Result<Vec<(u64, u64, Option<f64>)>> {
    let mut stmt = conn.prepare_cached("SELECT started_ms, total_tokens, cost_usd FROM requests WHERE started_ms >= ?1 AND total_tokens IS NOT NULL")?;
    let rows = stmt.query_map([since_ms as i64], spend)?;
    rows.collect()
}

/// [`spend_since`] of the requests one provider answered: the burn against its balance.
pub fn spend_since_for_provider(
    conn: &Connection,
    since_ms: u64,
    provider: &str,
) -> rusqlite::Result<Vec<(u64, u64, Option<f64>)>> {
    let mut stmt = conn.prepare_cached("SELECT started_ms, total_tokens, cost_usd FROM requests WHERE started_ms >= ?1 AND total_tokens IS NOT NULL AND provider = ?2")?;
    let rows = stmt.query_map(rusqlite::params![since_ms as i64, provider], spend)?;
    rows.collect()
}

fn spend(r: &rusqlite::Row<'_>) -> rusqlite::Result<(u64, u64, Option<f64>)> {
    Ok((
        r.get::<_, i64>(0)? as u64,
        r.get::<_, i64>(1)? as u64,
        r.get(2)?,
    ))
}

/// `at_ms` as the local `YYYY-MM-DD HH:MM:SS` the `usage` commands show, for times that come
/// from elsewhere than the ledger (any connection does, an in-memory one too); `None` for a
/// time SQLite cannot show (past the year 9999).
pub fn local_datetime(conn: &Connection, at_ms: u64) -> rusqlite::Result<Option<String>> {
    // u64::MAX / 1000 fits in an i64.
    let secs = (at_ms / 1000) as i64;
    conn.query_row(
        "SELECT datetime(?1, 'unixepoch', 'localtime')",
        [secs],
        |r| r.get(0),
    )
}

/// The next local midnight, ms since the epoch.
pub fn next_local_midnight_ms(conn: &Connection, now_ms: u64) -> rusqlite::Result<u64> {
    let secs: i64 = conn.query_row(
        "SELECT CAST(strftime('%s', date(?1, 'unixepoch', 'localtime', '+1 day'), 'utc') AS INTEGER)",
        [(now_ms / 1000) as i64],
        |r| r.get(0),
    )?;
    Ok(secs.max(0) as u64 * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::row::LedgerRow;

    fn row(trace: &str, at_ms: u64, provider: &str, tokens: Option<u64>) -> LedgerRow {
        LedgerRow {
            trace_id: trace.into(),
            started_ms: at_ms,
            method: "POST".into(),
            path: "/v1/responses".into(),
            provider: Some(provider.into()),
            outcome: "completed".into(),
            attempts_json: "[]".into(),
            total_tokens: tokens,
            cost_usd: tokens.map(|t| t as f64 / 1000.0),
            ..LedgerRow::default()
        }
    }

    #[test]
    fn group_names_are_the_serde_and_clap_names() {
        use clap::ValueEnum;
        for by in GroupBy::ALL {
            let serde = serde_json::to_value(by).unwrap();
            assert_eq!(serde.as_str(), Some(by.as_str()), "{by:?}");
            let clap = by.to_possible_value().unwrap();
            assert_eq!(clap.get_name(), by.as_str());
            assert_eq!(GroupBy::parse(by.as_str()), Some(by));
        }
        assert_eq!(GroupBy::parse("Provider"), None);
        assert_eq!(GroupBy::names(), "provider, model, session, day or user");
    }

    #[test]
    fn spend_is_filtered_by_time_and_provider() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::ledger::store::open(&dir.path().join("l.sqlite3")).unwrap();
        let rows = [
            row("t1", 1_000, "a", Some(100)),
            row("t2", 5_000, "a", Some(200)),
            row("t3", 6_000, "b", Some(300)),
            row("t4", 7_000, "a", None),
        ];
        crate::ledger::store::insert(&mut conn, &rows).unwrap();
        assert_eq!(
            spend_since_for_provider(&conn, 2_000, "a").unwrap(),
            [(5_000, 200, Some(0.2))]
        );
        assert_eq!(spend_since_for_provider(&conn, 0, "c").unwrap(), []);
        assert_eq!(spend_since(&conn, 2_000).unwrap().len(), 2);
    }

    #[test]
    fn local_datetime_is_a_whole_second_or_none() {
        let conn = Connection::open_in_memory().unwrap();
        let shown = local_datetime(&conn, 1_700_000_000_999).unwrap().unwrap();
        let shape: String = shown
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99 99:99:99", "{shown}");
        assert_eq!(local_datetime(&conn, u64::MAX).unwrap(), None);
    }
}
