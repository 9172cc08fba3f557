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
