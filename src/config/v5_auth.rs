//! The original's `[codex.providers.<id>.auth]` table: a provider's credential keys in a
//! table of their own. The provider's own `auth_token`, … keys win over the table's (as in
//! the original); after loading, the table's keys are folded into the provider's.

use serde::Deserialize;

use super::model::HelperConfig;

/// `[codex.providers.<id>.auth]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderAuth {
    pub auth_token: Option<String>,
    pub auth_token_env: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
}

/// Moves every provider's `auth` table into its own keys, where those are not set.
pub fn fold_auth_tables(config: &mut HelperConfig) {
    for provider in config.codex.providers.values_mut() {
        let Some(auth) = provider.auth.take() else {
            continue;
        };
        let fill = |slot: &mut Option<String>, from: Option<String>| {
            if slot.is_none() {
                *slot = from;
            }
        };
        fill(&mut provider.auth_token, auth.auth_token);
        fill(&mut provider.auth_token_env, auth.auth_token_env);
        fill(&mut provider.api_key, auth.api_key);
        fill(&mut provider.api_key_env, auth.api_key_env);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn inline_keys_win_over_the_auth_table() {
        let loaded = crate::config::load::parse(
            Path::new("/c.toml"),
            "version = 5\n[codex.providers.a]\nbase_url = \"https://a\"\nauth_token_env = \"MINE\"\n\
             [codex.providers.a.auth]\nauth_token_env = \"THEIRS\"\napi_key_env = \"KEY\"\n",
        )
        .unwrap();
        let a = &loaded.config.codex.providers["a"];
        assert_eq!(a.auth_token_env.as_deref(), Some("MINE"));
        assert_eq!(a.api_key_env.as_deref(), Some("KEY"));
        assert!(a.auth.is_none());
    }
}
