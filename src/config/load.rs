//! Reading and checking the helper config file.

use std::path::{Path, PathBuf};

use super::model::{BalanceSettings, CURRENT_VERSION, HelperConfig, TeamSettings};

/// A config problem a user can fix: which file, which key, what is wrong and what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("{}: `{key}`: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key path, e.g. `codex.providers.relay.base_url`.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A parsed config and what the user should know about it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub config: HelperConfig,
    /// Keys this build reads but does not act on yet, by dotted path.
    pub deferred_keys: Vec<String>,
    /// The bytes it was read from, to tell later whether the file changed since (see
    /// [`Fingerprint`]).
    pub fingerprint: Fingerprint,
}

/// Which bytes a config was read from: FNV-1a (64-bit) over the text, and its length. Kept
/// with what was loaded, so an edit made from the running config can refuse to overwrite a
/// file that changed on disk since (a hand edit the running helper has not taken, or could
/// not: an invalid one). Not a secret and not a security check: it only tells two versions
/// of one user's file apart, without keeping the text (which may hold a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    hash: u64,
    len: usize,
}

impl Fingerprint {
    pub fn of(text: &str) -> Self {
        Self {
            hash: fnv1a64(text.as_bytes()),
            len: text.len(),
        }
    }
}

/// FNV-1a, 64 bits: a hash fixed forever (unlike `DefaultHasher`), for what is stored or
/// compared across runs and builds.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Reads `path`. A missing file is `Ok(None)`; anything unreadable or invalid is an error.
pub fn load(path: &Path) -> anyhow::Result<Option<LoadedConfig>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    Ok(Some(parse(path, &text)?))
}

/// Parses and checks config text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::new(
            path,
            "(file)",
            format!("not valid TOML: {}", located(text, &e)),
        )
    })?;
    refuse_older_format(path, text)?;
    let mut config: HelperConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        // The path of a key spelt `""` is empty; say it as TOML spells it.
        let key = match e.path().to_string() {
            key if key.is_empty() => "\"\"".to_string(),
            key => key,
        };
        ConfigError::new(path, key, located(text, &e.into_inner()))
    })?;
    super::v5_compat::fold_auth_tables(&mut config);
    check_version(path, config.version)?;
    check_balance(path, &config.balance)?;
    check_ledger_url(path, config.ledger.url.as_deref())?;
    check_team(path, &config.team)?;
    let deferred_keys = deferred_keys(&config);
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        config,
        deferred_keys,
        fingerprint: Fingerprint::of(text),
    })
}

/// A TOML error's message and where it is (line and column), without quoting the line: any
/// line may hold a credential (an inline token, a proxy URL with a password, also under a
/// misspelt key), and config errors are printed and logged.
fn located(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return message.to_string();
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{message} (line {line}, column {column})")
}

/// `[balance]` times within what makes sense (a timeout of 0 would fail every lookup; a
/// delay of centuries is a typo).
fn check_balance(path: &Path, balance: &BalanceSettings) -> Result<(), ConfigError> {
    const MONTH_MS: u64 = 30 * 24 * 3_600_000;
    let checks = [
        ("timeout_ms", balance.timeout_ms, 100, 120_000),
        (
            "request_refresh_delay_ms",
            balance.request_refresh_delay_ms,
            0,
            MONTH_MS,
        ),
        (
            "exhausted_recheck_ms",
            balance.exhausted_recheck_ms,
            0,
            MONTH_MS,
        ),
        ("max_exhausted_ms", balance.max_exhausted_ms, 0, MONTH_MS),
        (
            "terminal_backoff_ms",
            balance.terminal_backoff_ms,
            0,
            MONTH_MS,
        ),
    ];
    in_range(path, "balance", "milliseconds", &checks)
}

/// Each `(key, value, least, most)` of `[section]` within its bounds, else an error naming the
/// key and the range in `unit`.
fn in_range(
    path: &Path,
    section: &str,
    unit: &str,
    checks: &[(&str, u64, u64, u64)],
) -> Result<(), ConfigError> {
    for &(key, value, least, most) in checks {
        if !(least..=most).contains(&value) {
            return Err(ConfigError::new(
                path,
                format!("{section}.{key}"),
                format!("{value} is out of range: {least} to {most} ({unit})"),
            ));
        }
    }
    Ok(())
}

/// `[ledger] url`: a PostgreSQL URL or `env:VAR` (see [`crate::ledger::pg::url`]); the
/// message never quotes the value, which may hold a password.
fn check_ledger_url(path: &Path, url: Option<&str>) -> Result<(), ConfigError> {
    match url.map(crate::postgres::ledger_url::LedgerUrl::parse) {
        Some(Err(e)) => Err(ConfigError::new(path, "ledger.url", format!("{e:#}"))),
        _ => Ok(()),
    }
}

/// `[team]`: `redis_url`'s form (never quoted: it may hold a password) and times within what
/// works (a permit lease under a second would lapse between renewals; a request waiting on
/// Redis for seconds is what the bound is there to prevent).
fn check_team(path: &Path, team: &TeamSettings) -> Result<(), ConfigError> {
    if let Some(Err(e)) = team
        .redis_url
        .as_deref()
        .map(crate::redis_url::RedisUrl::check_setting)
    {
        return Err(ConfigError::new(path, "team.redis_url", format!("{e:#}")));
    }
    const HOUR_MS: u64 = 3_600_000;
    in_range(
        path,
        "team",
        "milliseconds",
        &[
            ("redis_wait_ms", team.redis_wait_ms, 1, 1_000),
            ("permit_lease_ms", team.permit_lease_ms, 1_000, HOUR_MS),
            ("key_refresh_ms", team.key_refresh_ms, 100, HOUR_MS),
        ],
    )?;
    in_range(
        path,
        "team",
        "seconds",
        &[("spend_reconcile_secs", team.spend_reconcile_secs, 1, 86_400)],
    )
}

/// A file of the original's older formats (v1–v3) is not half-read: the one command that
/// converts it is named instead.
fn refuse_older_format(path: &Path, text: &str) -> Result<(), ConfigError> {
    use super::migrate::{MIGRATE_HINT, detect};
    let Ok(table) = text.parse::<toml::Table>() else {
        return Ok(()); // The deserializer says what is wrong.
    };
    if table.is_empty() {
        return Ok(());
    }
    let source = detect(&table);
    if source.is_readable() {
        return Ok(());
    }
    let version = table.get("version").and_then(toml::Value::as_integer);
    let key = if version.is_some() {
        "version"
    } else {
        "(file)"
    };
    Err(ConfigError::new(
        path,
        key,
        format!(
            "this is an older codex-helper config ({source}; this version reads 4 or {CURRENT_VERSION}); {MIGRATE_HINT}"
        ),
    ))
}

fn check_version(path: &Path, version: Option<u32>) -> Result<(), ConfigError> {
    match version {
        Some(4) | Some(CURRENT_VERSION) => Ok(()),
        Some(other) => Err(ConfigError::new(
            path,
            "version",
            format!("version {other} is not supported; allowed: 4 or {CURRENT_VERSION}"),
        )),
        None => Err(ConfigError::new(
            path,
            "version",
            format!("missing; add `version = {CURRENT_VERSION}` at the top of the file"),
        )),
    }
}

/// Lists every recognised-but-inactive key that is present, so start-up can say so.
fn deferred_keys(config: &HelperConfig) -> Vec<String> {
    let mut keys = Vec::new();
    let mut note = |present: bool, key: String| {
        if present {
            keys.push(key);
        }
    };
    note(config.default_service.is_some(), "default_service".into());
    for key in config.notify.unused_original_keys() {
        note(true, key);
    }
    note(config.ui.is_some(), "ui".into());
    note(config.claude.is_some(), "claude".into());
    let codex = &config.codex;
    if let Some(patch) = &codex.client_patch {
        note(
            patch.translate_models.is_some(),
            "codex.client_patch.translate_models".into(),
        );
        note(
            patch.hosted_image_generation.is_some(),
            "codex.client_patch.hosted_image_generation".into(),
        );
    }
    for (name, profile) in &codex.profiles {
        note(
            profile.station.is_some(),
            format!("codex.profiles.{name}.station"),
        );
    }
    keys.extend(super::v5_compat::inert_keys(&config.retry));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_settings_are_checked_at_load_without_quoting_the_redis_url() {
        let load = |team: &str| {
            parse(
                Path::new("/c.toml"),
                &format!("version = 5\n[team]\n{team}\n"),
            )
        };
        load("redis_url = \"redis://:pw@127.0.0.1:6379/1\"").unwrap();
        load("redis_url = \"env:TEAM_REDIS\"\nredis_wait_ms = 1000\npermit_lease_ms = 1000")
            .unwrap();
        let err = load("redis_url = \"rediss://:pw-secret@host\"").unwrap_err();
        assert_eq!(err.key, "team.redis_url");
        assert!(
            !err.to_string().contains("pw-secret") && err.message.contains("TLS"),
            "{err}"
        );
        assert_eq!(
            load("redis_url = \"env:A-B\"").unwrap_err().key,
            "team.redis_url"
        );
        for (line, key) in [
            ("redis_wait_ms = 0", "team.redis_wait_ms"),
            ("redis_wait_ms = 5000", "team.redis_wait_ms"),
            ("permit_lease_ms = 999", "team.permit_lease_ms"),
            ("key_refresh_ms = 10", "team.key_refresh_ms"),
            ("spend_reconcile_secs = 0", "team.spend_reconcile_secs"),
        ] {
            let err = load(line).unwrap_err();
            assert_eq!(err.key, key, "{line}");
            assert!(err.message.contains("out of range"), "{line}: {err}");
        }
    }

    #[test]
    fn a_ledger_url_is_checked_at_load_without_quoting_it() {
        let load = |url: &str| {
            parse(
                Path::new("/c.toml"),
                &format!("version = 5\n[ledger]\nurl = \"{url}\"\n"),
            )
        };
        let err = load("mysql://u:pw-secret@h/d").unwrap_err();
        assert_eq!(err.key, "ledger.url");
        assert!(
            !err.to_string().contains("pw-secret") && err.message.contains("env:VAR"),
            "{err}"
        );
        assert!(
            load("postgres://u:pw@h/d?sslmode=require")
                .unwrap_err()
                .message
                .contains("sslmode")
        );
        assert!(load("postgres://u:pw-secret@127.0.0.1:5432/ledger").is_ok());
        assert!(load("env:LEDGER_URL").is_ok());
        assert_eq!(load("env:").unwrap_err().key, "ledger.url");
    }

    #[test]
    fn balance_times_out_of_range_name_their_key() {
        let err = parse(
            Path::new("/c.toml"),
            "version = 5\n[balance]\ntimeout_ms = 0\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "balance.timeout_ms");
        assert!(err.message.contains("100 to 120000"), "{}", err.message);
        let err = parse(
            Path::new("/c.toml"),
            "version = 5\n[balance]\nmax_exhausted_ms = 99999999999999\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "balance.max_exhausted_ms");
        assert!(
            parse(
                Path::new("/c.toml"),
                "version = 5\n[balance]\nenabled = false\n"
            )
            .is_ok()
        );
    }

    fn parse_text(text: &str) -> Result<LoadedConfig, ConfigError> {
        parse(Path::new("/home/u/.codex-helper/config.toml"), text)
    }

    #[test]
    fn reads_providers_endpoints_and_routing() {
        let loaded = parse_text(
            r#"
version = 5
[codex.providers.monthly]
base_url = "https://relay.example/v1"
auth_token_env = "MONTHLY_KEY"
model_mapping = { "gpt-5*" = "gpt-5.1*" }
[codex.providers.backup.endpoints.hk]
base_url = "https://hk.example"
priority = 2
[codex.routing]
entry = "main"
[codex.routing.routes.main]
strategy = "ordered-failover"
children = ["monthly", "backup"]
"#,
        )
        .unwrap();
        let codex = &loaded.config.codex;
        assert_eq!(
            codex.providers["monthly"].auth_token_env.as_deref(),
            Some("MONTHLY_KEY")
        );
        assert_eq!(codex.providers["backup"].endpoints["hk"].priority, 2);
        assert_eq!(
            codex.routing.as_ref().unwrap().routes["main"].children,
            ["monthly", "backup"]
        );
        assert!(loaded.deferred_keys.is_empty());
    }

    #[test]
    fn unknown_key_names_file_key_and_allowed_keys() {
        let err =
            parse_text("version = 5\n[codex.providers.a]\nbase_url = \"http://x\"\nbase_ulr = 1\n")
                .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/home/u/.codex-helper/config.toml: `codex.providers.a"),
            "{text}"
        );
        assert!(
            text.contains("base_ulr") && text.contains("base_url"),
            "{text}"
        );
    }

    /// Found by the `config_parse` fuzz target: an error about a key spelt `""` named no key.
    #[test]
    fn an_empty_key_is_named_as_toml_spells_it() {
        let err = parse_text("\"\" = 1\nversion = 5\n").unwrap_err();
        assert_eq!(err.key, "\"\"");
        assert!(err.to_string().contains("`\"\"`"), "{err}");
    }

    #[test]
    fn invalid_value_names_the_key_and_allowed_values() {
        let err = parse_text(
            "version = 5\n[codex.routing.routes.main]\nstrategy = \"round-robin\"\nchildren = []\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "codex.routing.routes.main.strategy");
        assert!(err.message.contains("ordered-failover"), "{}", err.message);

        let err = parse_text("version = 5\n[proxy]\nconnect_timeout_ms = \"soon\"\n").unwrap_err();
        assert_eq!(err.key, "proxy.connect_timeout_ms");
    }

    /// Found by fuzzing: an error in a line that holds a credential quoted the line.
    #[test]
    fn errors_never_quote_the_line_they_are_about() {
        let cases = [
            "version = 5\n[codex.routing.routes.main]\nproxy = { outbound_proxy = \"http://u:pw-S3cret@h\" }\n",
            "version = 5\n[codex.providers.a]\nauth_tokn = \"sk-S3cret\"\n",
            "version = 5\n[codex.providers.a]\nauth_token = \"sk-S3cret\n",
        ];
        for text in cases {
            let err = parse_text(text).unwrap_err().to_string();
            assert!(!err.contains("S3cret"), "{err}");
            assert!(err.contains("(line 3, column "), "{err}");
        }
        let err = parse_text(cases[1]).unwrap_err();
        assert_eq!(err.key, "codex.providers.a.auth_tokn");
        assert!(err.message.contains("expected one of"), "{}", err.message);
    }

    #[test]
    fn version_is_required_and_checked() {
        assert_eq!(parse_text("").unwrap_err().key, "version");
        let err = parse_text("version = 3").unwrap_err();
        assert!(err.message.contains("reads 4 or 5"), "{}", err.message);
        assert!(
            err.message.contains("codex-helper config migrate --write"),
            "{}",
            err.message
        );
        let err =
            parse_text("[codex]\nactive = \"a\"\n[codex.configs.a]\nupstreams = []\n").unwrap_err();
        assert!(
            err.message.contains("version 1 (stations)"),
            "{}",
            err.message
        );
        assert!(parse_text("version = 4").is_ok());
    }

    #[test]
    fn known_upstream_sections_are_reported_not_rejected() {
        let loaded = parse_text(
            "version = 5\n[notify]\nmerge_window_ms = 1\n[codex.client_patch]\npreset = \"default\"\ntranslate_models = true\n\
             [codex.providers.a]\nbase_url = \"http://x\"\nprice_multiplier = 2\n",
        )
        .unwrap();
        assert_eq!(
            loaded.deferred_keys,
            [
                "notify.merge_window_ms",
                "codex.client_patch.translate_models"
            ]
        );
    }
}
