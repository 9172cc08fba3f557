//! Station files (the first format and v2) to providers and one ordered-failover route.
//!
//! The original's own order is kept: stations (v2: groups) by `level` (lower first), the
//! active one first among equals, then by name; disabled ones are left out unless active;
//! within a v2 group, `preferred` members first. Each provider appears once, at its first
//! place.
//!
//! The first format's stations hold lists of upstreams. A station becomes one provider (its
//! name, its alias, the comment above it); upstreams with the same credential become that
//! provider's endpoints, tried in their listed order; an upstream with a different
//! credential becomes a provider of its own (`<station>-2`, …).

use std::collections::BTreeMap;

use anyhow::bail;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value, value};

use crate::config::provider_spec::provider_id_from;

/// One station or group, for ordering.
struct Group {
    name: String,
    level: i64,
    enabled: bool,
    /// Providers, in the order the group lists them.
    providers: Vec<String>,
}

/// The credential keys, in the order they are written.
const AUTH_KEYS: [&str; 4] = ["auth_token", "auth_token_env", "api_key", "api_key_env"];

/// The first format (`[codex.stations.*]` / `[codex.configs.*]` with `upstreams`).
pub fn migrate_legacy(
    doc: &mut DocumentMut,
    data: &toml::Table,
    warnings: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some((codex, key, stations)) = stations_of(data, "configs") else {
        return Ok(());
    };
    let active = active_station(codex.get("active"), stations, warnings);

    let codex_doc = service_table(doc);
    // The comment above each station's header goes with it to its provider.
    let comments = station_comments(codex_doc, key);
    codex_doc.remove(key);
    codex_doc.remove("active");

    let mut taken: Vec<String> = existing_providers(codex);
    let mut groups = Vec::new();
    let mut providers = Vec::new();
    for (name, station) in stations {
        let Some(station) = station.as_table() else {
            bail!("codex.{key}.{name} is not a table");
        };
        let upstreams: Vec<&toml::Table> = station
            .get("upstreams")
            .and_then(toml::Value::as_array)
            .map(|list| list.iter().filter_map(toml::Value::as_table).collect())
            .unwrap_or_default();
        if upstreams.is_empty() {
            warnings.push(format!(
                "station `{name}` has no upstreams; it was left out"
            ));
            continue;
        }
        let enabled = station
            .get("enabled")
            .and_then(toml::Value::as_bool)
            .unwrap_or(true);
        let alias = station.get("alias").and_then(toml::Value::as_str);
        let mut ids = Vec::new();
        for (n, members) in by_credential(&upstreams).into_iter().enumerate() {
            let id = unique_id(&provider_id_from(name), n, &mut taken);
            let mut table = station_provider(alias, enabled, &members);
            if n == 0
                && let Some(comment) = comments.get(name.as_str())
            {
                table.decor_mut().set_prefix(comment.clone());
            }
            providers.push((id.clone(), table));
            ids.push(id);
        }
        groups.push(Group {
            name: name.clone(),
            level: station
                .get("level")
                .and_then(toml::Value::as_integer)
                .unwrap_or(1),
            enabled,
            providers: ids,
        });
    }
    let provider_table = providers_table(service_table(doc));
    for (id, table) in providers {
        provider_table.insert(&id, Item::Table(table));
    }
    write_route(doc, groups, active.as_deref(), warnings);
    Ok(())
}

/// v2: providers are already providers (endpoints included); stations (`groups`) become the
/// route.
pub fn migrate_v2(
    doc: &mut DocumentMut,
    data: &toml::Table,
    warnings: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some((codex, key, stations)) = stations_of(data, "groups") else {
        return Ok(());
    };
    let active = codex
        .get("active_station")
        .or_else(|| codex.get("active_group"))
        .and_then(toml::Value::as_str)
        .map(str::to_string);
    let empty = toml::Table::new();
    let providers = codex
        .get("providers")
        .and_then(toml::Value::as_table)
        .unwrap_or(&empty);
    let mut groups = Vec::new();
    for (name, group) in stations {
        let Some(group) = group.as_table() else {
            bail!("codex.{key}.{name} is not a table");
        };
        let mut members: Vec<(bool, usize, String)> = Vec::new();
        for (i, member) in group
            .get("members")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(provider) = member.get("provider").and_then(toml::Value::as_str) else {
                bail!("codex.{key}.{name}.members[{i}] has no provider");
            };
            if !providers.contains_key(provider) {
                bail!("station `{name}` names provider `{provider}`, which does not exist");
            }
            let scoped = member
                .get("endpoint_names")
                .or_else(|| member.get("endpoints"))
                .and_then(toml::Value::as_array)
                .is_some_and(|l| !l.is_empty());
            if scoped {
                warnings.push(format!(
                    "station `{name}` used only some endpoints of `{provider}`; the route now uses all of its enabled endpoints"
                ));
            }
            let preferred = member
                .get("preferred")
                .and_then(toml::Value::as_bool)
                .unwrap_or(false);
            members.push((!preferred, i, provider.to_string()));
        }
        members.sort();
        groups.push(Group {
            name: name.clone(),
            level: group
                .get("level")
                .and_then(toml::Value::as_integer)
                .unwrap_or(1),
            enabled: group
                .get("enabled")
                .and_then(toml::Value::as_bool)
                .unwrap_or(true),
            providers: members.into_iter().map(|(_, _, p)| p).collect(),
        });
    }
    let codex_doc = service_table(doc);
    // The comments above the stations go above the route they become.
    let comment: String = station_comments(codex_doc, key).into_values().collect();
    for old in [key, "active_station", "active_group"] {
        codex_doc.remove(old);
    }
    inline_default_endpoints(providers_table(codex_doc));
    if !groups.is_empty() {
        write_route(doc, groups, active.as_deref(), warnings);
        if let Some(routing) = service_table(doc)
            .get_mut("routing")
            .and_then(Item::as_table_mut)
            && !comment.is_empty()
        {
            routing.decor_mut().set_prefix(comment);
        }
    }
    Ok(())
}

/// `[codex]`, the name its stations are under (`stations`, or the older `other`) and them
/// (an empty table when there are none); `None` without `[codex]`.
fn stations_of<'a>(
    data: &'a toml::Table,
    other: &'static str,
) -> Option<(&'a toml::Table, &'static str, &'a toml::Table)> {
    static EMPTY: std::sync::OnceLock<toml::Table> = std::sync::OnceLock::new();
    let codex = data.get("codex").and_then(toml::Value::as_table)?;
    let key = if codex.contains_key("stations") {
        "stations"
    } else {
        other
    };
    let stations = codex
        .get(key)
        .and_then(toml::Value::as_table)
        .unwrap_or_else(|| EMPTY.get_or_init(toml::Table::new));
    Some((codex, key, stations))
}

/// The comment above each station's header (`[codex.<key>.<name>]`), by station.
fn station_comments(codex: &Table, key: &str) -> BTreeMap<String, String> {
    let mut comments = BTreeMap::new();
    if let Some(old) = codex.get(key).and_then(Item::as_table) {
        for (name, item) in old.iter() {
            if let Some(prefix) = item
                .as_table()
                .and_then(|t| t.decor().prefix())
                .and_then(|p| p.as_str())
                .filter(|p| p.contains('#'))
            {
                comments.insert(name.to_string(), prefix.to_string());
            }
        }
    }
    comments
}

/// The first format's `active`: a station name, or `true` for the first enabled station
/// (by level, then name), `false` for none.
fn active_station(
    active: Option<&toml::Value>,
    stations: &toml::Table,
    warnings: &mut Vec<String>,
) -> Option<String> {
    match active? {
        toml::Value::String(name) if stations.contains_key(name) => Some(name.clone()),
        toml::Value::String(name) => {
            warnings.push(format!(
                "the active station `{name}` does not exist; ignored"
            ));
            None
        }
        toml::Value::Boolean(true) => stations
            .iter()
            .filter(|(_, s)| s.get("enabled").and_then(toml::Value::as_bool) != Some(false))
            .min_by_key(|(name, s)| {
                (
                    s.get("level")
                        .and_then(toml::Value::as_integer)
                        .unwrap_or(1),
                    name.to_string(),
                )
            })
            .map(|(name, _)| name.clone()),
        _ => None,
    }
}

/// Upstreams grouped by credential, in first-appearance order.
fn by_credential<'a>(upstreams: &[&'a toml::Table]) -> Vec<Vec<&'a toml::Table>> {
    let mut groups: Vec<(Vec<Option<String>>, Vec<&toml::Table>)> = Vec::new();
    for upstream in upstreams {
        let key = credential(upstream);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(upstream),
            None => groups.push((key, vec![upstream])),
        }
    }
    groups.into_iter().map(|(_, m)| m).collect()
}

/// An upstream's credential: its `auth` table's keys, with its own keys winning.
fn credential(upstream: &toml::Table) -> Vec<Option<String>> {
    let auth = upstream.get("auth").and_then(toml::Value::as_table);
    AUTH_KEYS
        .iter()
        .map(|k| {
            upstream
                .get(*k)
                .or_else(|| auth.and_then(|a| a.get(*k)))
                .and_then(toml::Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

/// A provider for upstreams sharing one credential: one `base_url`, or endpoints.
fn station_provider(alias: Option<&str>, enabled: bool, members: &[&toml::Table]) -> Table {
    let mut table = Table::new();
    let first = members[0];
    let alias = alias.or_else(|| {
        first
            .get("tags")
            .and_then(|t| t.get("provider_id"))
            .and_then(toml::Value::as_str)
    });
    if let Some(alias) = alias {
        table.insert("alias", value(alias));
    }
    if !enabled {
        table.insert("enabled", value(false));
    }
    let mut endpoints = Table::new();
    endpoints.set_implicit(true);
    let mut names: Vec<String> = Vec::new();
    for (i, upstream) in members.iter().enumerate() {
        let base_url = upstream
            .get("base_url")
            .and_then(toml::Value::as_str)
            .unwrap_or_default();
        if members.len() == 1 {
            table.insert("base_url", value(base_url));
            for (k, v) in credential(upstream).into_iter().zip(AUTH_KEYS) {
                if let Some(k) = k {
                    table.insert(v, value(k));
                }
            }
            copy_maps(upstream, &mut table);
            break;
        }
        if i == 0 {
            for (k, v) in credential(upstream).into_iter().zip(AUTH_KEYS) {
                if let Some(k) = k {
                    table.insert(v, value(k));
                }
            }
        }
        let mut endpoint = Table::new();
        endpoint.insert("base_url", value(base_url));
        endpoint.insert("priority", value(i as i64));
        copy_maps(upstream, &mut endpoint);
        let name = unique_id(
            &host_label(base_url).unwrap_or_else(|| format!("e{}", i + 1)),
            0,
            &mut names,
        );
        endpoints.insert(&name, Item::Table(endpoint));
    }
    if !endpoints.is_empty() {
        table.insert("endpoints", Item::Table(endpoints));
    }
    table
}

/// Tags (without the original's import bookkeeping), supported models and model mapping.
fn copy_maps(upstream: &toml::Table, into: &mut Table) {
    for key in ["tags", "supported_models", "model_mapping"] {
        let Some(map) = upstream
            .get(key)
            .or_else(|| match key {
                "supported_models" => upstream.get("supportedModels"),
                "model_mapping" => upstream.get("modelMapping"),
                _ => None,
            })
            .and_then(toml::Value::as_table)
        else {
            continue;
        };
        let mut inline = InlineTable::new();
        for (k, v) in map {
            if key == "tags"
                && matches!(
                    k.as_str(),
                    "provider_id" | "requires_openai_auth" | "source"
                )
            {
                continue;
            }
            let v: Value = match v {
                toml::Value::Boolean(b) => (*b).into(),
                toml::Value::String(s) => s.as_str().into(),
                other => other.to_string().into(),
            };
            inline.insert(k, v);
        }
        if !inline.is_empty() {
            into.insert(key, value(inline));
        }
    }
}

/// The first label of a URL's host, as an endpoint name (`https://hk.relay.example` → `hk`).
fn host_label(base_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let host = url.host_str()?;
    let label = host.split('.').next().filter(|l| !l.is_empty())?;
    Some(provider_id_from(label))
}

/// `base`, or `base-N` for the `n`th (0-based) of a kind or when taken; recorded as taken.
fn unique_id(base: &str, n: usize, taken: &mut Vec<String>) -> String {
    let mut k = n + 1;
    let mut id = if n == 0 {
        base.to_string()
    } else {
        format!("{base}-{k}")
    };
    while taken.contains(&id) {
        k += 1;
        id = format!("{base}-{k}");
    }
    taken.push(id.clone());
    id
}

fn existing_providers(codex: &toml::Table) -> Vec<String> {
    codex
        .get("providers")
        .and_then(toml::Value::as_table)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// `[codex]`, created when missing.
fn service_table(doc: &mut DocumentMut) -> &mut Table {
    let root = doc.as_table_mut();
    if !root.contains_key("codex") {
        let mut t = Table::new();
        t.set_implicit(true);
        root.insert("codex", Item::Table(t));
    }
    root["codex"].as_table_mut().expect("codex is a table")
}

fn providers_table(codex: &mut Table) -> &mut Table {
    if !codex.contains_key("providers") {
        let mut t = Table::new();
        t.set_implicit(true);
        codex.insert("providers", Item::Table(t));
    }
    codex["providers"]
        .as_table_mut()
        .expect("providers is a table")
}

/// A single plain endpoint named `default` is written as the provider's `base_url`.
fn inline_default_endpoints(providers: &mut Table) {
    for (_, provider) in providers.iter_mut() {
        let Some(provider) = provider.as_table_mut() else {
            continue;
        };
        let plain = provider
            .get("endpoints")
            .and_then(Item::as_table_like)
            .filter(|e| e.len() == 1)
            .and_then(|e| e.get("default"))
            .and_then(Item::as_table_like)
            .filter(|e| {
                e.iter().all(|(k, v)| match k {
                    "base_url" => true,
                    "enabled" => v.as_bool() == Some(true),
                    "priority" => v.as_integer() == Some(0),
                    _ => false,
                })
            })
            .and_then(|e| e.get("base_url"))
            .and_then(Item::as_str)
            .map(str::to_string);
        if let Some(base_url) = plain
            && !provider.contains_key("base_url")
        {
            provider.remove("endpoints");
            provider.insert("base_url", value(base_url));
        }
    }
}

/// `[codex.routing]` with one ordered-failover node over the groups' providers.
fn write_route(
    doc: &mut DocumentMut,
    mut groups: Vec<Group>,
    active: Option<&str>,
    warnings: &mut Vec<String>,
) {
    if groups.len() > 1 {
        warnings.push(format!(
            "{} stations were flattened into one ordered-failover route (by level, the active one first among equals, then by name)",
            groups.len()
        ));
    }
    let left_out: Vec<&str> = groups
        .iter()
        .filter(|g| !g.enabled && Some(g.name.as_str()) != active)
        .map(|g| g.name.as_str())
        .collect();
    if !left_out.is_empty() {
        warnings.push(format!(
            "disabled stations left out of the route (their providers are kept): {}",
            left_out.join(", ")
        ));
    }
    if let Some(active) = active
        && groups.iter().any(|g| g.name == active && !g.enabled)
    {
        warnings.push(format!(
            "the active station `{active}` is disabled; it stays in the route, as the original routed to it"
        ));
    }
    groups.retain(|g| g.enabled || Some(g.name.as_str()) == active);
    groups.sort_by(|a, b| {
        let is_active = |g: &Group| Some(g.name.as_str()) == active;
        a.level
            .cmp(&b.level)
            .then(is_active(b).cmp(&is_active(a)))
            .then(a.name.cmp(&b.name))
    });
    let mut order: Vec<String> = Vec::new();
    for provider in groups.into_iter().flat_map(|g| g.providers) {
        if order.contains(&provider) {
            warnings.push(format!(
                "provider `{provider}` was in more than one station; it is tried once, at its first place"
            ));
        } else {
            order.push(provider);
        }
    }
    let codex = service_table(doc);
    let taken = |name: &str| {
        codex
            .get("providers")
            .and_then(Item::as_table)
            .is_some_and(|p| p.contains_key(name))
    };
    let entry = if taken("main") { "main_route" } else { "main" };
    let mut children = Array::new();
    for p in &order {
        children.push(p.as_str());
    }
    let mut node = Table::new();
    node.insert("strategy", value("ordered-failover"));
    node.insert("children", value(children));
    let mut routes = Table::new();
    routes.set_implicit(true);
    routes.insert(entry, Item::Table(node));
    let mut routing = Table::new();
    routing.insert("entry", value(entry));
    routing.insert("affinity_policy", value("fallback-sticky"));
    routing.insert("routes", Item::Table(routes));
    codex.insert("routing", Item::Table(routing));
}
