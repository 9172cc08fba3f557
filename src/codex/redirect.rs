//! Redirecting the provider Codex already uses, instead of adding one.
//!
//! Codex tags every thread with the id of the provider it was made with, and `resume` (and
//! the session picker) only list threads of the provider in force. Pointing Codex at a new
//! provider id therefore hides the user's history while switched on, and hides what was made
//! meanwhile once switched off. Redirecting keeps the id:
//!
//! - a custom provider (`[model_providers.ID]`) gets its own `base_url` and the preset's few
//!   keys changed in place ([`provider_on`]); every original is recorded and put back exactly
//!   ([`provider_off`]). Keys the user has are only ever replaced, never removed, so their
//!   position in the table survives; keys the helper adds are appended and removed again;
//! - the built-in `openai` provider cannot be given another table (Codex refuses
//!   `[model_providers.openai]`), but the top-level `openai_base_url` redirects it
//!   ([`builtin_on`], [`builtin_off`]).
//!
//! Pure text edits; the IO is in [`super::switch`].

use std::collections::BTreeMap;

use toml_edit::{DocumentMut, Item, Table, Value};

use super::doc::{PatchError, record_once, restore_recorded, restore_value, set_keeping_decor};
use super::preset::{Flag, PatchPlan};

/// Codex's id of its built-in provider.
pub const BUILTIN_OPENAI: &str = "openai";

/// The bearer token `switch on` gives Codex so that it fetches the model catalog; the proxy
/// drops it instead of forwarding it.
pub const PLACEHOLDER_TOKEN: &str = "codex-helper-placeholder";

/// The table of provider `id`, if the config has one.
pub fn provider_table<'a>(doc: &'a DocumentMut, id: &str) -> Option<&'a Table> {
    doc.get("model_providers")?.get(id)?.as_table()
}

fn provider_table_mut<'a>(doc: &'a mut DocumentMut, id: &str) -> Result<&'a mut Table, PatchError> {
    doc.get_mut("model_providers")
        .and_then(|p| p.get_mut(id))
        .and_then(Item::as_table_mut)
        .ok_or(PatchError::NotATable("model_providers.<provider in force>"))
}

/// Points the user's provider `id` at the proxy with `plan`'s keys, recording each original
/// in `recorded` (the first time a key is touched).
pub fn provider_on(
    doc: &mut DocumentMut,
    id: &str,
    plan: &PatchPlan,
    base_url: &str,
    recorded: &mut BTreeMap<String, Option<String>>,
) -> Result<(), PatchError> {
    let table = provider_table_mut(doc, id)?;
    let catalog_url = format!("{}/models", base_url.trim_end_matches('/'));
    let mut set = |table: &mut Table, key: &str, value: Value| {
        record_once(recorded, table, key);
        set_keeping_decor(table, key, value);
    };
    set(table, "base_url", base_url.into());
    set(table, "name", plan.provider_name.into());
    // Codex fetches a catalog only from here; the proxy translates the relay's list for it.
    set(table, "model_catalog_url", catalog_url.as_str().into());
    for (key, flag) in [
        ("requires_openai_auth", plan.requires_openai_auth),
        ("supports_websockets", plan.supports_websockets),
    ] {
        match flag {
            Flag::Set(on) => set(table, key, on.into()),
            // Off is Codex's default for both: a key the user has is set to false, not removed.
            Flag::Remove if table.contains_key(key) => set(table, key, false.into()),
            Flag::Remove => {}
        }
    }
    if !table.contains_key("request_max_retries") {
        // The helper retries and fails over itself; Codex retrying too multiplies the wait.
        set(table, "request_max_retries", 0.into());
    }
    // Codex asks a provider for its catalog only when it holds a credential for it.
    let uses_login = table.get("requires_openai_auth").and_then(Item::as_bool) == Some(true);
    let placeholder = table
        .get("experimental_bearer_token")
        .and_then(Item::as_str)
        == Some(PLACEHOLDER_TOKEN);
    let has_credential = table.contains_key("env_key")
        || (table.contains_key("experimental_bearer_token") && !placeholder);
    if !uses_login && !has_credential {
        set(table, "experimental_bearer_token", PLACEHOLDER_TOKEN.into());
    } else if placeholder {
        // Put back what was there before the placeholder (nothing).
        if let Some(original) = recorded.get("experimental_bearer_token").cloned() {
            match original {
                Some(repr) => restore_value(table, "experimental_bearer_token", &repr),
                None => {
                    table.remove("experimental_bearer_token");
                }
            }
        }
    }
    Ok(())
}

/// Puts the provider's recorded keys back. A provider the user removed meanwhile is left
/// removed.
pub fn provider_off(doc: &mut DocumentMut, id: &str, recorded: &BTreeMap<String, Option<String>>) {
    if let Ok(table) = provider_table_mut(doc, id) {
        restore_recorded(table, recorded);
    }
}

/// Points the built-in provider at the proxy through `openai_base_url`.
pub fn builtin_on(doc: &mut DocumentMut, base_url: &str) {
    set_keeping_decor(doc.as_table_mut(), "openai_base_url", base_url.into());
}

/// Puts `openai_base_url` back as it was (`None`: it was absent).
pub fn builtin_off(doc: &mut DocumentMut, original: Option<&str>) {
    let root = doc.as_table_mut();
    match original {
        Some(repr) => restore_value(root, "openai_base_url", repr),
        None => {
            root.remove("openai_base_url");
        }
    }
}

/// The id of the provider Codex uses: root `model_provider`, else the built-in one.
pub fn provider_in_force(doc: &DocumentMut) -> String {
    doc.get("model_provider")
        .and_then(Item::as_str)
        .unwrap_or(BUILTIN_OPENAI)
        .to_string()
}

/// The id of the provider in force when the config looks switched on to the helper at
/// `helper_url`, judged from the files alone (only needed when the switch state is lost): the
/// built-in provider with `openai_base_url` at the helper, the helper's own `codex_proxy`
/// table on loopback, or a custom provider at the helper or on loopback with the catalog URL
/// `switch on` sets beside it. A relay or gateway of the user's own on loopback elsewhere
/// does not count.
pub fn looks_switched_on(
    doc: &DocumentMut,
    helper_table_id: &str,
    helper_url: &str,
) -> Option<String> {
    let id = provider_in_force(doc);
    let same = |url: &str| url.trim_end_matches('/') == helper_url.trim_end_matches('/');
    let switched = if id == BUILTIN_OPENAI {
        doc.get("openai_base_url")
            .and_then(Item::as_str)
            .is_some_and(same)
    } else {
        let table = provider_table(doc, &id)?;
        let base = table.get("base_url").and_then(Item::as_str)?;
        let catalog = table.get("model_catalog_url").and_then(Item::as_str);
        same(base)
            || (crate::net::is_loopback_url(base)
                && (id == helper_table_id
                    || catalog == Some(format!("{}/models", base.trim_end_matches('/')).as_str())))
    };
    switched.then_some(id)
}
