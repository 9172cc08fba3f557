//! `codex-helper keys add|list|limit|disable|enable|remove`: team members' keys, in the team's
//! PostgreSQL (`[team] database_url_env`), so a key added here works on every instance at
//! once. A key is shown once, when it is made; only a salted tag of it is stored.

use anyhow::Context;
use serde::Serialize;

use crate::config::Homes;
use crate::shared::member_limits::MemberLimits;
use crate::team::db::{AddError, DatabaseUrl, Db, KeyRecord};
use crate::team::key::{self, PREFIX};

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make a key for a team member and print it (once: it is never shown again).
    Add {
        /// Who the key is for (letters, digits, `.`, `_`, `-`, `@`; up to 64): named in the
        /// ledger and in refusals.
        name: String,
        /// Take the key's secret from this environment variable instead of making a random
        /// one (moving keys in from elsewhere; examples and weak secrets are refused).
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        /// At most this many requests a minute, counted across every team instance.
        #[arg(long, value_name = "N", value_parser = parse_rpm)]
        rpm: Option<u32>,
        /// At most this much money (US dollars, as the ledger prices requests) a UTC day,
        /// across every team instance.
        #[arg(long, value_name = "USD", value_parser = parse_budget)]
        daily_budget: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Change a member's limits; `none` removes one, an option left out keeps it.
    /// Every instance applies the change within `[team] key_refresh_ms`.
    Limit {
        name: String,
        /// Requests a minute (`none`: no limit).
        #[arg(long, value_name = "N|none", value_parser = parse_rpm_setting)]
        rpm: Option<Setting<u32>>,
        /// US dollars a UTC day (`none`: no limit).
        #[arg(long, value_name = "USD|none", value_parser = parse_budget_setting)]
        daily_budget: Option<Setting<f64>>,
        #[arg(long)]
        json: bool,
    },
    /// The team's keys: name, id, when made, enabled or not, limits (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Refuse a member's key from now on (every instance within `[team] key_refresh_ms`).
    Disable { name: String },
    /// Accept a disabled key again.
    Enable { name: String },
    /// Delete a member's key for good.
    Remove { name: String },
}

/// A key as `keys list --json` shows it.
#[derive(Debug, Serialize)]
struct KeyView {
    name: String,
    /// The key's public part (`chk_<id>_…`), to tell keys apart.
    id: String,
    created_ms: i64,
    enabled: bool,
    /// Requests a minute; `null`: no limit.
    rpm: Option<u32>,
    /// US dollars a UTC day; `null`: no limit.
    daily_budget_usd: Option<f64>,
}

impl From<&KeyRecord> for KeyView {
    fn from(r: &KeyRecord) -> Self {
        Self {
            name: r.name.clone(),
            id: r.id.clone(),
            created_ms: r.created_ms,
            enabled: !r.disabled,
            rpm: r.limits.rpm,
            daily_budget_usd: r.limits.daily_budget_usd,
        }
    }
}

/// A limit as `keys limit` sets it: a value, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting<T> {
    To(T),
    Unlimited,
}

impl<T> Setting<T> {
    fn value(self) -> Option<T> {
        match self {
            Setting::To(v) => Some(v),
            Setting::Unlimited => None,
        }
    }
}

/// Requests a minute: 1 to 1 000 000.
fn parse_rpm(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a request rate: give a whole number of requests a minute from 1 to 1000000"
        )),
    }
}

/// A daily budget in US dollars: more than 0, at most 1 000 000.
fn parse_budget(text: &str) -> Result<f64, String> {
    match text.trim().trim_start_matches('$').parse::<f64>() {
        Ok(usd) if usd.is_finite() && usd > 0.0 && usd <= 1_000_000.0 => Ok(usd),
        _ => Err(format!(
            "`{text}` is not a budget: give US dollars a day, more than 0 (e.g. 25 or 2.50)"
        )),
    }
}

fn parse_rpm_setting(text: &str) -> Result<Setting<u32>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Setting::Unlimited);
    }
    parse_rpm(text).map(Setting::To)
}

fn parse_budget_setting(text: &str) -> Result<Setting<f64>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Setting::Unlimited);
    }
    parse_budget(text).map(Setting::To)
}

/// `rpm 60, $25.00/day`, or `none`.
fn limits_text(limits: &MemberLimits) -> String {
    let mut parts = Vec::new();
    if let Some(rpm) = limits.rpm {
        parts.push(format!("rpm {rpm}"));
    }
    if let Some(usd) = limits.daily_budget_usd {
        parts.push(format!("${usd:.2}/day"));
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

/// `keys add --json`: the one time the key is shown.
#[derive(Debug, Serialize)]
struct Added<'a> {
    name: &'a str,
    id: &'a str,
    key: &'a str,
    created_ms: i64,
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let settings = match crate::config::load::load(&homes.helper_config())? {
        Some(loaded) => loaded.config.team.clone(),
        None => Default::default(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let url = DatabaseUrl::from_env(&settings.database_url_env, &env)?;
    super::block_on(async move {
        let db = Db::connect(&url).await?;
        match command {
            KeysCommand::Add {
                name,
                from_env,
                rpm,
                daily_budget,
                json,
            } => {
                let limits = MemberLimits {
                    rpm,
                    daily_budget_usd: daily_budget,
                };
                add(&db, &name, from_env.as_deref(), limits, json, &env).await
            }
            KeysCommand::Limit {
                name,
                rpm,
                daily_budget,
                json,
            } => limit(&db, &name, (rpm, daily_budget), json).await,
            KeysCommand::List { json } => list(&db, json).await,
            KeysCommand::Disable { name } => set(&db, &name, true).await,
            KeysCommand::Enable { name } => set(&db, &name, false).await,
            KeysCommand::Remove { name } => {
                check_name(&name)?;
                if !db.remove_key(&name).await? {
                    anyhow::bail!("no key is named `{name}` (see `codex-helper keys list`)");
                }
                println!("removed the key of {name}");
                Ok(())
            }
        }
    })?
}

/// A member name: short, printable, safe in a table and a log line.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if !ok {
        anyhow::bail!(
            "`{name}` is not a usable key name: use 1 to 64 letters, digits, `.`, `_`, `-` or `@`"
        );
    }
    Ok(())
}

async fn add(
    db: &Db,
    name: &str,
    from_env: Option<&str>,
    limits: MemberLimits,
    json: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    check_name(name)?;
    let issued = match from_env {
        Some(var) => {
            let secret = env(var)
                .filter(|v| !v.trim().is_empty())
                .with_context(|| format!("--from-env {var}: the variable is not set"))?;
            key::import(&secret)?
        }
        None => key::issue()?,
    };
    let record = KeyRecord {
        id: issued.id.clone(),
        name: name.to_string(),
        stored: issued.stored.clone(),
        created_ms: crate::time::now_ms() as i64,
        disabled: false,
        limits,
    };
    db.add_key(&record).await.map_err(|e| match e {
        AddError::Db(e) => e,
        taken => anyhow::Error::new(taken),
    })?;
    if json {
        let added = Added {
            name,
            id: &record.id,
            key: issued.text(),
            created_ms: record.created_ms,
        };
        println!("{}", serde_json::to_string_pretty(&added)?);
    } else {
        println!(
            "Added a key for {name} (limits: {}). It is shown only this once:\n",
            limits_text(&limits)
        );
        println!("  {}\n", issued.text());
        println!(
            "Their Codex uses it with `codex-helper switch on --team-url URL --key-env VAR`, VAR holding the key."
        );
    }
    Ok(())
}

async fn list(db: &Db, json: bool) -> anyhow::Result<()> {
    let keys = db.keys().await?;
    if json {
        let views: Vec<KeyView> = keys.iter().map(KeyView::from).collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    if keys.is_empty() {
        println!("no keys yet: `codex-helper keys add NAME` makes one");
        return Ok(());
    }
    let width = keys.iter().map(|k| k.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:width$}  {:22}  {:20}  {:8}  LIMITS",
        "NAME", "KEY", "CREATED (UTC)", "STATE"
    );
    for k in &keys {
        println!(
            "{:width$}  {:22}  {:20}  {:8}  {}",
            k.name,
            format!("{PREFIX}{}_…", k.id),
            crate::codex::rollouts::rfc3339_utc(k.created_ms as u64),
            if k.disabled { "disabled" } else { "enabled" },
            limits_text(&k.limits)
        );
    }
    Ok(())
}

/// `keys limit`: the options given replace the member's limits, the others stay.
async fn limit(
    db: &Db,
    name: &str,
    (rpm, budget): (Option<Setting<u32>>, Option<Setting<f64>>),
    json: bool,
) -> anyhow::Result<()> {
    check_name(name)?;
    if rpm.is_none() && budget.is_none() {
        anyhow::bail!("say which limit to change: --rpm N|none and/or --daily-budget USD|none");
    }
    let missing = || anyhow::anyhow!("no key is named `{name}` (see `codex-helper keys list`)");
    let keys = db.keys().await?;
    let current = keys.iter().find(|k| k.name == name).ok_or_else(missing)?;
    let limits = MemberLimits {
        rpm: rpm.map_or(current.limits.rpm, Setting::value),
        daily_budget_usd: budget.map_or(current.limits.daily_budget_usd, Setting::value),
    };
    if !db.set_limits(name, limits).await? {
        return Err(missing());
    }
    if json {
        let view = KeyView::from(&KeyRecord {
            limits,
            ..current.clone()
        });
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        println!("limits of {name}: {}", limits_text(&limits));
    }
    Ok(())
}

async fn set(db: &Db, name: &str, disabled: bool) -> anyhow::Result<()> {
    check_name(name)?;
    if !db.set_disabled(name, disabled).await? {
        anyhow::bail!("no key is named `{name}` (see `codex-helper keys list`)");
    }
    println!(
        "{} the key of {name}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_none_removes_one() {
        assert_eq!(parse_rpm("60"), Ok(60));
        for bad in ["0", "-1", "1.5", "many", "1000001"] {
            assert!(parse_rpm(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_budget("2.50"), Ok(2.5));
        assert_eq!(parse_budget("$25"), Ok(25.0));
        for bad in ["0", "-3", "NaN", "inf", "lots"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rpm_setting("none"), Ok(Setting::Unlimited));
        assert_eq!(parse_budget_setting("7"), Ok(Setting::To(7.0)));
        let both = MemberLimits {
            rpm: Some(60),
            daily_budget_usd: Some(25.0),
        };
        assert_eq!(limits_text(&both), "rpm 60, $25.00/day");
        assert_eq!(limits_text(&MemberLimits::default()), "none");
    }

    #[test]
    fn names_are_short_and_printable() {
        for good in ["ann", "bob.smith@corp", "ci-bot_2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "semi;colon", "new\nline", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
