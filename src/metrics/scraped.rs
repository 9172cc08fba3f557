//! Families read at scrape time from state other parts already keep (the ledger writer's
//! counters, the balance snapshots, the build): plain data in, families out.

use super::registry::number;
use super::render::{Family, Kind};

/// `codex_helper_build_info{version} 1` and the process start time.
pub fn build(version: &str, started_ms: u64) -> Vec<Family> {
    vec![
        Family {
            name: "codex_helper_build_info",
            help: "The running codex-helper's version (always 1).",
            kind: Kind::Gauge,
            samples: vec![number(vec![("version", version.to_string())], 1.0)],
        },
        Family {
            name: "codex_helper_start_time_seconds",
            help: "When this codex-helper started serving, in seconds since the Unix epoch.",
            kind: Kind::Gauge,
            samples: vec![number(Vec::new(), started_ms as f64 / 1000.0)],
        },
    ]
}

/// `codex_helper_tasks`: the tasks alive on the serving event loops (a leak shows here first).
pub fn tasks(alive: usize) -> Family {
    Family {
        name: "codex_helper_tasks",
        help: "Tasks alive on the proxy's event loops (the accepting thread's included).",
        kind: Kind::Gauge,
        samples: vec![number(Vec::new(), alive as f64)],
    }
}

/// The ledger writer's counters, read once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    /// Handed to the writer's queue.
    pub queued: u64,
    pub written: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Lost because a write failed.
    pub failed: u64,
}

/// The ledger's queue depth and its written and lost rows.
pub fn ledger(counts: LedgerCounts) -> Vec<Family> {
    let waiting = counts
        .queued
        .saturating_sub(counts.written)
        .saturating_sub(counts.failed);
    vec![
        Family {
            name: "codex_helper_ledger_queue_rows",
            help: "Finished requests queued for the ledger writer and not yet written.",
            kind: Kind::Gauge,
            samples: vec![number(Vec::new(), waiting as f64)],
        },
        Family {
            name: "codex_helper_ledger_rows_written_total",
            help: "Request rows written to the ledger.",
            kind: Kind::Counter,
            samples: vec![number(Vec::new(), counts.written as f64)],
        },
        Family {
            name: "codex_helper_ledger_rows_lost_total",
            help: "Request rows that never reached the ledger: queue_full (the writer's queue was full) or write_failed (the database refused the write: locked, full disk, size cap).",
            kind: Kind::Counter,
            samples: vec![
                number(vec![("reason", "queue_full".into())], counts.dropped as f64),
                number(
                    vec![("reason", "write_failed".into())],
                    counts.failed as f64,
                ),
            ],
        },
    ]
}

/// One endpoint's balance state, by its serde name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceState {
    pub provider: String,
    /// The endpoint id within its provider.
    pub endpoint: String,
    pub state: &'static str,
}

/// `codex_helper_balance_state{provider,endpoint,state}`: 1 for the state each endpoint is in,
/// 0 for every other one of `states`, so a state change is a change of value, not a series
/// appearing.
pub fn balances(endpoints: &[BalanceState], states: &[&'static str]) -> Family {
    let samples = endpoints
        .iter()
        .flat_map(|b| {
            states.iter().map(move |state| {
                let labels = vec![
                    ("provider", b.provider.clone()),
                    ("endpoint", b.endpoint.clone()),
                    ("state", (*state).to_string()),
                ];
                number(labels, if *state == b.state { 1.0 } else { 0.0 })
            })
        })
        .collect();
    Family {
        name: "codex_helper_balance_state",
        help: "Each endpoint's balance state as routing sees it (1 for its state, 0 for the others).",
        kind: Kind::Gauge,
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::render::render;

    #[test]
    fn the_queue_depth_is_what_was_queued_and_not_yet_written_or_lost() {
        let text = render(&ledger(LedgerCounts {
            queued: 10,
            written: 6,
            dropped: 3,
            failed: 1,
        }));
        assert!(
            text.contains("\ncodex_helper_ledger_queue_rows 3\n"),
            "{text}"
        );
        assert!(text.contains("codex_helper_ledger_rows_written_total 6\n"));
        assert!(text.contains("codex_helper_ledger_rows_lost_total{reason=\"queue_full\"} 3\n"));
        assert!(text.contains("codex_helper_ledger_rows_lost_total{reason=\"write_failed\"} 1\n"));
    }

    #[test]
    fn each_endpoint_has_one_state_set() {
        let family = balances(
            &[BalanceState {
                provider: "p".into(),
                endpoint: "default".into(),
                state: "exhausted",
            }],
            &["ok", "exhausted"],
        );
        let text = render(&[family]);
        assert!(text.contains(
            "codex_helper_balance_state{provider=\"p\",endpoint=\"default\",state=\"ok\"} 0\n"
        ));
        assert!(text.contains(
            "codex_helper_balance_state{provider=\"p\",endpoint=\"default\",state=\"exhausted\"} 1\n"
        ));
    }

    #[test]
    fn build_info_names_the_version() {
        let text = render(&build("1.2.3", 1_500));
        assert!(text.contains("codex_helper_build_info{version=\"1.2.3\"} 1\n"));
        assert!(text.contains("codex_helper_start_time_seconds 1.5\n"));
    }
}
