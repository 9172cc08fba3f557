//! `~/.codex-helper/usage_providers.json`: which balance adapter asks which relay.
//!
//! Read only, never written: a missing file means the built-in adapters, and a file that does
//! not parse is an error naming file, line, column and key. The original helper wrote its
//! defaults over a file it could not parse, so one typo silently threw away the user's
//! adapters; here the user's file stays exactly as it was.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::parse::{Extract, Kind};
use super::template;

/// Largest file read: an adapter list is a few KiB; a bigger file is a mistake.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Refresh interval when none is configured.
pub const DEFAULT_POLL_SECS: u64 = 120;

/// Shortest refresh interval: shorter configured values are raised to it, so a relay is never
/// asked more than every two minutes (the original allowed 20 s).
pub const MIN_POLL_SECS: u64 = 120;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsageProviders {
    pub providers: Vec<UsageProvider>,
}

/// One balance adapter: which relays (by host) it serves and how it asks them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsageProvider {
    /// Unique; also the key of its refresh throttle.
    pub id: String,
    pub kind: Kind,
    /// Hosts served: each domain and its subdomains.
    pub domains: Vec<String>,
    /// Endpoint template; missing or empty means the kind's default.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Environment variable holding the token for the usage endpoint.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Only `token_env` may supply the token, never the upstream's own key.
    #[serde(default)]
    pub require_token_env: bool,
    /// See [`UsageProvider::poll_interval`].
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    /// Whether traffic to a matching upstream triggers a (throttled) refresh.
    #[serde(default = "yes")]
    pub refresh_on_request: bool,
    /// See [`UsageProvider::trusts_exhaustion`].
    #[serde(default)]
    pub trust_exhaustion_for_routing: Option<bool>,
    /// Extra request headers: name → template.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Named templates usable as `{{name}}` in the endpoint and headers.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub extract: Extract,
}

fn yes() -> bool {
    true
}

/// Why the file cannot be used. Each names the file; parse and check errors name the key.
#[derive(Debug, thiserror::Error)]
pub enum ProvidersError {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: more than {MAX_FILE_BYTES} bytes (1 MiB); an adapter list is far smaller, \
             is this the right file?", file.display())]
    TooLarge { file: PathBuf },
    #[error("{}:{line}:{column}: {key}: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        /// Key path, e.g. `providers[1].poll_interval_secs`.
        key: String,
        message: String,
    },
    #[error("{}: {key}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

impl UsageProvider {
    /// An adapter made by auto-discovery rather than read from the file: no domains (it serves
    /// the one upstream it was made for), the kind's default endpoint and extract, the token
    /// from the upstream, and every other setting at its file default.
    pub fn auto(id: impl Into<String>, kind: Kind) -> UsageProvider {
        UsageProvider {
            id: id.into(),
            kind,
            domains: Vec::new(),
            endpoint: None,
            token_env: None,
            require_token_env: false,
            poll_interval_secs: None,
            refresh_on_request: yes(),
            trust_exhaustion_for_routing: None,
            headers: BTreeMap::new(),
            variables: BTreeMap::new(),
            extract: Extract::default(),
        }
    }

    /// Whether an exhausted snapshot of this adapter may take the upstream out of routing.
    /// Default yes, except RightCode: its summary lists quotas per path prefix, and a
    /// mismatch reads as "nothing left", so its exhaustion is shown but not acted on.
    pub fn trusts_exhaustion(&self) -> bool {
        self.trust_exhaustion_for_routing
            .unwrap_or(self.kind != Kind::RightcodeAccountSummary)
    }

    /// Minimum time between two refreshes; `None` when `poll_interval_secs` is 0, which turns
    /// request-triggered refresh off. Values under [`MIN_POLL_SECS`] are raised to it.
    pub fn poll_interval(&self) -> Option<Duration> {
        match self.poll_interval_secs {
            Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs.max(MIN_POLL_SECS))),
            None => Some(Duration::from_secs(DEFAULT_POLL_SECS)),
        }
    }

    /// The configured endpoint template, `None` when missing or blank (the kind's default).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }

    /// Whether `host` (a host name without port) is one of the domains or a subdomain of one:
    /// `api.ai.input.im` matches `ai.input.im`, `evil-ai.input.im` does not. Case and a
    /// trailing dot are ignored.
    pub fn matches_host(&self, host: &str) -> bool {
        let host = normalise_host(host);
        !host.is_empty()
            && self.domains.iter().any(|domain| {
                let domain = normalise_host(domain);
                !domain.is_empty()
                    && (host == domain
                        || host
                            .strip_suffix(domain.as_str())
                            .is_some_and(|sub| sub.ends_with('.')))
            })
    }
}

fn normalise_host(host: &str) -> String {
    host.trim()
        .trim_end_matches('.')
        .trim_start_matches('.')
        .to_ascii_lowercase()
}

impl UsageProviders {
    /// The adapters serving `host`, in file order.
    pub fn for_host<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a UsageProvider> + 'a {
        self.providers.iter().filter(move |p| p.matches_host(host))
    }
}

/// Reads `path`: the built-in adapters when it does not exist; an error (and the file left
/// untouched) when it cannot be read, is too large, does not parse or fails the checks.
pub fn load(path: &Path) -> Result<UsageProviders, ProvidersError> {
    match read_capped(path) {
        Ok(Some(text)) => parse(path, &text),
        Ok(None) => Ok(built_in()),
        Err(e) => Err(e),
    }
}

/// The file's text, `None` when it does not exist. Reads at most one byte past the cap, so
/// a huge (or growing) file is never read whole.
fn read_capped(path: &Path) -> Result<Option<String>, ProvidersError> {
    let read_err = |source| ProvidersError::Read {
        file: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ProvidersError::TooLarge {
            file: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map(Some).map_err(|_| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })
}

/// Parses and checks the file's text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<UsageProviders, ProvidersError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let providers: UsageProviders =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let key = e.path().to_string();
            parse_error(path, key, e.into_inner())
        })?;
    // Text after the object (a second object, a stray brace) is an error too.
    deserializer
        .end()
        .map_err(|e| parse_error(path, String::new(), e))?;
    check(&providers).map_err(|(key, message)| ProvidersError::Invalid {
        file: path.to_path_buf(),
        key,
        message,
    })?;
    Ok(providers)
}

/// `file:line:column: key: message`, without serde_json's own " at line … column …" suffix.
/// The message may quote a value typed in the wrong place, so credential-shaped text in it is
/// masked.
fn parse_error(path: &Path, key: String, inner: serde_json::Error) -> ProvidersError {
    // serde_path_to_error writes `?` for a position it cannot name (inside a syntax error).
    let key = key.trim_end_matches(".?");
    let key = match key {
        "." | "?" | "" => "(file)".to_string(),
        _ => key.to_string(),
    };
    let (line, column) = (inner.line(), inner.column());
    let full = inner.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    ProvidersError::Parse {
        file: path.to_path_buf(),
        line,
        column,
        key,
        message: crate::redact::Redactor::default()
            .redact(message)
            .into_owned(),
    }
}

/// What serde cannot say: the first problem as (key path, message).
fn check(file: &UsageProviders) -> Result<(), (String, String)> {
    let mut ids = HashSet::new();
    for (i, provider) in file.providers.iter().enumerate() {
        let key = |field: &str| format!("providers[{i}].{field}");
        let id = provider.id.trim();
        if id.is_empty() {
            return Err((key("id"), "must not be empty".into()));
        }
        if !ids.insert(id) {
            return Err((
                key("id"),
                format!("`{id}` is used by an earlier provider; ids must be unique"),
            ));
        }
        check_domains(provider).map_err(|(field, message)| (key(&field), message))?;
        let needs_endpoint = matches!(provider.kind, Kind::Budget | Kind::YescodeProfile);
        if needs_endpoint && provider.endpoint().is_none() {
            return Err((
                key("endpoint"),
                "required for this kind, which has no default endpoint".into(),
            ));
        }
        if let Some(name) = provider
            .variables
            .keys()
            .find(|name| template::is_built_in(name))
        {
            return Err((
                key(&format!("variables.{name}")),
                "is a built-in placeholder name; choose another name".into(),
            ));
        }
    }
    Ok(())
}

/// Domains: at least one, each a bare host name (`ai.input.im`, not `https://ai.input.im/`,
/// which would never match).
fn check_domains(provider: &UsageProvider) -> Result<(), (String, String)> {
    if provider.domains.is_empty() {
        return Err(("domains".into(), "must list at least one domain".into()));
    }
    for (j, domain) in provider.domains.iter().enumerate() {
        let bare = normalise_host(domain);
        if bare.is_empty() {
            return Err((format!("domains[{j}]"), "must not be empty".into()));
        }
        if bare.contains(['/', ':', '@', '?', '#', ' ']) {
            return Err((
                format!("domains[{j}]"),
                format!("`{domain}` is not a bare host name; write e.g. `relay.example`"),
            ));
        }
    }
    Ok(())
}

/// The adapters used when the file does not exist: the original helper's defaults (its
/// `openai-official-costs` is left to auto-discovery), each polled at the default interval.
pub fn built_in() -> UsageProviders {
    let path = Path::new("(built-in usage providers)");
    parse(path, BUILT_IN).expect("the built-in usage providers parse")
}

/// Written in the file's own format, so the built-ins go through the same parser and checks
/// as a user's file.
const BUILT_IN: &str = r#"{ "providers": [
  { "id": "rightcode", "kind": "rightcode_account_summary", "domains": ["right.codes"],
    "trust_exhaustion_for_routing": false },
  { "id": "packycode", "kind": "budget_http_json", "domains": ["packycode.com"],
    "endpoint": "https://www.packycode.com/api/backend/users/info" },
  { "id": "yescode", "kind": "yescode_profile", "domains": ["yes.vg"],
    "endpoint": "https://co.yes.vg/api/v1/auth/profile" },
  { "id": "deepseek", "kind": "openai_balance_http_json", "domains": ["deepseek.com"],
    "endpoint": "{{base_url}}/user/balance" },
  { "id": "stepfun", "kind": "openai_balance_http_json", "domains": ["stepfun.com"],
    "endpoint": "https://api.stepfun.com/v1/accounts" },
  { "id": "siliconflow", "kind": "openai_balance_http_json",
    "domains": ["siliconflow.cn", "siliconflow.com"], "endpoint": "{{base_url}}/v1/user/info" },
  { "id": "openrouter", "kind": "openai_balance_http_json", "domains": ["openrouter.ai"],
    "endpoint": "{{base_url}}/api/v1/credits",
    "extract": { "monthly_budget_paths": ["data.total_credits"],
                 "monthly_spent_paths": ["data.total_usage"],
                 "derive_remaining_from_budget_and_spent": true } },
  { "id": "novita", "kind": "openai_balance_http_json", "domains": ["novita.ai"],
    "endpoint": "{{base_url}}/v3/user/balance",
    "extract": { "remaining_balance_paths": ["availableBalance"], "remaining_divisor": 10000 } }
] }"#;

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/home/u/.codex-helper/usage_providers.json";

    fn parse_text(text: &str) -> Result<UsageProviders, ProvidersError> {
        parse(Path::new(FILE), text)
    }

    /// One provider: `kind` sub2api_usage and domain `ai.input.im`, with `fields` (`, "k": v`
    /// pairs) added or replacing those.
    fn one(fields: &str) -> Result<UsageProvider, ProvidersError> {
        let mut provider =
            serde_json::json!({"id": "p", "kind": "sub2api_usage", "domains": ["ai.input.im"]});
        let extra: serde_json::Value =
            serde_json::from_str(&format!("{{{}}}", fields.trim_start_matches(','))).unwrap();
        for (key, value) in extra.as_object().unwrap() {
            provider[key] = value.clone();
        }
        let text = serde_json::json!({ "providers": [provider] }).to_string();
        parse_text(&text).map(|mut file| file.providers.remove(0))
    }

    fn invalid_key(result: Result<UsageProviders, ProvidersError>) -> String {
        match result {
            Err(ProvidersError::Invalid { key, .. }) => key,
            other => panic!("expected a check error, got {other:?}"),
        }
    }

    #[test]
    fn built_ins_parse_and_match_their_hosts() {
        let file = built_in();
        let ids: Vec<&str> = file.providers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "rightcode",
                "packycode",
                "yescode",
                "deepseek",
                "stepfun",
                "siliconflow",
                "openrouter",
                "novita"
            ]
        );
        let host_of = |host: &str| {
            file.for_host(host)
                .map(|p| p.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(host_of("www.right.codes"), ["rightcode"]);
        assert_eq!(host_of("codex-api.packycode.com"), ["packycode"]);
        assert_eq!(host_of("co.yes.vg"), ["yescode"]);
        assert_eq!(host_of("api.deepseek.com"), ["deepseek"]);
        assert_eq!(host_of("api.stepfun.com"), ["stepfun"]);
        assert_eq!(host_of("api.siliconflow.cn"), ["siliconflow"]);
        assert_eq!(host_of("api.siliconflow.com"), ["siliconflow"]);
        assert_eq!(host_of("openrouter.ai"), ["openrouter"]);
        assert_eq!(host_of("api.novita.ai"), ["novita"]);
        assert!(host_of("relay.example").is_empty());
        for p in &file.providers {
            assert_eq!(
                p.poll_interval(),
                Some(Duration::from_secs(DEFAULT_POLL_SECS)),
                "{}",
                p.id
            );
            assert!(p.refresh_on_request, "{}", p.id);
        }
    }

    #[test]
    fn built_ins_carry_the_original_settings() {
        let file = built_in();
        let get = |id: &str| file.providers.iter().find(|p| p.id == id).unwrap();
        assert_eq!(get("rightcode").kind, Kind::RightcodeAccountSummary);
        assert!(!get("rightcode").trusts_exhaustion());
        assert_eq!(get("packycode").kind, Kind::Budget);
        assert_eq!(
            get("packycode").endpoint(),
            Some("https://www.packycode.com/api/backend/users/info")
        );
        assert_eq!(
            get("yescode").endpoint(),
            Some("https://co.yes.vg/api/v1/auth/profile")
        );
        assert_eq!(
            get("deepseek").endpoint(),
            Some("{{base_url}}/user/balance")
        );
        let openrouter = &get("openrouter").extract;
        assert_eq!(openrouter.monthly_budget_paths, ["data.total_credits"]);
        assert_eq!(openrouter.monthly_spent_paths, ["data.total_usage"]);
        assert!(openrouter.derive_remaining_from_budget_and_spent);
        let novita = &get("novita").extract;
        assert_eq!(novita.remaining_balance_paths, ["availableBalance"]);
        assert_eq!(
            novita.remaining_divisor,
            Some(crate::balance::amount::Usd::dollars(10_000))
        );
        assert!(get("openrouter").trusts_exhaustion());
    }

    #[test]
    fn missing_file_gives_built_ins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage_providers.json");
        assert_eq!(load(&path).unwrap(), built_in());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn typo_names_file_line_column_and_key_and_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage_providers.json");
        let text = r#"{
  "providers": [
    { "id": "a", "kind": "sub2api_usage", "domains": ["a.example"] },
    {
      "id": "b", "kind": "new_api_user_self",
      "domains": ["b.example"],
      "poll_interval_secs": "60"
    }
  ]
}
"#;
        std::fs::write(&path, text).unwrap();
        let err = load(&path).unwrap_err();
        let shown = err.to_string();
        let expected = format!(
            "{}:7:32: providers[1].poll_interval_secs: invalid type: string \"60\", expected u64",
            path.display()
        );
        assert_eq!(shown, expected);
        assert_eq!(std::fs::read(&path).unwrap(), text.as_bytes());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no backup or temp file"
        );
    }

    #[test]
    fn syntax_errors_unknown_keys_and_trailing_text_are_located() {
        let err = parse_text("{\"providers\": [\n  {\"id\": \"a\",}\n]}")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{FILE}:2:14: providers[0]: trailing comma")),
            "{err}"
        );
        let err = one(r#", "domain": ["x"]"#).unwrap_err().to_string();
        assert!(
            err.contains("providers[0].domain: unknown field `domain`, expected one of"),
            "{err}"
        );
        let err = one(r#", "extract": {"remaining_paths": []}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("providers[0].extract.remaining_paths: unknown field `remaining_paths`"),
            "{err}"
        );
        let err = one(r#", "kind": "nope""#).unwrap_err().to_string();
        assert!(err.contains("providers[0].kind"), "{err}");
        let err = parse_text("{\"providers\": []} {}")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{FILE}:1:19: (file): trailing characters")),
            "{err}"
        );
        let err = parse_text("{}").unwrap_err().to_string();
        assert!(err.contains("missing field `providers`"), "{err}");
    }

    #[test]
    fn parse_errors_mask_credentials_quoted_from_the_file() {
        let err = one(r#", "poll_interval_secs": "Bearer sk-abcdefghijklmnop""#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("poll_interval_secs") && !text.contains("sk-abcdefghijklmnop"),
            "{text}"
        );
    }

    #[test]
    fn kind_aliases_are_accepted() {
        for (alias, kind) in [
            ("sub2api_usage_http_json", Kind::Sub2apiUsage),
            ("relay_balance_http_json", Kind::OpenaiBalance),
            ("rightcode", Kind::RightcodeAccountSummary),
            ("openai_costs", Kind::OpenaiOrganizationCosts),
        ] {
            assert_eq!(one(&format!(r#", "kind": "{alias}""#)).unwrap().kind, kind);
        }
    }

    #[test]
    fn ids_must_be_unique_and_non_empty() {
        let text = r#"{"providers": [
            {"id": "x", "kind": "sub2api_usage", "domains": ["a.example"]},
            {"id": "x", "kind": "sub2api_usage", "domains": ["b.example"]}]}"#;
        let err = parse_text(text).unwrap_err();
        assert!(
            err.to_string()
                .contains("`x` is used by an earlier provider"),
            "{err}"
        );
        assert_eq!(invalid_key(Err(err)), "providers[1].id");
        let text = r#"{"providers": [{"id": " ", "kind": "sub2api_usage", "domains": ["a"]}]}"#;
        assert_eq!(invalid_key(parse_text(text)), "providers[0].id");
    }

    #[test]
    fn domains_required_non_empty_and_bare() {
        let base = r#"{"providers": [{"id": "a", "kind": "sub2api_usage""#;
        let err = parse_text(&format!("{base}}}]}}")).unwrap_err().to_string();
        assert!(
            err.contains("providers[0]: missing field `domains`"),
            "{err}"
        );
        assert_eq!(
            invalid_key(parse_text(&format!(r#"{base}, "domains": []}}]}}"#))),
            "providers[0].domains"
        );
        assert_eq!(
            invalid_key(parse_text(&format!(r#"{base}, "domains": ["a", ""]}}]}}"#))),
            "providers[0].domains[1]"
        );
        let url = parse_text(&format!(
            r#"{base}, "domains": ["https://a.example/"]}}]}}"#
        ));
        assert_eq!(invalid_key(url), "providers[0].domains[0]");
    }

    #[test]
    fn budget_and_yescode_kinds_need_an_endpoint() {
        for kind in ["budget_http_json", "yescode_profile"] {
            let text =
                format!(r#"{{"providers": [{{"id": "a", "kind": "{kind}", "domains": ["a"]}}]}}"#);
            let err = parse_text(&text).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("{FILE}: providers[0].endpoint: required")),
                "{err}"
            );
            let blank = text.replace(r#""domains""#, r#""endpoint": " ", "domains""#);
            assert_eq!(invalid_key(parse_text(&blank)), "providers[0].endpoint");
            let given = text.replace(r#""domains""#, r#""endpoint": "https://b/x", "domains""#);
            assert!(parse_text(&given).is_ok());
        }
        assert!(
            one("").unwrap().endpoint().is_none(),
            "other kinds have a default"
        );
        assert!(one(r#", "endpoint": """#).unwrap().endpoint().is_none());
    }

    #[test]
    fn variables_may_not_take_built_in_names() {
        let err = one(r#", "variables": {"token": "x"}"#).unwrap_err();
        assert!(
            err.to_string().contains("providers[0].variables.token"),
            "{err}"
        );
        assert!(one(r#", "variables": {"user": "{{env:U}}"}"#).is_ok());
    }

    #[test]
    fn poll_interval_default_floor_and_disable() {
        let secs = |fields: &str| one(fields).unwrap().poll_interval().map(|d| d.as_secs());
        assert_eq!(secs(""), Some(120));
        assert_eq!(secs(r#", "poll_interval_secs": 0"#), None);
        assert_eq!(secs(r#", "poll_interval_secs": 20"#), Some(120));
        assert_eq!(secs(r#", "poll_interval_secs": 119"#), Some(120));
        assert_eq!(secs(r#", "poll_interval_secs": 600"#), Some(600));
    }

    #[test]
    fn defaults_of_flags() {
        let p = one("").unwrap();
        assert!(p.refresh_on_request && !p.require_token_env);
        assert!(p.headers.is_empty() && p.variables.is_empty() && p.extract == Extract::default());
        assert!(
            !one(r#", "refresh_on_request": false"#)
                .unwrap()
                .refresh_on_request
        );
    }

    #[test]
    fn auto_adapters_have_the_file_defaults() {
        let mut from_file = one("").unwrap();
        from_file.domains.clear();
        assert_eq!(UsageProvider::auto("p", Kind::Sub2apiUsage), from_file);
    }

    #[test]
    fn trust_defaults_per_kind_and_configured_value_wins() {
        let trust = |fields: &str| one(fields).unwrap().trusts_exhaustion();
        assert!(trust(""));
        assert!(trust(r#", "kind": "openai_balance_http_json""#));
        assert!(!trust(r#", "kind": "rightcode_account_summary""#));
        assert!(trust(
            r#", "kind": "rightcode", "trust_exhaustion_for_routing": true"#
        ));
        assert!(!trust(r#", "trust_exhaustion_for_routing": false"#));
    }

    #[test]
    fn hosts_match_domains_and_subdomains_only() {
        let p = one(r#", "domains": ["AI.Input.im.", "other.example"]"#).unwrap();
        assert!(p.matches_host("ai.input.im"));
        assert!(p.matches_host("api.ai.input.im"));
        assert!(p.matches_host("API.AI.INPUT.IM."));
        assert!(p.matches_host("x.other.example"));
        assert!(!p.matches_host("evil-ai.input.im"));
        assert!(!p.matches_host("input.im"));
        assert!(!p.matches_host("ai.input.im.evil.example"));
        assert!(!p.matches_host(""));
    }

    #[test]
    fn oversized_file_is_refused_unread_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage_providers.json");
        let text = format!(
            "{{\"providers\": []}}{}",
            " ".repeat(MAX_FILE_BYTES as usize)
        );
        std::fs::write(&path, &text).unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, ProvidersError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("1 MiB"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), text.as_bytes());
        std::fs::write(&path, "{\"providers\": []}").unwrap();
        assert!(
            load(&path).unwrap().providers.is_empty(),
            "an empty list is kept, not replaced"
        );
    }
}
