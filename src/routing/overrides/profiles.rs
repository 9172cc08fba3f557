//! Profiles (`[codex.profiles.<name>]`): named sets of model, reasoning effort and service
//! tier. An operator applies one to a session from the console; `default_profile` fills in
//! what a request leaves out.
//!
//! The default profile never replaces what Codex chose: the original codex-helper (0.16) bound
//! every new session to it and so rewrote the model and effort the user had picked, which its
//! next release undid. Only an explicit act (a profile or an override applied to a session)
//! changes what the request says.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::values::{Overrides, check_value};
use crate::config::ConfigError;
use crate::config::model::{CodexSection, ProfileConfig};

/// How deep `extends` may chain (a config is not a program).
const EXTENDS_MAX: usize = 16;

/// The profiles of the config in force, resolved (`extends` followed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    /// `default_profile`, known to name one of `by_name`.
    pub default: Option<String>,
    by_name: BTreeMap<String, Overrides>,
}

/// One profile as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileView {
    pub name: String,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
    pub service_tier: Option<String>,
}

impl Profiles {
    pub fn get(&self, name: &str) -> Option<&Overrides> {
        self.by_name.get(name)
    }

    /// The default profile's values, if there is one.
    pub fn default_values(&self) -> Option<&Overrides> {
        self.default.as_deref().and_then(|name| self.get(name))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn views(&self) -> Vec<ProfileView> {
        self.by_name
            .iter()
            .map(|(name, o)| ProfileView {
                name: name.clone(),
                model: o.model.clone(),
                reasoning_effort: o.reasoning_effort.clone(),
                service_tier: o.service_tier.clone(),
            })
            .collect()
    }
}

/// Resolves `[codex.profiles]` and checks `default_profile`; errors name the key to fix.
pub fn compile(codex: &CodexSection, file: &Path) -> Result<Profiles, ConfigError> {
    let mut by_name = BTreeMap::new();
    for name in codex.profiles.keys() {
        let resolved = resolve(&codex.profiles, name)
            .map_err(|message| ConfigError::new(file, format!("codex.profiles.{name}"), message))?;
        by_name.insert(name.clone(), resolved);
    }
    if let Some(default) = &codex.default_profile
        && !by_name.contains_key(default)
    {
        return Err(ConfigError::new(
            file,
            "codex.default_profile",
            format!("names no profile: `{default}`; {}", known(&codex.profiles)),
        ));
    }
    Ok(Profiles {
        default: codex.default_profile.clone(),
        by_name,
    })
}

/// One profile with its `extends` chain applied (the nearest value wins).
fn resolve(all: &BTreeMap<String, ProfileConfig>, name: &str) -> Result<Overrides, String> {
    let mut chain: Vec<&str> = vec![name];
    let mut resolved = Overrides::default();
    let mut current = &all[name];
    loop {
        let fill = |slot: &mut Option<String>, value: &Option<String>, key: &str| {
            if slot.is_none()
                && let Some(value) = value
            {
                check_value(key, value)?;
                *slot = Some(value.clone());
            }
            Ok::<_, String>(())
        };
        fill(&mut resolved.model, &current.model, "model")?;
        fill(
            &mut resolved.reasoning_effort,
            &current.reasoning_effort,
            "reasoning_effort",
        )?;
        fill(
            &mut resolved.service_tier,
            &current.service_tier,
            "service_tier",
        )?;
        let Some(parent) = &current.extends else {
            return Ok(resolved);
        };
        if chain.contains(&parent.as_str()) {
            chain.push(parent);
            return Err(format!(
                "`extends` goes round in a circle: {}",
                chain.join(" → ")
            ));
        }
        if chain.len() >= EXTENDS_MAX {
            return Err(format!("`extends` chains more than {EXTENDS_MAX} profiles"));
        }
        current = all
            .get(parent)
            .ok_or_else(|| format!("extends `{parent}`, which is not a profile; {}", known(all)))?;
        chain.push(parent);
    }
}

fn known(all: &BTreeMap<String, ProfileConfig>) -> String {
    if all.is_empty() {
        "there are no [codex.profiles] in the config".to_string()
    } else {
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        format!("the profiles are: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codex(text: &str) -> CodexSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn extends_fills_what_a_profile_leaves_out() {
        let section = codex(
            r#"
default_profile = "deep"
[profiles.fast]
model = "gpt-5.1-mini"
reasoning_effort = "low"
service_tier = "priority"
[profiles.deep]
extends = "fast"
reasoning_effort = "xhigh"
"#,
        );
        let profiles = compile(&section, Path::new("/c.toml")).unwrap();
        let deep = profiles.get("deep").unwrap();
        assert_eq!(deep.model.as_deref(), Some("gpt-5.1-mini"));
        assert_eq!(deep.reasoning_effort.as_deref(), Some("xhigh"));
        assert_eq!(deep.service_tier.as_deref(), Some("priority"));
        assert_eq!(deep.route_target, None);
        assert_eq!(profiles.default_values(), Some(deep));
        assert_eq!(profiles.names().collect::<Vec<_>>(), ["deep", "fast"]);
    }

    #[test]
    fn wrong_profiles_name_the_key_to_fix() {
        let circle = codex("[profiles.a]\nextends = \"b\"\n[profiles.b]\nextends = \"a\"\n");
        let err = compile(&circle, Path::new("/c.toml")).unwrap_err();
        assert_eq!(err.key, "codex.profiles.a");
        assert!(err.message.contains("a → b → a"), "{}", err.message);

        let missing = codex("[profiles.a]\nextends = \"nope\"\n");
        let err = compile(&missing, Path::new("/c.toml")).unwrap_err();
        assert!(err.message.contains("`nope`") && err.message.contains("profiles are: a"));

        let default = codex("default_profile = \"x\"\n[profiles.a]\nmodel = \"m\"\n");
        let err = compile(&default, Path::new("/c.toml")).unwrap_err();
        assert_eq!(err.key, "codex.default_profile");
        assert!(err.message.contains("`x`"), "{}", err.message);

        let empty = codex("[profiles.a]\nmodel = \"\"\n");
        let err = compile(&empty, Path::new("/c.toml")).unwrap_err();
        assert!(err.message.contains("model"), "{}", err.message);
    }

    #[test]
    fn a_self_reference_and_no_profiles_are_handled() {
        let own = codex("[profiles.a]\nextends = \"a\"\n");
        assert!(compile(&own, Path::new("/c.toml")).is_err());
        let none = compile(&CodexSection::default(), Path::new("/c.toml")).unwrap();
        assert!(none.is_empty() && none.default_values().is_none());
    }
}
