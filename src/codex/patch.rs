//! Editing Codex's `config.toml` for `switch on` and undoing it for `switch off`.
//!
//! Pure text in, text out, through `toml_edit`: only root `model_provider`, the
//! `[model_providers.codex_proxy]` table and, when a compaction switch asks for it,
//! `[features] remote_compaction_v2` are touched. What was there before is kept in
//! [`Originals`] (never the whole file) so `switch off` puts those pieces back exactly: an
//! untouched file round-trips byte for byte, and edits the user made meanwhile survive.

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, Item, Table, Value, value};

use super::preset::{Flag, PatchPlan};

/// Codex's id for the provider the helper owns.
pub const PROVIDER_ID: &str = "codex_proxy";

/// The bearer token `switch on` gives Codex so that it fetches the model catalog; the proxy
/// drops it instead of forwarding it.
pub const PLACEHOLDER_TOKEN: &str = "codex-helper-placeholder";

/// The pieces of Codex's config as they were before the first `switch on`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Originals {
    /// The file did not exist.
    pub config_absent: bool,
    /// Root `model_provider`, as written (value and its spacing/comment), if present.
    pub model_provider: Option<String>,
    /// `[model_providers.codex_proxy]` as a TOML snippet, if the user had one.
    pub codex_proxy: Option<String>,
    /// A `[model_providers]` table existed.
    pub had_model_providers: bool,
    /// `[features] remote_compaction_v2` as written; `None` inside when absent. Only recorded
    /// when a switch changed it.
    pub remote_compaction_v2: Option<Option<String>>,
    /// A `[features]` table existed (recorded with `remote_compaction_v2`).
    #[serde(default)]
    pub had_features: bool,
}

/// Why a config could not be patched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("Codex's config.toml is not valid TOML ({0}); fix it before switching")]
    Invalid(String),
    #[error("Codex's config.toml has `{0}` that is not a table; fix it before switching")]
    NotATable(&'static str),
}

fn parse(text: &str) -> Result<DocumentMut, PatchError> {
    text.parse::<DocumentMut>()
        .map_err(|e| PatchError::Invalid(e.to_string().lines().next().unwrap_or("").to_string()))
}

/// Records what `switch on` is about to change.
pub fn originals(text: Option<&str>) -> Result<Originals, PatchError> {
    let Some(text) = text else {
        return Ok(Originals {
            config_absent: true,
            ..Default::default()
        });
    };
    let doc = parse(text)?;
    let model_provider = doc.get("model_provider").and_then(Item::as_value).map(bare);
    let providers = doc.get("model_providers");
    let codex_proxy = providers
        .and_then(|p| p.get(PROVIDER_ID))
        .and_then(Item::as_table)
        .map(table_snippet);
    Ok(Originals {
        config_absent: false,
        model_provider,
        codex_proxy,
        had_model_providers: providers.is_some(),
        remote_compaction_v2: None,
        had_features: false,
    })
}

/// A table as a standalone snippet (`[model_providers.codex_proxy]` and its keys).
fn table_snippet(table: &Table) -> String {
    let mut doc = DocumentMut::new();
    let mut providers = Table::new();
    providers.set_implicit(true);
    providers.insert(PROVIDER_ID, Item::Table(table.clone()));
    doc.insert("model_providers", Item::Table(providers));
    doc.to_string()
}

fn table_from_snippet(snippet: &str) -> Option<Table> {
    let doc = snippet.parse::<DocumentMut>().ok()?;
    doc.get("model_providers")?
        .get(PROVIDER_ID)?
        .as_table()
        .cloned()
}

/// A value as written, without the spacing and comment around it (those stay in the file
/// while switched on and are reused when the value is put back).
fn bare(value: &Value) -> String {
    let mut value = value.clone();
    value.decor_mut().clear();
    value.to_string()
}

/// Puts a recorded value back in place of the current one, keeping the current decor.
fn restore_value(table: &mut Table, key: &str, repr: &str) {
    if let Ok(original) = repr.parse::<Value>() {
        set_keeping_decor(table, key, original);
    }
}

/// Replaces a value in place: the key (with the comments above it) and the spacing and
/// comment around the old value stay as they were.
fn set_keeping_decor(table: &mut Table, key: &str, new: Value) {
    let mut new = new;
    match table.get_mut(key) {
        Some(item) => {
            if let Some(old) = item.as_value() {
                *new.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(new);
        }
        None => {
            table.insert(key, Item::Value(new));
        }
    }
}

/// The config text after `switch on`. `originals` must already hold what this changes
/// (see [`originals`]); the features flag is recorded into it here.
pub fn switch_on(
    text: Option<&str>,
    plan: &PatchPlan,
    base_url: &str,
    originals: &mut Originals,
) -> Result<String, PatchError> {
    let mut doc = parse(text.unwrap_or(""))?;
    set_keeping_decor(doc.as_table_mut(), "model_provider", PROVIDER_ID.into());

    let root = doc.as_table_mut();
    if !root.contains_key("model_providers") {
        let mut providers = Table::new();
        providers.set_implicit(true);
        root.insert("model_providers", Item::Table(providers));
    }
    let providers = root
        .get_mut("model_providers")
        .and_then(Item::as_table_mut)
        .ok_or(PatchError::NotATable("model_providers"))?;
    if !providers.contains_key(PROVIDER_ID) {
        providers.insert(PROVIDER_ID, Item::Table(Table::new()));
    }
    let proxy = providers
        .get_mut(PROVIDER_ID)
        .and_then(Item::as_table_mut)
        .ok_or(PatchError::NotATable("model_providers.codex_proxy"))?;
    set_keeping_decor(proxy, "name", plan.provider_name.into());
    set_keeping_decor(proxy, "base_url", base_url.into());
    set_keeping_decor(proxy, "wire_api", "responses".into());
    // Codex fetches a catalog only from here; the proxy translates the relay's list for it.
    let catalog_url = format!("{}/models", base_url.trim_end_matches('/'));
    set_keeping_decor(proxy, "model_catalog_url", catalog_url.as_str().into());
    // Codex asks a provider for its catalog only when it holds a credential for it. Unless
    // Codex's own login is used (`requires_openai_auth`), a placeholder does; the proxy never
    // forwards it (see `proxy::headers::PLACEHOLDER_TOKEN`).
    if plan.requires_openai_auth != Flag::Set(true) && !proxy.contains_key("env_key") {
        set_keeping_decor(proxy, "experimental_bearer_token", PLACEHOLDER_TOKEN.into());
    } else if proxy
        .get("experimental_bearer_token")
        .and_then(Item::as_str)
        == Some(PLACEHOLDER_TOKEN)
    {
        proxy.remove("experimental_bearer_token");
    }
    if !proxy.contains_key("request_max_retries") {
        // The helper retries and fails over itself; Codex retrying too multiplies the wait.
        proxy.insert("request_max_retries", value(0));
    }
    for (key, flag) in [
        ("requires_openai_auth", plan.requires_openai_auth),
        ("supports_websockets", plan.supports_websockets),
    ] {
        match flag {
            Flag::Set(on) => set_keeping_decor(proxy, key, on.into()),
            Flag::Remove => {
                proxy.remove(key);
            }
        }
    }

    if let Some(on) = plan.remote_compaction_v2 {
        let root = doc.as_table_mut();
        if originals.remote_compaction_v2.is_none() {
            let features = root.get("features").and_then(Item::as_table);
            originals.had_features = features.is_some();
            originals.remote_compaction_v2 = Some(
                features
                    .and_then(|f| f.get("remote_compaction_v2"))
                    .and_then(Item::as_value)
                    .map(bare),
            );
        }
        if !root.contains_key("features") {
            root.insert("features", Item::Table(Table::new()));
        }
        let features = root
            .get_mut("features")
            .and_then(Item::as_table_mut)
            .ok_or(PatchError::NotATable("features"))?;
        set_keeping_decor(features, "remote_compaction_v2", on.into());
    }
    Ok(doc.to_string())
}

/// Whether the `codex_proxy` table is the one the helper wrote: a loopback `base_url`.
pub fn is_helper_provider(table: &Table) -> bool {
    let Some(url) = table.get("base_url").and_then(Item::as_str) else {
        return false;
    };
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    matches!(
        url.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    )
}

/// The config text after `switch off`, or `None` when the file should be deleted (it did not
/// exist before and nothing else was added to it).
pub fn switch_off(text: &str, originals: &Originals) -> Result<Option<String>, PatchError> {
    let mut doc = parse(text)?;
    let root = doc.as_table_mut();
    let proxy_is_ours = root
        .get("model_providers")
        .and_then(|p| p.get(PROVIDER_ID))
        .and_then(Item::as_table)
        .is_none_or(is_helper_provider);

    // model_provider: put back only if it still points at the helper.
    if root.get("model_provider").and_then(Item::as_str) == Some(PROVIDER_ID) && proxy_is_ours {
        match &originals.model_provider {
            Some(repr) => restore_value(root, "model_provider", repr),
            None => {
                root.remove("model_provider");
            }
        }
    }

    if proxy_is_ours {
        if let Some(providers) = root.get_mut("model_providers").and_then(Item::as_table_mut) {
            let position = providers
                .get(PROVIDER_ID)
                .and_then(Item::as_table)
                .and_then(Table::position);
            match originals
                .codex_proxy
                .as_deref()
                .and_then(table_from_snippet)
            {
                Some(mut original) => {
                    if let Some(position) = position {
                        original.set_position(Some(position));
                    }
                    providers.insert(PROVIDER_ID, Item::Table(original));
                }
                None => {
                    providers.remove(PROVIDER_ID);
                }
            }
            if !originals.had_model_providers && providers.is_empty() {
                root.remove("model_providers");
            }
        }
    }

    if let Some(original) = &originals.remote_compaction_v2 {
        if let Some(features) = root.get_mut("features").and_then(Item::as_table_mut) {
            match original {
                Some(repr) => restore_value(features, "remote_compaction_v2", repr),
                None => {
                    features.remove("remote_compaction_v2");
                }
            }
            if !originals.had_features && features.is_empty() {
                root.remove("features");
            }
        }
    }

    let out = doc.to_string();
    if originals.config_absent && out.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codex::preset::{Compaction, Preset};

    const BASE: &str = "http://127.0.0.1:3211/v1";

    fn plan(preset: Preset) -> PatchPlan {
        PatchPlan::new(preset, false, Compaction::Auto).unwrap()
    }

    fn round_trip(text: Option<&str>, plan: &PatchPlan) -> (String, Option<String>) {
        let mut o = originals(text).unwrap();
        let on = switch_on(text, plan, BASE, &mut o).unwrap();
        let off = switch_off(&on, &o).unwrap();
        (on, off)
    }

    const USER: &str = r#"# my Codex config — keep me
model = "gpt-5.1"
model_provider = "relay"   # the relay I pay for

[model_providers.relay]
name = "Relay"
base_url = "https://relay.example/v1"   # comment inside another provider
env_key = "RELAY_KEY"

[projects."/home/me/code"]
trust_level = "trusted"

[features]
plugins = false
"#;

    #[test]
    fn on_writes_the_owned_keys_and_off_restores_the_text_exactly() {
        for preset in Preset::ALL {
            let (on, off) = round_trip(Some(USER), &plan(preset));
            assert_eq!(off.as_deref(), Some(USER), "{preset}");
            assert!(
                on.contains("model_provider = \"codex_proxy\"   # the relay I pay for\n"),
                "{on}"
            );
            assert!(on.contains("[model_providers.codex_proxy]\n"), "{on}");
            assert!(on.contains(&format!("base_url = \"{BASE}\"")), "{on}");
            assert!(on.contains("request_max_retries = 0"), "{on}");
            assert!(on.contains(
                "base_url = \"https://relay.example/v1\"   # comment inside another provider\n"
            ));
            assert!(
                on.starts_with("# my Codex config — keep me\nmodel = \"gpt-5.1\"\n"),
                "{on}"
            );
            assert!(on.contains("[projects.\"/home/me/code\"]\ntrust_level = \"trusted\"\n"));
        }
        let (on, _) = round_trip(Some(USER), &plan(Preset::OfficialRelay));
        assert!(
            on.contains("name = \"OpenAI\"") && on.contains("supports_websockets = false"),
            "{on}"
        );
        let (on, _) = round_trip(Some(USER), &plan(Preset::ChatgptBridge));
        assert!(on.contains("requires_openai_auth = true"), "{on}");
    }

    #[test]
    fn an_absent_or_empty_config_comes_back_absent_or_empty() {
        let (on, off) = round_trip(None, &plan(Preset::Default));
        assert_eq!(off, None, "the file is deleted again");
        assert!(on.starts_with("model_provider = \"codex_proxy\"\n"), "{on}");
        assert!(!on.contains("[model_providers]\n"), "no empty header: {on}");
        let (_, off) = round_trip(Some(""), &plan(Preset::Default));
        assert_eq!(off.as_deref(), Some(""));
    }

    #[test]
    fn an_existing_codex_proxy_table_and_compaction_flag_come_back() {
        let text = "model_provider = \"openai\"\n\n[model_providers.codex_proxy]\n# mine\nname = \"old\"\nbase_url = \"http://127.0.0.1:9999\"\nrequest_max_retries = 3\nhttp_headers = { X = \"1\" }\n\n[features]\nremote_compaction_v2 = false # off\n";
        let plan = PatchPlan::new(Preset::OfficialRelay, true, Compaction::RemoteV2).unwrap();
        let (on, off) = round_trip(Some(text), &plan);
        assert!(
            on.contains("request_max_retries = 3"),
            "an existing value is kept: {on}"
        );
        assert!(on.contains("http_headers = { X = \"1\" }"), "{on}");
        assert!(on.contains("remote_compaction_v2 = true # off"), "{on}");
        assert!(on.contains("supports_websockets = true"), "{on}");
        assert_eq!(off.as_deref(), Some(text));
    }

    #[test]
    fn edits_made_while_switched_on_survive_switch_off() {
        let mut o = originals(Some(USER)).unwrap();
        let on = switch_on(Some(USER), &plan(Preset::Default), BASE, &mut o).unwrap();
        let edited = format!("{on}\n[projects.\"/new\"]\ntrust_level = \"trusted\"\n");
        let off = switch_off(&edited, &o).unwrap().unwrap();
        assert_eq!(
            off,
            format!("{USER}\n[projects.\"/new\"]\ntrust_level = \"trusted\"\n")
        );
        // A provider the user chose meanwhile is left alone.
        let moved = on.replace(
            "model_provider = \"codex_proxy\"",
            "model_provider = \"other\"",
        );
        let off = switch_off(&moved, &o).unwrap().unwrap();
        assert!(off.contains("model_provider = \"other\""), "{off}");
    }

    #[test]
    fn invalid_configs_are_refused() {
        assert!(matches!(
            originals(Some("model_provider = ")),
            Err(PatchError::Invalid(_))
        ));
        let mut o = Originals::default();
        assert_eq!(
            switch_on(
                Some("model_providers = 3\n"),
                &plan(Preset::Default),
                BASE,
                &mut o
            ),
            Err(PatchError::NotATable("model_providers"))
        );
    }
}
