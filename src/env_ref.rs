//! Settings that hold a secret-bearing value (a database or Redis URL with a password) either
//! inline or as `env:NAME`, naming an environment variable that holds it, so the secret need
//! not sit in the config file. A leaf: `config` checks such settings at load, and the modules
//! that use them read them.

/// What `env:` is followed by.
const ENV_PREFIX: &str = "env:";

/// A setting's value, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvRef<'a> {
    /// The value itself (trimmed).
    Inline(&'a str),
    /// `env:NAME`: the value is in environment variable `NAME`.
    Env(&'a str),
}

impl<'a> EnvRef<'a> {
    /// Splits `setting`; an `env:` must be followed by a variable's name (`example` is one,
    /// for the message). Errors never quote the setting.
    pub fn split(setting: &'a str, example: &str) -> anyhow::Result<Self> {
        let setting = setting.trim();
        let Some(var) = setting.strip_prefix(ENV_PREFIX) else {
            return Ok(Self::Inline(setting));
        };
        let var = var.trim();
        let valid = var
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            anyhow::bail!(
                "`env:` must be followed by an environment variable's name (letters, digits and _), e.g. env:{example}"
            );
        }
        Ok(Self::Env(var))
    }
}

/// Environment variable `var` through `env`, trimmed; `None` when unset or blank.
pub fn read(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_or_a_variable_name() {
        assert_eq!(
            EnvRef::split(" redis://h ", "X").unwrap(),
            EnvRef::Inline("redis://h")
        );
        assert_eq!(
            EnvRef::split("env: TEAM_1 ", "X").unwrap(),
            EnvRef::Env("TEAM_1")
        );
        for bad in ["env:", "env:1X", "env:A-B", "env:pw secret"] {
            let err = EnvRef::split(bad, "EXAMPLE_URL").unwrap_err().to_string();
            assert!(
                err.contains("env:EXAMPLE_URL") && !err.contains("secret"),
                "{bad}: {err}"
            );
        }
        let env = |name: &str| (name == "SET").then(|| " v ".to_string());
        assert_eq!(read("SET", &env).as_deref(), Some("v"));
        assert_eq!(read("UNSET", &env), None);
        assert_eq!(read("BLANK", &|_| Some("  ".into())), None);
    }
}
