//! codex-helper: a local relay proxy and operator console for the OpenAI Codex CLI.
//!
//! See ARCHITECTURE.md for where things live.

pub mod admin;
pub mod balance;
pub mod cli;
pub mod client_side;
pub mod codex;
pub mod config;
pub mod diagnose;
pub mod doctor;
pub mod env_ref;
pub mod files;
pub mod filter;
pub mod ledger;
pub mod log_fields;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod postgres;
pub mod proxy;
pub mod record;
pub mod redact;
pub mod redis_url;
pub mod routing;
pub mod running;
pub mod shared;
pub mod team;
pub mod time;
pub mod tui;
