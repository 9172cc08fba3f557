//! One module per fuzz target. Each `check` panics when an invariant does not hold; a parse
//! error, a refused body or a rejected config is an answer, not a failure.

pub mod catalog;
pub mod coding;
pub mod config;
pub mod input;
pub mod patch;
pub mod session;
pub mod sse;
