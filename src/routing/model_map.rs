//! Model-name patterns: exact names or a single `*` wildcard.

use std::collections::BTreeMap;

/// Where a `*` pattern matches `name`, the part the `*` stands for.
fn wildcard_capture<'a>(pattern: &str, name: &'a str) -> Option<&'a str> {
    let (prefix, suffix) = pattern.split_once('*')?;
    if suffix.contains('*') || name.len() < prefix.len() + suffix.len() {
        return None;
    }
    if name.starts_with(prefix) && name.ends_with(suffix) {
        Some(&name[prefix.len()..name.len() - suffix.len()])
    } else {
        None
    }
}

/// The entry of `map` that applies to `name`: the exact key first, else the wildcard with the
/// longest literal part (so `gpt-5.1-*` beats `gpt-*`), ties broken by key order.
fn best_match<'m, V>(
    map: &'m BTreeMap<String, V>,
    name: &str,
) -> Option<(&'m str, &'m V, Option<String>)> {
    if let Some((key, value)) = map.get_key_value(name) {
        return Some((key, value, None));
    }
    map.iter()
        .filter_map(|(key, value)| {
            wildcard_capture(key, name)
                .map(|capture| (key.as_str(), value, Some(capture.to_string())))
        })
        .min_by_key(|(key, _, _)| std::cmp::Reverse(key.len()))
}

/// Maps a requested model to the model sent upstream; `None` when no mapping applies.
pub fn map_model(mapping: &BTreeMap<String, String>, requested: &str) -> Option<String> {
    let (_, target, capture) = best_match(mapping, requested)?;
    Some(match capture {
        Some(capture) if target.contains('*') => target.replacen('*', &capture, 1),
        _ => target.clone(),
    })
}

/// Whether an endpoint serves `model`: no list means every model; otherwise the best matching
/// `supported_models` entry decides, and a model-mapping source also counts as supported.
pub fn supports_model(
    supported: &BTreeMap<String, bool>,
    mapping: &BTreeMap<String, String>,
    model: &str,
) -> bool {
    if supported.is_empty() {
        return true;
    }
    match best_match(supported, model) {
        Some((_, allowed, _)) => *allowed,
        None => best_match(mapping, model).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn exact_beats_wildcard_and_longer_literal_wins() {
        let m = map(&[
            ("gpt-*", "a"),
            ("gpt-5.1-*", "b-*"),
            ("gpt-5.1-codex", "exact"),
        ]);
        assert_eq!(map_model(&m, "gpt-5.1-codex").as_deref(), Some("exact"));
        assert_eq!(map_model(&m, "gpt-5.1-mini").as_deref(), Some("b-mini"));
        assert_eq!(map_model(&m, "gpt-4o").as_deref(), Some("a"));
        assert_eq!(map_model(&m, "o3"), None);
    }

    #[test]
    fn wildcard_in_the_middle_and_target_substitution() {
        let m = map(&[("gpt-*-codex", "relay/*")]);
        assert_eq!(map_model(&m, "gpt-5.2-codex").as_deref(), Some("relay/5.2"));
        assert_eq!(map_model(&m, "gpt-codex"), None);
    }

    #[test]
    fn supported_models_lists_and_denials() {
        let supported: BTreeMap<String, bool> = [
            ("gpt-5*".to_string(), true),
            ("gpt-5-nano".to_string(), false),
        ]
        .into();
        let none = BTreeMap::new();
        assert!(supports_model(&supported, &none, "gpt-5.1"));
        assert!(!supports_model(&supported, &none, "gpt-5-nano"));
        assert!(!supports_model(&supported, &none, "o3"));
        assert!(supports_model(&supported, &map(&[("o3", "gpt-5")]), "o3"));
        assert!(supports_model(&BTreeMap::new(), &none, "anything"));
    }
}
