//! A request's session id and where it was found (the proxy finds it; records keep it).

use std::fmt;

/// Where a session id was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSource {
    Header(&'static str),
    PromptCacheKey,
    MetadataSessionId,
}

impl fmt::Display for SessionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header:{name}"),
            Self::PromptCacheKey => f.write_str("body:prompt_cache_key"),
            Self::MetadataSessionId => f.write_str("body:metadata.session_id"),
        }
    }
}

/// A request's session id and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId {
    pub value: String,
    pub source: SessionSource,
}
