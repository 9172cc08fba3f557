//! Forwarding loops: a relay whose address is the helper's own listener (imported from a Codex
//! that was switched to the helper, or typed by hand) would send every request round and round
//! until a timeout.
//!
//! Two defences:
//! - before running: [`crate::net::reaches_listener`] refuses such a relay when `serve` starts (against the
//!   address it listens on), in `provider add` and in first-run import;
//! - at run time, for what configuration cannot see (a relay that is another proxy, or another
//!   helper, pointing back here): every request the helper forwards carries
//!   `x-codex-helper-hop`, a comma-separated list of instance ids, one per helper it passed,
//!   this one's appended last (like `Via`). A request that arrives carrying this instance's own
//!   id, or more than [`MAX_HOPS`] ids, is answered at once with 508 `forwarding_loop`
//!   ([`check`], run by `guard::admit` before any IO); the helper that sent it sees that answer
//!   from its relay, fails over, and names the relay that leads back.
//!
//! What is trusted. The header arrives from whoever calls the helper, so it is only believed
//! where believing it cannot hurt anyone else:
//! - the instance id is 64 random bits drawn at start-up, never logged or shown; only this
//!   process (by forwarding) ever puts it in a request, and it only leaves towards relays.
//!   A client cannot make this instance refuse its requests without having seen the id, and a
//!   relay that has seen it cannot reach the loopback listener;
//! - the hop count is the client's word, but a long chain only refuses the request that
//!   carries it: the sender's own;
//! - when forwarding, only well-formed ids are kept (16 lowercase hex digits, at most
//!   [`MAX_HOPS`] of them) and this instance's id is appended: anything else a client put in
//!   the header is dropped, not passed on to relays. The incoming ids must be passed on, or a
//!   loop through two helpers (A → B → A) could not be seen by A.

use std::hash::{BuildHasher, Hasher};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::replies::Refusal;

/// The header that lists the helpers a request has passed.
pub const HOP_HEADER: HeaderName = HeaderName::from_static("x-codex-helper-hop");

/// More helpers than this in one chain is a loop through ids that were lost on the way.
pub const MAX_HOPS: usize = 8;

/// This process's id in [`HOP_HEADER`]: random, new at every start.
#[derive(Clone, PartialEq, Eq)]
pub struct InstanceId(String);

impl InstanceId {
    /// A fresh random id (the standard library's per-process random hash keys, so no new
    /// dependency; unpredictable, not cryptographic, which is all a loop marker needs).
    pub fn random() -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        Self(format!("{:016x}", hasher.finish()))
    }
}

impl std::fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstanceId(..)")
    }
}

/// The well-formed ids in a request's hop headers, in order.
fn hops(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(HOP_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|id| id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .collect()
}

/// Refuses a request that has already passed this helper, or too many helpers.
pub fn check(headers: &HeaderMap, me: &InstanceId) -> Result<(), Refusal> {
    let hops = hops(headers);
    let message = if hops.contains(&me.0.as_str()) {
        "codex-helper: forwarding loop: this request already passed through this codex-helper, \
         so one of its relays leads back to it (its base_url is this proxy, or a proxy or \
         helper that forwards here). The codex-helper that sent it names the relay."
            .to_string()
    } else if hops.len() >= MAX_HOPS {
        format!(
            "codex-helper: forwarding loop: this request already passed through {} codex-helper \
             proxies; a relay leads back into the chain",
            hops.len()
        )
    } else {
        return Ok(());
    };
    Err(Refusal {
        status: StatusCode::LOOP_DETECTED,
        code: FORWARDING_LOOP,
        message,
    })
}

/// The error code of a loop refusal, also how a helper recognises one from its relay.
pub const FORWARDING_LOOP: &str = "forwarding_loop";

/// Sets the hop header of a request to a relay: the client's well-formed ids, then ours.
pub fn stamp(upstream: &mut HeaderMap, client: &HeaderMap, me: &InstanceId) {
    let mut chain: Vec<&str> = hops(client);
    chain.truncate(MAX_HOPS);
    chain.push(&me.0);
    upstream.remove(HOP_HEADER);
    if let Ok(value) = HeaderValue::from_str(&chain.join(", ")) {
        upstream.insert(HOP_HEADER, value);
    }
}

/// The answer when no relay answered and at least one leads back to this helper: 508
/// `forwarding_loop`, naming those relays. Codex shows the message (it is not worth
/// retrying, so not a retryable `response.failed`); the loop is a config mistake to fix.
pub fn forwarding_loop(relays: &[String]) -> Refusal {
    let list = relays
        .iter()
        .map(|r| format!("`{r}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let provider = relays
        .first()
        .and_then(|r| r.split('.').next())
        .unwrap_or_default();
    Refusal {
        status: StatusCode::LOOP_DETECTED,
        code: FORWARDING_LOOP,
        message: format!(
            "codex-helper: forwarding loop: relay {list} leads back to this codex-helper (its \
             base_url is this proxy, or a proxy or helper that forwards here), so the request \
             was not sent round again. Fix its base_url (`codex-helper provider show {provider}`) \
             or remove it."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hop: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOP_HEADER, HeaderValue::from_str(hop).unwrap());
        h
    }

    #[test]
    fn own_id_or_a_long_chain_is_a_loop() {
        let me = InstanceId::random();
        let other = InstanceId::random();
        assert_ne!(me, other);
        assert!(check(&HeaderMap::new(), &me).is_ok());
        assert!(check(&headers(&other.0), &me).is_ok());
        let refusal = check(&headers(&format!("{}, {}", other.0, me.0)), &me).unwrap_err();
        assert_eq!(refusal.status, StatusCode::LOOP_DETECTED);
        assert_eq!(refusal.code, "forwarding_loop");
        let long = ["0123456789abcdef"; MAX_HOPS].join(",");
        assert!(check(&headers(&long), &me).is_err());
    }

    #[test]
    fn forwarding_keeps_well_formed_ids_and_appends_ours() {
        let me = InstanceId::random();
        let client = headers("0123456789abcdef, <script>, ABCDEF0123456789, 00000000000000001");
        let mut upstream = client.clone();
        stamp(&mut upstream, &client, &me);
        assert_eq!(
            upstream[HOP_HEADER],
            format!("0123456789abcdef, {}", me.0).as_str()
        );
        let mut fresh = HeaderMap::new();
        stamp(&mut fresh, &HeaderMap::new(), &me);
        assert_eq!(fresh[HOP_HEADER], me.0.as_str());
        assert!(!format!("{me:?}").contains(&me.0));
    }
}
