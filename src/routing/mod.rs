//! Which upstream a request goes to, and in what order the others are tried.

pub mod graph;
pub mod model_map;
pub mod upstream;

pub use graph::{RoutePlan, compile};
pub use upstream::{BaseUrl, Credential, Secret, Upstream};
