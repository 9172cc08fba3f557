//! First run: create the helper config from the user's current Codex setup.
//!
//! Codex's active `model_provider` (its `base_url` and `env_key`) becomes the first relay, so
//! `codex-helper serve` works straight away. Codex's files are only read here.

use std::path::Path;

use toml_edit::{DocumentMut, Item, Table, value};

use super::model::CURRENT_VERSION;

/// What first-run set-up found in Codex's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// A relay taken from Codex's active provider.
    Provider {
        id: String,
        base_url: String,
        env_key: Option<String>,
    },
    /// Nothing usable, and why.
    Nothing { reason: String },
}

/// Builds the text of a new helper config from Codex's `config.toml` text (`None` when Codex
/// has no config). `own_port` is the proxy's port, so a Codex already pointed at the helper
/// is not imported as a relay of itself.
pub fn initial_config(codex_config: Option<&str>, own_port: u16) -> (String, Imported) {
    let imported = match codex_config {
        None => Imported::Nothing {
            reason: "Codex has no config.toml yet".into(),
        },
        Some(text) => import_active_provider(text, own_port),
    };
    let mut doc = DocumentMut::new();
    doc.insert("version", value(i64::from(CURRENT_VERSION)));
    let header = match &imported {
        Imported::Provider { .. } => {
            "# codex-helper config. Created on first run from Codex's active model provider.\n"
        }
        Imported::Nothing { .. } => {
            "# codex-helper config. Created on first run; no relay could be imported from Codex.\n"
        }
    };
    doc.decor_mut().set_prefix(format!(
        "{header}# Add relays with `codex-helper provider add ID --base-url URL --auth-token-env VAR`\n\
         # or by adding tables such as:\n\
         #   [codex.providers.my-relay]\n\
         #   base_url = \"https://relay.example/v1\"\n\
         #   auth_token_env = \"MY_RELAY_KEY\"\n\n"
    ));
    if let Imported::Provider {
        id,
        base_url,
        env_key,
    } = &imported
    {
        let mut provider = Table::new();
        provider.insert("base_url", value(base_url.as_str()));
        if let Some(env_key) = env_key {
            provider.insert("auth_token_env", value(env_key.as_str()));
        }
        let mut providers = Table::new();
        providers.set_implicit(true);
        providers.insert(id, Item::Table(provider));
        let mut codex = Table::new();
        codex.set_implicit(true);
        codex.insert("providers", Item::Table(providers));
        doc.insert("codex", Item::Table(codex));
    }
    (doc.to_string(), imported)
}

fn import_active_provider(text: &str, own_port: u16) -> Imported {
    let doc: toml::Table = match toml::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            return Imported::Nothing {
                reason: format!("Codex's config.toml could not be read: {e}"),
            };
        }
    };
    let Some(active) = doc.get("model_provider").and_then(|v| v.as_str()) else {
        return Imported::Nothing {
            reason: "Codex uses its built-in OpenAI provider (no `model_provider` is set)".into(),
        };
    };
    let provider = doc
        .get("model_providers")
        .and_then(|p| p.get(active))
        .and_then(|p| p.as_table());
    let Some(provider) = provider else {
        return Imported::Nothing {
            reason: format!(
                "Codex's `model_provider = \"{active}\"` has no [model_providers.{active}] table"
            ),
        };
    };
    let Some(base_url) = provider.get("base_url").and_then(|v| v.as_str()) else {
        return Imported::Nothing {
            reason: format!("[model_providers.{active}] has no base_url"),
        };
    };
    if points_at_self(base_url, own_port) {
        return Imported::Nothing {
            reason: format!(
                "Codex's provider `{active}` ({base_url}) was not imported: it is codex-helper \
                 itself (port {own_port}), and as a relay every request would loop back to it"
            ),
        };
    }
    let env_key = provider
        .get("env_key")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let id = super::provider_spec::provider_id_from(active);
    Imported::Provider {
        id,
        base_url: base_url.to_string(),
        env_key,
    }
}

/// Whether `base_url` is the helper's own loopback listener on `own_port` (see
/// [`crate::net::reaches_listener`]; `[::1]` counts too, a Codex may name it).
pub(crate) fn points_at_self(base_url: &str, own_port: u16) -> bool {
    let Ok(url) = reqwest::Url::parse(base_url.trim()) else {
        return false;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    [
        std::net::SocketAddr::from(([127, 0, 0, 1], own_port)),
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, own_port)),
    ]
    .into_iter()
    .any(|listen| crate::net::reaches_listener(host, port, listen))
}

/// Writes a new config at `path` (atomically) unless one exists. Returns what was imported,
/// or `None` when a config was already there.
///
/// `codex_config` gives Codex's config as the user made it (without a switch to the helper,
/// whose relay would be the helper itself); it is only read when a config is created.
pub fn ensure_config(
    path: &Path,
    codex_config: impl FnOnce() -> anyhow::Result<Option<String>>,
    own_port: u16,
) -> anyhow::Result<Option<Imported>> {
    if path.exists() {
        return Ok(None);
    }
    let codex_text = codex_config()?;
    let (text, imported) = initial_config(codex_text.as_deref(), own_port);
    // The config may soon hold a relay's secret: private from the start.
    crate::files::write_atomic(path, text.as_bytes(), crate::files::PRIVATE)?;
    Ok(Some(imported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::parse;

    #[test]
    fn imports_the_active_custom_provider() {
        let codex = r#"
model = "gpt-5.1"
model_provider = "my relay"
[model_providers."my relay"]
name = "Relay"
base_url = "https://relay.example/v1"
env_key = "RELAY_KEY"
wire_api = "responses"
[model_providers.other]
base_url = "https://other.example"
"#;
        let (text, imported) = initial_config(Some(codex), 3211);
        assert_eq!(
            imported,
            Imported::Provider {
                id: "my-relay".into(),
                base_url: "https://relay.example/v1".into(),
                env_key: Some("RELAY_KEY".into())
            }
        );
        let loaded = parse(Path::new("c.toml"), &text).unwrap();
        let provider = &loaded.config.codex.providers["my-relay"];
        assert_eq!(
            provider.base_url.as_deref(),
            Some("https://relay.example/v1")
        );
        assert_eq!(provider.auth_token_env.as_deref(), Some("RELAY_KEY"));
        assert!(text.contains("# Add relays with `codex-helper provider add"));
    }

    #[test]
    fn nothing_to_import_still_gives_a_valid_config() {
        for codex in [
            None,
            Some("model = \"gpt-5\"\n"),
            Some("model_provider = \"x\"\n"),
            Some("not toml ="),
        ] {
            let (text, imported) = initial_config(codex, 3211);
            assert!(matches!(imported, Imported::Nothing { .. }), "{codex:?}");
            let loaded = parse(Path::new("c.toml"), &text).unwrap();
            assert!(loaded.config.codex.providers.is_empty());
        }
    }

    #[test]
    fn a_codex_already_pointed_at_the_helper_is_not_imported() {
        for base_url in [
            "http://127.0.0.1:3211/v1",
            "http://localhost:3211",
            "http://[::1]:3211/v1",
            "http://0.0.0.0:3211",
        ] {
            let codex = format!(
                "model_provider = \"mine\"\n[model_providers.mine]\nbase_url = \"{base_url}\"\n"
            );
            let (text, imported) = initial_config(Some(&codex), 3211);
            assert!(
                matches!(imported, Imported::Nothing { ref reason }
                    if reason.contains("provider `mine`") && reason.contains("loop")),
                "{base_url}: {imported:?}"
            );
            assert!(!text.contains(base_url));
        }
        let codex = "model_provider = \"r\"\n[model_providers.r]\nbase_url = \"http://127.0.0.1:3212/v1\"\n";
        assert!(matches!(
            initial_config(Some(codex), 3211).1,
            Imported::Provider { .. }
        ));
    }
}
