//! Which upstream a request goes to, and in what order the others are tried.

pub mod affinity;
pub mod endpoints;
pub mod env;
pub mod explain;
pub mod graph;
pub mod health;
pub mod model_map;
pub mod outbound;
pub mod retry;
pub mod runtime;
pub mod select;
pub mod upstream;

pub use graph::{Candidate, RequestView, RouteGraph, compile};
pub use upstream::{BaseUrl, Credential, Secret, Upstream};
