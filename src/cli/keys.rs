//! `codex-helper keys add|list|disable|enable|remove`: team members' keys, in the team's
//! PostgreSQL (`[team] database_url_env`), so a key added here works on every instance at
//! once. A key is shown once, when it is made; only a salted tag of it is stored.

use anyhow::Context;
use serde::Serialize;

use crate::config::Homes;
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
        #[arg(long)]
        json: bool,
    },
    /// The team's keys: name, id, when made, enabled or not (never the keys themselves).
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
}

impl From<&KeyRecord> for KeyView {
    fn from(r: &KeyRecord) -> Self {
        Self {
            name: r.name.clone(),
            id: r.id.clone(),
            created_ms: r.created_ms,
            enabled: !r.disabled,
        }
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
                json,
            } => add(&db, &name, from_env.as_deref(), json, &env).await,
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
        println!("Added a key for {name}. It is shown only this once:\n");
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
        "{:width$}  {:22}  {:20}  STATE",
        "NAME", "KEY", "CREATED (UTC)"
    );
    for k in &keys {
        println!(
            "{:width$}  {:22}  {:20}  {}",
            k.name,
            format!("{PREFIX}{}_…", k.id),
            crate::codex::rollouts::rfc3339_utc(k.created_ms as u64),
            if k.disabled { "disabled" } else { "enabled" }
        );
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
    fn names_are_short_and_printable() {
        for good in ["ann", "bob.smith@corp", "ci-bot_2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "semi;colon", "new\nline", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
