//! The secret scan: a distinctive key in every place one can be configured, every command and
//! every admin API route run, proxied requests that succeed, fail over and fail; then every
//! file the helper wrote and every output it gave is searched for each key (whole, in 8-char
//! fragments of its random part, and in base64). Only a config file may hold a key that was
//! written into a config file, and such a file must be mode 0600.
//!
//! Commands come from `--help` (recursively) and routes from `GET /capabilities`, so a new
//! command or route is run here without anyone adding it; those that need arguments get them
//! from [`arguments`], and a new one that needs some and has none fails this test until given.

mod rollout_tree;
mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Value, json};
use support::cli::{Homes, LIMIT, Served, serve};
use support::mock_relay::{Fault, MockRelay};
use support::outbound::TestOutbound;

/// A key the test configures, and whether it was written into a config file by the user
/// (then the config file, and its backups, may hold it).
struct Secret {
    place: &'static str,
    value: String,
    in_config_file: bool,
}

impl Secret {
    fn new(place: &'static str, in_config_file: bool) -> Self {
        Self {
            place,
            value: format!("sk-SCANSECRET-{}", random_hex(24)),
            in_config_file,
        }
    }

    /// What would show the key, whole or in part: the key, its random part's first and last
    /// 8 characters, and its base64 at each of the three alignments.
    fn needles(&self) -> Vec<String> {
        let random = self.value.trim_start_matches("sk-SCANSECRET-");
        let mut needles = vec![
            self.value.clone(),
            random[..8].to_string(),
            random[random.len() - 8..].to_string(),
        ];
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            for pad in 0..3 {
                let encoded = engine.encode(format!("{}{}", "\0".repeat(pad), self.value));
                // The characters that depend on the key alone (not on what is beside it).
                needles.push(encoded[4..encoded.len() - 4].to_string());
            }
        }
        needles
    }
}

fn random_hex(len: usize) -> String {
    use std::io::Read;
    let mut bytes = vec![0u8; len.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()[..len].to_string()
}

/// Every key of the test.
struct Keys {
    inline_token: Secret,
    inline_api_key: Secret,
    env_token: Secret,
    env_api_key: Secret,
    balance_token: Secret,
    admin_token: Secret,
    proxy_password: Secret,
    client_authorization: Secret,
    client_api_key: Secret,
    added_token: Secret,
    codex_inline_token: Secret,
    codex_env_key: Secret,
    codex_auth: Secret,
    database_password: Secret,
    /// The team database's URL, with `database_password` in it (`keys` commands use it).
    database_url: String,
}

impl Keys {
    /// The keys, with the team database's URL pointing at a PostgreSQL on `db_port`.
    fn new(db_port: u16) -> Self {
        let database_password = Secret::new("the team database URL's password", false);
        let database_url = format!(
            "postgres://postgres:{}@127.0.0.1:{db_port}/test",
            database_password.value
        );
        Self {
            inline_token: Secret::new("a provider's inline auth_token", true),
            inline_api_key: Secret::new("a provider's inline api_key", true),
            env_token: Secret::new("auth_token_env's variable", false),
            env_api_key: Secret::new("api_key_env's variable", false),
            balance_token: Secret::new("a balance adapter's token_env", false),
            admin_token: Secret::new("the admin token", false),
            proxy_password: Secret::new("the outbound proxy's password", true),
            client_authorization: Secret::new("the client's Authorization", false),
            client_api_key: Secret::new("the client's x-api-key", false),
            added_token: Secret::new("`provider add --auth-token`", true),
            codex_inline_token: Secret::new("Codex's experimental_bearer_token", true),
            codex_env_key: Secret::new("Codex's env_key variable", false),
            codex_auth: Secret::new("Codex's auth.json", true),
            database_password,
            database_url,
        }
    }

    fn all(&self) -> [&Secret; 14] {
        [
            &self.inline_token,
            &self.inline_api_key,
            &self.env_token,
            &self.env_api_key,
            &self.balance_token,
            &self.admin_token,
            &self.proxy_password,
            &self.client_authorization,
            &self.client_api_key,
            &self.added_token,
            &self.codex_inline_token,
            &self.codex_env_key,
            &self.codex_auth,
            &self.database_password,
        ]
    }

    /// The environment of every command and of `serve`.
    fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("SCAN_RELAY_TOKEN", self.env_token.value.as_str()),
            ("SCAN_RELAY_API_KEY", self.env_api_key.value.as_str()),
            ("SCAN_BALANCE_TOKEN", self.balance_token.value.as_str()),
            ("CODEX_HELPER_ADMIN_TOKEN", self.admin_token.value.as_str()),
            ("SCAN_CODEX_KEY", self.codex_env_key.value.as_str()),
            ("OPENAI_API_KEY", self.codex_env_key.value.as_str()),
            ("CODEX_HELPER_DATABASE_URL", self.database_url.as_str()),
        ]
    }
}

/// What the helper said: a label (command, route, request) and the text.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.0.push((label.into(), text.into()));
    }
}

/// Where the admin API's routes are.
const API: &str = "/__codex_helper/api/v1";

/// The mock relays' usage answer (sub2api shape) for balance lookups.
const USAGE_PATH: &str = "/v1/usage";
const USAGE_BODY: &str = r#"{"isValid":true,"mode":"quota_limited","planName":"Scan","remaining":5,"unit":"USD","quota":{"limit":10,"used":5,"remaining":5,"unit":"USD"}}"#;

/// A relay that fails with our own headers echoed in its error body, as some relays do.
fn echoing(status: u16, key: &str) -> Fault {
    Fault::Status {
        status,
        body: format!(
            r#"{{"error":{{"message":"bad key Bearer {key}","request_headers":{{"authorization":"Bearer {key}","x-api-key":"{key}"}}}}}}"#
        ),
        retry_after: None,
    }
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Codex's home as a user of a relay has it: a provider with an inline bearer token and an
/// `env_key`, and `auth.json` with an API key.
fn seed_codex_home(homes: &Homes, keys: &Keys, relay: &str) {
    let codex = homes.codex.path();
    write_private(
        &codex.join("config.toml"),
        &format!(
            "model = \"gpt-5.1\"\nmodel_provider = \"scanrelay\"\n\n\
             [model_providers.scanrelay]\nname = \"scan relay\"\nbase_url = \"{relay}\"\n\
             wire_api = \"responses\"\nexperimental_bearer_token = \"{}\"\n\n\
             [model_providers.scanenv]\nname = \"scan env\"\nbase_url = \"{relay}\"\n\
             wire_api = \"responses\"\nenv_key = \"SCAN_CODEX_KEY\"\n",
            keys.codex_inline_token.value
        ),
    );
    write_private(
        &codex.join("auth.json"),
        &json!({"OPENAI_API_KEY": keys.codex_auth.value, "tokens": null}).to_string(),
    );
}

/// The helper's config: four relays, a key in each place a relay's key can be configured.
/// `inline` fails (echoing its key), so requests fail over to `envtoken`, which is reached
/// through an outbound proxy with a password.
fn helper_config(keys: &Keys, flaky: &str, steady: &str, outbound: &TestOutbound) -> String {
    format!(
        "version = 5\n\n\
         [codex.providers.inline]\nbase_url = \"{flaky}\"\nauth_token = \"{}\"\n\n\
         [codex.providers.envtoken]\nbase_url = \"{steady}\"\nauth_token_env = \"SCAN_RELAY_TOKEN\"\n\
         outbound_proxy = \"{}\"\n\n\
         [codex.providers.apikey]\nbase_url = \"{steady}\"\napi_key = \"{}\"\n\n\
         [codex.providers.apienv]\nbase_url = \"{steady}\"\napi_key_env = \"SCAN_RELAY_API_KEY\"\n\n\
         [codex.routing]\nentry = \"main\"\n\
         [codex.routing.routes.main]\nchildren = [\"inline\", \"envtoken\", \"apikey\", \"apienv\"]\n\n\
         [balance]\nenabled = true\n",
        keys.inline_token.value,
        outbound.url("http", Some(("scanuser", &keys.proxy_password.value))),
        keys.inline_api_key.value,
    )
}

/// The balance adapter: its token from `SCAN_BALANCE_TOKEN` only.
fn usage_providers() -> String {
    json!({"providers": [{
        "id": "scan-usage", "kind": "sub2api_usage", "domains": ["127.0.0.1"],
        "token_env": "SCAN_BALANCE_TOKEN", "require_token_env": true
    }]})
    .to_string()
}

/// A command as words after the binary's name, e.g. `["provider", "list"]`.
type CommandPath = Vec<String>;

/// Every leaf command, from `--help` and each command's `--help` in turn.
async fn commands(homes: &Homes) -> Vec<CommandPath> {
    let mut leaves = Vec::new();
    let mut todo: Vec<CommandPath> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (ok, help) = run_command(homes, &args, &[]).await;
        assert!(ok, "{args:?}: {help}");
        let subcommands = subcommands_in(&help);
        if subcommands.is_empty() {
            leaves.push(path);
        } else {
            for name in subcommands {
                let mut child = path.clone();
                child.push(name);
                todo.push(child);
            }
        }
    }
    leaves.sort();
    leaves
}

/// The names under clap's `Commands:` heading, `help` left out.
fn subcommands_in(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap_or_default();
            if !name.is_empty() && name != "help" && !line.starts_with("   ") {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Where a command runs.
enum Run {
    /// In the serve's homes, while it runs, with these arguments after its name.
    Served(Vec<String>),
    /// In spare homes (a helper home without config, Codex's seeded the same): commands that
    /// would replace the serve's config.
    Spare(Vec<String>),
    /// Not here: `serve` is the serve; the `daemon` commands that end the serve run last.
    Elsewhere,
}

/// What each command is run with, after its name, and where (a new command: no arguments,
/// with the serve).
fn arguments(command: &str, ctx: &Context) -> Run {
    let words = |list: &[&str]| Run::Served(list.iter().map(|s| s.to_string()).collect());
    let spare = |list: &[&str]| Run::Spare(list.iter().map(|s| s.to_string()).collect());
    match command {
        "serve" | "daemon restart" | "daemon stop" => Run::Elsewhere,
        "config import-from-codex" | "config overwrite-from-codex" => spare(&[]),
        "config init" => spare(&["--force"]),
        "provider add" => Run::Served(vec![
            "added".into(),
            "--base-url".into(),
            ctx.steady.clone(),
            "--auth-token".into(),
            ctx.added_token.clone(),
        ]),
        "provider show" => words(&["envtoken", "--json"]),
        "provider list" => words(&["--json"]),
        "provider enable" | "provider remove" => words(&["added"]),
        "provider disable" => words(&["added"]),
        "routing explain" => words(&["--json"]),
        "routing order" => words(&["inline", "envtoken", "apikey", "apienv"]),
        "routing pin" => words(&["envtoken"]),
        "routing prefer-tag" => words(&["--tag", "tier=scan"]),
        "switch on" => words(&[]),
        "switch off" => words(&[]),
        "session transcript" => Run::Served(vec![ctx.thread.clone()]),
        "session retag" => words(&["--from", "openai", "--to", "scanrelay"]),
        "session search" => words(&["hi"]),
        "usage chain" => Run::Served(vec!["--trace-id".into(), ctx.trace_id.clone()]),
        "usage find" => words(&["--errors"]),
        "usage import" => Run::Served(vec!["--file".into(), ctx.import_log.clone()]),
        "codex relay-capabilities" => words(&["--json"]),
        "codex relay-live-smoke" => words(&[
            "--acknowledgement",
            "run-live-codex-relay-smoke",
            "--model",
            "gpt-5.1",
            "--provider",
            "envtoken",
        ]),
        "config set-retry-profile" => words(&["balanced"]),
        "config migrate" => words(&[]),
        "notify codex" => Run::Served(vec![
            json!({"type": "agent-turn-complete", "thread-id": ctx.session, "turn-id": "t1",
                   "input-messages": ["hi"], "last-assistant-message": "done"})
            .to_string(),
        ]),
        "keys add" | "keys disable" | "keys enable" | "keys remove" => words(&["scanner"]),
        "keys limit" => words(&["scanner", "--rpm", "60", "--daily-budget", "5"]),
        "completions" => words(&["bash"]),
        "man" => words(&[]),
        _ => words(&[]),
    }
}

/// Commands that may fail here, and why; every other one must succeed (a new command that
/// needs arguments fails this test until [`arguments`] gives it some).
const MAY_FAIL: &[(&str, &str)] = &[
    (
        "switch remote-control enable",
        "no Codex App database in the isolated home",
    ),
    ("notify test", "no notification channel configured"),
    ("tui", "no terminal"),
];

/// What the arguments refer to, known once the serve has run requests.
struct Context {
    steady: String,
    added_token: String,
    session: String,
    /// A Codex thread of the seeded rollouts.
    thread: String,
    trace_id: String,
    import_log: String,
}

async fn run_command(homes: &Homes, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = homes.command(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} did not end in time"))
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// One admin API call with the token; the status and the body as text.
async fn admin(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let client = support::client();
    let url = format!("{base}{path}");
    let mut request = match method {
        "GET" => client.get(&url),
        _ => client.post(&url),
    }
    .header("authorization", format!("Bearer {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A proxied request with the client's own credentials; the status and the body.
async fn proxied(served: &Served, keys: &Keys, session: &str, stream: bool) -> (u16, String) {
    let response = support::client()
        .post(format!("{}/v1/responses", served.url.trim_end_matches('/')))
        .header("content-type", "application/json")
        .header(
            "accept",
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        )
        .header("session-id", session)
        .header(
            "authorization",
            format!("Bearer {}", keys.client_authorization.value),
        )
        .header("x-api-key", &keys.client_api_key.value)
        .body(support::codex_body("gpt-5.1", session, 500).replace(
            "\"stream\":true",
            if stream {
                "\"stream\":true"
            } else {
                "\"stream\":false"
            },
        ))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The body each POST route is called with (a new route gets `{}`).
fn route_body(path: &str, session: &str) -> Value {
    match path {
        "/providers/runtime" => json!({"provider_id": "apienv", "enabled": false, "minutes": 1}),
        "/providers/balances/refresh" => json!({}),
        "/codex/relay-capabilities" => json!({"provider_id": "envtoken", "timeout_secs": 5}),
        "/codex/relay-live-smoke" => json!({"acknowledgement": "run-live-codex-relay-smoke",
            "model": "gpt-5.1", "provider_id": "envtoken", "timeout_secs": 5}),
        "/overrides/session" => json!({"session_id": session, "model": "gpt-5.1"}),
        "/overrides/session/profile" => json!({"session_id": session, "profile": null}),
        "/overrides/session/reset" => json!({"session_id": session}),
        "/profiles/default/persisted" => json!({"profile": null}),
        "/routing/persisted" => json!({"order": ["inline", "envtoken", "apikey", "apienv"]}),
        _ => json!({}),
    }
}

/// Every file under `root`, recursively.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() => found.push(path),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

/// A file that may hold a key the user wrote into a config file: a config file (the
/// helper's or Codex's, `auth.json` included) or a backup copy of one.
fn may_hold_configured_keys(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.starts_with("config.toml")
        || name.starts_with("auth.json")
        || path.components().any(|c| c.as_os_str() == "backups")
}

fn find(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every leak in `outputs` and in the files under `roots`, as lines to report.
fn leaks(keys: &Keys, outputs: &Outputs, roots: &[&Path]) -> Vec<String> {
    let mut found = Vec::new();
    for (label, text) in &outputs.0 {
        for secret in keys.all() {
            for needle in secret.needles() {
                if text.contains(&needle) {
                    found.push(format!(
                        "{} ({needle}) in the output of {label}",
                        secret.place
                    ));
                }
            }
        }
    }
    for root in roots {
        for path in files_under(root) {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            for secret in keys.all() {
                for needle in secret.needles() {
                    if !find(&bytes, &needle) {
                        continue;
                    }
                    let allowed = secret.in_config_file && may_hold_configured_keys(&path);
                    if !allowed {
                        found.push(format!("{} ({needle}) in {}", secret.place, path.display()));
                    } else if mode != 0o600 {
                        found.push(format!(
                            "{} is held by {} with mode {mode:o}, not 0600",
                            secret.place,
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_is_written_down_or_shown_anywhere() {
    // The team database `keys` commands reach (its URL carries a password to look for).
    let team_db = support::team_services::Postgres::start()
        .expect("a PostgreSQL for the keys commands (scripts/test installs it)");
    let keys = Keys::new(team_db.port());
    let env = keys.env();
    let homes = Homes::new();
    let mut outputs = Outputs::default();

    let flaky = MockRelay::start("flaky").await;
    flaky.always(Some(echoing(500, &keys.inline_token.value)));
    let steady = MockRelay::start("steady").await;
    for relay in [&flaky, &steady] {
        relay.answer_get(USAGE_PATH, 200, USAGE_BODY);
    }
    let outbound = TestOutbound::http(Some(("scanuser", &keys.proxy_password.value))).await;
    seed_codex_home(&homes, &keys, &steady.base_url());
    // A few Codex threads of this project, for the `session` commands.
    let threads = rollout_tree::generate(
        homes.codex.path(),
        3,
        &[std::env::current_dir().unwrap()],
        codex_helper::time::now_ms(),
    );
    let spare = Homes::new();
    seed_codex_home(&spare, &keys, &steady.base_url());
    write_private(
        &homes.helper_config(),
        &helper_config(&keys, &flaky.base_url(), &steady.base_url(), &outbound),
    );
    std::fs::write(
        homes.helper.path().join("usage_providers.json"),
        usage_providers(),
    )
    .unwrap();

    let leaves = commands(&homes).await;
    assert!(
        leaves.iter().any(|c| c == &["provider", "list"]) && leaves.len() > 30,
        "the command tree was read: {leaves:?}"
    );

    // The serve, with every key in its environment.
    let mut command = homes.command(&["serve", "--no-switch"]);
    for (name, value) in &env {
        command.env(name, value);
    }
    let served = serve(command).await;
    // The admin API's origin; routes are called by their full path.
    let base = homes.admin_base().replace(API, "");
    let token = keys.admin_token.value.clone();

    // Requests that fail over (inline fails, envtoken answers), JSON and streamed; one pinned
    // to each of the other relays; and one that fails (pinned to the failing relay).
    for (session, stream) in [("scan-s1", true), ("scan-s2", false)] {
        let (status, body) = proxied(&served, &keys, session, stream).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("hi from steady"), "{body}");
        outputs.add(format!("a proxied request in {session}"), body);
    }
    for (session, target) in [
        ("scan-apikey", "apikey"),
        ("scan-apienv", "apienv"),
        ("scan-fail", "inline"),
    ] {
        let (status, body) = admin(
            &base,
            &token,
            "POST",
            &format!("{API}/overrides/session"),
            Some(json!({"session_id": session, "route_target": target})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = proxied(&served, &keys, session, true).await;
        if target == "inline" {
            assert!(body.contains("response.failed"), "{status} {body}");
        } else {
            assert_eq!(status, 200, "{body}");
        }
        outputs.add(format!("a proxied request pinned to {target}"), body);
        let (status, body) = proxied(&served, &keys, session, false).await;
        if target == "inline" {
            // 502 with the attempts, or 503 while the failing relay cools down.
            assert!(status == 502 || status == 503, "{status} {body}");
        }
        outputs.add(format!("a JSON request pinned to {target}"), body);
    }
    assert!(
        outbound.tunnels() >= 1,
        "the relay behind the outbound proxy was used"
    );

    // Every admin route, from the API's own list.
    let (status, capabilities) =
        admin(&base, &token, "GET", &format!("{API}/capabilities"), None).await;
    assert_eq!(status, 200, "{capabilities}");
    let (_, recent) = admin(
        &base,
        &token,
        "GET",
        &format!("{API}/request-ledger/recent?limit=1"),
        None,
    )
    .await;
    let trace_id = serde_json::from_str::<Value>(&recent).unwrap()["requests"][0]["trace_id"]
        .as_str()
        .expect("a ledger row")
        .to_string();
    let routes: Vec<(String, String)> =
        serde_json::from_str::<Value>(&capabilities).unwrap()["routes"]
            .as_array()
            .expect("routes listed")
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_string(),
                    r["path"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    assert!(routes.len() > 20, "{capabilities}");
    for (method, path) in &routes {
        if path.ends_with("/runtime/shutdown") {
            continue;
        }
        let local = path
            .replace("{id}", "scan-s1")
            .replace("{trace_id}", &trace_id);
        let body = (method == "POST").then(|| route_body(local.trim_start_matches(API), "scan-s1"));
        let (status, text) = admin(&base, &token, method, &local, body).await;
        assert!(status < 500, "{method} {local}: {status} {text}");
        outputs.add(format!("{method} {local}"), text);
    }

    // Every command, against the running serve.
    let import_log = homes.helper.path().join("scan-import.jsonl");
    std::fs::write(&import_log, "").unwrap();
    let ctx = Context {
        steady: steady.base_url(),
        added_token: keys.added_token.value.clone(),
        session: "scan-s1".into(),
        thread: threads[0].id.clone(),
        trace_id,
        import_log: import_log.display().to_string(),
    };
    let mut ran = BTreeSet::new();
    for leaf in &leaves {
        let name = leaf.join(" ");
        let (home, extra) = match arguments(&name, &ctx) {
            Run::Served(extra) => (&homes, extra),
            Run::Spare(extra) => (&spare, extra),
            Run::Elsewhere => continue,
        };
        let mut args: Vec<&str> = leaf.iter().map(String::as_str).collect();
        args.extend(extra.iter().map(String::as_str));
        let (ok, text) = run_command(home, &args, &env).await;
        let may_fail = MAY_FAIL.iter().any(|(command, _)| *command == name);
        assert!(ok || may_fail, "{args:?} failed:\n{text}");
        outputs.add(name.clone(), text);
        ran.insert(name);
    }
    // The files as they are while the serve runs (the ledger's WAL is there now).
    let roots = [
        homes.helper.path(),
        homes.codex.path(),
        spare.helper.path(),
        spare.codex.path(),
    ];
    let running = leaks(&keys, &Outputs::default(), &roots);
    assert!(running.is_empty(), "keys leaked:\n{}", running.join("\n"));
    let written = files_under(homes.helper.path());
    for expected in [
        "ledger.sqlite3",
        "codex_relay_evidence.jsonl",
        "balances.sqlite3",
    ] {
        assert!(
            written.iter().any(|p| p.ends_with(expected)),
            "{expected} was written and scanned: {written:?}"
        );
    }

    // Then the commands that end the serve: `daemon restart` (a resident serve takes its
    // place), the shutdown route on that one, and `daemon stop`.
    let (_, text) = run_command(&homes, &["daemon", "restart"], &env).await;
    outputs.add("daemon restart", text);
    ran.insert("daemon restart".to_string());
    let (status, text) = admin(
        &homes.admin_base().replace(API, ""),
        &token,
        "POST",
        &format!("{API}/runtime/shutdown"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    outputs.add("POST /runtime/shutdown", text);
    let (_, text) = run_command(&homes, &["daemon", "stop"], &env).await;
    outputs.add("daemon stop", text);
    ran.insert("daemon stop".to_string());
    outputs.add("serve's log", served.log_so_far());
    served.stop().await;
    let missing: Vec<String> = leaves
        .iter()
        .map(|l| l.join(" "))
        .filter(|l| !ran.contains(l) && l != "serve")
        .collect();
    assert!(missing.is_empty(), "commands not run: {missing:?}");

    let roots = [
        homes.helper.path(),
        homes.codex.path(),
        spare.helper.path(),
        spare.codex.path(),
    ];
    let found = leaks(&keys, &outputs, &roots);
    assert!(found.is_empty(), "keys leaked:\n{}", found.join("\n"));
    // The scan reads what it should: the inline key is in the config file (allowed there).
    let config = std::fs::read(homes.helper_config()).unwrap();
    assert!(find(&config, &keys.inline_token.value));
}
