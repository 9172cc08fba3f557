//! Keys out of config text that is shown, not written: `config migrate` and
//! `config overwrite-from-codex` print a diff of the config, whose unchanged context lines
//! would otherwise carry inline relay keys and proxy passwords to the terminal (and to any
//! log a script keeps of it).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What a masked value becomes.
const MASK: &str = "[redacted]";

/// `name = "value"` (TOML) or `"name": "value"` (the original's JSON) for a key-holding name.
static SECRET_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(\b(?:auth_token|api_key|experimental_bearer_token|bearer_token|token|password|secret)"?\s*[=:]\s*)"(?:[^"\\]|\\.)*""#,
    )
    .expect("a valid pattern")
});

/// The password of a URL's user info (`scheme://user:password@host`).
static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(://[^:/@\s"']+:)[^@\s"'/]+@"#).expect("a valid pattern"));

/// `text` with every inline key value and URL password replaced by `[redacted]`.
pub fn mask_secrets(text: &str) -> Cow<'_, str> {
    let values = SECRET_VALUE.replace_all(text, format!("${{1}}\"{MASK}\""));
    match URL_PASSWORD.replace_all(&values, format!("${{1}}{MASK}@")) {
        Cow::Borrowed(_) => values,
        Cow::Owned(masked) => Cow::Owned(masked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_keys_and_proxy_passwords_are_masked_and_the_rest_kept() {
        let text = "[codex.providers.a]\nauth_token = \"sk-abc\"\napi_key=\"k\\\"q\"\n\
                    auth_token_env = \"VAR\"\nauth = { api_key = \"inner\" }\n\
                    outbound_proxy = \"http://user:pa55@proxy:8080\"\n\
                    experimental_bearer_token = \"tok\"\n{\"api_key\": \"json\"}\n";
        assert_eq!(
            mask_secrets(text),
            "[codex.providers.a]\nauth_token = \"[redacted]\"\napi_key=\"[redacted]\"\n\
             auth_token_env = \"VAR\"\nauth = { api_key = \"[redacted]\" }\n\
             outbound_proxy = \"http://user:[redacted]@proxy:8080\"\n\
             experimental_bearer_token = \"[redacted]\"\n{\"api_key\": \"[redacted]\"}\n"
        );
        let clean = "base_url = \"https://relay.example/v1\"\n";
        assert!(matches!(mask_secrets(clean), Cow::Borrowed(_)));
    }
}
