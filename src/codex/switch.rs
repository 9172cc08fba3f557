//! `switch on`, `switch off` and `switch status`: the IO around [`patch`] and [`auth`].
//!
//! The switch state (`$CODEX_HOME/codex-helper-switch-state.json`) records what the helper
//! changed and the original values, written before anything it describes so a crash never
//! leaves a change without the means to undo it; every file is checked writable before the
//! first write, so a refusal changes nothing. Files are written through [`write_atomic`]
//! (links followed and kept, modes and owners kept) and `config.toml` keeps its BOM and line
//! endings ([`text`]); `auth.json` is only restored when it is still what the helper wrote.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::auth;
use super::discover::CodexBinary;
use super::patch::{self, Originals, PROVIDER_ID, Redirect};
use super::preset::{AuthAction, Compaction, PatchPlan, Preset};
use super::redirect;
use super::sessions;
use super::text;
use crate::files::{self, PRIVATE, SHARED, write_atomic};

/// The switch state file's name in `$CODEX_HOME`.
pub const STATE_FILE: &str = "codex-helper-switch-state.json";

/// What the helper changed in Codex's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchState {
    pub version: u32,
    pub preset: Preset,
    #[serde(default)]
    pub responses_websocket: bool,
    #[serde(default)]
    pub compaction: Compaction,
    pub originals: Originals,
    /// Set while `auth.json` holds what the helper wrote.
    pub auth: Option<AuthPatch>,
    /// The Codex binary found at `switch on`, which the proxy asks for the `/models` catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codex_binary: Option<CodexBinary>,
}

/// An `auth.json` the helper replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthPatch {
    /// The text before, or `None` when there was no file.
    pub original: Option<String>,
    /// What the helper wrote.
    pub patched: String,
}

/// Codex's files.
#[derive(Debug, Clone)]
pub struct CodexFiles {
    /// `$CODEX_HOME`, where Codex also keeps its threads.
    pub home: PathBuf,
    pub config: PathBuf,
    pub auth: PathBuf,
    pub state: PathBuf,
}

impl CodexFiles {
    pub fn new(codex_home: &Path) -> Self {
        Self {
            home: codex_home.to_path_buf(),
            config: codex_home.join("config.toml"),
            auth: codex_home.join("auth.json"),
            state: codex_home.join(STATE_FILE),
        }
    }

    fn read(path: &Path) -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn state(&self) -> anyhow::Result<Option<SwitchState>> {
        let Some(text) = Self::read(&self.state)? else {
            return Ok(None);
        };
        serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is not a switch state; move it away to start afresh",
                self.state.display()
            )
        })
    }
}

/// Writes a file the helper owns or replaces whole (state, `auth.json`), private when new.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    write_atomic(path, text.as_bytes(), PRIVATE)
}

/// Removes the file `path` names; through a link, the target goes and the link stays (as it
/// was before the helper created the target).
fn remove(path: &Path) -> anyhow::Result<()> {
    let target = files::resolve_link(path)?;
    match std::fs::remove_file(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", target.display())),
    }
}

/// Refuses (see [`files::ensure_writable`]) before anything is written when one of the files
/// about to be written is read-only.
fn ensure_writable<'a>(files: impl IntoIterator<Item = Option<&'a Path>>) -> anyhow::Result<()> {
    files
        .into_iter()
        .flatten()
        .try_for_each(files::ensure_writable)
}

/// Codex's config text as the user made it: with a switch to the helper undone (in memory;
/// nothing is written), so that what is read from it is the user's relay, not the helper.
pub fn own_config(files: &CodexFiles) -> anyhow::Result<Option<String>> {
    let (_, text) = text::read(&files.config)?;
    let (Some(text), Some(state)) = (text.clone(), files.state()?) else {
        return Ok(text);
    };
    Ok(patch::switch_off(&text, &state.originals, false)?)
}

/// The helper's address when none is known (its default port).
pub const DEFAULT_HELPER_URL: &str = "http://127.0.0.1:3211/v1";

/// The id of the provider in force when the config looks switched on to a helper at
/// `helper_url` without a switch state saying so (see [`redirect::looks_switched_on`]).
pub fn redirected_provider(config_text: &str, helper_url: &str) -> Option<String> {
    let doc = config_text.parse::<toml_edit::DocumentMut>().ok()?;
    redirect::looks_switched_on(&doc, PROVIDER_ID, helper_url)
}

/// What a switch did, for the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchReport {
    pub preset: Option<Preset>,
    /// The provider id Codex uses while switched on (its own when redirected in place).
    pub redirected_provider: Option<String>,
    pub config_changed: bool,
    pub auth_changed: bool,
    pub message: String,
    /// What the user should know before relying on the switch (history kept apart).
    pub note: Option<String>,
}

/// Points Codex at the proxy at `base_url` with `plan`.
pub fn switch_on(
    files: &CodexFiles,
    plan: &PatchPlan,
    base_url: &str,
) -> anyhow::Result<SwitchReport> {
    switch_on_with(files, plan, base_url, None)
}

/// The relay URL the helper has for a Codex provider id (its own provider of that id).
pub type RelayBaseUrl<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Like [`switch_on`], for start-up: a Codex left pointing at the helper without a switch
/// state (the state file was lost) is repaired. A provider redirected in place gets back the
/// base URL `relay_base_url` gives for its id (the helper's own provider of that id, which it
/// was imported from); the built-in provider loses `openai_base_url`; the older
/// `codex_proxy` shape is removed at `switch off`, leaving Codex on its built-in default.
pub fn switch_on_repairing(
    files: &CodexFiles,
    plan: &PatchPlan,
    base_url: &str,
    relay_base_url: &RelayBaseUrl<'_>,
) -> anyhow::Result<SwitchReport> {
    switch_on_with(files, plan, base_url, Some(relay_base_url))
}

/// Whether threads tagged `codex_proxy` exist, which `switch off` must keep resumable.
fn threads_tagged_codex_proxy(files: &CodexFiles, originals: &Originals) -> bool {
    originals.redirect == Redirect::HelperTable && sessions::any_tagged(&files.home, PROVIDER_ID)
}

fn switch_on_with(
    files: &CodexFiles,
    plan: &PatchPlan,
    base_url: &str,
    repair: Option<&RelayBaseUrl<'_>>,
) -> anyhow::Result<SwitchReport> {
    let (style, text) = text::read(&files.config)?;
    let previous = files.state()?;
    // Every switch starts from Codex's own settings: an earlier switch is undone first (its
    // undo is exact), so the originals are always the user's and the shape always fits the
    // preset, also when moving off the older `codex_proxy` shape.
    let (base, originals) = match &previous {
        Some(state) => {
            let base = match &text {
                Some(current) => patch::switch_off(
                    current,
                    &state.originals,
                    threads_tagged_codex_proxy(files, &state.originals),
                )?,
                None => None,
            };
            let originals = patch::originals(base.as_deref(), plan)?;
            (base, originals)
        }
        None => match text
            .as_deref()
            .and_then(|t| redirected_provider(t, base_url))
        {
            None => (text.clone(), patch::originals(text.as_deref(), plan)?),
            Some(id) => {
                let Some(relay_base_url) = repair else {
                    bail!(
                        "Codex already points at a local codex-helper (provider `{id}` in {}), but no switch state was found, so its original settings are unknown. \
                         Set that provider's base_url back to your relay (or `model_provider` back to your own provider), then run `codex-helper switch on` again.",
                        files.config.display()
                    );
                };
                let current = text.as_deref().unwrap_or_default();
                (text.clone(), patch::repaired_originals(current, &id, relay_base_url).with_context(|| {
                    format!("Codex's provider `{id}` points at a local codex-helper but no switch state was found, and its original base_url is unknown: set it back by hand in {}", files.config.display())
                })?)
            }
        },
    };
    let mut state = SwitchState {
        version: 2,
        preset: plan.preset,
        responses_websocket: plan.responses_websocket,
        compaction: plan.compaction,
        originals,
        auth: previous.as_ref().and_then(|s| s.auth.clone()),
        codex_binary: previous.as_ref().and_then(|s| s.codex_binary.clone()),
    };
    // auth.json: decide everything (and refuse) before writing anything.
    let current_auth = CodexFiles::read(&files.auth)?;
    let ours = state.auth.as_ref().filter(|a| {
        current_auth
            .as_deref()
            .is_some_and(|c| auth::same_json(c, &a.patched))
    });
    let baseline = match ours {
        Some(patch) => patch.original.clone(),
        None => current_auth.clone(),
    };
    let new_auth: Option<Option<String>> = match plan.auth {
        AuthAction::Restore => ours.map(|patch| patch.original.clone()),
        AuthAction::EmptyFacade => Some(Some(auth::FACADE.to_string())),
        AuthAction::ChatgptMode => {
            let Some(login) = baseline.as_deref() else {
                bail!(
                    "chatgpt-bridge needs a ChatGPT login in {}: run `codex login` first",
                    files.auth.display()
                );
            };
            let patched = auth::chatgpt_mode(login).map_err(|missing| {
                anyhow::anyhow!(
                    "chatgpt-bridge needs a complete ChatGPT login state in {}; missing: {}. Sign in with ChatGPT (`codex login`) first.",
                    files.auth.display(),
                    missing.join(", ")
                )
            })?;
            Some(Some(patched))
        }
    };
    state.auth = match (&plan.auth, &new_auth) {
        (AuthAction::Restore, _) => None,
        (_, Some(Some(patched))) => Some(AuthPatch {
            original: baseline.clone(),
            patched: patched.clone(),
        }),
        _ => state.auth.clone(),
    };

    let new_config = patch::switch_on(base.as_deref(), plan, base_url, &mut state.originals)?;
    let config_changed = text.as_deref() != Some(new_config.as_str());
    let auth_changed = match &new_auth {
        Some(new) => !match (new, &current_auth) {
            (Some(n), Some(c)) => auth::same_json(n, c),
            (None, None) => true,
            _ => false,
        },
        None => false,
    };

    ensure_writable([
        Some(files.state.as_path()),
        config_changed.then_some(files.config.as_path()),
        auth_changed.then_some(files.auth.as_path()),
    ])?;
    // The state first, so every change below can be undone even after a crash.
    let state_json = serde_json::to_string_pretty(&state)?;
    write_private(&files.state, &state_json)?;
    if config_changed {
        text::write(&files.config, style, &new_config, SHARED)?;
    }
    if auth_changed {
        match new_auth.flatten() {
            Some(text) => write_private(&files.auth, &text)?,
            None => remove(&files.auth)?,
        }
    }
    let provider = state.originals.redirect.provider_id().to_string();
    let mut message = format!(
        "Codex now talks to codex-helper at {base_url} with preset {} (provider `{provider}` redirected",
        plan.preset
    );
    message.push_str(match state.originals.redirect {
        Redirect::Provider { .. } => " in place, so its threads stay listed)",
        Redirect::BuiltinOpenai { .. } => " through openai_base_url, so its threads stay listed)",
        Redirect::HelperTable => ")",
    });
    if plan.responses_websocket {
        message.push_str(" and the Responses WebSocket transport");
    }
    message.push_str(". Restart running Codex sessions to pick it up.");
    Ok(SwitchReport {
        preset: Some(plan.preset),
        redirected_provider: Some(provider),
        config_changed,
        auth_changed,
        message,
        note: patch::history_note(&state.originals),
    })
}

/// Records in the switch state which Codex binary the proxy asks for the catalog (nothing
/// happens when Codex is not switched on: there is no state to record it in).
pub fn record_codex_binary(files: &CodexFiles, binary: &CodexBinary) -> anyhow::Result<()> {
    let Some(mut state) = files.state()? else {
        return Ok(());
    };
    if state.codex_binary.as_ref() == Some(binary) {
        return Ok(());
    }
    state.codex_binary = Some(binary.clone());
    write_private(&files.state, &serde_json::to_string_pretty(&state)?)
}

/// Puts back what `switch on` changed. Without a switch state there is nothing to undo.
pub fn switch_off(files: &CodexFiles) -> anyhow::Result<SwitchReport> {
    let Some(state) = files.state()? else {
        return Ok(SwitchReport {
            preset: None,
            redirected_provider: None,
            config_changed: false,
            auth_changed: false,
            message: "Codex is not switched to codex-helper (no switch state); nothing to undo."
                .into(),
            note: None,
        });
    };
    // Decide everything, and check the files are writable, before changing any.
    let (style, text) = text::read(&files.config)?;
    let tagged = threads_tagged_codex_proxy(files, &state.originals);
    // `None`: config.toml stays as it is; `Some(None)`: it goes (it did not exist before).
    let restored = match &text {
        Some(text) => match patch::switch_off(text, &state.originals, tagged)? {
            Some(restored) if &restored == text => None,
            restored => Some(restored),
        },
        None => None,
    };
    // auth.json goes back only while it still holds what the helper wrote.
    let auth_is_ours = match &state.auth {
        Some(patch) => CodexFiles::read(&files.auth)?
            .is_some_and(|current| auth::same_json(&current, &patch.patched)),
        None => false,
    };
    ensure_writable([
        restored.is_some().then_some(files.config.as_path()),
        auth_is_ours.then_some(files.auth.as_path()),
    ])?;

    let config_changed = restored.is_some();
    match restored {
        Some(Some(restored)) => text::write(&files.config, style, &restored, SHARED)?,
        Some(None) => remove(&files.config)?,
        None => {}
    }
    let mut auth_changed = false;
    let mut note = String::new();
    if let Some(patch) = &state.auth {
        if auth_is_ours {
            match &patch.original {
                Some(original) => write_private(&files.auth, original)?,
                None => remove(&files.auth)?,
            }
            auth_changed = true;
        } else {
            note = format!(
                " {} changed since the switch, so it was left as it is.",
                files.auth.display()
            );
        }
    }
    remove(&files.state)?;
    let alias_note = tagged.then(|| {
        let own = patch::original_provider(&state.originals);
        format!(
            "Codex has threads made through codex-helper's own provider `{PROVIDER_ID}`; it is kept as an alias of your provider so they stay resumable: \
             `codex resume -c model_provider={PROVIDER_ID} ID`. To list them under `{own}` for good: `codex-helper session retag --from {PROVIDER_ID} --to {own}`."
        )
    });
    Ok(SwitchReport {
        preset: Some(state.preset),
        redirected_provider: Some(state.originals.redirect.provider_id().to_string()),
        note: alias_note,
        config_changed,
        auth_changed,
        message: format!(
            "Codex's own settings are back.{note} Restart running Codex sessions to pick it up."
        ),
    })
}

/// `switch status`.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchStatus {
    /// Codex's config points at a helper on this machine.
    pub enabled: bool,
    /// From the switch state, else inferred from the files.
    pub preset: Option<Preset>,
    pub preset_inferred: bool,
    /// The provider id Codex uses and the helper redirected (`openai` for the built-in one).
    pub redirected_provider: Option<String>,
    pub base_url: Option<String>,
    pub provider_name: Option<String>,
    pub requires_openai_auth: Option<bool>,
    pub supports_websockets: Option<bool>,
    pub remote_compaction_v2: Option<bool>,
    pub has_switch_state: bool,
    /// Where the files and the state disagree, and what to do.
    pub drift: Vec<String>,
}

pub fn status(files: &CodexFiles) -> anyhow::Result<SwitchStatus> {
    let text = text::read(&files.config)?.1.unwrap_or_default();
    let state = files.state()?;
    let doc: toml::Table = toml::from_str(&text).unwrap_or_default();
    // With a state, the state says which provider is redirected; without, the files suggest.
    let redirected = match &state {
        Some(s) => {
            let id = s.originals.redirect.provider_id();
            let url = if id == redirect::BUILTIN_OPENAI {
                doc.get("openai_base_url")
            } else {
                doc.get("model_providers")
                    .and_then(|p| p.get(id))
                    .and_then(|t| t.get("base_url"))
            };
            let in_force = doc
                .get("model_provider")
                .and_then(|v| v.as_str())
                .unwrap_or(redirect::BUILTIN_OPENAI)
                == id;
            // The local helper (loopback), or the team relay `switch on --team-url` wrote.
            let ours = |u: &str| {
                crate::net::is_loopback_url(u) || s.originals.team_url.as_deref() == Some(u)
            };
            (in_force && url.and_then(|u| u.as_str()).is_some_and(ours)).then(|| id.to_string())
        }
        None => redirected_provider(&text, DEFAULT_HELPER_URL),
    };
    let builtin = redirected.as_deref() == Some(redirect::BUILTIN_OPENAI);
    let proxy = redirected.as_deref().and_then(|id| {
        doc.get("model_providers")
            .and_then(|p| p.get(id))
            .and_then(|t| t.as_table())
    });
    let get_str = |key: &str| {
        proxy
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let get_bool = |key: &str| proxy.and_then(|t| t.get(key)).and_then(|v| v.as_bool());
    let base_url = if builtin {
        doc.get("openai_base_url")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    } else {
        get_str("base_url")
    };
    // The built-in provider is OpenAI's, by name and behaviour.
    let provider_name = if builtin {
        Some("OpenAI".to_string())
    } else {
        get_str("name")
    };
    let enabled = redirected.is_some();
    let auth_text = CodexFiles::read(&files.auth)?;
    let inferred = enabled.then(|| {
        if get_bool("requires_openai_auth") == Some(true) {
            Preset::ChatgptBridge
        } else if provider_name.as_deref() == Some("OpenAI") {
            if auth_text
                .as_deref()
                .is_some_and(|a| auth::same_json(a, auth::FACADE))
            {
                Preset::OfficialImagegen
            } else {
                Preset::OfficialRelay
            }
        } else if auth_text
            .as_deref()
            .is_some_and(|a| auth::same_json(a, auth::FACADE))
        {
            Preset::ImagegenBridge
        } else {
            Preset::Default
        }
    });
    let mut drift = Vec::new();
    match (&state, enabled) {
        (None, true) => drift.push("Codex points at codex-helper but there is no switch state: `switch off` cannot restore the original settings. `serve` repairs this at start-up when the helper has the relay; otherwise set the provider's base_url (or model_provider) back by hand.".into()),
        (Some(s), false) => drift.push(format!("a switch state ({}) exists but Codex no longer points at codex-helper: run `codex-helper switch off` to clean up, or `switch on` again", s.preset)),
        (Some(s), true) => {
            if inferred.is_some_and(|p| p.is_official() != s.preset.is_official()) {
                drift.push(format!("the provider name no longer matches preset {}: run `codex-helper switch on --preset {}` to repair", s.preset, s.preset));
            }
            if let Some(patch) = &s.auth {
                if !auth_text.as_deref().is_some_and(|a| auth::same_json(a, &patch.patched)) {
                    drift.push(format!("{} changed since the switch; `switch off` will leave it as it is", files.auth.display()));
                }
            }
        }
        (None, false) => {}
    }
    let features = doc.get("features").and_then(|f| f.as_table());
    Ok(SwitchStatus {
        enabled,
        preset: state.as_ref().map(|s| s.preset).or(inferred),
        preset_inferred: state.is_none() && inferred.is_some(),
        redirected_provider: redirected.clone(),
        base_url,
        provider_name,
        requires_openai_auth: get_bool("requires_openai_auth"),
        supports_websockets: get_bool("supports_websockets"),
        remote_compaction_v2: features
            .and_then(|f| f.get("remote_compaction_v2"))
            .and_then(|v| v.as_bool()),
        has_switch_state: state.is_some(),
        drift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codex::auth::tests::chatgpt_login;

    const BASE: &str = "http://127.0.0.1:3211/v1";
    const CONFIG: &str = "# mine\nmodel = \"gpt-5.1\"\nmodel_provider = \"relay\"\n\n[model_providers.relay]\nbase_url = \"https://relay.example/v1\"\nenv_key = \"K\"\n";

    fn home(config: Option<&str>, auth: Option<&str>) -> (tempfile::TempDir, CodexFiles) {
        let dir = tempfile::tempdir().unwrap();
        let files = CodexFiles::new(dir.path());
        if let Some(c) = config {
            std::fs::write(&files.config, c).unwrap();
        }
        if let Some(a) = auth {
            std::fs::write(&files.auth, a).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&files.auth, std::fs::Permissions::from_mode(0o600))
                    .unwrap();
            }
        }
        (dir, files)
    }

    fn plan(preset: Preset) -> PatchPlan {
        PatchPlan::new(preset, false, Compaction::Auto).unwrap()
    }

    fn read(path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    #[test]
    fn a_team_switch_is_reported_on_and_undone_exactly() {
        let team = "https://codex.team.example/v1";
        let (_dir, files) = home(Some(CONFIG), None);
        let plan = plan(Preset::Default).with_team_key("TEAM_KEY").unwrap();
        switch_on(&files, &plan, team).unwrap();
        let status = status(&files).unwrap();
        assert!(status.enabled, "{status:?}");
        assert_eq!(status.base_url.as_deref(), Some(team));
        assert!(status.drift.is_empty(), "{:?}", status.drift);
        let config = read(&files.config).unwrap();
        assert!(!config.contains("request_max_retries"), "{config}");
        switch_off(&files).unwrap();
        assert_eq!(read(&files.config).as_deref(), Some(CONFIG));
    }

    #[test]
    fn every_preset_round_trips_config_and_auth_byte_for_byte() {
        let login = chatgpt_login();
        for preset in Preset::ALL {
            let (_dir, files) = home(Some(CONFIG), Some(&login));
            switch_on(&files, &plan(preset), BASE).unwrap();
            assert!(
                redirected_provider(&read(&files.config).unwrap(), BASE).is_some(),
                "{preset}"
            );
            let auth_now = read(&files.auth).unwrap();
            match preset {
                Preset::ImagegenBridge | Preset::OfficialImagegen => assert_eq!(auth_now, "{}"),
                Preset::ChatgptBridge => assert!(auth_now.contains("\"auth_mode\": \"chatgpt\"")),
                _ => assert_eq!(auth_now, login),
            }
            let status = status(&files).unwrap();
            assert_eq!(
                (status.enabled, status.preset, status.has_switch_state),
                (true, Some(preset), true)
            );
            assert_eq!(
                status.redirected_provider.as_deref(),
                Some("relay"),
                "in place"
            );
            assert_eq!(status.base_url.as_deref(), Some(BASE));
            assert!(status.drift.is_empty(), "{:?}", status.drift);
            switch_off(&files).unwrap();
            assert_eq!(read(&files.config).as_deref(), Some(CONFIG), "{preset}");
            assert_eq!(
                read(&files.auth).as_deref(),
                Some(login.as_str()),
                "{preset}"
            );
            assert!(!files.state.exists());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(
                    std::fs::metadata(&files.auth).unwrap().permissions().mode() & 0o777,
                    0o600,
                    "auth.json stays 0600"
                );
            }
        }
    }

    #[test]
    fn moving_between_presets_keeps_the_real_originals() {
        let login = chatgpt_login();
        let (_dir, files) = home(Some(CONFIG), Some(&login));
        switch_on(&files, &plan(Preset::OfficialImagegen), BASE).unwrap();
        // From the {} facade to chatgpt-bridge: the real login is patched, not `{}`.
        switch_on(&files, &plan(Preset::ChatgptBridge), BASE).unwrap();
        assert!(read(&files.auth).unwrap().contains("refresh_token"));
        switch_on(&files, &plan(Preset::OfficialRelay), BASE).unwrap();
        assert_eq!(
            read(&files.auth).as_deref(),
            Some(login.as_str()),
            "restore presets put the login back"
        );
        switch_off(&files).unwrap();
        assert_eq!(read(&files.config).as_deref(), Some(CONFIG));
        assert_eq!(read(&files.auth).as_deref(), Some(login.as_str()));
    }

    #[test]
    fn absent_files_come_back_absent() {
        let (_dir, files) = home(None, None);
        switch_on(&files, &plan(Preset::ImagegenBridge), BASE).unwrap();
        assert_eq!(read(&files.auth).as_deref(), Some("{}"));
        switch_off(&files).unwrap();
        assert!(!files.config.exists() && !files.auth.exists() && !files.state.exists());
    }

    #[test]
    fn refusals_write_nothing() {
        let api_key = r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-test"}"#;
        let (_dir, files) = home(Some(CONFIG), Some(api_key));
        let err = switch_on(&files, &plan(Preset::ChatgptBridge), BASE)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("complete ChatGPT login state") && err.contains("tokens.access_token"),
            "{err}"
        );
        assert!(!err.contains("sk-test"), "no secret in the message");
        assert_eq!(read(&files.config).as_deref(), Some(CONFIG));
        assert_eq!(read(&files.auth).as_deref(), Some(api_key));
        assert!(!files.state.exists());

        // Pointed at a helper without a state: the original is unknown, so refuse.
        let (_dir, files) = home(Some(CONFIG), None);
        switch_on(&files, &plan(Preset::Default), BASE).unwrap();
        std::fs::remove_file(&files.state).unwrap();
        let err = switch_on(&files, &plan(Preset::Default), BASE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no switch state was found"), "{err}");
        assert!(status(&files).unwrap().drift[0].contains("no switch state"));
    }

    #[test]
    fn auth_changed_by_the_user_is_left_alone() {
        let login = chatgpt_login();
        let (_dir, files) = home(Some(CONFIG), Some(&login));
        switch_on(&files, &plan(Preset::ImagegenBridge), BASE).unwrap();
        std::fs::write(
            &files.auth,
            r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-new"}"#,
        )
        .unwrap();
        assert!(
            status(&files)
                .unwrap()
                .drift
                .iter()
                .any(|d| d.contains("changed since the switch"))
        );
        let report = switch_off(&files).unwrap();
        assert!(report.message.contains("left as it is"));
        assert!(read(&files.auth).unwrap().contains("sk-new"));
        assert_eq!(read(&files.config).as_deref(), Some(CONFIG));
    }

    #[test]
    fn start_up_repairs_a_patch_whose_state_was_lost() {
        let (_dir, files) = home(Some(CONFIG), None);
        switch_on(&files, &plan(Preset::Default), BASE).unwrap();
        std::fs::remove_file(&files.state).unwrap();
        let unknown = |_: &str| None;
        let err =
            switch_on_repairing(&files, &plan(Preset::OfficialRelay), BASE, &unknown).unwrap_err();
        assert!(
            format!("{err:#}").contains("original base_url is unknown"),
            "{err:#}"
        );
        let known = |id: &str| (id == "relay").then(|| "https://relay.example/v1".to_string());
        switch_on_repairing(&files, &plan(Preset::OfficialRelay), BASE, &known).unwrap();
        assert_eq!(status(&files).unwrap().preset, Some(Preset::OfficialRelay));
        switch_off(&files).unwrap();
        let text = read(&files.config).unwrap();
        assert!(
            text.contains("base_url = \"https://relay.example/v1\"")
                && !text.contains("127.0.0.1")
                && !text.contains(patch::PLACEHOLDER_TOKEN),
            "the relay is back, the helper's keys are gone: {text}"
        );
        assert!(text.contains("model_provider = \"relay\""), "{text}");
    }

    #[test]
    fn the_built_in_provider_is_redirected_only_by_presets_that_fit_it() {
        let builtin = "model = \"gpt-5.1\"\n";
        let (_dir, files) = home(Some(builtin), None);
        let report = switch_on(&files, &plan(Preset::OfficialRelay), BASE).unwrap();
        assert_eq!(report.redirected_provider.as_deref(), Some("openai"));
        assert!(report.note.is_none());
        assert_eq!(
            read(&files.config).unwrap(),
            format!("model = \"gpt-5.1\"\nopenai_base_url = \"{BASE}\"\n")
        );
        assert_eq!(
            status(&files).unwrap().redirected_provider.as_deref(),
            Some("openai")
        );
        // Moving to a preset the built-in provider cannot have: the helper's own table, said.
        let report = switch_on(&files, &plan(Preset::Default), BASE).unwrap();
        assert_eq!(report.redirected_provider.as_deref(), Some(PROVIDER_ID));
        assert!(report.note.unwrap().contains("session retag"));
        let text = read(&files.config).unwrap();
        assert!(
            !text.contains("openai_base_url") && text.contains("model_provider = \"codex_proxy\""),
            "{text}"
        );
        switch_off(&files).unwrap();
        assert_eq!(read(&files.config).unwrap(), builtin);
    }

    #[test]
    fn start_up_repairs_the_older_codex_proxy_shape() {
        let mut originals = patch::helper_table_originals(Some(CONFIG)).unwrap();
        let legacy =
            patch::switch_on(Some(CONFIG), &plan(Preset::Default), BASE, &mut originals).unwrap();
        let (_dir, files) = home(Some(&legacy), None);
        let unknown = |_: &str| None;
        switch_on_repairing(&files, &plan(Preset::OfficialRelay), BASE, &unknown).unwrap();
        switch_off(&files).unwrap();
        let text = read(&files.config).unwrap();
        assert!(
            !text.contains("codex_proxy") && !text.contains("model_provider ="),
            "the helper's provider is gone: {text}"
        );
        assert!(text.contains("[model_providers.relay]"), "{text}");
    }

    #[test]
    fn crlf_and_bom_come_back_byte_for_byte() {
        let crlf = CONFIG.replace('\n', "\r\n");
        for original in [
            crlf.clone(),
            format!("\u{feff}{CONFIG}"),
            format!("\u{feff}{crlf}"),
        ] {
            let (_dir, files) = home(Some(&original), None);
            switch_on(&files, &plan(Preset::OfficialRelay), BASE).unwrap();
            let on = read(&files.config).unwrap();
            assert_eq!(on.starts_with('\u{feff}'), original.starts_with('\u{feff}'));
            if original.contains('\r') {
                assert_eq!(
                    on.matches('\n').count(),
                    on.matches("\r\n").count(),
                    "{on:?}"
                );
            }
            assert!(status(&files).unwrap().enabled, "{on:?}");
            switch_off(&files).unwrap();
            assert_eq!(read(&files.config).unwrap(), original);
        }
    }

    #[cfg(unix)]
    #[test]
    fn linked_files_are_edited_and_restored_through_their_links() {
        let login = chatgpt_login();
        let (dir, files) = home(None, None);
        let dotfiles = dir.path().join("dotfiles");
        std::fs::create_dir(&dotfiles).unwrap();
        std::fs::write(dotfiles.join("config.toml"), CONFIG).unwrap();
        std::fs::write(dotfiles.join("auth.json"), &login).unwrap();
        std::os::unix::fs::symlink("dotfiles/config.toml", &files.config).unwrap();
        std::os::unix::fs::symlink("dotfiles/auth.json", &files.auth).unwrap();
        let is_link = |p: &Path| {
            std::fs::symlink_metadata(p)
                .unwrap()
                .file_type()
                .is_symlink()
        };

        switch_on(&files, &plan(Preset::ImagegenBridge), BASE).unwrap();
        assert!(is_link(&files.config) && is_link(&files.auth));
        assert_eq!(read(&dotfiles.join("auth.json")).as_deref(), Some("{}"));
        assert!(redirected_provider(&read(&dotfiles.join("config.toml")).unwrap(), BASE).is_some());
        switch_off(&files).unwrap();
        assert!(is_link(&files.config) && is_link(&files.auth));
        assert_eq!(read(&dotfiles.join("config.toml")).as_deref(), Some(CONFIG));
        assert_eq!(read(&dotfiles.join("auth.json")), Some(login));

        // A dangling link: the target is created, then removed again; the link stays.
        std::fs::remove_file(dotfiles.join("config.toml")).unwrap();
        switch_on(&files, &plan(Preset::Default), BASE).unwrap();
        assert!(dotfiles.join("config.toml").exists());
        switch_off(&files).unwrap();
        assert!(is_link(&files.config) && !dotfiles.join("config.toml").exists());
    }

    #[cfg(unix)]
    #[test]
    fn read_only_files_are_refused_before_anything_is_written() {
        use std::os::unix::fs::PermissionsExt;
        let read_only =
            |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o444)).unwrap();
        let (_dir, files) = home(Some(CONFIG), None);
        read_only(&files.config);
        let err = format!(
            "{:#}",
            switch_on(&files, &plan(Preset::Default), BASE).unwrap_err()
        );
        assert!(
            err.contains("read-only") && err.contains("chmod u+w"),
            "{err}"
        );
        assert!(!files.state.exists(), "no state left behind");
        assert_eq!(read(&files.config).as_deref(), Some(CONFIG));

        // auth.json read-only: neither the state nor config.toml is written.
        let (_dir, files) = home(Some(CONFIG), Some(&chatgpt_login()));
        read_only(&files.auth);
        assert!(switch_on(&files, &plan(Preset::ImagegenBridge), BASE).is_err());
        assert!(!files.state.exists());
        assert_eq!(read(&files.config).as_deref(), Some(CONFIG));

        // Made read-only while switched on: `switch off` changes nothing and can be rerun.
        let (_dir, files) = home(Some(CONFIG), Some(&chatgpt_login()));
        switch_on(&files, &plan(Preset::ImagegenBridge), BASE).unwrap();
        let on = read(&files.config);
        read_only(&files.auth);
        assert!(switch_off(&files).is_err());
        assert_eq!(read(&files.config), on);
        assert!(files.state.exists());
    }

    #[test]
    fn switch_off_without_state_touches_nothing() {
        let (_dir, files) = home(Some(CONFIG), None);
        let report = switch_off(&files).unwrap();
        assert!(report.message.contains("nothing to undo"));
        assert_eq!(read(&files.config).as_deref(), Some(CONFIG));
    }
}
