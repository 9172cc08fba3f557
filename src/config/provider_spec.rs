//! A whole provider as `provider add` and the Codex import write it: alias, switch,
//! credential (a variable's name, or the secret itself), one `base_url` or several endpoints
//! with priorities, tags and models.
//!
//! Adding goes through [`ConfigEditor::add_provider`] (so a route graph's entry node gains
//! the new provider as before); replacing rewrites the provider's table where it stands,
//! keeping the comment above it and every route that names it.

use std::collections::BTreeMap;

use anyhow::bail;
use toml_edit::{InlineTable, Item, Table, Value, value};

use super::edit::{ConfigEditor, NewProvider};

/// A provider id from a name found elsewhere (Codex's provider, a station): letters,
/// digits, `-` and `_`, anything else as `-` (no dots: they separate `provider.endpoint`).
pub fn provider_id_from(name: &str) -> String {
    let id: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.is_empty() { "relay".into() } else { id }
}

/// One endpoint of a provider with several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub name: String,
    pub base_url: String,
    /// Lower is tried first.
    pub priority: i64,
}

impl EndpointSpec {
    /// Parses `NAME=URL` or `NAME=URL@PRIORITY`; without a priority, `position` (the order
    /// on the command line) is used.
    pub fn parse(text: &str, position: usize) -> Result<Self, String> {
        let Some((name, rest)) = text.split_once('=') else {
            return Err(format!(
                "expected NAME=URL or NAME=URL@PRIORITY, got `{text}`"
            ));
        };
        let name = name.trim();
        if name.is_empty() || name.contains('.') || name.contains(char::is_whitespace) {
            return Err(format!(
                "endpoint name `{name}` must be non-empty, without dots or spaces"
            ));
        }
        // `@` can appear in a URL's user part: only a trailing `@<digits>` is a priority.
        let (url, priority) = match rest.rsplit_once('@') {
            Some((url, p))
                if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '-') =>
            {
                let priority = p
                    .parse::<i64>()
                    .map_err(|_| format!("priority `{p}` of endpoint `{name}` is not a number"))?;
                (url, priority)
            }
            _ => (rest, position as i64),
        };
        if url.trim().is_empty() {
            return Err(format!("endpoint `{name}` has no URL"));
        }
        Ok(Self {
            name: name.to_string(),
            base_url: url.trim().to_string(),
            priority,
        })
    }
}

/// A provider to write.
#[derive(Debug, Clone, Default)]
pub struct ProviderSpec {
    pub id: String,
    pub alias: Option<String>,
    pub enabled: bool,
    /// The single address; or none when `endpoints` are given.
    pub base_url: Option<String>,
    pub endpoints: Vec<EndpointSpec>,
    pub auth_token: Option<String>,
    pub auth_token_env: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model_mapping: BTreeMap<String, String>,
    pub supported_models: Vec<String>,
}

impl ProviderSpec {
    /// Whether a secret itself (not a variable's name) would be written to the file.
    pub fn has_inline_secret(&self) -> bool {
        self.auth_token.is_some() || self.api_key.is_some()
    }

    /// The provider's table, keys in the order a person would write them.
    pub fn to_table(&self) -> anyhow::Result<Table> {
        if self.base_url.is_some() != self.endpoints.is_empty() {
            bail!("give either one base URL or endpoints (NAME=URL), not both and not neither");
        }
        let mut table = Table::new();
        if let Some(alias) = &self.alias {
            table.insert("alias", value(alias.as_str()));
        }
        if !self.enabled {
            table.insert("enabled", value(false));
        }
        if let Some(url) = &self.base_url {
            table.insert("base_url", value(url.as_str()));
        }
        let secrets = [
            ("auth_token", &self.auth_token),
            ("auth_token_env", &self.auth_token_env),
            ("api_key", &self.api_key),
            ("api_key_env", &self.api_key_env),
        ];
        for (key, v) in secrets {
            if let Some(v) = v {
                table.insert(key, value(v.as_str()));
            }
        }
        if !self.tags.is_empty() {
            table.insert("tags", value(inline(&self.tags)));
        }
        if !self.supported_models.is_empty() {
            let mut models = InlineTable::new();
            for m in &self.supported_models {
                models.insert(m, Value::from(true));
            }
            table.insert("supported_models", value(models));
        }
        if !self.model_mapping.is_empty() {
            table.insert("model_mapping", value(inline(&self.model_mapping)));
        }
        if !self.endpoints.is_empty() {
            let mut endpoints = Table::new();
            endpoints.set_implicit(true);
            for e in &self.endpoints {
                if endpoints.contains_key(&e.name) {
                    bail!("endpoint `{}` is given twice", e.name);
                }
                let mut t = Table::new();
                t.insert("base_url", value(e.base_url.as_str()));
                t.insert("priority", value(e.priority));
                endpoints.insert(&e.name, Item::Table(t));
            }
            table.insert("endpoints", Item::Table(endpoints));
        }
        Ok(table)
    }
}

fn inline(map: &BTreeMap<String, String>) -> InlineTable {
    let mut t = InlineTable::new();
    for (k, v) in map {
        t.insert(k, Value::from(v.as_str()));
    }
    t
}

/// What [`ConfigEditor::put_provider`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// A new provider, appended to this entry node (if the config has a route graph).
    Added { joined: Option<String> },
    /// An existing provider's table was replaced.
    Replaced,
}

impl ConfigEditor {
    /// Writes `spec`: a new provider, or (with `replace`) over an existing one of that id.
    pub fn put_provider(&mut self, spec: &ProviderSpec, replace: bool) -> anyhow::Result<Put> {
        let table = spec.to_table()?;
        let existing = self
            .doc_mut()
            .get_mut("codex")
            .and_then(|c| c.get_mut("providers"))
            .and_then(|p| p.get_mut(&spec.id))
            .and_then(Item::as_table_mut);
        match existing {
            Some(old) if replace => {
                let decor = old.decor().clone();
                let position = old.position();
                *old = table;
                *old.decor_mut() = decor;
                old.set_position(position);
                Ok(Put::Replaced)
            }
            Some(_) => bail!(
                "provider `{}` already exists; add --replace to overwrite it, or pick another id",
                spec.id
            ),
            None => {
                let first_url = spec
                    .base_url
                    .clone()
                    .or_else(|| spec.endpoints.first().map(|e| e.base_url.clone()))
                    .unwrap_or_default();
                let joined = self.add_provider(&NewProvider {
                    id: spec.id.clone(),
                    base_url: first_url,
                    ..Default::default()
                })?;
                if let Some(slot) = self
                    .doc_mut()
                    .get_mut("codex")
                    .and_then(|c| c.get_mut("providers"))
                    .and_then(|p| p.get_mut(&spec.id))
                {
                    *slot = Item::Table(table);
                }
                Ok(Put::Added { joined })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_flags() {
        assert_eq!(
            EndpointSpec::parse("hk=https://hk.example/v1", 2).unwrap(),
            EndpointSpec {
                name: "hk".into(),
                base_url: "https://hk.example/v1".into(),
                priority: 2
            }
        );
        let e = EndpointSpec::parse("us=https://u:p@us.example@5", 0).unwrap();
        assert_eq!(
            (e.base_url.as_str(), e.priority),
            ("https://u:p@us.example", 5)
        );
        let e = EndpointSpec::parse("us=https://u:p@us.example", 1).unwrap();
        assert_eq!(
            (e.base_url.as_str(), e.priority),
            ("https://u:p@us.example", 1)
        );
        assert!(EndpointSpec::parse("https://x", 0).is_err());
        assert!(EndpointSpec::parse("a.b=https://x", 0).is_err());
    }

    #[test]
    fn replace_keeps_the_comment_and_routes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "version = 5\n# the cheap one\n[codex.providers.a]\nbase_url = \"https://old\"\n\
             [codex.routing.routes.main]\nchildren = [\"a\"]\n",
        )
        .unwrap();
        let mut editor = ConfigEditor::open(&path).unwrap();
        let spec = ProviderSpec {
            id: "a".into(),
            alias: Some("Cheap".into()),
            enabled: false,
            endpoints: vec![
                EndpointSpec::parse("one=https://1", 0).unwrap(),
                EndpointSpec::parse("two=https://2", 1).unwrap(),
            ],
            api_key: Some("sk-x".into()),
            ..Default::default()
        };
        assert!(editor.put_provider(&spec, false).is_err());
        assert_eq!(editor.put_provider(&spec, true).unwrap(), Put::Replaced);
        let text = editor.text();
        assert!(
            text.contains("# the cheap one\n[codex.providers.a]\nalias = \"Cheap\"\nenabled = false\napi_key = \"sk-x\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "[codex.providers.a.endpoints.two]\nbase_url = \"https://2\"\npriority = 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("children = [\"a\"]"), "{text}");
        crate::config::load::parse(&path, &text).unwrap();
    }
}
