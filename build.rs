//! Embeds the web console (`web/console/`) into the binary: `$OUT_DIR/console_files.rs` lists
//! every file under it (sorted, so the build is reproducible) with `include_bytes!`. The files
//! are plain HTML, CSS and JavaScript checked into the repository: nothing is built with Node.
//!
//! For release builds on Linux it also links both binaries with `build/text-order.txt` as a
//! linker script: see `build/text_order.rs`.

use std::path::{Path, PathBuf};

#[path = "build/text_order.rs"]
mod text_order;

fn main() {
    embed_console();
    order_text();
}

/// Links the binaries with the functions a serving proxy runs packed together, for release
/// builds on Linux, unless `CODEX_HELPER_TEXT_ORDER=0` or the linker is mold or gold.
fn order_text() {
    println!("cargo:rerun-if-changed=build/text-order.txt");
    println!("cargo:rerun-if-env-changed=CODEX_HELPER_TEXT_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let linker_settings = format!("{} {}", var("CARGO_ENCODED_RUSTFLAGS"), var("RUSTC_LINKER"));
    match text_order::wanted(
        &var("CARGO_CFG_TARGET_OS"),
        &var("PROFILE"),
        var("CODEX_HELPER_TEXT_ORDER") == "0",
        &linker_settings,
    ) {
        Ok(true) => {}
        Ok(false) => return,
        Err(warning) => {
            println!("cargo:warning={warning}");
            return;
        }
    }
    let list = std::fs::read_to_string(manifest_dir().join("build/text-order.txt"))
        .expect("build/text-order.txt is part of the package");
    let script =
        text_order::linker_script(&list).unwrap_or_else(|e| panic!("build/text-order.txt: {e}"));
    let Some(script) = script else { return };
    let path =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("text-order.ld");
    std::fs::write(&path, script).expect("OUT_DIR is writable");
    // `-T` to the compiler driver, not `-Wl,-T,`: a comma in the path would split the latter.
    println!("cargo:rustc-link-arg-bins=-T{}", path.display());
}

fn embed_console() {
    let root = manifest_dir().join("web/console");
    // A folder here means every file under it, new ones included.
    println!("cargo:rerun-if-changed=web/console");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut out =
        String::from("/// Every console file: its path under `web/console/` and its bytes.\n");
    out.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .expect("under the root")
            .to_str()
            .expect("console file names are UTF-8")
            .replace('\\', "/");
        // The path is joined when the crate compiles, not here: cargo reuses this script's
        // output across checkouts sharing a target directory, and an absolute path written
        // here would name whichever checkout ran it first.
        out.push_str(&format!(
            "    ({name:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?}))),\n",
            format!("/web/console/{name}")
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(dest.join("console_files.rs"), out).expect("OUT_DIR is writable");
}

/// The package's folder as cargo gives it to this run, not as it was when this script was
/// compiled (`env!`), which is another checkout's when a target directory is shared.
fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
