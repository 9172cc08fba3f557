//! `auth.json`: checking a ChatGPT login, the chatgpt-bridge patch, and the `{}` facade.
//!
//! Pure: text in, text or a list of what is missing out. Comparisons are by JSON value, so a
//! file re-formatted by Codex still counts as the one the helper wrote.

use base64::Engine;
use serde_json::{Map, Value};

/// What the imagegen presets write: an object with neither `auth_mode` nor a key makes Codex
/// take the ChatGPT-login path and offer hosted image generation.
pub const FACADE: &str = "{}";

/// Whether two auth.json texts hold the same JSON value.
pub fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Checks that `text` is a complete ChatGPT login. On failure, lists what is missing, in
/// dotted paths, so the message can say exactly what to fix.
pub fn check_chatgpt_login(text: &str) -> Result<(), Vec<String>> {
    let Ok(Value::Object(auth)) = serde_json::from_str::<Value>(text) else {
        return Err(vec!["a JSON object".into()]);
    };
    let tokens = auth.get("tokens").and_then(Value::as_object);
    let token = |name: &str| {
        tokens
            .and_then(|t| t.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let mut missing = Vec::new();
    let claims = token("id_token").and_then(jwt_claims);
    if claims.is_none() {
        missing.push("tokens.id_token (a JWT)".to_string());
    }
    let email = claims.as_ref().and_then(|c| {
        c.get("email").or_else(|| {
            c.get("https://api.openai.com/profile")
                .and_then(|p| p.get("email"))
        })
    });
    if claims.is_some() && email.and_then(Value::as_str).is_none_or(str::is_empty) {
        missing.push("an email in tokens.id_token".into());
    }
    for name in ["access_token", "refresh_token"] {
        if token(name).is_none() {
            missing.push(format!("tokens.{name}"));
        }
    }
    if auth.get("last_refresh").is_none_or(Value::is_null) {
        missing.push("last_refresh".into());
    }
    let account_in_claims = claims
        .as_ref()
        .and_then(|c| c.get("https://api.openai.com/auth"))
        .and_then(|a| a.get("chatgpt_account_id"))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if token("account_id").is_none() && !account_in_claims {
        missing.push("tokens.account_id".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// The JSON payload of a JWT (the signature is not checked; Codex does not either).
fn jwt_claims(jwt: &str) -> Option<Map<String, Value>> {
    let mut parts = jwt.split('.');
    let (_, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if payload.is_empty() || signature.is_empty() || parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The chatgpt-bridge patch: `auth_mode = "chatgpt"` and `OPENAI_API_KEY = null`, every other
/// field kept. Refuses anything but a complete ChatGPT login (an API-key login is never turned
/// into a fake ChatGPT one).
pub fn chatgpt_mode(text: &str) -> Result<String, Vec<String>> {
    check_chatgpt_login(text)?;
    let mut auth: Map<String, Value> =
        serde_json::from_str(text).map_err(|_| vec!["a JSON object".to_string()])?;
    auth.insert("auth_mode".into(), Value::String("chatgpt".into()));
    auth.insert("OPENAI_API_KEY".into(), Value::Null);
    Ok(serde_json::to_string_pretty(&Value::Object(auth)).expect("a map serialises"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ChatGPT login with fake tokens, as Codex writes it.
    pub fn chatgpt_login() -> String {
        let claims = serde_json::json!({"email":"me@example.com","exp":4102444800u64,
            "https://api.openai.com/auth":{"chatgpt_plan_type":"plus","chatgpt_account_id":"acct-1"}});
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
        serde_json::to_string_pretty(&serde_json::json!({
            "auth_mode": "chatgpt", "OPENAI_API_KEY": null,
            "tokens": {"id_token": format!("eyJhbGciOiJub25lIn0.{payload}.sig"), "access_token": "at", "refresh_token": "rt", "account_id": "acct-1"},
            "last_refresh": "2026-11-28T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_complete_login_is_patched_keeping_every_field() {
        let login = chatgpt_login().replace(
            "\"auth_mode\": \"chatgpt\",",
            "\"auth_mode\": \"apikey\", \"extra\": 1,",
        );
        let patched = chatgpt_mode(&login).unwrap();
        let value: Value = serde_json::from_str(&patched).unwrap();
        assert_eq!(value["auth_mode"], "chatgpt");
        assert_eq!(value["OPENAI_API_KEY"], Value::Null);
        assert_eq!(value["extra"], 1);
        assert_eq!(value["tokens"]["refresh_token"], "rt");
    }

    #[test]
    fn incomplete_or_api_key_logins_are_refused_with_what_is_missing() {
        let api_key = r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-test"}"#;
        let missing = chatgpt_mode(api_key).unwrap_err();
        assert_eq!(
            missing,
            [
                "tokens.id_token (a JWT)",
                "tokens.access_token",
                "tokens.refresh_token",
                "last_refresh",
                "tokens.account_id"
            ]
        );
        let no_refresh: Value = serde_json::from_str(&chatgpt_login()).unwrap();
        let mut no_refresh = no_refresh.as_object().unwrap().clone();
        no_refresh.remove("last_refresh");
        no_refresh["tokens"]["account_id"] = Value::Null;
        // The account id can come from the id_token's claims instead.
        assert_eq!(
            check_chatgpt_login(&Value::Object(no_refresh).to_string()).unwrap_err(),
            ["last_refresh"]
        );
        assert!(check_chatgpt_login("not json").is_err());
    }

    #[test]
    fn json_equality_ignores_formatting() {
        assert!(same_json("{}", "{\n}\n"));
        assert!(same_json(FACADE, "{ }"));
        assert!(!same_json("{}", "{\"a\":1}"));
    }
}
