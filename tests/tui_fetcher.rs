//! The terminal UI's fetcher against a real admin API (in process, over a socket): what it
//! reads arrives on its channel, and an action it is sent reaches the helper through the
//! route the API serves for it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_helper::admin::{self, Console, RecentQuery, SummaryQuery};
use codex_helper::balance::report::{EndpointBalance, RefreshReport};
use codex_helper::balance::snapshot::Status;
use codex_helper::tui::data::{
    Action, Command, Effort, Fetcher, Query, SessionChange, Snapshot, Update, Window,
};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

/// Bounds every wait here.
const LIMIT: Duration = Duration::from_secs(20);

/// A helper with two endpoints (one cooling down), two requests, and a balance.
#[derive(Default)]
struct StandIn {
    switched: Mutex<Vec<Value>>,
    summaries: Mutex<Vec<SummaryQuery>>,
    /// The bodies `POST /routing/persisted` received.
    persisted: Mutex<Vec<Value>>,
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

    /// Pins as the real console does; `beta` as if the file had changed on disk.
    fn persist_routing(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        self.persisted.lock().unwrap().push(body.clone());
        Box::pin(async move {
            if body["pin"] == "beta" {
                return Err(admin::Problem::conflict(
                    "/h/config.toml changed on disk since it was loaded; reload first \
                     (POST /runtime/reload)",
                )
                .into());
            }
            Ok(
                json!({"entry": "main", "config_path": "/h/config.toml", "graph_key": "g2:1",
                "reloaded": "reloaded"}),
            )
        })
    }

    fn sessions(&self, limit: usize) -> BoxFuture<'static, anyhow::Result<Value>> {
        // Today's shape: no `overrides`.
        Box::pin(async move {
            assert_eq!(limit, 200, "the Sessions page asks for 200");
            Ok(
                json!({"sessions": [{"session": "019a-s1", "upstream": "alpha.default",
                "current_graph": true, "last_selected_ms": 1000, "last_changed_ms": 900,
                "change_reason": "first_request", "requests_24h": 4, "errors_24h": 1,
                "tokens_24h": 5000, "cost_usd_24h": 0.25}]}),
            )
        })
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

/// The real admin API over [`StandIn`], on a runtime of its own: the test's thread only waits
/// on channels.
fn serve_stand_in() -> (tokio::runtime::Runtime, Arc<StandIn>, admin::AdminHandle) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let console = Arc::new(StandIn::default());
    let handle = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        admin::serve_admin(listener, console.clone(), admin::Access::default())
            .await
            .unwrap()
    });
    (runtime, console, handle)
}

#[test]
fn the_fetcher_reads_the_running_helper_and_carries_actions_to_it() {
    let (runtime, console, handle) = serve_stand_in();
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
    // Sessions come through the real route, read leniently (no overrides in today's answer).
    let data = next_data(&updates, |s| s.sessions.is_some());
    let sessions = data.sessions.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (sessions[0].session.as_str(), sessions[0].errors_24h),
        ("019a-s1", 1)
    );
    assert_eq!(sessions[0].overrides, None);
    assert!(data.sessions_error.is_none());

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
    assert_eq!(next_done(&updates), (switch, Ok(Vec::new())));
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

/// A stand-in helper for the session routes: one session whose overrides the POSTs change,
/// one profile, a reload; it records each POST's body and counts the reads.
#[derive(Default)]
struct Overriding {
    /// `(route, body)` of each POST, in order.
    posted: Mutex<Vec<(&'static str, Value)>>,
    overrides: Mutex<Value>,
    reads: Mutex<std::collections::HashMap<&'static str, usize>>,
}

impl Overriding {
    fn read(&self, route: &'static str) {
        *self.reads.lock().unwrap().entry(route).or_default() += 1;
    }

    fn count(&self, route: &str) -> usize {
        self.reads.lock().unwrap().get(route).copied().unwrap_or(0)
    }

    fn last_post(&self) -> (&'static str, Value) {
        self.posted.lock().unwrap().last().cloned().expect("a POST")
    }

    fn answer(&self, session: &Value) -> anyhow::Result<Value> {
        Ok(json!({"session": session, "overrides": *self.overrides.lock().unwrap()}))
    }
}

impl Console for Overriding {
    fn balances(&self) -> Vec<EndpointBalance> {
        Vec::new()
    }

    fn refresh_balances(
        &self,
        _: Option<String>,
    ) -> BoxFuture<'static, anyhow::Result<RefreshReport>> {
        Box::pin(async { Ok(RefreshReport::default()) })
    }

    fn runtime(&self) -> anyhow::Result<Value> {
        self.read("runtime");
        Ok(json!({"version": "9.9.9", "pid": 77, "uptime_ms": 5000}))
    }

    fn reload(&self) -> BoxFuture<'static, anyhow::Result<Value>> {
        Box::pin(async { Ok(json!({"reloaded": true})) })
    }

    fn sessions(&self, limit: usize) -> BoxFuture<'static, anyhow::Result<Value>> {
        assert_eq!(limit, 200, "the Sessions page asks for 200");
        self.read("sessions");
        let overrides = self.overrides.lock().unwrap().clone();
        Box::pin(async move {
            Ok(json!({"sessions": [
                {"session": "s-1", "upstream": "alpha.default", "current_graph": true,
                 "last_selected_ms": 1000, "requests_24h": 3, "errors_24h": 0,
                 "tokens_24h": 900, "cost_usd_24h": 0.02, "overrides": overrides},
                {"session": "s-2", "upstream": null, "overrides": {"model": "gpt-5"}}
            ]}))
        })
    }

    fn profiles(&self) -> anyhow::Result<Value> {
        self.read("profiles");
        Ok(json!({"default_profile": null, "profiles": [
            {"name": "deep", "model": null, "reasoning_effort": "xhigh", "service_tier": null}]}))
    }

    fn set_session_overrides(&self, body: Value) -> anyhow::Result<Value> {
        self.posted
            .lock()
            .unwrap()
            .push(("overrides/session", body.clone()));
        if body["route_target"] == "zeta" {
            return Err(admin::Problem::bad_request("unknown route target `zeta`").into());
        }
        {
            let mut overrides = self.overrides.lock().unwrap();
            if overrides.is_null() {
                *overrides = json!({});
            }
            for field in ["reasoning_effort", "route_target", "model", "service_tier"] {
                if let Some(value) = body.get(field) {
                    overrides[field] = value.clone();
                }
            }
        }
        self.answer(&body["session_id"])
    }

    fn apply_session_profile(&self, body: Value) -> anyhow::Result<Value> {
        self.posted
            .lock()
            .unwrap()
            .push(("overrides/session/profile", body.clone()));
        *self.overrides.lock().unwrap() = json!({"profile": body["profile"]});
        self.answer(&body["session_id"])
    }
}

/// The next finished action, within [`LIMIT`].
fn next_done(updates: &std::sync::mpsc::Receiver<Update>) -> (Action, Result<Vec<String>, String>) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Update::Done(action, result) = updates.recv_timeout(left).expect("no answer in time")
        {
            return (action, result);
        }
    }
}

#[test]
fn session_actions_reach_the_override_routes_and_the_sessions_are_read_again() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let console = Arc::new(Overriding::default());
    let handle = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        admin::serve_admin(listener, console.clone(), admin::Access::default())
            .await
            .unwrap()
    });
    let started = Instant::now();
    let (fetcher, updates) = Fetcher::start(handle.addr, Query::default()).unwrap();

    // Sessions (with and without overrides) and profiles arrive.
    let data = next_data(&updates, |s| s.sessions.is_some() && s.profiles.is_some());
    let sessions = data.sessions.unwrap();
    let ids: Vec<&str> = sessions.iter().map(|s| s.session.as_str()).collect();
    assert_eq!(ids, ["s-1", "s-2"]);
    assert!(!sessions[0].overridden() && sessions[1].overridden());
    assert_eq!(sessions[1].upstream, None);
    assert_eq!(data.profiles.unwrap().profiles[0].name, "deep");

    // Effort: POST /overrides/session with the contract's body; then the change is read back.
    let effort = Action::Session {
        session: "s-1".into(),
        change: SessionChange::Effort(Effort::High),
    };
    fetcher.send(Command::Act(effort.clone()));
    assert_eq!(next_done(&updates), (effort, Ok(Vec::new())));
    assert_eq!(
        console.last_post(),
        (
            "overrides/session",
            json!({"session_id": "s-1", "reasoning_effort": "high"})
        )
    );
    let data = next_data(&updates, |s| {
        s.sessions.as_ref().is_some_and(|all| {
            all[0]
                .overrides
                .as_ref()
                .is_some_and(|o| o.reasoning_effort.as_deref() == Some("high"))
        })
    });
    assert!(data.sessions.unwrap()[0].overridden());

    // A profile goes to its own route; `None` would remove it.
    let profile = Action::Session {
        session: "s-1".into(),
        change: SessionChange::Profile(Some("deep".into())),
    };
    fetcher.send(Command::Act(profile.clone()));
    assert_eq!(next_done(&updates), (profile, Ok(Vec::new())));
    assert_eq!(
        console.last_post(),
        (
            "overrides/session/profile",
            json!({"session_id": "s-1", "profile": "deep"})
        )
    );

    // A refusal comes back with the helper's own words.
    let pin = Action::Session {
        session: "s-1".into(),
        change: SessionChange::Pin("zeta".into()),
    };
    fetcher.send(Command::Act(pin.clone()));
    let (action, result) = next_done(&updates);
    assert_eq!(action, pin);
    let error = result.unwrap_err();
    assert!(
        error.contains("400") && error.contains("unknown route target `zeta`"),
        "{error}"
    );

    // Reset clears everything.
    let reset = Action::Session {
        session: "s-1".into(),
        change: SessionChange::ResetAll,
    };
    fetcher.send(Command::Act(reset.clone()));
    assert_eq!(next_done(&updates), (reset, Ok(Vec::new())));
    assert_eq!(
        console.last_post(),
        (
            "overrides/session",
            json!({"session_id": "s-1", "clear": ["all"]})
        )
    );

    // Profiles are read at start, then again only after a reload.
    assert_eq!(console.count("profiles"), 1);
    fetcher.send(Command::Act(Action::Reload));
    assert_eq!(next_done(&updates), (Action::Reload, Ok(Vec::new())));
    let deadline = Instant::now() + LIMIT;
    while console.count("profiles") < 2 {
        assert!(
            Instant::now() < deadline,
            "the profiles were not read again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The sessions were polled at most every two seconds, plus once after each action (5).
    let polls = console.count("runtime");
    let reads = console.count("sessions");
    let allowed = started.elapsed().as_secs() as usize / 2 + 1 + 5;
    assert!(
        reads <= allowed,
        "{reads} reads of /sessions, {allowed} allowed"
    );
    assert!(polls >= reads, "{polls} polls, {reads} session reads");
    drop(fetcher);
    runtime.block_on(handle.shutdown());
}

#[test]
fn a_pin_in_the_config_is_posted_to_routing_persisted_and_a_409_says_reload_first() {
    let (runtime, console, handle) = serve_stand_in();
    let (fetcher, updates) = Fetcher::start(handle.addr, Query::default()).unwrap();
    let pin = Action::PinInConfig {
        provider: "alpha".into(),
    };
    fetcher.send(Command::Act(pin.clone()));
    assert_eq!(
        next_done(&updates),
        (pin, Ok(vec!["main → alpha (/h/config.toml)".to_string()]))
    );
    let refused = Action::PinInConfig {
        provider: "beta".into(),
    };
    fetcher.send(Command::Act(refused.clone()));
    let (action, result) = next_done(&updates);
    assert_eq!(action, refused);
    let error = result.unwrap_err();
    assert!(
        error.contains("409") && error.contains("reload first"),
        "{error}"
    );
    let persisted = console.persisted.lock().unwrap().clone();
    assert_eq!(persisted, [json!({"pin": "alpha"}), json!({"pin": "beta"})]);
    drop(fetcher);
    runtime.block_on(handle.shutdown());
}
