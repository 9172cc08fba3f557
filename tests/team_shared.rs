//! Team mode's shared routing state, against a real Redis and PostgreSQL (started by the test,
//! on loopback) with two `serve --team` processes and two mock relays: a thread whose turns
//! alternate between the instances stays on one relay; a relay cooled down, switched off or
//! draining on one instance is treated so by the other; with Redis stopped both keep serving,
//! and when it returns the other instance learns of a cooldown made meanwhile.
//!
//! Nothing is timed: every wait polls for a state, with a deadline.

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cli::{Homes, Served, admin_call};
use support::mock_relay::{Fault, MockRelay};
use support::team;
use support::team_services::{Postgres, Redis, redis_command};

const RELAY_KEY: &str = "relay-upstream-secret-51c2e9";
/// How long a change may take to reach the other instance (the sync runs every 250 ms).
const CONVERGE: Duration = Duration::from_secs(15);

/// Two relays in order (relay1 first, relay2 the fallback), failing over at once, Redis shared.
fn config(redis: &Redis, relay1: &MockRelay, relay2: &MockRelay) -> String {
    format!(
        "version = 5\n[team]\nkey_refresh_ms = 200\nredis_url = \"{}\"\n\
         [retry]\nprofile = \"aggressive-failover\"\ncooldown_secs = 120\n\
         [codex.providers.relay1]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n\
         [codex.providers.relay2]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n\
         [codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\n\
         strategy = \"ordered-failover\"\nchildren = [\"relay1\", \"relay2\"]\n",
        redis.url(),
        relay1.base_url(),
        relay2.base_url()
    )
}

struct Instance {
    homes: Homes,
    served: Served,
}

impl Instance {
    async fn start(db_url: &str, config: &str) -> Self {
        let (homes, served) = team::start_instance(config, db_url, RELAY_KEY).await;
        Self { homes, served }
    }

    fn url(&self) -> String {
        self.served.url.clone()
    }

    fn admin(&self, path: &str) -> String {
        format!("{}{path}", self.homes.admin_base())
    }

    /// `POST path` on the admin API, which must answer 200.
    async fn post(&self, path: &str, body: Value) {
        let (status, answer, _) = admin_call("POST", &self.admin(path), Some(body)).await;
        assert_eq!(status, 200, "POST {path}: {answer}");
    }

    /// The live state `GET /routing` shows for `endpoint` (`provider.endpoint`).
    async fn state_of(&self, endpoint: &str) -> Value {
        let (status, view, _) = admin_call("GET", &self.admin("/routing"), None).await;
        assert_eq!(status, 200, "{view}");
        view["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["key"] == endpoint)
            .unwrap_or_else(|| panic!("{endpoint} in {view}"))["state"]
            .clone()
    }
}

/// A team: Redis, the database, two relays, two instances, a member's key.
struct Team {
    /// Taken out while a blocking call stops or restarts it.
    redis: Option<Redis>,
    relay1: MockRelay,
    relay2: MockRelay,
    a: Instance,
    b: Instance,
    key: String,
}

impl Team {
    async fn start(database: &str) -> Self {
        let db = Postgres::shared()
            .expect("a PostgreSQL for the test (scripts/test installs it)")
            .create_database(database)
            .unwrap();
        let redis = Redis::start().expect("a Redis for the test (scripts/test installs it)");
        let relay1 = MockRelay::start("relay one").await;
        let relay2 = MockRelay::start("relay two").await;
        let config = config(&redis, &relay1, &relay2);
        let a = Instance::start(&db, &config).await;
        let b = Instance::start(&db, &config).await;
        let key = team::add_member(&a.homes, &db, "ann", &[]).await;
        Self {
            redis: Some(redis),
            relay1,
            relay2,
            a,
            b,
            key,
        }
    }

    /// One `/v1/responses` turn of `session` through `instance`: the status and the answer.
    async fn turn(&self, instance: &Instance, session: &str) -> (u16, String) {
        let response = support::client()
            .post(format!("{}/v1/responses", instance.url()))
            .bearer_auth(&self.key)
            .header("session-id", session)
            .header("content-type", "application/json")
            .body(json!({"model": "gpt-5.1", "input": "hi", "stream": false}).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Waits until the team's Redis holds a binding of `session`.
    async fn binding_shared(&self, session: &str) {
        let port = self.redis.as_ref().unwrap().port();
        let pattern = format!("codex-helper:affinity:*:{session}");
        eventually(&format!("a binding of {session} in Redis"), || async {
            let count = redis_command(
                port,
                &["EVAL", "return #redis.call('KEYS', ARGV[1])", "0", &pattern],
            );
            count.unwrap() == ":1"
        })
        .await;
    }

    /// A turn that must succeed.
    async fn ok_turn(&self, instance: &Instance, session: &str) {
        let (status, body) = self.turn(instance, session).await;
        assert_eq!(status, 200, "{session}: {body}");
    }
}

/// Requests of `session` that `relay` received.
fn seen(relay: &MockRelay, session: &str) -> usize {
    relay
        .received()
        .iter()
        .filter(|r| {
            r.headers
                .get("session-id")
                .is_some_and(|v| v.as_bytes() == session.as_bytes())
        })
        .count()
}

/// Polls `check` until it holds, at most [`CONVERGE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + CONVERGE;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {CONVERGE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `change` on `redis` on a blocking thread (stopping and starting a server blocks).
async fn blocking(mut redis: Redis, change: impl FnOnce(&mut Redis) + Send + 'static) -> Redis {
    tokio::task::spawn_blocking(move || {
        change(&mut redis);
        redis
    })
    .await
    .unwrap()
}

/// Whether `state` (from [`Instance::state_of`]) says the endpoint is skipped for `kind`
/// (`unhealthy`, `runtime_disabled`, ...).
fn skipped_for(state: &Value, kind: &str) -> bool {
    state["routable"] == false && state["skip"]["detail"]["kind"] == kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_alternating_between_instances_stays_on_one_relay() {
    let team = Team::start("shared_affinity").await;
    let Team {
        a,
        b,
        relay1,
        relay2,
        ..
    } = &team;
    // On A the thread is pinned to the fallback relay (an operator's override, which only A
    // knows): its first turn binds it there.
    a.post(
        "/overrides/session",
        json!({"session_id": "thread-1", "route_target": "relay2"}),
    )
    .await;
    team.ok_turn(a, "thread-1").await;
    assert_eq!(seen(relay2, "thread-1"), 1);
    // Without the team's binding, B sends a thread to the first relay.
    team.ok_turn(b, "thread-other").await;
    assert_eq!(seen(relay1, "thread-other"), 1);
    team.binding_shared("thread-1").await;
    for _ in 0..3 {
        team.ok_turn(b, "thread-1").await;
        team.ok_turn(a, "thread-1").await;
    }
    assert_eq!(
        (seen(relay1, "thread-1"), seen(relay2, "thread-1")),
        (0, 7),
        "every turn of the thread on the relay it was bound to, whichever instance took it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cooled_down_by_one_instance_is_skipped_by_the_other() {
    let team = Team::start("shared_cooldown").await;
    let Team {
        a,
        b,
        relay1,
        relay2,
        ..
    } = &team;
    relay1.always(Some(Fault::status(502)));
    team.ok_turn(a, "on-a").await;
    assert!(seen(relay1, "on-a") >= 1, "A tried relay1 first");
    assert_eq!(seen(relay2, "on-a"), 1, "and failed over");
    assert!(skipped_for(
        &a.state_of("relay1.default").await,
        "unhealthy"
    ));
    // relay1 would answer now: only the shared cooldown keeps B off it.
    relay1.always(None);
    eventually("B sees relay1 cooling down", || async {
        skipped_for(&b.state_of("relay1.default").await, "unhealthy")
    })
    .await;
    let before = relay1.hits();
    team.ok_turn(b, "on-b").await;
    assert_eq!(relay1.hits(), before, "B never tried relay1");
    assert_eq!(seen(relay2, "on-b"), 1);
    let state = b.state_of("relay1.default").await;
    assert_eq!(
        state["skip"]["detail"]["after"], "relay1/default: HTTP 502",
        "the failure behind it, as A saw it: {state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_switches_on_one_instance_hold_on_the_other() {
    let team = Team::start("shared_switch").await;
    let Team {
        a,
        b,
        relay1,
        relay2,
        ..
    } = &team;
    a.post(
        "/providers/runtime",
        json!({"provider_id": "relay1", "enabled": false, "reason": "maintenance"}),
    )
    .await;
    eventually("B sees relay1 switched off", || async {
        let state = b.state_of("relay1.default").await;
        skipped_for(&state, "runtime_disabled")
            && state["runtime"]["disabled"]["reason"] == "maintenance"
    })
    .await;
    team.ok_turn(b, "while-off").await;
    assert_eq!(
        (seen(relay1, "while-off"), seen(relay2, "while-off")),
        (0, 1)
    );
    // Switched on again on B: A follows.
    b.post(
        "/providers/runtime",
        json!({"provider_id": "relay1", "enabled": true}),
    )
    .await;
    eventually("A sees relay1 on again", || async {
        a.state_of("relay1.default").await["routable"] == true
    })
    .await;
    team.ok_turn(a, "after").await;
    assert_eq!(seen(relay1, "after"), 1);
    team.binding_shared("after").await;
    // Draining on A: on B too, a thread bound to relay1 (by A) stays, a new one goes elsewhere.
    a.post(
        "/providers/runtime",
        json!({"provider_id": "relay1", "state": "draining", "reason": "moving off"}),
    )
    .await;
    eventually("B sees relay1 draining", || async {
        b.state_of("relay1.default").await["runtime"]["draining"]["reason"] == "moving off"
    })
    .await;
    team.ok_turn(b, "after").await;
    team.ok_turn(b, "new-on-b").await;
    assert_eq!(
        (seen(relay1, "after"), seen(relay2, "new-on-b")),
        (2, 1),
        "the bound thread kept its relay, the new one was not taken there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_both_serve_and_converge_when_it_returns() {
    let mut team = Team::start("shared_outage").await;
    // Both instances share state before the outage.
    team.ok_turn(&team.a, "before").await;
    let said_before = team.a.served.log_so_far().len();
    team.redis = Some(blocking(team.redis.take().unwrap(), |r| r.stop()).await);
    for (instance, session) in [(&team.a, "down-a"), (&team.b, "down-b")] {
        team.ok_turn(instance, session).await;
    }
    // A cooldown made on A while Redis is away.
    team.relay1.always(Some(Fault::status(502)));
    team.ok_turn(&team.a, "cooling").await;
    team.relay1.always(None);
    assert!(skipped_for(
        &team.a.state_of("relay1.default").await,
        "unhealthy"
    ));
    assert!(
        team.b.state_of("relay1.default").await["routable"] == true,
        "B cannot know yet"
    );
    let restart = |r: &mut Redis| r.restart().expect("Redis restarts");
    team.redis = Some(blocking(team.redis.take().unwrap(), restart).await);
    eventually("B learns of A's cooldown once Redis is back", || async {
        skipped_for(&team.b.state_of("relay1.default").await, "unhealthy")
    })
    .await;
    let before = team.relay1.hits();
    team.ok_turn(&team.b, "after").await;
    assert_eq!(team.relay1.hits(), before, "B skipped relay1");
    assert_eq!(seen(&team.relay2, "after"), 1);
    let log = team.a.served.log_so_far();
    let since = &log[said_before..];
    assert_eq!(
        since.matches("team Redis unreachable").count(),
        1,
        "the outage said once: {since}"
    );
}
