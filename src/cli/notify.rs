//! `notify codex` (Codex's `notify` hook) and `notify test` (check the channels).

use std::io::Read;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::config::Homes;
use crate::config::notify::{EventKind, NotifySettings};
use crate::ledger::query::Filter;
use crate::notify::Event;
use crate::notify::codex_turn::{self, TURN_COMPLETE};
use crate::notify::deliver::Channels;
use crate::time::now_ms;

/// The largest payload read from stdin.
const PAYLOAD_MAX: u64 = 1 << 20;

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Codex's `notify` hook: set `notify = ["codex-helper", "notify", "codex"]` in
    /// `~/.codex/config.toml`. Notifies when the turn's request took at least
    /// `[notify] min_turn_secs` (found in the ledger by the payload's thread id).
    Codex {
        /// The JSON Codex passes (read from stdin when absent).
        payload: Option<String>,
        /// Show a desktop notification even if `[notify] toast = false`.
        #[arg(long, conflicts_with = "no_toast")]
        toast: bool,
        /// No desktop notification (the command still runs).
        #[arg(long)]
        no_toast: bool,
        /// Say what was decided as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Sends a sample event through the configured toast and command, to check them.
    Test {
        /// The kind of the sample event.
        #[arg(long, default_value = "failover", value_parser = kind_of)]
        kind: EventKind,
    },
}

fn kind_of(name: &str) -> Result<EventKind, String> {
    EventKind::ALL
        .into_iter()
        .find(|k| k.as_str() == name)
        .ok_or_else(|| {
            let names: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("one of {}", names.join(", "))
        })
}

pub fn run(command: NotifyCommand) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let settings = settings(&homes)?;
    match command {
        NotifyCommand::Codex {
            payload,
            toast,
            no_toast,
            json,
        } => {
            let toast = (toast || no_toast).then_some(toast);
            let decided = codex(&homes, &settings, payload, toast)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&decided)?);
            } else if let Some(reason) = decided["reason"].as_str() {
                eprintln!("codex-helper notify: {reason}");
            }
            Ok(())
        }
        NotifyCommand::Test { kind } => test(&settings, kind),
    }
}

/// `[notify]` from the config, or the defaults (off) when there is no config yet.
fn settings(homes: &Homes) -> anyhow::Result<NotifySettings> {
    let loaded = crate::config::load::load(&homes.helper_config())?;
    Ok(loaded.map(|l| l.config.notify).unwrap_or_default())
}

/// What `notify codex` decided: `{"notified": bool, "reason"?, "event"?, "problems"?}`.
fn codex(
    homes: &Homes,
    settings: &NotifySettings,
    payload: Option<String>,
    toast: Option<bool>,
) -> anyhow::Result<Value> {
    let text = match payload {
        Some(text) => text,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .take(PAYLOAD_MAX)
                .read_to_string(&mut text)
                .context("reading the notify payload from stdin")?;
            text
        }
    };
    let turn = codex_turn::parse(&text)?;
    let skip = |reason: String| Ok(json!({"notified": false, "reason": reason}));
    if turn.kind != TURN_COMPLETE {
        return skip(format!(
            "payload type `{}` is not {TURN_COMPLETE}",
            turn.kind
        ));
    }
    if !settings.wants(EventKind::LongTurn) && toast != Some(true) {
        return skip(
            "notifications are off ([notify] enabled = true and `long_turn` in events turn them on)"
                .into(),
        );
    }
    let Some(thread) = turn.thread_id.clone() else {
        return skip("the payload has no thread-id".into());
    };
    let ledger = crate::ledger::place::LedgerPlace::configured(homes)?;
    let running = crate::running::find(&homes.running());
    if let (None, crate::ledger::place::LedgerPlace::File(path)) = (&running, &ledger) {
        if !path.exists() {
            return skip(format!("no ledger at {} yet", path.display()));
        }
    }
    let mut source = super::usage_source::Source::open(running, &ledger)?;
    let filter = Filter {
        session: Some(thread.clone()),
        ..Filter::default()
    };
    let lines = source.recent(&ledger, &filter, 50)?;
    let now = now_ms();
    let Some(line) = codex_turn::pick(&lines, now) else {
        return skip(format!(
            "no request of thread {thread} ended in the last {} s",
            codex_turn::SEARCH_WINDOW_MS / 1000
        ));
    };
    let min_ms = settings.min_turn_secs() * 1000;
    if line.duration_ms < min_ms as f64 {
        return skip(format!(
            "the turn took {:.1} s, under [notify] min_turn_secs ({} s)",
            line.duration_ms / 1000.0,
            settings.min_turn_secs()
        ));
    }
    let event = codex_turn::event(&turn, line, now);
    let channels = Channels::from_settings(settings, toast);
    Ok(send(&channels, &event))
}

/// Delivers `event` now (this process is not the proxy: it may wait for the channels, each
/// bounded by its timeout).
fn send(channels: &Channels, event: &Event) -> Value {
    if !channels.any() {
        return json!({"notified": false, "event": event,
            "reason": "no channel: no desktop notifier found and no [notify] command"});
    }
    let problems = channels.deliver(event);
    for problem in &problems {
        eprintln!("codex-helper notify: {problem}");
    }
    json!({"notified": problems.is_empty(), "event": event, "problems": problems})
}

fn test(settings: &NotifySettings, kind: EventKind) -> anyhow::Result<()> {
    let channels = Channels::from_settings(settings, None);
    let event = Event {
        kind,
        relay: Some("example.default".into()),
        title: format!("codex-helper: test {}", kind.as_str()),
        message: "A test notification from `codex-helper notify test`.".into(),
        at_ms: now_ms(),
        suppressed: 0,
        details: json!({"test": true}),
    };
    let decided = send(&channels, &event);
    println!("{}", serde_json::to_string_pretty(&decided)?);
    anyhow::ensure!(
        decided["notified"] == true,
        "the test notification was not delivered"
    );
    Ok(())
}
