//! The terminal UI's fetcher against a real admin API (in process, over a socket): what it
//! reads arrives on its channel, and an action it is sent reaches the helper.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_helper::admin::{self, Console, RecentQuery, SummaryQuery};
use codex_helper::balance::report::{EndpointBalance, RefreshReport};
use codex_helper::balance::snapshot::Status;
use codex_helper::tui::data::{Action, Command, Fetcher, Query, Snapshot, Update, Window};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

/// Bounds every wait here.
const LIMIT: Duration = Duration::from_secs(20);

/// A helper with two endpoints (one cooling down), two requests, and a balance.
#[derive(Default)]
struct StandIn {
    switched: Mutex<Vec<Value>>,
    summaries: Mutex<Vec<SummaryQuery>>,
}

impl Console for StandIn {
    fn balances(&self) -> Vec<EndpointBalance> {
        vec![EndpointBalance {
            provider: "alpha".into(),
            endpoint: "alpha.default".into(),
            status: Status::Unknown,
            routing_exhausted_until_ms: None,
            snapshot: None,
        }]
    }

    fn refresh_balances(
        &self,
        _: Option<String>,
    ) -> BoxFuture<'static, anyhow::Result<RefreshReport>> {
        Box::pin(async { Ok(RefreshReport::default()) })
    }

    fn runtime(&self) -> anyhow::Result<Value> {
        Ok(
            json!({"version": "9.9.9", "pid": 77, "uptime_ms": 5000, "proxy": "http://127.0.0.1:3211",
            "config_path": "/h/config.toml", "preset": null}),
        )
    }

    fn providers(&self) -> anyhow::Result<Value> {
        Ok(json!({"providers": [
            {"provider": "alpha", "endpoint": "default", "key": "alpha.default", "host": "a.example",
             "routable": true, "skip": null},
            {"provider": "beta", "endpoint": "default", "key": "beta.default", "host": "b.example",
             "routable": false, "skip": {"detail": {}, "why": "cooling down for 9 s more"}},
        ]}))
    }

    fn set_runtime(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        self.switched.lock().unwrap().push(body);
        Box::pin(async { Ok(json!({"changed": ["beta.default"], "enabled": false})) })
    }

    fn explain(&self, _: Option<String>, _: Option<String>) -> anyhow::Result<Value> {
        Ok(json!({"chosen": "alpha.default"}))
    }

    fn ledger_recent(&self, query: RecentQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        Box::pin(async move {
            let ok = json!({"started_local": "2026-05-01 10:00:00", "provider": "alpha",
                "endpoint": "alpha.default", "model": "gpt-5", "status": 200, "outcome": "completed",
                "total_tokens": 100, "cost_usd": 0.01, "ttfb_ms": 200.0, "duration_ms": 900.0});
            let failed = json!({"started_local": "2026-05-01 09:59:00", "provider": "beta",
                "endpoint": "beta.default", "model": "gpt-5", "status": 502, "outcome": "upstream_error",
                "total_tokens": null, "cost_usd": null, "ttfb_ms": null, "duration_ms": 50.0});
            let rows = if query.errors_only {
                vec![failed]
            } else {
                vec![ok, failed]
            };
            Ok(json!({"requests": rows}))
        })
    }

    fn ledger_summary(&self, query: SummaryQuery) -> BoxFuture<'static, anyhow::Result<Value>> {
        self.summaries.lock().unwrap().push(query);
        Box::pin(async {
            let row = json!({"key": "alpha", "requests": 2, "errors": 1, "total_tokens": 100, "cost_usd": 0.01});
            Ok(json!({"since_ms": 0, "rows": [row.clone()], "total": row}))
        })
    }
}

/// The next data update that satisfies `wanted`, within [`LIMIT`].
fn next_data(
    updates: &std::sync::mpsc::Receiver<Update>,
    wanted: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match updates.recv_timeout(left).expect("no update in time") {
            Update::Data(snapshot) if wanted(&snapshot) => return *snapshot,
            _ => continue,
        }
    }
}

#[test]
fn the_fetcher_reads_the_running_helper_and_carries_actions_to_it() {
    // The admin API runs on a runtime of its own; this thread only waits on channels.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let console = Arc::new(StandIn::default());
    let handle = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        admin::serve_admin(listener, console.clone(), admin::Access::default())
            .await
            .unwrap()
    });
    let (fetcher, updates) = Fetcher::start(handle.addr, Query::default()).unwrap();

    let data = next_data(&updates, |_| true);
    assert_eq!(data.errors, Vec::<String>::new());
    assert_eq!(data.runtime.as_ref().unwrap().version, "9.9.9");
    let keys: Vec<&str> = data.endpoints.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["alpha.default", "beta.default"]);
    assert_eq!(
        data.endpoints[1].skip.as_ref().unwrap().why,
        "cooling down for 9 s more"
    );
    assert_eq!(data.chosen.as_deref(), Some("alpha.default"));
    assert_eq!(data.recent.len(), 2);
    assert_eq!(data.summary.as_ref().unwrap().total.errors, 1);
    assert_eq!(data.balances[0].status, Status::Unknown);

    // A new query is read at once, with the window it names.
    fetcher.send(Command::Query(Query {
        window: Window::D7,
        errors_only: true,
    }));
    let data = next_data(&updates, |s| s.window == Window::D7);
    assert_eq!(data.recent_errors.len(), 1);
    assert_eq!(data.recent_errors[0].status, Some(502));
    assert!(
        console
            .summaries
            .lock()
            .unwrap()
            .iter()
            .any(|q| q.since.as_deref() == Some("7d"))
    );

    // Switching an endpoint off goes through POST /providers/runtime.
    let switch = Action::Switch {
        provider: "beta".into(),
        endpoint: "default".into(),
        enabled: false,
    };
    fetcher.send(Command::Act(switch.clone()));
    let deadline = Instant::now() + LIMIT;
    let done = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Update::Done(action, result) = updates.recv_timeout(left).expect("no answer in time")
        {
            break (action, result);
        }
    };
    assert_eq!(done, (switch, Ok(Vec::new())));
    let switched = console.switched.lock().unwrap().clone();
    assert_eq!(
        switched,
        [
            json!({"provider_id": "beta", "endpoint_id": "default", "enabled": false, "minutes": 30,
            "reason": "switched off in the terminal UI"})
        ]
    );
    drop(fetcher);
    runtime.block_on(handle.shutdown());
}
