//! Codex as the proxy's client: the preset it is switched to, the placeholder credential
//! `switch on` gives it, and its model catalog. This is the one place the request life learns
//! about Codex (through [`ClientSide`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::bundled::BundledModels;
use super::preset::Preset;
use super::redirect::PLACEHOLDER_TOKEN;
use crate::client_side::{ClientAuth, ClientSide};

pub struct CodexClient {
    /// The preset in force: an index into `Preset::ALL` plus one, 0 when not switched.
    preset: AtomicU8,
    bundled: BundledModels,
    /// The binary is the config's (`[proxy] codex_binary`): a recorded one does not replace it.
    binary_pinned: AtomicBool,
}

impl CodexClient {
    /// `codex_binary` answers for its bundled model metadata, cached in `cache_dir`.
    pub fn new(codex_binary: PathBuf, cache_dir: PathBuf) -> Self {
        Self {
            preset: AtomicU8::new(0),
            bundled: BundledModels::new(codex_binary, cache_dir),
            binary_pinned: AtomicBool::new(false),
        }
    }

    /// Keeps the binary given to [`CodexClient::new`] whatever the switch state records.
    pub fn pin_binary(&self) {
        self.binary_pinned.store(true, Ordering::Relaxed);
    }

    /// Follows the Codex binary recorded in the switch state (a `switch on` run while the
    /// proxy serves), unless the binary is pinned.
    pub fn follow_recorded(&self, recorded: Option<&super::discover::CodexBinary>) {
        if let Some(recorded) = recorded
            && !self.binary_pinned.load(Ordering::Relaxed)
        {
            self.bundled.set_binary(&recorded.path);
        }
    }

    /// The preset Codex is switched to, if it is.
    pub fn preset(&self) -> Option<Preset> {
        let index = self.preset.load(Ordering::Relaxed) as usize;
        index
            .checked_sub(1)
            .and_then(|i| Preset::ALL.get(i).copied())
    }

    /// Follows the preset in force (`None`: Codex is not switched to the proxy).
    pub fn set_preset(&self, preset: Option<Preset>) {
        let index = preset
            .and_then(|p| Preset::ALL.iter().position(|q| *q == p))
            .map_or(0, |i| i + 1);
        self.preset.store(index as u8, Ordering::Relaxed);
    }
}

impl ClientSide for CodexClient {
    fn preset_name(&self) -> Option<&'static str> {
        self.preset().map(Preset::as_str)
    }

    fn auth(&self) -> ClientAuth<'_> {
        ClientAuth {
            strip: self.preset().is_some_and(Preset::strips_client_auth),
            placeholder: Some(PLACEHOLDER_TOKEN),
        }
    }

    fn catalog(
        &self,
        relay: &serde_json::Value,
        client_version: Option<&str>,
    ) -> Result<Option<serde_json::Value>, String> {
        let models = self.bundled.for_version(client_version)?;
        Ok(super::catalog::translate(relay, &models))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preset_in_force_decides_what_relays_may_see() {
        let client = CodexClient::new("codex".into(), std::env::temp_dir());
        assert_eq!(client.preset_name(), None);
        assert!(!client.auth().strip, "not switched: nothing to strip");
        for preset in Preset::ALL {
            client.set_preset(Some(preset));
            assert_eq!(client.preset(), Some(preset));
            assert_eq!(client.preset_name(), Some(preset.as_str()));
            assert_eq!(client.auth().strip, preset.strips_client_auth());
            assert_eq!(client.auth().placeholder, Some(PLACEHOLDER_TOKEN));
        }
        client.set_preset(None);
        assert_eq!(client.preset(), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_catalog_follows_a_recorded_codex_unless_the_config_names_one() {
        use super::super::discover::{CodexBinary, Origin};
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let codex = dir.path().join("codex");
        std::fs::write(
            &codex,
            "#!/bin/sh\nif [ \"$1\" = debug ]; then echo '{\"models\":[{\"slug\":\"m\",\"base_instructions\":\"recorded\"}]}'; else echo 'codex-cli 9.0.0'; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(&codex, std::fs::Permissions::from_mode(0o755)).unwrap();
        let recorded = CodexBinary {
            path: codex,
            version: "9.0.0".into(),
            origin: Origin::InstallDir,
        };
        let relay = serde_json::json!({"data": [{"id": "m"}]});
        let catalog = |client: &CodexClient| client.catalog(&relay, None);

        let pinned = CodexClient::new("/nonexistent/codex".into(), dir.path().join("a"));
        pinned.pin_binary();
        pinned.follow_recorded(Some(&recorded));
        assert!(catalog(&pinned).is_err(), "the configured binary stays");

        let following = CodexClient::new("/nonexistent/codex".into(), dir.path().join("b"));
        assert!(catalog(&following).is_err());
        following.follow_recorded(None);
        assert!(catalog(&following).is_err(), "nothing recorded: unchanged");
        following.follow_recorded(Some(&recorded));
        let translated = catalog(&following).unwrap().unwrap();
        assert_eq!(translated["models"][0]["base_instructions"], "recorded");
    }
}
