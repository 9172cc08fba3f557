//! What loading does with the original's v5 spellings after parsing: `auth` tables folded
//! into their providers, and the `[retry]` keys without a counterpart named (with the
//! deferred keys). Kept apart from the types (`v5_auth`, `v5_retry`) so those stay leaves.

use super::model::{HelperConfig, RetryConfig};

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

/// The `[retry]` keys that are read but change nothing here, by dotted path: the provider
/// layer's tries and backoff, both `strategy` keys and the cross-station switch (the
/// original ignored them too for route graphs: every candidate is tried until one answers),
/// and later releases' `reasoning_guard`.
pub fn inert_keys(retry: &RetryConfig) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(provider) = &retry.provider {
        let set = [
            ("max_attempts", provider.max_attempts.is_some()),
            ("backoff_ms", provider.backoff_ms.is_some()),
            ("backoff_max_ms", provider.backoff_max_ms.is_some()),
            ("jitter_ms", provider.jitter_ms.is_some()),
            ("strategy", provider.strategy.is_some()),
        ];
        keys.extend(
            set.iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| format!("retry.provider.{k}")),
        );
    }
    if retry
        .upstream
        .as_ref()
        .is_some_and(|u| u.strategy.is_some())
    {
        keys.push("retry.upstream.strategy".into());
    }
    if retry.allow_cross_station_before_first_output.is_some() {
        keys.push("retry.allow_cross_station_before_first_output".into());
    }
    if retry.reasoning_guard.is_some() {
        keys.push("retry.reasoning_guard".into());
    }
    keys
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
