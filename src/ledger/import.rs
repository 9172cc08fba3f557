//! `usage import`: history from the original codex-helper's `logs/requests.jsonl`.
//!
//! Idempotent: each line gets a stable id from its own content, and rows already in the ledger
//! are skipped, so importing the same file twice adds nothing.

use std::io::BufRead;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pricing::PriceBook;
use super::row::LedgerRow;
use crate::record::usage::Usage;

/// A line of `requests.jsonl`; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct OldRecord {
    timestamp_ms: u64,
    #[serde(default)]
    request_id: Option<Value>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    status_code: Option<u16>,
    #[serde(default)]
    duration_ms: Option<f64>,
    #[serde(default)]
    ttfb_ms: Option<f64>,
    #[serde(default)]
    provider_id: Option<String>,
    #[serde(default)]
    endpoint_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    session_identity_source: Option<String>,
    /// The requested model, or `requested->sent` when a mapping applied.
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    retry: Option<Value>,
    #[serde(default)]
    route_decision: Option<Value>,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub lines: u64,
    pub rows: u64,
    /// Lines that are not records (kept count, never fatal).
    pub invalid: u64,
}

/// Reads records from `reader` into rows.
pub fn read_rows(reader: impl BufRead, prices: &PriceBook) -> (Vec<LedgerRow>, ImportReport) {
    let mut report = ImportReport::default();
    let mut rows = Vec::new();
    for line in reader.lines() {
        let Ok(line) = line else {
            report.invalid += 1;
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        match serde_json::from_str::<OldRecord>(&line) {
            Ok(old) => rows.push(to_row(old, prices)),
            Err(_) => report.invalid += 1,
        }
    }
    report.rows = rows.len() as u64;
    (rows, report)
}

fn to_row(old: OldRecord, prices: &PriceBook) -> LedgerRow {
    let request_id = old
        .request_id
        .as_ref()
        .map(|v| v.to_string().trim_matches('"').to_string())
        .unwrap_or_default();
    // Upstream trace ids restart with each process: the timestamp makes them unique.
    let trace_id = format!(
        "import:{}:{}:{}",
        old.timestamp_ms,
        request_id,
        old.trace_id.as_deref().unwrap_or("")
    );
    let (requested, sent) = match old.model.as_deref().and_then(|m| m.split_once("->")) {
        Some((a, b)) => (Some(a.trim().to_string()), Some(b.trim().to_string())),
        None => (old.model.clone(), old.model.clone()),
    };
    let usage = old.usage.as_ref().and_then(Usage::from_json);
    let duration_ms = old.duration_ms.unwrap_or(0.0);
    let status = old.status_code;
    let cost = usage
        .zip(sent.as_deref())
        .and_then(|(u, m)| prices.cost(m, &u, 1.0));
    LedgerRow {
        trace_id,
        started_ms: old.timestamp_ms.saturating_sub(duration_ms as u64),
        session_id: old.session_id,
        session_source: old.session_identity_source,
        method: old.method.unwrap_or_else(|| "POST".into()),
        path: old.path.unwrap_or_default(),
        streaming: true,
        model_requested: requested,
        model_sent: sent,
        provider: old.provider_id,
        endpoint: old.endpoint_id,
        status,
        outcome: if status.is_some_and(|s| s >= 400) {
            "failed".into()
        } else {
            "completed".into()
        },
        attempts_json: old
            .retry
            .map(|r| r.to_string())
            .unwrap_or_else(|| "[]".into()),
        decision_json: old.route_decision.map(|d| d.to_string()),
        input_tokens: usage.map(|u| u.input_tokens),
        cached_input_tokens: usage.map(|u| u.cached_input_tokens),
        output_tokens: usage.map(|u| u.output_tokens),
        reasoning_tokens: usage.map(|u| u.reasoning_tokens),
        total_tokens: usage.map(|u| u.total_tokens),
        ttfb_ms: old.ttfb_ms,
        duration_ms,
        cost_usd: cost.as_ref().map(|c| c.usd),
        price_source: cost.map(|c| c.source),
        client: Some("codex-helper (imported)".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_upstream_records_and_counts_bad_lines() {
        let text = r#"{"timestamp_ms":1764300000000,"request_id":17,"trace_id":"codex-17","service":"codex","method":"POST","path":"/v1/responses","status_code":200,"duration_ms":1500,"ttfb_ms":300,"provider_id":"monthly","endpoint_id":"default","session_id":"s1","session_identity_source":"header","model":"gpt-5->gpt-5.1","usage":{"input_tokens":"1200","output_tokens":5,"reasoning_tokens":2,"total_tokens":1205,"cached_input_tokens":1000}}
not json
{"timestamp_ms":1764300001000,"status_code":502,"path":"/v1/responses"}

"#;
        let (rows, report) = read_rows(text.as_bytes(), &PriceBook::built_in());
        assert_eq!(
            report,
            ImportReport {
                lines: 3,
                rows: 2,
                invalid: 1
            }
        );
        let r = &rows[0];
        assert_eq!(r.trace_id, "import:1764300000000:17:codex-17");
        assert_eq!(r.started_ms, 1764299998500);
        assert_eq!(
            (r.model_requested.as_deref(), r.model_sent.as_deref()),
            (Some("gpt-5"), Some("gpt-5.1"))
        );
        assert_eq!(
            (r.input_tokens, r.cached_input_tokens, r.output_tokens),
            (Some(1200), Some(1000), Some(5))
        );
        assert!(r.cost_usd.unwrap() > 0.0);
        assert_eq!(rows[1].outcome, "failed");
        assert_eq!(rows[1].total_tokens, None);
    }
}
