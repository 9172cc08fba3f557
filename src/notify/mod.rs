//! Notifications: events a user wants to hear about while Codex works through the helper
//! (a long turn, a failover, a relay out of balance, a request no relay could take), delivered
//! as a desktop toast and/or a command of theirs, never on the proxy's path.
//!
//! - `event.rs`: the [`Event`] (its JSON is what a command reads on stdin);
//! - `detect.rs`: which events a finished request or a change of exhaustion makes (pure);
//! - `rate.rs`: one event per kind and relay per window (pure, over a given clock);
//! - `deliver.rs`: the toast and the command (IO, bounded in time);
//! - `service.rs`: the [`Notifier`] thread, the record sink that feeds it, the exhaustion watch;
//! - `codex_turn.rs`: Codex's `notify` payload and the request that was its turn (pure).

pub mod codex_turn;
pub mod deliver;
pub mod detect;
pub mod event;
pub mod rate;
pub mod service;

pub use crate::config::notify::{EventKind, NotifySettings};
pub use event::Event;
pub use service::{Notifier, NotifySink};
