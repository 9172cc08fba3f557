//! Golden tests: the original codex-helper's configs of every version (v1, config.json, v2,
//! v3, v4) migrate to the checked-in version 5 files with their comments kept, and its v5
//! file with every retry key loads as it is, with the same effective policy.
//!
//! `CODEX_HELPER_BLESS=1 cargo test --test config_migrate` rewrites the expected files
//! (review the diff before committing them).

use std::path::{Path, PathBuf};

use codex_helper::config::load;
use codex_helper::config::migrate::{self, Source};
use codex_helper::routing::retry::{Action, Cooldown, Failure, FailureClass, RetryPolicy};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/migrate")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// Migrates `input`, compares with `expected` and checks the result loads and compiles.
fn golden(input: &str, expected: &str, source: Source) -> String {
    let text = read(input);
    let migration = if input.ends_with(".json") {
        migrate::migrate_json(&text).unwrap()
    } else {
        migrate::migrate_toml(&text).unwrap()
    };
    assert_eq!(migration.source, source, "{input}");
    if std::env::var_os("CODEX_HELPER_BLESS").is_some() {
        std::fs::write(fixture(expected), &migration.text).unwrap();
    }
    assert_eq!(
        migration.text,
        read(expected),
        "{input} no longer migrates to {expected}"
    );
    let loaded = load::parse(&fixture(expected), &migration.text)
        .unwrap_or_else(|e| panic!("{expected} does not load: {e}"));
    codex_helper::routing::check_config(&loaded)
        .unwrap_or_else(|e| panic!("{expected} does not compile: {e}"));
    // Migrating again changes nothing.
    let again = migrate::migrate_toml(&migration.text).unwrap();
    assert_eq!(again.source, Source::Current);
    assert_eq!(again.text, migration.text);
    // Every comment of a TOML input is still there.
    if !input.ends_with(".json") {
        for comment in text.lines().filter_map(|l| l.find('#').map(|i| &l[i..])) {
            assert!(
                migration.text.contains(comment),
                "{input}: comment `{comment}` was lost"
            );
        }
    }
    migration.warnings.join("\n")
}

fn route(loaded: &load::LoadedConfig) -> Vec<String> {
    let routing = loaded.config.codex.routing.as_ref().unwrap();
    routing.routes[&routing.entry].children.clone()
}

#[test]
fn v1_stations_become_providers_and_one_route() {
    let warnings = golden("v1.toml", "v1.expected.toml", Source::Legacy);
    assert!(
        warnings.contains("disabled stations left out"),
        "{warnings}"
    );
    assert!(warnings.contains("max_attempts, on_status"), "{warnings}");
    let loaded = load::parse(Path::new("c"), &read("v1.expected.toml")).unwrap();
    assert_eq!(route(&loaded), ["monthly", "paygo"]);
    let monthly = &loaded.config.codex.providers["monthly"];
    assert_eq!(monthly.auth_token_env.as_deref(), Some("MONTHLY_KEY"));
    assert_eq!(
        monthly.endpoints.len(),
        2,
        "two upstreams, one key: one provider"
    );
    assert!(!loaded.config.codex.providers["old"].enabled);
    assert_eq!(
        loaded.config.retry.upstream.as_ref().unwrap().max_attempts,
        Some(3)
    );
}

#[test]
fn config_json_becomes_a_toml_config() {
    let warnings = golden("config.json", "config.expected.toml", Source::Json);
    assert!(warnings.contains("2 stations were flattened"), "{warnings}");
    let loaded = load::parse(Path::new("c"), &read("config.expected.toml")).unwrap();
    // `active = true`: the first enabled station by level leads.
    assert_eq!(route(&loaded), ["primary", "backup", "backup-2"]);
    assert_eq!(
        loaded.config.codex.providers["backup-2"]
            .auth_token_env
            .as_deref(),
        Some("BACKUP_KEY_2"),
        "another key: a provider of its own"
    );
}

#[test]
fn v2_groups_become_one_ordered_route() {
    let warnings = golden("v2.toml", "v2.expected.toml", Source::V2);
    assert!(
        warnings.contains("only some endpoints of `relay-b`"),
        "{warnings}"
    );
    assert!(warnings.contains("retired"), "{warnings}");
    assert!(warnings.contains("profile `fast`"), "{warnings}");
    let loaded = load::parse(Path::new("c"), &read("v2.expected.toml")).unwrap();
    // daily (level 1, active; relay-a preferred), then backup.
    assert_eq!(route(&loaded), ["relay-a", "relay-b", "relay-c"]);
    let a = &loaded.config.codex.providers["relay-a"];
    assert_eq!(a.base_url.as_deref(), Some("https://a.example/v1"));
    assert_eq!(a.auth_token_env.as_deref(), Some("RELAY_A_KEY"));
    assert_eq!(loaded.config.codex.profiles["fast"].station, None);
}

#[test]
fn v3_routing_policy_becomes_the_entry_node() {
    golden("v3.toml", "v3.expected.toml", Source::V3);
    let loaded = load::parse(Path::new("c"), &read("v3.expected.toml")).unwrap();
    assert_eq!(route(&loaded), ["paygo", "monthly", "spare"]);
    let routing = loaded.config.codex.routing.as_ref().unwrap();
    assert_eq!(
        routing.routes["main"].strategy,
        codex_helper::config::model::Strategy::TagPreferred
    );
    assert_eq!(
        loaded.config.codex.providers["monthly"]
            .auth_token_env
            .as_deref(),
        Some("MONTHLY_KEY")
    );
}

#[test]
fn v3_pools_become_nested_nodes() {
    golden("v3-pools.toml", "v3-pools.expected.toml", Source::V3);
    let loaded = load::parse(Path::new("c"), &read("v3-pools.expected.toml")).unwrap();
    assert_eq!(route(&loaded), ["monthly", "paygo"]);
    let routing = loaded.config.codex.routing.as_ref().unwrap();
    assert_eq!(routing.routes["monthly"].children, ["m1", "m2"]);
}

#[test]
fn v4_only_changes_its_number_and_states_the_affinity() {
    golden("v4.toml", "v4.expected.toml", Source::V4);
    let diff = migrate::unified_diff(&read("v4.toml"), &read("v4.expected.toml"), "a", "b");
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        [
            "-version = 4",
            "+version = 5",
            "+affinity_policy = \"fallback-sticky\""
        ]
    );
}

fn failure(status: Option<u16>, class: FailureClass) -> Failure {
    Failure {
        class,
        retry_after_ms: None,
        status,
    }
}

#[test]
fn the_originals_v5_with_every_retry_key_loads_with_the_same_policy() {
    let text = read("v5.toml");
    let migration = migrate::migrate_toml(&text).unwrap();
    assert_eq!(
        (migration.source, migration.text.as_str()),
        (Source::Current, text.as_str())
    );
    let loaded = load::parse(&fixture("v5.toml"), &text).unwrap();
    codex_helper::routing::check_config(&loaded).unwrap();
    // Keys without a counterpart are named, not refused.
    for key in [
        "retry.provider.max_attempts",
        "retry.provider.strategy",
        "retry.upstream.strategy",
        "retry.allow_cross_station_before_first_output",
    ] {
        assert!(
            loaded.deferred_keys.iter().any(|k| k == key),
            "{key}: {:?}",
            loaded.deferred_keys
        );
    }
    // The `auth` table is the provider's key.
    assert_eq!(
        loaded.config.codex.providers["monthly"]
            .auth_token_env
            .as_deref(),
        Some("MONTHLY_KEY")
    );

    let p = RetryPolicy::resolve(&loaded.config.retry, &loaded.path).unwrap();
    assert_eq!(p.same_upstream_attempts, 3);
    assert_eq!(
        (p.backoff_ms, p.backoff_max_ms, p.jitter_ms),
        (250, 3000, 50)
    );
    assert_eq!(p.cooldown.base_secs, 45);
    assert_eq!(p.cooldown.factor, 3.0);
    assert_eq!(p.cooldown.max_secs, 1200);
    assert_eq!(p.cloudflare_challenge_cooldown_secs, 600);
    assert_eq!(p.cloudflare_timeout_cooldown_secs, Some(90));

    // upstream.on_status: a 502 is retried on the same endpoint (jitter 0), until the third
    // try, then provider.on_status fails over.
    assert_eq!(
        p.decide(&failure(Some(502), FailureClass::ServerError), 1, 0.0),
        Action::RetrySame { delay_ms: 250 }
    );
    assert_eq!(
        p.decide(&failure(Some(502), FailureClass::ServerError), 2, 0.0),
        Action::RetrySame { delay_ms: 500 }
    );
    assert_eq!(
        p.decide(&failure(Some(502), FailureClass::ServerError), 3, 0.0),
        Action::Failover {
            cooldown: Cooldown::Growing
        }
    );
    // upstream_transport_error in upstream.on_class: a connect error is retried too.
    assert!(matches!(
        p.decide(&failure(None, FailureClass::Connect), 1, 0.0),
        Action::RetrySame { .. }
    ));
    // 404 is in provider.on_status: the next relay is tried.
    assert!(matches!(
        p.decide(&failure(Some(404), FailureClass::ClientError), 1, 0.0),
        Action::Failover { .. }
    ));
    // never_on_status / never_on_class: handed back as they are, at once.
    for status in [413, 415, 422, 400] {
        let f = failure(Some(status), FailureClass::ClientError);
        assert_eq!(p.decide(&f, 1, 0.0), Action::Return, "{status}");
        assert!(p.hands_back_at_once(&f), "{status}");
    }
    // A Cloudflare 524: retried (on_class), then failed over with its own cooldown.
    assert_eq!(
        p.decide(&failure(Some(524), FailureClass::CloudflareTimeout), 3, 0.0),
        Action::Failover {
            cooldown: Cooldown::Fixed(90_000)
        }
    );
    // A challenge page on a 403: retried (on_class), then 403 is in provider.on_status.
    assert_eq!(
        p.decide(
            &failure(Some(403), FailureClass::CloudflareChallenge),
            3,
            0.0
        ),
        Action::Failover {
            cooldown: Cooldown::Fixed(600_000)
        }
    );
    // An unsupported model (routing_mismatch_capability) fails over without a cooldown.
    assert_eq!(
        p.decide(&failure(Some(400), FailureClass::UnsupportedModel), 1, 0.0),
        Action::Failover {
            cooldown: Cooldown::None
        }
    );
}
