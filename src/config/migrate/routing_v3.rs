//! v3's routing table (`policy`, `order`, `target`, `prefer_tags`, `on_exhausted`, `pools`,
//! `chain`) to a route graph: an entry node `main` with the same strategy. `pool-fallback`
//! becomes one ordered-failover node per pool under an ordered-failover entry (a pool whose
//! name is taken by a provider is called `<pool>_pool`); with `on_exhausted = "stop"` only the
//! first pool is kept. The `[codex.routing]` header and its comment stay where they were.

use anyhow::bail;
use toml_edit::{Array, DocumentMut, Item, Table, value};

const LEGACY_KEYS: [&str; 7] = [
    "policy",
    "order",
    "target",
    "prefer_tags",
    "on_exhausted",
    "pools",
    "chain",
];

pub fn migrate(
    doc: &mut DocumentMut,
    data: &toml::Table,
    warnings: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some(codex) = data.get("codex").and_then(toml::Value::as_table) else {
        return Ok(());
    };
    let Some(old) = codex.get("routing").and_then(toml::Value::as_table) else {
        return Ok(());
    };
    let providers: Vec<String> = codex
        .get("providers")
        .and_then(toml::Value::as_table)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let strings = |key: &str| -> Vec<String> {
        old.get(key)
            .and_then(toml::Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let policy = old
        .get("policy")
        .and_then(toml::Value::as_str)
        .unwrap_or("ordered-failover");
    let mut order = strings("order");
    if order.is_empty() {
        order = providers.clone();
    }
    for name in &order {
        if !providers.contains(name) {
            bail!("codex.routing.order names provider `{name}`, which does not exist");
        }
    }
    let stop = old.get("on_exhausted").and_then(toml::Value::as_str) == Some("stop");

    let mut nodes: Vec<(String, Table)> = Vec::new();
    let mut main = Table::new();
    match policy {
        "ordered-failover" | "tag-preferred" | "manual-sticky" => {
            main.insert("strategy", value(policy));
            main.insert("children", value(array(&order)));
            if policy == "manual-sticky" {
                let target = old
                    .get("target")
                    .and_then(toml::Value::as_str)
                    .map(str::to_string)
                    .or_else(|| order.first().cloned());
                let Some(target) = target else {
                    bail!("manual-sticky routing needs a target or a non-empty order");
                };
                main.insert("target", value(target));
            }
            if policy == "tag-preferred" {
                let Some(tags) = old.get("prefer_tags") else {
                    bail!("tag-preferred routing without prefer_tags");
                };
                // Inline (`[{ billing = "monthly" }]`), as a person writes it.
                let tags: toml_edit::Value = tags
                    .to_string()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("codex.routing.prefer_tags: {e}"))?;
                main.insert("prefer_tags", value(tags));
                main.insert(
                    "on_exhausted",
                    value(if stop { "stop" } else { "continue" }),
                );
            }
        }
        "pool-fallback" => {
            let pools = old.get("pools").and_then(toml::Value::as_table);
            let Some(pools) = pools.filter(|p| !p.is_empty()) else {
                bail!("pool-fallback routing without pools");
            };
            let mut chain = strings("chain");
            if chain.is_empty() {
                chain = pools.keys().cloned().collect();
            }
            if stop && chain.len() > 1 {
                warnings.push(format!(
                    "pool-fallback with on_exhausted = \"stop\": only the first pool (`{}`) is routed",
                    chain[0]
                ));
                chain.truncate(1);
            }
            let mut children = Vec::new();
            for pool in &chain {
                let members: Vec<String> = pools
                    .get(pool)
                    .and_then(|p| p.get("providers"))
                    .and_then(toml::Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut name = pool.clone();
                let mut n = 1;
                while providers.contains(&name) || name == "main" || children.contains(&name) {
                    name = if n == 1 {
                        format!("{pool}_pool")
                    } else {
                        format!("{pool}_branch_{n}")
                    };
                    n += 1;
                }
                let mut node = Table::new();
                node.insert("strategy", value("ordered-failover"));
                node.insert("children", value(array(&members)));
                nodes.push((name.clone(), node));
                children.push(name);
            }
            main.insert("strategy", value("ordered-failover"));
            main.insert("children", value(array(&children)));
        }
        other => bail!(
            "codex.routing.policy = \"{other}\" is not one the original wrote (ordered-failover, tag-preferred, manual-sticky, pool-fallback)"
        ),
    }

    let Some(routing) = doc
        .get_mut("codex")
        .and_then(|c| c.get_mut("routing"))
        .and_then(Item::as_table_mut)
    else {
        return Ok(());
    };
    for key in LEGACY_KEYS {
        routing.remove(key);
    }
    let entry = if providers.iter().any(|p| p == "main") {
        "main_route"
    } else {
        "main"
    };
    routing.insert("entry", value(entry));
    let mut routes = Table::new();
    routes.set_implicit(true);
    routes.insert(entry, Item::Table(main));
    for (name, node) in nodes {
        routes.insert(&name, Item::Table(node));
    }
    routing.insert("routes", Item::Table(routes));
    Ok(())
}

fn array(items: &[String]) -> Array {
    items.iter().map(String::as_str).collect()
}
