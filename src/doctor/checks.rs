//! The checks: [`Facts`] in, [`Finding`]s out (pure).

use super::facts::{BinaryFacts, ConfigFacts, Facts, LedgerFacts, LedgerStoreFacts, LoadedFacts};
use super::{Finding, Severity};

/// A relay clock this far from ours is worth a warning (expiries and quota windows shift).
pub const SKEW_WARN_MS: i64 = 30_000;
/// This far, an error: TLS certificates and signed requests start failing.
pub const SKEW_ERROR_MS: i64 = 300_000;
/// A ledger past this size is reported (retention settings may be off).
pub const LEDGER_LARGE_BYTES: u64 = 1 << 30;

/// Every finding for `facts`, errors first.
pub fn findings(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    config(facts, &mut out);
    codex(facts, &mut out);
    binary(facts, &mut out);
    port(facts, &mut out);
    if let Some(ledger) = &facts.ledger {
        self::ledger(ledger, &mut out);
    }
    clock(facts, &mut out);
    out.sort_by_key(|f| f.severity);
    out
}

fn finding(id: &'static str, severity: Severity, message: String, fix: Option<String>) -> Finding {
    Finding {
        id,
        severity,
        message,
        fix,
    }
}

fn config(facts: &Facts, out: &mut Vec<Finding>) {
    let path = facts.config_path.display();
    match &facts.config {
        ConfigFacts::Missing => out.push(finding(
            "config.missing",
            Severity::Info,
            format!("{path} does not exist yet"),
            Some("codex-helper serve (creates it from Codex's provider), or codex-helper provider add ID --base-url URL --auth-token-env VAR".into()),
        )),
        ConfigFacts::Invalid(error) => out.push(finding(
            "config.invalid",
            Severity::Error,
            error.clone(),
            Some(format!("edit {path} as the message says, then run codex-helper doctor again")),
        )),
        ConfigFacts::Loaded(loaded) => loaded_config(facts, loaded, out),
    }
}

fn loaded_config(facts: &Facts, loaded: &LoadedFacts, out: &mut Vec<Finding>) {
    let path = facts.config_path.display();
    for key in &loaded.ignored_keys {
        out.push(finding(
            "config.ignored_key",
            Severity::Warning,
            format!("{path}: `{key}` (from the original codex-helper) is read but not acted on by this version"),
            Some(format!("remove `{key}` from {path} if you rely on it doing something")),
        ));
    }
    for (endpoint, var) in &loaded.missing_env {
        out.push(finding(
            "credential.missing_env",
            Severity::Warning,
            format!("relay {endpoint}: environment variable {var} is not set, so the relay is skipped"),
            Some(format!("export {var}=… where codex-helper runs (then restart it: codex-helper daemon restart)")),
        ));
    }
    for key in &loaded.inline_secrets {
        out.push(finding(
            "secret.inline",
            Severity::Warning,
            format!("{path}: `{key}` holds a secret written in the file"),
            Some(format!(
                "move it to an environment variable: replace `{}` with `{}_env = \"VAR\"` and export VAR",
                key.rsplit('.').next().unwrap_or(key),
                key.rsplit('.').next().unwrap_or(key)
            )),
        ));
    }
    if let Some(mode) = loaded.mode.filter(|m| m & 0o077 != 0) {
        let severity = if loaded.inline_secrets.is_empty() {
            Severity::Warning
        } else {
            Severity::Error
        };
        out.push(finding(
            "config.mode",
            severity,
            format!(
                "{path} is readable by other users (mode {:o}){}",
                mode & 0o777,
                if loaded.inline_secrets.is_empty() {
                    ""
                } else {
                    " and holds secrets"
                }
            ),
            Some(format!("chmod 600 {path}")),
        ));
    }
}

fn codex(facts: &Facts, out: &mut Vec<Finding>) {
    if let Some(error) = &facts.codex.unreadable {
        out.push(finding(
            "codex.unreadable",
            Severity::Error,
            error.clone(),
            Some("fix or move away the file the message names".into()),
        ));
    }
    for drift in &facts.codex.drift {
        out.push(finding(
            "codex.drift",
            Severity::Warning,
            format!("Codex's config no longer matches what `switch on` wrote: {drift}"),
            Some("codex-helper switch on (or codex-helper switch off to give Codex its own settings back)".into()),
        ));
    }
    if let Some(url) = &facts.codex.helper_url
        && !facts.port.in_use
    {
        out.push(finding(
            "proxy.not_running",
            Severity::Error,
            format!("Codex points at codex-helper ({url}) but nothing listens there: every Codex request fails"),
            Some("codex-helper serve --resident (or codex-helper switch off)".into()),
        ));
    }
}

fn binary(facts: &Facts, out: &mut Vec<Finding>) {
    match &facts.codex_binary {
        BinaryFacts::Found(b) => out.push(finding(
            "codex.binary",
            Severity::Info,
            format!(
                "/models is translated with Codex {} ({}, found in {})",
                b.version,
                b.path.display(),
                b.origin.as_str()
            ),
            None,
        )),
        BinaryFacts::ConfiguredNotRunnable(path) => out.push(finding(
            "codex.binary_not_runnable",
            Severity::Warning,
            format!(
                "[proxy] codex_binary = {} does not run (`--version`): /models passes through untranslated and Codex uses fallback metadata",
                path.display()
            ),
            Some(format!("point [proxy] codex_binary in {} at a working Codex, or remove it to let the helper search", facts.config_path.display())),
        )),
        BinaryFacts::NotFound => out.push(finding(
            "codex.binary_missing",
            Severity::Warning,
            "no runnable Codex binary found (PATH, npm's global prefix, the usual install folders): /models passes through untranslated and Codex uses fallback metadata".into(),
            Some("install Codex (npm install -g @openai/codex), then codex-helper switch on; or set [proxy] codex_binary".into()),
        )),
    }
}

fn port(facts: &Facts, out: &mut Vec<Finding>) {
    let p = &facts.port;
    if p.in_use && !p.ours {
        out.push(finding(
            "port.conflict",
            Severity::Error,
            format!(
                "port {} is taken by {}, not by codex-helper",
                p.port,
                p.owner.as_deref().unwrap_or("another program")
            ),
            Some(format!(
                "stop that program, or use another port: codex-helper serve --port N && codex-helper switch on --port N (port {} now)",
                p.port
            )),
        ));
    }
}

fn ledger(ledger: &LedgerFacts, out: &mut Vec<Finding>) {
    match &ledger.store {
        LedgerStoreFacts::File {
            path,
            size_bytes,
            quick_check,
        } => ledger_file(&path.display().to_string(), *size_bytes, quick_check, out),
        LedgerStoreFacts::Postgres {
            shown,
            newest_age_ms,
            spooled_rows,
            spool_bytes,
        } => {
            match newest_age_ms {
                Ok(newest) => out.push(finding(
                    "ledger.postgres",
                    Severity::Info,
                    match newest {
                        Some(ms) => format!(
                            "the ledger is in PostgreSQL at {shown}; its newest request started {} ago",
                            age(*ms)
                        ),
                        None => format!("the ledger is in PostgreSQL at {shown}; it holds no request yet"),
                    },
                    None,
                )),
                Err(error) => out.push(finding(
                    "ledger.unreachable",
                    Severity::Error,
                    format!("the ledger database ({shown}) cannot be read: {error}"),
                    Some("check that PostgreSQL is up and reachable from here, and that [ledger] url (or the variable it names) is right; meanwhile the helper keeps rows in its spool".into()),
                )),
            }
            if *spooled_rows > 0 {
                out.push(finding(
                    "ledger.spooled",
                    Severity::Warning,
                    format!(
                        "{spooled_rows} request records ({} KiB) wait in the spool to be written to PostgreSQL",
                        spool_bytes.div_ceil(1024)
                    ),
                    Some("they are written when the database answers the running helper; past 64 MiB new ones are lost".into()),
                ));
            }
        }
    }
    if let Some(lost) = ledger.lost_rows.filter(|n| *n > 0) {
        out.push(finding(
            "ledger.lost_rows",
            Severity::Warning,
            format!("the running helper could not write {lost} request records to the ledger"),
            Some(
                "check the disk has room and the ledger is writable; the helper's log says why"
                    .into(),
            ),
        ));
    }
}

/// A duration for people: `40 s`, `12 min`, `3 h`, `2 days`.
fn age(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..120 => format!("{secs} s"),
        120..7_200 => format!("{} min", secs / 60),
        7_200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

fn ledger_file(
    path: &str,
    size_bytes: u64,
    quick_check: &Result<String, String>,
    out: &mut Vec<Finding>,
) {
    match quick_check {
        Ok(answer) if answer == "ok" => {}
        Ok(answer) => out.push(finding(
            "ledger.corrupt",
            Severity::Error,
            format!("the ledger {path} is damaged: {answer}"),
            Some(format!("stop codex-helper and move {path} away (a new ledger is started; the old one can still be read with sqlite3 .recover)")),
        )),
        Err(error) => out.push(finding(
            "ledger.unreadable",
            Severity::Error,
            format!("the ledger {path} cannot be checked: {error}"),
            Some(format!("check the file's owner and mode, or move {path} away")),
        )),
    }
    let large = size_bytes > LEDGER_LARGE_BYTES;
    out.push(finding(
        "ledger.size",
        if large {
            Severity::Warning
        } else {
            Severity::Info
        },
        format!("the ledger {path} is {} MiB", size_bytes >> 20),
        large.then(|| "lower [ledger] retention_days, or move the file away".to_string()),
    ));
}

fn clock(facts: &Facts, out: &mut Vec<Finding>) {
    let Some(relays) = &facts.clock else {
        out.push(finding(
            "clock.skipped",
            Severity::Info,
            "relays' clocks not checked (--offline)".into(),
            None,
        ));
        return;
    };
    for relay in relays {
        match &relay.skew_ms {
            Ok(skew) if skew.abs() >= SKEW_WARN_MS => out.push(finding(
                "clock.skew",
                if skew.abs() >= SKEW_ERROR_MS {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                format!(
                    "relay {}'s clock is {} s {} this machine's",
                    relay.relay,
                    skew.abs() / 1000,
                    if *skew > 0 { "ahead of" } else { "behind" }
                ),
                Some(
                    "synchronise this machine's clock (e.g. sudo timedatectl set-ntp true)".into(),
                ),
            )),
            Ok(_) => {}
            Err(error) => out.push(finding(
                "clock.unchecked",
                Severity::Info,
                format!("relay {}'s clock not checked: {error}", relay.relay),
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::facts::{ClockFacts, CodexFacts, PortFacts};
    use super::*;
    use crate::codex::discover::{CodexBinary, Origin};

    fn base() -> Facts {
        Facts {
            config_path: "/h/config.toml".into(),
            config: ConfigFacts::Loaded(LoadedFacts {
                mode: Some(0o600),
                ..LoadedFacts::default()
            }),
            codex_binary: BinaryFacts::Found(CodexBinary {
                path: "/usr/bin/codex".into(),
                version: "0.171.0".into(),
                origin: Origin::Path,
            }),
            port: PortFacts {
                port: 3211,
                ..PortFacts::default()
            },
            clock: Some(Vec::new()),
            ..Facts::default()
        }
    }

    fn ids(facts: &Facts) -> Vec<(&'static str, Severity)> {
        findings(facts).iter().map(|f| (f.id, f.severity)).collect()
    }

    #[test]
    fn a_sound_setup_has_only_the_binary_it_uses() {
        assert_eq!(ids(&base()), [("codex.binary", Severity::Info)]);
    }

    #[test]
    fn config_findings() {
        let mut facts = base();
        facts.config = ConfigFacts::Invalid("bad key".into());
        assert!(ids(&facts).contains(&("config.invalid", Severity::Error)));
        facts.config = ConfigFacts::Missing;
        assert!(ids(&facts).contains(&("config.missing", Severity::Info)));
        facts.config = ConfigFacts::Loaded(LoadedFacts {
            ignored_keys: vec!["notify".into()],
            missing_env: vec![("a.default".into(), "A_KEY".into())],
            inline_secrets: vec!["codex.providers.a.auth_token".into()],
            mode: Some(0o644),
        });
        let found = findings(&facts);
        let get = |id: &str| {
            found
                .iter()
                .find(|f| f.id == id)
                .unwrap_or_else(|| panic!("{id}: {found:?}"))
        };
        assert_eq!(get("config.ignored_key").severity, Severity::Warning);
        assert!(
            get("credential.missing_env")
                .fix
                .as_deref()
                .unwrap()
                .contains("export A_KEY=")
        );
        assert!(
            get("secret.inline")
                .fix
                .as_deref()
                .unwrap()
                .contains("auth_token_env")
        );
        assert_eq!(
            get("config.mode").severity,
            Severity::Error,
            "readable and holding a secret"
        );
        assert_eq!(
            get("config.mode").fix.as_deref(),
            Some("chmod 600 /h/config.toml")
        );
        assert_eq!(found[0].severity, Severity::Error, "errors first");
    }

    #[test]
    fn codex_port_and_proxy_findings() {
        let mut facts = base();
        facts.codex = CodexFacts {
            helper_url: Some("http://127.0.0.1:3211/v1".into()),
            drift: vec!["auth.json changed".into()],
            unreadable: None,
        };
        assert!(ids(&facts).contains(&("proxy.not_running", Severity::Error)));
        assert!(ids(&facts).contains(&("codex.drift", Severity::Warning)));
        facts.port.in_use = true;
        assert!(!ids(&facts).iter().any(|(id, _)| *id == "proxy.not_running"));
        assert!(
            ids(&facts).contains(&("port.conflict", Severity::Error)),
            "something else listens"
        );
        facts.port.ours = true;
        assert!(!ids(&facts).iter().any(|(id, _)| *id == "port.conflict"));
        facts.codex_binary = BinaryFacts::NotFound;
        assert!(ids(&facts).contains(&("codex.binary_missing", Severity::Warning)));
        facts.codex_binary = BinaryFacts::ConfiguredNotRunnable("/x".into());
        assert!(ids(&facts).contains(&("codex.binary_not_runnable", Severity::Warning)));
    }

    #[test]
    fn ledger_and_clock_findings() {
        let mut facts = base();
        facts.ledger = Some(LedgerFacts {
            store: LedgerStoreFacts::File {
                path: "/h/ledger.sqlite3".into(),
                size_bytes: 2 << 30,
                quick_check: Ok(
                    "*** in database main ***\nPage 5: btreeInitPage() returns error code 11"
                        .into(),
                ),
            },
            lost_rows: Some(3),
        });
        facts.clock = Some(vec![
            ClockFacts {
                relay: "a.default".into(),
                skew_ms: Ok(-45_000),
            },
            ClockFacts {
                relay: "b.default".into(),
                skew_ms: Ok(600_000),
            },
            ClockFacts {
                relay: "c.default".into(),
                skew_ms: Ok(2_000),
            },
            ClockFacts {
                relay: "d.default".into(),
                skew_ms: Err("timed out".into()),
            },
        ]);
        let found = ids(&facts);
        for wanted in [
            ("ledger.corrupt", Severity::Error),
            ("ledger.size", Severity::Warning),
            ("ledger.lost_rows", Severity::Warning),
            ("clock.skew", Severity::Warning),
            ("clock.skew", Severity::Error),
            ("clock.unchecked", Severity::Info),
        ] {
            assert!(found.contains(&wanted), "{wanted:?} in {found:?}");
        }
        assert_eq!(
            found.iter().filter(|(id, _)| *id == "clock.skew").count(),
            2,
            "2 s is fine"
        );
        facts.clock = None;
        assert!(ids(&facts).contains(&("clock.skipped", Severity::Info)));
    }

    #[test]
    fn a_postgres_ledger_is_reported_reachable_or_not_with_its_spool() {
        let mut facts = base();
        let postgres = |newest_age_ms, spooled_rows| LedgerFacts {
            store: LedgerStoreFacts::Postgres {
                shown: "db:5432/team".into(),
                newest_age_ms,
                spooled_rows,
                spool_bytes: spooled_rows * 900,
            },
            lost_rows: None,
        };
        facts.ledger = Some(postgres(Ok(Some(300_000)), 0));
        let found = findings(&facts);
        let info = found.iter().find(|f| f.id == "ledger.postgres").unwrap();
        assert!(
            info.message.contains("db:5432/team") && info.message.contains("5 min ago"),
            "{info:?}"
        );
        assert!(!found.iter().any(|f| f.id == "ledger.spooled"));

        facts.ledger = Some(postgres(Err("did not answer within 5 s".into()), 40));
        let found = findings(&facts);
        let down = found.iter().find(|f| f.id == "ledger.unreachable").unwrap();
        assert_eq!(down.severity, Severity::Error);
        assert!(down.message.contains("did not answer"), "{down:?}");
        let spooled = found.iter().find(|f| f.id == "ledger.spooled").unwrap();
        assert!(
            spooled.message.starts_with("40 request records (36 KiB)"),
            "{spooled:?}"
        );
        assert!(!found.iter().any(|f| f.id == "ledger.size"));
    }
}
