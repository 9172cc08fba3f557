//! Format-preserving edits of the helper config, for the `provider` and `routing` commands.
//!
//! Edits go through `toml_edit`, so comments, key order and layout outside the edited keys
//! survive. Every edit is checked by loading and compiling the result before it is written;
//! the previous file is kept as `config.toml.bak` and the new one written atomically. Route
//! nodes other than the one an edit names are never touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value, value};

use super::load;
use super::model::CURRENT_VERSION;

/// An edit that would make the config invalid (what `serve` would refuse at start-up).
#[derive(Debug, thiserror::Error)]
#[error("the edit would make the config invalid: {0}")]
pub struct InvalidEdit(String);

/// An open config document.
pub struct ConfigEditor {
    path: PathBuf,
    original: Option<String>,
    doc: DocumentMut,
}

/// What an edited config must also pass before it is written (beyond parsing).
pub type Check<'a> = dyn Fn(&super::LoadedConfig) -> Result<(), String> + 'a;

/// A new provider for [`ConfigEditor::add_provider`].
#[derive(Debug, Clone, Default)]
pub struct NewProvider {
    pub id: String,
    pub base_url: String,
    pub auth_token_env: Option<String>,
    pub api_key_env: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub model_mapping: BTreeMap<String, String>,
    pub supported_models: Vec<String>,
}

impl ConfigEditor {
    /// Opens `path`; a missing file starts as an empty `version = 5` document.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let original = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        let doc = match &original {
            Some(text) => text
                .parse::<DocumentMut>()
                .with_context(|| format!("{} is not valid TOML", path.display()))?,
            None => {
                let mut doc = DocumentMut::new();
                doc.insert("version", value(i64::from(CURRENT_VERSION)));
                doc
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            original,
            doc,
        })
    }

    /// The file's text as it was opened (`None`: there was no file).
    pub fn original(&self) -> Option<&str> {
        self.original.as_deref()
    }

    /// The document, for edits kept in files of their own (`provider_spec`, `cli::config_cmd`).
    pub fn doc_mut(&mut self) -> &mut DocumentMut {
        &mut self.doc
    }

    /// The document as it would be written.
    pub fn text(&self) -> String {
        self.doc.to_string()
    }

    /// Whether the edited document parses and passes `check`.
    fn check(&self, check: &Check<'_>) -> anyhow::Result<()> {
        let invalid = |e: &dyn std::fmt::Display| InvalidEdit(format!("{e}"));
        let loaded = load::parse(&self.path, &self.doc.to_string()).map_err(|e| invalid(&e))?;
        check(&loaded).map_err(|e| invalid(&format!("{e:#}")))?;
        Ok(())
    }

    /// Checks the edited document with `check`; an edit that fails it is an [`InvalidEdit`]
    /// (the caller's mistake, told apart from a failed write) (what start-up would refuse: the cli passes the
    /// route graph compiler, which config does not know), then writes it (atomically, keeping
    /// the previous file as `.bak` with the same mode; see [`crate::files::write_atomic`] for
    /// links, modes and read-only files).
    pub fn save(self, check: &Check<'_>) -> anyhow::Result<()> {
        self.check(check)?;
        let text = self.doc.to_string();
        // A read-only config is refused before its backup is touched.
        crate::files::ensure_writable(&self.path)?;
        if let Some(original) = &self.original {
            let backup = self.path.with_extension("toml.bak");
            crate::files::write_backup(&backup, original.as_bytes(), &self.path)?;
        }
        crate::files::write_atomic(&self.path, text.as_bytes(), crate::files::PRIVATE)
    }

    fn providers(&mut self) -> &mut Table {
        let codex = implicit_table(self.doc.as_table_mut(), "codex");
        implicit_table(codex, "providers")
    }

    fn provider(&mut self, id: &str) -> anyhow::Result<&mut Table> {
        self.providers()
            .get_mut(id)
            .and_then(Item::as_table_mut)
            .with_context(|| format!("no provider `{id}` in the config"))
    }

    /// Adds a provider; when the config has a route graph, it is appended to the entry node.
    /// Returns the entry node it was added to, if any.
    pub fn add_provider(&mut self, new: &NewProvider) -> anyhow::Result<Option<String>> {
        if new.id.is_empty() || new.id.contains('.') || new.id.contains(char::is_whitespace) {
            bail!(
                "provider id `{}` must be non-empty, without dots or spaces",
                new.id
            );
        }
        if self.providers().contains_key(&new.id) {
            bail!(
                "provider `{}` already exists; remove it first or pick another id",
                new.id
            );
        }
        let mut table = Table::new();
        table.insert("base_url", value(new.base_url.as_str()));
        if let Some(var) = &new.auth_token_env {
            table.insert("auth_token_env", value(var.as_str()));
        }
        if let Some(var) = &new.api_key_env {
            table.insert("api_key_env", value(var.as_str()));
        }
        if !new.tags.is_empty() {
            table.insert("tags", value(inline(&new.tags)));
        }
        if !new.model_mapping.is_empty() {
            table.insert("model_mapping", value(inline(&new.model_mapping)));
        }
        if !new.supported_models.is_empty() {
            let models: BTreeMap<String, bool> = new
                .supported_models
                .iter()
                .map(|m| (m.clone(), true))
                .collect();
            let mut t = InlineTable::new();
            for (k, v) in models {
                t.insert(&k, Value::from(v));
            }
            table.insert("supported_models", value(t));
        }
        self.providers().insert(&new.id, Item::Table(table));
        let Some(entry) = self.entry_node_name() else {
            return Ok(None);
        };
        let node = self.route_node(&entry)?;
        let strategy = node
            .get("strategy")
            .and_then(Item::as_str)
            .unwrap_or("ordered-failover");
        if matches!(strategy, "ordered-failover" | "tag-preferred") {
            children(node).push(new.id.as_str());
            return Ok(Some(entry));
        }
        Ok(None)
    }

    /// Removes a provider and every plain reference to it in route nodes' children.
    pub fn remove_provider(&mut self, id: &str) -> anyhow::Result<()> {
        self.provider(id)?;
        let names = self.route_node_names();
        for name in &names {
            let node = self.route_node(name)?;
            for key in ["target", "then", "default"] {
                if let Some(r) = node.get(key).and_then(Item::as_str) {
                    if refers_to(r, id) {
                        bail!(
                            "route node `{name}` uses `{r}` as its {key}; change that node first (e.g. `codex-helper routing order …`)"
                        );
                    }
                }
            }
        }
        for name in &names {
            let node = self.route_node(name)?;
            if let Some(list) = node.get_mut("children").and_then(Item::as_array_mut) {
                list.retain(|v| !v.as_str().is_some_and(|r| refers_to(r, id)));
            }
        }
        self.providers().remove(id);
        Ok(())
    }

    pub fn set_provider_enabled(&mut self, id: &str, enabled: bool) -> anyhow::Result<()> {
        let provider = self.provider(id)?;
        if enabled {
            // `enabled = true` is the default: drop the key rather than add noise.
            provider.remove("enabled");
        } else {
            provider.insert("enabled", value(false));
        }
        Ok(())
    }

    /// Switches one endpoint (`[codex.providers.<id>.endpoints.<endpoint>]`) on or off. The
    /// `default` endpoint a provider's `base_url` makes has no table of its own: that is the
    /// provider's switch.
    pub fn set_endpoint_enabled(
        &mut self,
        provider: &str,
        endpoint: &str,
        enabled: bool,
    ) -> anyhow::Result<()> {
        let table = self.provider(provider)?;
        let shorthand = table.contains_key("base_url") && endpoint == "default";
        let Some(entry) = table
            .get_mut("endpoints")
            .and_then(Item::as_table_like_mut)
            .and_then(|t| t.get_mut(endpoint))
            .and_then(Item::as_table_like_mut)
        else {
            if shorthand {
                bail!(
                    "`{provider}.default` is the provider's `base_url`, not an endpoint of its own; switch the provider `{provider}` instead"
                );
            }
            bail!("provider `{provider}` has no endpoint `{endpoint}` in the config");
        };
        if enabled {
            entry.remove("enabled");
        } else {
            entry.insert("enabled", value(false));
        }
        Ok(())
    }

    /// Makes the entry node `ordered-failover` over `order`.
    pub fn set_order(&mut self, order: &[String]) -> anyhow::Result<String> {
        let entry = self.ensure_entry_node()?;
        let node = self.route_node(&entry)?;
        set_strategy(node, "ordered-failover");
        node.insert("children", value(array(order)));
        Ok(entry)
    }

    /// Makes the entry node `manual-sticky` on `target` (other children kept for display).
    pub fn pin(&mut self, target: &str) -> anyhow::Result<String> {
        let entry = self.ensure_entry_node()?;
        let node = self.route_node(&entry)?;
        set_strategy(node, "manual-sticky");
        node.insert("target", value(target));
        if node
            .get("children")
            .and_then(Item::as_array)
            .is_none_or(Array::is_empty)
        {
            node.insert("children", value(array(&[target.to_string()])));
        }
        Ok(entry)
    }

    /// Makes the entry node `tag-preferred`.
    pub fn prefer_tags(
        &mut self,
        tags: &BTreeMap<String, String>,
        order: Option<&[String]>,
        stop: bool,
    ) -> anyhow::Result<String> {
        let entry = self.ensure_entry_node()?;
        let node = self.route_node(&entry)?;
        set_strategy(node, "tag-preferred");
        let mut prefer = Array::new();
        prefer.push(inline(tags));
        node.insert("prefer_tags", value(prefer));
        node.insert(
            "on_exhausted",
            value(if stop { "stop" } else { "continue" }),
        );
        if let Some(order) = order {
            node.insert("children", value(array(order)));
        }
        Ok(entry)
    }

    /// Sets `[codex] default_profile` (`None` removes it). Whether the profile exists is the
    /// check's business, as for every edit.
    pub fn set_default_profile(&mut self, profile: Option<&str>) {
        let codex = implicit_table(self.doc.as_table_mut(), "codex");
        match profile {
            Some(name) => {
                // An implicit `[codex]` (only sub-tables so far) gains a header for its key.
                codex.set_implicit(false);
                codex.insert("default_profile", value(name));
            }
            None => {
                codex.remove("default_profile");
                // Back to no `[codex]` header when nothing but sub-tables is left.
                if codex.iter().all(|(_, item)| item.is_table()) {
                    codex.set_implicit(true);
                }
            }
        }
    }

    /// Rewrites `[codex.client_patch]` to the canonical form: the legacy `mode` becomes
    /// `preset`, and any accepted spelling becomes the canonical name. Returns what changed.
    pub fn normalize_client_patch(&mut self) -> anyhow::Result<Option<String>> {
        use crate::codex::preset::Preset;
        let Some(table) = self
            .doc
            .as_table_mut()
            .get_mut("codex")
            .and_then(Item::as_table_mut)
            .and_then(|c| c.get_mut("client_patch"))
            .and_then(Item::as_table_mut)
        else {
            return Ok(None);
        };
        let text = |key: &str| table.get(key).and_then(Item::as_str).map(str::to_string);
        let (preset_text, mode_text) = (text("preset"), text("mode"));
        let parse = |t: &Option<String>| {
            t.as_deref()
                .map(Preset::parse)
                .transpose()
                .map_err(anyhow::Error::msg)
        };
        let (preset, mode) = (parse(&preset_text)?, parse(&mode_text)?);
        let canonical = match (preset, mode) {
            (Some(p), Some(m)) if p != m => bail!(
                "conflicting codex.client_patch preset/mode values: `{p}` and `{m}`; keep only `preset`"
            ),
            (p, m) => match p.or(m) {
                Some(c) => c,
                None => return Ok(None),
            },
        };
        if mode_text.is_none() && preset_text.as_deref() == Some(canonical.as_str()) {
            return Ok(None);
        }
        let mut new = Value::from(canonical.as_str());
        if let Some(old) = table.get("preset").and_then(Item::as_value) {
            *new.decor_mut() = old.decor().clone();
        }
        match table.get_mut("preset") {
            Some(item) => *item = Item::Value(new),
            None => {
                table.insert("preset", Item::Value(new));
            }
        }
        table.remove("mode");
        let was = mode_text
            .map(|m| format!("mode = \"{m}\""))
            .or(preset_text.map(|p| format!("preset = \"{p}\"")))
            .unwrap_or_default();
        Ok(Some(format!("`{was}` is now `preset = \"{canonical}\"`")))
    }

    // `Table::get_mut` looks up; `Item::get_mut` would insert an empty key when missing.
    fn routing(&mut self) -> Option<&mut Table> {
        self.doc
            .as_table_mut()
            .get_mut("codex")?
            .as_table_mut()?
            .get_mut("routing")?
            .as_table_mut()
    }

    fn entry_node_name(&mut self) -> Option<String> {
        let routing = self.routing()?;
        routing
            .get("routes")
            .and_then(Item::as_table)
            .filter(|r| !r.is_empty())?;
        Some(
            routing
                .get("entry")
                .and_then(Item::as_str)
                .unwrap_or("main")
                .to_string(),
        )
    }

    fn route_node_names(&mut self) -> Vec<String> {
        self.routing()
            .and_then(|r| r.get("routes"))
            .and_then(Item::as_table)
            .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default()
    }

    fn route_node(&mut self, name: &str) -> anyhow::Result<&mut Table> {
        self.routing()
            .and_then(|r| r.get_mut("routes"))
            .and_then(Item::as_table_mut)
            .and_then(|r| r.get_mut(name))
            .and_then(Item::as_table_mut)
            .with_context(|| format!("route node `{name}` does not exist"))
    }

    /// The entry node's name, creating `[codex.routing]` with an entry node `main` over every
    /// provider (in name order) when the config has no route graph yet.
    fn ensure_entry_node(&mut self) -> anyhow::Result<String> {
        if let Some(entry) = self.entry_node_name() {
            self.route_node(&entry)?;
            return Ok(entry);
        }
        let providers: Vec<String> = self
            .providers()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        let codex = implicit_table(self.doc.as_table_mut(), "codex");
        let routing = codex
            .entry("routing")
            .or_insert(Item::Table(Table::new()))
            .as_table_mut()
            .context("codex.routing is not a table")?;
        if !routing.contains_key("entry") {
            routing.insert("entry", value("main"));
        }
        let entry = routing
            .get("entry")
            .and_then(Item::as_str)
            .unwrap_or("main")
            .to_string();
        let routes = implicit_table(routing, "routes");
        let mut node = Table::new();
        node.insert("strategy", value("ordered-failover"));
        node.insert("children", value(array(&providers)));
        routes.insert(&entry, Item::Table(node));
        Ok(entry)
    }
}

/// `name` refers to provider `id` (whole, or one of its endpoints).
fn refers_to(name: &str, id: &str) -> bool {
    name == id || name.split_once('.').is_some_and(|(p, _)| p == id)
}

fn set_strategy(node: &mut Table, strategy: &str) {
    node.insert("strategy", value(strategy));
    let keep: &[&str] = match strategy {
        "manual-sticky" => &["target"],
        "tag-preferred" => &["prefer_tags", "on_exhausted"],
        _ => &[],
    };
    for key in [
        "target",
        "prefer_tags",
        "on_exhausted",
        "when",
        "then",
        "default",
    ] {
        if !keep.contains(&key) {
            node.remove(key);
        }
    }
}

fn children(node: &mut Table) -> &mut Array {
    if node.get("children").and_then(Item::as_array).is_none() {
        node.insert("children", value(Array::new()));
    }
    node.get_mut("children")
        .and_then(Item::as_array_mut)
        .expect("just inserted")
}

fn implicit_table<'t>(parent: &'t mut Table, key: &str) -> &'t mut Table {
    let item = parent.entry(key).or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    if !item.is_table() {
        *item = Item::Table(Table::new());
    }
    item.as_table_mut().expect("a table")
}

fn inline(map: &BTreeMap<String, String>) -> InlineTable {
    let mut t = InlineTable::new();
    for (k, v) in map {
        t.insert(k, Value::from(v.as_str()));
    }
    t
}

fn array(items: &[String]) -> Array {
    items.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"# my relays — keep this comment
version = 5

[codex.providers.monthly]   # the cheap one
base_url = "https://m.example/v1"
auth_token_env = "M_KEY"

[codex.providers.paygo]
base_url = "https://p.example/v1"

[codex.routing]
entry = "main"

[codex.routing.routes.main]
strategy = "ordered-failover"
children = ["pool", "paygo"]   # pool first

[codex.routing.routes.pool]
# nested, must survive untouched
children = ["monthly"]
"#;

    fn editor(text: &str) -> (tempfile::TempDir, ConfigEditor) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let editor = ConfigEditor::open(&path).unwrap();
        (dir, editor)
    }

    #[test]
    fn adding_a_provider_keeps_everything_else_and_joins_the_entry_node() {
        let (dir, mut e) = editor(CONFIG);
        let new = NewProvider {
            id: "backup".into(),
            base_url: "https://b.example".into(),
            api_key_env: Some("B_KEY".into()),
            tags: [("billing".into(), "paygo".into())].into(),
            ..Default::default()
        };
        assert_eq!(e.add_provider(&new).unwrap().as_deref(), Some("main"));
        e.save(&|_| Ok(())).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        assert!(text.starts_with("# my relays — keep this comment\nversion = 5\n"));
        assert!(text.contains("[codex.providers.monthly]   # the cheap one\n"));
        assert!(text.contains("[codex.routing.routes.pool]\n# nested, must survive untouched\nchildren = [\"monthly\"]\n"));
        assert!(
            text.contains("children = [\"pool\", \"paygo\", \"backup\"]   # pool first"),
            "{text}"
        );
        assert!(text.contains("[codex.providers.backup]\nbase_url = \"https://b.example\"\napi_key_env = \"B_KEY\"\ntags = { billing = \"paygo\" }\n"), "{text}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.toml.bak")).unwrap(),
            CONFIG
        );
    }

    #[test]
    fn the_default_profile_is_set_and_removed_keeping_the_rest() {
        let (dir, mut e) = editor(CONFIG);
        e.set_default_profile(Some("deep"));
        e.save(&|_| Ok(())).unwrap();
        let path = dir.path().join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        assert_eq!(doc["codex"]["default_profile"].as_str(), Some("deep"));
        assert!(
            text.contains("[codex.providers.monthly]   # the cheap one\n"),
            "{text}"
        );
        assert!(text.starts_with("# my relays — keep this comment\nversion = 5\n"));

        let mut e = ConfigEditor::open(&path).unwrap();
        e.set_default_profile(None);
        e.save(&|_| Ok(())).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("default_profile"), "{text}");
        assert!(
            text.contains("[codex.providers.monthly]   # the cheap one\n"),
            "{text}"
        );
    }

    #[test]
    fn duplicates_and_bad_ids_are_refused() {
        let (_dir, mut e) = editor(CONFIG);
        let dup = NewProvider {
            id: "paygo".into(),
            base_url: "https://x".into(),
            ..Default::default()
        };
        assert!(
            e.add_provider(&dup)
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
        let dotted = NewProvider {
            id: "a.b".into(),
            base_url: "https://x".into(),
            ..Default::default()
        };
        assert!(e.add_provider(&dotted).is_err());
    }

    #[test]
    fn an_endpoint_is_switched_in_its_own_table_only() {
        let text = format!(
            "{CONFIG}\n[codex.providers.multi]   # two addresses\nunknown_note = \"kept\"\n[codex.providers.multi.endpoints.hk]\nbase_url = \"https://hk.example\"  # fast\n[codex.providers.multi.endpoints.us]\nbase_url = \"https://us.example\"\n"
        );
        let (_dir, mut e) = editor(&text);
        e.set_endpoint_enabled("multi", "hk", false).unwrap();
        let off = e.text();
        assert_eq!(
            off,
            text.replace(
                "base_url = \"https://hk.example\"  # fast\n",
                "base_url = \"https://hk.example\"  # fast\nenabled = false\n"
            )
        );
        e.set_endpoint_enabled("multi", "hk", true).unwrap();
        assert_eq!(
            e.text(),
            text,
            "on again: the key is dropped, the rest as it was"
        );
        let shorthand = e.set_endpoint_enabled("monthly", "default", false);
        assert!(
            shorthand
                .unwrap_err()
                .to_string()
                .contains("switch the provider `monthly` instead")
        );
        assert!(e.set_endpoint_enabled("multi", "eu", false).is_err());
        assert!(e.set_endpoint_enabled("nobody", "hk", false).is_err());
        assert_eq!(e.original(), Some(text.as_str()));
    }

    #[test]
    fn an_edit_that_breaks_the_config_is_not_written() {
        let (dir, mut e) = editor(CONFIG);
        let bad = NewProvider {
            id: "x".into(),
            base_url: "not a url".into(),
            ..Default::default()
        };
        e.add_provider(&bad).unwrap();
        let check =
            |loaded: &crate::config::LoadedConfig| match loaded.config.codex.providers.get("x") {
                Some(_) => Err("codex.providers.x.base_url is not a URL".to_string()),
                None => Ok(()),
            };
        let err = e.save(&check).unwrap_err().to_string();
        assert!(err.contains("codex.providers.x.base_url"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("config.toml")).unwrap(),
            CONFIG
        );
    }

    #[test]
    fn removing_a_provider_drops_its_references() {
        let (dir, mut e) = editor(CONFIG);
        e.remove_provider("paygo").unwrap();
        e.save(&|_| Ok(())).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        assert!(!text.contains("paygo"));
        assert!(
            text.contains("children = [\"pool\"]   # pool first"),
            "{text}"
        );
        let (_dir, mut e) = editor(CONFIG);
        assert!(
            e.remove_provider("nope")
                .unwrap_err()
                .to_string()
                .contains("no provider `nope`")
        );
    }

    #[test]
    fn order_pin_and_prefer_tag_edit_only_the_entry_node() {
        let (_dir, mut e) = editor(CONFIG);
        e.pin("paygo").unwrap();
        let text = e.text();
        assert!(
            text.contains("strategy = \"manual-sticky\"") && text.contains("target = \"paygo\""),
            "{text}"
        );
        assert!(text.contains("[codex.routing.routes.pool]\n# nested, must survive untouched\nchildren = [\"monthly\"]\n"));
        e.prefer_tags(
            &[("billing".to_string(), "monthly".to_string())].into(),
            Some(&["paygo".into(), "pool".into()]),
            true,
        )
        .unwrap();
        let text = e.text();
        assert!(!text.contains("target ="), "pin's target is gone: {text}");
        assert!(
            text.contains("prefer_tags = [{ billing = \"monthly\" }]")
                && text.contains("on_exhausted = \"stop\""),
            "{text}"
        );
        e.set_order(&["paygo".into(), "pool".into()]).unwrap();
        let text = e.text();
        assert!(
            text.contains("strategy = \"ordered-failover\"") && !text.contains("prefer_tags"),
            "{text}"
        );
    }

    #[test]
    fn legacy_client_patch_spellings_become_the_canonical_preset() {
        let (dir, mut e) = editor(
            "version = 5\n# patch\n[codex.client_patch]\nmode = \"official_relay_bridge\"  # old\nresponses_websocket = true\n",
        );
        assert!(
            e.normalize_client_patch()
                .unwrap()
                .unwrap()
                .contains("preset = \"official-relay\"")
        );
        e.save(&|_| Ok(())).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        assert!(
            text.contains("# patch\n[codex.client_patch]\n")
                && text.contains("preset = \"official-relay\""),
            "{text}"
        );
        assert!(
            !text.contains("mode") && text.contains("responses_websocket = true"),
            "{text}"
        );
        let (_dir, mut e) = editor("version = 5\n[codex.client_patch]\npreset = \"default\"\n");
        assert_eq!(e.normalize_client_patch().unwrap(), None);
        let (_dir, mut e) = editor(
            "version = 5\n[codex.client_patch]\npreset = \"default\"\nmode = \"chatgpt-bridge\"\n",
        );
        assert!(
            e.normalize_client_patch()
                .unwrap_err()
                .to_string()
                .contains("conflicting")
        );
    }

    #[test]
    fn ordering_a_config_without_routing_creates_the_entry_node() {
        let (dir, mut e) = editor(
            "version = 5\n[codex.providers.a]\nbase_url = \"http://a\"\n[codex.providers.b]\nbase_url = \"http://b\"\n",
        );
        e.set_order(&["b".into(), "a".into()]).unwrap();
        e.save(&|_| Ok(())).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        assert!(
            text.contains("[codex.routing]\nentry = \"main\"\n"),
            "{text}"
        );
        assert!(text.contains("[codex.routing.routes.main]\nstrategy = \"ordered-failover\"\nchildren = [\"b\", \"a\"]\n"), "{text}");
    }
}
