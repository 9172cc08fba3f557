//! The JSON Schema of `config.toml`, generated from the config types (so it cannot drift
//! from what the loader accepts: a table that refuses unknown keys says so with
//! `additionalProperties: false`). Shipped as `docs/config.schema.json` for taplo / Even
//! Better TOML; `codex-helper config schema` prints it.

use super::model::HelperConfig;

/// Where the checked-in copy lives, relative to the repository.
pub const SCHEMA_FILE: &str = "docs/config.schema.json";

/// The schema as pretty JSON with a trailing newline (the checked-in file's exact text).
pub fn schema_json() -> String {
    let mut schema = schemars::schema_for!(HelperConfig);
    schema.insert(
        "title".into(),
        "codex-helper config.toml (version 5)".into(),
    );
    schema.insert(
        "description".into(),
        "~/.codex-helper/config.toml. Generated from the config types by `codex-helper config schema`.".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is JSON");
    text.push('\n');
    text
}
