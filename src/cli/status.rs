//! `codex-helper status`: the running helper at a glance, through its admin API; or, when none
//! runs, what `serve` would use.

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::admin::client;
use crate::config::Homes;
use crate::running;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON: `{"running": true, "runtime", "providers", "usage_24h"}` or
    /// `{"running": false, "config_path", "endpoints"}`.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let live = running::find(&homes.running()).and_then(|r| r.admin);
    let status = match live {
        Some(admin) => super::block_on(async {
            let runtime = client::get(admin, "/runtime/status").await?;
            let providers = client::get(admin, "/providers").await?;
            // The ledger may be off or empty: then there is no usage to show.
            let usage = client::get(admin, "/request-ledger/summary?since=24h")
                .await
                .ok();
            anyhow::Ok(json!({"running": true, "admin": format!("http://{admin}"),
                "runtime": runtime, "providers": providers["providers"], "usage_24h": usage}))
        })?
        .context("asking the running codex-helper")?,
        None => not_running(&homes)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", text(&status));
    }
    Ok(())
}

fn not_running(homes: &Homes) -> anyhow::Result<Value> {
    let path = homes.helper_config();
    let endpoints = match crate::config::load::load(&path)? {
        Some(loaded) => {
            let env = |name: &str| std::env::var(name).ok();
            let plan = crate::proxy::Plan::from_config(&loaded, &env)?;
            plan.graph
                .upstreams
                .iter()
                .map(|u| u.key().to_string())
                .collect()
        }
        None => Vec::new(),
    };
    Ok(
        json!({"running": false, "config_path": path.display().to_string(),
        "config_exists": path.exists(), "endpoints": endpoints}),
    )
}

/// The human form (pure).
fn text(status: &Value) -> String {
    let mut out = String::new();
    if status["running"] != true {
        out.push_str("codex-helper is not running.\n");
        if status["config_exists"] == true {
            let endpoints: Vec<&str> = status["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(&format!(
                "`codex-helper serve` would use {} with {}.\n",
                status["config_path"].as_str().unwrap_or("?"),
                if endpoints.is_empty() {
                    "no relay".to_string()
                } else {
                    endpoints.join(", ")
                }
            ));
        } else {
            out.push_str(
                "There is no config yet: `codex-helper serve` creates one from Codex's.\n",
            );
        }
        return out;
    }
    let runtime = &status["runtime"];
    let uptime = runtime["uptime_ms"].as_u64().unwrap_or(0) / 1000;
    out.push_str(&format!(
        "codex-helper {} running (pid {}, up {}) on {}, admin {}\n",
        runtime["version"].as_str().unwrap_or("?"),
        runtime["pid"],
        duration(uptime),
        runtime["proxy"].as_str().unwrap_or("?"),
        status["admin"].as_str().unwrap_or("?"),
    ));
    out.push_str(&format!(
        "config {} (entry `{}`), Codex preset {}\n",
        runtime["config_path"].as_str().unwrap_or("?"),
        runtime["entry"].as_str().unwrap_or("?"),
        runtime["preset"].as_str().unwrap_or("none"),
    ));
    for provider in status["providers"].as_array().into_iter().flatten() {
        let state = match provider["skip"]["why"].as_str() {
            Some(why) => format!("skipped: {why}"),
            None => "routable".to_string(),
        };
        out.push_str(&format!(
            "  {:<28} {:<24} {state}\n",
            provider["key"].as_str().unwrap_or("?"),
            provider["host"].as_str().unwrap_or("?"),
        ));
    }
    match status["usage_24h"]["total"].as_object() {
        Some(total) => out.push_str(&format!(
            "last 24 h: {} requests, {} errors, {} tokens, ${:.4}\n",
            total.get("requests").and_then(Value::as_u64).unwrap_or(0),
            total.get("errors").and_then(Value::as_u64).unwrap_or(0),
            total
                .get("total_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            total.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0),
        )),
        None => out.push_str("last 24 h: no ledger rows\n"),
    }
    if let Some(ledger) = runtime["ledger"].as_object() {
        let lost = ledger.get("dropped").and_then(Value::as_u64).unwrap_or(0)
            + ledger.get("failed").and_then(Value::as_u64).unwrap_or(0);
        if lost > 0 {
            out.push_str(&format!("ledger: {lost} records could not be written\n"));
        }
    }
    out
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_helper_is_one_screen() {
        let status = json!({"running": true, "admin": "http://127.0.0.1:4211",
            "runtime": {"version": "0.1.0", "pid": 42, "uptime_ms": 300_000,
                "proxy": "http://127.0.0.1:3211", "config_path": "/h/config.toml", "entry": "main",
                "preset": "official-relay", "ledger": {"written": 3, "dropped": 1, "failed": 0}},
            "providers": [{"key": "a.default", "host": "a.example", "skip": null},
                {"key": "b.default", "host": "b.example", "skip": {"why": "cooling down for 30 s more"}}],
            "usage_24h": {"total": {"requests": 3, "errors": 1, "total_tokens": 1205, "cost_usd": 0.0123}}});
        let shown = text(&status);
        assert!(
            shown.starts_with(
                "codex-helper 0.1.0 running (pid 42, up 5 min) on http://127.0.0.1:3211"
            ),
            "{shown}"
        );
        assert!(shown.contains("b.default"));
        assert!(shown.contains("skipped: cooling down for 30 s more"));
        assert!(shown.contains("last 24 h: 3 requests, 1 errors, 1205 tokens, $0.0123"));
        assert!(shown.contains("ledger: 1 records could not be written"));
    }

    #[test]
    fn a_stopped_helper_says_what_serve_would_use() {
        let status = json!({"running": false, "config_path": "/h/config.toml", "config_exists": true,
            "endpoints": ["a.default"]});
        assert_eq!(
            text(&status),
            "codex-helper is not running.\n`codex-helper serve` would use /h/config.toml with a.default.\n"
        );
        let fresh = json!({"running": false, "config_exists": false, "endpoints": []});
        assert!(text(&fresh).contains("no config yet"));
    }
}
