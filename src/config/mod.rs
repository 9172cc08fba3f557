//! The helper's own config: `~/.codex-helper/config.toml`.

pub mod bootstrap;
pub mod codex_import;
pub mod edit;
pub mod load;
pub mod migrate;
pub mod model;
pub mod notify;
pub mod outbound;
pub mod paths;
pub mod provider_spec;
pub mod schema;
pub mod v5_auth;
pub mod v5_compat;
pub mod v5_retry;

pub use load::{ConfigError, LoadedConfig};
pub use model::HelperConfig;
pub use paths::Homes;
