//! The request filter: `filter.json` in the helper's home, `replace` / `remove` rules applied
//! to every request body the proxy sends a relay, after the relay's model mapping (the
//! proxy's phase 4a, `proxy::filter`).
//!
//! - `rules.rs`: the rules compiled and applied (pure);
//! - `file.rs`: reading the file (bounded) and the [`FilterSlot`] the proxy reads;
//! - `watch.rs`: the file followed while `serve` runs (its own thread).

pub mod file;
pub mod rules;
pub mod watch;

pub use file::{FilterSlot, load};
pub use rules::{FilterError, Rules};

/// Where `filter.json` lives in the helper's home.
pub fn path_in(helper_home: &std::path::Path) -> std::path::PathBuf {
    helper_home.join("filter.json")
}
