//! Placeholder for the adapter kinds and the `extract` object: only the names
//! `providers.rs` needs. The real parser (being written on its own branch) replaces this
//! file whole at the merge.

use serde::{Deserialize, Serialize};

use super::amount::Usd;

/// How a relay's balance answer is read (the `kind` of a usage provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[serde(alias = "sub2api_usage_http_json")]
    Sub2apiUsage,
    Sub2apiAuthMe,
    NewApiTokenUsage,
    NewApiUserSelf,
    #[serde(alias = "relay_balance_http_json", alias = "open_ai_balance_http_json")]
    OpenaiBalanceHttpJson,
    BudgetHttpJson,
    YescodeProfile,
    #[serde(alias = "right_code_account_summary", alias = "rightcode")]
    RightcodeAccountSummary,
    #[serde(alias = "openai_org_costs", alias = "openai_costs")]
    OpenaiOrganizationCosts,
}

/// Where in a relay's JSON answer the amounts are, beyond the kind's own paths.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Extract {
    pub remaining_balance_paths: Vec<String>,
    pub subscription_balance_paths: Vec<String>,
    pub paygo_balance_paths: Vec<String>,
    pub monthly_budget_paths: Vec<String>,
    pub monthly_spent_paths: Vec<String>,
    pub exhausted_paths: Vec<String>,
    pub remaining_divisor: Option<Usd>,
    pub monthly_budget_divisor: Option<Usd>,
    pub monthly_spent_divisor: Option<Usd>,
    pub derive_budget_from_remaining_and_spent: bool,
    pub derive_remaining_from_budget_and_spent: bool,
}
