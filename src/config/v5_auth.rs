//! The original's `[codex.providers.<id>.auth]` table: a provider's credential keys in a
//! table of their own. The provider's own `auth_token`, … keys win over the table's (as in
//! the original); after loading, the table's keys are folded into the provider's.

use serde::Deserialize;

/// `[codex.providers.<id>.auth]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderAuth {
    pub auth_token: Option<String>,
    pub auth_token_env: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
}
