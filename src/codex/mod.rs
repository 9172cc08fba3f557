//! Everything about Codex's own files: presets, `config.toml` patching, `auth.json`, the
//! switch state.

pub mod patch;
pub mod preset;
