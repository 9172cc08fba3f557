//! The invariants codex-helper's fuzz targets check, one module per target.
//!
//! Each `check(data)` reads its input from raw fuzzer bytes (see [`checks::input::Input`])
//! and panics when an invariant does not hold. tests/fuzz_props.rs includes the same files
//! and runs them on bounded generated inputs in the normal test suite.

pub mod checks;
