//! Editing Codex's `config.toml` for `switch on` and undoing it for `switch off`.
//!
//! Pure text in, text out, through `toml_edit`. Where Codex is pointed at the proxy is a
//! [`Redirect`], chosen once at the first `switch on` and kept in the switch state:
//! - the provider already in force, changed in place ([`super::redirect`]), so threads keep
//!   their provider id and `resume` finds them before, during and after a switch;
//! - the helper's own `[model_providers.codex_proxy]` table with root `model_provider`
//!   pointing at it: what older versions did, and the only way to give a built-in-provider
//!   user a preset that needs a custom table (Codex cannot rename its built-in provider).
//!
//! `[features] remote_compaction_v2` is touched when a compaction switch asks for it. What was
//! there before is kept in [`Originals`] (never the whole file) so `switch off` puts those
//! pieces back exactly: an untouched file round-trips byte for byte, and edits the user made
//! meanwhile survive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, Item, Table, value};

use super::doc::{PatchError, bare, parse, render, restore_value, set_keeping_decor};
use super::preset::{AuthAction, Flag, PatchPlan};
use super::redirect::{self, BUILTIN_OPENAI};

pub use super::redirect::PLACEHOLDER_TOKEN;

/// Codex's id for the provider the helper owns.
pub const PROVIDER_ID: &str = "codex_proxy";

/// The end of the `name` of an alias table `switch off` leaves for threads tagged
/// `codex_proxy` (see [`switch_off`]).
pub const ALIAS_MARK: &str = "(codex-helper history alias)";

/// Where `switch on` points Codex at the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Redirect {
    /// `[model_providers.codex_proxy]`, with root `model_provider` switched to it. The
    /// default, so switch states written by older versions read as what they did.
    #[default]
    HelperTable,
    /// The user's own `[model_providers.ID]`, changed in place.
    Provider {
        id: String,
        /// Each key the helper set, as it was before (`None`: absent).
        #[serde(default)]
        keys: BTreeMap<String, Option<String>>,
    },
    /// The built-in `openai` provider, through the top-level `openai_base_url`.
    BuiltinOpenai {
        /// `openai_base_url` as it was (`None`: absent).
        openai_base_url: Option<String>,
    },
}

impl Redirect {
    /// The provider id Codex keeps using while switched on.
    pub fn provider_id(&self) -> &str {
        match self {
            Redirect::HelperTable => PROVIDER_ID,
            Redirect::Provider { id, .. } => id,
            Redirect::BuiltinOpenai { .. } => BUILTIN_OPENAI,
        }
    }
}

/// The pieces of Codex's config as they were before the first `switch on`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Originals {
    /// Where Codex is pointed at the proxy.
    #[serde(default)]
    pub redirect: Redirect,
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
    /// The file's last line had no line break: `switch on` gives it one when it adds lines
    /// after it, and `switch off` takes it away again with those lines.
    #[serde(default)]
    pub unterminated: bool,
    /// The team relay's URL `switch on --team-url` wrote as `base_url`: a `codex_proxy` table
    /// pointing there is the helper's too (else only a loopback one is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_url: Option<String>,
}

/// Whether `plan` can be had from the built-in provider redirected by `openai_base_url`:
/// Codex already treats that provider as OpenAI (remote compaction) and uses its own login,
/// so only a preset with that identity and no `auth.json` change fits.
pub fn fits_builtin(plan: &PatchPlan) -> bool {
    plan.provider_name == "OpenAI"
        && plan.auth == AuthAction::Restore
        && plan.requires_openai_auth != Flag::Set(true)
}

/// Records what `switch on` is about to change, and chooses where to redirect: the provider
/// in force when it can be (see [`Redirect`]).
pub fn originals(text: Option<&str>, plan: &PatchPlan) -> Result<Originals, PatchError> {
    let doc = parse(text.unwrap_or(""))?;
    let id = redirect::provider_in_force(&doc);
    let redirect = if plan.key_env.is_some() {
        // A team relay takes a member key, which only a provider table of ours can name.
        Redirect::HelperTable
    } else if id == BUILTIN_OPENAI {
        if fits_builtin(plan) {
            Redirect::BuiltinOpenai {
                openai_base_url: doc
                    .get("openai_base_url")
                    .and_then(Item::as_value)
                    .map(bare),
            }
        } else {
            Redirect::HelperTable
        }
    } else if id != PROVIDER_ID && redirect::provider_table(&doc, &id).is_some() {
        Redirect::Provider {
            id,
            keys: BTreeMap::new(),
        }
    } else {
        // A provider id without a table (Codex's other built-ins): only a table of ours works.
        Redirect::HelperTable
    };
    let mut originals = helper_table_originals(text)?;
    originals.redirect = redirect;
    Ok(originals)
}

/// Originals for a Codex found pointing at the helper without a switch state (it was lost),
/// so that `switch off` can still put back what matters. The provider `id` in force was
/// redirected in place: its `base_url` comes back from `relay_base_url` (the helper's own
/// provider of that id, which it was imported from), and the catalog URL and placeholder
/// token the helper adds go; other keys stay as they are. `None` when the base URL is unknown.
pub fn repaired_originals(
    text: &str,
    id: &str,
    relay_base_url: &dyn Fn(&str) -> Option<String>,
) -> Option<Originals> {
    let redirect = match id {
        PROVIDER_ID => Redirect::HelperTable,
        BUILTIN_OPENAI => Redirect::BuiltinOpenai {
            openai_base_url: None,
        },
        _ => {
            let base = relay_base_url(id)?;
            let doc = parse(text).ok()?;
            let table = redirect::provider_table(&doc, id)?;
            let mut keys = BTreeMap::new();
            keys.insert(
                "base_url".to_string(),
                Some(toml_edit::Value::from(base).to_string()),
            );
            for key in ["model_catalog_url", "experimental_bearer_token"] {
                let current = table.get(key).and_then(Item::as_str);
                let ours = current
                    .is_some_and(|v| v == PLACEHOLDER_TOKEN || crate::net::is_loopback_url(v));
                let original = table.get(key).and_then(Item::as_value).map(bare);
                keys.insert(key.to_string(), if ours { None } else { original });
            }
            Redirect::Provider {
                id: id.to_string(),
                keys,
            }
        }
    };
    Some(Originals {
        redirect,
        // The older shape had a `[model_providers]` table by construction.
        had_model_providers: true,
        ..Default::default()
    })
}

/// Why `switch on` cannot keep the provider id, when it cannot: said before switching,
/// because threads made while switched on are then listed only while switched on (and after
/// `switch off` through the alias table).
pub fn history_note(originals: &Originals) -> Option<String> {
    match &originals.redirect {
        Redirect::HelperTable => Some(format!(
            "Codex's provider in force ({}) cannot be redirected in place for this preset, so Codex is pointed at a provider of the helper's own (`{PROVIDER_ID}`). \
             Codex lists threads by provider: while switched on, `codex resume` shows only threads made through codex-helper, and earlier ones come back at `switch off`. \
             Threads made while switched on stay resumable after `switch off` through an alias table, and `codex-helper session retag --from {PROVIDER_ID} --to ID` moves them for good. \
             The `official-relay` preset redirects the built-in provider in place and keeps one history.",
            original_provider(originals)
        )),
        _ => None,
    }
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

/// The originals of the helper-table shape (root `model_provider`, `codex_proxy`).
pub fn helper_table_originals(text: Option<&str>) -> Result<Originals, PatchError> {
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
        redirect: Redirect::HelperTable,
        unterminated: super::lines::unterminated(text),
        team_url: None,
    })
}

/// The config text after `switch on`. `originals` must already hold what this changes
/// (see [`originals`]); the features flag is recorded into it here.
pub fn switch_on(
    text: Option<&str>,
    plan: &PatchPlan,
    base_url: &str,
    originals: &mut Originals,
) -> Result<String, PatchError> {
    let before = text.unwrap_or("");
    let mut doc = parse(before)?;
    if plan.key_env.is_some() {
        originals.team_url = Some(base_url.to_string());
    }
    match &mut originals.redirect {
        Redirect::HelperTable => helper_table_on(&mut doc, plan, base_url)?,
        Redirect::Provider { id, keys } => {
            redirect::provider_on(&mut doc, id, plan, base_url, keys)?
        }
        Redirect::BuiltinOpenai { .. } => redirect::builtin_on(&mut doc, base_url),
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
    Ok(render(before, &doc, false))
}

/// Root `model_provider` and `[model_providers.codex_proxy]`, the helper's own provider.
fn helper_table_on(
    doc: &mut DocumentMut,
    plan: &PatchPlan,
    base_url: &str,
) -> Result<(), PatchError> {
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
    // forwards it (see `proxy::headers::upstream_request_headers`).
    if let Some(var) = &plan.key_env {
        // A team relay: Codex sends the member key the variable holds.
        set_keeping_decor(proxy, "env_key", var.as_str().into());
        proxy.remove("experimental_bearer_token");
    } else if plan.requires_openai_auth != Flag::Set(true) && !proxy.contains_key("env_key") {
        set_keeping_decor(proxy, "experimental_bearer_token", PLACEHOLDER_TOKEN.into());
    } else if proxy
        .get("experimental_bearer_token")
        .and_then(Item::as_str)
        == Some(PLACEHOLDER_TOKEN)
    {
        proxy.remove("experimental_bearer_token");
    }
    // A team relay is remote: Codex's own retries cover the way there (and a retryable 503).
    if plan.key_env.is_none() && !proxy.contains_key("request_max_retries") {
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

    Ok(())
}

/// Whether the `codex_proxy` table is the one the helper wrote: a loopback `base_url`.
pub fn is_helper_provider(table: &Table) -> bool {
    table
        .get("base_url")
        .and_then(Item::as_str)
        .is_some_and(crate::net::is_loopback_url)
}

/// The config text after `switch off`, or `None` when the file should be deleted (it did not
/// exist before and nothing else was added to it).
///
/// `threads_tagged_codex_proxy` says Codex has threads made through the helper's own table:
/// removing that table would make them unresumable ("no longer configured"), so it is
/// replaced by an alias of the user's own provider, named with [`ALIAS_MARK`].
pub fn switch_off(
    text: &str,
    originals: &Originals,
    threads_tagged_codex_proxy: bool,
) -> Result<Option<String>, PatchError> {
    let mut doc = parse(text)?;
    match &originals.redirect {
        Redirect::HelperTable => helper_table_off(&mut doc, originals, threads_tagged_codex_proxy),
        Redirect::Provider { id, keys } => redirect::provider_off(&mut doc, id, keys),
        Redirect::BuiltinOpenai { openai_base_url } => {
            redirect::builtin_off(&mut doc, openai_base_url.as_deref())
        }
    }
    let root = doc.as_table_mut();
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

    let out = render(text, &doc, originals.unterminated);
    if originals.config_absent && out.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(out))
}

/// Puts root `model_provider` and `[model_providers.codex_proxy]` back, when they still are
/// the helper's; with `keep_alias`, the table becomes an alias of the user's provider instead
/// of going away.
fn helper_table_off(doc: &mut DocumentMut, originals: &Originals, keep_alias: bool) {
    let alias = keep_alias.then(|| alias_table(doc, originals));
    let root = doc.as_table_mut();
    let proxy_is_ours = root
        .get("model_providers")
        .and_then(|p| p.get(PROVIDER_ID))
        .and_then(Item::as_table)
        .is_none_or(|table| {
            is_helper_provider(table)
                || originals.team_url.is_some()
                    && table.get("base_url").and_then(Item::as_str) == originals.team_url.as_deref()
        });

    // model_provider: put back only if it still points at the helper.
    if root.get("model_provider").and_then(Item::as_str) == Some(PROVIDER_ID) && proxy_is_ours {
        match &originals.model_provider {
            Some(repr) => restore_value(root, "model_provider", repr),
            None => {
                root.remove("model_provider");
            }
        }
    }
    if !proxy_is_ours {
        return;
    }
    let Some(providers) = root.get_mut("model_providers").and_then(Item::as_table_mut) else {
        return;
    };
    let position = providers
        .get(PROVIDER_ID)
        .and_then(Item::as_table)
        .and_then(Table::position);
    let original = originals
        .codex_proxy
        .as_deref()
        .and_then(table_from_snippet);
    match original.or(alias) {
        Some(mut table) => {
            if let Some(position) = position {
                table.set_position(Some(position));
            }
            providers.insert(PROVIDER_ID, Item::Table(table));
        }
        None => {
            providers.remove(PROVIDER_ID);
        }
    }
    if !originals.had_model_providers && providers.is_empty() {
        root.remove("model_providers");
    }
}

/// The provider Codex used before the helper's own table took over (root `model_provider`
/// as recorded, else the built-in one).
pub fn original_provider(originals: &Originals) -> String {
    originals
        .model_provider
        .as_deref()
        .and_then(|repr| repr.parse::<toml_edit::Value>().ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| BUILTIN_OPENAI.to_string())
}

/// A `codex_proxy` table that reaches what the user's own provider reaches, for threads
/// tagged `codex_proxy`: a copy of their provider's table, or for the built-in provider the
/// same endpoint and login.
fn alias_table(doc: &DocumentMut, originals: &Originals) -> Table {
    let original_id = original_provider(originals);
    let mut table = match redirect::provider_table(doc, &original_id) {
        Some(table) => {
            let mut table = table.clone();
            table.set_position(None);
            table
        }
        None => {
            let mut table = Table::new();
            let base = doc
                .get("openai_base_url")
                .and_then(Item::as_str)
                .unwrap_or("https://api.openai.com/v1");
            table.insert("base_url", value(base));
            table.insert("wire_api", value("responses"));
            table.insert("requires_openai_auth", value(true));
            table
        }
    };
    let name = table
        .get("name")
        .and_then(Item::as_str)
        .unwrap_or(&original_id)
        .to_string();
    table.insert("name", value(format!("{name} {ALIAS_MARK}")));
    table.decor_mut().set_prefix(format!(
        "\n# Left by codex-helper so threads made through it stay resumable; \
         `codex-helper session retag --from {PROVIDER_ID} --to {original_id}` makes it unneeded.\n"
    ));
    table
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
        let mut o = helper_table_originals(text).unwrap();
        let on = switch_on(text, plan, BASE, &mut o).unwrap();
        let off = switch_off(&on, &o, false).unwrap();
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

    /// Found by the `codex_patch` fuzz target: `switch off` gave a file without a final line
    /// break one, and turned a CRLF line of an LF file (or the other way round) into the
    /// file's majority break.
    #[test]
    fn line_breaks_the_patch_does_not_own_come_back_exactly() {
        for text in [
            "eadersz333=94",
            "model = \"gpt-5.1\"\n# last comment",
            "\r\n#)",
            "a = 1\r\nb = 2\n",
            "a = 1\nb = 2\r\nc = 3\r\n",
            "a = 1\r\n[projects.\"/p\"]\r\ntrust_level = \"trusted\"",
        ] {
            for preset in Preset::ALL {
                let plan = plan(preset);
                for mut o in [
                    originals(Some(text), &plan).unwrap(),
                    helper_table_originals(Some(text)).unwrap(),
                ] {
                    let on = switch_on(Some(text), &plan, BASE, &mut o).unwrap();
                    let off = switch_off(&on, &o, false).unwrap();
                    assert_eq!(
                        off.as_deref(),
                        Some(text),
                        "{preset}, {:?}: {on:?}",
                        o.redirect
                    );
                }
            }
        }
        // The lines the helper adds end like most of the file's lines.
        let crlf = "a = 1\r\nb = 2\r\nc = 3\n";
        let (on, _) = round_trip(Some(crlf), &plan(Preset::Default));
        assert!(on.contains("[model_providers.codex_proxy]\r\n"), "{on:?}");
        assert!(
            on.contains("c = 3\nmodel_provider = \"codex_proxy\"\r\n"),
            "{on:?}"
        );
    }

    #[test]
    fn a_team_switch_names_the_key_variable_and_undoes_exactly() {
        let team = "https://codex.team.example/v1";
        for preset in [
            Preset::Default,
            Preset::OfficialRelay,
            Preset::ImagegenBridge,
        ] {
            let plan = plan(preset).with_team_key("TEAM_KEY").unwrap();
            for text in [Some(USER), None, Some("model_provider = \"openai\"\n")] {
                let mut o = originals(text, &plan).unwrap();
                assert_eq!(
                    o.redirect,
                    Redirect::HelperTable,
                    "a member key needs our table"
                );
                let on = switch_on(text, &plan, team, &mut o).unwrap();
                let doc: toml::Table = on.parse().unwrap();
                let table = &doc["model_providers"]["codex_proxy"];
                assert_eq!(table["base_url"].as_str(), Some(team), "{on}");
                assert_eq!(table["env_key"].as_str(), Some("TEAM_KEY"), "{on}");
                assert!(table.get("experimental_bearer_token").is_none(), "{on}");
                assert_eq!(doc["model_provider"].as_str(), Some(PROVIDER_ID));
                assert_eq!(
                    switch_off(&on, &o, false).unwrap().as_deref(),
                    text,
                    "{preset}"
                );
            }
        }
        let err = plan(Preset::ChatgptBridge)
            .with_team_key("TEAM_KEY")
            .unwrap_err();
        assert!(err.contains("own login"), "{err}");
        assert!(plan(Preset::Default).with_team_key("1BAD-NAME").is_err());
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
        let mut o = helper_table_originals(Some(USER)).unwrap();
        let on = switch_on(Some(USER), &plan(Preset::Default), BASE, &mut o).unwrap();
        let edited = format!("{on}\n[projects.\"/new\"]\ntrust_level = \"trusted\"\n");
        let off = switch_off(&edited, &o, false).unwrap().unwrap();
        assert_eq!(
            off,
            format!("{USER}\n[projects.\"/new\"]\ntrust_level = \"trusted\"\n")
        );
        // A provider the user chose meanwhile is left alone.
        let moved = on.replace(
            "model_provider = \"codex_proxy\"",
            "model_provider = \"other\"",
        );
        let off = switch_off(&moved, &o, false).unwrap().unwrap();
        assert!(off.contains("model_provider = \"other\""), "{off}");
    }

    #[test]
    fn invalid_configs_are_refused() {
        assert!(matches!(
            helper_table_originals(Some("model_provider = ")),
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
