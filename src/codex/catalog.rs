//! The `/models` catalog Codex reads: a relay's OpenAI-style list, translated into Codex's
//! `{"models":[…]}` using Codex's own bundled model metadata.
//!
//! Each entry's `base_instructions` is Codex's whole system prompt, so entries are never built
//! from placeholders: a relay model Codex knows gets its bundled entry; an unknown one gets the
//! entry of the closest known model with its own slug and display name. Pure.

use serde_json::{Value, json};

/// Translates `relay` (the relay's `/models` answer) with `bundled` (Codex's entries). `None`
/// means "pass the relay's answer through": it is already Codex-style, or not a model list.
pub fn translate(relay: &Value, bundled: &[Value]) -> Option<Value> {
    if relay.get("models").is_some() || bundled.is_empty() {
        return None;
    }
    let data = relay.get("data")?.as_array()?;
    // Only objects can be entries; the list comes from a cache file and Codex's output.
    let bundled: Vec<&Value> = bundled.iter().filter(|m| m.is_object()).collect();
    let mut models = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for item in data {
        let Some(id) = item
            .get("id")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        if !seen.insert(id.to_string()) {
            continue; // Codex rejects a catalog with duplicate slugs
        }
        let known = bundled.iter().copied().find(|m| slug(m) == Some(id));
        let mut entry = known.or_else(|| closest(id, &bundled))?.clone();
        if known.is_none() {
            entry["slug"] = json!(id);
            entry["display_name"] = json!(id);
        }
        // The lite request shape is only for servers that speak it; a relay may not.
        if entry.get("use_responses_lite").is_some() {
            entry["use_responses_lite"] = json!(false);
        }
        models.push(entry);
    }
    // Both keys: Codex reads `models`, OpenAI-style clients keep reading `data`.
    Some(json!({ "object": "list", "data": data, "models": models }))
}

fn slug(model: &Value) -> Option<&str> {
    model.get("slug").and_then(Value::as_str)
}

/// The bundled entry whose slug shares the longest prefix with `id`; ties go to Codex's own
/// preference (lower `priority`).
fn closest<'a>(id: &str, bundled: &[&'a Value]) -> Option<&'a Value> {
    let common = |s: &str| {
        s.bytes()
            .zip(id.bytes())
            .take_while(|(a, b)| a == b)
            .count()
    };
    bundled
        .iter()
        .copied()
        .filter(|m| m.get("visibility").and_then(Value::as_str) != Some("hide"))
        .max_by_key(|m| {
            (
                common(slug(m).unwrap_or("")),
                std::cmp::Reverse(
                    m.get("priority")
                        .and_then(Value::as_i64)
                        .unwrap_or(i64::MAX),
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> Vec<Value> {
        vec![
            json!({"slug":"gpt-6-sol","display_name":"GPT-6 Sol","priority":1,"visibility":"list","base_instructions":"six","use_responses_lite":true}),
            json!({"slug":"gpt-5.6-sol","display_name":"GPT-5.6","priority":8,"visibility":"list","base_instructions":"five six","use_responses_lite":true}),
            json!({"slug":"gpt-5.5","display_name":"GPT-5.5","priority":13,"visibility":"list","base_instructions":"five five","use_responses_lite":false}),
            json!({"slug":"gpt-5-hidden","display_name":"x","priority":0,"visibility":"hide","base_instructions":"no"}),
        ]
    }

    #[test]
    fn known_models_keep_their_entry_and_unknown_ones_borrow_the_closest() {
        let relay = json!({"object":"list","data":[{"id":"gpt-5.5"},{"id":"gpt-5.1-codex"},{"id":"my-model"},{"id":"gpt-5.5"},{"id":""}]});
        let out = translate(&relay, &bundled()).unwrap();
        let models = out["models"].as_array().unwrap();
        assert_eq!(models.len(), 3, "duplicates and empty ids are dropped");
        assert_eq!(
            (
                models[0]["slug"].as_str(),
                models[0]["display_name"].as_str(),
                models[0]["base_instructions"].as_str()
            ),
            (Some("gpt-5.5"), Some("GPT-5.5"), Some("five five"))
        );
        assert_eq!(
            (
                models[1]["slug"].as_str(),
                models[1]["display_name"].as_str()
            ),
            (Some("gpt-5.1-codex"), Some("gpt-5.1-codex"))
        );
        assert_eq!(
            models[1]["base_instructions"], "five six",
            "prefix `gpt-5.` ties; the preferred entry wins, hidden ones never"
        );
        assert_eq!(
            models[2]["base_instructions"], "six",
            "nothing in common: Codex's first choice"
        );
        assert!(models.iter().all(|m| m["use_responses_lite"] == false));
        assert_eq!(
            out["data"], relay["data"],
            "OpenAI-style clients still get `data`"
        );
    }

    /// Found by fuzzing: a bundled list with something other than objects in it (a damaged
    /// cache file) panicked on a number and made an entry without instructions from `null`.
    #[test]
    fn bundled_entries_that_are_not_objects_are_never_used() {
        let relay = json!({"data":[{"id":"gpt-5.5"},{"id":"new-model"}]});
        for junk in [json!(5), json!(null), json!("gpt-5.5"), json!(["x"])] {
            let mut list = vec![junk.clone()];
            assert_eq!(
                translate(&relay, &list),
                None,
                "{junk}: nothing to build from"
            );
            list.extend(bundled());
            let out = translate(&relay, &list).unwrap();
            let models = out["models"].as_array().unwrap();
            assert_eq!(models[0]["base_instructions"], "five five", "{junk}");
            assert_eq!(models[1]["slug"], "new-model");
            assert_eq!(models[1]["base_instructions"], "six", "{junk}");
        }
    }

    #[test]
    fn codex_style_answers_and_non_lists_pass_through() {
        assert_eq!(translate(&json!({"models":[]}), &bundled()), None);
        assert_eq!(
            translate(&json!({"error":{"message":"no"}}), &bundled()),
            None
        );
        assert_eq!(
            translate(&json!({"data":[{"id":"x"}]}), &[]),
            None,
            "without Codex's metadata, nothing is invented"
        );
    }
}
