//! What `balance show` and `balance refresh` print, built from plain data (pure): endpoints'
//! balances from stored snapshots, grouped by provider, the live-or-stored choice, and the
//! human text. The IO is in `balance.rs`.

use serde::Serialize;

use crate::balance::report::{EndpointBalance, RefreshReport};
use crate::balance::snapshot::{self, Amounts, QuotaPeriod, Snapshot, Status};
use crate::ledger::forecast::Forecast;

/// One endpoint's balance from its latest stored snapshot (`unknown` without one); without a
/// running proxy, routing would take the snapshot's own exhaustion.
pub fn endpoint_balance(
    provider: &str,
    endpoint: &str,
    snapshot: Option<Snapshot>,
    now_ms: u64,
    max_exhausted_ms: u64,
) -> EndpointBalance {
    let out_until = snapshot
        .as_ref()
        .and_then(|s| s.routing_exhausted_until(now_ms, max_exhausted_ms));
    EndpointBalance::new(provider, endpoint, snapshot, out_until, now_ms)
}

/// One provider's endpoints and where they stand together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderBalances {
    pub provider: String,
    /// The first of error, exhausted, stale, unknown, unlimited that an endpoint has, else ok
    /// (`snapshot::aggregate`'s precedence; an endpoint without a snapshot counts as unknown).
    pub status: Status,
    pub endpoints: Vec<EndpointBalance>,
    /// The burn against this provider's balance, from the ledger (`None` without a ledger).
    pub forecast: Option<Forecast>,
}

/// Groups endpoints by provider, in the order providers first appear.
pub fn group(balances: Vec<EndpointBalance>) -> Vec<ProviderBalances> {
    let mut groups: Vec<ProviderBalances> = Vec::new();
    for balance in balances {
        match groups.iter_mut().find(|g| g.provider == balance.provider) {
            Some(group) => group.endpoints.push(balance),
            None => groups.push(ProviderBalances {
                provider: balance.provider.clone(),
                status: Status::Unknown,
                endpoints: vec![balance],
                forecast: None,
            }),
        }
    }
    for group in &mut groups {
        group.status = snapshot::combine(group.endpoints.iter().map(|e| e.status));
    }
    groups
}

/// The money left on a provider, to forecast when it runs out: each endpoint's total balance
/// (or else its quota remaining); endpoints reading the very same amount are taken as one
/// account (endpoints of a provider usually share its key), different amounts are added.
pub fn money_left(endpoints: &[EndpointBalance]) -> Option<f64> {
    let mut amounts = Vec::new();
    for snapshot in endpoints.iter().filter_map(|e| e.snapshot.as_ref()) {
        let a = &snapshot.amounts;
        if let Some(left) = a.total_balance.or(a.quota_remaining)
            && !amounts.contains(&left)
        {
            amounts.push(left);
        }
    }
    let mut sum = amounts.first().copied()?;
    for amount in &amounts[1..] {
        sum = sum.checked_add(*amount)?;
    }
    Some(sum.as_f64())
}

/// Where balances come from: the running serve when it answered, else the store.
#[derive(Debug)]
pub enum Source<T> {
    Live(T),
    /// Work without the running serve; `why` says why when one was asked and failed.
    Fallback {
        why: Option<String>,
    },
}

/// Prefers the running serve's answer (`live`, `None` when no serve with an admin API runs):
/// its answer is used; an error that `may_fall_back` accepts means work without it (with the
/// reason, to tell the user); any other error is the command's.
pub fn prefer_live<T>(
    live: Option<anyhow::Result<T>>,
    may_fall_back: impl Fn(&anyhow::Error) -> bool,
) -> anyhow::Result<Source<T>> {
    match live {
        None => Ok(Source::Fallback { why: None }),
        Some(Ok(answer)) => Ok(Source::Live(answer)),
        Some(Err(e)) if may_fall_back(&e) => Ok(Source::Fallback {
            why: Some(format!("{e:#}")),
        }),
        Some(Err(e)) => Err(e),
    }
}

/// `3 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => match (s / 3600, s % 3600 / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        s => match (s / 86_400, s % 86_400 / 3600) {
            (d, 0) => format!("{d} d"),
            (d, h) => format!("{d} d {h} h"),
        },
    }
}

/// The amounts of a lookup on one line, exact decimals: `balance 12.5 USD, plan Pro`.
pub fn amounts_line(a: &Amounts, now_ms: u64) -> String {
    let usd = |v: crate::balance::amount::Usd| format!("{v} USD");
    let mut parts = Vec::new();
    if a.unlimited_quota {
        parts.push("unlimited".to_string());
    }
    if let Some(v) = a.total_balance {
        parts.push(format!("balance {}", usd(v)));
    }
    if let Some(v) = a.subscription_balance {
        parts.push(format!("subscription {}", usd(v)));
    }
    if let Some(v) = a.paygo_balance {
        parts.push(format!("pay-as-you-go {}", usd(v)));
    }
    if a.quota_remaining.is_some() || a.quota_limit.is_some() || a.quota_used.is_some() {
        // `quota` and `token` periods are the key's whole allowance, not a window.
        let mut quota = match a.quota_period {
            Some(p @ (QuotaPeriod::Daily | QuotaPeriod::Weekly | QuotaPeriod::Monthly)) => {
                format!("{} quota:", p.as_str())
            }
            _ => "quota:".to_string(),
        };
        if let Some(v) = a.quota_remaining {
            quota.push_str(&format!(" {} left", usd(v)));
        }
        if let Some(v) = a.quota_limit {
            quota.push_str(&format!(" of {}", usd(v)));
        }
        if let Some(v) = a.quota_used {
            quota.push_str(&format!(" ({} used)", usd(v)));
        }
        if let Some(reset) = a.quota_resets_at_ms {
            match reset.checked_sub(now_ms) {
                Some(left) => quota.push_str(&format!(", resets in {}", duration(left))),
                None => quota.push_str(", reset due"),
            }
        }
        parts.push(quota);
    }
    if a.monthly_budget.is_some() || a.monthly_spent.is_some() {
        let spent = a.monthly_spent.map_or("?".to_string(), usd);
        let budget = a.monthly_budget.map_or("?".to_string(), usd);
        parts.push(format!("this month {spent} of {budget}"));
    }
    if let Some(plan) = &a.plan_name {
        parts.push(format!("plan {plan}"));
    }
    if a.today_used.is_some() || a.today_requests.is_some() {
        let mut today = "today".to_string();
        if let Some(v) = a.today_used {
            today.push_str(&format!(" {} spent", usd(v)));
        }
        if let Some(n) = a.today_requests {
            today.push_str(&format!(" {n} requests"));
        }
        parts.push(today);
    }
    if parts.is_empty() {
        "no amounts".to_string()
    } else {
        parts.join(", ")
    }
}

/// The human text of providers' balances.
pub fn render(groups: &[ProviderBalances], now_ms: u64) -> String {
    let mut out = String::new();
    for group in groups {
        out.push_str(&format!("{}  {}\n", group.provider, group.status));
        for e in &group.endpoints {
            render_endpoint(&mut out, e, now_ms);
        }
        if let Some(f) = &group.forecast {
            out.push_str(&format!(
                "    burn over the last {}: {:.4} USD/h ({} requests",
                duration(f.window_ms),
                f.cost_per_hour_usd,
                f.requests
            ));
            if f.unpriced_requests > 0 {
                out.push_str(&format!(", {} without a price", f.unpriced_requests));
            }
            out.push(')');
            if let Some(hours) = f.hours_until_balance_zero {
                out.push_str(&format!("; balance lasts ≈ {hours:.1} h"));
            }
            out.push('\n');
        }
    }
    out
}

fn render_endpoint(out: &mut String, e: &EndpointBalance, now_ms: u64) {
    let Some(s) = &e.snapshot else {
        out.push_str(&format!(
            "  {:<28} {:<9} never looked up\n",
            e.endpoint,
            e.status.as_str()
        ));
        return;
    };
    out.push_str(&format!(
        "  {:<28} {:<9} {}\n",
        e.endpoint,
        e.status.as_str(),
        amounts_line(&s.amounts, now_ms)
    ));
    let age = now_ms.saturating_sub(s.fetched_at_ms);
    let mut checked = format!("checked {} ago ({})", duration(age), s.adapter);
    match &s.error {
        Some(error) => checked.push_str(&format!("; failed: {error}")),
        None => checked.push_str("; ok"),
    }
    if s.amounts_carried {
        checked.push_str("; amounts carried from an earlier lookup");
    }
    out.push_str(&format!("  {:<28} {checked}\n", ""));
    let routing = match (e.routing_exhausted_until_ms, s.trusted_for_routing) {
        (Some(until), _) => format!(
            "out of routing for {} more",
            duration(until.saturating_sub(now_ms))
        ),
        (None, true) => "exhaustion is trusted for routing".to_string(),
        (None, false) => "display only: exhaustion never moves routing".to_string(),
    };
    out.push_str(&format!("  {:<28} {routing}\n", ""));
}

/// The first line of `balance refresh`: what the refresh did.
pub fn refresh_summary(report: &RefreshReport) -> String {
    let mut line = format!(
        "Looked up {} endpoint(s): {} ok, {} failed, {} without a token",
        report.endpoints_matched, report.refreshed, report.failed, report.missing_token
    );
    if let Some(provider) = &report.provider_filter {
        line.push_str(&format!(" (provider {provider})"));
    }
    if report.deduplicated {
        line.push_str("; joined a refresh already running");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::snapshot::{QuotaPeriod, Reading, aggregate};

    const NOW: u64 = 10_000_000;

    fn usd(text: &str) -> crate::balance::amount::Usd {
        text.parse().unwrap()
    }

    fn snapshot(balance: Option<&str>, exhausted: Option<bool>, error: Option<&str>) -> Snapshot {
        let reading = Reading {
            amounts: Amounts {
                total_balance: balance.map(usd),
                ..Amounts::default()
            },
            exhausted,
            error: error.map(str::to_string),
            ..Reading::default()
        };
        Snapshot::new(
            "r",
            "usage_provider:new_api",
            reading,
            true,
            (NOW - 60_000, NOW + 120_000),
            None,
        )
    }

    fn at(provider: &str, n: u32, s: Option<Snapshot>) -> EndpointBalance {
        endpoint_balance(provider, &format!("{provider}.e{n}"), s, NOW, 3_600_000)
    }

    #[test]
    fn endpoints_without_a_snapshot_are_unknown_and_exhaustion_is_dated() {
        let none = at("a", 1, None);
        assert_eq!(
            (none.status, none.routing_exhausted_until_ms),
            (Status::Unknown, None)
        );
        let out = at("a", 2, Some(snapshot(Some("0"), Some(true), None)));
        assert_eq!(out.status, Status::Exhausted);
        assert_eq!(
            out.routing_exhausted_until_ms,
            Some(NOW - 60_000 + 3_600_000)
        );
        assert_eq!(
            at("a", 3, Some(snapshot(Some("3"), None, None))).status,
            Status::Ok
        );
    }

    #[test]
    fn providers_take_their_worst_endpoint_in_first_seen_order() {
        let ok = snapshot(Some("3"), None, None);
        let failed = snapshot(None, None, Some("HTTP 500"));
        let groups = group(vec![
            at("b", 1, Some(ok.clone())),
            at("a", 1, Some(ok.clone())),
            at("b", 2, Some(failed.clone())),
            at("a", 2, None),
            at("c", 1, Some(ok.clone())),
        ]);
        let summary: Vec<(&str, Status, usize)> = groups
            .iter()
            .map(|g| (g.provider.as_str(), g.status, g.endpoints.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("b", Status::Error, 2),
                ("a", Status::Unknown, 2),
                ("c", Status::Ok, 1)
            ]
        );
        assert_eq!(
            groups[0].status,
            aggregate([&ok, &failed], NOW),
            "the same precedence as snapshot::aggregate"
        );
    }

    #[test]
    fn money_left_counts_one_account_once() {
        let three = at("a", 1, Some(snapshot(Some("3.5"), None, None)));
        let same = at("a", 2, Some(snapshot(Some("3.5"), None, None)));
        let other = at("a", 3, Some(snapshot(Some("1.25"), None, None)));
        assert_eq!(money_left(&[three.clone(), same]), Some(3.5));
        assert_eq!(money_left(&[three, other]), Some(4.75));
        assert_eq!(money_left(&[at("a", 4, None)]), None);
        let mut quota = snapshot(None, None, None);
        quota.amounts.quota_remaining = Some(usd("2"));
        assert_eq!(money_left(&[at("a", 5, Some(quota))]), Some(2.0));
    }

    #[test]
    fn live_is_preferred_and_fallback_is_decided_by_the_caller() {
        let none: Option<anyhow::Result<u8>> = None;
        assert!(matches!(
            prefer_live(none, |_| true).unwrap(),
            Source::Fallback { why: None }
        ));
        assert!(matches!(
            prefer_live(Some(Ok(7u8)), |_| false).unwrap(),
            Source::Live(7)
        ));
        let down = || Some(Err::<u8, _>(anyhow::anyhow!("connection refused")));
        match prefer_live(down(), |_| true).unwrap() {
            Source::Fallback { why } => assert!(why.unwrap().contains("connection refused")),
            Source::Live(_) => panic!("fell back"),
        }
        assert!(
            prefer_live(down(), |_| false).is_err(),
            "an error the caller does not accept is the command's"
        );
    }

    #[test]
    fn a_keys_whole_quota_is_not_called_a_window_and_today_is_shown() {
        let a = Amounts {
            quota_period: Some(QuotaPeriod::Quota),
            quota_remaining: Some(usd("7.25")),
            today_used: Some(usd("1.5")),
            today_requests: Some(40),
            ..Amounts::default()
        };
        assert_eq!(
            amounts_line(&a, NOW),
            "quota: 7.25 USD left, today 1.5 USD spent 40 requests"
        );
    }

    #[test]
    fn amounts_print_as_exact_decimals() {
        let a = Amounts {
            total_balance: Some(usd("12.345678901234567")),
            quota_period: Some(QuotaPeriod::Daily),
            quota_remaining: Some(usd("3")),
            quota_limit: Some(usd("10")),
            quota_used: Some(usd("7")),
            quota_resets_at_ms: Some(NOW + 2 * 3_600_000 + 5 * 60_000),
            monthly_budget: Some(usd("100")),
            monthly_spent: Some(usd("0.1")),
            plan_name: Some("Pro".into()),
            ..Amounts::default()
        };
        assert_eq!(
            amounts_line(&a, NOW),
            "balance 12.345678901234567 USD, daily quota: 3 USD left of 10 USD (7 USD used), \
             resets in 2 h 5 min, this month 0.1 USD of 100 USD, plan Pro"
        );
        assert_eq!(amounts_line(&Amounts::default(), NOW), "no amounts");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(3_000), "3 s");
        assert_eq!(duration(12 * 60_000), "12 min");
        assert_eq!(duration(3 * 3_600_000), "3 h");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
    }

    #[test]
    fn the_text_names_state_result_and_routing() {
        let mut failed = snapshot(Some("0"), Some(true), None);
        failed.error = Some("invalid key".into());
        failed.amounts_carried = true;
        let groups = group(vec![
            at("a", 1, Some(snapshot(Some("0"), Some(true), None))),
            at("a", 2, Some(failed)),
            at("a", 3, None),
        ]);
        let text = render(&groups, NOW);
        assert!(text.starts_with("a  error\n"), "{text}");
        assert!(
            text.contains("a.e1") && text.contains("exhausted"),
            "{text}"
        );
        assert!(text.contains("out of routing for 59 min more"), "{text}");
        assert!(
            text.contains("failed: invalid key; amounts carried"),
            "{text}"
        );
        assert!(
            text.contains("a.e3                         unknown   never looked up"),
            "{text}"
        );
    }
}
