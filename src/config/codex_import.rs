//! `config import-from-codex` / `overwrite-from-codex`: relays from Codex's own
//! `[model_providers.*]`, with their keys.
//!
//! Pure: Codex's config and `auth.json` texts in, providers out. A provider's key is named by
//! its `env_key` (written as `auth_token_env`); only when that variable is not set here and
//! `auth.json` holds a value of the same name (the original read keys from there too) is the
//! value itself written, which the caller must say. A provider without `env_key` that does
//! not use the ChatGPT login gets `auth.json`'s `OPENAI_API_KEY`, the key Codex sends it.
//! Providers that are codex-helper itself are left out, with the reason.

use serde_json::Value;

use super::bootstrap::points_at_self;
use super::provider_spec::provider_id_from;

/// A provider found in Codex's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexProvider {
    /// The id for `[codex.providers.<id>]` (Codex's, with unusual characters as `-`).
    pub id: String,
    /// Codex's `name`, when it differs from the id.
    pub alias: Option<String>,
    pub base_url: String,
    pub auth_token_env: Option<String>,
    /// A key copied from `auth.json` (see the module doc).
    pub auth_token: Option<String>,
}

/// What was found: providers to import, and the ones left out with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodexImport {
    pub providers: Vec<CodexProvider>,
    pub skipped: Vec<String>,
}

/// Reads `[model_providers.*]` from Codex's `config.toml` text. `env` tells whether a
/// variable is set here; `own_port` is the helper's port (a provider pointing there is the
/// helper itself).
pub fn read_codex_providers(
    codex_config: &str,
    auth_json: Option<&str>,
    own_port: u16,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<CodexImport> {
    let doc: toml::Table = toml::from_str(codex_config)
        .map_err(|e| anyhow::anyhow!("Codex's config.toml is not valid TOML: {e}"))?;
    let auth: Option<serde_json::Map<String, Value>> = auth_json
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| v.as_object().cloned());
    let auth_value = |name: &str| {
        auth.as_ref()
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let mut out = CodexImport::default();
    let Some(providers) = doc.get("model_providers").and_then(toml::Value::as_table) else {
        return Ok(out);
    };
    for (name, provider) in providers {
        let Some(provider) = provider.as_table() else {
            out.skipped.push(format!("`{name}`: not a table"));
            continue;
        };
        if name == crate::codex::patch::PROVIDER_ID {
            out.skipped
                .push(format!("`{name}`: it is codex-helper's own entry"));
            continue;
        }
        let Some(base_url) = provider.get("base_url").and_then(toml::Value::as_str) else {
            out.skipped.push(format!("`{name}`: no base_url"));
            continue;
        };
        if points_at_self(base_url, own_port) {
            out.skipped.push(format!(
                "`{name}`: {base_url} is codex-helper itself (port {own_port})"
            ));
            continue;
        }
        let env_key = provider
            .get("env_key")
            .and_then(toml::Value::as_str)
            .map(str::to_string);
        let chatgpt_login = provider
            .get("requires_openai_auth")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        let auth_token = match &env_key {
            Some(var) if env(var).is_none() => auth_value(var),
            Some(_) => None,
            None if !chatgpt_login => auth_value("OPENAI_API_KEY"),
            None => None,
        };
        let id = provider_id_from(name);
        let alias = provider
            .get("name")
            .and_then(toml::Value::as_str)
            .filter(|n| *n != id)
            .map(str::to_string);
        out.providers.push(CodexProvider {
            id,
            alias,
            base_url: base_url.to_string(),
            auth_token_env: env_key,
            auth_token,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODEX: &str = r#"
model_provider = "codex_proxy"
[model_providers.codex_proxy]
base_url = "http://127.0.0.1:3211/v1"
[model_providers."my relay"]
name = "My Relay"
base_url = "https://relay.example/v1"
env_key = "RELAY_KEY"
[model_providers.plain]
base_url = "https://plain.example/v1"
[model_providers.chatgpt]
base_url = "https://chat.example/v1"
requires_openai_auth = true
[model_providers.set]
base_url = "https://set.example/v1"
env_key = "SET_KEY"
"#;

    #[test]
    fn providers_come_with_their_keys() {
        let auth =
            r#"{"OPENAI_API_KEY": "sk-openai", "RELAY_KEY": "sk-relay", "SET_KEY": "sk-unused"}"#;
        let env = |name: &str| (name == "SET_KEY").then(|| "x".to_string());
        let found = read_codex_providers(CODEX, Some(auth), 3211, &env).unwrap();
        let by_id = |id: &str| found.providers.iter().find(|p| p.id == id).unwrap();
        let relay = by_id("my-relay");
        assert_eq!(relay.alias.as_deref(), Some("My Relay"));
        assert_eq!(relay.auth_token_env.as_deref(), Some("RELAY_KEY"));
        assert_eq!(
            relay.auth_token.as_deref(),
            Some("sk-relay"),
            "unset here: from auth.json"
        );
        assert_eq!(by_id("plain").auth_token.as_deref(), Some("sk-openai"));
        assert_eq!(
            by_id("chatgpt").auth_token,
            None,
            "the ChatGPT login passes through"
        );
        assert_eq!(
            by_id("set").auth_token,
            None,
            "the variable is set: not copied"
        );
        assert_eq!(found.providers.len(), 4);
        assert!(
            found.skipped[0].contains("codex-helper's own"),
            "{:?}",
            found.skipped
        );
    }

    #[test]
    fn no_providers_is_an_empty_import() {
        let found = read_codex_providers("model = \"gpt-5\"\n", None, 3211, &|_| None).unwrap();
        assert_eq!(found, CodexImport::default());
        assert!(read_codex_providers("not toml =", None, 3211, &|_| None).is_err());
    }
}
