//! `usage import --from-sqlite`: a SQLite ledger's rows, read in pages by id, for copying
//! into the PostgreSQL ledger (where rows already there are skipped by trace id).

use rusqlite::{Connection, params};

use crate::ledger::row::LedgerRow;

/// Up to `limit` rows with an id above `after_id`, in id order, with their ids.
pub fn sqlite_rows_after(
    conn: &Connection,
    after_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, LedgerRow)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, trace_id, started_ms, session_id, session_source, thread_id, client, method, path, streaming,
                model_requested, model_sent, model_answered, preset, provider, endpoint, status, outcome, error_class, error,
                attempts_json, decision_json, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, total_tokens,
                ttfb_ms, duration_ms, bytes_in, bytes_out, cost_usd, price_source, service_tier, price_multiplier, user_name
         FROM requests WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let count = |v: Option<i64>| v.map(|n| n.max(0) as u64);
    let rows = stmt.query_map(params![after_id, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            LedgerRow {
                trace_id: r.get(1)?,
                started_ms: r.get::<_, i64>(2)?.max(0) as u64,
                session_id: r.get(3)?,
                session_source: r.get(4)?,
                thread_id: r.get(5)?,
                client: r.get(6)?,
                method: r.get(7)?,
                path: r.get(8)?,
                streaming: r.get(9)?,
                model_requested: r.get(10)?,
                model_sent: r.get(11)?,
                model_answered: r.get(12)?,
                preset: r.get(13)?,
                provider: r.get(14)?,
                endpoint: r.get(15)?,
                status: r.get(16)?,
                outcome: r.get(17)?,
                error_class: r.get(18)?,
                error: r.get(19)?,
                attempts_json: r.get(20)?,
                decision_json: r.get(21)?,
                input_tokens: count(r.get(22)?),
                cached_input_tokens: count(r.get(23)?),
                output_tokens: count(r.get(24)?),
                reasoning_tokens: count(r.get(25)?),
                total_tokens: count(r.get(26)?),
                ttfb_ms: r.get(27)?,
                duration_ms: r.get(28)?,
                bytes_in: r.get::<_, i64>(29)?.max(0) as u64,
                bytes_out: r.get::<_, i64>(30)?.max(0) as u64,
                cost_usd: r.get(31)?,
                price_source: r.get(32)?,
                service_tier: r.get(33)?,
                price_multiplier: r.get(34)?,
                user: r.get(35)?,
            },
        ))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_as_they_were_written_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::ledger::store::open(&dir.path().join("l.sqlite3")).unwrap();
        let rows: Vec<LedgerRow> = (0..5)
            .map(|i| LedgerRow {
                trace_id: format!("t{i}"),
                started_ms: 1_000 + i,
                method: "POST".into(),
                path: "/v1/responses".into(),
                streaming: i % 2 == 0,
                provider: Some("p".into()),
                status: Some(200),
                outcome: "completed".into(),
                attempts_json: "[]".into(),
                input_tokens: Some(i),
                total_tokens: Some(2 * i),
                cost_usd: Some(0.25),
                duration_ms: 3.5,
                price_multiplier: Some(1.0),
                user: Some("ana".into()),
                ..LedgerRow::default()
            })
            .collect();
        crate::ledger::store::insert(&mut conn, &rows).unwrap();
        let first = sqlite_rows_after(&conn, 0, 3).unwrap();
        let rest = sqlite_rows_after(&conn, first.last().unwrap().0, 3).unwrap();
        let back: Vec<LedgerRow> = first.into_iter().chain(rest).map(|(_, r)| r).collect();
        assert_eq!(back, rows);
    }
}
