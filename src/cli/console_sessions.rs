//! The console's session side: sessions as the proxy knows them (binding, usage, overrides),
//! and the overrides and profiles an operator sets through the admin API.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::console::ServeConsole;
use crate::admin::Problem;
use crate::routing::explain::{Explanation, Question, explain};
use crate::routing::overrides::{self, Applied, Change, SessionEntry, check_value};

/// `POST /overrides/session/profile`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileChange {
    session_id: String,
    /// `null` removes the session's profile. `profile_name` is the original's spelling.
    #[serde(alias = "profile_name")]
    profile: Option<String>,
}

impl ServeConsole {
    /// The route target `session` is pinned to now, if any.
    pub(super) fn pin_of(&self, session: Option<&str>) -> Option<String> {
        let entry = self.state.overrides.get(session?)?;
        Applied::resolve(Some(&entry), &self.state.plan().profiles)?
            .set
            .route_target
    }

    /// Where a request for `model` in `session` would go now, with the session's pin.
    pub(super) fn explain_now(&self, model: Option<&str>, session: Option<&str>) -> Explanation {
        let plan = self.state.plan();
        let pin = self.pin_of(session);
        let question = Question {
            model,
            session,
            pin: pin.as_deref(),
        };
        explain(
            &plan.graph,
            &self.state.routing,
            question,
            crate::time::now_ms(),
        )
    }

    /// Sessions by last use (bound ones, then those that only have overrides), with their
    /// usage of the last 24 hours and their overrides.
    pub(super) fn sessions_json(&self, limit: usize) -> BoxFuture<'static, anyhow::Result<Value>> {
        let recent = self.state.routing.affinity.recent(limit);
        let mut overridden = self.state.overrides.all();
        let graph_key = self.state.plan().graph.key.clone();
        let reader = self.ledger_reader.clone();
        async move {
            let usage = tokio::task::spawn_blocking(move || super::console::session_usage(&reader))
                .await??;
            let usage_of = |id: &str| {
                let used = usage.iter().find(|row| row.key == id);
                json!({
                    "requests_24h": used.map_or(0, |u| u.requests),
                    "errors_24h": used.map_or(0, |u| u.errors),
                    "tokens_24h": used.map_or(0, |u| u.total_tokens),
                    "cost_usd_24h": used.map_or(0.0, |u| u.cost_usd),
                })
            };
            let mut take_overrides = |id: &str| {
                let at = overridden.iter().position(|(s, _)| s == id)?;
                Some(overridden.remove(at).1)
            };
            let mut sessions: Vec<Value> = Vec::new();
            for (id, binding) in recent {
                let mut row = json!({
                    "session": id,
                    "upstream": binding.upstream,
                    "current_graph": binding.graph_key == graph_key,
                    "last_selected_ms": binding.last_selected_ms,
                    "last_changed_ms": binding.last_changed_ms,
                    "change_reason": binding.change_reason,
                    "overrides": take_overrides(&id).as_ref().map_or(Value::Null, entry_json),
                });
                merge(&mut row, usage_of(&id));
                sessions.push(row);
            }
            for (id, entry) in overridden {
                if sessions.len() >= limit {
                    break;
                }
                let mut row = json!({
                    "session": id,
                    "upstream": null,
                    "current_graph": false,
                    "last_selected_ms": null,
                    "last_changed_ms": null,
                    "change_reason": null,
                    "overrides": entry_json(&entry),
                });
                merge(&mut row, usage_of(&id));
                sessions.push(row);
            }
            Ok(json!({ "sessions": sessions }))
        }
        .boxed()
    }

    /// A session's overrides as the API shows them (`null` when none).
    pub(super) fn overrides_of(&self, session: &str) -> Value {
        self.state
            .overrides
            .get(session)
            .map_or(Value::Null, |entry| entry_json(&entry))
    }

    pub(super) fn profiles_json(&self) -> Value {
        let plan = self.state.plan();
        json!({
            "default_profile": plan.profiles.default,
            "profiles": plan.profiles.views(),
        })
    }

    pub(super) fn session_overrides_json(&self) -> Value {
        let sessions: Vec<Value> = self
            .state
            .overrides
            .all()
            .into_iter()
            .map(|(id, entry)| {
                let mut value = entry_json(&entry);
                value["session"] = json!(id);
                value
            })
            .collect();
        json!({ "sessions": sessions })
    }

    pub(super) fn set_session_overrides(&self, body: Value) -> anyhow::Result<Value> {
        let change: Change = super::console::parse_body(body)?;
        change.check().map_err(Problem::bad_request)?;
        if let Some(target) = &change.route_target {
            self.check_target(target)?;
        }
        let session = change.session_id.clone();
        let entry = self.state.overrides.apply(change);
        tracing::info!(
            "session {session}: overrides now {}",
            serde_json::to_string(&entry).unwrap_or_default()
        );
        Ok(json!({"session": session, "overrides": entry_json(&entry)}))
    }

    pub(super) fn apply_session_profile(&self, body: Value) -> anyhow::Result<Value> {
        let change: ProfileChange = super::console::parse_body(body)?;
        check_value("session_id", &change.session_id).map_err(Problem::bad_request)?;
        if let Some(name) = &change.profile {
            let plan = self.state.plan();
            if plan.profiles.get(name).is_none() {
                let names: Vec<&str> = plan.profiles.names().collect();
                let known = if names.is_empty() {
                    "the config has no [codex.profiles]".to_string()
                } else {
                    format!("the profiles are: {}", names.join(", "))
                };
                return Err(Problem::bad_request(format!(
                    "no profile `{}`; {known}",
                    name.chars().take(100).collect::<String>()
                ))
                .into());
            }
        }
        let entry = self
            .state
            .overrides
            .apply_profile(&change.session_id, change.profile);
        tracing::info!(
            "session {}: profile now {}",
            change.session_id,
            entry.profile.as_deref().unwrap_or("(none)")
        );
        Ok(json!({"session": change.session_id, "overrides": entry_json(&entry)}))
    }

    /// A route target must name an endpoint of the graph in force.
    fn check_target(&self, target: &str) -> anyhow::Result<()> {
        let plan = self.state.plan();
        if overrides::target_exists(&plan.graph, target) {
            return Ok(());
        }
        let mut known: Vec<String> = Vec::new();
        for upstream in &plan.graph.upstreams {
            if !known.contains(&upstream.provider) {
                known.push(upstream.provider.clone());
            }
            known.push(upstream.key().to_string());
        }
        Err(Problem::bad_request(format!(
            "route_target `{target}` names no enabled provider or endpoint; the targets are: {}",
            known.join(", ")
        ))
        .into())
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// The API's shape of a session's overrides (the `SessionEntry` fields, flat).
fn entry_json(entry: &SessionEntry) -> Value {
    serde_json::to_value(entry).unwrap_or(Value::Null)
}
