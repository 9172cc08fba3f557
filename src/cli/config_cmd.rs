//! `codex-helper config …`: where the config is, checking it, creating it, importing relays
//! from Codex, the retry profile, migrating the original's older files, and the JSON Schema.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::codex::switch::{CodexFiles, own_config};
use crate::config::codex_import::{CodexImport, read_codex_providers};
use crate::config::edit::ConfigEditor;
use crate::config::migrate::{self, Migration, Source};
use crate::config::model::RetryProfile;
use crate::config::provider_spec::ProviderSpec;
use crate::config::{Homes, bootstrap, load};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the config file's path.
    Path,
    /// Create the config (from Codex's active provider unless --no-import).
    Init {
        /// Overwrite an existing config (a .bak copy is kept).
        #[arg(long)]
        force: bool,
        /// Do not import Codex's active provider.
        #[arg(long)]
        no_import: bool,
    },
    /// Add the relays in Codex's config.toml ([model_providers.*]) with their keys.
    ImportFromCodex {
        /// Replace providers of the same id (otherwise they are left as they are).
        #[arg(long)]
        force: bool,
    },
    /// Replace every relay with the ones in Codex's config.toml (routes are reset).
    OverwriteFromCodex {
        /// Show what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do it (without it, nothing is written).
        #[arg(long)]
        yes: bool,
    },
    /// Set [retry] profile: balanced, same-upstream, aggressive-failover or cost-primary.
    SetRetryProfile {
        #[arg(value_enum)]
        profile: RetryProfileArg,
    },
    /// Check the config as `serve` would; exits non-zero with the errors.
    Validate {
        #[arg(long)]
        json: bool,
    },
    /// Convert a config of the original's older formats (v1–v4, config.json) to version 5.
    /// Shows the change as a diff; --write writes it (a .bak copy is kept).
    Migrate {
        /// Only show the diff (the default).
        #[arg(long, conflicts_with = "write")]
        dry_run: bool,
        /// Write the migrated config.
        #[arg(long)]
        write: bool,
        /// Accepted for the original's `--write --yes`.
        #[arg(long, hide = true)]
        yes: bool,
    },
    /// Print the JSON Schema of config.toml (for taplo / Even Better TOML).
    Schema,
}

/// The retry profiles, as typed on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RetryProfileArg {
    Balanced,
    SameUpstream,
    AggressiveFailover,
    CostPrimary,
}

impl RetryProfileArg {
    fn profile(self) -> RetryProfile {
        match self {
            Self::Balanced => RetryProfile::Balanced,
            Self::SameUpstream => RetryProfile::SameUpstream,
            Self::AggressiveFailover => RetryProfile::AggressiveFailover,
            Self::CostPrimary => RetryProfile::CostPrimary,
        }
    }
}

pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let path = homes.helper_config();
    match command {
        ConfigCommand::Path => {
            println!("{}", path.display());
            Ok(())
        }
        ConfigCommand::Schema => {
            print!("{}", crate::config::schema::schema_json());
            Ok(())
        }
        ConfigCommand::Validate { json } => validate(&path, json),
        ConfigCommand::Init { force, no_import } => init(&homes, &path, force, no_import),
        ConfigCommand::ImportFromCodex { force } => import(&homes, &path, force),
        ConfigCommand::OverwriteFromCodex { dry_run, yes } => {
            overwrite(&homes, &path, dry_run, yes)
        }
        ConfigCommand::SetRetryProfile { profile } => {
            // The name as the config spells it (the profile's serde name).
            let name = serde_json::to_value(profile.profile())?;
            let name = name.as_str().context("a profile name is a string")?;
            let mut editor = ConfigEditor::open(&path)?;
            set_retry_profile(&mut editor, name);
            editor.save(&crate::routing::check_config)?;
            println!(
                "[retry] profile = \"{name}\" in {}; a running codex-helper applies it within a second.",
                path.display()
            );
            Ok(())
        }
        ConfigCommand::Migrate { write, .. } => migrate_command(&homes, &path, write),
    }
}

/// A problem `config validate` reports.
#[derive(Debug, Serialize)]
struct Problem {
    key: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct Validation {
    ok: bool,
    path: PathBuf,
    errors: Vec<Problem>,
    /// Keys read but not acted on (as `serve` reports them at start-up).
    ignored_keys: Vec<String>,
    /// Credential variables the relays name that are not set in this shell.
    missing_env: Vec<String>,
}

fn validate(path: &Path, json: bool) -> anyhow::Result<()> {
    let mut report = Validation {
        ok: false,
        path: path.to_path_buf(),
        errors: Vec::new(),
        ignored_keys: Vec::new(),
        missing_env: Vec::new(),
    };
    match load::load(path) {
        Ok(None) => report.errors.push(Problem {
            key: "(file)".into(),
            message: "does not exist; create it with `codex-helper config init`".into(),
        }),
        Err(e) => match e.downcast::<crate::config::ConfigError>() {
            Ok(e) => report.errors.push(Problem {
                key: e.key,
                message: e.message,
            }),
            Err(e) => report.errors.push(Problem {
                key: "(file)".into(),
                message: format!("{e:#}"),
            }),
        },
        Ok(Some(loaded)) => {
            report.ignored_keys = loaded.deferred_keys.clone();
            let env = |name: &str| std::env::var(name).ok();
            match crate::proxy::Plan::from_config(&loaded, &env) {
                Ok(plan) => {
                    for upstream in &plan.graph.upstreams {
                        for var in &upstream.credential.missing_env {
                            if !report.missing_env.contains(var) {
                                report.missing_env.push(var.clone());
                            }
                        }
                    }
                }
                Err(e) => report.errors.push(Problem {
                    key: e.key,
                    message: e.message,
                }),
            }
            // The limits `serve` refuses to start with.
            if let Err(e) = crate::proxy::limits::validate(&loaded.config.proxy) {
                report.errors.push(Problem {
                    key: "proxy".into(),
                    message: e.to_string(),
                });
            }
        }
    }
    report.ok = report.errors.is_empty();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.errors {
            println!("error: {}: `{}`: {}", path.display(), p.key, p.message);
        }
        for key in &report.ignored_keys {
            println!("note: `{key}` is recognised but not used by this version");
        }
        for var in &report.missing_env {
            println!("note: environment variable {var} is not set in this shell");
        }
        if report.ok {
            println!("{} is valid.", path.display());
        }
    }
    if !report.ok {
        bail!(
            "{} is not valid ({} error(s))",
            path.display(),
            report.errors.len()
        );
    }
    Ok(())
}

fn init(homes: &Homes, path: &Path, force: bool, no_import: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!(
            "{} already exists; add --force to replace it (a .bak copy is kept)",
            path.display()
        );
    }
    let codex = if no_import {
        None
    } else {
        own_config(&CodexFiles::new(&homes.codex))?
    };
    let (text, imported) = bootstrap::initial_config(codex.as_deref(), super::serve::DEFAULT_PORT);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if let Ok(old) = std::fs::read(path) {
        crate::files::write_backup(&path.with_extension("toml.bak"), &old, path)?;
    }
    crate::files::write_atomic(path, text.as_bytes(), crate::files::PRIVATE)?;
    match imported {
        bootstrap::Imported::Provider { id, base_url, .. } => {
            println!(
                "Created {} with relay `{id}` ({base_url}) from Codex's active provider.",
                path.display()
            )
        }
        bootstrap::Imported::Nothing { reason } if !no_import => {
            println!("Created {} with no relay ({reason}).", path.display())
        }
        bootstrap::Imported::Nothing { .. } => println!("Created {}.", path.display()),
    }
    Ok(())
}

/// Codex's providers, read from its config as the user made it (without the helper's switch).
fn codex_providers(homes: &Homes) -> anyhow::Result<CodexImport> {
    let files = CodexFiles::new(&homes.codex);
    let Some(text) = own_config(&files)? else {
        bail!(
            "{} does not exist: Codex has no providers to import",
            files.config.display()
        );
    };
    let auth = std::fs::read_to_string(&files.auth).ok();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    read_codex_providers(&text, auth.as_deref(), super::serve::DEFAULT_PORT, &env)
}

fn spec(p: &crate::config::codex_import::CodexProvider) -> ProviderSpec {
    ProviderSpec {
        id: p.id.clone(),
        alias: p.alias.clone(),
        enabled: true,
        base_url: Some(p.base_url.clone()),
        auth_token: p.auth_token.clone(),
        auth_token_env: p.auth_token_env.clone(),
        ..Default::default()
    }
}

fn report_skipped(found: &CodexImport) {
    for reason in &found.skipped {
        println!("Skipped {reason}.");
    }
}

/// Before a key itself is written into the config: the file becomes readable by its owner
/// only (its other mode bits go), so the key is never readable by others, not even for the
/// moment between writing and a later change of mode. A missing file is created private.
pub fn make_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let target = crate::files::resolve_link(path)?;
    let Ok(meta) = std::fs::metadata(&target) else {
        return Ok(());
    };
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o700))
            .with_context(|| format!("cannot make {} private", target.display()))?;
    }
    Ok(())
}

fn warn_inline_secret(path: &Path) {
    eprintln!(
        "warning: a relay key is now stored in {} itself (readable only by you, mode 0600); \
         an environment variable (--auth-token-env) keeps it out of the file",
        path.display()
    );
}

fn import(homes: &Homes, path: &Path, force: bool) -> anyhow::Result<()> {
    let found = codex_providers(homes)?;
    report_skipped(&found);
    if found.providers.is_empty() {
        println!("Codex's config has no providers to import.");
        return Ok(());
    }
    let mut editor = ConfigEditor::open(path)?;
    let existing: Vec<String> = load::parse(path, &editor.text())
        .map(|l| l.config.codex.providers.keys().cloned().collect())
        .unwrap_or_default();
    let mut done = Vec::new();
    let mut secret = false;
    for p in &found.providers {
        if existing.contains(&p.id) && !force {
            println!(
                "Kept provider `{}` as it is (add --force to replace it).",
                p.id
            );
            continue;
        }
        editor.put_provider(&spec(p), force)?;
        secret |= p.auth_token.is_some();
        done.push(p.id.clone());
    }
    if done.is_empty() {
        return Ok(());
    }
    if secret {
        make_private(path)?;
    }
    editor.save(&crate::routing::check_config)?;
    println!(
        "Imported from Codex: {} (in {}).",
        done.join(", "),
        path.display()
    );
    if secret {
        warn_inline_secret(path);
    }
    Ok(())
}

fn overwrite(homes: &Homes, path: &Path, dry_run: bool, yes: bool) -> anyhow::Result<()> {
    let found = codex_providers(homes)?;
    report_skipped(&found);
    let mut editor = ConfigEditor::open(path)?;
    let before = editor.text();
    let doc = editor.doc_mut();
    if let Some(codex) = doc.get_mut("codex").and_then(toml_edit::Item::as_table_mut) {
        codex.remove("providers");
        codex.remove("routing");
    }
    for p in &found.providers {
        editor.put_provider(&spec(p), false)?;
    }
    let after = editor.text();
    print!(
        "{}",
        migrate::unified_diff(&before, &after, "config.toml", "config.toml (from Codex)")
    );
    if dry_run || !yes {
        println!(
            "Nothing written{}.",
            if dry_run {
                " (--dry-run)"
            } else {
                "; add --yes to replace every relay"
            }
        );
        return Ok(());
    }
    if found.providers.iter().any(|p| p.auth_token.is_some()) {
        make_private(path)?;
    }
    editor.save(&crate::routing::check_config)?;
    println!(
        "Replaced the relays in {} with Codex's: {}.",
        path.display(),
        found
            .providers
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if found.providers.iter().any(|p| p.auth_token.is_some()) {
        warn_inline_secret(path);
    }
    Ok(())
}

/// `[retry] profile = "…"`, creating `[retry]` when missing.
fn set_retry_profile(editor: &mut ConfigEditor, profile: &str) {
    let root = editor.doc_mut().as_table_mut();
    if !root.contains_key("retry") {
        root.insert("retry", toml_edit::Item::Table(toml_edit::Table::new()));
    }
    if let Some(retry) = root
        .get_mut("retry")
        .and_then(toml_edit::Item::as_table_like_mut)
    {
        retry.insert("profile", toml_edit::value(profile));
    }
}

fn migrate_command(homes: &Homes, path: &Path, write: bool) -> anyhow::Result<()> {
    let json = homes.helper.join("config.json");
    let (from, old, migration): (PathBuf, String, Migration) = if path.exists() {
        let old = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let m = migrate::migrate_toml(&old)
            .with_context(|| format!("cannot migrate {}", path.display()))?;
        (path.to_path_buf(), old, m)
    } else if json.exists() {
        let old = std::fs::read_to_string(&json)
            .with_context(|| format!("cannot read {}", json.display()))?;
        let m = migrate::migrate_json(&old)
            .with_context(|| format!("cannot migrate {}", json.display()))?;
        (json.clone(), old, m)
    } else {
        bail!(
            "no config to migrate: neither {} nor {} exists",
            path.display(),
            json.display()
        );
    };
    if migration.source == Source::Current {
        println!(
            "{} is already version 5; nothing to migrate.",
            from.display()
        );
        return Ok(());
    }
    for w in &migration.warnings {
        eprintln!("warning: {w}");
    }
    let old_for_diff = if migration.source == Source::Json {
        ""
    } else {
        old.as_str()
    };
    print!(
        "{}",
        migrate::unified_diff(
            old_for_diff,
            &migration.text,
            &from.display().to_string(),
            &format!("{} (version 5)", path.display())
        )
    );
    // The result must be what `serve` accepts before anything is written.
    let loaded = load::parse(path, &migration.text)
        .with_context(|| "the migrated config would not load (nothing was written)")?;
    crate::routing::check_config(&loaded).map_err(|e| {
        anyhow::anyhow!("the migrated config would not start (nothing was written): {e}")
    })?;
    if !write {
        println!(
            "Migrating {} ({}). Nothing written; run `codex-helper config migrate --write` to write it.",
            from.display(),
            migration.source
        );
        return Ok(());
    }
    if migration.source == Source::Json {
        crate::files::write_atomic(path, migration.text.as_bytes(), crate::files::PRIVATE)?;
        println!(
            "Wrote {} from {} (which is left as it was; config.toml is read first).",
            path.display(),
            json.display()
        );
    } else {
        crate::files::ensure_writable(path)?;
        let backup = path.with_extension("toml.bak");
        crate::files::write_backup(&backup, old.as_bytes(), path)?;
        crate::files::write_atomic(path, migration.text.as_bytes(), crate::files::PRIVATE)?;
        println!(
            "Migrated {} to version 5 (the {} file is kept as {}).",
            path.display(),
            migration.source,
            backup.display()
        );
    }
    Ok(())
}
