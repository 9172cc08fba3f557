//! Endpoint and header templates of usage providers: `{{base_url}}/user/balance`,
//! `New-Api-User: {{env:RELAY_USER}}`.
//!
//! One pass over the template, left to right; what a placeholder expands to is never scanned
//! again, so a value holding `{{` cannot loop or inject. A variable's own template is expanded
//! once, and may not name another variable. Errors name the placeholder, the variable or the
//! environment variable, never a value: a token or an env value must not reach a log line.

use std::collections::BTreeMap;

/// Longest template (and variable) accepted: endpoints and header values are short, and a
/// bound keeps a pasted blob from being expanded.
pub const MAX_TEMPLATE_LEN: usize = 4096;

/// Placeholder names the helper fills itself; a variable may not take one of them.
const BUILT_IN_NAMES: [&str; 9] = [
    "base_url",
    "baseUrl",
    "upstream_base_url",
    "upstreamBaseUrl",
    "apiKey",
    "accessToken",
    "token",
    "unix_now",
    "unix_now_ms",
];

/// What a template can refer to.
pub struct TemplateContext<'a> {
    /// The upstream's `base_url` as configured (e.g. `https://relay.example/v1`).
    pub upstream_base_url: &'a str,
    /// The token sent to the usage endpoint, if any.
    pub token: Option<&'a str>,
    /// The provider's `variables`.
    pub variables: &'a BTreeMap<String, String>,
    /// Environment lookup; [`process_env`] outside tests.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Wall clock, epoch ms ([`crate::time::now_ms`]).
    pub now_ms: u64,
}

/// The process environment, for [`TemplateContext::env`]. A value that is not Unicode counts
/// as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why a template could not be expanded. Holds names only, never a token or env value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is {len} bytes; at most {MAX_TEMPLATE_LEN} are accepted")]
    TooLong { len: usize },
    #[error("a `{{{{` is not closed by `}}}}`")]
    Unclosed,
    #[error(
        "unknown placeholder `{{{{{name}}}}}`; known: base_url, baseUrl, upstream_base_url, \
         upstreamBaseUrl, apiKey, accessToken, token, unix_now, unix_now_ms, unix_days_ago:N, \
         env:NAME, or a name from `variables`"
    )]
    Unknown { name: String },
    #[error("environment variable `{name}` (from `{{{{env:{name}}}}}`) is not set")]
    MissingEnv { name: String },
    #[error("`{{{{{name}}}}}` needs a token, and none is available for this upstream")]
    NoToken { name: String },
    #[error("`{{{{unix_days_ago:N}}}}` needs a whole number of days N")]
    BadDays,
    #[error("variable `{variable}`: {source}")]
    InVariable {
        variable: String,
        source: Box<TemplateError>,
    },
    #[error("variable `{name}` is used inside another variable; variables are expanded once")]
    NestedVariable { name: String },
    #[error("the endpoint does not expand to an http:// or https:// URL")]
    NotHttp,
}

/// Whether `name` is filled by the helper itself (so a variable of that name would never be
/// used: the configuration check refuses it).
pub fn is_built_in(name: &str) -> bool {
    BUILT_IN_NAMES.contains(&name) || name.starts_with("env:") || name.starts_with("unix_days_ago:")
}

/// `template` with every `{{placeholder}}` expanded.
pub fn render(template: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    render_at(template, ctx, true)
}

/// The URL of a usage endpoint. An absolute endpoint (`http://…`, `https://…`) or one that
/// starts with a placeholder is expanded as is; a relative one (`user/balance`,
/// `/v1/usage`) is appended to the normalised base, as `{{base_url}}/<endpoint>`.
pub fn endpoint_url(
    endpoint_template: &str,
    ctx: &TemplateContext,
) -> Result<String, TemplateError> {
    let endpoint = endpoint_template.trim();
    let url = if is_http(endpoint) || endpoint.starts_with("{{") {
        render(endpoint, ctx)?
    } else {
        let path = render(endpoint, ctx)?;
        format!(
            "{}/{}",
            base_url(ctx.upstream_base_url),
            path.trim_start_matches('/')
        )
    };
    if is_http(&url) {
        Ok(url)
    } else {
        Err(TemplateError::NotHttp)
    }
}

/// The upstream base URL as usage endpoints are built on: no query, fragment or trailing `/`,
/// and one trailing `/v1` removed (`https://r.example/v1/?x=1` → `https://r.example`), since
/// relays serve their account APIs beside, not under, the OpenAI-compatible `/v1`.
pub fn base_url(upstream_base_url: &str) -> &str {
    let url = upstream_base_url.trim();
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let url = url.split_once('?').map_or(url, |(before, _)| before);
    let url = url.trim_end_matches('/');
    url.strip_suffix("/v1").unwrap_or(url).trim_end_matches('/')
}

fn is_http(text: &str) -> bool {
    let head = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    head.starts_with("http://") || head.starts_with("https://")
}

/// One left-to-right pass; `variables` says whether `{{name}}` may name a variable (false
/// while expanding a variable, so expansion is bounded by one level).
fn render_at(
    template: &str,
    ctx: &TemplateContext,
    variables: bool,
) -> Result<String, TemplateError> {
    if template.len() > MAX_TEMPLATE_LEN {
        return Err(TemplateError::TooLong {
            len: template.len(),
        });
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
        out.push_str(&expand(after[..close].trim(), ctx, variables)?);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one placeholder.
fn expand(name: &str, ctx: &TemplateContext, variables: bool) -> Result<String, TemplateError> {
    let now_secs = ctx.now_ms / 1000;
    match name {
        "base_url" | "baseUrl" => return Ok(base_url(ctx.upstream_base_url).to_string()),
        "upstream_base_url" | "upstreamBaseUrl" => return Ok(ctx.upstream_base_url.to_string()),
        "apiKey" | "accessToken" | "token" => {
            return ctx
                .token
                .map(str::to_string)
                .ok_or_else(|| TemplateError::NoToken {
                    name: name.to_string(),
                });
        }
        "unix_now" => return Ok(now_secs.to_string()),
        "unix_now_ms" => return Ok(ctx.now_ms.to_string()),
        _ => {}
    }
    if let Some(var) = name.strip_prefix("env:") {
        let var = var.trim();
        return (ctx.env)(var).ok_or_else(|| TemplateError::MissingEnv {
            name: var.to_string(),
        });
    }
    if let Some(arg) = name.strip_prefix("unix_days_ago:") {
        let days: u64 = arg.trim().parse().map_err(|_| TemplateError::BadDays)?;
        return Ok(now_secs
            .saturating_sub(days.saturating_mul(86_400))
            .to_string());
    }
    match ctx.variables.get(name) {
        Some(_) if !variables => Err(TemplateError::NestedVariable { name: short(name) }),
        Some(value) => render_at(value, ctx, false).map_err(|e| TemplateError::InVariable {
            variable: name.to_string(),
            source: Box::new(e),
        }),
        None => Err(TemplateError::Unknown { name: short(name) }),
    }
}

/// A name as quoted in an error: user-typed, so cut to a readable length.
fn short(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_700_000_000_123;

    fn env(name: &str) -> Option<String> {
        match name {
            "RELAY_USER" => Some("env-secret-4711".into()),
            "BRACES" => Some("{{token}}{{".into()),
            _ => None,
        }
    }

    fn with<T>(
        base: &str,
        token: Option<&str>,
        vars: &[(&str, &str)],
        f: impl FnOnce(&TemplateContext) -> T,
    ) -> T {
        let variables = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ctx = TemplateContext {
            upstream_base_url: base,
            token,
            variables: &variables,
            env: &env,
            now_ms: NOW_MS,
        };
        f(&ctx)
    }

    fn r(template: &str) -> Result<String, TemplateError> {
        with(
            "https://r.example/v1/",
            Some("sk-token-secret-99"),
            &[],
            |c| render(template, c),
        )
    }

    #[test]
    fn base_url_drops_query_fragment_trailing_slash_and_one_v1() {
        assert_eq!(base_url("https://r.example/v1/"), "https://r.example");
        assert_eq!(
            base_url("https://r.example/v1?group=a#x"),
            "https://r.example"
        );
        assert_eq!(
            base_url("https://r.example/openai/v1"),
            "https://r.example/openai"
        );
        assert_eq!(base_url("https://r.example/v1/v1"), "https://r.example/v1");
        assert_eq!(
            base_url("https://r.example/apiv1"),
            "https://r.example/apiv1"
        );
        assert_eq!(base_url("https://r.example"), "https://r.example");
    }

    #[test]
    fn url_placeholders_normalised_and_raw() {
        assert_eq!(
            r("{{base_url}}/user/balance").unwrap(),
            "https://r.example/user/balance"
        );
        assert_eq!(r("{{baseUrl}}").unwrap(), "https://r.example");
        assert_eq!(r("{{upstream_base_url}}").unwrap(), "https://r.example/v1/");
        assert_eq!(
            r("{{upstreamBaseUrl}}|{{ base_url }}").unwrap(),
            "https://r.example/v1/|https://r.example"
        );
    }

    #[test]
    fn token_placeholders_and_missing_token() {
        for name in ["apiKey", "accessToken", "token"] {
            assert_eq!(
                r(&format!("Bearer {{{{{name}}}}}")).unwrap(),
                "Bearer sk-token-secret-99"
            );
            let err = with("https://r", None, &[], |c| {
                render(&format!("{{{{{name}}}}}"), c)
            });
            assert_eq!(err, Err(TemplateError::NoToken { name: name.into() }));
        }
    }

    #[test]
    fn time_placeholders_in_seconds_and_ms() {
        assert_eq!(r("{{unix_now}}").unwrap(), "1700000000");
        assert_eq!(r("{{unix_now_ms}}").unwrap(), "1700000000123");
        assert_eq!(
            r("{{unix_days_ago:30}}").unwrap(),
            (1_700_000_000 - 30 * 86_400).to_string()
        );
        assert_eq!(r("{{unix_days_ago:0}}").unwrap(), "1700000000");
        assert_eq!(
            r("{{unix_days_ago:99999999999}}").unwrap(),
            "0",
            "saturates"
        );
        assert_eq!(r("{{unix_days_ago:x}}"), Err(TemplateError::BadDays));
    }

    #[test]
    fn env_placeholder_and_missing_env_names_the_variable() {
        assert_eq!(r("{{env:RELAY_USER}}").unwrap(), "env-secret-4711");
        assert_eq!(
            r("{{env:NOPE}}"),
            Err(TemplateError::MissingEnv {
                name: "NOPE".into()
            })
        );
        assert!(
            r("{{env:NOPE}}")
                .unwrap_err()
                .to_string()
                .contains("`NOPE`")
        );
    }

    #[test]
    fn variables_expand_once_and_may_use_built_ins() {
        let vars = [
            ("user", "u-{{env:RELAY_USER}}"),
            ("plain", "7"),
            ("chain", "{{plain}}"),
        ];
        let out = with("https://r", None, &vars, |c| {
            render("{{user}}/{{plain}}", c)
        });
        assert_eq!(out.unwrap(), "u-env-secret-4711/7");
        let nested = with("https://r", None, &vars, |c| render("{{chain}}", c)).unwrap_err();
        assert!(
            matches!(&nested, TemplateError::InVariable { variable, source }
            if variable == "chain" && **source == TemplateError::NestedVariable { name: "plain".into() })
        );
        let vars = [("self", "{{self}}")];
        let looped = with("https://r", None, &vars, |c| render("{{self}}", c));
        assert!(matches!(looped, Err(TemplateError::InVariable { .. })));
        // A value holding `{{` is inserted as is, never scanned again.
        assert_eq!(r("{{env:BRACES}}!").unwrap(), "{{token}}{{!");
    }

    #[test]
    fn unknown_placeholder_unclosed_and_too_long() {
        assert_eq!(
            r("{{nope}}"),
            Err(TemplateError::Unknown {
                name: "nope".into()
            })
        );
        assert!(
            r("{{nope}}")
                .unwrap_err()
                .to_string()
                .contains("`{{nope}}`")
        );
        assert_eq!(r("{{"), Err(TemplateError::Unclosed));
        assert_eq!(r("a}}b{c").unwrap(), "a}}b{c");
        let long = "x".repeat(MAX_TEMPLATE_LEN + 1);
        assert_eq!(
            r(&long),
            Err(TemplateError::TooLong {
                len: MAX_TEMPLATE_LEN + 1
            })
        );
        assert!(r(&"x".repeat(MAX_TEMPLATE_LEN)).is_ok());
    }

    #[test]
    fn endpoint_relative_absolute_and_templated() {
        let url = |e: &str| {
            with("https://r.example/v1?k=1", Some("t"), &[], |c| {
                endpoint_url(e, c)
            })
        };
        assert_eq!(
            url("/user/balance").unwrap(),
            "https://r.example/user/balance"
        );
        assert_eq!(
            url("api/usage/token/").unwrap(),
            "https://r.example/api/usage/token/"
        );
        assert_eq!(
            url("https://api.stepfun.com/v1/accounts").unwrap(),
            "https://api.stepfun.com/v1/accounts"
        );
        assert_eq!(url("HTTP://x.example/a").unwrap(), "HTTP://x.example/a");
        assert_eq!(
            url("{{base_url}}/v1/user/info").unwrap(),
            "https://r.example/v1/user/info"
        );
        assert_eq!(url("{{env:RELAY_USER}}/x"), Err(TemplateError::NotHttp));
    }

    #[test]
    fn errors_never_hold_the_token_or_env_values() {
        let secrets = ["sk-token-secret-99", "env-secret-4711"];
        let vars = [("v", "{{env:RELAY_USER}}{{token}}{{missing}}")];
        let templates = [
            "Bearer {{token}} {{nope}}",
            "{{env:RELAY_USER}}{{",
            "{{token}}{{env:ABSENT}}",
            "{{v}}",
            "{{token}}{{unix_days_ago:soon}}",
        ];
        for template in templates {
            let err = with("https://r", Some(secrets[0]), &vars, |c| {
                render(template, c)
            })
            .unwrap_err();
            let text = format!("{err} {err:?}");
            for secret in secrets {
                assert!(!text.contains(secret), "{template}: {text}");
            }
        }
        let err = with("https://r", Some(secrets[0]), &[], |c| {
            endpoint_url("{{token}}", c)
        });
        assert_eq!(err, Err(TemplateError::NotHttp));
    }

    #[test]
    fn built_in_names_are_recognised() {
        assert!(is_built_in("token") && is_built_in("env:X") && is_built_in("unix_days_ago:3"));
        assert!(!is_built_in("user"));
    }
}
