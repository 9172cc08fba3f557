//! Team mode's limits across instances, against a real Redis and PostgreSQL (started by the
//! test, on loopback) and two real `serve --team` processes: a concurrency limit holds across
//! both and its permits come back when an instance is killed; a member's requests a minute
//! and money a day are counted across both, with the documented answers; a relay's balance
//! is polled once per window for the whole team; a day's spend lost by Redis comes back from
//! the team's ledger.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::cli::{Homes, Served, run};
use support::mock_relay::{Fault, MockRelay};
use support::team::{self, DB_ENV, add_member};
use support::team_services::{Postgres, Redis, redis_command, redis_get};

const RELAY_KEY: &str = "relay-upstream-secret-4c2e9a";
/// How long any eventual change may take here before the test fails.
const EVENTUALLY: Duration = Duration::from_secs(15);

/// The team's services: a database of its own on the shared PostgreSQL, a Redis of its own.
struct Services {
    db: String,
    redis: Redis,
}

impl Services {
    fn start(db_name: &str) -> Self {
        let pg = Postgres::shared().expect("a PostgreSQL for the test (scripts/test installs it)");
        let db = pg.create_database(db_name).unwrap();
        let redis = Redis::start().expect("a Redis for the test (scripts/test installs it)");
        Self { db, redis }
    }

    /// The `[team]` table: keys re-read every 200 ms, a short permit lease, a generous wait
    /// on Redis (a loaded test machine must not make a call miss its bound).
    fn team_table(&self) -> String {
        format!(
            "[team]\nkey_refresh_ms = 200\nredis_url = \"{}\"\nredis_wait_ms = 1000\npermit_lease_ms = 1500\n",
            self.redis.url()
        )
    }
}

/// One helper instance with its own home.
struct Instance {
    homes: Homes,
    served: Served,
}

impl Instance {
    async fn start(db: &str, config: &str) -> Self {
        let (homes, served) = team::start_instance(config, db, RELAY_KEY).await;
        Self { homes, served }
    }

    fn url(&self) -> &str {
        &self.served.url
    }

    fn log(&self) -> String {
        self.served.log_so_far()
    }
}

/// `codex-helper keys ARGS`, which must succeed: its stdout.
async fn keys(homes: &Homes, db: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = team::keys_output(homes, db, args).await;
    assert!(ok, "keys {args:?}: {stdout}{stderr}");
    stdout
}

/// A JSON `/v1/responses` request with `key`: status, headers, JSON answer.
async fn json_turn(base: &str, key: &str) -> (u16, http::HeaderMap, serde_json::Value) {
    let response = support::client()
        .post(format!("{base}/v1/responses"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(serde_json::json!({"model": "gpt-5.1", "input": "hi", "stream": false}).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// A streaming `/v1/responses` request as Codex sends it, read to its end: status and body.
async fn stream_turn(base: &str, key: &str) -> (u16, String) {
    let response = support::sse_post(
        format!("{base}/v1/responses"),
        serde_json::json!({"model": "gpt-5.1", "input": "hi", "stream": true}).to_string(),
    )
    .bearer_auth(key)
    .send()
    .await
    .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Polls `check` (bounded by [`EVENTUALLY`]) until it gives `Some`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {EVENTUALLY:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One stream through each of `instances` with `key`, held open by the relay after its first
/// events (which have reached the client, so each holds its permit) until the returned
/// `Notify` is notified.
async fn hold_streams(
    relay: &MockRelay,
    instances: [&Instance; 2],
    key: &str,
) -> (Arc<tokio::sync::Notify>, Vec<reqwest::Response>) {
    let release = Arc::new(tokio::sync::Notify::new());
    for _ in instances {
        relay.push(Fault::HoldMidStream {
            after_events: 5,
            release: release.clone(),
        });
    }
    let mut held = Vec::new();
    for instance in instances {
        let mut response = support::sse_post(
            format!("{}/v1/responses", instance.url()),
            serde_json::json!({"model": "gpt-5.1", "input": "hold", "stream": true}).to_string(),
        )
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        let first = support::bounded(response.chunk()).await.unwrap();
        assert!(first.is_some_and(|c| !c.is_empty()));
        held.push(response);
    }
    (release, held)
}

/// Two instances serving the team of `services` with one relay, `[balance]` set to
/// `balance`, and `after` (more tables) at the end of the config.
async fn two_instances(
    services: &Services,
    relay: &MockRelay,
    balance: &str,
    after: &str,
) -> (Instance, Instance) {
    let config = format!(
        "version = 5\n{}[balance]\n{balance}\n[codex.providers.relay]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n{after}",
        services.team_table(),
        relay.base_url()
    );
    let a = Instance::start(&services.db, &config).await;
    let b = Instance::start(&services.db, &config).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_holds_across_instances_and_a_killed_instance_gives_its_permits_back() {
    let services = Services::start("limits_concurrency");
    let relay = MockRelay::start("limited").await;
    let limits = "[codex.providers.relay.limits]\nmax_concurrent_requests = 2\n";
    let (a, mut b) = two_instances(&services, &relay, "enabled = false", limits).await;
    let key = add_member(&a.homes, &services.db, "ann", &[]).await;

    // Two streams held open by the relay: one through each instance.
    let (release, held) = hold_streams(&relay, [&a, &b], &key).await;

    // The group is full across the team: a third request on either is refused as a lone
    // helper refuses it (nothing else to fail over to), and never reaches the relay.
    for instance in [&a, &b] {
        let (status, headers, body) = json_turn(instance.url(), &key).await;
        assert_eq!(status, 503, "{body}\n{}", instance.log());
        assert_eq!(body["error"]["code"], "route_unavailable", "{body}");
        let reason = body["error"]["skipped"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("2 requests already in flight"), "{reason}");
        assert!(headers.contains_key("retry-after"));
        let (status, events) = stream_turn(instance.url(), &key).await;
        assert_eq!(status, 200);
        assert!(
            events.contains("response.failed") && events.contains("rate_limit_exceeded"),
            "{events}"
        );
    }
    assert_eq!(relay.hits(), 2, "refused requests never reach the relay");

    // B dies holding a permit; within its lease the permit comes back.
    b.served.child.start_kill().unwrap();
    let _ = support::bounded(b.served.child.wait()).await;
    let (status, _, body) = eventually("a permit back after B was killed", || async {
        let answer = json_turn(a.url(), &key).await;
        (answer.0 != 503).then_some(answer)
    })
    .await;
    assert_eq!(status, 200, "{body}");

    release.notify_waiters();
    drop(held);
    for log in [a.log(), b.log()] {
        assert!(!log.contains(&key) && !log.contains(RELAY_KEY), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_rate_and_budget_are_counted_across_instances_with_the_documented_answers() {
    let services = Services::start("limits_members");
    let relay = MockRelay::start("relay").await;
    let (a, b) = two_instances(&services, &relay, "enabled = false", "").await;
    let ann = add_member(&a.homes, &services.db, "ann", &["--rpm", "3"]).await;
    let bob = add_member(
        &b.homes,
        &services.db,
        "bob",
        &["--daily-budget", "0.000001"],
    )
    .await;
    let listed = keys(&a.homes, &services.db, &["list", "--json"]).await;
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["name"], "ann");
    assert_eq!(listed[0]["rpm"], 3);
    assert_eq!(listed[1]["daily_budget_usd"], 0.000001);

    // A minute's count must not start again mid-test: wait out a minute about to end.
    let into_minute = codex_helper::time::now_ms() % 60_000;
    if into_minute > 45_000 {
        tokio::time::sleep(Duration::from_millis(60_500 - into_minute)).await;
    }
    // Ann's three requests a minute, spread over both instances; the fourth is refused on
    // either, JSON with 429 and Retry-After, a stream with the event Codex retries.
    for base in [a.url(), b.url(), a.url()] {
        let (status, _, body) = json_turn(base, &ann).await;
        assert_eq!(status, 200, "{body}");
    }
    for base in [b.url(), a.url()] {
        let (status, headers, body) = json_turn(base, &ann).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "member_rate_limited");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("`ann` may make 3 requests a minute")
                && message.contains("keys limit ann --rpm N"),
            "{message}"
        );
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    let (status, events) = stream_turn(b.url(), &ann).await;
    assert_eq!(status, 200);
    assert!(
        events.contains("response.failed")
            && events.contains("rate_limit_exceeded")
            && events.contains("member_rate_limited"),
        "{events}"
    );

    // Bob's first request is served and priced; once its cost is counted, his next one is
    // refused on A, and on B, which never served him.
    let (status, _, body) = json_turn(a.url(), &bob).await;
    assert_eq!(status, 200, "{body}");
    let (headers, body) = eventually("bob over his budget on A", || async {
        let (status, headers, body) = json_turn(a.url(), &bob).await;
        (status == 429).then_some((headers, body))
    })
    .await;
    assert_eq!(body["error"]["code"], "member_budget_exhausted", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keys limit bob --daily-budget USD"),
        "{body}"
    );
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    let (status, _, body) = json_turn(b.url(), &bob).await;
    assert_eq!(status, 429, "the spend is shared: {body}");
    let (status, events) = stream_turn(b.url(), &bob).await;
    assert_eq!(status, 200);
    assert!(
        events.contains("rate_limit_exceeded") && events.contains("member_budget_exhausted"),
        "{events}"
    );

    // The admin raises the budget: every instance lets Bob through again.
    let out = keys(
        &a.homes,
        &services.db,
        &["limit", "bob", "--daily-budget", "1000"],
    )
    .await;
    assert!(out.contains("$1000.00/day"), "{out}");
    for base in [a.url(), b.url()] {
        eventually("bob let through after the raise", || async {
            (json_turn(base, &bob).await.0 == 200).then_some(())
        })
        .await;
    }

    // Keys never show: not in logs, not in what the relay got, not in `keys list`.
    let listed_text = keys(&a.homes, &services.db, &["list"]).await;
    for key in [&ann, &bob] {
        for text in [a.log(), b.log(), listed_text.clone()] {
            assert!(!text.contains(key.as_str()), "a member key leaked: {text}");
        }
        for received in relay.received() {
            let auth = received.headers["authorization"].to_str().unwrap();
            assert!(!auth.contains(key.as_str()));
        }
    }
}

/// Redis loses the day's spend counters (restarted without persistence): one instance raises
/// them back to what the team's PostgreSQL ledger recorded, so a member over budget stays
/// over it on every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_spend_lost_by_redis_is_raised_back_from_the_ledger() {
    use codex_helper::shared::member_limits::{day_of, spend_key};
    let services = Services::start("limits_reconcile");
    let relay = MockRelay::start("relay").await;
    let config = format!(
        "version = 5\n{}spend_reconcile_secs = 1\n[ledger]\nurl = \"env:{DB_ENV}\"\n\
         [codex.providers.relay]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n",
        services.team_table(),
        relay.base_url()
    );
    let a = Instance::start(&services.db, &config).await;
    let b = Instance::start(&services.db, &config).await;
    let bob = add_member(
        &a.homes,
        &services.db,
        "bob",
        &["--daily-budget", "0.000001"],
    )
    .await;
    let (status, _, body) = json_turn(a.url(), &bob).await;
    assert_eq!(status, 200, "{body}");
    eventually("bob over his budget on B", || async {
        (json_turn(b.url(), &bob).await.0 == 429).then_some(())
    })
    .await;

    let port = services.redis.port();
    let key = spend_key("bob", &day_of(codex_helper::time::now_ms()));
    assert!(redis_get(port, &key).unwrap().is_some(), "{key}");
    redis_command(port, &["FLUSHALL"]).unwrap();
    let raised = eventually("the day's spend back from the ledger", || async {
        redis_get(port, &key).unwrap()
    })
    .await;
    assert!(raised.parse::<f64>().unwrap() >= 0.000001, "{raised}");
    for base in [a.url(), b.url()] {
        let (status, _, body) = json_turn(base, &bob).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "member_budget_exhausted", "{body}");
    }
}

/// The relay's balance status as `balance show` tells it; `None` while unknown.
async fn balance_status(homes: &Homes) -> Option<String> {
    let (ok, out) = run(homes, &["balance", "show", "--json"]).await;
    assert!(ok, "{out}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    let status = shown["providers"][0]["endpoints"][0]["status"]
        .as_str()
        .map(str::to_string);
    status.filter(|s| s != "unknown")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relays_balance_is_polled_once_per_window_for_the_whole_team() {
    let services = Services::start("limits_balance");
    let relay = MockRelay::start("balance").await;
    let empty = serde_json::json!({"isValid": true, "mode": "quota_limited", "remaining": 0.0,
        "quota": {"limit": 20, "used": 20.0, "remaining": 0.0}});
    relay.answer_get("/v1/usage", 200, &empty.to_string());
    // Both instances look every relay up when they start.
    let (a, b) = two_instances(&services, &relay, "refresh_on_start = true", "").await;

    for instance in [&a, &b] {
        let status = eventually("a balance on each instance", || {
            balance_status(&instance.homes)
        })
        .await;
        assert_eq!(status, "exhausted");
    }
    assert_eq!(relay.hits_on("/v1/usage"), 1, "one poll for both instances");

    // An explicit refresh within the window takes the team's snapshot too.
    let (ok, out) = run(&b.homes, &["balance", "refresh", "--json"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("exhausted"), "{out}");
    assert_eq!(relay.hits_on("/v1/usage"), 1);
    for log in [a.log(), b.log()] {
        assert!(!log.contains(RELAY_KEY), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_each_instance_limits_on_its_own_counts_and_keeps_serving() {
    let mut services = Services::start("limits_redis_down");
    let relay = MockRelay::start("relay").await;
    let limits = "[codex.providers.relay.limits]\nmax_concurrent_requests = 1\n";
    let (a, b) = two_instances(&services, &relay, "enabled = false", limits).await;
    let ann = add_member(&a.homes, &services.db, "ann", &["--rpm", "2"]).await;
    services.redis.stop();

    let into_minute = codex_helper::time::now_ms() % 60_000;
    if into_minute > 45_000 {
        tokio::time::sleep(Duration::from_millis(60_500 - into_minute)).await;
    }
    // Each instance counts Ann's requests itself: two on each, the third on A refused.
    for base in [a.url(), a.url(), b.url(), b.url()] {
        let (status, _, body) = json_turn(base, &ann).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, body) = json_turn(a.url(), &ann).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "member_rate_limited");
    assert!(headers.contains_key("retry-after"));

    // Concurrency falls back to each instance's own limit: one stream held on each.
    let bob = add_member(&a.homes, &services.db, "bob", &[]).await;
    let (release, held) = hold_streams(&relay, [&a, &b], &bob).await;
    let (status, _, body) = json_turn(a.url(), &bob).await;
    assert_eq!(status, 503, "{body}");
    release.notify_waiters();
    drop(held);
    let log = a.log();
    assert!(log.contains("team Redis unreachable"), "{log}");
    assert!(!log.contains(&ann) && !log.contains(&bob), "{log}");
}
