//! Migrating the original codex-helper's older config files to `version = 5`.
//!
//! Every format it ever wrote is read: unversioned station files (`[codex.stations]` or
//! `[codex.configs]`, and the same as `config.json`), v2 (providers plus station groups), v3
//! (providers plus a `policy`/`order` routing table) and v4 (the v5 shape under another
//! number). The result is the route-graph layout this helper reads. Edits are made with
//! `toml_edit` on the user's own document, so comments, key order and everything the
//! migration does not touch stay as they were; tables that change shape (a station becoming
//! a provider) keep the comment above their header.
//!
//! Pure (text in, text and warnings out), but for [`refuse_json_only`], which looks at which
//! files exist. `cli::config_cmd` shows the diff and writes.

mod mask;
mod routing_v3;
mod stations;

use std::fmt;

use anyhow::{Context, bail};
use toml_edit::{DocumentMut, Item, Table, value};

use super::model::CURRENT_VERSION;

/// The kind of file a config is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Already `version = 5`.
    Current,
    /// `version = 4`, or an unversioned route-graph file.
    V4,
    /// Providers plus a legacy `policy`/`order` routing table.
    V3,
    /// Providers plus station groups.
    V2,
    /// The first format: stations holding upstream lists (TOML, unversioned or `version = 1`).
    Legacy,
    /// The first format as `config.json`.
    Json,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "version 5",
            Self::V4 => "version 4",
            Self::V3 => "version 3",
            Self::V2 => "version 2",
            Self::Legacy => "version 1 (stations)",
            Self::Json => "config.json (stations)",
        }
    }

    /// Whether this helper reads the file as it is (v4 is the v5 shape).
    pub fn is_readable(self) -> bool {
        matches!(self, Self::Current | Self::V4)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A migrated config.
#[derive(Debug, Clone)]
pub struct Migration {
    pub source: Source,
    /// The `version = 5` text.
    pub text: String,
    /// What the user should check: flattened groups, dropped stations, widened scopes.
    pub warnings: Vec<String>,
}

/// Tells what kind of file `doc` is, as the original did: its `version`, else its shape
/// (a `routing` table with `entry` or `routes` is v4, any other `routing` table v3,
/// stations are the first format, anything else the v4 shape without its number).
pub fn detect(doc: &toml::Table) -> Source {
    match doc.get("version").and_then(toml::Value::as_integer) {
        Some(5) => return Source::Current,
        Some(4) => return Source::V4,
        Some(3) => return Source::V3,
        Some(2) => return Source::V2,
        Some(1) => return Source::Legacy,
        _ => {}
    }
    let services = ["codex", "claude"].map(|s| doc.get(s).and_then(toml::Value::as_table));
    let routing = services
        .iter()
        .flatten()
        .find_map(|s| s.get("routing").and_then(toml::Value::as_table));
    if let Some(routing) = routing {
        return if routing.contains_key("entry") || routing.contains_key("routes") {
            Source::V4
        } else {
            Source::V3
        };
    }
    let has = |key: &str| services.iter().flatten().any(|s| s.contains_key(key));
    if has("stations") || has("configs") || has("active") {
        return Source::Legacy;
    }
    // Providers alone (or nothing recognisable): the v4 shape without its number.
    Source::V4
}

/// The one command to run, for messages about a file that needs it.
pub const MIGRATE_HINT: &str = "run `codex-helper config migrate` to see the version 5 file, then `codex-helper config migrate --write` to convert it (a .bak copy is kept)";

/// `serve` refuses a home with only the original's `config.json` rather than start without
/// the user's relays (a new config.toml would be created and read first from then on).
pub fn refuse_json_only(homes: &super::Homes) -> anyhow::Result<()> {
    let json = homes.helper.join("config.json");
    if !homes.helper_config().exists() && json.exists() {
        bail!(
            "{} is a config of the original codex-helper; {MIGRATE_HINT}",
            json.display()
        );
    }
    Ok(())
}

/// Migrates a TOML config to `version = 5`. A file that is already version 5 comes back
/// unchanged.
pub fn migrate_toml(text: &str) -> anyhow::Result<Migration> {
    let data: toml::Table = toml::from_str(text).context("the file is not valid TOML")?;
    let source = detect(&data);
    if source == Source::Current {
        return Ok(Migration {
            source,
            text: text.to_string(),
            warnings: Vec::new(),
        });
    }
    let (lead, rest) = split_leading_comments(text);
    let mut doc: DocumentMut = rest.parse().context("the file is not valid TOML")?;
    let warnings = migrate_doc(&mut doc, &data, source)?;
    // A last comment line without its newline would swallow the `version` line after it.
    let end = if lead.is_empty() || lead.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    Ok(Migration {
        source,
        text: format!("{lead}{end}{}", spaced_version(&doc)),
        warnings,
    })
}

/// Migrates `config.json` (the first format, as JSON) to a new `version = 5` TOML text.
pub fn migrate_json(text: &str) -> anyhow::Result<Migration> {
    let json: serde_json::Value =
        serde_json::from_str(text).context("config.json is not valid JSON")?;
    let data: toml::Table = toml::Table::try_from(without_nulls(json))
        .context("config.json cannot be expressed as TOML")?;
    if let Some(version) = data.get("version").and_then(toml::Value::as_integer)
        && version > 1
    {
        bail!(
            "config.json says version {version}; only the first (station) format was ever written as JSON"
        );
    }
    let mut doc: DocumentMut = toml::to_string(&data)
        .context("config.json cannot be expressed as TOML")?
        .parse()
        .context("config.json cannot be expressed as TOML")?;
    let warnings = migrate_doc(&mut doc, &data, Source::Legacy)?;
    let header =
        "# codex-helper config, migrated from config.json by `codex-helper config migrate`.\n\n";
    Ok(Migration {
        source: Source::Json,
        text: format!("{header}{}", spaced_version(&doc)),
        warnings,
    })
}

fn migrate_doc(
    doc: &mut DocumentMut,
    data: &toml::Table,
    source: Source,
) -> anyhow::Result<Vec<String>> {
    let mut warnings = Vec::new();
    match source {
        Source::Current => {}
        Source::V4 => {}
        Source::V3 => {
            fold_auth_blocks(doc);
            routing_v3::migrate(doc, data, &mut warnings)?;
        }
        Source::V2 => {
            fold_auth_blocks(doc);
            stations::migrate_v2(doc, data, &mut warnings)?;
        }
        Source::Legacy | Source::Json => stations::migrate_legacy(doc, data, &mut warnings)?,
    }
    hide_empty_service_header(doc);
    add_default_affinity(doc);
    clear_profile_stations(doc, &mut warnings);
    nest_flat_retry_keys(doc, &mut warnings);
    set_version(doc);
    Ok(warnings)
}

/// The document's text, with a blank line between a lone `version = 5` and the first table.
fn spaced_version(doc: &DocumentMut) -> String {
    let text = doc.to_string();
    let lone = doc.iter().filter(|(_, item)| item.is_value()).count() == 1;
    match text.strip_prefix("version = 5\n") {
        Some(rest) if lone && !rest.is_empty() && !rest.starts_with('\n') => {
            format!("version = 5\n\n{rest}")
        }
        _ => text,
    }
}

/// The comment lines and blank lines at the very top, which belong above everything
/// (above the `version` key the migration puts first).
fn split_leading_comments(text: &str) -> (&str, &str) {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            end += line.len();
        } else {
            break;
        }
    }
    text.split_at(end)
}

/// JSON without nulls and empty objects (TOML has no null; an empty table says nothing).
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_nulls(v)))
                .filter(|(_, v)| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(without_nulls)
                .collect(),
        ),
        other => other,
    }
}

/// `version = 5`, first among the top-level keys (its old line is reused when there was one).
fn set_version(doc: &mut DocumentMut) {
    let root = doc.as_table_mut();
    match root.get_mut("version") {
        Some(item) if item.is_value() => {
            let decor = item.as_value().map(|v| v.decor().clone());
            *item = value(i64::from(CURRENT_VERSION));
            if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
                *v.decor_mut() = decor;
            }
        }
        _ => {
            root.insert("version", value(i64::from(CURRENT_VERSION)));
        }
    }
    root.sort_values_by(|a, _, b, _| (a.get() != "version").cmp(&(b.get() != "version")));
}

/// The original let a provider's key sit in an `auth` table; its own `auth_token`, … keys
/// win over the table's. Here they are written inline (`auth` goes).
pub(super) fn fold_auth_blocks(doc: &mut DocumentMut) {
    let Some(providers) = doc
        .get_mut("codex")
        .and_then(|c| c.get_mut("providers"))
        .and_then(Item::as_table_like_mut)
    else {
        return;
    };
    for (_, provider) in providers.iter_mut() {
        if let Some(provider) = provider.as_table_like_mut() {
            fold_auth(provider);
        }
    }
}

/// Moves the keys of `table.auth` to `table` itself, unless already set there. The comment
/// above `auth` goes above the first key moved.
pub(super) fn fold_auth(table: &mut dyn toml_edit::TableLike) {
    let key_comment = table
        .key("auth")
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|p| p.as_str())
        .map(str::to_string);
    let Some(auth) = table.remove("auth") else {
        return;
    };
    let comment = match &auth {
        Item::Table(t) => t
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .map(str::to_string),
        _ => key_comment,
    }
    .filter(|c| c.contains('#'));
    let Some(auth) = auth.as_table_like() else {
        return;
    };
    let mut first = true;
    for key in ["auth_token", "auth_token_env", "api_key", "api_key_env"] {
        if table.get(key).is_none()
            && let Some(v) = auth.get(key).and_then(Item::as_value)
        {
            table.insert(key, Item::Value(v.clone().decorated(" ", "")));
            if first && let (Some(comment), Some(mut k)) = (&comment, table.key_mut(key)) {
                k.leaf_decor_mut()
                    .set_prefix(comment.trim_start_matches('\n'));
            }
            first = false;
        }
    }
}

/// A `[codex]` left with no keys of its own (its `active` or `active_station` moved into the
/// route) loses its now empty header.
fn hide_empty_service_header(doc: &mut DocumentMut) {
    if let Some(codex) = doc.get_mut("codex").and_then(Item::as_table_mut)
        && codex
            .iter()
            .all(|(_, item)| item.is_table() || item.is_array_of_tables())
    {
        codex.set_implicit(true);
    }
}

/// `affinity_policy = "fallback-sticky"` written into a route graph that does not say, as
/// the original did when it migrated (the default either way; written so it is visible).
fn add_default_affinity(doc: &mut DocumentMut) {
    let Some(routing) = doc
        .get_mut("codex")
        .and_then(|c| c.get_mut("routing"))
        .and_then(Item::as_table_like_mut)
    else {
        return;
    };
    if routing.get("affinity_policy").is_none() {
        routing.insert("affinity_policy", value("fallback-sticky"));
    }
}

/// Profiles' `station` bindings mean nothing without stations: dropped, as the original did.
fn clear_profile_stations(doc: &mut DocumentMut, warnings: &mut Vec<String>) {
    let Some(profiles) = doc
        .get_mut("codex")
        .and_then(|c| c.get_mut("profiles"))
        .and_then(Item::as_table_like_mut)
    else {
        return;
    };
    for (name, profile) in profiles.iter_mut() {
        if let Some(profile) = profile.as_table_like_mut()
            && let Some(station) = profile.remove("station")
        {
            warnings.push(format!(
                "profile `{name}`: its station binding ({}) was removed; stations no longer exist",
                station.as_str().unwrap_or("?")
            ));
        }
    }
}

/// The original's oldest `[retry]` had `max_attempts`, `on_status`, `on_class` and
/// `strategy` at the top, meaning the same-endpoint layer: moved into `[retry.upstream]`.
fn nest_flat_retry_keys(doc: &mut DocumentMut, warnings: &mut Vec<String>) {
    let Some(retry) = doc.get_mut("retry").and_then(Item::as_table_mut) else {
        return;
    };
    let mut moved = Vec::new();
    for key in ["max_attempts", "on_status", "on_class", "strategy"] {
        let formatted = retry.key(key).cloned();
        if let (Some(formatted), Some(item)) = (formatted, retry.remove(key)) {
            moved.push((key, formatted, item));
        }
    }
    if moved.is_empty() {
        return;
    }
    if !retry.contains_key("upstream") {
        let mut upstream = Table::new();
        upstream.set_implicit(false);
        retry.insert("upstream", Item::Table(upstream));
    }
    let Some(upstream) = retry.get_mut("upstream").and_then(Item::as_table_like_mut) else {
        warnings.push("[retry] upstream is not a table; flat retry keys were dropped".into());
        return;
    };
    let names: Vec<&str> = moved.iter().map(|(k, _, _)| *k).collect();
    for (key, formatted, item) in moved {
        if upstream.get(key).is_none() {
            upstream.entry_format(&formatted).or_insert(item);
        }
    }
    warnings.push(format!(
        "[retry] {} moved into [retry.upstream] (their meaning in the original)",
        names.join(", ")
    ));
}

/// A unified diff of `old` to `new`, with file names in the header; inline keys and proxy
/// passwords masked (it is shown, and its context lines would carry them).
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let (old, new) = (mask::mask_secrets(old), mask::mask_secrets(new));
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Source {
        detect(&toml::from_str(text).unwrap())
    }

    /// Found by fuzzing: a file of comments whose last line has no newline got its
    /// `version = 5` inside that comment, so the migrated file was still unversioned.
    #[test]
    fn a_last_comment_without_a_newline_keeps_the_version_out_of_it() {
        let migrated = migrate_toml("# mine\n#[").unwrap();
        assert_eq!(migrated.text, "# mine\n#[\nversion = 5\n");
        assert_eq!(
            migrate_toml(&migrated.text).unwrap().source,
            Source::Current
        );
    }

    #[test]
    fn detects_every_format() {
        assert_eq!(kind("version = 5"), Source::Current);
        assert_eq!(kind("version = 4"), Source::V4);
        assert_eq!(kind("version = 3"), Source::V3);
        assert_eq!(kind("version = 2"), Source::V2);
        assert_eq!(kind("[codex.routing]\nentry = \"main\"\n"), Source::V4);
        assert_eq!(
            kind("[codex.routing]\npolicy = \"ordered-failover\"\n"),
            Source::V3
        );
        assert_eq!(
            kind("[codex]\nactive = \"a\"\n[codex.configs.a]\nupstreams = []\n"),
            Source::Legacy
        );
        assert_eq!(
            kind("[codex.providers.a]\nbase_url = \"https://a\"\n"),
            Source::V4
        );
    }

    #[test]
    fn v4_becomes_v5_with_comments_and_order_kept() {
        let text = "# mine\nversion = 4 # old\n\n[codex.providers.a] # relay\nbase_url = \"https://a\"\n\n[codex.routing]\nentry = \"main\"\n[codex.routing.routes.main]\nchildren = [\"a\"]\n";
        let m = migrate_toml(text).unwrap();
        assert_eq!(m.source, Source::V4);
        assert_eq!(
            m.text,
            "# mine\nversion = 5 # old\n\n[codex.providers.a] # relay\nbase_url = \"https://a\"\n\n[codex.routing]\nentry = \"main\"\naffinity_policy = \"fallback-sticky\"\n[codex.routing.routes.main]\nchildren = [\"a\"]\n"
        );
        let diff = unified_diff(text, &m.text, "a", "b");
        assert!(
            diff.contains("-version = 4 # old\n+version = 5 # old\n"),
            "{diff}"
        );
    }

    #[test]
    fn flat_retry_keys_move_to_the_upstream_layer() {
        let m = migrate_toml(
            "version = 4\n[retry]\nmax_attempts = 3\non_status = \"429\"\nbackoff_ms = 100\n",
        )
        .unwrap();
        let v: toml::Table = toml::from_str(&m.text).unwrap();
        assert_eq!(v["retry"]["upstream"]["max_attempts"].as_integer(), Some(3));
        assert_eq!(v["retry"]["upstream"]["on_status"].as_str(), Some("429"));
        assert_eq!(v["retry"]["backoff_ms"].as_integer(), Some(100));
        assert!(v["retry"].get("max_attempts").is_none());
    }
}
