//! `codex-helper provider …`: add, list, show, enable, disable and remove relays.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;

use crate::config::edit::ConfigEditor;
use crate::config::model::ProviderConfig;
use crate::config::provider_spec::{EndpointSpec, ProviderSpec, Put};
use crate::config::{Homes, load};
use crate::routing::BaseUrl;
use crate::routing::outbound::{self, EnvProxies, OutboundDefaults, OutboundSetting};

#[derive(Debug, clap::Subcommand)]
pub enum ProviderCommand {
    /// Add a relay.
    Add(Box<AddArgs>),
    /// List relays.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one relay.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Route to a relay again.
    Enable { id: String },
    /// Stop routing to a relay (its config is kept).
    Disable { id: String },
    /// Remove a relay and its references in the route graph.
    Remove { id: String },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// A short name, e.g. `monthly`.
    id: String,
    /// The relay's base URL, e.g. `https://relay.example/v1` (or give --endpoint).
    #[arg(
        long,
        required_unless_present = "endpoints",
        conflicts_with = "endpoints"
    )]
    base_url: Option<String>,
    /// An address of the relay as NAME=URL, or NAME=URL@PRIORITY (lower is tried first;
    /// without one, the order given). Repeatable.
    #[arg(long = "endpoint", value_name = "NAME=URL[@PRIORITY]")]
    endpoints: Vec<String>,
    /// A display name.
    #[arg(long)]
    alias: Option<String>,
    /// Add it switched off (not routed to until `provider enable`).
    #[arg(long)]
    disabled: bool,
    /// Overwrite a provider of the same id (its place in routes is kept).
    #[arg(long)]
    replace: bool,
    /// Environment variable with the relay key, sent as `Authorization: Bearer`.
    #[arg(long, conflicts_with_all = ["api_key_env", "auth_token"])]
    auth_token_env: Option<String>,
    /// Environment variable with the relay key, sent as `X-API-Key`.
    #[arg(long, conflicts_with = "api_key")]
    api_key_env: Option<String>,
    /// The relay key itself, sent as `Authorization: Bearer`: stored in the config file
    /// (mode 0600); prefer --auth-token-env.
    #[arg(long, conflicts_with = "api_key")]
    auth_token: Option<String>,
    /// The relay key itself, sent as `X-API-Key`: stored in the config file (mode 0600);
    /// prefer --api-key-env.
    #[arg(long)]
    api_key: Option<String>,
    /// A tag such as `billing=monthly` (repeatable).
    #[arg(long = "tag", value_parser = key_value)]
    tags: Vec<(String, String)>,
    /// Send model TO when Codex asks for FROM (`FROM=TO`, one `*` allowed; repeatable).
    #[arg(long = "model-map", value_parser = key_value)]
    model_map: Vec<(String, String)>,
    /// A model this relay serves (repeatable; none means all).
    #[arg(long = "supported-model")]
    supported_models: Vec<String>,
}

/// Parses `key=value`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
            Ok((k.trim().to_string(), v.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

pub fn run(command: ProviderCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let path = homes.helper_config();
    // An edit: made and checked by the editor, then said.
    let edit = |change: &dyn Fn(&mut ConfigEditor) -> anyhow::Result<()>, what: String| {
        let mut editor = ConfigEditor::open(&path)?;
        change(&mut editor)?;
        editor.save(&crate::routing::check_config)?;
        edited(&path, &what);
        anyhow::Ok(())
    };
    match command {
        ProviderCommand::Add(args) => add(&homes, *args),
        ProviderCommand::Enable { id } => edit(
            &|e| e.set_provider_enabled(&id, true),
            format!("Enabled relay `{id}`"),
        ),
        ProviderCommand::Disable { id } => edit(
            &|e| e.set_provider_enabled(&id, false),
            format!("Disabled relay `{id}`"),
        ),
        ProviderCommand::Remove { id } => {
            edit(&|e| e.remove_provider(&id), format!("Removed relay `{id}`"))
        }
        ProviderCommand::List { json } => list(&views(&path)?, json),
        ProviderCommand::Show { id, json } => {
            let view = views(&path)?
                .into_iter()
                .find(|v| v.id == id)
                .with_context(|| format!("no provider `{id}` in {}", path.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                show(&view);
            }
            Ok(())
        }
    }
}

/// Says what was changed in the config at `path`.
fn edited(path: &std::path::Path, what: &str) {
    println!(
        "{what} in {}; a running codex-helper applies it within a second.",
        path.display()
    );
}

/// `provider add`: the relay written (or replaced) and what the user should know of its key.
fn add(homes: &Homes, args: AddArgs) -> anyhow::Result<()> {
    let path = homes.helper_config();
    let endpoints = args
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| EndpointSpec::parse(e, i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    for url in args
        .base_url
        .iter()
        .chain(endpoints.iter().map(|e| &e.base_url))
    {
        refuse_self(&args.id, url, homes)?;
    }
    let spec = ProviderSpec {
        id: args.id.clone(),
        alias: args.alias,
        enabled: !args.disabled,
        base_url: args.base_url,
        endpoints,
        auth_token: args.auth_token,
        auth_token_env: args.auth_token_env,
        api_key: args.api_key,
        api_key_env: args.api_key_env,
        tags: args.tags.into_iter().collect(),
        model_mapping: args.model_map.into_iter().collect(),
        supported_models: args.supported_models,
    };
    let mut editor = ConfigEditor::open(&path)?;
    let put = editor.put_provider(&spec, args.replace)?;
    if spec.has_inline_secret() {
        super::config_cmd::make_private(&path)?;
    }
    editor.save(&crate::routing::check_config)?;
    match put {
        Put::Added { joined } => {
            let route = joined
                .map(|n| format!(" and appended to route node `{n}`"))
                .unwrap_or_default();
            edited(&path, &format!("Added relay `{}`{route}", args.id));
        }
        Put::Replaced => edited(&path, &format!("Replaced relay `{}`", args.id)),
    }
    if spec.has_inline_secret() {
        eprintln!(
            "warning: the relay key is stored in {} itself (readable only by you, mode 0600); \
             --auth-token-env / --api-key-env keep it out of the file",
            path.display()
        );
    }
    for var in spec.auth_token_env.iter().chain(&spec.api_key_env) {
        if std::env::var_os(var).is_none() {
            println!(
                "Note: {var} is not set in this shell; the proxy skips this relay until it runs with {var} set."
            );
        }
    }
    Ok(())
}

/// `provider list`.
fn list(views: &[ProviderView], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(views)?);
    } else if views.is_empty() {
        println!(
            "No relays yet. Add one: codex-helper provider add ID --base-url URL --auth-token-env VAR"
        );
    } else {
        println!(
            "{:<14} {:<8} {:<44} {:<28} TAGS",
            "ID", "ENABLED", "ENDPOINTS", "CREDENTIAL"
        );
        for v in views {
            let endpoints: Vec<String> = v
                .endpoints
                .iter()
                .map(|e| format!("{} {}", e.id, e.base_url))
                .collect();
            let tags: Vec<String> = v.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "{:<14} {:<8} {:<44} {:<28} {}",
                v.id,
                if v.enabled { "yes" } else { "no" },
                endpoints.join(", "),
                v.credential,
                tags.join(",")
            );
        }
    }
    Ok(())
}

/// `provider show` as text.
fn show(view: &ProviderView) {
    println!(
        "{}{}",
        view.id,
        view.alias
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default()
    );
    println!("  enabled:     {}", if view.enabled { "yes" } else { "no" });
    println!("  credential:  {}", view.credential);
    for e in &view.endpoints {
        println!(
            "  endpoint:    {} {} (priority {}{})",
            e.id,
            e.base_url,
            e.priority,
            if e.enabled { "" } else { ", disabled" }
        );
        println!("    outbound:  {}", e.outbound);
    }
    for (k, v) in &view.tags {
        println!("  tag:         {k}={v}");
    }
    for (k, v) in &view.model_mapping {
        println!("  model map:   {k} -> {v}");
    }
    for (k, v) in &view.supported_models {
        println!("  model:       {k}{}", if *v { "" } else { " (denied)" });
    }
}

/// Refuses a relay whose address is the helper itself: on loopback at the default port, or at
/// the port Codex is switched to. (`serve` checks again against the port it listens on.)
fn refuse_self(id: &str, base_url: &str, homes: &Homes) -> anyhow::Result<()> {
    let Ok(url) = BaseUrl::parse(base_url) else {
        return Ok(()); // The edit's own check explains what is wrong with it.
    };
    let switched = std::fs::read_to_string(homes.codex_config())
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|codex| {
            let url = codex
                .get("model_providers")?
                .get(crate::codex::patch::PROVIDER_ID)?
                .get("base_url")?
                .as_str()?
                .to_string();
            BaseUrl::parse(&url).ok().map(|u| u.port())
        });
    for port in std::iter::once(super::serve::DEFAULT_PORT).chain(switched) {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if crate::net::reaches_listener(url.host(), url.port(), listen) {
            anyhow::bail!(
                "relay `{id}` would be codex-helper itself ({base_url} is where codex-helper \
                 listens, on port {port}): every request would be forwarded back to it in a \
                 loop. Give the relay's own URL (e.g. the `base_url` Codex used before \
                 `switch on`)."
            );
        }
    }
    Ok(())
}

/// A provider as shown to the user: never a secret value.
#[derive(Debug, Serialize)]
struct ProviderView {
    id: String,
    alias: Option<String>,
    enabled: bool,
    /// Where the key comes from, e.g. `$MONTHLY_KEY (set)`.
    credential: String,
    endpoints: Vec<EndpointView>,
    tags: BTreeMap<String, String>,
    model_mapping: BTreeMap<String, String>,
    supported_models: BTreeMap<String, bool>,
}

#[derive(Debug, Serialize)]
struct EndpointView {
    id: String,
    base_url: String,
    priority: i64,
    enabled: bool,
    /// `direct (…)` or `via URL (…)`, with where the choice comes from; never a password.
    outbound: String,
}

fn views(path: &std::path::Path) -> anyhow::Result<Vec<ProviderView>> {
    let Some(loaded) = load::load(path)? else {
        return Ok(Vec::new());
    };
    let env = |name: &str| std::env::var(name).ok();
    let defaults = OutboundDefaults {
        global: loaded.config.proxy.outbound_proxy.clone(),
        env: EnvProxies::read(&env).map_err(anyhow::Error::msg)?,
    };
    Ok(loaded
        .config
        .codex
        .providers
        .iter()
        .map(|(id, p)| view(id, p, &defaults))
        .collect())
}

/// How an endpoint reaches its relay, as the proxy would resolve it (credentials hidden).
fn outbound(
    id: &str,
    eid: &str,
    base_url: &str,
    endpoint: Option<&OutboundSetting>,
    p: &ProviderConfig,
    defaults: &OutboundDefaults,
) -> String {
    let Ok(url) = BaseUrl::parse(base_url) else {
        return "unknown (base_url is not valid)".into();
    };
    let key = format!("codex.providers.{id}");
    outbound::resolve(
        &[
            (format!("{key}.endpoints.{eid}.outbound_proxy"), endpoint),
            (format!("{key}.outbound_proxy"), p.outbound_proxy.as_ref()),
            ("proxy.outbound_proxy".into(), defaults.global.as_ref()),
        ],
        &defaults.env,
        url.scheme(),
        url.host(),
    )
    .to_string()
}

fn view(id: &str, p: &ProviderConfig, defaults: &OutboundDefaults) -> ProviderView {
    let env = |var: &str| {
        if std::env::var_os(var).is_some() {
            "set"
        } else {
            "NOT SET"
        }
    };
    let mut credential = Vec::new();
    if p.auth_token.is_some() {
        credential.push("bearer (inline, hidden)".to_string());
    } else if let Some(var) = &p.auth_token_env {
        credential.push(format!("bearer ${var} ({})", env(var)));
    }
    if p.api_key.is_some() {
        credential.push("x-api-key (inline, hidden)".to_string());
    } else if let Some(var) = &p.api_key_env {
        credential.push(format!("x-api-key ${var} ({})", env(var)));
    }
    let mut endpoints: Vec<EndpointView> = Vec::new();
    if let Some(base_url) = &p.base_url {
        endpoints.push(EndpointView {
            id: "default".into(),
            base_url: base_url.clone(),
            priority: 0,
            enabled: true,
            outbound: outbound(id, "default", base_url, None, p, defaults),
        });
    }
    endpoints.extend(p.endpoints.iter().map(|(eid, e)| EndpointView {
        id: eid.clone(),
        base_url: e.base_url.clone(),
        priority: e.priority,
        enabled: e.enabled,
        outbound: outbound(id, eid, &e.base_url, e.outbound_proxy.as_ref(), p, defaults),
    }));
    endpoints.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    ProviderView {
        id: id.to_string(),
        alias: p.alias.clone(),
        enabled: p.enabled,
        credential: if credential.is_empty() {
            "none (Codex's own passes through)".into()
        } else {
            credential.join(", ")
        },
        endpoints,
        tags: p.tags.clone(),
        model_mapping: p.model_mapping.clone(),
        supported_models: p.supported_models.clone(),
    }
}
