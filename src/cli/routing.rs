//! `codex-helper routing …`: show, explain and edit the route graph.

use super::provider::key_value;
use crate::balance;
use crate::config::Homes;
use crate::config::edit::ConfigEditor;
use crate::proxy::Plan;
use crate::routing::affinity::AffinityStore;
use crate::routing::explain::{Explanation, Question, explain};
use crate::routing::runtime::RoutingState;
use crate::routing::select::Why;
use crate::time::{Clock, now_ms};

#[derive(Debug, clap::Subcommand)]
pub enum RoutingCommand {
    /// Show the route graph: every endpoint in order, by group, with its state.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Which relay a request would get now, and why each other one would be passed over.
    Explain {
        /// The model Codex asks for.
        #[arg(long)]
        model: Option<String>,
        /// A session (thread) id, to take its affinity into account.
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Try these (providers, nodes or provider.endpoint) in this order.
    Order {
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Send everything to one provider, node or provider.endpoint.
    Pin { target: String },
    /// Prefer children whose providers carry these tags.
    PreferTag {
        /// A tag all preferred providers carry (repeatable: all must match).
        #[arg(long = "tag", value_parser = key_value, required = true)]
        tags: Vec<(String, String)>,
        /// The children, in order, e.g. `monthly,backup,paygo` (default: keep the current ones).
        #[arg(long, value_delimiter = ',')]
        order: Option<Vec<String>>,
        /// What to do when no preferred child is available.
        #[arg(long, value_parser = ["continue", "stop"], default_value = "continue")]
        on_exhausted: String,
    },
}

pub fn run(command: RoutingCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let path = homes.helper_config();
    let saved = |entry: String| {
        println!(
            "Route node `{entry}` updated in {}; a running codex-helper applies it within a second.",
            path.display()
        );
    };
    match command {
        RoutingCommand::Order { targets } => {
            let mut editor = ConfigEditor::open(&path)?;
            let entry = editor.set_order(&targets)?;
            editor.save(&crate::routing::check_config)?;
            saved(entry);
        }
        RoutingCommand::Pin { target } => {
            let mut editor = ConfigEditor::open(&path)?;
            let entry = editor.pin(&target)?;
            editor.save(&crate::routing::check_config)?;
            saved(entry);
        }
        RoutingCommand::PreferTag {
            tags,
            order,
            on_exhausted,
        } => {
            let mut editor = ConfigEditor::open(&path)?;
            let tags = tags.into_iter().collect();
            let entry = editor.prefer_tags(&tags, order.as_deref(), on_exhausted == "stop")?;
            editor.save(&crate::routing::check_config)?;
            saved(entry);
        }
        RoutingCommand::Show { json } => {
            let (explanation, live) = live_or_current(&homes, None, None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                print_show(&explanation);
                println!("{}", source_note(live.as_ref()));
            }
        }
        RoutingCommand::Explain {
            model,
            session,
            json,
        } => {
            let (explanation, live) =
                live_or_current(&homes, model.as_deref(), session.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                print_explain(&explanation);
                println!("{}", source_note(live.as_ref()));
            }
        }
    }
    Ok(())
}

/// The running proxy's explanation (live health, limits in use, balances, runtime switches)
/// when one answers, else [`current`]'s; with the running serve it came from.
fn live_or_current(
    homes: &Homes,
    model: Option<&str>,
    session: Option<&str>,
) -> anyhow::Result<(Explanation, Option<crate::running::RunningServe>)> {
    if let Some(running) = crate::running::find(&homes.running())
        && let Some(admin) = running.admin
    {
        let mut query = Vec::new();
        query.extend(model.map(|m| ("model", m)));
        query.extend(session.map(|s| ("session", s)));
        let asked = super::block_on(crate::admin::client::get_with::<Explanation>(
            admin,
            "/routing/explain",
            &query,
        ))?;
        match asked {
            Ok(explanation) => return Ok((explanation, Some(running))),
            Err(e) => eprintln!(
                "codex-helper: the running codex-helper did not answer ({e:#}); explaining from the files instead"
            ),
        }
    }
    Ok((current(homes, model, session)?, None))
}

/// Where an explanation's health came from.
fn source_note(live: Option<&crate::running::RunningServe>) -> String {
    match live {
        Some(running) => format!(
            "(live: from the running codex-helper, pid {}: cooldowns, limits in use, balances and runtime switches included)",
            running.pid
        ),
        None => "(no codex-helper is running: health as of the config and the kept balances; cooldowns and requests in flight live in a running proxy)".to_string(),
    }
}

/// Explains against the config on disk, the persisted session affinity and the kept balance
/// snapshots. Endpoint health (cooldowns, requests in flight) lives in the running proxy and
/// is not seen here.
fn current(
    homes: &Homes,
    model: Option<&str>,
    session: Option<&str>,
) -> anyhow::Result<Explanation> {
    let loaded = super::existing_config(homes)?;
    let env = |name: &str| std::env::var(name).ok();
    let plan = Plan::from_config(&loaded, &env)?;
    let affinity = AffinityStore::load(&homes.affinity_state());
    let state = RoutingState::new(affinity, Clock::real());
    let balances = homes.balances();
    if balances.exists() {
        let kept = balance::store::open(&balances).and_then(|conn| balance::store::all(&conn))?;
        let configured = |e: &str| plan.graph.upstreams.iter().any(|u| *u.key() == *e);
        let max = loaded.config.balance.max_exhausted_ms;
        balance::effect::apply_kept(&state, kept, configured, now_ms(), max);
    }
    let question = Question {
        model,
        session,
        pin: None,
    };
    Ok(explain(&plan.graph, &state, question, now_ms()))
}

fn print_show(e: &Explanation) {
    println!(
        "entry `{}`, affinity {}, graph {}",
        e.entry, e.affinity_policy, e.graph_key
    );
    if e.candidates.is_empty() {
        println!("  (no enabled relay)");
    }
    let mut group = usize::MAX;
    for c in &e.candidates {
        if c.group != group {
            group = c.group;
            println!("  group {group}  via {}", c.route_path.join(" → "));
        }
        let state = c.skip_reason.clone().unwrap_or_else(|| "ready".into());
        println!("    {:<24} {:<40} {state}", c.upstream, c.base_url);
        println!("    {:<24} outbound {}", "", c.outbound);
    }
}

fn print_explain(e: &Explanation) {
    println!(
        "Request: POST /v1/responses, model {}, session {}",
        e.model.as_deref().unwrap_or("(any)"),
        e.session.as_deref().unwrap_or("(none)")
    );
    match &e.affinity {
        Some(a) => println!(
            "Affinity: bound to {} ({}) under policy {}",
            a.upstream, a.change_reason, e.affinity_policy
        ),
        None => println!("Affinity: none (policy {})", e.affinity_policy),
    }
    for (i, c) in e.candidates.iter().enumerate() {
        let chosen = e.chosen.as_deref() == Some(c.upstream.as_str());
        let verdict = match (&c.skip_reason, chosen) {
            (_, true) => format!(
                "<- chosen: {}",
                match e.why {
                    Some(Why::Affinity) => "the session's affinity endpoint",
                    Some(Why::Preferred) => "first of the best group",
                    Some(Why::Failover) => "better candidates are unavailable",
                    None => "",
                }
            ),
            (Some(reason), false) => format!("skipped: {reason}"),
            (None, false) => "available, not first choice".into(),
        };
        println!(
            "  {}. {:<24} group {}  {:<28} {verdict}",
            i + 1,
            c.upstream,
            c.group,
            c.route_path.join(" → ")
        );
        if c.proxied {
            println!("     {:<24} {}", "", c.outbound);
        }
    }
    if e.continuity_broken {
        println!(
            "No relay: the session is bound (policy hard) to an endpoint that is unavailable."
        );
    } else if e.chosen.is_none() {
        println!("No relay is available for this request.");
    }
}
