//! Session overrides and profiles through the admin API of a real running `serve`: set,
//! list, apply a profile, clear; the next request of the session is what the relay receives
//! and what the ledger, the sessions and `routing explain` report; wrong input is refused
//! with a message that says what is allowed.

mod support;

use serde_json::{Value, json};
use support::cli::{Homes, serve};
use support::mock_relay::MockRelay;

async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let (status, json, _) = support::cli::admin_call(method, url, body).await;
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_and_profiles_set_through_the_api_shape_the_sessions_next_request() {
    let (a, b) = (MockRelay::start("a").await, MockRelay::start("b").await);
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex]\ndefault_profile = \"base\"\n\
             [codex.profiles.base]\nservice_tier = \"flex\"\n\
             [codex.profiles.deep]\nextends = \"base\"\nmodel = \"gpt-5.5\"\nreasoning_effort = \"xhigh\"\n\
             [codex.providers.a]\nbase_url = \"{}\"\n[codex.providers.b]\nbase_url = \"{}\"\n\
             [codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"a\", \"b\"]\n",
            a.base_url(),
            b.base_url()
        ),
    )
    .unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    assert!(
        !served.log_so_far().contains("codex.profiles"),
        "profiles are acted on, not reported as ignored: {}",
        served.log_so_far()
    );
    let base = homes.admin_base();
    let turn = |session: &'static str| {
        let url = format!("{}/v1/responses", served.url);
        async move {
            let reply = support::client()
                .post(url)
                .header("content-type", "application/json")
                .header("session-id", session)
                .body(
                    json!({"model": "gpt-5.1", "input": "hi", "reasoning": {"effort": "medium"}})
                        .to_string(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 200);
        }
    };

    let (status, profiles) = call("GET", &format!("{base}/profiles"), None).await;
    assert_eq!(status, 200);
    assert_eq!(profiles["default_profile"], "base");
    assert_eq!(
        profiles["profiles"][1],
        json!({"name": "deep", "model": "gpt-5.5", "reasoning_effort": "xhigh", "service_tier": "flex"})
    );

    // Pin a session to b with a model and effort.
    let (status, set) = call(
        "POST",
        &format!("{base}/overrides/session"),
        Some(json!({"session_id": "t1", "model": "gpt-5.5", "reasoning_effort": "high", "route_target": "b"})),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        set,
        json!({"session": "t1", "overrides": {"model": "gpt-5.5", "reasoning_effort": "high",
               "service_tier": null, "route_target": "b", "profile": null}})
    );
    let (_, explained) = call("GET", &format!("{base}/routing/explain?session=t1"), None).await;
    assert_eq!(explained["pinned"], "b", "{explained}");
    assert_eq!(explained["chosen"], "b.default");

    turn("t1").await;
    assert_eq!(a.hits(), 0);
    let sent = b.received()[0].json();
    assert_eq!(sent["model"], "gpt-5.5");
    assert_eq!(sent["reasoning"]["effort"], "high");
    assert_eq!(
        sent["service_tier"], "flex",
        "the default profile fills the tier"
    );

    // Another session gets only the default profile's fill, on the preferred relay.
    turn("t2").await;
    let plain = a.received()[0].json();
    assert_eq!(plain["model"], "gpt-5.1");
    assert_eq!(plain["service_tier"], "flex");

    // A profile applied to t1 replaces its manual overrides.
    let (status, applied) = call(
        "POST",
        &format!("{base}/overrides/session/profile"),
        Some(json!({"session_id": "t1", "profile": "deep"})),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["overrides"]["profile"], "deep");
    assert_eq!(applied["overrides"]["route_target"], Value::Null);
    let (_, listed) = call("GET", &format!("{base}/overrides/session"), None).await;
    assert_eq!(listed["sessions"][0]["session"], "t1");
    assert_eq!(listed["sessions"][0]["profile"], "deep");
    turn("t1").await;
    let deep = b.received()[1].json();
    assert_eq!(deep["model"], "gpt-5.5");
    assert_eq!(deep["reasoning"]["effort"], "xhigh");
    assert_eq!(b.hits(), 2, "no longer pinned, t1 stays where it is bound");

    // The ledger and the sessions say what was asked, what was sent, and the overrides.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rows = loop {
        let (_, recent) = call(
            "GET",
            &format!("{base}/request-ledger/recent?session=t1"),
            None,
        )
        .await;
        let rows = recent["requests"].as_array().cloned().unwrap_or_default();
        if rows.len() == 2 {
            break rows;
        }
        assert!(std::time::Instant::now() < deadline, "{recent}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(rows[0]["model_requested"], "gpt-5.1");
    assert_eq!(rows[0]["model_sent"], "gpt-5.5");
    let (_, sessions) = call("GET", &format!("{base}/sessions"), None).await;
    let t1 = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session"] == "t1")
        .unwrap();
    assert_eq!(t1["overrides"]["profile"], "deep", "{sessions}");
    assert_eq!(t1["upstream"], "b.default");
    let (_, one) = call("GET", &format!("{base}/sessions/t1"), None).await;
    assert_eq!(one["overrides"]["profile"], "deep");

    // Wrong input: refused with what is allowed, nothing changed.
    for (path, body, says) in [
        (
            "overrides/session",
            json!({"session_id": "t1", "route_target": "nowhere"}),
            "the targets are: a, a.default, b, b.default",
        ),
        (
            "overrides/session",
            json!({"session_id": "t1", "clear": ["colour"]}),
            "`clear` takes",
        ),
        (
            "overrides/session",
            json!({"session_id": "t1", "modle": "x"}),
            "unknown field",
        ),
        (
            "overrides/session",
            json!({"session_id": "", "model": "x"}),
            "session_id",
        ),
        (
            "overrides/session/profile",
            json!({"session_id": "t1", "profile": "nope"}),
            "the profiles are: base, deep",
        ),
    ] {
        let (status, answer) = call("POST", &format!("{base}/{path}"), Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(says),
            "{answer}"
        );
    }
    let (_, listed) = call("GET", &format!("{base}/overrides/session"), None).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1);

    // Cleared: the profile removed, nothing left for t1.
    let (status, cleared) = call(
        "POST",
        &format!("{base}/overrides/session/profile"),
        Some(json!({"session_id": "t1", "profile": null})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(cleared["overrides"]["profile"], Value::Null);
    let (_, listed) = call("GET", &format!("{base}/overrides/session"), None).await;
    assert_eq!(listed["sessions"], json!([]));
}

#[tokio::test]
async fn a_wrong_profile_in_the_config_is_refused_at_start_naming_the_key() {
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        "version = 5\n[codex]\ndefault_profile = \"fast\"\n[codex.profiles.slow]\nmodel = \"m\"\n\
         [codex.providers.main]\nbase_url = \"http://127.0.0.1:9/v1\"\n",
    )
    .unwrap();
    let out = tokio::time::timeout(
        support::cli::LIMIT,
        homes
            .command(&["serve", "--no-switch", "--no-tui", "--port", "0"])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("codex.default_profile") && stderr.contains("the profiles are: slow"),
        "{stderr}"
    );
}

/// The terminal UI's Sessions page speaks this contract through its own types: every change
/// its keys make is accepted by a real serve, and what it reads back parses into what it shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_pages_changes_are_what_a_real_serve_accepts_and_reports() {
    use codex_helper::tui::overrides::{Effort, Profiles, Session, SessionChange};

    let a = MockRelay::start("a").await;
    let homes = Homes::new();
    std::fs::write(
        homes.helper_config(),
        format!(
            "version = 5\n[codex.profiles.fast]\nreasoning_effort = \"low\"\n\
             [codex.providers.a]\nbase_url = \"{}\"\n",
            a.base_url()
        ),
    )
    .unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let base = homes.admin_base();
    let (_, profiles) = call("GET", &format!("{base}/profiles"), None).await;
    let profiles: Profiles = serde_json::from_value(profiles).unwrap();
    assert_eq!(profiles.profiles[0].name, "fast");
    assert_eq!(
        profiles.profiles[0].reasoning_effort.as_deref(),
        Some("low")
    );

    let session_now = || async {
        let (_, sessions) = call("GET", &format!("{base}/sessions"), None).await;
        let sessions: Vec<Session> = serde_json::from_value(sessions["sessions"].clone()).unwrap();
        sessions.into_iter().find(|s| s.session == "t")
    };
    let steps = [
        (
            SessionChange::Effort(Effort::XHigh),
            Some("xhigh"),
            None,
            None,
        ),
        (
            SessionChange::Pin("a.default".into()),
            Some("xhigh"),
            Some("a.default"),
            None,
        ),
        (SessionChange::ClearEffort, None, Some("a.default"), None),
        (SessionChange::ClearPin, None, None, None),
        (
            SessionChange::Profile(Some("fast".into())),
            None,
            None,
            Some("fast"),
        ),
        (SessionChange::Profile(None), None, None, None),
        (SessionChange::Effort(Effort::Low), Some("low"), None, None),
        (SessionChange::ResetAll, None, None, None),
    ];
    for (change, effort, pin, profile) in steps {
        let (path, body) = change.request("t");
        let (status, answer) = call("POST", &format!("{base}{path}"), Some(body)).await;
        assert_eq!(status, 200, "{change:?}: {answer}");
        let overrides = session_now().await.and_then(|s| s.overrides);
        let overrides = overrides.unwrap_or_default();
        assert_eq!(
            (
                overrides.reasoning_effort.as_deref(),
                overrides.route_target.as_deref(),
                overrides.profile.as_deref()
            ),
            (effort, pin, profile),
            "after {change:?}"
        );
    }

    // The original's spellings and its reset route work too.
    let post = |path: &'static str, body: Value| {
        let url = format!("{base}{path}");
        async move { call("POST", &url, Some(body)).await }
    };
    let (status, set) = post(
        "/overrides/session",
        json!({"session_id": "t", "effort": "high"}),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["overrides"]["reasoning_effort"], "high");
    let (status, set) = post(
        "/overrides/session/profile",
        json!({"session_id": "u", "profile_name": "fast"}),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["overrides"]["profile"], "fast");
    for session in ["t", "u"] {
        let (status, reset) =
            post("/overrides/session/reset", json!({ "session_id": session })).await;
        assert_eq!(status, 200, "{reset}");
    }
    let (_, listed) = call("GET", &format!("{base}/overrides/session"), None).await;
    assert_eq!(listed["sessions"], json!([]));
    let (status, _) = post("/overrides/session/reset", json!({"session_id": ""})).await;
    assert_eq!(status, 400);
    drop(served);
}
