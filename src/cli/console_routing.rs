//! The admin API's routing routes on a running `serve`: `GET /routing` (the route graph in
//! force with each endpoint's live state) and `POST /providers/runtime` (switch an endpoint
//! off or on, drain it, or switch it in the config file).

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::console::{ServeConsole, parse_body};
use crate::admin::Problem;
use crate::diagnose::{self, Targets};
use crate::routing::graph;
use crate::routing::upstream::Upstream;

/// `POST /providers/runtime`'s body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeBody {
    pub provider_id: String,
    pub endpoint_id: Option<String>,
    /// Off or on again.
    pub enabled: Option<bool>,
    /// `draining` (no new sessions) or `normal` (no runtime switch at all).
    pub state: Option<RuntimeState>,
    pub minutes: Option<u64>,
    pub reason: Option<String>,
    /// Write `enabled` into the config file instead of switching while running.
    #[serde(default)]
    pub persist: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeState {
    Normal,
    Draining,
}

/// What a [`RuntimeBody`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Switched off while running, for `minutes` if given.
    Disable { minutes: Option<u64> },
    /// The runtime switch-off lifted.
    Enable,
    /// No new sessions, for `minutes` if given.
    Drain { minutes: Option<u64> },
    /// Every runtime switch lifted (off and draining).
    Normal,
    /// `enabled` written into the config file.
    Persist { enabled: bool },
}

/// The longest a runtime switch lasts by itself: a week.
const MAX_MINUTES: u64 = 7 * 24 * 60;

impl RuntimeBody {
    /// The one action the body asks for, or why it is not a usable request.
    pub fn action(&self) -> Result<Action, Problem> {
        if self.minutes.is_some_and(|m| m == 0 || m > MAX_MINUTES) {
            return Err(Problem::bad_request(format!(
                "`minutes` is 1 to {MAX_MINUTES} (a week)"
            )));
        }
        let timed = |action: &str| {
            if self.minutes.is_some() {
                Err(Problem::bad_request(format!(
                    "`minutes` is for switching off or draining, not for {action}"
                )))
            } else {
                Ok(())
            }
        };
        match (self.enabled, self.state, self.persist) {
            (Some(_), Some(_), _) | (None, None, _) => Err(Problem::bad_request(
                "give either `enabled` (true or false) or `state` (`draining` or `normal`)",
            )),
            (None, Some(_), true) => Err(Problem::bad_request(
                "`persist` writes `enabled` into the config; draining is a runtime state only",
            )),
            (Some(enabled), None, true) => {
                timed("a config change")?;
                Ok(Action::Persist { enabled })
            }
            (Some(false), None, false) => Ok(Action::Disable {
                minutes: self.minutes,
            }),
            (Some(true), None, false) => {
                timed("switching on")?;
                Ok(Action::Enable)
            }
            (None, Some(RuntimeState::Draining), false) => Ok(Action::Drain {
                minutes: self.minutes,
            }),
            (None, Some(RuntimeState::Normal), false) => {
                timed("`normal`")?;
                Ok(Action::Normal)
            }
        }
    }
}

impl ServeConsole {
    /// `GET /routing`: the compiled graph (see [`graph::view`]) and each endpoint's live state:
    /// routable or why not (for a request of no session), and the operator's runtime switches.
    pub(super) fn routing_view(&self) -> anyhow::Result<Value> {
        let plan = self.state.plan();
        let now = self.state.clock().now();
        let mut view = serde_json::to_value(graph::view(&plan.graph))?;
        let live: Vec<Value> = plan
            .graph
            .upstreams
            .iter()
            .map(|u| {
                let (routable, skip) = self.skip_now(u, now);
                json!({
                    "routable": routable,
                    "skip": skip,
                    "runtime": self.state.routing.switches(u.key().as_str(), now),
                    "in_flight": u.limit.as_ref().map(|l| self.state.routing.in_flight(&l.group)),
                })
            })
            .collect();
        if let Some(upstreams) = view["upstreams"].as_array_mut() {
            for (upstream, state) in upstreams.iter_mut().zip(live) {
                upstream["state"] = state;
            }
        }
        view["config_path"] = json!(self.state.config_path.display().to_string());
        Ok(view)
    }

    /// `POST /providers/runtime`.
    pub(super) fn runtime_switch(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let asked: RuntimeBody = match parse_body(body) {
            Ok(asked) => asked,
            Err(e) => return ready(Err(e)),
        };
        match asked.action() {
            Err(problem) => ready(Err(problem.into())),
            Ok(Action::Persist { enabled }) => self.persist(asked, enabled),
            Ok(action) => ready(self.switch_now(&asked, action)),
        }
    }

    fn switch_now(&self, asked: &RuntimeBody, action: Action) -> anyhow::Result<Value> {
        let chosen = self.targets(asked)?;
        let clock = self.state.clock();
        let minutes = match action {
            Action::Disable { minutes } | Action::Drain { minutes } => minutes,
            _ => None,
        };
        let until = minutes.map(|m| clock.now().saturating_add(m * 60_000));
        let reason = |default: &str| {
            asked
                .reason
                .as_ref()
                .map(|r| diagnose::exchange::snippet(r, 200))
                .unwrap_or_else(|| default.to_string())
        };
        let routing = &self.state.routing;
        for upstream in &chosen {
            let key = upstream.key().as_str();
            match action {
                Action::Disable { .. } => routing.set_runtime_disabled(
                    key,
                    Some((reason("switched off through the admin API"), until)),
                ),
                Action::Enable => routing.set_runtime_disabled(key, None),
                Action::Drain { .. } => routing
                    .set_draining(key, Some((reason("draining through the admin API"), until))),
                Action::Normal => {
                    routing.set_runtime_disabled(key, None);
                    routing.set_draining(key, None);
                }
                Action::Persist { .. } => unreachable!("persisted by `persist`"),
            }
        }
        let state = match action {
            Action::Drain { .. } => "draining",
            Action::Disable { .. } => "disabled",
            _ => "normal",
        };
        Ok(json!({
            "changed": chosen.iter().map(|u| u.key().to_string()).collect::<Vec<_>>(),
            "enabled": !matches!(action, Action::Disable { .. }),
            "state": state,
            "until_ms": until.map(|u| clock.to_epoch_ms(u)),
        }))
    }

    /// The endpoints in force that the body names; 404 when none is.
    fn targets(&self, asked: &RuntimeBody) -> anyhow::Result<Vec<Upstream>> {
        let plan = self.state.plan();
        diagnose::chosen(
            &plan.graph.upstreams,
            &Targets {
                provider: Some(asked.provider_id.clone()),
                endpoint: asked.endpoint_id.clone(),
            },
        )
        .map_err(|e| Problem::not_found(format!("{e:#}")).into())
    }

    /// Writes `enabled` for the provider (or one endpoint) into the config file and reloads.
    /// Switching on also lifts a runtime switch-off, so the endpoint is used at once.
    fn persist(
        &self,
        asked: RuntimeBody,
        enabled: bool,
    ) -> BoxFuture<'static, anyhow::Result<Value>> {
        let (provider, endpoint) = (asked.provider_id.clone(), asked.endpoint_id.clone());
        // Says what it changed: the provider, or `provider.endpoint`.
        let edit = self.edit_config(move |editor| {
            match &endpoint {
                Some(e) => editor.set_endpoint_enabled(&provider, e, enabled),
                None => editor.set_provider_enabled(&provider, enabled),
            }
            .map_err(|e| anyhow::Error::from(Problem::not_found(format!("{e:#}"))))?;
            Ok(match endpoint {
                Some(e) => format!("{provider}.{e}"),
                None => provider,
            })
        });
        let state = self.state.clone();
        let path = self.state.config_path.display().to_string();
        async move {
            let edited = edit.await?;
            let plan = state.plan();
            let now_in_force: Vec<String> = plan
                .graph
                .upstreams
                .iter()
                .filter(|u| u.provider == asked.provider_id)
                .filter(|u| asked.endpoint_id.as_ref().is_none_or(|e| u.endpoint == *e))
                .map(|u| u.key().to_string())
                .collect();
            if enabled {
                for key in &now_in_force {
                    state.routing.set_runtime_disabled(key, None);
                }
            }
            Ok(json!({
                "persisted": {"target": edited.value, "enabled": enabled, "config_path": path},
                "enabled": enabled,
                "in_force": now_in_force,
                "reloaded": edited.reloaded,
            }))
        }
        .boxed()
    }
}

pub(super) fn ready(answer: anyhow::Result<Value>) -> BoxFuture<'static, anyhow::Result<Value>> {
    Box::pin(std::future::ready(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::ProblemKind;

    fn body(json: Value) -> RuntimeBody {
        let mut base = json!({"provider_id": "p"});
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn each_body_asks_for_one_action() {
        let cases = [
            (json!({"enabled": false}), Action::Disable { minutes: None }),
            (
                json!({"enabled": false, "minutes": 30}),
                Action::Disable { minutes: Some(30) },
            ),
            (json!({"enabled": true}), Action::Enable),
            (
                json!({"state": "draining", "minutes": 5}),
                Action::Drain { minutes: Some(5) },
            ),
            (json!({"state": "normal"}), Action::Normal),
            (
                json!({"enabled": false, "persist": true}),
                Action::Persist { enabled: false },
            ),
            (
                json!({"enabled": true, "persist": true}),
                Action::Persist { enabled: true },
            ),
        ];
        for (given, want) in cases {
            assert_eq!(body(given.clone()).action(), Ok(want), "{given}");
        }
    }

    #[test]
    fn unclear_bodies_are_refused_with_what_to_give() {
        let refused = [
            (json!({}), "either `enabled`"),
            (json!({"enabled": false, "state": "draining"}), "either"),
            (
                json!({"state": "draining", "persist": true}),
                "runtime state only",
            ),
            (json!({"enabled": false, "minutes": 0}), "1 to 10080"),
            (json!({"state": "draining", "minutes": 20000}), "1 to 10080"),
            (
                json!({"enabled": true, "minutes": 5}),
                "not for switching on",
            ),
            (json!({"state": "normal", "minutes": 5}), "not for `normal`"),
            (
                json!({"enabled": false, "persist": true, "minutes": 5}),
                "not for a config change",
            ),
        ];
        for (given, says) in refused {
            let problem = body(given.clone()).action().unwrap_err();
            assert_eq!(problem.kind, ProblemKind::BadRequest, "{given}");
            assert!(
                problem.message.contains(says),
                "{given}: {}",
                problem.message
            );
        }
        assert!(
            serde_json::from_value::<RuntimeBody>(json!({"provider_id": "p", "state": "gone"}))
                .is_err()
        );
    }
}
