//! Catalog translation (`codex::catalog::translate`): a relay's `/models` list in Codex's
//! shape. Whatever the relay says and whatever Codex's bundled list holds (it comes from a
//! cache file and the Codex binary's output, so any JSON array): no panic; Codex-style
//! answers and non-lists pass through; otherwise each usable relay id appears once, in order,
//! as a model whose slug is that id, built from a bundled entry (its own, or a visible one for
//! an unknown id), never with the lite request shape on, and the relay's `data` is kept.

use codex_helper::codex::catalog::translate;
use serde_json::{Value, json};

use super::input::Input;

const SLUGS: [&str; 7] = [
    "gpt-5.5",
    "gpt-5.6-sol",
    "gpt-6-sol",
    "gpt-5",
    "o3",
    "",
    " gpt-5.5 ",
];

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let (relay, bundled) = if input.byte() % 4 == 0 {
        let relay = input.bytes(2048);
        let bundled = input.rest();
        let (Ok(relay), Ok(Value::Array(bundled))) = (
            serde_json::from_slice::<Value>(relay),
            serde_json::from_slice::<Value>(bundled),
        ) else {
            return;
        };
        (relay, bundled)
    } else {
        (generated_relay(&mut input), generated_bundled(&mut input))
    };
    holds(&relay, &bundled);
}

fn any_value(input: &mut Input) -> Value {
    match input.byte() % 6 {
        0 => json!(null),
        1 => json!(input.byte()),
        2 => json!(input.pick(&SLUGS)),
        3 => json!([input.pick(&SLUGS)]),
        4 => json!(true),
        _ => json!({}),
    }
}

fn generated_relay(input: &mut Input) -> Value {
    let mut data = Vec::new();
    for _ in 0..input.below(8) {
        data.push(match input.byte() % 8 {
            0 => any_value(input),
            1 => json!({"id": any_value(input)}),
            2 => json!({"object": "model"}),
            _ => json!({"id": input.pick(&SLUGS), "object": "model", "owned_by": "relay"}),
        });
    }
    match input.byte() % 10 {
        0 => json!({"models": [], "data": data}),
        1 => json!({"data": {"id": "x"}}),
        2 => any_value(input),
        _ => json!({"object": "list", "data": data}),
    }
}

fn generated_bundled(input: &mut Input) -> Vec<Value> {
    (0..input.below(6))
        .map(|_| {
            if input.chance(10) {
                return any_value(input);
            }
            let mut entry = json!({
                "slug": input.pick(&SLUGS),
                "display_name": "Known",
                "base_instructions": format!("prompt {}", input.byte()),
            });
            if input.chance(50) {
                entry["priority"] = if input.chance(90) {
                    json!(input.byte())
                } else {
                    any_value(input)
                };
            }
            if input.chance(40) {
                entry["visibility"] = json!(input.pick(&["list", "hide", "none"]));
            }
            if input.chance(40) {
                entry["use_responses_lite"] = any_value(input);
            }
            if input.chance(10) {
                entry["slug"] = any_value(input);
            }
            entry
        })
        .collect()
}

fn holds(relay: &Value, bundled: &[Value]) {
    let out = translate(relay, bundled);
    let list = relay.get("data").and_then(Value::as_array);
    if relay.get("models").is_some() || bundled.is_empty() || list.is_none() {
        assert_eq!(out, None, "passed through");
        return;
    }
    let Some(out) = out else {
        // Only when no bundled entry can stand in for an unknown id.
        let ids = usable_ids(relay);
        let unknown = ids.iter().any(|id| {
            !bundled
                .iter()
                .any(|m| m.get("slug").and_then(Value::as_str) == Some(id))
        });
        assert!(
            unknown,
            "every id is known, yet no catalog: {relay} / {bundled:?}"
        );
        return;
    };
    assert_eq!(out["data"], relay["data"], "`data` is kept");
    let models = out["models"].as_array().expect("a `models` list");
    let slugs: Vec<&str> = models
        .iter()
        .map(|m| m["slug"].as_str().expect("a slug"))
        .collect();
    assert_eq!(
        slugs,
        usable_ids(relay),
        "one model per usable relay id, in order"
    );
    for model in models {
        assert!(model.is_object(), "{model}");
        assert_ne!(model.get("use_responses_lite"), Some(&json!(true)));
        let slug = model["slug"].as_str().expect("a slug");
        let known = bundled
            .iter()
            .find(|m| m.get("slug").and_then(Value::as_str) == Some(slug));
        match known {
            Some(entry) => assert!(built_from(model, entry), "{slug}: its own entry"),
            None => assert!(
                bundled.iter().any(|m| {
                    m.get("visibility").and_then(Value::as_str) != Some("hide")
                        && built_from(model, m)
                }),
                "{model} is built from no visible bundled entry"
            ),
        }
    }
}

/// Whether `model` is `entry` with only the keys `translate` sets changed.
fn built_from(model: &Value, entry: &Value) -> bool {
    let (Some(model), Some(entry)) = (model.as_object(), entry.as_object()) else {
        return false;
    };
    let own = |k: &String| !matches!(k.as_str(), "slug" | "display_name" | "use_responses_lite");
    model
        .keys()
        .filter(|k| own(k))
        .eq(entry.keys().filter(|k| own(k)))
        && entry
            .iter()
            .filter(|(k, _)| own(k))
            .all(|(k, v)| model.get(k) == Some(v))
}

/// The relay's ids as `translate` should list them: trimmed, non-empty, first of each.
fn usable_ids(relay: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for item in relay["data"].as_array().into_iter().flatten() {
        let Some(id) = item.get("id").and_then(Value::as_str).map(str::trim) else {
            continue;
        };
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}
