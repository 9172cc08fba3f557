//! The original's `[retry]` status lists through the real proxy: a status the provider layer
//! names fails over, one a `never_` list names goes back to Codex as the relay sent it, and a
//! status no layer fails over on is handed back after its same-endpoint tries.

mod support;

use support::mock_relay::{Fault, MockRelay};
use support::{TestProxy, bounded, client, codex_body, providers};

async fn post(proxy: &TestProxy) -> reqwest::Response {
    client()
        .post(proxy.url("/v1/responses"))
        .header("content-type", "application/json")
        .body(codex_body("gpt-5.1", "s", 200))
        .send()
        .await
        .unwrap()
}

fn config(first: &MockRelay, second: &MockRelay, retry: &str) -> String {
    format!(
        "{retry}\n{}",
        providers(&[("first", &first.base_url()), ("second", &second.base_url())])
    )
}

#[tokio::test]
async fn provider_on_status_fails_over_and_never_on_status_hands_back() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let retry = "[retry]\nnever_on_status = \"413\"\n\
                     [retry.provider]\non_status = [404, 429, \"500-599\"]\n";
        let proxy = TestProxy::start(&config(&first, &second, retry), &[]).await;

        // A 404 is an answer to hand back by default; listed, it moves on to `second`.
        first.push(Fault::status(404));
        let reply = post(&proxy).await;
        assert_eq!(reply.status(), 200);
        assert!(reply.text().await.unwrap().contains("second"));
        assert_eq!((first.hits(), second.hits()), (1, 1));

        // `first` cools down after that failover: the next request starts at `second`, so
        // the 413 comes from there, and goes back to the client as it is, at once.
        second.push(Fault::status(413));
        let reply = post(&proxy).await;
        assert_eq!(reply.status(), 413);
        assert!(
            reply.text().await.unwrap().contains("mock relay error 413"),
            "the relay's own body"
        );
        assert_eq!(
            (first.hits(), second.hits()),
            (1, 2),
            "no retry, no failover"
        );
    })
    .await;
}

#[tokio::test]
async fn a_status_no_layer_fails_over_on_is_handed_back_after_its_tries() {
    bounded(async {
        let first = MockRelay::start("first").await;
        let second = MockRelay::start("second").await;
        let retry = "[retry.upstream]\nmax_attempts = 2\nbackoff_ms = 1\njitter_ms = 0\non_status = \"502\"\n\
                     [retry.provider]\non_status = \"401,403\"\n";
        let proxy = TestProxy::start(&config(&first, &second, retry), &[]).await;
        first.push(Fault::status(502));
        first.push(Fault::status(502));
        let reply = post(&proxy).await;
        assert_eq!(reply.status(), 502, "handed back, not failed over");
        assert!(reply.text().await.unwrap().contains("mock relay error 502"));
        assert_eq!((first.hits(), second.hits()), (2, 0), "retried once, as listed");
    })
    .await;
}
