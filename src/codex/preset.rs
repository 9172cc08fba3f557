//! Client presets: what `switch on` makes Codex believe about the proxy.
//!
//! Pure: a preset and its switches in, a [`PatchPlan`] (the provider keys and the auth.json
//! action) out. Every legacy spelling is read; only canonical names are written.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A client preset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Preset {
    /// Codex talks to the helper as a custom provider, with its own credential.
    #[default]
    Default,
    /// Codex keeps its ChatGPT login (account features); relays get the helper's credential.
    ChatgptBridge,
    /// An empty `auth.json` makes Codex offer hosted image generation.
    ImagegenBridge,
    /// The provider is named `OpenAI`, so Codex uses remote compaction.
    OfficialRelay,
    /// `official-relay` plus the image-generation auth facade.
    OfficialImagegen,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Default,
        Preset::ChatgptBridge,
        Preset::ImagegenBridge,
        Preset::OfficialRelay,
        Preset::OfficialImagegen,
    ];

    /// Reads any spelling the original codex-helper accepted (dashes or underscores, the
    /// `-bridge` forms of the official presets, `chat-gpt-bridge`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let normal = text.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match normal.as_str() {
            "default" => Preset::Default,
            "chatgpt-bridge" | "chat-gpt-bridge" => Preset::ChatgptBridge,
            "imagegen-bridge" => Preset::ImagegenBridge,
            "official-relay" | "official-relay-bridge" => Preset::OfficialRelay,
            "official-imagegen" | "official-imagegen-bridge" => Preset::OfficialImagegen,
            _ => {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.as_str()).collect();
                return Err(format!(
                    "unknown preset `{text}`; allowed: {}",
                    names.join(", ")
                ));
            }
        })
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::ChatgptBridge => "chatgpt-bridge",
            Preset::ImagegenBridge => "imagegen-bridge",
            Preset::OfficialRelay => "official-relay",
            Preset::OfficialImagegen => "official-imagegen",
        }
    }

    /// Presets whose provider Codex sees as OpenAI's own.
    pub fn is_official(self) -> bool {
        matches!(self, Preset::OfficialRelay | Preset::OfficialImagegen)
    }

    /// In these presets Codex's own credential never reaches a relay.
    pub fn strips_client_auth(self) -> bool {
        self != Preset::Default
    }

    /// These presets need a helper-side credential for at least one relay.
    pub fn needs_helper_credential(self) -> bool {
        matches!(
            self,
            Preset::ImagegenBridge | Preset::OfficialRelay | Preset::OfficialImagegen
        )
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Preset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Preset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Preset::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How Codex compacts long threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compaction {
    /// What the preset implies.
    #[default]
    Auto,
    /// Codex summarises locally (provider named `codex-helper`).
    Local,
    /// Remote compaction, v1 (`[features] remote_compaction_v2 = false`).
    RemoteV1,
    /// Remote compaction, v2 (`[features] remote_compaction_v2 = true`).
    RemoteV2,
}

impl Compaction {
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(
            match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
                "auto" => Compaction::Auto,
                "local" => Compaction::Local,
                "remote-v1" => Compaction::RemoteV1,
                "remote-v2" => Compaction::RemoteV2,
                _ => {
                    return Err(format!(
                        "unknown compaction `{text}`; allowed: auto, local, remote-v1, remote-v2"
                    ));
                }
            },
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compaction::Auto => "auto",
            Compaction::Local => "local",
            Compaction::RemoteV1 => "remote-v1",
            Compaction::RemoteV2 => "remote-v2",
        }
    }
}

impl Serialize for Compaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Compaction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Compaction::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What happens to `auth.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAction {
    /// Put back what the helper changed, if it is still what the helper wrote.
    Restore,
    /// Mark the existing ChatGPT login as the auth mode (after checking it is complete).
    ChatgptMode,
    /// Replace it with `{}` so Codex offers hosted image generation.
    EmptyFacade,
}

/// A key of `[model_providers.codex_proxy]` the plan sets or removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Set(bool),
    Remove,
}

/// Everything `switch on` writes for a preset and its switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPlan {
    pub preset: Preset,
    pub responses_websocket: bool,
    pub compaction: Compaction,
    /// `[model_providers.codex_proxy] name`.
    pub provider_name: &'static str,
    pub requires_openai_auth: Flag,
    pub supports_websockets: Flag,
    /// `[features] remote_compaction_v2`, when the compaction switch says so.
    pub remote_compaction_v2: Option<bool>,
    pub auth: AuthAction,
    /// The environment variable Codex reads its credential for the proxy from: a team
    /// member's key (`switch on --team-url`). `None`: the local proxy, which takes a
    /// placeholder.
    pub key_env: Option<String>,
}

impl PatchPlan {
    /// Builds and checks the plan.
    pub fn new(
        preset: Preset,
        responses_websocket: bool,
        compaction: Compaction,
    ) -> Result<Self, String> {
        if matches!(compaction, Compaction::RemoteV1 | Compaction::RemoteV2)
            && !preset.is_official()
        {
            return Err(format!(
                "compaction `{}` needs a provider Codex treats as OpenAI: use --preset official-relay or --preset official-imagegen",
                compaction.as_str()
            ));
        }
        let official_identity = preset.is_official() && compaction != Compaction::Local;
        if responses_websocket && !official_identity {
            return Err("the Responses WebSocket transport needs --preset official-relay or --preset official-imagegen (and not compaction = local)".into());
        }
        let (requires_openai_auth, supports_websockets, auth) = match preset {
            Preset::Default => (Flag::Remove, Flag::Remove, AuthAction::Restore),
            Preset::ChatgptBridge => (Flag::Set(true), Flag::Set(false), AuthAction::ChatgptMode),
            Preset::ImagegenBridge => (Flag::Remove, Flag::Remove, AuthAction::EmptyFacade),
            Preset::OfficialRelay => (
                Flag::Remove,
                Flag::Set(responses_websocket),
                AuthAction::Restore,
            ),
            Preset::OfficialImagegen => (
                Flag::Remove,
                Flag::Set(responses_websocket),
                AuthAction::EmptyFacade,
            ),
        };
        let remote_compaction_v2 = match compaction {
            Compaction::Auto => None,
            Compaction::Local | Compaction::RemoteV1 => Some(false),
            Compaction::RemoteV2 => Some(true),
        };
        Ok(Self {
            preset,
            responses_websocket,
            compaction,
            provider_name: if official_identity {
                "OpenAI"
            } else {
                "codex-helper"
            },
            requires_openai_auth,
            supports_websockets,
            remote_compaction_v2,
            auth,
            key_env: None,
        })
    }

    /// The plan for a team relay: Codex sends the member key held in `var`. Presets that make
    /// Codex send its own login instead cannot carry a member key.
    pub fn with_team_key(mut self, var: &str) -> Result<Self, String> {
        let valid = !var.is_empty()
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !var.as_bytes()[0].is_ascii_digit();
        if !valid {
            return Err(format!(
                "--key-env `{var}` is not an environment variable name (letters, digits and `_`)"
            ));
        }
        if self.requires_openai_auth == Flag::Set(true) {
            return Err(format!(
                "the {} preset makes Codex send its own login, not a team member's key; use --preset default or official-relay with --team-url",
                self.preset.as_str()
            ));
        }
        self.key_env = Some(var.to_string());
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_and_canonical_names_are_written() {
        for (text, preset) in [
            ("default", Preset::Default),
            ("chatgpt-bridge", Preset::ChatgptBridge),
            ("chatgpt_bridge", Preset::ChatgptBridge),
            ("chat-gpt-bridge", Preset::ChatgptBridge),
            ("imagegen_bridge", Preset::ImagegenBridge),
            ("official-relay-bridge", Preset::OfficialRelay),
            ("official_relay", Preset::OfficialRelay),
            (" Official-Imagegen-Bridge ", Preset::OfficialImagegen),
        ] {
            assert_eq!(Preset::parse(text), Ok(preset), "{text}");
        }
        assert_eq!(
            serde_json::to_string(&Preset::ChatgptBridge).unwrap(),
            "\"chatgpt-bridge\""
        );
        let err = Preset::parse("turbo").unwrap_err();
        assert!(
            err.contains(
                "default, chatgpt-bridge, imagegen-bridge, official-relay, official-imagegen"
            ),
            "{err}"
        );
    }

    #[test]
    fn each_preset_plans_its_provider_and_auth() {
        let plan = |p| PatchPlan::new(p, false, Compaction::Auto).unwrap();
        assert_eq!(
            (
                plan(Preset::Default).provider_name,
                plan(Preset::Default).auth
            ),
            ("codex-helper", AuthAction::Restore)
        );
        let bridge = plan(Preset::ChatgptBridge);
        assert_eq!(
            (
                bridge.requires_openai_auth,
                bridge.supports_websockets,
                bridge.auth
            ),
            (Flag::Set(true), Flag::Set(false), AuthAction::ChatgptMode)
        );
        assert_eq!(plan(Preset::ImagegenBridge).auth, AuthAction::EmptyFacade);
        let official = plan(Preset::OfficialRelay);
        assert_eq!(
            (official.provider_name, official.supports_websockets),
            ("OpenAI", Flag::Set(false))
        );
        assert_eq!(plan(Preset::OfficialImagegen).auth, AuthAction::EmptyFacade);
        let ws = PatchPlan::new(Preset::OfficialRelay, true, Compaction::Auto).unwrap();
        assert_eq!(ws.supports_websockets, Flag::Set(true));
    }

    #[test]
    fn switches_that_do_not_fit_the_preset_are_refused() {
        assert!(
            PatchPlan::new(Preset::Default, true, Compaction::Auto)
                .unwrap_err()
                .contains("official-relay")
        );
        assert!(PatchPlan::new(Preset::OfficialRelay, true, Compaction::Local).is_err());
        assert!(
            PatchPlan::new(Preset::ChatgptBridge, false, Compaction::RemoteV2)
                .unwrap_err()
                .contains("needs a provider Codex treats as OpenAI")
        );
        let local = PatchPlan::new(Preset::OfficialImagegen, false, Compaction::Local).unwrap();
        assert_eq!(
            (local.provider_name, local.remote_compaction_v2, local.auth),
            ("codex-helper", Some(false), AuthAction::EmptyFacade)
        );
        let v2 = PatchPlan::new(Preset::OfficialRelay, false, Compaction::RemoteV2).unwrap();
        assert_eq!(
            (v2.provider_name, v2.remote_compaction_v2),
            ("OpenAI", Some(true))
        );
    }
}
