//! What the proxy needs to know about the client it serves, behind one small trait: the request
//! life asks it, and the client's integration answers (for Codex, `codex::client`). The proxy
//! itself knows nothing of Codex's files, presets or binary; this leaf is all the two share.

/// The client the proxy serves, as far as the request life is concerned.
pub trait ClientSide: Send + Sync {
    /// The preset the client is switched to, by its stored name, for the request record.
    fn preset_name(&self) -> Option<&'static str> {
        None
    }

    /// What the client's own credentials may do on the way to a relay.
    fn auth(&self) -> ClientAuth<'_> {
        ClientAuth::default()
    }

    /// The client's model catalog made from a relay's `/models` answer (and the client's
    /// version, when it said); `Ok(None)` leaves the answer as the relay sent it. May block (it
    /// can run the client's binary): the proxy calls it off its event loop.
    fn catalog(
        &self,
        relay: &serde_json::Value,
        client_version: Option<&str>,
    ) -> Result<Option<serde_json::Value>, String> {
        let _ = (relay, client_version);
        Ok(None)
    }
}

/// What the client's own credentials may do on the way to a relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientAuth<'a> {
    /// The client's own credential and account headers never reach a relay.
    pub strip: bool,
    /// A bearer token the client was given in place of a credential: never forwarded.
    pub placeholder: Option<&'a str>,
}

/// A client the proxy knows nothing about: its headers go as they are (bar the ChatGPT login
/// rule, which holds for every client) and answers pass through untouched.
pub struct AnyClient;

impl ClientSide for AnyClient {}
