//! Config parsing (`config::load::parse`) and migration (`config::migrate`).
//!
//! Inputs are raw text, or a real config of each format (the migration fixtures) with lines
//! deleted, repeated, swapped or inserted from a list of the keys configs use.
//! - `parse` answers with a config or a [`ConfigError`] naming the file and a key, never a
//!   panic; a config it accepts has a supported version and `[balance]` times in range; a
//!   credential (an inline token, a proxy password) is never part of an error.
//! - `migrate_toml` / `migrate_json` give a `version = 5` TOML file that migrates to itself,
//!   and a file `parse` accepted before migrating it is accepted after.

use std::path::Path;

use codex_helper::config::load::{Fingerprint, parse};
use codex_helper::config::migrate::{Source, detect, migrate_json, migrate_toml};

use super::input::Input;

const FIXTURES: [&str; 7] = [
    include_str!("../../../tests/fixtures/migrate/v1.toml"),
    include_str!("../../../tests/fixtures/migrate/v2.toml"),
    include_str!("../../../tests/fixtures/migrate/v3.toml"),
    include_str!("../../../tests/fixtures/migrate/v3-pools.toml"),
    include_str!("../../../tests/fixtures/migrate/v4.toml"),
    include_str!("../../../tests/fixtures/migrate/v5.toml"),
    include_str!("../../../tests/fixtures/migrate/v4.expected.toml"),
];

const JSON: &str = include_str!("../../../tests/fixtures/migrate/config.json");

/// What every credential in [`LINES`] holds: never part of an error.
const SECRET: &str = "Fuzz7Secret";

/// Lines configs are made of, for insertion.
const LINES: [&str; 43] = [
    "version = 5",
    "version = 4",
    "version = 3",
    "version = 1",
    "version = -1",
    "[codex]",
    "[codex.providers.a]",
    "[codex.providers.b.endpoints.hk]",
    "base_url = \"https://relay.example/v1\"",
    "base_url = 5",
    "auth_token_env = \"A_KEY\"",
    "auth_token = \"sk-Fuzz7Secret\"",
    "auth_tokn = \"sk-Fuzz7Secret\"",
    "api_key = { value = \"sk-Fuzz7Secret\" }",
    "priority = 2",
    "enabled = false",
    "model_mapping = { \"gpt-5*\" = \"gpt-5.1*\" }",
    "supported_models = { \"gpt-5\" = true }",
    "limits = { max_concurrent_requests = 0 }",
    "outbound_proxy = \"http://user:pw-Fuzz7Secret@proxy.example:8080\"",
    "outbound_proxy = \"socks9://user:pw-Fuzz7Secret@proxy.example\"",
    "outbound_proxy = { url = \"http://user:pw-Fuzz7Secret@h\" }",
    "proxy = { outbound_proxy = \"http://user:pw-Fuzz7Secret@h\", bad = 1 }",
    "[proxy]",
    "connect_timeout_ms = \"soon\"",
    "[balance]",
    "timeout_ms = 0",
    "timeout_ms = 5000",
    "max_exhausted_ms = 99999999999999",
    "[codex.routing]",
    "entry = \"main\"",
    "[codex.routing.routes.main]",
    "strategy = \"ordered-failover\"",
    "strategy = \"round-robin\"",
    "children = [\"a\", \"b\"]",
    "policy = \"tag-preferred\"",
    "order = [\"a\"]",
    "[codex.stations.s]",
    "active = \"s\"",
    "[notify]",
    "merge_window_ms = 1",
    "[retry]",
    "[[codex.configs.a.upstreams]]",
];

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => text_checks(&String::from_utf8_lossy(input.rest())),
        1 => {
            let base = input.pick(&FIXTURES);
            text_checks(&mutated(&mut input, base));
        }
        _ => json_checks(&mutated(&mut input, JSON)),
    }
}

/// `base` with a few line edits.
fn mutated(input: &mut Input, base: &str) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for _ in 0..input.below(6) {
        let at = input.below(lines.len() + 1);
        match input.byte() % 5 {
            0 if at < lines.len() => {
                lines.remove(at);
            }
            1 if at < lines.len() => {
                let line = lines[at].clone();
                lines.insert(at, line);
            }
            2 if at + 1 < lines.len() => lines.swap(at, at + 1),
            3 if at < lines.len() => {
                // A value cut short or with a byte changed.
                let line = &mut lines[at];
                let cut = input.below(line.len() + 1);
                let mut bytes = line.as_bytes()[..cut].to_vec();
                bytes.extend_from_slice(input.bytes(3));
                *line = String::from_utf8_lossy(&bytes).into_owned();
            }
            _ => lines.insert(at, input.pick(&LINES).to_string()),
        }
    }
    lines.join(if input.chance(20) { "\r\n" } else { "\n" })
}

fn text_checks(text: &str) {
    let path = Path::new("/home/u/.codex-helper/config.toml");
    let well_formed = text.parse::<toml::Table>().ok();
    match parse(path, text) {
        Ok(loaded) => {
            let version = loaded.config.version;
            assert!(
                matches!(version, Some(4 | 5)),
                "accepted version {version:?}"
            );
            assert_eq!(loaded.fingerprint, Fingerprint::of(text));
            let balance = &loaded.config.balance;
            assert!((100..=120_000).contains(&balance.timeout_ms));
        }
        Err(e) => {
            assert_eq!(e.file, path);
            assert!(!e.key.is_empty() && !e.message.is_empty(), "{e:?}");
            let shown = e.to_string();
            assert!(
                shown.starts_with("/home/u/.codex-helper/config.toml: `"),
                "{shown}"
            );
            if well_formed.is_some() {
                assert!(
                    !shown.contains(SECRET),
                    "a proxy password in an error: {shown}"
                );
            }
        }
    }

    let Some(table) = well_formed else {
        assert!(
            migrate_toml(text).is_err(),
            "migrated a file that is not TOML"
        );
        return;
    };
    let source = detect(&table);
    let Ok(migration) = migrate_toml(text) else {
        return;
    };
    assert_eq!(migration.source, source);
    if source == Source::Current {
        assert_eq!(migration.text, text, "a version 5 file is left as it is");
    }
    migrated_is_current(&migration.text);
    if source != Source::Current && parse(path, text).is_ok() {
        let after = parse(path, &migration.text);
        assert!(
            after.is_ok(),
            "a file that loaded no longer loads after migrating: {}\n--- before\n{text}\n--- after\n{}",
            after.unwrap_err(),
            migration.text
        );
    }
}

fn json_checks(text: &str) {
    if let Ok(migration) = migrate_json(text) {
        assert_eq!(migration.source, Source::Json);
        migrated_is_current(&migration.text);
    }
}

/// Migrated text is version 5 TOML, which migrates to itself.
fn migrated_is_current(text: &str) {
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("migrated text is not TOML: {e}\n{text}"));
    assert_eq!(detect(&table), Source::Current, "{text}");
    let again = migrate_toml(text).expect("version 5 migrates");
    assert_eq!(again.text, text);
}
