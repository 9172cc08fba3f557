//! Small format-preserving edits of Codex's `config.toml` (`toml_edit`), shared by the ways
//! `switch on` can redirect Codex: a value is replaced in place, keeping the key, the comments
//! above it and the spacing and comment around it, and put back the same way.

use toml_edit::{DocumentMut, Item, Table, Value};

/// Why a config could not be patched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("Codex's config.toml is not valid TOML ({0}); fix it before switching")]
    Invalid(String),
    #[error("Codex's config.toml has `{0}` that is not a table; fix it before switching")]
    NotATable(&'static str),
}

pub fn parse(text: &str) -> Result<DocumentMut, PatchError> {
    text.parse::<DocumentMut>()
        .map_err(|e| PatchError::Invalid(e.to_string().lines().next().unwrap_or("").to_string()))
}

/// `doc`, parsed from `before` and edited, as text: every line the edit left alone is kept
/// as in `before`, line break included (see [`super::lines::keep_untouched`]).
pub fn render(before: &str, doc: &DocumentMut, restore_unterminated_end: bool) -> String {
    let untouched = parse(before).map(|d| d.to_string()).unwrap_or_default();
    super::lines::keep_untouched(
        before,
        &untouched,
        &doc.to_string(),
        restore_unterminated_end,
    )
}

/// A value as written, without the spacing and comment around it (those stay in the file
/// while switched on and are reused when the value is put back).
pub fn bare(value: &Value) -> String {
    let mut value = value.clone();
    value.decor_mut().clear();
    value.to_string()
}

/// Puts a recorded value ([`bare`]) back in place of the current one, keeping the current decor.
pub fn restore_value(table: &mut Table, key: &str, repr: &str) {
    if let Ok(original) = repr.parse::<Value>() {
        set_keeping_decor(table, key, original);
    }
}

/// Replaces a value in place: the key (with the comments above it) and the spacing and
/// comment around the old value stay as they were.
pub fn set_keeping_decor(table: &mut Table, key: &str, new: Value) {
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

/// Records `key` of `table` as it is now, the first time only (`None` inside when absent), so
/// that repeated `switch on`s keep the user's original.
pub fn record_once(
    recorded: &mut std::collections::BTreeMap<String, Option<String>>,
    table: &Table,
    key: &str,
) {
    recorded
        .entry(key.to_string())
        .or_insert_with(|| table.get(key).and_then(Item::as_value).map(bare));
}

/// Puts every recorded key back: the original value in place, or the key removed when the
/// helper added it.
pub fn restore_recorded(
    table: &mut Table,
    recorded: &std::collections::BTreeMap<String, Option<String>>,
) {
    for (key, original) in recorded {
        match original {
            Some(repr) => restore_value(table, key, repr),
            None => {
                table.remove(key);
            }
        }
    }
}
