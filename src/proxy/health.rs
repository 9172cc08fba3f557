//! `GET /healthz` and `GET /readyz` on the proxy's port, for orchestrators and load balancers:
//! answered before any key check (a health probe carries none) and without relay IO.
//!
//! - `/healthz`: the process serves (always 200).
//! - `/readyz`: whether requests can be served now. In team mode that needs member keys that
//!   can be checked: while the database is down, an instance stays ready as long as its last
//!   copy of the keys is trusted (the body says the database is unreachable), so an outage
//!   does not take every instance out of the load balancer at once; past that, 503.

use http::{Method, Response, StatusCode};
use serde_json::json;

use super::ProxyState;
use super::relay_body::ProxyBody;
use super::replies::json_response;

/// The answer to a health route, or `None` for any other request.
pub fn answer(state: &ProxyState, method: &Method, path: &str) -> Option<Response<ProxyBody>> {
    if method != Method::GET {
        return None;
    }
    match path {
        "/healthz" => Some(json_response(StatusCode::OK, json!({ "status": "ok" }))),
        "/readyz" => {
            let keys = state.member_keys.as_ref().map(|k| k.health());
            let ready = keys.is_none_or(|k| k.usable);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut body = json!({ "ready": ready });
            if let Some(keys) = keys {
                body["member_keys"] = json!(keys);
            }
            Some(json_response(status, body))
        }
        _ => None,
    }
}
