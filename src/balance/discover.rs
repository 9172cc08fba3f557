//! Auto-discovery: which balance API an upstream speaks, when no configured adapter matches
//! its host.
//!
//! Relays rarely say what software they run, so the known families are asked in turn, at
//! their default endpoints with the upstream's own key, and the first answer that reads as a
//! balance wins. The winning kind can be remembered by the caller and passed back, so a
//! known relay is asked once per refresh, not once per family.

use super::lookup::{LookupContext, LookupOutcome, look_up};
use super::parse::Kind;
use super::providers::UsageProvider;
use super::snapshot::Reading;
use crate::routing::Upstream;

/// The official API's spend needs an organization admin key, never the upstream's own.
const OPENAI_ADMIN_KEY: &str = "OPENAI_ADMIN_KEY";

/// Families probed on any relay, most common first: sub2api, then New API's token and user
/// endpoints, then any JSON balance at `/user/balance`.
const PROBED: [Kind; 4] = [
    Kind::Sub2apiUsage,
    Kind::NewApiTokenUsage,
    Kind::NewApiUserSelf,
    Kind::OpenaiBalance,
];

/// The adapters to try for `upstream`, in order, each named after its provider (so a manual
/// refresh can target it by that name) with the kind's defaults: `api.openai.com` gets only
/// organization costs (with `OPENAI_ADMIN_KEY`); RightCode hosts start with RightCode.
pub fn candidates(upstream: &Upstream) -> Vec<UsageProvider> {
    let id = upstream.provider.as_str();
    let host = upstream
        .base_url
        .host()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host == "api.openai.com" {
        let mut costs = UsageProvider::auto(id, Kind::OpenaiOrganizationCosts);
        costs.token_env = Some(OPENAI_ADMIN_KEY.to_string());
        costs.require_token_env = true;
        return vec![costs];
    }
    let rightcode = host == "right.codes" || host.ends_with(".right.codes");
    rightcode
        .then_some(Kind::RightcodeAccountSummary)
        .into_iter()
        .chain(PROBED)
        .map(|kind| UsageProvider::auto(id, kind))
        .collect()
}

/// Whether a probe found the upstream's balance API: no error, and the answer reads as a
/// state: exhausted, or ok / unlimited (an amount, or the relay saying something is left).
/// A JSON answer with nothing readable in it (a catch-all route's `{}`) does not win.
pub fn wins(reading: &Reading) -> bool {
    reading.error.is_none() && (reading.exhausted.is_some() || reading.amounts.any())
}

/// Finds the balance API of `upstream`: `remembered` first (a kind that won before), then the
/// [`candidates`] in order. Returns the winning kind and its outcome, or `None` and an error
/// outcome naming what was tried and the last error. Stops at once when there is no token:
/// every probe would lack it too.
///
/// A failed discovery is `terminal` only when every probe was: one family's endpoint refusing
/// the key (New API's `/api/user/self` wants a user token, not an API key) says nothing about
/// the key itself.
pub async fn discover(
    ctx: &LookupContext<'_>,
    upstream: &Upstream,
    remembered: Option<Kind>,
) -> (Option<Kind>, LookupOutcome) {
    let mut candidates = candidates(upstream);
    if let Some(kind) = remembered {
        let adapter = match candidates.iter().position(|a| a.kind == kind) {
            Some(at) => candidates.remove(at),
            None => UsageProvider::auto(upstream.provider.as_str(), kind),
        };
        candidates.insert(0, adapter);
    }
    let mut tried = Vec::new();
    let mut all_terminal = true;
    let mut last = None;
    for adapter in &candidates {
        let outcome = look_up(ctx, adapter, upstream).await;
        if wins(&outcome.reading) {
            return (Some(adapter.kind), outcome);
        }
        if outcome.missing_token {
            return (None, outcome);
        }
        tried.push(adapter.kind.as_str());
        all_terminal &= outcome.terminal;
        last = Some(outcome);
    }
    (None, nothing_answered(upstream, &tried, last, all_terminal))
}

/// The outcome when no candidate won: an error naming the provider, the kinds tried and the
/// last probe's error (or that it answered with nothing readable).
fn nothing_answered(
    upstream: &Upstream,
    tried: &[&str],
    last: Option<LookupOutcome>,
    all_terminal: bool,
) -> LookupOutcome {
    let last = match last.as_ref().and_then(|o| o.reading.error.as_deref()) {
        Some(error) => error.to_string(),
        None if last.is_some() => "it answered, but with nothing readable as a balance".into(),
        None => "nothing was tried".into(),
    };
    let message = format!(
        "no balance API answered for {} (tried {}); last: {last}",
        upstream.provider,
        tried.join(", ")
    );
    LookupOutcome {
        reading: Reading {
            error: Some(message),
            ..Reading::default()
        },
        terminal: all_terminal && !tried.is_empty(),
        missing_token: false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::lookup::test_relay::{self, json, upstream};
    use super::*;
    use crate::balance::snapshot::Amounts;
    use crate::redact::Redactor;

    fn kinds(base: &str) -> Vec<Kind> {
        candidates(&upstream(base, Some("t"), None))
            .iter()
            .map(|a| a.kind)
            .collect()
    }

    #[test]
    fn plain_hosts_probe_the_common_families_in_order() {
        assert_eq!(kinds("https://relay.example/v1"), PROBED);
        let list = candidates(&upstream("https://relay.example", Some("t"), None));
        for adapter in &list {
            assert_eq!(adapter.id, "p", "named after the provider");
            assert_eq!(adapter.endpoint, None);
            assert_eq!(adapter.token_env, None);
            assert!(!adapter.require_token_env);
            assert_eq!(adapter.extract, Default::default());
        }
    }

    #[test]
    fn rightcode_hosts_start_with_rightcode() {
        let expected: Vec<Kind> = [Kind::RightcodeAccountSummary]
            .into_iter()
            .chain(PROBED)
            .collect();
        assert_eq!(kinds("https://www.right.codes/codex"), expected);
        assert_eq!(kinds("https://right.codes"), expected);
        assert_eq!(kinds("https://notright.codes"), PROBED);
    }

    #[test]
    fn api_openai_com_gets_only_costs_with_the_admin_key() {
        let list = candidates(&upstream("https://API.openai.com/v1", Some("sk-u"), None));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].kind, Kind::OpenaiOrganizationCosts);
        assert_eq!(list[0].token_env.as_deref(), Some("OPENAI_ADMIN_KEY"));
        assert!(list[0].require_token_env);
        assert_eq!(kinds("https://openai.example.com/v1"), PROBED);
    }

    #[test]
    fn wins_needs_no_error_and_a_state() {
        let with = |amount: Option<&str>, exhausted, error: Option<&str>| Reading {
            amounts: Amounts {
                total_balance: amount.map(|a| a.parse().unwrap()),
                ..Amounts::default()
            },
            exhausted,
            error: error.map(str::to_string),
            ..Reading::default()
        };
        assert!(wins(&with(Some("3"), None, None)), "ok by amount");
        assert!(
            wins(&with(None, Some(false), None)),
            "ok by the relay's word"
        );
        assert!(wins(&with(Some("0"), Some(true), None)), "exhausted");
        let mut unlimited = with(None, None, None);
        unlimited.amounts.unlimited_quota = true;
        assert!(wins(&unlimited), "unlimited");
        assert!(!wins(&with(None, None, None)), "nothing readable");
        assert!(!wins(&with(Some("3"), Some(false), Some("HTTP 404"))));
    }

    const NEW_API_TOKEN: &str = r#"{"code":true,"message":"","data":{"object":"token_usage",
        "name":"codex","total_granted":5000000,"total_used":1000000,"total_available":4000000,
        "unlimited_quota":false,"expires_at":0}}"#;

    fn env(_: &str) -> Option<String> {
        None
    }

    async fn run(
        relay_origin: &str,
        bearer: Option<&str>,
        remembered: Option<Kind>,
    ) -> (Option<Kind>, LookupOutcome) {
        let client = test_relay::client();
        let redactor = Redactor::default();
        let ctx = LookupContext {
            client: &client,
            env: &env,
            now_ms: 1_700_000_000_000,
            timeout: Duration::from_millis(500),
            redactor: &redactor,
        };
        let up = upstream(&format!("{relay_origin}/v1"), bearer, None);
        tokio::time::timeout(Duration::from_secs(10), discover(&ctx, &up, remembered))
            .await
            .expect("discovery ends")
    }

    /// A New API relay: 404 for sub2api's path, its token usage at `/api/usage/token/`.
    async fn new_api_relay() -> test_relay::TestRelay {
        test_relay::start(|path, _| match path {
            "/api/usage/token/" => json(200, NEW_API_TOKEN),
            _ => json(
                404,
                r#"{"error":{"message":"Invalid URL (GET /v1/usage)"}}"#,
            ),
        })
        .await
    }

    #[tokio::test]
    async fn new_api_is_found_after_sub2api_404s() {
        let relay = new_api_relay().await;
        let (kind, outcome) = run(&relay.origin, Some("sk-relay-token-1234"), None).await;
        assert_eq!(kind, Some(Kind::NewApiTokenUsage));
        assert_eq!(outcome.reading.error, None);
        assert_eq!(
            outcome.reading.amounts.quota_remaining,
            Some("8".parse().unwrap())
        );
        assert_eq!(relay.seen(), ["/v1/usage", "/api/usage/token/"]);
    }

    #[tokio::test]
    async fn a_remembered_kind_that_still_wins_is_the_only_probe() {
        let relay = new_api_relay().await;
        let (kind, _) = run(
            &relay.origin,
            Some("sk-relay-token-1234"),
            Some(Kind::NewApiTokenUsage),
        )
        .await;
        assert_eq!(kind, Some(Kind::NewApiTokenUsage));
        assert_eq!(relay.seen(), ["/api/usage/token/"]);
    }

    #[tokio::test]
    async fn a_remembered_kind_that_fails_falls_back_to_the_candidates() {
        let relay = new_api_relay().await;
        let (kind, _) = run(
            &relay.origin,
            Some("sk-relay-token-1234"),
            Some(Kind::OpenaiBalance),
        )
        .await;
        assert_eq!(kind, Some(Kind::NewApiTokenUsage));
        assert_eq!(
            relay.seen(),
            ["/user/balance", "/v1/usage", "/api/usage/token/"]
        );
    }

    #[tokio::test]
    async fn nothing_answering_names_what_was_tried_and_the_last_error() {
        let relay = test_relay::start(|_, _| json(404, r#"{"error":"not found"}"#)).await;
        let (kind, outcome) = run(&relay.origin, Some("sk-relay-token-1234"), None).await;
        assert_eq!(kind, None);
        let error = outcome.reading.error.unwrap();
        assert!(
            error.starts_with(
                "no balance API answered for p (tried sub2api_usage, new_api_token_usage, \
                 new_api_user_self, openai_balance_http_json); last: HTTP 404 from"
            ),
            "{error}"
        );
        assert!(error.contains("(openai_balance_http_json): {\"error\":\"not found\"}"));
        assert!(!outcome.terminal && !outcome.missing_token);
        assert_eq!(relay.seen().len(), 4);
    }

    #[tokio::test]
    async fn every_probe_refused_is_terminal() {
        let relay = test_relay::start(|_, _| json(401, r#"{"message":"Invalid API key"}"#)).await;
        let (kind, outcome) = run(&relay.origin, Some("sk-relay-token-1234"), None).await;
        assert_eq!(kind, None);
        assert!(outcome.terminal);
    }

    #[tokio::test]
    async fn no_token_stops_before_any_probe() {
        let relay = new_api_relay().await;
        let (kind, outcome) = run(&relay.origin, None, None).await;
        assert_eq!(kind, None);
        assert!(outcome.missing_token);
        assert!(
            outcome
                .reading
                .error
                .unwrap()
                .starts_with("no usable token for p")
        );
        assert!(relay.seen().is_empty());
    }
}
