//! Config edits a console asks for besides switching endpoints: the default profile
//! (`POST /profiles/default/persisted`) and the entry route node
//! (`POST /routing/persisted`, what `routing order|pin|prefer` do). Both go through
//! [`ServeConsole::edit_config`]: the format-preserving editor, a 409 for a file changed on
//! disk, the result checked as `serve` would, then reloaded.

use std::collections::BTreeMap;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::console::{ServeConsole, parse_body};
use super::console_routing::ready;
use crate::admin::Problem;
use crate::routing::overrides::check_value;

/// `POST /profiles/default/persisted`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultProfile {
    /// `null` removes the default profile.
    profile: Option<String>,
}

/// `POST /routing/persisted`'s body: one edit of the entry node.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingEdit {
    order: Option<Vec<String>>,
    pin: Option<String>,
    prefer_tags: Option<BTreeMap<String, String>>,
    on_exhausted: Option<String>,
}

/// What a routing edit does, once its body is understood.
enum Edit {
    Order(Vec<String>),
    Pin(String),
    Prefer {
        tags: BTreeMap<String, String>,
        order: Option<Vec<String>>,
        stop: bool,
    },
}

impl RoutingEdit {
    fn edit(self) -> Result<Edit, String> {
        let tags = self
            .prefer_tags
            .iter()
            .flat_map(|t| t.keys().chain(t.values()));
        let named = (self.order.iter().flatten().map(|n| ("order", n)))
            .chain(self.pin.iter().map(|n| ("pin", n)))
            .chain(tags.map(|n| ("prefer_tags", n)));
        for (field, name) in named {
            check_value(field, name)?;
        }
        let stop = match self.on_exhausted.as_deref() {
            None | Some("continue") => false,
            Some("stop") => true,
            Some(other) => {
                return Err(format!("`on_exhausted` is continue or stop, not `{other}`"));
            }
        };
        match (self.order, self.pin, self.prefer_tags) {
            (order, None, Some(tags)) if !tags.is_empty() => Ok(Edit::Prefer { tags, order, stop }),
            (_, None, Some(_)) => Err("`prefer_tags` names at least one tag".into()),
            _ if self.on_exhausted.is_some() => {
                Err("`on_exhausted` goes with `prefer_tags`".into())
            }
            (Some(order), None, None) if !order.is_empty() => Ok(Edit::Order(order)),
            (Some(_), None, None) => Err("`order` names at least one child".into()),
            (None, Some(pin), None) => Ok(Edit::Pin(pin)),
            _ => Err("give exactly one of `order`, `pin` or `prefer_tags` (with `order`)".into()),
        }
    }
}

impl ServeConsole {
    pub(super) fn write_default_profile(
        &self,
        body: Value,
    ) -> BoxFuture<'static, anyhow::Result<Value>> {
        let asked: DefaultProfile = match parse_body(body) {
            Ok(asked) => asked,
            Err(e) => return ready(Err(e)),
        };
        if let Some(Err(e)) = asked.profile.as_deref().map(|p| check_value("profile", p)) {
            return ready(Err(Problem::bad_request(e).into()));
        }
        let path = self.state.config_path.display().to_string();
        let edit = self.edit_config(move |editor| {
            editor.set_default_profile(asked.profile.as_deref());
            Ok(asked.profile)
        });
        async move {
            let edited = edit.await?;
            Ok(json!({
                "default_profile": edited.value,
                "config_path": path,
                "reloaded": edited.reloaded,
            }))
        }
        .boxed()
    }

    pub(super) fn write_routing(&self, body: Value) -> BoxFuture<'static, anyhow::Result<Value>> {
        let edit = parse_body::<RoutingEdit>(body).and_then(|asked| {
            asked
                .edit()
                .map_err(|e| anyhow::Error::from(Problem::bad_request(e)))
        });
        let edit = match edit {
            Ok(edit) => edit,
            Err(e) => return ready(Err(e)),
        };
        let path = self.state.config_path.display().to_string();
        let edited = self.edit_config(move |editor| match &edit {
            Edit::Order(order) => editor.set_order(order),
            Edit::Pin(target) => editor.pin(target),
            Edit::Prefer { tags, order, stop } => editor.prefer_tags(tags, order.as_deref(), *stop),
        });
        let state = self.state.clone();
        async move {
            let edited = edited.await?;
            let plan = state.plan();
            Ok(json!({
                "entry": edited.value,
                "config_path": path,
                "graph_key": plan.graph.key.to_string(),
                "reloaded": edited.reloaded,
            }))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(body: Value) -> Result<Edit, String> {
        serde_json::from_value::<RoutingEdit>(body).unwrap().edit()
    }

    #[test]
    fn a_routing_edit_is_exactly_one_of_order_pin_or_prefer() {
        assert!(
            matches!(edit(json!({"order": ["a", "b"]})), Ok(Edit::Order(o)) if o == ["a", "b"])
        );
        assert!(matches!(edit(json!({"pin": "a"})), Ok(Edit::Pin(p)) if p == "a"));
        assert!(matches!(
            edit(json!({"prefer_tags": {"billing": "monthly"}, "on_exhausted": "stop"})),
            Ok(Edit::Prefer {
                stop: true,
                order: None,
                ..
            })
        ));
        for (body, says) in [
            (json!({}), "exactly one"),
            (json!({"order": ["a"], "pin": "a"}), "exactly one"),
            (json!({"order": []}), "at least one child"),
            (json!({"prefer_tags": {}}), "at least one tag"),
            (
                json!({"pin": "a", "on_exhausted": "stop"}),
                "goes with `prefer_tags`",
            ),
            (
                json!({"prefer_tags": {"k": "v"}, "on_exhausted": "later"}),
                "continue or stop",
            ),
            (json!({"pin": ""}), "`pin` is empty"),
        ] {
            let error = edit(body.clone()).err().unwrap_or_default();
            assert!(error.contains(says), "{body}: {error}");
        }
    }
}
