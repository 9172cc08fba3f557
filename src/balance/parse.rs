//! Reading a balance API's JSON answer (pure): each adapter kind knows where its relay family
//! puts the balance, the quota and the business error; a `usage_providers.json` entry may add
//! its own paths and divisors (`extract`). No IO here: a `serde_json::Value` in, a
//! [`Reading`] out, so every relay shape is unit-tested from a literal.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::amount::Usd;
use super::snapshot::{Amounts, QuotaPeriod, Reading};

/// The relay families a balance adapter can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// sub2api `/v1/usage` (quota-limited keys, subscriptions, wallets).
    #[serde(rename = "sub2api_usage", alias = "sub2api_usage_http_json")]
    Sub2apiUsage,
    /// sub2api `/api/v1/auth/me` (`{code, message, data}` envelope).
    #[serde(rename = "sub2api_auth_me")]
    Sub2apiAuthMe,
    /// New API `/api/usage/token/` (the token's own quota, in quota units).
    #[serde(rename = "new_api_token_usage")]
    NewApiTokenUsage,
    /// New API `/api/user/self` (the user's quota, in quota units).
    #[serde(rename = "new_api_user_self")]
    NewApiUserSelf,
    /// Any JSON balance endpoint (DeepSeek, OpenRouter, SiliconFlow, Novita...).
    #[serde(
        rename = "openai_balance_http_json",
        alias = "relay_balance_http_json",
        alias = "open_ai_balance_http_json"
    )]
    OpenaiBalance,
    /// A monthly budget and what was spent of it (PackyCode).
    #[serde(rename = "budget_http_json")]
    Budget,
    /// YesCode `/api/v1/auth/profile`.
    #[serde(rename = "yescode_profile")]
    YescodeProfile,
    /// RightCode `/account/summary`: a wallet and per-path daily subscriptions.
    #[serde(
        rename = "rightcode_account_summary",
        alias = "right_code_account_summary",
        alias = "rightcode"
    )]
    RightcodeAccountSummary,
    /// OpenAI `/v1/organization/costs` (spend only: the official API has no balance).
    #[serde(
        rename = "openai_organization_costs",
        alias = "openai_org_costs",
        alias = "openai_costs"
    )]
    OpenaiOrganizationCosts,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Sub2apiUsage,
        Kind::Sub2apiAuthMe,
        Kind::NewApiTokenUsage,
        Kind::NewApiUserSelf,
        Kind::OpenaiBalance,
        Kind::Budget,
        Kind::YescodeProfile,
        Kind::RightcodeAccountSummary,
        Kind::OpenaiOrganizationCosts,
    ];

    /// The canonical name, as written in `usage_providers.json` and in `usage_provider:<kind>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sub2apiUsage => "sub2api_usage",
            Kind::Sub2apiAuthMe => "sub2api_auth_me",
            Kind::NewApiTokenUsage => "new_api_token_usage",
            Kind::NewApiUserSelf => "new_api_user_self",
            Kind::OpenaiBalance => "openai_balance_http_json",
            Kind::Budget => "budget_http_json",
            Kind::YescodeProfile => "yescode_profile",
            Kind::RightcodeAccountSummary => "rightcode_account_summary",
            Kind::OpenaiOrganizationCosts => "openai_organization_costs",
        }
    }

    /// The endpoint template used when an adapter leaves `endpoint` empty; `None` when the
    /// kind has no standard place (the adapter must name one).
    pub fn default_endpoint(self) -> Option<&'static str> {
        match self {
            Kind::Sub2apiUsage => Some("{{base_url}}/v1/usage"),
            Kind::Sub2apiAuthMe => Some("{{base_url}}/api/v1/auth/me"),
            Kind::NewApiTokenUsage => Some("{{base_url}}/api/usage/token/"),
            Kind::NewApiUserSelf => Some("{{base_url}}/api/user/self"),
            Kind::OpenaiBalance => Some("{{base_url}}/user/balance"),
            Kind::RightcodeAccountSummary => Some("https://www.right.codes/account/summary"),
            Kind::OpenaiOrganizationCosts => {
                Some("{{base_url}}/v1/organization/costs?start_time={{unix_days_ago:30}}&limit=30")
            }
            Kind::Budget | Kind::YescodeProfile => None,
        }
    }

    /// The header the token goes in, as `(name, value prefix)`: YesCode wants its key bare in
    /// `X-API-Key`, every other family a bearer token.
    pub fn auth_header(self) -> (&'static str, &'static str) {
        match self {
            Kind::YescodeProfile => ("X-API-Key", ""),
            _ => ("Authorization", "Bearer "),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An adapter's own paths and divisors (`extract` in `usage_providers.json`): custom paths are
/// tried before the kind's built-in ones, so a relay with an unusual shape needs no code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Extract {
    pub remaining_balance_paths: Vec<String>,
    pub subscription_balance_paths: Vec<String>,
    pub paygo_balance_paths: Vec<String>,
    pub monthly_budget_paths: Vec<String>,
    pub monthly_spent_paths: Vec<String>,
    pub exhausted_paths: Vec<String>,
    /// Minor units per dollar of the remaining balance (and of its subscription and
    /// pay-as-you-go parts, which are the same money).
    pub remaining_divisor: Option<Usd>,
    pub monthly_budget_divisor: Option<Usd>,
    pub monthly_spent_divisor: Option<Usd>,
    pub derive_budget_from_remaining_and_spent: bool,
    pub derive_remaining_from_budget_and_spent: bool,
}

/// The value at a dot-separated path; numeric segments index arrays
/// (`balance_infos.0.total_balance`).
pub fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |at, segment| match at {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

/// What `body` (a relay's answer, already parsed as JSON) says about the balance.
/// `upstream_path` is the path of the upstream's base URL (`/codex`): RightCode subscriptions
/// are valid for some path prefixes only.
pub fn read(kind: Kind, body: &Value, extract: &Extract, upstream_path: &str) -> Reading {
    if !body.is_object() {
        return failure(format!(
            "{kind}: the answer is not a JSON object ({})",
            json_type(body)
        ));
    }
    match kind {
        Kind::Sub2apiUsage => sub2api_usage(body, extract),
        Kind::Sub2apiAuthMe => sub2api_auth_me(body, extract),
        Kind::NewApiTokenUsage => new_api(body, extract, &TOKEN_USAGE),
        Kind::NewApiUserSelf => new_api(body, extract, &USER_SELF),
        Kind::OpenaiBalance => generic(body, extract),
        Kind::Budget => budget(body, extract),
        Kind::YescodeProfile => yescode(body, extract),
        Kind::RightcodeAccountSummary => rightcode(body, upstream_path),
        Kind::OpenaiOrganizationCosts => organization_costs(body),
    }
}

// ---- shared helpers ------------------------------------------------------------------------

/// New API counts in quota units: 500,000 per dollar.
fn quota_units_per_usd() -> Usd {
    Usd::dollars(500_000)
}

/// A relay's error text is kept to this many characters: a hostile or broken relay could send
/// megabytes, and the message ends up in the snapshot, the log and the console.
const MESSAGE_CHARS: usize = 200;

fn failure(message: String) -> Reading {
    Reading {
        error: Some(message),
        ..Reading::default()
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The relay's own error text (`message`, `msg`, `error.message`, `error`), cut short.
fn relay_message(body: &Value, fallback: &str) -> String {
    let text = ["message", "msg", "error.message", "error"]
        .iter()
        .filter_map(|path| json_path(body, path)?.as_str())
        .map(str::trim)
        .find(|text| !text.is_empty())
        .unwrap_or(fallback);
    truncate(text)
}

fn truncate(text: &str) -> String {
    let mut chars = text.chars();
    let kept: String = chars.by_ref().take(MESSAGE_CHARS).collect();
    if chars.next().is_some() {
        kept + "…"
    } else {
        kept
    }
}

/// The first of `custom` (as written), then of `builtin` at the top level, then of `builtin`
/// under `data.` (the usual envelope), that `parse` accepts: a `null` or a non-number at one
/// path does not hide a good value at the next.
fn first<'a, T>(
    body: &'a Value,
    custom: &[String],
    builtin: &[&str],
    parse: impl Fn(&'a Value) -> Option<T>,
) -> Option<T> {
    let at = |path: &str| json_path(body, path).and_then(&parse);
    let in_data = |path: &str| {
        let data = body.get("data")?;
        json_path(data, path).and_then(&parse)
    };
    custom
        .iter()
        .find_map(|path| at(path))
        .or_else(|| builtin.iter().find_map(|path| at(path)))
        .or_else(|| builtin.iter().find_map(|path| in_data(path)))
}

/// One amount an adapter reads: where to look and what it is counted in.
struct Field<'a> {
    custom: &'a [String],
    builtin: &'a [&'a str],
    divisor: Option<Usd>,
}

impl Field<'_> {
    /// The amount in dollars (a zero divisor reads as nothing rather than as infinity).
    fn read(&self, body: &Value) -> Option<Usd> {
        let raw = first(body, self.custom, self.builtin, Usd::from_json)?;
        match self.divisor {
            Some(divisor) => raw.divided_by(divisor),
            None => Some(raw),
        }
    }
}

fn flag(body: &Value, custom: &[String], builtin: &[&str]) -> Option<bool> {
    first(body, custom, builtin, Value::as_bool)
}

/// The relay's own exhaustion flag, if it has one.
fn exhausted_flag(body: &Value, extract: &Extract) -> Option<bool> {
    flag(body, &extract.exhausted_paths, EXHAUSTED_FLAGS)
}

/// A count (requests, tokens): a whole number, or a numeric string.
fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    let text = value.as_str()?.trim();
    (!text.is_empty()).then(|| truncate(text))
}

/// Nothing left: zero, or a debt.
fn is_empty(amount: Usd) -> bool {
    !amount.is_positive()
}

/// The sum of the amounts present, `None` when none is.
fn sum_present(amounts: impl IntoIterator<Item = Option<Usd>>) -> Option<Usd> {
    amounts
        .into_iter()
        .flatten()
        .try_fold(None, |sum: Option<Usd>, a| match sum {
            None => Some(Some(a)),
            Some(s) => s.checked_add(a).map(Some),
        })
        .flatten()
}

// ---- generic balance (openai_balance_http_json) --------------------------------------------

/// Totals come before bare `balance`: SiliconFlow answers `balance` (the gift part) next to
/// `totalBalance`, and the total is what is left to spend.
const REMAINING: &[&str] = &[
    "total_balance",
    "total_balance_usd",
    "totalBalance",
    "balance",
    "remaining",
    "remain",
    "available",
    "available_balance",
    "availableBalance",
    "available_balance_usd",
    "credit",
    "credits",
    "balance_infos.0.total_balance",
];
const SUBSCRIPTION: &[&str] = &[
    "subscription_balance",
    "subscription_balance_usd",
    "subscriptionBalance",
];
const PAYGO: &[&str] = &[
    "pay_as_you_go_balance",
    "pay_as_you_go_balance_usd",
    "paygo_balance",
    "paygo_balance_usd",
    "payAsYouGoBalance",
    "chargeBalance",
];
/// A voucher (gift credit) is spent like pay-as-you-go money, next to the charged part.
const VOUCHER: &[&str] = &["voucherBalance", "voucher_balance"];
const SPENT: &[&str] = &[
    "monthly_spent_usd",
    "spent",
    "used",
    "used_balance",
    "usedBalance",
    "total_usage",
];
const BUDGET: &[&str] = &[
    "monthly_budget_usd",
    "budget",
    "limit",
    "quota_total",
    "creditLimit",
    "total_credits",
];
const EXHAUSTED_FLAGS: &[&str] = &["exhausted", "quota_exhausted", "balance_exhausted"];

/// The remaining balance and its parts: `(total, subscription, pay-as-you-go)`. Without a
/// total, the parts present make it up.
fn balances(body: &Value, extract: &Extract) -> (Option<Usd>, Option<Usd>, Option<Usd>) {
    let divisor = extract.remaining_divisor;
    let field = |custom, builtin| Field {
        custom,
        builtin,
        divisor,
    };
    let subscription = field(&extract.subscription_balance_paths, SUBSCRIPTION).read(body);
    let paygo = sum_present([
        field(&extract.paygo_balance_paths, PAYGO).read(body),
        field(&[], VOUCHER).read(body),
    ]);
    let total = field(&extract.remaining_balance_paths, REMAINING)
        .read(body)
        .or_else(|| sum_present([subscription, paygo]));
    (total, subscription, paygo)
}

/// Any JSON balance answer: a balance (or its parts), a budget and what was spent of it;
/// exhausted by the relay's flag, else by an empty balance.
fn generic(body: &Value, extract: &Extract) -> Reading {
    let (mut total, subscription, paygo) = balances(body, extract);
    let spent = Field {
        custom: &extract.monthly_spent_paths,
        builtin: SPENT,
        divisor: extract.monthly_spent_divisor,
    }
    .read(body);
    let mut budget = Field {
        custom: &extract.monthly_budget_paths,
        builtin: BUDGET,
        divisor: extract.monthly_budget_divisor,
    }
    .read(body);
    if extract.derive_remaining_from_budget_and_spent && total.is_none() {
        total = budget.zip(spent).and_then(|(b, s)| b.checked_sub(s));
    }
    if extract.derive_budget_from_remaining_and_spent && budget.is_none() {
        budget = total.zip(spent).and_then(|(t, s)| t.checked_add(s));
    }
    Reading {
        amounts: Amounts {
            total_balance: total,
            subscription_balance: subscription,
            paygo_balance: paygo,
            monthly_budget: budget,
            monthly_spent: spent,
            ..Amounts::default()
        },
        exhausted: exhausted_flag(body, extract).or_else(|| total.map(is_empty)),
        ..Reading::default()
    }
}

// ---- sub2api -------------------------------------------------------------------------------

/// sub2api's `/v1/usage`: a quota-limited key, a subscription (display-only windows) or a
/// wallet; the usage counters come with all three.
fn sub2api_usage(body: &Value, extract: &Extract) -> Reading {
    if body.get("isValid").and_then(Value::as_bool) == Some(false) {
        return failure(relay_message(body, "sub2api: the key is not valid"));
    }
    let mut reading = match body.get("mode").and_then(Value::as_str) {
        Some("quota_limited") => sub2api_quota(body, extract),
        Some("unrestricted") => {
            sub2api_subscription(body, extract).unwrap_or_else(|| generic(body, extract))
        }
        _ => generic(body, extract),
    };
    sub2api_usage_counters(&mut reading.amounts, body);
    reading
}

/// A key with its own quota: `quota.{remaining,limit,used}` (or a top-level `remaining`).
fn sub2api_quota(body: &Value, extract: &Extract) -> Reading {
    let amount = |paths: &[&str]| first(body, &[], paths, Usd::from_json);
    let remaining = amount(&["quota.remaining", "remaining"]);
    let exhausted = exhausted_flag(body, extract) == Some(true) || remaining.is_some_and(is_empty);
    Reading {
        amounts: Amounts {
            quota_period: Some(QuotaPeriod::Quota),
            quota_remaining: remaining,
            quota_limit: amount(&["quota.limit"]),
            quota_used: amount(&["quota.used"]),
            ..Amounts::default()
        },
        exhausted: Some(exhausted),
        ..Reading::default()
    }
}

/// One subscription window.
struct Window {
    period: QuotaPeriod,
    remaining: Usd,
    limit: Usd,
    used: Usd,
    /// When it starts afresh, if the relay says when it began (or will reset).
    resets_at_ms: Option<u64>,
}

/// The subscription window with the least left, shown as the quota. Display-only: sub2api
/// reports windows for information, and a spent daily window does not mean the key is
/// refused. `None` when there is no `subscription` or no window with a limit.
fn sub2api_subscription(body: &Value, extract: &Extract) -> Option<Reading> {
    let subscription = first(body, &[], &["subscription"], |v| v.is_object().then_some(v))?;
    let tightest = [
        (QuotaPeriod::Daily, "daily", 24),
        (QuotaPeriod::Weekly, "weekly", 7 * 24),
        (QuotaPeriod::Monthly, "monthly", 30 * 24),
    ]
    .into_iter()
    .filter_map(|(period, name, hours)| window(subscription, (period, name, hours)))
    .min_by_key(|w| w.remaining)?;
    let exhausted = exhausted_flag(body, extract) == Some(true) || is_empty(tightest.remaining);
    Some(Reading {
        amounts: Amounts {
            quota_period: Some(tightest.period),
            quota_remaining: Some(tightest.remaining),
            quota_limit: Some(tightest.limit),
            quota_used: Some(tightest.used),
            quota_resets_at_ms: tightest.resets_at_ms,
            ..Amounts::default()
        },
        exhausted: Some(exhausted),
        display_only: true,
        ..Reading::default()
    })
}

/// A window with a positive `<name>_limit_usd`; what is left of it never shows below zero.
/// It resets at `<name>_window_resets_at` when given, else `hours` after
/// `<name>_window_start` (sub2api's windows run 24 hours, 7 days and 30 days from their start).
fn window(subscription: &Value, (period, name, hours): (QuotaPeriod, &str, u64)) -> Option<Window> {
    let limit = Usd::from_json(subscription.get(format!("{name}_limit_usd"))?)?;
    if !limit.is_positive() {
        return None;
    }
    let used = subscription
        .get(format!("{name}_usage_usd"))
        .and_then(Usd::from_json)
        .unwrap_or(Usd::ZERO);
    let remaining = limit.checked_sub(used)?.max(Usd::ZERO);
    let at = |key: String| subscription.get(key).and_then(epoch_ms);
    let resets_at_ms = at(format!("{name}_window_resets_at")).or_else(|| {
        at(format!("{name}_window_start")).map(|start| start.saturating_add(hours * 3_600_000))
    });
    Some(Window {
        period,
        remaining,
        limit,
        used,
        resets_at_ms,
    })
}

/// A time a relay reports: RFC 3339 text, or a number of epoch seconds (or milliseconds, when
/// it is too large to be seconds).
fn epoch_ms(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => crate::time::parse_rfc3339_ms(text),
        Value::Number(n) => {
            let n = n.as_u64()?;
            Some(if n < 100_000_000_000 { n * 1_000 } else { n })
        }
        _ => None,
    }
}

/// `planName` and `usage.{total,today}.{cost,requests,total_tokens|tokens}`, whatever the
/// mode.
fn sub2api_usage_counters(amounts: &mut Amounts, body: &Value) {
    let amount = |paths: &[&str]| first(body, &[], paths, Usd::from_json);
    let number = |paths: &[&str]| first(body, &[], paths, count);
    amounts.plan_name = first(body, &[], &["planName"], text);
    amounts.total_used = amount(&["usage.total.cost"]);
    amounts.today_used = amount(&["usage.today.cost"]);
    amounts.total_requests = number(&["usage.total.requests"]);
    amounts.today_requests = number(&["usage.today.requests"]);
    amounts.total_tokens = number(&["usage.total.total_tokens", "usage.total.tokens"]);
    amounts.today_tokens = number(&["usage.today.total_tokens", "usage.today.tokens"]);
}

/// sub2api's `/api/v1/auth/me`: `{code, message, data}`; a non-zero code is a business error.
fn sub2api_auth_me(body: &Value, extract: &Extract) -> Reading {
    match body.get("code").and_then(Value::as_i64) {
        Some(0) | None => generic(body, extract),
        Some(code) => failure(relay_message(body, &format!("sub2api: code {code}"))),
    }
}

// ---- New API -------------------------------------------------------------------------------

/// Where a New API endpoint keeps its quota.
struct NewApiShape {
    remaining: &'static [&'static str],
    used: &'static [&'static str],
    budget: &'static [&'static str],
    plan: &'static [&'static str],
    period: QuotaPeriod,
    /// Whether `code: false` is an error too (the token endpoint answers `{code: true}`).
    code_is_success: bool,
}

const TOKEN_USAGE: NewApiShape = NewApiShape {
    remaining: &["total_available", "remain_quota", "remaining_quota"],
    used: &["total_used", "used_quota"],
    budget: &["total_granted"],
    plan: &["name"],
    period: QuotaPeriod::Token,
    code_is_success: true,
};

const USER_SELF: NewApiShape = NewApiShape {
    remaining: &["quota"],
    used: &["used_quota"],
    budget: &["total_quota"],
    plan: &[],
    period: QuotaPeriod::Quota,
    code_is_success: false,
};

/// A New API quota, in quota units (500,000 per dollar unless the adapter says otherwise);
/// an unlimited token or user is never exhausted and has no quota to show.
fn new_api(body: &Value, extract: &Extract, shape: &NewApiShape) -> Reading {
    let refused = |key| body.get(key).and_then(Value::as_bool) == Some(false);
    if refused("success") || (shape.code_is_success && refused("code")) {
        return failure(relay_message(body, "New API: the request was refused"));
    }
    let mut amounts = Amounts {
        plan_name: first(body, &[], shape.plan, text),
        total_requests: first(body, &[], &["request_count"], count),
        ..Amounts::default()
    };
    if flag(body, &[], &["unlimited_quota"]) == Some(true) {
        amounts.unlimited_quota = true;
        return Reading {
            amounts,
            exhausted: Some(false),
            ..Reading::default()
        };
    }
    let units = |divisor: Option<Usd>| Some(divisor.unwrap_or_else(quota_units_per_usd));
    let field = |custom, builtin, divisor| Field {
        custom,
        builtin,
        divisor: units(divisor),
    };
    let remaining = field(
        &extract.remaining_balance_paths,
        shape.remaining,
        extract.remaining_divisor,
    )
    .read(body);
    let used = field(
        &extract.monthly_spent_paths,
        shape.used,
        extract.monthly_spent_divisor,
    )
    .read(body);
    let limit = field(
        &extract.monthly_budget_paths,
        shape.budget,
        extract.monthly_budget_divisor,
    )
    .read(body)
    .or_else(|| remaining.zip(used).and_then(|(r, u)| r.checked_add(u)));
    amounts.quota_period = Some(shape.period);
    amounts.quota_remaining = remaining;
    amounts.quota_used = used;
    amounts.quota_limit = limit;
    Reading {
        amounts,
        exhausted: exhausted_flag(body, extract).or_else(|| remaining.map(is_empty)),
        ..Reading::default()
    }
}

// ---- budget, YesCode -----------------------------------------------------------------------

/// A monthly budget: exhausted once spent reaches it. A missing amount stays unknown (never
/// read as zero, which would look exhausted or unlimited).
fn budget(body: &Value, extract: &Extract) -> Reading {
    let budget = Field {
        custom: &extract.monthly_budget_paths,
        builtin: &["monthly_budget_usd"],
        divisor: extract.monthly_budget_divisor,
    }
    .read(body);
    let spent = Field {
        custom: &extract.monthly_spent_paths,
        builtin: &["monthly_spent_usd"],
        divisor: extract.monthly_spent_divisor,
    }
    .read(body);
    let by_budget = match (budget, spent) {
        (Some(b), Some(s)) if b.is_positive() => Some(s >= b),
        _ => None,
    };
    Reading {
        amounts: Amounts {
            monthly_budget: budget,
            monthly_spent: spent,
            ..Amounts::default()
        },
        exhausted: exhausted_flag(body, extract).or(by_budget),
        ..Reading::default()
    }
}

/// YesCode's profile: what is left is the subscription balance plus the pay-as-you-go one
/// (its `balance` is only one of them, depending on the user's preference).
fn yescode(body: &Value, extract: &Extract) -> Reading {
    let mut reading = generic(body, extract);
    let amounts = &mut reading.amounts;
    amounts.plan_name = first(body, &[], &["subscription_plan.name"], text);
    if let Some(sum) = sum_present([amounts.subscription_balance, amounts.paygo_balance]) {
        amounts.total_balance = Some(sum);
        reading.exhausted = exhausted_flag(body, extract).or(Some(is_empty(sum)));
    }
    reading
}

// ---- RightCode -----------------------------------------------------------------------------

/// RightCode subscriptions with a quota below $10 are not counted (trial leftovers, not a
/// plan).
const RIGHTCODE_MIN_QUOTA_USD: i64 = 10;

/// RightCode: a wallet, and daily subscriptions that serve some path prefixes only. A
/// subscription counts for this upstream when one of its prefixes matches its path.
fn rightcode(body: &Value, upstream_path: &str) -> Reading {
    let wallet = first(body, &[], &["balance"], Usd::from_json);
    let matched: Vec<(Usd, Option<String>)> = first(body, &[], &["subscriptions"], Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| serves(s, upstream_path))
        .filter_map(|s| Some((subscription_left(s)?, s.get("name").and_then(text))))
        .collect();
    if wallet.is_none() && matched.is_empty() {
        return failure(format!(
            "rightcode: no wallet balance and no subscription for `{}`",
            truncate(upstream_path)
        ));
    }
    let quota = sum_present(matched.iter().map(|(left, _)| Some(*left)));
    let names: Vec<&str> = matched.iter().filter_map(|(_, n)| n.as_deref()).collect();
    let exhausted = quota.is_none_or(is_empty) && wallet.is_none_or(is_empty);
    Reading {
        amounts: Amounts {
            total_balance: wallet,
            quota_period: quota.map(|_| QuotaPeriod::Daily),
            quota_remaining: quota,
            plan_name: (!names.is_empty()).then(|| names.join(", ")),
            ..Amounts::default()
        },
        exhausted: Some(exhausted),
        ..Reading::default()
    }
}

/// Whether one of the subscription's `available_prefixes` is a path prefix of the upstream's
/// (`/codex` serves `/codex` and `/codex/v1`, not `/codexx`).
fn serves(subscription: &Value, upstream_path: &str) -> bool {
    let path = upstream_path.trim_end_matches('/');
    let prefixes = subscription
        .get("available_prefixes")
        .and_then(Value::as_array);
    prefixes
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|prefix| {
            let prefix = prefix.trim_end_matches('/');
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// What a subscription still offers: today's remainder, plus tomorrow's full quota when
/// today's reset has not been used yet (`reset_today` not true). `None` below the minimum.
fn subscription_left(subscription: &Value) -> Option<Usd> {
    let total = subscription.get("total_quota").and_then(Usd::from_json)?;
    if total < Usd::dollars(RIGHTCODE_MIN_QUOTA_USD) {
        return None;
    }
    let remaining = subscription
        .get("remaining_quota")
        .and_then(Usd::from_json)
        .unwrap_or(Usd::ZERO);
    let reset_today = subscription.get("reset_today").and_then(Value::as_bool) == Some(true);
    if reset_today {
        Some(remaining)
    } else {
        remaining.checked_add(total)
    }
}

// ---- OpenAI organization costs -------------------------------------------------------------

/// OpenAI's organization costs: the spend of the period, in dollars. The official API has no
/// balance, so this never says exhausted and never moves routing.
fn organization_costs(body: &Value) -> Reading {
    let Some(buckets) = body.get("data").and_then(Value::as_array) else {
        return failure(relay_message(
            body,
            "openai_organization_costs: no `data` list in the answer",
        ));
    };
    let results = buckets
        .iter()
        .filter_map(|bucket| bucket.get("results")?.as_array())
        .flatten();
    let mut dollars = results.filter_map(|result| {
        let amount = result.get("amount")?;
        let currency = amount.get("currency").and_then(Value::as_str);
        if currency.is_some_and(|c| !c.eq_ignore_ascii_case("usd")) {
            return None;
        }
        amount.get("value").and_then(Usd::from_json)
    });
    let Some(spent) = dollars.try_fold(Usd::ZERO, Usd::checked_add) else {
        return failure("openai_organization_costs: the costs overflow".into());
    };
    Reading {
        amounts: Amounts {
            monthly_spent: Some(spent),
            total_used: Some(spent),
            ..Amounts::default()
        },
        exhausted: None,
        display_only: true,
        ..Reading::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usd(text: &str) -> Usd {
        text.parse().unwrap()
    }

    fn plain(kind: Kind, body: &Value) -> Reading {
        read(kind, body, &Extract::default(), "")
    }

    fn sub2api_usage_block() -> Value {
        json!({
            "today": {"requests": 12, "input_tokens": 30000, "output_tokens": 4567,
                      "total_tokens": 34567, "cost": 1.25, "actual_cost": 1.25},
            "total": {"requests": 340, "tokens": 1234567, "cost": "12.50"},
            "average_duration_ms": 5321, "rpm": 2, "tpm": 4000
        })
    }

    #[test]
    fn sub2api_quota_limited_key() {
        let body = json!({
            "isValid": true, "mode": "quota_limited", "planName": "Codex Pro",
            "remaining": 7.5, "unit": "USD",
            "quota": {"limit": 20, "used": 12.5, "remaining": 7.5, "unit": "USD"},
            "usage": sub2api_usage_block()
        });
        let r = plain(Kind::Sub2apiUsage, &body);
        let a = &r.amounts;
        assert_eq!(r.error, None);
        assert_eq!(a.quota_period, Some(QuotaPeriod::Quota));
        assert_eq!(a.quota_remaining, Some(usd("7.5")));
        assert_eq!(a.quota_limit, Some(usd("20")));
        assert_eq!(a.quota_used, Some(usd("12.5")));
        assert_eq!(r.exhausted, Some(false));
        assert!(!r.display_only);
        assert_eq!(a.plan_name.as_deref(), Some("Codex Pro"));
        assert_eq!(a.today_used, Some(usd("1.25")));
        assert_eq!(a.total_used, Some(usd("12.5")));
        assert_eq!((a.today_requests, a.total_requests), (Some(12), Some(340)));
        assert_eq!(
            (a.today_tokens, a.total_tokens),
            (Some(34567), Some(1234567))
        );

        let mut spent = body.clone();
        spent["quota"]["remaining"] = json!("0");
        assert_eq!(plain(Kind::Sub2apiUsage, &spent).exhausted, Some(true));
        let mut flagged = body;
        flagged["quota_exhausted"] = json!(true);
        assert_eq!(plain(Kind::Sub2apiUsage, &flagged).exhausted, Some(true));
    }

    #[test]
    fn sub2api_subscription_windows_reset_from_their_start() {
        let body = json!({
            "isValid": true, "mode": "unrestricted",
            "subscription": {
                "daily_usage_usd": 1, "daily_limit_usd": 10,
                "weekly_usage_usd": 49, "weekly_limit_usd": 50,
                "daily_window_start": "2026-07-20T00:00:00Z",
                "weekly_window_start": "2026-07-20T00:00:00Z"
            }
        });
        let r = plain(Kind::Sub2apiUsage, &body);
        assert_eq!(r.amounts.quota_period, Some(QuotaPeriod::Weekly));
        assert_eq!(
            r.amounts.quota_resets_at_ms,
            Some(1_784_505_600_000 + 7 * 24 * 3_600_000)
        );
        let mut given = body.clone();
        given["subscription"]["weekly_window_resets_at"] = json!(1_784_600_000);
        let r = plain(Kind::Sub2apiUsage, &given);
        assert_eq!(r.amounts.quota_resets_at_ms, Some(1_784_600_000_000));
        let mut garbled = body;
        garbled["subscription"]["weekly_window_start"] = json!("last tuesday");
        assert_eq!(
            plain(Kind::Sub2apiUsage, &garbled)
                .amounts
                .quota_resets_at_ms,
            None
        );
    }

    #[test]
    fn sub2api_subscription_shows_the_tightest_window_for_display_only() {
        let body = json!({
            "isValid": true, "mode": "unrestricted", "planName": "Monthly 100",
            "remaining": 0.75, "unit": "USD",
            "subscription": {
                "daily_usage_usd": 9.25, "weekly_usage_usd": 20, "monthly_usage_usd": 20,
                "daily_limit_usd": 10, "weekly_limit_usd": 50, "monthly_limit_usd": 0,
                "expires_at": "2026-01-31T00:00:00Z"
            },
            "usage": sub2api_usage_block()
        });
        let r = plain(Kind::Sub2apiUsage, &body);
        assert_eq!(r.amounts.quota_period, Some(QuotaPeriod::Daily));
        assert_eq!(r.amounts.quota_remaining, Some(usd("0.75")));
        assert_eq!(r.amounts.quota_limit, Some(usd("10")));
        assert_eq!(r.amounts.quota_used, Some(usd("9.25")));
        assert_eq!(r.amounts.total_balance, None);
        assert_eq!(r.exhausted, Some(false));
        assert!(r.display_only);
        assert_eq!(r.amounts.total_requests, Some(340));

        let mut weekly_tighter = body.clone();
        weekly_tighter["subscription"]["weekly_usage_usd"] = json!(49.9);
        let r = plain(Kind::Sub2apiUsage, &weekly_tighter);
        assert_eq!(r.amounts.quota_period, Some(QuotaPeriod::Weekly));
        assert_eq!(r.amounts.quota_remaining, Some(usd("0.1")));

        let mut over = body;
        over["subscription"]["daily_usage_usd"] = json!(10.4);
        let r = plain(Kind::Sub2apiUsage, &over);
        assert_eq!(r.amounts.quota_remaining, Some(Usd::ZERO));
        assert_eq!(r.exhausted, Some(true));
        assert!(r.display_only, "a spent window never moves routing");
    }

    #[test]
    fn sub2api_wallet_and_invalid_key() {
        let wallet = json!({
            "isValid": true, "mode": "unrestricted", "planName": "钱包余额",
            "remaining": 42.5, "balance": 42.5, "unit": "USD",
            "data": {"usage": {"today": {"cost": 0.5, "requests": 3}}}
        });
        let r = plain(Kind::Sub2apiUsage, &wallet);
        assert_eq!(r.amounts.total_balance, Some(usd("42.5")));
        assert_eq!(r.amounts.quota_period, None);
        assert_eq!(r.exhausted, Some(false));
        assert!(!r.display_only);
        assert_eq!(r.amounts.plan_name.as_deref(), Some("钱包余额"));
        assert_eq!(r.amounts.today_used, Some(usd("0.5")), "read under data.");
        assert_eq!(r.amounts.today_requests, Some(3));

        let invalid = json!({"isValid": false, "message": "invalid api key"});
        let r = plain(Kind::Sub2apiUsage, &invalid);
        assert_eq!(r.error.as_deref(), Some("invalid api key"));
        assert_eq!(r.exhausted, None);
        let bare = plain(Kind::Sub2apiUsage, &json!({"isValid": false}));
        assert!(bare.error.is_some());
    }

    #[test]
    fn sub2api_auth_me_envelope_and_business_error() {
        let ok = json!({"code": 0, "message": "success", "data": {
            "id": 7, "email": "alice@example.com", "username": "alice", "role": "user",
            "balance": "12.34", "concurrency": 5, "status": "active"
        }});
        let r = plain(Kind::Sub2apiAuthMe, &ok);
        assert_eq!(r.error, None);
        assert_eq!(r.amounts.total_balance, Some(usd("12.34")));
        assert_eq!(r.exhausted, Some(false));

        let refused = json!({"code": 401, "message": "token expired"});
        let r = plain(Kind::Sub2apiAuthMe, &refused);
        assert_eq!(r.error.as_deref(), Some("token expired"));
        assert_eq!(r.amounts, Amounts::default());
    }

    #[test]
    fn a_huge_relay_message_is_cut_short() {
        let body = json!({"code": 500, "message": "x".repeat(1_000_000)});
        let error = plain(Kind::Sub2apiAuthMe, &body).error.unwrap();
        assert_eq!(error.chars().count(), MESSAGE_CHARS + 1);
        assert!(error.ends_with('…'));
    }

    #[test]
    fn new_api_token_usage_in_quota_units() {
        let body = json!({"code": true, "message": "ok", "data": {
            "object": "token_usage", "name": "codex-key", "total_granted": 1734567,
            "total_used": 500000, "total_available": 1234567, "unlimited_quota": false,
            "model_limits": {}, "model_limits_enabled": false, "expires_at": 0
        }});
        let r = plain(Kind::NewApiTokenUsage, &body);
        let a = &r.amounts;
        assert_eq!(r.error, None);
        assert_eq!(a.quota_period, Some(QuotaPeriod::Token));
        assert_eq!(a.quota_remaining, Some(usd("2.469134")));
        assert_eq!(a.quota_used, Some(usd("1")));
        assert_eq!(a.quota_limit, Some(usd("3.469134")));
        assert_eq!(a.plan_name.as_deref(), Some("codex-key"));
        assert_eq!(r.exhausted, Some(false));
        assert!(!a.unlimited_quota);

        let mut derived = body.clone();
        derived["data"]
            .as_object_mut()
            .unwrap()
            .remove("total_granted");
        derived["data"]["total_used"] = json!(250000);
        let r = plain(Kind::NewApiTokenUsage, &derived);
        assert_eq!(r.amounts.quota_limit, Some(usd("2.969134")));

        let mut empty = body;
        empty["data"]["total_available"] = json!(0);
        assert_eq!(plain(Kind::NewApiTokenUsage, &empty).exhausted, Some(true));
    }

    #[test]
    fn new_api_unlimited_and_errors() {
        let unlimited = json!({"code": true, "message": "ok", "data": {
            "name": "free", "total_granted": 0, "total_used": 100,
            "total_available": -100, "unlimited_quota": true
        }});
        let r = plain(Kind::NewApiTokenUsage, &unlimited);
        assert!(r.amounts.unlimited_quota);
        assert_eq!(r.exhausted, Some(false));
        assert_eq!(r.amounts.quota_remaining, None);
        assert_eq!(r.amounts.quota_limit, None);
        assert_eq!(r.amounts.plan_name.as_deref(), Some("free"));

        for refused in [
            json!({"success": false, "message": "无效的令牌"}),
            json!({"code": false, "message": "无效的令牌", "data": null}),
        ] {
            let r = plain(Kind::NewApiTokenUsage, &refused);
            assert_eq!(r.error.as_deref(), Some("无效的令牌"));
        }
    }

    #[test]
    fn new_api_user_self() {
        let body = json!({"success": true, "message": "", "data": {
            "id": 1, "username": "alice", "display_name": "Alice", "role": 1, "status": 1,
            "group": "default", "quota": 1234567, "used_quota": 250000, "request_count": 42
        }});
        let r = plain(Kind::NewApiUserSelf, &body);
        let a = &r.amounts;
        assert_eq!(a.quota_period, Some(QuotaPeriod::Quota));
        assert_eq!(a.quota_remaining, Some(usd("2.469134")));
        assert_eq!(a.quota_used, Some(usd("0.5")));
        assert_eq!(a.quota_limit, Some(usd("2.969134")), "derived");
        assert_eq!(a.total_requests, Some(42));
        assert_eq!(r.exhausted, Some(false));

        let mut with_total = body.clone();
        with_total["data"]["total_quota"] = json!(5000000);
        let r = plain(Kind::NewApiUserSelf, &with_total);
        assert_eq!(r.amounts.quota_limit, Some(usd("10")));

        let mut unlimited = body;
        unlimited["data"]["unlimited_quota"] = json!(true);
        let r = plain(Kind::NewApiUserSelf, &unlimited);
        assert!(r.amounts.unlimited_quota);
        assert_eq!(
            (r.exhausted, r.amounts.quota_remaining),
            (Some(false), None)
        );

        let refused =
            json!({"success": false, "message": "无权进行此操作，未登录且未提供 access token"});
        assert!(plain(Kind::NewApiUserSelf, &refused).error.is_some());
        // `code: false` is an error for the token endpoint only.
        let code = json!({"code": false, "success": true, "data": {"quota": 500000}});
        let r = plain(Kind::NewApiUserSelf, &code);
        assert_eq!((r.error, r.amounts.quota_remaining), (None, Some(usd("1"))));
    }

    #[test]
    fn deepseek_balance_infos() {
        let body = json!({"is_available": true, "balance_infos": [{
            "currency": "USD", "total_balance": "110.00",
            "granted_balance": "10.00", "topped_up_balance": "100.00"
        }]});
        let r = plain(Kind::OpenaiBalance, &body);
        assert_eq!(r.amounts.total_balance, Some(usd("110")));
        assert_eq!(r.exhausted, Some(false));

        let mut empty = body;
        empty["balance_infos"][0]["total_balance"] = json!("0.00");
        assert_eq!(plain(Kind::OpenaiBalance, &empty).exhausted, Some(true));
    }

    #[test]
    fn openrouter_credits_derive_the_remaining_balance() {
        let body = json!({"data": {"total_credits": 50, "total_usage": 12.5}});
        let r = plain(Kind::OpenaiBalance, &body);
        assert_eq!(r.amounts.monthly_budget, Some(usd("50")));
        assert_eq!(r.amounts.monthly_spent, Some(usd("12.5")));
        assert_eq!((r.amounts.total_balance, r.exhausted), (None, None));

        let extract = Extract {
            monthly_budget_paths: vec!["data.total_credits".into()],
            monthly_spent_paths: vec!["data.total_usage".into()],
            derive_remaining_from_budget_and_spent: true,
            ..Extract::default()
        };
        let r = read(Kind::OpenaiBalance, &body, &extract, "/api/v1");
        assert_eq!(r.amounts.total_balance, Some(usd("37.5")));
        assert_eq!(r.exhausted, Some(false));
    }

    #[test]
    fn generic_wallet_in_minor_units_and_custom_paths_first() {
        let novita = json!({"availableBalance": "251200", "cashBalance": "251200",
                            "creditLimit": "0", "pendingCharges": "0"});
        let extract: Extract = serde_json::from_value(json!({
            "remaining_divisor": 10000, "derive_budget_from_remaining_and_spent": false
        }))
        .unwrap();
        let r = read(Kind::OpenaiBalance, &novita, &extract, "");
        assert_eq!(r.amounts.total_balance, Some(usd("25.12")));

        let custom = Extract {
            remaining_balance_paths: vec!["wallet.cents".into()],
            remaining_divisor: Some(usd("100")),
            ..Extract::default()
        };
        let body = json!({"balance": 999, "wallet": {"cents": 1234}});
        let r = read(Kind::OpenaiBalance, &body, &custom, "");
        assert_eq!(r.amounts.total_balance, Some(usd("12.34")));
    }

    #[test]
    fn generic_parts_totals_flags_and_derived_budget() {
        let parts =
            json!({"data": {"subscription_balance": "3.5", "pay_as_you_go_balance": "1.25"}});
        let r = plain(Kind::OpenaiBalance, &parts);
        assert_eq!(r.amounts.subscription_balance, Some(usd("3.5")));
        assert_eq!(r.amounts.paygo_balance, Some(usd("1.25")));
        assert_eq!(r.amounts.total_balance, Some(usd("4.75")));

        let siliconflow = json!({"code": 20000, "status": true, "data": {
            "balance": "0.88", "chargeBalance": "88.00", "totalBalance": "88.88"
        }});
        let r = plain(Kind::OpenaiBalance, &siliconflow);
        assert_eq!(r.amounts.total_balance, Some(usd("88.88")));

        let flagged = json!({"balance": 5, "quota_exhausted": true});
        assert_eq!(plain(Kind::OpenaiBalance, &flagged).exhausted, Some(true));

        let derive = Extract {
            derive_budget_from_remaining_and_spent: true,
            ..Extract::default()
        };
        let body = json!({"remaining": "10", "used": "5"});
        let r = read(Kind::OpenaiBalance, &body, &derive, "");
        assert_eq!(r.amounts.monthly_budget, Some(usd("15")));
        assert_eq!(
            plain(Kind::OpenaiBalance, &body).amounts.monthly_budget,
            None
        );

        let nothing = plain(Kind::OpenaiBalance, &json!({"object": "list"}));
        assert_eq!((nothing.exhausted, nothing.error), (None, None));
        assert!(!nothing.amounts.any());
    }

    #[test]
    fn budget_is_exhausted_once_spent_reaches_it() {
        let body = json!({"username": "alice", "monthly_budget_usd": "100.00",
                          "monthly_spent_usd": "100.00", "daily_budget_usd": "10"});
        let r = plain(Kind::Budget, &body);
        assert_eq!(r.amounts.monthly_budget, Some(usd("100")));
        assert_eq!(r.amounts.monthly_spent, Some(usd("100")));
        assert_eq!(r.exhausted, Some(true));

        let under = json!({"data": {"monthly_budget_usd": 100, "monthly_spent_usd": 40.25}});
        let r = plain(Kind::Budget, &under);
        assert_eq!(r.amounts.monthly_spent, Some(usd("40.25")));
        assert_eq!(r.exhausted, Some(false));

        let missing = plain(Kind::Budget, &json!({"monthly_spent_usd": 40}));
        assert_eq!(
            (missing.amounts.monthly_budget, missing.exhausted),
            (None, None)
        );
        let none = plain(Kind::Budget, &json!({"username": "alice"}));
        assert_eq!(none.amounts, Amounts::default());
        let zero = json!({"monthly_budget_usd": 0, "monthly_spent_usd": 3});
        assert_eq!(plain(Kind::Budget, &zero).exhausted, None);
    }

    #[test]
    fn yescode_sums_subscription_and_pay_as_you_go() {
        let body = json!({
            "id": 12, "username": "alice", "email": "alice@example.com",
            "balance_preference": "subscription_first", "balance": 20,
            "subscription_balance": 20, "pay_as_you_go_balance": 5.5,
            "subscription_plan": {"id": 3, "name": "Pro", "daily_balance": 20,
                                  "weekly_limit": 100, "price": 30, "plan_type": "recurring"},
            "current_week_spend": 12.3, "current_month_spend": 40.1
        });
        let r = plain(Kind::YescodeProfile, &body);
        assert_eq!(r.amounts.total_balance, Some(usd("25.5")));
        assert_eq!(r.amounts.plan_name.as_deref(), Some("Pro"));
        assert_eq!(r.exhausted, Some(false));

        let mut empty = body;
        empty["subscription_balance"] = json!(0);
        empty["pay_as_you_go_balance"] = json!("0.00");
        let r = plain(Kind::YescodeProfile, &empty);
        assert_eq!(
            (r.amounts.total_balance, r.exhausted),
            (Some(Usd::ZERO), Some(true))
        );
    }

    fn rightcode_subscription(
        name: &str,
        total: i64,
        left: &str,
        reset: bool,
        prefix: &str,
    ) -> Value {
        json!({"name": name, "total_quota": total, "remaining_quota": left,
               "reset_today": reset, "available_prefixes": [prefix],
               "expired_at": "2026-02-01T00:00:00Z"})
    }

    #[test]
    fn rightcode_counts_subscriptions_for_the_upstream_path() {
        let body = json!({"balance": 3, "subscriptions": [
            rightcode_subscription("Codex Daily", 50, "12.5", true, "/codex"),
            rightcode_subscription("Claude Max", 100, "80", false, "/claude"),
            rightcode_subscription("Trial", 5, "5", false, "/codex"),
        ]});
        let r = read(
            Kind::RightcodeAccountSummary,
            &body,
            &Extract::default(),
            "/codex/v1",
        );
        assert_eq!(r.error, None);
        assert_eq!(r.amounts.total_balance, Some(usd("3")));
        assert_eq!(r.amounts.quota_period, Some(QuotaPeriod::Daily));
        assert_eq!(r.amounts.quota_remaining, Some(usd("12.5")));
        assert_eq!(r.amounts.plan_name.as_deref(), Some("Codex Daily"));
        assert_eq!(r.exhausted, Some(false));

        let r = read(
            Kind::RightcodeAccountSummary,
            &body,
            &Extract::default(),
            "/claude",
        );
        assert_eq!(
            r.amounts.quota_remaining,
            Some(usd("180")),
            "reset not used yet"
        );

        let both = json!({"subscriptions": [
            rightcode_subscription("A", 50, "10", true, "/codex"),
            rightcode_subscription("B", 20, "0", false, "/codex/"),
        ]});
        let r = read(
            Kind::RightcodeAccountSummary,
            &both,
            &Extract::default(),
            "/codex",
        );
        assert_eq!(r.amounts.quota_remaining, Some(usd("30")));
        assert_eq!(r.amounts.plan_name.as_deref(), Some("A, B"));
        let other = read(
            Kind::RightcodeAccountSummary,
            &both,
            &Extract::default(),
            "/codexx",
        );
        assert!(other.error.is_some(), "a prefix matches whole segments");
    }

    #[test]
    fn rightcode_exhaustion_and_nothing_to_read() {
        let spent =
            json!({"subscriptions": [rightcode_subscription("Codex", 50, "0", true, "/codex")]});
        let r = read(
            Kind::RightcodeAccountSummary,
            &spent,
            &Extract::default(),
            "/codex",
        );
        assert_eq!(r.amounts.quota_remaining, Some(Usd::ZERO));
        assert_eq!(r.exhausted, Some(true));

        let mut with_wallet = spent.clone();
        with_wallet["balance"] = json!("4.2");
        let r = read(
            Kind::RightcodeAccountSummary,
            &with_wallet,
            &Extract::default(),
            "/codex",
        );
        assert_eq!(r.exhausted, Some(false));
        with_wallet["balance"] = json!(0);
        let r = read(
            Kind::RightcodeAccountSummary,
            &with_wallet,
            &Extract::default(),
            "/codex",
        );
        assert_eq!(r.exhausted, Some(true));

        let r = read(
            Kind::RightcodeAccountSummary,
            &spent,
            &Extract::default(),
            "/gemini",
        );
        assert!(r.error.unwrap().contains("/gemini"));
        assert_eq!(r.exhausted, None);
    }

    #[test]
    fn openai_costs_are_summed_and_never_exhaust() {
        let body = json!({"object": "page", "has_more": false, "next_page": null, "data": [
            {"object": "bucket", "start_time": 1730419200, "end_time": 1730505600, "results": [
                {"object": "organization.costs.result",
                 "amount": {"value": 0.06, "currency": "usd"}, "line_item": null, "project_id": null},
                {"object": "organization.costs.result", "amount": {"value": "1.5"}}
            ]},
            {"object": "bucket", "start_time": 1730505600, "end_time": 1730592000, "results": [
                {"object": "organization.costs.result", "amount": {"value": 2.44, "currency": "USD"}},
                {"object": "organization.costs.result", "amount": {"value": 100, "currency": "eur"}}
            ]},
            {"object": "bucket", "start_time": 1730592000, "end_time": 1730678400, "results": []}
        ]});
        let r = plain(Kind::OpenaiOrganizationCosts, &body);
        assert_eq!(r.amounts.monthly_spent, Some(usd("4")));
        assert_eq!(r.amounts.total_used, Some(usd("4")));
        assert_eq!(r.exhausted, None);
        assert!(r.display_only);

        let no_data = plain(Kind::OpenaiOrganizationCosts, &json!({"object": "page"}));
        assert!(no_data.error.is_some());
    }

    #[test]
    fn json_path_walks_objects_and_array_indices() {
        let body = json!({"a": {"list": [{"x": 1}, {"x": "two"}]}, "n": 3});
        assert_eq!(json_path(&body, "a.list.1.x"), Some(&json!("two")));
        assert_eq!(json_path(&body, "a.list.0"), Some(&json!({"x": 1})));
        assert_eq!(json_path(&body, "a.list.2.x"), None);
        assert_eq!(json_path(&body, "a.list.first"), None);
        assert_eq!(json_path(&body, "n.0"), None);
        assert_eq!(json_path(&body, "missing"), None);
    }

    #[test]
    fn an_answer_that_is_not_an_object_is_an_error_naming_the_kind() {
        for body in [
            json!(["balance", 3]),
            json!("<html>502 Bad Gateway</html>"),
            Value::Null,
        ] {
            for kind in Kind::ALL {
                let r = plain(kind, &body);
                let error = r.error.unwrap_or_default();
                assert!(error.contains(kind.as_str()), "{kind}: {error}");
                assert_eq!(r.exhausted, None);
            }
        }
    }

    #[test]
    fn kind_names_aliases_endpoints_and_auth() {
        for kind in Kind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
            let back: Kind = serde_json::from_value(json!(kind.as_str())).unwrap();
            assert_eq!(back, kind);
        }
        for (alias, kind) in [
            ("sub2api_usage_http_json", Kind::Sub2apiUsage),
            ("relay_balance_http_json", Kind::OpenaiBalance),
            ("open_ai_balance_http_json", Kind::OpenaiBalance),
            ("right_code_account_summary", Kind::RightcodeAccountSummary),
            ("rightcode", Kind::RightcodeAccountSummary),
            ("openai_org_costs", Kind::OpenaiOrganizationCosts),
            ("openai_costs", Kind::OpenaiOrganizationCosts),
        ] {
            assert_eq!(serde_json::from_value::<Kind>(json!(alias)).unwrap(), kind);
        }
        assert!(serde_json::from_value::<Kind>(json!("balance")).is_err());
        assert_eq!(
            Kind::NewApiTokenUsage.default_endpoint(),
            Some("{{base_url}}/api/usage/token/")
        );
        assert_eq!(Kind::Budget.default_endpoint(), None);
        assert_eq!(Kind::YescodeProfile.default_endpoint(), None);
        assert_eq!(Kind::YescodeProfile.auth_header(), ("X-API-Key", ""));
        assert_eq!(
            Kind::Sub2apiUsage.auth_header(),
            ("Authorization", "Bearer ")
        );
    }

    #[test]
    fn extract_refuses_unknown_fields_and_reads_divisors() {
        let extract: Extract = serde_json::from_value(json!({
            "remaining_divisor": "10000", "monthly_budget_divisor": null,
            "exhausted_paths": ["data.out"]
        }))
        .unwrap();
        assert_eq!(extract.remaining_divisor, Some(usd("10000")));
        assert_eq!(extract.monthly_budget_divisor, None);
        assert_eq!(extract.exhausted_paths, ["data.out"]);
        let typo = serde_json::from_value::<Extract>(json!({"remaining_path": ["x"]}));
        assert!(typo.is_err());
        let body = json!({"balance": 0, "data": {"out": false}});
        let r = read(Kind::OpenaiBalance, &body, &extract, "");
        assert_eq!(r.exhausted, Some(false), "the adapter's own flag wins");
    }
}
