//! What one balance lookup found, and the states shown for it (pure).
//!
//! Five states besides `ok` are kept apart on purpose: `unknown` (nothing known yet),
//! `stale` (known, but too old to trust), `exhausted` (the relay says nothing is left),
//! `error` (the last lookup failed: never mistaken for exhaustion) and `unlimited`.

use serde::{Deserialize, Serialize};

use super::amount::Usd;

/// A subscription or quota window a relay reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Daily,
    Weekly,
    Monthly,
    /// A pay-as-you-go quota without a window (New API token or user quota).
    Quota,
    Token,
}

impl QuotaPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Daily => "daily",
            QuotaPeriod::Weekly => "weekly",
            QuotaPeriod::Monthly => "monthly",
            QuotaPeriod::Quota => "quota",
            QuotaPeriod::Token => "token",
        }
    }
}

/// The amounts a lookup read; any may be missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Amounts {
    pub total_balance: Option<Usd>,
    pub subscription_balance: Option<Usd>,
    pub paygo_balance: Option<Usd>,
    pub monthly_budget: Option<Usd>,
    pub monthly_spent: Option<Usd>,
    pub quota_period: Option<QuotaPeriod>,
    pub quota_remaining: Option<Usd>,
    pub quota_limit: Option<Usd>,
    pub quota_used: Option<Usd>,
    /// When the quota window starts afresh, if the relay says (epoch ms).
    pub quota_resets_at_ms: Option<u64>,
    pub unlimited_quota: bool,
    pub total_used: Option<Usd>,
    pub today_used: Option<Usd>,
    pub total_requests: Option<u64>,
    pub today_requests: Option<u64>,
    pub total_tokens: Option<u64>,
    pub today_tokens: Option<u64>,
    pub plan_name: Option<String>,
}

impl Amounts {
    /// Whether any amount was read (an `ok` needs something to show).
    pub fn any(&self) -> bool {
        let money = [
            self.total_balance,
            self.subscription_balance,
            self.paygo_balance,
            self.monthly_budget,
            self.monthly_spent,
            self.quota_remaining,
            self.quota_limit,
            self.quota_used,
            self.total_used,
            self.today_used,
        ];
        money.iter().any(Option::is_some) || self.unlimited_quota
    }
}

/// What a lookup read from a relay's answer (before it is dated and kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub amounts: Amounts,
    /// `Some(true)`: the relay says nothing is left; `Some(false)`: it says there is; `None`:
    /// it did not say.
    pub exhausted: Option<bool>,
    /// The relay's business error (an invalid key, an inactive account), if it answered one.
    pub error: Option<String>,
    /// This adapter's exhaustion is display-only (a subscription window the relay reports
    /// for information): it never moves routing, whatever the provider's trust setting.
    pub display_only: bool,
}

/// One lookup's result for one relay endpoint, dated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The adapter's id (from `usage_providers.json`, or the provider name when discovered).
    pub adapter: String,
    /// Where it came from: `usage_provider:<kind>`, or `auto_discovery` when no adapter kind
    /// answered.
    pub source: String,
    pub fetched_at_ms: u64,
    /// After this the snapshot is `stale` (three poll intervals after it was fetched).
    pub stale_after_ms: u64,
    pub exhausted: Option<bool>,
    /// Whether exhaustion may take the endpoint out of routing (trust setting and adapter).
    pub trusted_for_routing: bool,
    #[serde(flatten)]
    pub amounts: Amounts,
    /// The amounts are from an earlier lookup: this one failed.
    pub amounts_carried: bool,
    pub error: Option<String>,
}

/// A balance state, in the order of precedence a provider's states are combined in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Error,
    Exhausted,
    Stale,
    Unknown,
    Unlimited,
    Ok,
}

impl Status {
    /// Every state (keep in step with the enum).
    pub const ALL: [Status; 6] = [
        Status::Error,
        Status::Exhausted,
        Status::Stale,
        Status::Unknown,
        Status::Unlimited,
        Status::Ok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Exhausted => "exhausted",
            Status::Stale => "stale",
            Status::Unknown => "unknown",
            Status::Unlimited => "unlimited",
            Status::Ok => "ok",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Snapshot {
    /// Dates `reading`. A failed lookup keeps the amounts of `previous` (marked as carried),
    /// so an outage shows the last known balance instead of nothing.
    pub fn new(
        adapter: &str,
        source: &str,
        reading: Reading,
        trusted: bool,
        (now_ms, stale_after_ms): (u64, u64),
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let carried = reading.error.is_some() && !reading.amounts.any();
        let mut amounts = match previous {
            Some(previous) if carried => previous.amounts.clone(),
            _ => reading.amounts,
        };
        amounts.plan_name = amounts.plan_name.map(printable);
        Snapshot {
            adapter: adapter.to_string(),
            source: source.to_string(),
            fetched_at_ms: now_ms,
            stale_after_ms,
            exhausted: if reading.error.is_some() {
                None
            } else {
                reading.exhausted
            },
            trusted_for_routing: trusted && !reading.display_only,
            amounts_carried: carried && previous.is_some_and(|p| p.amounts.any()),
            amounts,
            error: reading.error.map(printable),
        }
    }

    /// The state at `now_ms`: error > exhausted (even when stale) > stale > ok / unlimited >
    /// unknown.
    pub fn status(&self, now_ms: u64) -> Status {
        if self.error.is_some() {
            Status::Error
        } else if self.exhausted == Some(true) {
            Status::Exhausted
        } else if now_ms > self.stale_after_ms {
            Status::Stale
        } else if self.amounts.unlimited_quota {
            Status::Unlimited
        } else if self.exhausted == Some(false) || self.amounts.any() {
            Status::Ok
        } else {
            Status::Unknown
        }
    }

    /// Until when this snapshot takes its endpoint out of routing, or `None` when it does
    /// not: only a trusted, fresh-or-stale exhaustion does, and never past `max_ms` after the
    /// lookup; a window that resets earlier ends it at the reset.
    pub fn routing_exhausted_until(&self, now_ms: u64, max_ms: u64) -> Option<u64> {
        if !self.trusted_for_routing || self.status(now_ms) != Status::Exhausted {
            return None;
        }
        let cap = self.fetched_at_ms.saturating_add(max_ms);
        let until = self
            .amounts
            .quota_resets_at_ms
            .map_or(cap, |reset| reset.min(cap));
        (until > now_ms).then_some(until)
    }
}

/// Relay text as it may be shown in a terminal: control characters (escape sequences, line
/// breaks) become spaces.
fn printable(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        text
    }
}

/// A provider's state from its endpoints' snapshots: none ⇒ unknown; then the first of error,
/// exhausted, stale, unknown, unlimited that any snapshot has; else ok.
pub fn aggregate<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>, now_ms: u64) -> Status {
    combine(snapshots.into_iter().map(|s| s.status(now_ms)))
}

/// States combined by precedence (`unknown` for none).
pub fn combine(states: impl IntoIterator<Item = Status>) -> Status {
    states.into_iter().min().unwrap_or(Status::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    #[test]
    fn relay_text_loses_its_control_characters() {
        let mut r = reading(Some("1"), Some(false));
        r.amounts.plan_name = Some("Pro\u{1b}[2J\nplan".into());
        let s = Snapshot::new("a", "s", r, true, (NOW, NOW + 1), None);
        assert_eq!(s.amounts.plan_name.as_deref(), Some("Pro [2J plan"));
        let failed = Reading {
            error: Some("bad\u{7}\r\nkey".into()),
            ..Reading::default()
        };
        let s = Snapshot::new("a", "s", failed, true, (NOW, NOW + 1), None);
        assert_eq!(s.error.as_deref(), Some("bad   key"));
    }

    fn usd(text: &str) -> Usd {
        text.parse().unwrap()
    }

    fn reading(remaining: Option<&str>, exhausted: Option<bool>) -> Reading {
        Reading {
            amounts: Amounts {
                total_balance: remaining.map(usd),
                ..Amounts::default()
            },
            exhausted,
            ..Reading::default()
        }
    }

    fn snapshot(reading: Reading) -> Snapshot {
        Snapshot::new(
            "a",
            "usage_provider:test",
            reading,
            true,
            (NOW, NOW + 180_000),
            None,
        )
    }

    #[test]
    fn each_state_is_its_own() {
        assert_eq!(snapshot(reading(None, None)).status(NOW), Status::Unknown);
        assert_eq!(snapshot(reading(Some("3"), None)).status(NOW), Status::Ok);
        assert_eq!(snapshot(reading(None, Some(false))).status(NOW), Status::Ok);
        assert_eq!(
            snapshot(reading(Some("0"), Some(true))).status(NOW),
            Status::Exhausted
        );
        let mut unlimited = reading(None, Some(false));
        unlimited.amounts.unlimited_quota = true;
        assert_eq!(snapshot(unlimited).status(NOW), Status::Unlimited);
        let mut failed = reading(Some("0"), Some(true));
        failed.error = Some("invalid key".into());
        let failed = snapshot(failed);
        assert_eq!(
            failed.status(NOW),
            Status::Error,
            "error wins over exhausted"
        );
        assert_eq!(
            failed.exhausted, None,
            "a failed lookup is never exhaustion"
        );
    }

    #[test]
    fn staleness_comes_with_time_but_exhaustion_stays_exhaustion() {
        let ok = snapshot(reading(Some("3"), None));
        assert_eq!(ok.status(NOW + 180_001), Status::Stale);
        let exhausted = snapshot(reading(Some("0"), Some(true)));
        assert_eq!(exhausted.status(NOW + 180_001), Status::Exhausted);
        assert_eq!(
            snapshot(reading(None, None)).status(NOW + 180_001),
            Status::Stale
        );
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_known_amounts_marked_as_such() {
        let before = snapshot(reading(Some("7.5"), Some(false)));
        let mut failed = reading(None, None);
        failed.error = Some("HTTP 500".into());
        let after = Snapshot::new(
            "a",
            "usage_provider:test",
            failed,
            true,
            (NOW + 60_000, NOW + 240_000),
            Some(&before),
        );
        assert_eq!(after.status(NOW + 60_000), Status::Error);
        assert_eq!(after.amounts.total_balance, Some(usd("7.5")));
        assert!(after.amounts_carried);
        assert!(!before.amounts_carried);
    }

    #[test]
    fn providers_combine_by_precedence() {
        let ok = snapshot(reading(Some("3"), None));
        let exhausted = snapshot(reading(Some("0"), Some(true)));
        let unknown = snapshot(reading(None, None));
        let mut failed = reading(None, None);
        failed.error = Some("timeout".into());
        let failed = snapshot(failed);
        assert_eq!(aggregate([], NOW), Status::Unknown);
        assert_eq!(aggregate([&ok], NOW), Status::Ok);
        assert_eq!(aggregate([&ok, &unknown], NOW), Status::Unknown);
        assert_eq!(
            aggregate([&ok, &exhausted, &unknown], NOW),
            Status::Exhausted
        );
        assert_eq!(aggregate([&exhausted, &failed], NOW), Status::Error);
        assert_eq!(aggregate([&ok], NOW + 180_001), Status::Stale);
    }

    #[test]
    fn exhaustion_moves_routing_only_when_trusted_and_ends_at_reset_or_cap() {
        let max = 3_600_000;
        let exhausted = snapshot(reading(Some("0"), Some(true)));
        assert_eq!(exhausted.routing_exhausted_until(NOW, max), Some(NOW + max));
        assert_eq!(
            exhausted.routing_exhausted_until(NOW + max, max),
            None,
            "never longer than the cap"
        );
        let mut windowed = reading(Some("0"), Some(true));
        windowed.amounts.quota_resets_at_ms = Some(NOW + 60_000);
        let windowed = snapshot(windowed);
        assert_eq!(
            windowed.routing_exhausted_until(NOW, max),
            Some(NOW + 60_000)
        );
        assert_eq!(windowed.routing_exhausted_until(NOW + 60_000, max), None);

        let mut display_only = reading(Some("0"), Some(true));
        display_only.display_only = true;
        assert_eq!(
            snapshot(display_only).routing_exhausted_until(NOW, max),
            None
        );
        let untrusted = Snapshot::new(
            "a",
            "s",
            reading(Some("0"), Some(true)),
            false,
            (NOW, NOW + 1),
            None,
        );
        assert_eq!(untrusted.routing_exhausted_until(NOW, max), None);
        assert_eq!(
            snapshot(reading(Some("3"), None)).routing_exhausted_until(NOW, max),
            None
        );
    }

    #[test]
    fn names_are_the_serde_names() {
        for status in Status::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        for period in [
            QuotaPeriod::Daily,
            QuotaPeriod::Weekly,
            QuotaPeriod::Monthly,
            QuotaPeriod::Quota,
            QuotaPeriod::Token,
        ] {
            assert_eq!(
                serde_json::to_value(period).unwrap(),
                serde_json::json!(period.as_str())
            );
        }
    }
}
