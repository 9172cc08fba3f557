//! Relay diagnostics: what a relay really supports for Codex, proven without spending
//! (`capabilities`) or with a few small, acknowledged model calls (`smoke`), each run kept
//! as sanitized evidence (`evidence`).
//!
//! Diagnostics talk to one endpoint directly, through its own outbound route and with its own
//! credential, but outside routing: nothing here touches health, affinity, limits, balances or
//! the ledger, and nothing reads the evidence back into a decision. Every probe has a timeout
//! and a body cap, follows no redirect, and treats an HTML page or a non-JSON 200 as a failure.

pub mod capabilities;
pub mod evidence;
pub mod exchange;
pub mod probe;
pub mod recommend;
pub mod smoke;
