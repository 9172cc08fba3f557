//! `codex-helper switch on|off|status`: point Codex at the proxy and back.

use crate::codex::discover::{self, CodexBinary};
use crate::codex::preset::{Compaction, PatchPlan, Preset};
use crate::codex::switch::{self, CodexFiles};
use crate::config::{Homes, load};
use crate::proxy::Plan;
use crate::proxy::websocket::Acceptance;

#[derive(Debug, clap::Subcommand)]
pub enum SwitchCommand {
    /// Point Codex at codex-helper (restart Codex afterwards).
    On(OnArgs),
    /// Put Codex's own settings back exactly.
    Off {
        #[arg(long)]
        json: bool,
    },
    /// Whether Codex points at codex-helper, with which preset, and any drift.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The Codex App's remote control (separate from the presets).
    #[command(subcommand)]
    RemoteControl(RemoteControlCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum RemoteControlCommand {
    /// Turn it on: the App's feature flag (database backed up first) and `[features] remote_connections`.
    Enable {
        #[arg(long)]
        json: bool,
    },
    /// Whether it is on.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Look in Codex's logs for the App accepting the flag.
    CheckLogs {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct OnArgs {
    /// default, chatgpt-bridge, imagegen-bridge, official-relay or official-imagegen
    /// (default: `[codex.client_patch] preset`, else `default`).
    #[arg(long, value_parser = Preset::parse)]
    preset: Option<Preset>,
    /// The original codex-helper's name for --preset.
    #[arg(long, value_parser = Preset::parse, conflicts_with = "preset", hide = true)]
    mode: Option<Preset>,
    /// Use the Responses WebSocket transport (official presets only).
    #[arg(long)]
    responses_websocket: bool,
    /// auto, local, remote-v1 or remote-v2.
    #[arg(long, value_parser = Compaction::parse)]
    compaction: Option<Compaction>,
    /// The proxy's port.
    #[arg(long, default_value_t = 3211)]
    port: u16,
    /// Point Codex at a team's codex-helper (`serve --team`) at this address instead of the
    /// local one, e.g. https://codex.team.example (`/v1` is added when missing).
    #[arg(
        long,
        value_name = "URL",
        requires = "key_env",
        conflicts_with = "port"
    )]
    team_url: Option<String>,
    /// With --team-url: the environment variable holding your team key (`chk_…`, from
    /// `codex-helper keys add`); Codex reads it from there at each start.
    #[arg(long, value_name = "VAR", requires = "team_url")]
    key_env: Option<String>,
    #[arg(long)]
    json: bool,
}

/// The base URL Codex gets for a team relay: the address with `/v1`.
fn team_base_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("--team-url `{url}` is not a URL: {e}"))?;
    let host = parsed.host().filter(|h| !h.is_empty());
    if !matches!(parsed.scheme_str(), Some("http" | "https")) || host.is_none() {
        anyhow::bail!("--team-url `{url}` must be an http:// or https:// address");
    }
    if parsed.authority().is_some_and(|a| a.as_str().contains('@')) {
        anyhow::bail!(
            "--team-url must not carry credentials; your key goes in the variable --key-env names"
        );
    }
    if parsed.scheme_str() == Some("http") && !crate::net::is_loopback_url(url) {
        eprintln!(
            "codex-helper: warning: {url} is plain http: your team key crosses the network unencrypted; use https:// unless this network is private"
        );
    }
    Ok(if url.ends_with("/v1") {
        url.to_string()
    } else {
        format!("{url}/v1")
    })
}

/// Says (never showing the key) when the variable a team switch names holds no team key here:
/// Codex reads it at its own start, so this is a warning, not a refusal.
fn warn_about_team_key(var: &str) {
    match std::env::var(var) {
        Ok(value) if crate::team::key::parse(value.trim()).is_some() => {}
        Ok(_) => eprintln!(
            "codex-helper: warning: {var} does not hold a team key (they start with `{}`); Codex's requests will be refused until it does",
            crate::team::key::PREFIX
        ),
        Err(_) => eprintln!(
            "codex-helper: warning: {var} is not set here; set it to your team key where Codex runs"
        ),
    }
}

pub fn run(command: SwitchCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let files = CodexFiles::new(&homes.codex);
    match command {
        SwitchCommand::On(args) => on(&homes, &files, args),
        SwitchCommand::Off { json } => print(&switch::switch_off(&files)?, json),
        SwitchCommand::RemoteControl(command) => remote_control(&homes.codex, command),
        SwitchCommand::Status { json } => status(&homes, &files, json),
    }
}

/// `switch on`: the patch the arguments and `codex.client_patch` ask for, applied, and the
/// Codex binary for the `/models` catalog found and recorded.
fn on(homes: &Homes, files: &CodexFiles, args: OnArgs) -> anyhow::Result<()> {
    let loaded = load::load(&homes.helper_config())?;
    let configured = loaded
        .as_ref()
        .and_then(|l| l.config.codex.client_patch.as_ref())
        .map(|c| c.resolve())
        .transpose()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: `codex.client_patch`: {e}",
                homes.helper_config().display()
            )
        })?
        .unwrap_or_default();
    let preset = args.preset.or(args.mode).unwrap_or(configured.0);
    let websocket = args.responses_websocket || (args.preset.is_none() && configured.1);
    let compaction = args.compaction.unwrap_or(configured.2);
    let mut plan = PatchPlan::new(preset, websocket, compaction).map_err(anyhow::Error::msg)?;
    let base_url = match (&args.team_url, &args.key_env) {
        (Some(url), Some(var)) => {
            plan = plan.with_team_key(var).map_err(anyhow::Error::msg)?;
            warn_about_team_key(var);
            team_base_url(url)?
        }
        _ => {
            if preset.needs_helper_credential() {
                check_helper_credential(loaded.as_ref(), preset)?;
            }
            format!("http://127.0.0.1:{}/v1", args.port)
        }
    };
    let report = switch::switch_on(files, &plan, &base_url)?;
    let configured = loaded.as_ref().map_or_else(
        || "codex".to_string(),
        |l| l.config.proxy.codex_binary.clone(),
    );
    let found = find_and_record_codex(files, &configured);
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["codex_binary"] = serde_json::to_value(&found)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print(&report, false)?;
    match &found {
        Some(binary) => println!(
            "Codex for the /models catalog: {} ({}, found in {})",
            binary.path.display(),
            binary.version,
            binary.origin.as_str()
        ),
        None => println!(
            "No runnable Codex binary was found (PATH, npm's global prefix, the usual install folders): /models passes through untranslated. Set [proxy] codex_binary to its path."
        ),
    }
    Ok(())
}

/// What `switch status` reads: Codex's files, the running helper, and (when Codex will use
/// the WebSocket) whether each relay accepts it.
struct StatusView {
    status: switch::SwitchStatus,
    live: Option<super::switch_live::Live>,
    websocket: bool,
    relays: Vec<(String, Acceptance)>,
}

/// `switch status`.
fn status(homes: &Homes, files: &CodexFiles, json: bool) -> anyhow::Result<()> {
    let status = switch::status(files)?;
    let live = super::switch_live::live(homes, status.base_url.as_deref()).unwrap_or_else(|e| {
        eprintln!(
            "codex-helper: the running codex-helper did not answer ({e}); reading the files only"
        );
        None
    });
    let websocket = status.enabled && status.supports_websockets == Some(true);
    // Only when Codex will try the transport: asking relays costs a handshake each.
    let relays = if websocket {
        websocket_relays(homes)
    } else {
        Vec::new()
    };
    let view = StatusView {
        status,
        live,
        websocket,
        relays,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status_json(homes, files, &view)?)?
        );
        return Ok(());
    }
    print_status(homes, files, &view);
    Ok(())
}

fn status_json(
    homes: &Homes,
    files: &CodexFiles,
    view: &StatusView,
) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(&view.status)?;
    value["source"] = serde_json::json!(if view.live.is_some() { "live" } else { "files" });
    value["running"] = serde_json::to_value(&view.live)?;
    let (binary, note) = catalog_binary(homes, files);
    value["models_catalog"] = serde_json::Value::String(note);
    value["codex_binary"] = serde_json::to_value(&binary)?;
    value["responses_websocket"] = serde_json::json!({
        "in_use": view.websocket,
        "relays": view.relays
            .iter()
            .map(|(endpoint, acceptance)| serde_json::json!({"endpoint": endpoint, "acceptance": acceptance}))
            .collect::<Vec<_>>(),
    });
    Ok(value)
}

fn print_status(homes: &Homes, files: &CodexFiles, view: &StatusView) {
    let status = &view.status;
    if status.enabled {
        let preset = status
            .preset
            .map_or("unknown".to_string(), |p| p.to_string());
        println!(
            "Codex points at codex-helper: {} (preset {preset}{})",
            status.base_url.as_deref().unwrap_or("-"),
            if status.preset_inferred {
                ", inferred"
            } else {
                ""
            }
        );
        println!(
            "  redirected provider: {} (name: {})",
            status.redirected_provider.as_deref().unwrap_or("-"),
            status.provider_name.as_deref().unwrap_or("-")
        );
        println!(
            "  requires_openai_auth: {:?}, supports_websockets: {:?}, remote_compaction_v2: {:?}",
            status.requires_openai_auth, status.supports_websockets, status.remote_compaction_v2
        );
        println!(
            "  Responses WebSocket: {}",
            if view.websocket {
                "in use (Codex opens one per session)"
            } else {
                "not in use (HTTP)"
            }
        );
        for (endpoint, acceptance) in &view.relays {
            let what = match acceptance {
                Acceptance::Accepts => "accepts it".to_string(),
                Acceptance::Refuses { status } => {
                    format!("refuses it (HTTP {status}): Codex is sent to HTTP at once")
                }
                Acceptance::Unreachable { error } => format!("cannot be reached: {error}"),
            };
            println!("    {endpoint}: {what}");
        }
    } else {
        println!(
            "Codex does not point at codex-helper ({}).",
            files.config.display()
        );
    }
    for d in &status.drift {
        println!("  drift: {d}");
    }
    println!("  /models: {}", catalog_binary(homes, files).1);
    match &view.live {
        Some(live) => println!(
            "Running codex-helper (live, pid {}): proxy {}, preset {}; Codex {} it.",
            live.pid,
            live.proxy,
            live.preset.as_deref().unwrap_or("none"),
            if live.codex_points_here {
                "points at"
            } else {
                "does not point at"
            }
        ),
        None => {
            println!("(no codex-helper is running: read from Codex's files and the switch state)")
        }
    }
}

fn print(report: &switch::SwitchReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        if let Some(note) = &report.note {
            eprintln!("codex-helper: note: {note}");
        }
        println!("{}", report.message);
    }
    Ok(())
}

/// Presets that keep Codex's own credential away from relays need a helper credential for at
/// least one enabled relay, or every request would fail.
pub(super) fn check_helper_credential(
    loaded: Option<&crate::config::LoadedConfig>,
    preset: Preset,
) -> anyhow::Result<()> {
    let Some(loaded) = loaded else {
        anyhow::bail!(
            "preset {preset} needs a relay with its own key: add one with `codex-helper provider add ID --base-url URL --auth-token-env VAR`"
        );
    };
    let env = |name: &str| std::env::var(name).ok();
    let plan = Plan::from_config(loaded, &env)?;
    if plan
        .graph
        .upstreams
        .iter()
        .any(|u| u.credential.is_configured() && u.credential.missing_env.is_empty())
    {
        return Ok(());
    }
    let mut missing: Vec<String> = plan
        .graph
        .upstreams
        .iter()
        .flat_map(|u| u.credential.missing_env.clone())
        .collect();
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        anyhow::bail!(
            "preset {preset} sends relays the helper's own key, but no enabled relay has one: set auth_token_env or api_key_env in {}",
            loaded.path.display()
        );
    }
    anyhow::bail!(
        "preset {preset} sends relays the helper's own key, but these environment variables are not set: {}",
        missing.join(", ")
    )
}

fn remote_control(
    codex_home: &std::path::Path,
    command: RemoteControlCommand,
) -> anyhow::Result<()> {
    use crate::codex::remote_control as rc;
    match command {
        RemoteControlCommand::Enable { json } => {
            let report = rc::enable(codex_home, crate::time::now_ms())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "Remote control enabled (database backed up to {}). Restart the Codex App.",
                    report.backup.display()
                );
            }
        }
        RemoteControlCommand::Status { json } => {
            let s = rc::status(codex_home)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("[features] remote_connections: {}", s.remote_connections);
                if s.removed_key_present {
                    println!(
                        "[features] remote_control is set but no longer used by Codex; `enable` removes it"
                    );
                }
                println!(
                    "App database {}: {}",
                    s.database.display(),
                    if s.database_exists {
                        "present"
                    } else {
                        "missing (open the Codex App once)"
                    }
                );
                println!(
                    "App flag: {}",
                    s.enabled.map_or("not set".to_string(), |e| if e {
                        "on".into()
                    } else {
                        "off".into()
                    })
                );
            }
        }
        RemoteControlCommand::CheckLogs { json } => {
            let found = rc::check_logs(codex_home);
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.is_empty() {
                println!("No log shows the Codex App accepting the remote-control flag yet.");
            } else {
                for path in found {
                    println!("accepted in {}", path.display());
                }
            }
        }
    }
    Ok(())
}

/// The Codex binary the proxy asks for the catalog (see [`discover::for_catalog`]), recorded
/// in the switch state when it differs from what is there. Blocking (bounded runs).
pub(super) fn find_and_record_codex(files: &CodexFiles, configured: &str) -> Option<CodexBinary> {
    let recorded = files.state().ok().flatten().and_then(|s| s.codex_binary);
    let found = discover::for_catalog(configured, recorded.as_ref())?;
    if let Err(e) = switch::record_codex_binary(files, &found) {
        eprintln!("codex-helper: the Codex binary found was not recorded: {e:#}");
    }
    Some(found)
}

/// The Codex binary the proxy uses for `/models`, and a sentence saying what that means.
fn catalog_binary(homes: &Homes, files: &CodexFiles) -> (Option<CodexBinary>, String) {
    let configured = load::load(&homes.helper_config())
        .ok()
        .flatten()
        .map(|l| l.config.proxy.codex_binary)
        .unwrap_or_else(|| "codex".into());
    let recorded = files.state().ok().flatten().and_then(|s| s.codex_binary);
    match discover::for_catalog(&configured, recorded.as_ref()) {
        Some(binary) => {
            let note = format!(
                "translated for Codex from the bundled metadata of Codex {} ({}, {})",
                binary.version,
                binary.path.display(),
                binary.origin.as_str()
            );
            (Some(binary), note)
        }
        None => (
            None,
            "passed through untranslated: no runnable Codex binary was found (run `codex-helper switch on` after installing Codex, or set [proxy] codex_binary); Codex will use fallback metadata".to_string(),
        ),
    }
}

/// Whether each enabled relay accepts the Responses WebSocket, by one handshake each (all at
/// once, each bounded by the proxy's header timeout). Empty without a helper config.
fn websocket_relays(homes: &crate::config::Homes) -> Vec<(String, Acceptance)> {
    let Ok(Some(loaded)) = crate::config::load::load(&homes.helper_config()) else {
        return Vec::new();
    };
    let Ok(state) = crate::proxy::ProxyState::for_command(&loaded) else {
        return Vec::new();
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let plan = state.plan();
    runtime.block_on(futures_util::future::join_all(
        plan.graph.upstreams.iter().map(|upstream| async {
            let acceptance = crate::proxy::websocket::probe(&state, upstream).await;
            (upstream.key().to_string(), acceptance)
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_url_gets_v1_once_and_never_credentials() {
        assert_eq!(
            team_base_url("https://t.example").unwrap(),
            "https://t.example/v1"
        );
        assert_eq!(
            team_base_url("http://10.0.0.5:3211/").unwrap(),
            "http://10.0.0.5:3211/v1"
        );
        assert_eq!(
            team_base_url("https://t.example/v1").unwrap(),
            "https://t.example/v1"
        );
        for bad in ["ftp://t.example", "t.example", "https://user:pw@t.example"] {
            let err = team_base_url(bad).unwrap_err().to_string();
            assert!(!err.contains("pw@"), "{err}");
        }
    }
}
