//! The real binary gives files back the way the user keeps them: modes (secrets stay
//! private), symlinks from dotfile managers, read-only files refused, and Codex's
//! `config.toml` with its own line endings and byte order mark. Unix only (modes, links).

#![cfg(unix)]

mod support;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use support::cli::{Homes, run};

const SECRET_CONFIG: &str = "version = 5\n\n[codex.providers.monthly]\nbase_url = \"https://m.example/v1\"\nauth_token = \"sk-secret-monthly\"\n\n[codex.providers.spare]\nbase_url = \"https://s.example/v1\"\n";

const CODEX_CONFIG: &str = "# my Codex config\nmodel = \"gpt-5.1\"\nmodel_provider = \"relay\"   # mine\n\n[model_providers.relay]\nname = \"Relay\"\nbase_url = \"https://relay.example/v1\"\nenv_key = \"RELAY_KEY\"\n";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_symlink()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn provider_disable_keeps_a_secret_config_and_its_backup_private() {
    let homes = Homes::new();
    let config = homes.helper_config();
    std::fs::write(&config, SECRET_CONFIG).unwrap();
    set_mode(&config, 0o600);
    // A stale backup from long ago, readable by everyone.
    let backup = homes.helper.path().join("config.toml.bak");
    std::fs::write(&backup, "stale").unwrap();
    set_mode(&backup, 0o644);

    let (ok, out) = run(&homes, &["provider", "disable", "spare"]).await;
    assert!(ok, "{out}");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("enabled = false")
    );
    assert_eq!(mode(&config), 0o600, "config.toml stays private");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), SECRET_CONFIG);
    assert_eq!(
        mode(&backup),
        0o600,
        "the backup is as private as the config"
    );
}

#[tokio::test]
async fn a_symlinked_helper_config_is_edited_through_the_link() {
    let homes = Homes::new();
    let dotfiles = tempfile::tempdir().unwrap();
    let real = dotfiles.path().join("codex-helper.toml");
    std::fs::write(&real, SECRET_CONFIG).unwrap();
    set_mode(&real, 0o600);
    symlink(&real, homes.helper_config()).unwrap();

    let (ok, out) = run(&homes, &["provider", "disable", "spare"]).await;
    assert!(ok, "{out}");
    assert!(is_link(&homes.helper_config()), "the link stays a link");
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(
        text.contains("enabled = false"),
        "the target is edited: {text}"
    );
    assert_eq!(mode(&real), 0o600);
    assert_eq!(
        names(dotfiles.path()),
        ["codex-helper.toml"],
        "no temporary file left beside the target"
    );
}

#[tokio::test]
async fn a_read_only_helper_config_is_refused_and_left_alone() {
    let homes = Homes::new();
    let config = homes.helper_config();
    std::fs::write(&config, SECRET_CONFIG).unwrap();
    set_mode(&config, 0o444);

    let (ok, out) = run(&homes, &["provider", "disable", "spare"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("is read-only (mode 0444)"), "{out}");
    assert!(
        out.contains(&format!("chmod u+w {}", config.display())),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), SECRET_CONFIG);
    assert_eq!(mode(&config), 0o444);
    assert_eq!(
        names(homes.helper.path()),
        ["config.toml"],
        "no backup either"
    );
}

/// `switch on` then `switch off` on the real binary; returns the file as switched on.
async fn switch_round_trip(homes: &Homes, config: &Path) -> Vec<u8> {
    let (ok, out) = run(homes, &["switch", "on"]).await;
    assert!(ok, "{out}");
    let on = std::fs::read(config).unwrap();
    let (ok, out) = run(homes, &["switch", "off"]).await;
    assert!(ok, "{out}");
    on
}

#[tokio::test]
async fn switch_keeps_crlf_line_endings_and_the_byte_order_mark() {
    let crlf = CODEX_CONFIG.replace('\n', "\r\n");
    for (what, original) in [
        ("CRLF", crlf.clone()),
        ("BOM", format!("\u{feff}{CODEX_CONFIG}")),
        ("CRLF+BOM", format!("\u{feff}{crlf}")),
    ] {
        let homes = Homes::new();
        let config = homes.codex.path().join("config.toml");
        std::fs::write(&config, &original).unwrap();

        let on = String::from_utf8(switch_round_trip(&homes, &config).await).unwrap();
        assert!(
            on.contains("base_url = \"http://127.0.0.1:3211/v1\""),
            "{what}: {on}"
        );
        assert_eq!(
            on.starts_with('\u{feff}'),
            original.starts_with('\u{feff}'),
            "{what}: {on:?}"
        );
        if original.contains("\r\n") {
            assert_eq!(
                on.matches('\n').count(),
                on.matches("\r\n").count(),
                "{what}: every line ends in CRLF while switched on: {on:?}"
            );
        } else {
            assert!(!on.contains('\r'), "{what}: {on:?}");
        }
        assert_eq!(
            std::fs::read(&config).unwrap(),
            original.as_bytes(),
            "{what}: switch off gives the file back byte for byte"
        );
    }
}

#[tokio::test]
async fn switch_edits_a_symlinked_codex_config_through_the_link() {
    let homes = Homes::new();
    let dotfiles = tempfile::tempdir().unwrap();
    let real = dotfiles.path().join("codex.toml");
    std::fs::write(&real, CODEX_CONFIG).unwrap();
    let config = homes.codex.path().join("config.toml");
    symlink(&real, &config).unwrap();

    let (ok, out) = run(&homes, &["switch", "on"]).await;
    assert!(ok, "{out}");
    assert!(is_link(&config), "the link stays a link");
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .contains("base_url = \"http://127.0.0.1:3211/v1\""),
        "the target is redirected"
    );
    let (ok, out) = run(&homes, &["switch", "off"]).await;
    assert!(ok, "{out}");
    assert!(is_link(&config));
    assert_eq!(std::fs::read_to_string(&real).unwrap(), CODEX_CONFIG);
}

#[tokio::test]
async fn switch_on_refuses_a_read_only_codex_config_and_writes_nothing() {
    let homes = Homes::new();
    let config = homes.codex.path().join("config.toml");
    std::fs::write(&config, CODEX_CONFIG).unwrap();
    set_mode(&config, 0o444);

    let (ok, out) = run(&homes, &["switch", "on"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("is read-only (mode 0444)")
            && out.contains(&format!("chmod u+w {}", config.display())),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), CODEX_CONFIG);
    assert_eq!(
        names(homes.codex.path()),
        ["config.toml"],
        "no switch state left behind"
    );
}
