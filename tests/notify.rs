//! Notifications: through the proxy with mock relays, a failover runs the user's command once
//! with the event's JSON (repeats held back by the rate limit), an all-blocked answer and a
//! relay out of balance are told too; `notify codex` with Codex's payload finds the turn in
//! the ledger and notifies only a long one.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use codex_helper::notify::deliver::Channels;
use codex_helper::notify::service::ExhaustionWatch;
use codex_helper::notify::{Notifier, NotifySettings, NotifySink};
use codex_helper::proxy::RecordSink;
use codex_helper::proxy::record::NoSink;
use codex_helper::time::Clock;
use serde_json::Value;
use support::cli::{Homes, LIMIT, run, serve};
use support::mock_relay::{Fault, MockRelay};
use support::{TestProxy, bounded, client, codex_body, providers};

/// A command that appends each event's JSON as one line of `file`.
fn appending_to(file: &Path) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "cat >> '{}' && echo >> '{}'",
            file.display(),
            file.display()
        ),
    ]
}

/// The events written to `file` once there are `n` of them (bounded wait).
async fn events(file: &Path, n: usize) -> Vec<Value> {
    tokio::time::timeout(LIMIT, async {
        loop {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let lines: Vec<Value> = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} events were not written to {}", file.display()))
}

fn settings(file: &Path) -> NotifySettings {
    NotifySettings {
        enabled: true,
        toast: Some(false),
        command: Some(appending_to(file)),
        ..NotifySettings::default()
    }
}

async fn turn(proxy: &TestProxy, session: &str) -> String {
    client()
        .post(proxy.url("/v1/responses"))
        .header("session-id", session)
        .body(codex_body("gpt-5.1", session, 500))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn failovers_are_rate_limited_per_relay_and_all_blocked_and_exhaustion_are_told() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("events.jsonl");
        let settings = settings(&file);
        let notifier = Notifier::start(&settings, Channels::from_settings(&settings, None));
        let sink: Arc<dyn RecordSink> = Arc::new(NotifySink::new(
            Arc::new(NoSink),
            notifier.handle(),
            &settings,
        ));
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        first.always(Some(Fault::status(502)));
        let config = providers(&[("first", &first.base_url()), ("second", &second.base_url())])
            + "[retry]\nprofile = \"aggressive-failover\"\n";
        let clock = Clock::manual();
        let proxy = TestProxy::launch(&config, &[], Some(sink), clock.clone()).await;

        // Three failovers from `first` in a row (its cooldown let pass each time).
        for session in ["s1", "s2", "s3"] {
            assert!(turn(&proxy, session).await.contains("hi from second"));
            clock.advance(Duration::from_secs(3_600));
        }
        // Then nothing answers: an all-blocked answer (after the failovers in the queue).
        second.always(Some(Fault::status(502)));
        turn(&proxy, "s4").await;
        let got = events(&file, 2).await;
        let kinds: Vec<&str> = got.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["failover", "all_blocked"], "{got:?}");
        let failover = &got[0];
        assert_eq!(failover["relay"], "first.default");
        assert_eq!(failover["details"]["answered_by"], "second.default");
        assert_eq!(failover["details"]["session"], "s1");
        assert_eq!(
            failover["message"],
            "first/default: HTTP 502; answered by second.default"
        );
        assert_eq!(failover["suppressed"], 0);
        assert_eq!(got[1]["details"]["outcome"], "all_upstreams_failed");
        assert_eq!(got[1]["relay"], Value::Null);

        // A relay taken out by its balance.
        let watch = ExhaustionWatch::start(proxy.state.clone(), notifier.handle());
        // The watch takes what it finds at start as it is: give it a look first.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let until = clock.now() + 600_000;
        proxy
            .state
            .routing
            .set_exhausted("second.default", Some(("balance 0.00 USD".into(), until)));
        let got = events(&file, 3).await;
        assert_eq!(got[2]["kind"], "relay_exhausted");
        assert_eq!(got[2]["relay"], "second.default");
        assert_eq!(got[2]["details"]["reason"], "balance 0.00 USD");
        tokio::task::spawn_blocking(move || {
            watch.stop();
            notifier.stop();
        })
        .await
        .unwrap();
        assert_eq!(events(&file, 3).await.len(), 3, "no more than these");
    })
    .await;
}

fn notify_config(relays: &str, file: &Path, extra: &str) -> String {
    let command: Vec<String> = appending_to(file)
        .iter()
        .map(|p| format!("{:?}", p))
        .collect();
    format!(
        "version = 5\n[notify]\nenabled = true\ntoast = false\ncommand = [{}]\n{extra}\n{relays}",
        command.join(", ")
    )
}

#[tokio::test]
async fn serve_runs_the_configured_command_once_for_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let first = MockRelay::start("first").await;
    let mut second = MockRelay::start("second").await;
    first.always(Some(Fault::status(502)));
    let homes = Homes::new();
    let relays = providers(&[("first", &first.base_url()), ("second", &second.base_url())])
        + "[retry]\nprofile = \"aggressive-failover\"\n";
    std::fs::write(homes.helper_config(), notify_config(&relays, &file, "")).unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let post = || {
        client()
            .post(format!("{}/v1/responses", served.url))
            .header("session-id", "thread-9")
            .body(codex_body("gpt-5.1", "thread-9", 500))
            .send()
    };
    let text = post().await.unwrap().text().await.unwrap();
    assert!(text.contains("hi from second"), "{text}");
    // Then no relay at all: the second event, behind the first in the queue.
    second.kill();
    post().await.unwrap().text().await.unwrap();
    let got = events(&file, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["kind"], "failover");
    assert_eq!(got[0]["relay"], "first.default");
    assert_eq!(got[0]["title"], "codex-helper: failover from first.default");
    assert_eq!(got[0]["details"]["path"], "/v1/responses");
    assert_eq!(got[1]["kind"], "all_blocked");
}

/// Codex's payload for a turn of `thread`.
fn payload(thread: &str) -> String {
    serde_json::json!({"type": "agent-turn-complete", "thread-id": thread, "turn-id": "7",
        "cwd": "/home/u/project", "input-messages": ["fix the bug"],
        "last-assistant-message": "Done: the bug is fixed."})
    .to_string()
}

#[tokio::test]
async fn notify_codex_notifies_a_long_turn_found_in_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("events.jsonl");
    let relay = MockRelay::start("a").await;
    // Slow enough to pass a 1 s threshold.
    relay.push(Fault::StallBeforeHeaders(Duration::from_millis(1_200)));
    let homes = Homes::new();
    let relays = providers(&[("a", &relay.base_url())]);
    std::fs::write(
        homes.helper_config(),
        notify_config(&relays, &file, "min_turn_secs = 1"),
    )
    .unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    for thread in ["slow-thread", "quick-thread"] {
        client()
            .post(format!("{}/v1/responses", served.url))
            .header("session-id", thread)
            .body(codex_body("gpt-5.1", thread, 500))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    // The ledger writes on its own thread: ask until the rows are there (bounded).
    let decided = |thread: &'static str| {
        let homes = &homes;
        async move {
            let (ok, out) = run(homes, &["notify", "codex", "--json", &payload(thread)]).await;
            assert!(ok, "{out}");
            let json_end = out.rfind('}').unwrap();
            serde_json::from_str::<Value>(&out[..=json_end]).unwrap()
        }
    };
    let slow = tokio::time::timeout(LIMIT, async {
        loop {
            let d = decided("slow-thread").await;
            if !d["reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("no request")
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the slow turn reached the ledger");
    assert_eq!(slow["notified"], true, "{slow}");
    let got = events(&file, 1).await;
    assert_eq!(got[0]["kind"], "long_turn");
    assert_eq!(got[0]["message"], "Done: the bug is fixed.");
    assert_eq!(got[0]["details"]["thread_id"], "slow-thread");
    assert_eq!(got[0]["details"]["relay"], "a.default");
    assert!(
        got[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("Codex: turn done in ")
    );

    let quick = decided("quick-thread").await;
    assert_eq!(quick["notified"], false);
    assert!(
        quick["reason"]
            .as_str()
            .unwrap()
            .contains("under [notify] min_turn_secs (1 s)"),
        "{quick}"
    );
    let (ok, out) = run(&homes, &["notify", "codex", "not json"]).await;
    assert!(!ok && out.contains("not Codex's turn JSON"), "{out}");
    assert_eq!(events(&file, 1).await.len(), 1);
}

#[tokio::test]
async fn notify_test_sends_a_sample_and_says_when_nothing_can_deliver_it() {
    let homes = Homes::new();
    // No config yet: notifications are off, and `notify codex` says so without failing.
    let (ok, out) = run(&homes, &["notify", "codex", "--json", &payload("t")]).await;
    assert!(ok && out.contains("notifications are off"), "{out}");
    let (ok, out) = run(&homes, &["notify", "test", "--kind", "bogus"]).await;
    assert!(
        !ok && out.contains("long_turn, failover, relay_exhausted, all_blocked"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(homes.helper_config(), notify_config("", &file, "")).unwrap();
    let (ok, out) = run(&homes, &["notify", "test", "--kind", "relay_exhausted"]).await;
    assert!(ok, "{out}");
    let got = events(&file, 1).await;
    assert_eq!(got[0]["kind"], "relay_exhausted");
    assert_eq!(got[0]["details"]["test"], true);

    // A command that fails is told, with what it said.
    std::fs::write(
        homes.helper_config(),
        "version = 5\n[notify]\nenabled = true\ntoast = false\ncommand = [\"/bin/sh\", \"-c\", \"echo nope >&2; exit 4\"]\n",
    )
    .unwrap();
    let (ok, out) = run(&homes, &["notify", "test"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("notify command `/bin/sh`: exited with exit status: 4: nope"),
        "{out}"
    );
}
