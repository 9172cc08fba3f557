//! The JSON Schema of config.toml: the checked-in `docs/config.schema.json` is what the
//! config types generate; it accepts every example config in README.md and the test
//! fixtures, and rejects misspelt keys (as the loader does).
//!
//! `CODEX_HELPER_BLESS=1 cargo test --test config_schema` rewrites the checked-in file.

use std::path::{Path, PathBuf};

use codex_helper::config::schema::{SCHEMA_FILE, schema_json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(SCHEMA_FILE)).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// The errors of `toml_text` against the schema (empty: valid).
fn errors(validator: &jsonschema::Validator, toml_text: &str) -> Vec<String> {
    let value: serde_json::Value = toml::from_str(toml_text).expect("example is TOML");
    validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_checked_in_schema_is_current() {
    let path = root().join(SCHEMA_FILE);
    if std::env::var_os("CODEX_HELPER_BLESS").is_some() {
        std::fs::write(&path, schema_json()).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        schema_json(),
        "{SCHEMA_FILE} is stale: run `codex-helper config schema > {SCHEMA_FILE}` \
         (or CODEX_HELPER_BLESS=1 cargo test --test config_schema)"
    );
}

/// The ```toml blocks of README.md that are config.toml (not pricing_overrides.toml).
fn readme_examples() -> Vec<(usize, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (n, line) in readme.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut block {
            None if trimmed == "```toml" => block = Some((n + 1, String::new())),
            Some((start, text)) if trimmed == "```" => {
                // pricing_overrides.toml: its model prices, or a block that says it is one.
                if !text.contains("[models.") && !text.starts_with("# pricing_overrides.toml") {
                    out.push((*start, std::mem::take(text)));
                }
                block = None;
            }
            Some((_, text)) => {
                text.push_str(trimmed);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

fn fixtures() -> Vec<PathBuf> {
    let dir = root().join("tests/fixtures/migrate");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            // The inputs of migration are older formats; their results and v5 are configs.
            name.ends_with(".expected.toml") || name == "v5.toml"
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_is_valid() {
    let validator = validator();
    let examples = readme_examples();
    assert!(
        examples.len() >= 5,
        "README.md examples not found: {}",
        examples.len()
    );
    for (line, text) in examples {
        let errors = errors(&validator, &text);
        assert!(
            errors.is_empty(),
            "README.md line {line}: {errors:?}\n{text}"
        );
    }
    let files = fixtures();
    assert!(files.len() >= 7, "{files:?}");
    for file in files {
        let errors = errors(&validator, &std::fs::read_to_string(&file).unwrap());
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}

#[test]
fn misspelt_keys_and_bad_values_are_rejected() {
    let validator = validator();
    for (text, what) in [
        (
            "version = 5\n[codex.providers.a]\nbase_ulr = \"https://a\"\n",
            "base_ulr",
        ),
        ("version = 5\n[retry]\nprofle = \"balanced\"\n", "profle"),
        (
            "version = 5\n[retry.upstream]\non_staus = \"429\"\n",
            "on_staus",
        ),
        (
            "version = 5\n[proxy]\nconect_timeout_ms = 1\n",
            "conect_timeout_ms",
        ),
        (
            "version = 5\n[codex.routing.routes.main]\nstrategy = \"round-robin\"\n",
            "round-robin",
        ),
        ("version = 5\n[retry]\nprofile = \"fastest\"\n", "fastest"),
        ("version = 5\n[retry]\nnever_on_status = \"4xx\"\n", "4xx"),
        (
            "version = 5\n[retry.provider]\non_class = [\"teapot\"]\n",
            "teapot",
        ),
    ] {
        let errors = errors(&validator, text);
        assert!(
            errors.iter().any(|e| e.contains(what)),
            "{what} was not named as wrong: {errors:?}"
        );
    }
    // And what the loader takes in every form, the schema takes too.
    for text in [
        "version = 5\n[retry]\nnever_on_status = [413, \"500-599\"]\n",
        "version = 5\n[retry.provider]\non_status = 404\n",
        "version = 5\n[codex.providers.a.auth]\nauth_token_env = \"K\"\n",
    ] {
        assert_eq!(errors(&validator, text), Vec::<String>::new(), "{text}");
    }
}
