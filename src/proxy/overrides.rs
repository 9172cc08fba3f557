//! Phase 2b of a request: the session's overrides (an operator's, a profile's, the default
//! profile's) applied before routing and model mapping, so that both see the model the request
//! will really ask for. See [`crate::routing::overrides`] for what wins over what.

use http::Method;

use super::inspect::BodyFacts;
use super::receive::ClientRequest;
use super::{Plan, ProxyState};
use crate::record::OverrideNote;
use crate::routing::overrides::{Applied, Patched};

/// What the overrides did to one request.
#[derive(Debug, Default)]
pub struct Overridden {
    /// The route target the session is pinned to.
    pub pin: Option<String>,
    /// What changed in the body, for the record.
    pub note: Option<OverrideNote>,
}

/// Bodies past this size are patched on a blocking thread: the patched body is inspected
/// again, a parse of all of it.
const PATCH_INLINE_MAX: usize = 1 << 20;

/// Applies the session's overrides to `request`: its body patched (a Responses request with
/// a JSON body only), and the route target it is pinned to.
pub async fn apply(
    state: &ProxyState,
    plan: &Plan,
    request: ClientRequest,
) -> (ClientRequest, Overridden) {
    let Some(applied) = resolve(state, plan, &request) else {
        return (request, Overridden::default());
    };
    let done = Overridden::pin_of(&applied);
    if !patchable(&request) {
        return (request, done);
    }
    if request.body.len() <= PATCH_INLINE_MAX {
        return patch(applied, request, done);
    }
    tokio::task::spawn_blocking(move || patch(applied, request, done))
        .await
        .expect("patching a body is pure and does not panic")
}

/// The request with its body patched and identified again, and what changed.
fn patch(
    applied: Applied,
    request: ClientRequest,
    done: Overridden,
) -> (ClientRequest, Overridden) {
    let Some(patched) = patch_body(&applied, &request.body, request.facts.as_ref()) else {
        return (request, done);
    };
    let (body, note) = note_of(&applied, patched);
    let ClientRequest {
        method,
        path_and_query,
        headers,
        body_decoded,
        ..
    } = request;
    let patched =
        ClientRequest::prepare(method, path_and_query, headers, body.into(), body_decoded);
    (
        patched,
        Overridden {
            note: Some(note),
            ..done
        },
    )
}

/// `body` with `applied` set, at the spans its inspection (`facts`) found when there is one,
/// else read from the body; `None` when nothing changes.
pub fn patch_body(applied: &Applied, body: &[u8], facts: Option<&BodyFacts>) -> Option<Patched> {
    match facts {
        Some(facts) => applied.patch_read_body(body, &facts.top),
        None => applied.patch_body(body),
    }
}

/// The patched body and what the record says of it: the fields changed, and the profile
/// behind them (the default profile only when it filled something).
pub fn note_of(applied: &Applied, patched: Patched) -> (Vec<u8>, OverrideNote) {
    let profile = applied
        .profile
        .clone()
        .filter(|_| applied.fill.is_empty() || patched.filled);
    let note = OverrideNote {
        profile,
        changed: patched.changed,
    };
    (patched.body, note)
}

/// What a session's request gets from its overrides and the profiles in force, if anything.
pub fn resolve_session(state: &ProxyState, plan: &Plan, session: Option<&str>) -> Option<Applied> {
    let entry = session.and_then(|s| state.overrides.get(s));
    Applied::resolve(entry.as_ref(), &plan.profiles)
}

/// What the request's session gets from its overrides and the profiles in force, if anything.
pub fn resolve(state: &ProxyState, plan: &Plan, request: &ClientRequest) -> Option<Applied> {
    let session = request.session.as_ref().map(|s| s.value.as_str());
    resolve_session(state, plan, session)
}

impl Overridden {
    /// Only the route pin of `applied` (a request whose body is not patched).
    pub fn pin_of(applied: &Applied) -> Self {
        Overridden {
            pin: applied.set.route_target.clone(),
            note: None,
        }
    }
}

/// A Responses call (`POST …/responses`, `…/responses/compact`) whose body was read as JSON.
fn patchable(request: &ClientRequest) -> bool {
    let path = request.path_and_query.split('?').next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    request.method == Method::POST
        && request.facts.is_some()
        && (path.ends_with("/responses") || path.ends_with("/responses/compact"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::overrides::Overrides;

    fn overrides(model: Option<&str>, effort: Option<&str>, tier: Option<&str>) -> Overrides {
        Overrides {
            model: model.map(Into::into),
            reasoning_effort: effort.map(Into::into),
            service_tier: tier.map(Into::into),
            ..Overrides::default()
        }
    }

    /// Patching with the spans the inspection found gives the very bytes a patch that reads
    /// the body itself gives, for values set and filled, present, `null` and absent.
    #[test]
    fn a_body_patched_from_its_inspection_is_the_body_patched_from_a_read() {
        let bodies: [&[u8]; 9] = [
            br#"{"model":"m","input":[{"type":"message","content":"x"}],"stream":true}"#,
            br#" { "service_tier" : null , "model":null, "reasoning":null }"#,
            br#"{"reasoning":{"summary":"auto"},"service_tier":"priority"}"#,
            br#"{"reasoning":{"effort":"low"},"model":"gpt-5.1","service_tier":"flex"}"#,
            br#"{"reasoning":{},"input":"hi"}"#,
            b"{}",
            b" {\r\n } ",
            br#"{"model":{"id":"x"},"servic\u0065_tier":"flex"}"#,
            br#"{"input":[{"model":"inner","service_tier":"inner"}]}"#,
        ];
        let values = [
            overrides(Some("big"), Some("high"), Some("flex")),
            overrides(None, Some("low"), None),
            overrides(None, None, Some("priority")),
        ];
        let mut patched = 0;
        for body in bodies {
            let facts = super::super::inspect::inspect(body).expect("an object");
            for value in &values {
                for applied in [
                    Applied {
                        set: value.clone(),
                        ..Applied::default()
                    },
                    Applied {
                        fill: value.clone(),
                        profile: Some("base".into()),
                        ..Applied::default()
                    },
                ] {
                    let read = applied.patch_body(body);
                    let known = applied.patch_read_body(body, &facts.top);
                    let shown = String::from_utf8_lossy(body);
                    assert_eq!(known, read, "{shown} with {applied:?}");
                    patched += usize::from(read.is_some());
                }
            }
        }
        assert!(patched > 20, "most of these change the body: {patched}");
    }

    #[test]
    fn a_null_value_is_replaced_not_joined_by_a_second_member() {
        let body = br#"{"service_tier":null,"input":"x"}"#;
        let facts = super::super::inspect::inspect(body).unwrap();
        let applied = Applied {
            fill: overrides(None, None, Some("flex")),
            ..Applied::default()
        };
        let patched = applied.patch_read_body(body, &facts.top).unwrap();
        assert_eq!(patched.body, br#"{"service_tier":"flex","input":"x"}"#);
    }

    #[test]
    fn the_default_profile_is_named_only_when_it_filled_something() {
        let applied = Applied {
            set: Overrides {
                model: Some("big".into()),
                ..Overrides::default()
            },
            fill: Overrides {
                service_tier: Some("flex".into()),
                ..Overrides::default()
            },
            profile: Some("base".into()),
        };
        // The request had its tier: only the manual model changed.
        let patched = applied
            .patch_body(br#"{"model":"m","service_tier":"priority"}"#)
            .unwrap();
        let (_, note) = note_of(&applied, patched);
        assert_eq!((note.profile, note.changed), (None, vec!["model"]));
        let patched = applied.patch_body(br#"{"model":"m"}"#).unwrap();
        let (_, note) = note_of(&applied, patched);
        assert_eq!(note.profile.as_deref(), Some("base"));
        assert_eq!(note.changed, ["model", "service_tier"]);
    }
}
