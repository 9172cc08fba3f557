//! Team mode from the outside: a `serve --team` instance with the team's database in its
//! environment, and `codex-helper keys` against that database.

use super::cli::{Homes, LIMIT, Served, serve};

/// The variable `[team] database_url_env` names by default.
pub const DB_ENV: &str = "CODEX_HELPER_DATABASE_URL";

/// A `serve --team` with `config`, the team's database at `db_url`, and `relay_key` in
/// `RELAY_KEY` (the mock relays' credential variable in the suites' configs).
pub async fn start_instance(config: &str, db_url: &str, relay_key: &str) -> (Homes, Served) {
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), config).unwrap();
    let mut command = homes.command(&["serve", "--team"]);
    command.env(DB_ENV, db_url).env("RELAY_KEY", relay_key);
    let served = serve(command).await;
    (homes, served)
}

/// `codex-helper keys ARGS` against the team's database: success, stdout, stderr.
pub async fn keys_output(homes: &Homes, db_url: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    let mut command = homes.command(&all);
    command.env(DB_ENV, db_url);
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Adds member `name` with `limits` (e.g. `--rpm 3`) and returns their key, which `keys add
/// --json` prints once, on stdout only.
pub async fn add_member(homes: &Homes, db_url: &str, name: &str, limits: &[&str]) -> String {
    let mut args = vec!["add", name, "--json"];
    args.extend_from_slice(limits);
    let (ok, out, err) = keys_output(homes, db_url, &args).await;
    assert!(ok, "keys add {name}: {out}{err}");
    assert!(!err.contains("chk_"), "the key goes to stdout only: {err}");
    let added: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("keys add --json printed more than JSON ({e}): {out}"));
    assert_eq!(added["name"], name);
    added["key"].as_str().unwrap().to_string()
}
