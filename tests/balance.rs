//! Balance lookups against mock relays that serve balance endpoints, and what routing does
//! with the result: the balance service on a proxy, as `serve` runs it.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use codex_helper::balance::report::RefreshReport;
use codex_helper::balance::service::{BalanceHandle, BalanceService, ServiceConfig, channel};
use codex_helper::balance::snapshot::Status;
use codex_helper::balance::trigger::BalanceTrigger;
use codex_helper::config::model::BalanceSettings;
use codex_helper::proxy::{NoSink, RecordSink};
use codex_helper::time::Clock;
use serde_json::{Value, json};
use support::mock_relay::MockRelay;
use support::{TestProxy, bounded, client, codex_body, providers};

const USAGE: &str = "/v1/usage";

/// A sub2api key's usage answer with `remaining` dollars left.
fn sub2api(remaining: f64) -> String {
    json!({
        "isValid": true, "mode": "quota_limited", "planName": "Codex Pro",
        "remaining": remaining, "unit": "USD",
        "quota": {"limit": 20, "used": 20.0 - remaining, "remaining": remaining, "unit": "USD"}
    })
    .to_string()
}

/// One provider per relay, each with its own key, tried in the order given.
fn keyed(relays: &[(&str, &str)]) -> String {
    let mut text = providers(relays);
    for (id, _) in relays {
        text = text.replace(
            &format!("[codex.providers.{id}]\n"),
            &format!("[codex.providers.{id}]\nauth_token = \"{}\"\n", key(id)),
        );
    }
    text
}

fn key(id: &str) -> String {
    format!("sk-{id}-SECRET-0123456789")
}

struct Setup {
    proxy: TestProxy,
    service: Option<BalanceService>,
    balance: BalanceHandle,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// A proxy with the balance service, as `serve` wires it: requests ask through the record
    /// sink. `providers_json` is written to `usage_providers.json` when given.
    async fn start(
        config: &str,
        settings: BalanceSettings,
        providers_json: Option<&str>,
        clock: Clock,
    ) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let providers_file = dir.path().join("usage_providers.json");
        if let Some(text) = providers_json {
            std::fs::write(&providers_file, text).unwrap();
        }
        let (asker, inbox) = channel();
        let trigger: Arc<dyn RecordSink> = Arc::new(BalanceTrigger {
            inner: Arc::new(NoSink),
            ask: Box::new(move |endpoint| asker.ask(endpoint)),
        });
        let proxy = TestProxy::launch(config, &[], Some(trigger), clock).await;
        let (service, balance) = BalanceService::start(
            proxy.state.clone(),
            inbox,
            ServiceConfig {
                settings,
                providers_file,
                store: Some(dir.path().join("balances.sqlite3")),
                env: Arc::new(|_| None),
            },
        )
        .unwrap();
        Setup {
            proxy,
            service: Some(service),
            balance,
            _dir: dir,
        }
    }

    fn store(&self) -> PathBuf {
        self._dir.path().join("balances.sqlite3")
    }

    async fn refresh(&self, provider: Option<&str>) -> RefreshReport {
        self.balance
            .refresh(provider.map(str::to_string))
            .await
            .unwrap()
    }

    fn status(&self, endpoint: &str) -> Status {
        self.balance
            .balances()
            .into_iter()
            .find(|b| b.endpoint == endpoint)
            .unwrap()
            .status
    }

    /// One streamed turn in session `s`; the relay that answered, or the failure event.
    async fn turn(&self) -> String {
        self.turn_in("s").await
    }

    async fn turn_in(&self, session: &str) -> String {
        let text = client()
            .post(self.proxy.url("/v1/responses"))
            .header("accept", "text/event-stream")
            .header("session-id", session)
            .body(codex_body("gpt-5.1", session, 500))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect();
        match events.last() {
            Some(last) if last["type"] == "response.completed" => text
                .split("hi from ")
                .nth(1)
                .and_then(|rest| rest.split(['"', ' ']).next())
                .unwrap_or_default()
                .to_string(),
            Some(last) => last["type"].as_str().unwrap_or_default().to_string(),
            None => String::new(),
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop();
        }
    }
}

/// A quiet balance service on `proxy` keeping its snapshots in `store`, with no adapters file
/// and no asks (a restart, as far as the store goes).
fn service_with_store(proxy: &TestProxy, store: PathBuf) -> (BalanceService, BalanceHandle) {
    let (_asker, inbox) = channel();
    let config = ServiceConfig {
        settings: quiet(),
        providers_file: store.with_extension("json"),
        store: Some(store),
        env: Arc::new(|_| None),
    };
    BalanceService::start(proxy.state.clone(), inbox, config).unwrap()
}

fn quiet() -> BalanceSettings {
    BalanceSettings {
        refresh_on_start: false,
        ..BalanceSettings::default()
    }
}

const STEP_MS: u64 = 5_000;

/// Moves `clock` on a step at a time until `check` holds (bounded), so a lookup is due however
/// late the service took a request's ask in; returns the clock's reading then.
async fn advance_until(clock: &Clock, what: &str, mut check: impl FnMut() -> bool) -> u64 {
    for _ in 0..400 {
        if check() {
            return clock.now();
        }
        clock.advance(Duration::from_millis(STEP_MS));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Waits (bounded) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn trusted_exhaustion_moves_routing_to_the_next_relay_and_back_after_a_refill() {
    bounded(async {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        a.answer_get(USAGE, 200, &sub2api(0.0));
        b.answer_get(USAGE, 200, &sub2api(9.0));
        let config = keyed(&[("a", &a.base_url()), ("b", &b.base_url())]);
        let setup = Setup::start(&config, BalanceSettings::default(), None, Clock::real()).await;

        // The start-up refresh runs in the background (its results land one by one) and finds
        // `a` exhausted, `b` fine.
        eventually("a exhausted, b ok", || {
            setup.status("a.default") == Status::Exhausted
                && setup.status("b.default") == Status::Ok
        })
        .await;
        assert_eq!(setup.turn().await, "b");
        // Recorded just after the reply went out: waited for, not raced.
        let records = setup.proxy.records.wait_for(1).await;
        let decision = records.last().unwrap().0.decision.clone().unwrap();
        let skip = decision.candidates[0].skip.as_ref().unwrap().describe();
        assert!(
            skip.starts_with("exhausted (balance: a says none left)"),
            "{skip}"
        );

        a.answer_get(USAGE, 200, &sub2api(5.0));
        let report = setup.refresh(Some("a")).await;
        assert_eq!((report.endpoints_matched, report.refreshed), (1, 1));
        assert_eq!(report.balances[0].status, Status::Ok);
        // The session stays where it went; a new one starts on the refilled relay.
        assert_eq!(setup.turn().await, "b");
        assert_eq!(
            setup.turn_in("new").await,
            "a",
            "back on the refilled relay"
        );
    })
    .await;
}

#[tokio::test]
async fn on_exhausted_stop_gives_the_all_blocked_answer() {
    bounded(async {
        let monthly = MockRelay::start("monthly").await;
        let paygo = MockRelay::start("paygo").await;
        monthly.answer_get(USAGE, 200, &sub2api(0.0));
        let config = format!(
            "[codex.providers.monthly]\nauth_token = \"sk-m-0123456789\"\nbase_url = \"{}\"\ntags = {{ billing = \"monthly\" }}\n\
             [codex.providers.paygo]\nbase_url = \"{}\"\ntags = {{ billing = \"paygo\" }}\n\
             [codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nstrategy = \"tag-preferred\"\n\
             children = [\"paygo\", \"monthly\"]\nprefer_tags = [{{ billing = \"monthly\" }}]\non_exhausted = \"stop\"\n",
            monthly.base_url(),
            paygo.base_url()
        );
        let setup = Setup::start(&config, quiet(), None, Clock::real()).await;
        setup.refresh(None).await;
        assert_eq!(setup.turn().await, "response.failed");
        assert_eq!(paygo.hits_on("/v1/responses"), 0, "never the fallback");
        assert_eq!(monthly.hits_on("/v1/responses"), 0, "nor the exhausted relay");
    })
    .await;
}

#[tokio::test]
async fn untrusted_exhaustion_is_shown_but_changes_nothing_in_routing() {
    bounded(async {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        a.answer_get(USAGE, 200, &sub2api(0.0));
        let adapters = json!({"providers": [{
            "id": "a-usage", "kind": "sub2api_usage", "domains": ["127.0.0.1"],
            "trust_exhaustion_for_routing": false
        }]})
        .to_string();
        let config = keyed(&[("a", &a.base_url()), ("b", &b.base_url())]);
        let setup = Setup::start(&config, quiet(), Some(&adapters), Clock::real()).await;
        let report = setup.refresh(Some("a")).await;
        let a_balance = &report.balances[0];
        assert_eq!(a_balance.status, Status::Exhausted);
        assert_eq!(a_balance.routing_exhausted_until_ms, None);
        let snapshot = a_balance.snapshot.as_ref().unwrap();
        assert_eq!(snapshot.adapter, "a-usage");
        assert!(!snapshot.trusted_for_routing);
        assert_eq!(setup.turn().await, "a");
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_requests_makes_at_most_one_lookup_per_endpoint_per_window() {
    bounded(async {
        let a = MockRelay::start("a").await;
        a.answer_get(USAGE, 200, &sub2api(9.0));
        let clock = Clock::manual();
        let config = keyed(&[("a", &a.base_url())]);
        let setup = Setup::start(&config, quiet(), None, clock.clone()).await;

        let burst = || async {
            for _ in 0..10 {
                let turns: Vec<_> = (0..10).map(|_| setup.turn()).collect();
                for turn in futures_util::future::join_all(turns).await {
                    assert_eq!(turn, "a");
                }
            }
        };
        burst().await;
        setup.proxy.records.wait_for(100).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(a.hits_on(USAGE), 0, "nothing before the delay");
        let first = advance_until(&clock, "one lookup", || a.hits_on(USAGE) == 1).await;
        assert!(first >= 60_000, "not before the delay: {first}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(a.hits_on(USAGE), 1, "one lookup for a hundred requests");

        // Another burst: the adapter's poll floor (120 s) holds its lookup back.
        burst().await;
        let second = advance_until(&clock, "the second lookup", || a.hits_on(USAGE) == 2).await;
        // Less a step: the first lookup may have ended one step after it was seen.
        assert!(second - first >= 120_000 - STEP_MS, "{first} → {second}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(a.hits_on(USAGE), 2);
    })
    .await;
}

#[tokio::test]
async fn a_failing_balance_api_leaves_the_state_error_and_routing_untouched() {
    bounded(async {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        a.answer_get(USAGE, 500, r#"{"error":"boom"}"#);
        let config = keyed(&[("a", &a.base_url()), ("b", &b.base_url())]);
        let setup = Setup::start(&config, quiet(), None, Clock::real()).await;
        let report = setup.refresh(Some("a")).await;
        assert_eq!((report.attempted, report.failed), (1, 1));
        assert_eq!(report.balances[0].status, Status::Error);
        assert_eq!(setup.turn().await, "a", "an error is never exhaustion");

        // Exhausted, then the balance API fails: the exhaustion stands (until it expires).
        a.answer_get(USAGE, 200, &sub2api(0.0));
        setup.refresh(Some("a")).await;
        assert_eq!(setup.turn().await, "b");
        a.answer_get(USAGE, 500, r#"{"error":"boom"}"#);
        let report = setup.refresh(Some("a")).await;
        let snapshot = report.balances[0].snapshot.as_ref().unwrap();
        assert_eq!(report.balances[0].status, Status::Error);
        assert!(snapshot.amounts_carried, "the last known amounts are kept");
        assert!(
            report.balances[0].routing_exhausted_until_ms.is_some(),
            "what routing does is shown, not what the failed lookup says"
        );
        assert_eq!(setup.turn().await, "b");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_balance_api_is_an_error_not_exhaustion() {
    bounded(async {
        let a = MockRelay::start("a").await;
        let closed = support::outbound::ClosedPort::new();
        let adapters = json!({"providers": [{
            "id": "a-usage", "kind": "sub2api_usage", "domains": ["127.0.0.1"],
            "endpoint": format!("http://127.0.0.1:{closed}/v1/usage")
        }]})
        .to_string();
        let config = keyed(&[("a", &a.base_url())]);
        let setup = Setup::start(&config, quiet(), Some(&adapters), Clock::real()).await;
        let report = setup.refresh(None).await;
        assert_eq!(report.balances[0].status, Status::Error);
        assert_eq!(setup.turn().await, "a");
    })
    .await;
}

#[tokio::test]
async fn identical_refreshes_at_once_share_one_lookup() {
    bounded(async {
        let a = MockRelay::start("a").await;
        a.answer_get(USAGE, 200, &sub2api(3.0));
        a.push(support::mock_relay::Fault::StallBeforeHeaders(
            Duration::from_millis(300),
        ));
        let config = keyed(&[("a", &a.base_url())]);
        let setup = Setup::start(&config, quiet(), None, Clock::real()).await;
        let (one, two) = tokio::join!(setup.refresh(None), setup.refresh(None));
        assert_eq!(a.hits_on(USAGE), 1);
        assert_ne!(one.deduplicated, two.deduplicated, "one ran, one joined");
        assert_eq!(one.balances, two.balances);
    })
    .await;
}

#[tokio::test]
async fn kept_snapshots_restore_exhaustion_after_a_restart() {
    bounded(async {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        a.answer_get(USAGE, 200, &sub2api(0.0));
        let config = keyed(&[("a", &a.base_url()), ("b", &b.base_url())]);
        let mut setup = Setup::start(&config, quiet(), None, Clock::real()).await;
        setup.refresh(None).await;
        let store = setup.store();
        setup.service.take().unwrap().stop();

        // A new proxy with the same store, no lookup yet: `a` is still out.
        let proxy = TestProxy::start(&config, &[]).await;
        let (service, balance) = service_with_store(&proxy, store);
        let a_balance = balance
            .balances()
            .into_iter()
            .find(|x| x.endpoint == "a.default")
            .unwrap();
        assert_eq!(a_balance.status, Status::Exhausted);
        assert_eq!(a.hits_on(USAGE), 1, "restored, not looked up again");
        let skip = proxy.state.routing.skip_reason(
            &proxy.state.plan().graph.upstreams[0],
            None,
            false,
            false,
            false,
            proxy.state.clock().now(),
        );
        assert!(skip.is_some_and(|s| s.describe().starts_with("exhausted")));
        service.stop();
    })
    .await;
}

#[tokio::test]
async fn what_discovery_found_is_remembered_across_a_restart() {
    bounded(async {
        let a = MockRelay::start("a").await;
        let new_api = json!({"code": true, "data": {"name": "codex-key", "total_granted": 1500000,
            "total_used": 500000, "total_available": 1000000, "unlimited_quota": false}})
        .to_string();
        a.answer_get("/api/usage/token/", 200, &new_api);
        let config = keyed(&[("a", &a.base_url())]);
        let dir = tempfile::tempdir().unwrap();
        let start = |proxy: &TestProxy| service_with_store(proxy, dir.path().join("b.sqlite3"));

        let proxy = TestProxy::start(&config, &[]).await;
        let (service, balance) = start(&proxy);
        let report = balance.refresh(None).await.unwrap();
        assert_eq!(report.balances[0].status, Status::Ok);
        let source = &report.balances[0].snapshot.as_ref().unwrap().source;
        assert_eq!(source, "usage_provider:new_api_token_usage");
        assert_eq!(a.hits_on(USAGE), 1, "sub2api's endpoint was probed first");
        service.stop();

        let proxy = TestProxy::start(&config, &[]).await;
        let (service, balance) = start(&proxy);
        balance.refresh(None).await.unwrap();
        assert_eq!(a.hits_on(USAGE), 1, "not probed again after the restart");
        assert_eq!(a.hits_on("/api/usage/token/"), 2);
        service.stop();
    })
    .await;
}

#[tokio::test]
async fn an_exhausted_relay_is_rechecked_until_a_lookup_shows_a_refill() {
    bounded(async {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        a.answer_get(USAGE, 200, &sub2api(0.0));
        let clock = Clock::manual();
        let config = keyed(&[("a", &a.base_url()), ("b", &b.base_url())]);
        let setup = Setup::start(&config, quiet(), None, clock.clone()).await;
        setup.refresh(Some("a")).await;
        assert_eq!(setup.turn_in("one").await, "b");

        // The recheck finds the balance API failing: a stays out, and is rechecked again.
        a.answer_get(USAGE, 500, r#"{"error":"boom"}"#);
        clock.advance(Duration::from_secs(601));
        eventually("the first recheck", || a.hits_on(USAGE) == 2).await;
        eventually("its result", || setup.status("a.default") == Status::Error).await;
        assert_eq!(setup.turn_in("two").await, "b");
        a.answer_get(USAGE, 200, &sub2api(6.0));
        clock.advance(Duration::from_secs(601));
        eventually("the second recheck", || a.hits_on(USAGE) == 3).await;
        eventually("a back in routing", || {
            setup.status("a.default") == Status::Ok
        })
        .await;
        assert_eq!(setup.turn_in("three").await, "a");
    })
    .await;
}

#[tokio::test]
async fn a_429_asks_for_its_relays_balance() {
    bounded(async {
        let a = MockRelay::start("a").await;
        let b = MockRelay::start("b").await;
        a.answer_get(USAGE, 200, &sub2api(1.0));
        b.answer_get(USAGE, 200, &sub2api(1.0));
        a.always(Some(support::mock_relay::Fault::status(429)));
        let clock = Clock::manual();
        let config = keyed(&[("a", &a.base_url()), ("b", &b.base_url())])
            + "[retry]\nprofile = \"aggressive-failover\"\n";
        let setup = Setup::start(&config, quiet(), None, clock.clone()).await;
        assert_eq!(setup.turn().await, "b");
        setup.proxy.records.wait_for(1).await;
        advance_until(
            &clock,
            "a looked up after its 429, b after its answer",
            || a.hits_on(USAGE) == 1 && b.hits_on(USAGE) == 1,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!((a.hits_on(USAGE), b.hits_on(USAGE)), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn a_refresh_asked_for_during_the_start_up_refresh_joins_it() {
    bounded(async {
        let a = MockRelay::start("a").await;
        a.answer_get(USAGE, 200, &sub2api(3.0));
        a.push(support::mock_relay::Fault::StallBeforeHeaders(
            Duration::from_millis(300),
        ));
        let config = keyed(&[("a", &a.base_url())]);
        let setup = Setup::start(&config, BalanceSettings::default(), None, Clock::real()).await;
        let report = setup.refresh(None).await;
        assert!(report.deduplicated);
        assert_eq!(report.balances[0].status, Status::Ok);
        assert_eq!(a.hits_on(USAGE), 1);
    })
    .await;
}
