//! Packaging, offline: the dist configuration (dist-workspace.toml), the cargo-binstall
//! metadata (Cargo.toml) and the release workflow agree on targets, archive names and
//! installers (`dist plan` itself needs the dist binary and the network: scripts/dist-check
//! runs it where dist is installed); shell completions and the man page come from the real
//! binary and name its commands.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::cli::{Homes, run};

fn read_toml(file: &str) -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(value: &toml::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

struct Packaging {
    name: String,
    version: String,
    repository: String,
    bins: Vec<String>,
    dist: toml::Table,
    binstall: toml::Table,
}

fn packaging() -> Packaging {
    let cargo = read_toml("Cargo.toml");
    let package = cargo["package"].as_table().unwrap();
    let field = |key: &str| {
        package
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("[package] {key} is set"))
            .to_string()
    };
    let bins = cargo["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    let workspace = read_toml("dist-workspace.toml");
    Packaging {
        name: field("name"),
        version: field("version"),
        repository: field("repository"),
        bins,
        dist: workspace["dist"].as_table().unwrap().clone(),
        binstall: package["metadata"]["binstall"].as_table().unwrap().clone(),
    }
}

impl Packaging {
    fn targets(&self) -> Vec<String> {
        strings(&self.dist["targets"])
    }

    /// The archive dist makes for `target`: `{name}-{target}` and the platform's extension.
    fn dist_archive(&self, target: &str) -> String {
        let ext = if target.contains("windows") {
            self.dist
                .get("windows-archive")
                .map_or(".zip", |v| v.as_str().unwrap())
        } else {
            self.dist
                .get("unix-archive")
                .map_or(".tar.xz", |v| v.as_str().unwrap())
        };
        format!("{}-{target}{ext}", self.name)
    }

    /// A binstall setting for `target`: its override, else the package's.
    fn binstall_key(&self, target: &str, key: &str) -> String {
        self.binstall
            .get("overrides")
            .and_then(|o| o.get(target))
            .and_then(|o| o.get(key))
            .or_else(|| self.binstall.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("binstall {key} for {target}"))
            .to_string()
    }

    /// A binstall template filled in as cargo-binstall does for `target` (and `bin`).
    fn render(&self, template: &str, target: &str, bin: &str) -> String {
        let suffix = match self.binstall_key(target, "pkg-fmt").as_str() {
            "txz" => ".tar.xz",
            "tgz" => ".tar.gz",
            "zip" => ".zip",
            other => panic!("pkg-fmt {other} is not one dist makes"),
        };
        let exe = if target.contains("windows") {
            ".exe"
        } else {
            ""
        };
        template
            .replace("{ repo }", &self.repository)
            .replace("{ version }", &self.version)
            .replace("{ name }", &self.name)
            .replace("{ target }", target)
            .replace("{ archive-suffix }", suffix)
            .replace("{ bin }", bin)
            .replace("{ binary-ext }", exe)
    }
}

#[test]
fn dist_builds_every_platform_with_installers_and_checksums() {
    let p = packaging();
    let targets: BTreeSet<String> = p.targets().into_iter().collect();
    for wanted in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "x86_64-unknown-linux-musl",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "x86_64-pc-windows-msvc",
    ] {
        assert!(targets.contains(wanted), "dist builds {wanted}");
    }
    let installers = strings(&p.dist["installers"]);
    assert!(installers.contains(&"shell".into()) && installers.contains(&"powershell".into()));
    assert_eq!(p.dist["checksum"].as_str(), Some("sha256"));
    assert_eq!(p.dist["ci"].as_str(), Some("github"));
    assert!(
        p.repository.starts_with("https://github.com/"),
        "dist's installers and binstall download from the repository's GitHub releases"
    );
}

#[test]
fn binstall_downloads_the_archives_dist_publishes() {
    let p = packaging();
    let pkg_url = p.binstall["pkg-url"].as_str().unwrap();
    let bin_dir = p.binstall["bin-dir"].as_str().unwrap();
    for target in p.targets() {
        // dist's release: tag `v{version}`, one archive per target.
        let published = format!(
            "{}/releases/download/v{}/{}",
            p.repository,
            p.version,
            p.dist_archive(&target)
        );
        let template = p.binstall_key(&target, "pkg-url");
        assert_eq!(p.render(&template, &target, ""), published, "{target}");
        assert_eq!(template, pkg_url, "one URL shape for every target");
        // dist puts the binaries in a folder named like the archive.
        for bin in &p.bins {
            let exe = if target.contains("windows") {
                ".exe"
            } else {
                ""
            };
            assert_eq!(
                p.render(bin_dir, &target, bin),
                format!("{}-{target}/{bin}{exe}", p.name)
            );
        }
    }
    if let Some(overrides) = p.binstall.get("overrides").and_then(|o| o.as_table()) {
        for target in overrides.keys() {
            assert!(
                p.targets().contains(target),
                "override for {target}, which dist does not build"
            );
        }
    }
}

#[test]
fn the_release_workflow_builds_what_dist_plans() {
    let p = packaging();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/release.yml");
    let workflow = std::fs::read_to_string(path).unwrap();
    let built: BTreeSet<String> = workflow
        .lines()
        .filter_map(|l| l.split("target: ").nth(1))
        .map(|rest| rest.split([',', ' ', '}']).next().unwrap().to_string())
        .filter(|t| !t.starts_with("$"))
        .collect();
    let planned: BTreeSet<String> = p.targets().into_iter().collect();
    assert_eq!(built, planned);
    let version = p.dist["cargo-dist-version"].as_str().unwrap();
    assert!(
        workflow.contains(&format!("DIST_VERSION: \"{version}\"")),
        "the workflow installs the dist version the config names"
    );
    for asset in [
        "*.tar.xz",
        "*.zip",
        "*.sha256",
        "-installer.sh",
        "-installer.ps1",
    ] {
        assert!(workflow.contains(asset), "the release publishes {asset}");
    }
}

#[tokio::test]
async fn completions_for_every_shell_name_the_commands() {
    let homes = Homes::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (ok, out) = run(&homes, &["completions", shell]).await;
        assert!(ok, "{shell}: {out}");
        for command in [
            "serve",
            "provider",
            "routing",
            "notify",
            "completions",
            "man",
        ] {
            assert!(
                out.contains(command),
                "{shell} completions name `{command}`"
            );
        }
        assert!(out.contains("codex-helper"), "{shell}");
    }
    let (ok, out) = run(&homes, &["completions", "tcsh"]).await;
    assert!(
        !ok && out.contains("possible values: bash, zsh, fish, powershell, elvish"),
        "{out}"
    );
}

#[tokio::test]
async fn the_man_page_renders_with_the_commands() {
    let homes = Homes::new();
    let (ok, page) = run(&homes, &["man"]).await;
    assert!(ok, "{page}");
    assert!(page.contains(".TH codex-helper 1"), "{page}");
    for command in ["serve", "provider", "switch", "notify", "completions"] {
        assert!(page.contains(command), "the man page names `{command}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let (ok, said) = run(&homes, &["man", "--dir", out.to_str().unwrap()]).await;
    assert!(ok, "{said}");
    for page in [
        "codex-helper.1",
        "codex-helper-serve.1",
        "codex-helper-notify-codex.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
}

// The container files (Dockerfile, deploy/). No container engine runs here or in CI, so the
// image is never built by the tests; what they check is that the files agree with each
// other and with the binary: a renamed flag, service or setting fails here.

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON-array instruction of the Dockerfile's last stage (`CMD`, `ENTRYPOINT`).
fn final_stage_array(dockerfile: &str, instruction: &str) -> Vec<String> {
    let stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let line = stage
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("the final stage has {instruction}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{instruction} is a JSON array: {e}"))
}

/// The services of `deploy/compose.yaml` (two-space indented keys under `services:`).
fn compose_services(compose: &str) -> Vec<String> {
    let services = compose.split("\nservices:\n").nth(1).unwrap();
    services
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|name| !name.starts_with(' '))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_image_serves_a_team_on_all_interfaces_as_a_user_of_its_own() {
    let dockerfile = repo_file("Dockerfile");
    let stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let user = stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the final stage names a USER");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    assert!(
        stage.contains("useradd --system"),
        "the user is made in the image"
    );
    assert_eq!(
        final_stage_array(&dockerfile, "ENTRYPOINT"),
        ["tini", "--", "codex-helper"]
    );
    let cmd = final_stage_array(&dockerfile, "CMD");
    assert_eq!(cmd[0], "serve");
    for flag in ["--team", "--no-tui"] {
        assert!(cmd.contains(&flag.to_string()), "CMD has {flag}: {cmd:?}");
    }
    let after = |flag: &str| cmd[cmd.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(after("--host"), "0.0.0.0");
    assert!(stage.contains(&format!("EXPOSE {}", after("--port"))));
    // Every flag the image passes is one `serve` has.
    let (ok, help) = run(&Homes::new(), &["serve", "--help"]).await;
    assert!(ok, "{help}");
    for flag in cmd.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag.as_str()), "serve has no {flag}: {help}");
    }
    let ignored = repo_file(".dockerignore");
    for path in ["target/", ".git/", "**/.env"] {
        assert!(
            ignored.lines().any(|l| l == path),
            ".dockerignore leaves out {path}"
        );
    }
    assert!(repo_file(".gitignore").lines().any(|l| l == "/deploy/.env"));
}

#[tokio::test]
async fn the_compose_files_agree_with_each_other_and_the_config_loads() {
    let compose = repo_file("deploy/compose.yaml");
    let services = compose_services(&compose);
    for service in ["postgres", "redis", "helper-a", "helper-b", "lb"] {
        assert!(services.contains(&service.to_string()), "{services:?}");
    }
    let port = {
        let cmd = final_stage_array(&repo_file("Dockerfile"), "CMD");
        cmd[cmd.iter().position(|a| a == "--port").unwrap() + 1].clone()
    };
    // The load balancer spreads over exactly the helper instances, on the image's port.
    let nginx = repo_file("deploy/nginx.conf");
    let upstreams: Vec<&str> = nginx
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server ")?.strip_suffix(';'))
        .collect();
    assert_eq!(
        upstreams,
        [
            format!("helper-a:{port}").as_str(),
            format!("helper-b:{port}").as_str()
        ]
    );
    assert!(
        nginx.contains("proxy_buffering off;"),
        "streams pass unbuffered"
    );
    assert!(compose.contains(&format!("\"{port}:{port}\"")));

    // The instances' config loads as the helper reads it, and what it names exists.
    let homes = Homes::new();
    std::fs::write(homes.helper_config(), repo_file("deploy/config.toml")).unwrap();
    let (ok, said) = run(&homes, &["config", "validate"]).await;
    assert!(ok, "deploy/config.toml: {said}");
    let config: toml::Table = toml::from_str(&repo_file("deploy/config.toml")).unwrap();
    let team = config["team"].as_table().unwrap();
    let redis = team["redis_url"].as_str().unwrap();
    let redis_host = redis
        .strip_prefix("redis://")
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    assert!(services.contains(&redis_host.to_string()), "{redis}");
    let helper = compose.split("\nservices:\n").next().unwrap();
    let mut variables = vec![team["database_url_env"].as_str().unwrap().to_string()];
    if let Some(var) = config["ledger"]["url"]
        .as_str()
        .and_then(|u| u.strip_prefix("env:"))
    {
        variables.push(var.to_string());
    }
    for provider in config["codex"]["providers"].as_table().unwrap().values() {
        if let Some(var) = provider.get("auth_token_env").and_then(|v| v.as_str()) {
            variables.push(var.to_string());
        }
    }
    for var in &variables {
        assert!(
            helper.contains(&format!("    {var}: ")),
            "the instances get {var}"
        );
    }
    let database = helper
        .lines()
        .find_map(|l| l.trim().strip_prefix("CODEX_HELPER_DATABASE_URL: "))
        .unwrap();
    assert!(database.contains("@postgres:5432/"), "{database}");
    for var in ["POSTGRES_PASSWORD", "MAIN_RELAY_KEY"] {
        assert!(
            repo_file("deploy/env.example").contains(&format!("{var}=\n")),
            "the .env template names {var}"
        );
    }
}
