//! Everything about Codex's own files: presets, `config.toml` patching, `auth.json`, the
//! switch state.

pub mod auth;
pub mod bundled;
pub mod catalog;
pub mod client;
pub mod discover;
pub mod doc;
pub mod lines;
pub mod patch;
pub mod preset;
pub mod redirect;
pub mod remote_control;
pub mod rollouts;
pub mod sessions;
pub mod switch;
pub mod text;
pub mod version;
