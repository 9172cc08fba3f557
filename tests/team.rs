//! Team mode against a real PostgreSQL (started by the test, on loopback): two `serve --team`
//! processes share the team's keys; every request needs a member's key; refusals say why; the
//! key never reaches the relay, a log, the ledger or a command's output; a database outage is
//! ridden out on the last copy of the keys; the real Codex CLI makes a turn through each
//! instance with a member key after `switch on --team-url`.

mod support;

use std::time::{Duration, Instant};

use support::cli::{Homes, Served, run, serve};
use support::codex_cli;
use support::mock_relay::MockRelay;
use support::team::{self, DB_ENV, keys_output};
use support::team_services::Postgres;

const RELAY_KEY: &str = "relay-upstream-secret-7d1f4b";

/// The helper config every instance shares: one relay, keys re-read every 200 ms.
fn config(relay: &MockRelay, extra_team_keys: &str) -> String {
    format!(
        "version = 5\n[team]\nkey_refresh_ms = 200\n{extra_team_keys}\n\
         [codex.providers.relay]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n",
        relay.base_url()
    )
}

/// One helper instance: its own home (a home runs one serve), the team's database.
struct Instance {
    homes: Homes,
    served: Option<Served>,
}

impl Instance {
    async fn start(db_url: &str, config: &str) -> Self {
        let (homes, served) = team::start_instance(config, db_url, RELAY_KEY).await;
        Self {
            homes,
            served: Some(served),
        }
    }

    fn url(&self) -> String {
        self.served.as_ref().unwrap().url.clone()
    }

    fn log(&self) -> String {
        self.served.as_ref().unwrap().log_so_far()
    }

    /// Stops the serve (its ledger flushed); the home stays for `usage`.
    async fn stop(&mut self) -> String {
        let served = self.served.take().unwrap();
        let log = served.log_so_far();
        served.stop().await;
        log
    }
}

/// `codex-helper keys ARGS` against the team's database: success, stdout and stderr together.
async fn keys(homes: &Homes, db_url: &str, args: &[&str]) -> (bool, String) {
    let (ok, stdout, stderr) = keys_output(homes, db_url, args).await;
    (ok, format!("{stdout}{stderr}"))
}

/// Adds a member and returns their key (from `keys add --json`, the one time it is shown).
async fn add_member(homes: &Homes, db_url: &str, name: &str) -> String {
    team::add_member(homes, db_url, name, &[]).await
}

/// One `/v1/responses` turn with `key` (none: no `Authorization`); status and JSON answer.
async fn turn(base: &str, key: Option<&str>) -> (u16, serde_json::Value, http::HeaderMap) {
    let mut request = support::client()
        .post(format!("{base}/v1/responses"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"model": "gpt-5.1", "input": "hi", "stream": false}).to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, json, headers)
}

/// Polls `turn` until it answers `status` (bounded): for changes that take one key refresh.
async fn eventually(base: &str, key: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (got, body, _) = turn(base, Some(key)).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {got} (not {status}) after 10 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` without any key (as a load balancer's probe): status and JSON.
async fn get_json(base: &str, path: &str) -> (u16, serde_json::Value) {
    let response = support::client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A team: its database, a relay, and two instances serving it with the same config.
struct Team {
    /// Kept alive for the test (dropping it stops the server).
    _pg: Postgres,
    db: String,
    relay: MockRelay,
    config: String,
    a: Instance,
    b: Instance,
}

impl Team {
    async fn start() -> Self {
        let pg = start_postgres();
        let db = pg.url();
        let relay = MockRelay::start("the team relay").await;
        let config = config(&relay, "");
        let a = Instance::start(&db, &config).await;
        let b = Instance::start(&db, &config).await;
        Self {
            _pg: pg,
            db,
            relay,
            config,
            a,
            b,
        }
    }
}

fn start_postgres() -> Postgres {
    Postgres::start().expect("a PostgreSQL for the test (scripts/test installs it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_keys_work_on_every_instance_and_each_refusal_says_why() {
    let Team {
        _pg,
        db,
        relay,
        config,
        mut a,
        mut b,
    } = Team::start().await;

    let ann = add_member(&a.homes, &db, "ann").await;
    let bob = add_member(&b.homes, &db, "bob").await;
    assert!(ann.starts_with("chk_") && ann != bob);
    let (ok, out) = keys(&a.homes, &db, &["disable", "bob"]).await;
    assert!(ok, "{out}");

    // A member's key works on both instances; the relay gets its own key, never the member's.
    for instance in [&a, &b] {
        let (status, body, _) = turn(&instance.url(), Some(&ann)).await;
        assert_eq!(status, 200, "{body}");
    }
    for received in relay.received() {
        let auth = received.headers["authorization"].to_str().unwrap();
        assert_eq!(auth, format!("Bearer {RELAY_KEY}"));
    }

    // A key added a moment ago on one instance works on the others at once: also on one that
    // reads the keys only every minute (an unknown key makes it read them again first).
    let mut slow = Instance::start(
        &db,
        &config
            .replace("key_refresh_ms = 200", "key_refresh_ms = 60000")
            .replace("[team]\n", "[team]\nkey_cache_secs = 600\n"),
    )
    .await;
    let (status, body, _) = turn(&slow.url(), Some(&ann)).await;
    assert_eq!(status, 200, "{body}");
    let carol = add_member(&a.homes, &db, "carol").await;
    for instance in [&b, &slow] {
        let (status, body, _) = turn(&instance.url(), Some(&carol)).await;
        assert_eq!(status, 200, "a new key on another instance: {body}");
    }
    slow.stop().await;

    // Refusals, from loopback too: team mode asks every request.
    let hits = relay.hits();
    let id = ann.split('_').nth(1).unwrap();
    let wrong = format!("chk_{id}_{}", "Q".repeat(43));
    for (key, status, code) in [
        (None, 401, "team_key_required"),
        (Some("sk-not-a-team-key"), 401, "bad_team_key"),
        (Some(wrong.as_str()), 401, "bad_team_key"),
        (Some(bob.as_str()), 403, "team_key_disabled"),
    ] {
        for instance in [&a, &b] {
            let (got, body, headers) = turn(&instance.url(), key).await;
            assert_eq!(got, status, "{key:?}: {body}");
            assert_eq!(body["error"]["code"], code, "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("keys") || message.contains("disabled"),
                "says how to get or fix a key: {message}"
            );
            assert!(headers.contains_key("www-authenticate"));
        }
    }
    assert_eq!(relay.hits(), hits, "no refused request reached the relay");

    // Enabling, disabling and removing take effect within a refresh.
    assert!(keys(&b.homes, &db, &["enable", "bob"]).await.0);
    eventually(&a.url(), &bob, 200).await;
    assert!(keys(&b.homes, &db, &["remove", "carol"]).await.0);
    eventually(&a.url(), &carol, 401).await;
    eventually(&b.url(), &carol, 401).await;

    // Commands refuse what they cannot do, saying why.
    let (ok, out) = keys(&a.homes, &db, &["add", "ann"]).await;
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = keys(&a.homes, &db, &["disable", "nobody"]).await;
    assert!(!ok && out.contains("no key is named"), "{out}");
    let (ok, out) = keys(&a.homes, &db, &["add", "bad name"]).await;
    assert!(!ok && out.contains("not a usable key name"), "{out}");
    let mut sample = a
        .homes
        .command(&["keys", "add", "dave", "--from-env", "DAVE_KEY"]);
    sample
        .env(DB_ENV, &db)
        .env("DAVE_KEY", "sk-example-0123456789abcdef0123456789abcdef");
    let output = sample.output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && text.contains("example"),
        "{text}"
    );

    let (ok, list, err) = keys_output(&a.homes, &db, &["list", "--json"]).await;
    assert!(ok, "{list}{err}");
    let listed: serde_json::Value = serde_json::from_str(&list).unwrap();
    let names: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["enabled"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, [("ann", true), ("bob", true)]);
    let (ok, table) = keys(&a.homes, &db, &["list"]).await;
    assert!(
        ok && table.contains("ann") && table.contains("chk_"),
        "{table}"
    );

    // The admin API's live view names the member, not the key.
    let (status, _, requests_text) =
        support::cli::admin_call("GET", &format!("{}/snapshot", a.homes.admin_base()), None).await;
    assert_eq!(status, 200, "{requests_text}");
    assert!(
        requests_text.contains("\"user\":\"ann\""),
        "{requests_text}"
    );

    // Usage by member, from each instance's ledger.
    let log_a = a.stop().await;
    let log_b = b.stop().await;
    let (ok, usage) = run(&a.homes, &["usage", "summary", "--by", "user", "--json"]).await;
    assert!(ok, "{usage}");
    let report: serde_json::Value = serde_json::from_str(&usage).unwrap();
    let requests_of = |name: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == name)
            .map(|r| r["requests"].as_u64().unwrap())
    };
    assert!(requests_of("ann").is_some_and(|n| n >= 1), "{usage}");
    assert!(requests_of("bob").is_some_and(|n| n >= 1), "{usage}");

    // No member key anywhere the helper writes or prints.
    let mut written = String::new();
    for home in [&a.homes, &b.homes] {
        for entry in walk(home.helper.path()) {
            written.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
        }
    }
    for key in [&ann, &bob, &carol] {
        let secret = key.splitn(3, '_').nth(2).unwrap();
        for (what, text) in [
            ("log A", &log_a),
            ("log B", &log_b),
            ("files", &written),
            ("keys list", &list),
            ("keys list table", &table),
            ("usage", &usage),
            ("requests API", &requests_text),
        ] {
            assert!(!text.contains(secret), "a member key in {what}");
        }
    }
    assert!(!written.contains(RELAY_KEY) && !log_a.contains(RELAY_KEY));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_rides_out_a_database_outage_on_its_last_copy() {
    let pg = start_postgres();
    // A password in the URL (the server trusts loopback, so any is accepted): never shown.
    let db = pg
        .url()
        .replace("postgres@", "postgres:pw-never-shown-5e1f@");
    let relay = MockRelay::start("the team relay").await;
    // The copy is trusted for 3 s without the database.
    let mut a = Instance::start(&db, &config(&relay, "key_cache_secs = 3")).await;
    let ann = add_member(&a.homes, &db, "ann").await;
    let (status, body, _) = turn(&a.url(), Some(&ann)).await;
    assert_eq!(status, 200, "{body}");

    let (status, ready) = get_json(&a.url(), "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["member_keys"]["database_reachable"], true, "{ready}");

    drop(pg); // the database goes away
    let down_at = Instant::now();
    // Still ready (the last copy serves) while saying the database is unreachable: an outage
    // does not take every instance out of the load balancer at once.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, ready) = get_json(&a.url(), "/readyz").await;
        assert_eq!(status, 200, "{ready}");
        if ready["member_keys"]["database_reachable"] == false {
            assert_eq!(ready["ready"], true, "{ready}");
            break;
        }
        assert!(Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body, _) = turn(&a.url(), Some(&ann)).await;
    assert_eq!(status, 200, "a known key is still accepted: {body}");
    let (status, body, _) = turn(&a.url(), None).await;
    assert_eq!(status, 401, "{body}");

    // Past the trusted age, keys cannot be checked: a retryable 503 that says so.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(down_at.elapsed())).await;
    let (status, body, headers) = turn(&a.url(), Some(&ann)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "team_keys_unavailable");
    assert_eq!(headers["retry-after"], "5");
    let (status, ready) = get_json(&a.url(), "/readyz").await;
    assert_eq!(
        (status, &ready["ready"]),
        (503, &serde_json::json!(false)),
        "{ready}"
    );
    let (status, _) = get_json(&a.url(), "/healthz").await;
    assert_eq!(status, 200, "the process still serves");

    let log = a.stop().await;
    assert_eq!(
        log.matches("team database unreachable").count(),
        1,
        "the outage is logged once:\n{log}"
    );
    assert!(
        !log.contains("pw-never-shown"),
        "no database password in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_team_refuses_to_start_without_its_database_or_with_conflicting_settings() {
    let relay = MockRelay::start("the team relay").await;
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), config(&relay, "")).unwrap();
    let mut command = homes.command(&["serve", "--team", "--no-tui", "--port", "0"]);
    command.env_remove(DB_ENV);
    let output = tokio::time::timeout(support::cli::LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        text.contains(DB_ENV) && text.contains("database_url_env"),
        "{text}"
    );

    // A shared client key and member keys would both want `Authorization`: refused.
    let both = config(&relay, "").replace(
        "version = 5\n",
        "version = 5\n[proxy]\nclient_key_env = \"SHARED_KEY\"\n",
    );
    std::fs::write(homes.helper_config(), both).unwrap();
    let mut command = homes.command(&["serve", "--team", "--no-tui", "--port", "0"]);
    command
        .env("SHARED_KEY", "shared-client-key-0123456789")
        .env(DB_ENV, "postgres://u@127.0.0.1:9/d");
    let output = command.output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(text.contains("client_key_env"), "{text}");

    // Timings that would leave the key copy stale between reads: refused.
    std::fs::write(homes.helper_config(), config(&relay, "key_cache_secs = 0")).unwrap();
    let mut command = homes.command(&["serve", "--team", "--no-tui", "--port", "0"]);
    command.env(DB_ENV, "postgres://u@127.0.0.1:9/d");
    let output = command.output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(text.contains("key_cache_secs"), "{text}");
}

/// The real Codex CLI, switched to each instance with `switch on --team-url --key-env`,
/// makes a turn through it with the member's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_makes_a_turn_through_each_instance_with_a_member_key() {
    let Team {
        _pg,
        db,
        relay,
        mut a,
        mut b,
        ..
    } = Team::start().await;
    let ann = add_member(&a.homes, &db, "ann").await;

    // Ann's machine: her Codex, first on a relay of her own (as in codex_cli::loopback_config).
    let laptop = Homes::new();
    std::fs::write(
        laptop.codex.path().join("config.toml"),
        codex_cli::loopback_config(relay.base_url().trim_end_matches("/v1")),
    )
    .unwrap();
    let original = std::fs::read(laptop.codex.path().join("config.toml")).unwrap();
    let work = tempfile::tempdir().unwrap();
    for (instance, word) in [(&a, "first"), (&b, "second")] {
        let mut switch = laptop.command(&[
            "switch",
            "on",
            "--team-url",
            &instance.url(),
            "--key-env",
            "TEAM_KEY",
        ]);
        switch.env("TEAM_KEY", &ann);
        let output = switch.output().await.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let patched = std::fs::read_to_string(laptop.codex.path().join("config.toml")).unwrap();
        assert!(patched.contains("env_key = \"TEAM_KEY\""), "{patched}");
        assert!(
            !patched.contains(&ann),
            "the key is never written: {patched}"
        );

        let hits = relay.hits_on("/v1/responses");
        let prompt = format!("say {word}");
        let codex = codex_cli::run_codex_at(
            laptop.codex.path(),
            work.path(),
            &["exec", "--skip-git-repo-check", &prompt],
            &[("TEAM_KEY", &ann)],
        )
        .await;
        assert!(
            codex.success,
            "codex through {}: {}\n{}",
            instance.url(),
            codex.stdout,
            codex.stderr
        );
        assert!(
            relay.hits_on("/v1/responses") > hits,
            "the turn reached the relay"
        );
        // The request's log line names Ann (it reaches the log a moment after the answer).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = instance.log();
            let named = log.lines().any(|l| {
                l.contains("path=/v1/responses")
                    && l.contains("user=\"ann\"")
                    && l.contains("status=200")
            });
            if named {
                break;
            }
            assert!(Instant::now() < deadline, "{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // A helper of Ann's own started meanwhile leaves her Codex on the team, and says so.
    let switched = std::fs::read(laptop.codex.path().join("config.toml")).unwrap();
    std::fs::write(
        laptop.helper_config(),
        format!(
            "version = 5\n[codex.providers.own]\nbase_url = \"{}\"\n",
            relay.base_url()
        ),
    )
    .unwrap();
    let own = serve(laptop.command(&["serve"])).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !own
        .log_so_far()
        .contains("Codex is switched to the team relay")
    {
        assert!(Instant::now() < deadline, "{}", own.log_so_far());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(own.log_so_far().contains(&b.url()), "{}", own.log_so_far());
    own.stop().await;
    assert_eq!(
        std::fs::read(laptop.codex.path().join("config.toml")).unwrap(),
        switched,
        "Codex stays on the team"
    );
    // `switch off` gives Ann's config back byte for byte, plus the alias that keeps the
    // threads made through the team resumable (as for any switch to the helper's own table).
    let (ok, out) = run(&laptop, &["switch", "off"]).await;
    assert!(ok, "{out}");
    let after = std::fs::read(laptop.codex.path().join("config.toml")).unwrap();
    assert_eq!(&after[..original.len()], &original[..]);
    let added = String::from_utf8_lossy(&after[original.len()..]).into_owned();
    assert!(
        added.contains("[model_providers.codex_proxy]") && added.contains("history alias"),
        "{added}"
    );
    assert!(
        !added.contains("TEAM_KEY") && !added.contains(&a.url()),
        "{added}"
    );
    for received in relay.received() {
        let auth = received.headers["authorization"].to_str().unwrap();
        assert_eq!(
            auth,
            format!("Bearer {RELAY_KEY}"),
            "{}",
            received.path_and_query
        );
    }
    a.stop().await;
    b.stop().await;
}

/// A Responses WebSocket opened with a member key is checked again at each response: a key
/// disabled while the socket stays open gets an `error` event and a close, not more turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_disabled_mid_websocket_ends_the_connection() {
    use futures_util::{SinkExt, StreamExt};
    use support::ws_relay::{Behaviour, WsRelay};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let pg = start_postgres();
    let db = pg.url();
    let relay = WsRelay::start("ws", Behaviour::Answer).await;
    let config = format!(
        "version = 5\n[team]\nkey_refresh_ms = 200\n\
         [codex.providers.relay]\nbase_url = \"{}\"\nauth_token_env = \"RELAY_KEY\"\n",
        relay.base_url()
    );
    let mut a = Instance::start(&db, &config).await;
    let ann = add_member(&a.homes, &db, "ann").await;

    let url = format!("{}/v1/responses", a.url()).replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {ann}").parse().unwrap());
    headers.insert("session-id", "thread-ws".parse().unwrap());
    headers.insert(
        "x-codex-turn-metadata",
        r#"{"model":"gpt-5.1"}"#.parse().unwrap(),
    );
    let addr = a.url().trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("the upgrade with a member key");
    assert_eq!(response.status(), 101);
    let create = || {
        Message::text(
            serde_json::json!({"type": "response.create", "model": "gpt-5.1", "input": []})
                .to_string(),
        )
    };
    // Reads events until one ends the response; the last one, and whether a close followed.
    async fn until_end(
        socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    ) -> (serde_json::Value, Option<u16>) {
        let mut last = serde_json::Value::Null;
        let read = async {
            while let Some(message) = socket.next().await {
                match message {
                    Ok(Message::Text(text)) => {
                        last = serde_json::from_str(text.as_str()).unwrap();
                        if last["type"] == "response.completed" {
                            return None;
                        }
                    }
                    Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                    Err(_) => return None,
                    Ok(_) => {}
                }
            }
            None
        };
        let close = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("an answer in time");
        (last, close)
    }

    socket.send(create()).await.unwrap();
    let (last, close) = until_end(&mut socket).await;
    assert_eq!(last["type"], "response.completed", "{last}");
    assert_eq!(close, None);

    assert!(keys(&a.homes, &db, &["disable", "ann"]).await.0);
    // Past a refresh, the next response on the same socket is refused.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let handshakes = relay.handshakes().len();
    socket.send(create()).await.unwrap();
    let (last, close) = until_end(&mut socket).await;
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["error"]["code"], "team_key_disabled", "{last}");
    assert_eq!(close, Some(1008));
    assert_eq!(relay.handshakes().len(), handshakes);
    let log = a.stop().await;
    let secret = ann.splitn(3, '_').nth(2).unwrap();
    assert!(!log.contains(secret));
}
