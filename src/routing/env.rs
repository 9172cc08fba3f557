//! How the routing layer reads environment variables (relay keys, outbound proxies).

/// Looks up an environment variable (injected so tests need not touch the process env).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;
