//! The helper's own config: `~/.codex-helper/config.toml`.

pub mod bootstrap;
pub mod edit;
pub mod load;
pub mod model;
pub mod notify;
pub mod outbound;
pub mod paths;

pub use load::{ConfigError, LoadedConfig};
pub use model::HelperConfig;
pub use paths::Homes;
