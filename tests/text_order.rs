//! The text order of release builds (`build/text_order.rs`): the committed list makes a
//! linker script, and that script really gathers the listed functions at the front of the
//! text with both linkers a Linux build uses, GNU ld and lld (Rust's own, as recent toolchains
//! link with). What it saves in resident memory is measured by `benches/proxy_overhead.rs`.
//! `cargo test --release --test text_order` also checks the built binary itself.
#![cfg(target_os = "linux")]

#[path = "../build/text_order.rs"]
mod text_order;

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn the_committed_list_makes_a_linker_script_with_the_request_path_in_it() {
    let list =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("build/text-order.txt"))
            .unwrap();
    let script = text_order::linker_script(&list)
        .expect("every line is a glob")
        .expect("the list is not empty");
    assert!(script.starts_with("SECTIONS\n"), "{script:.200}");
    assert!(script.ends_with("INSERT BEFORE .text;\n"));
    // What a serving proxy runs: the pipeline, hyper's connection, SQLite's insert.
    for expected in [
        "8pipeline6handle",
        "hyper..proto..h1..dispatch",
        "(.text.sqlite3VdbeExec ",
    ] {
        assert!(script.contains(expected), "{expected} is not in the list");
    }
    let patterns = script
        .lines()
        .filter(|l| l.trim_start().starts_with("*(.text."))
        .count();
    let entries = list
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(patterns, entries);
}

#[test]
fn only_release_builds_on_linux_with_gnu_ld_or_lld_link_with_the_script() {
    let rustflags = "-C\u{1f}link-arg=-fuse-ld=lld";
    assert_eq!(
        text_order::wanted("linux", "release", false, rustflags),
        Ok(true)
    );
    assert_eq!(text_order::wanted("linux", "release", false, " "), Ok(true));
    assert_eq!(text_order::wanted("linux", "debug", false, " "), Ok(false));
    assert_eq!(
        text_order::wanted("macos", "release", false, " "),
        Ok(false)
    );
    assert_eq!(
        text_order::wanted("windows", "release", false, " "),
        Ok(false)
    );
    assert_eq!(text_order::wanted("linux", "release", true, " "), Ok(false));
    // mold and gold reject the script: named in RUSTFLAGS or as the linker, the build goes on
    // without it and says why.
    for settings in [
        "-C\u{1f}link-arg=-fuse-ld=mold ",
        " /usr/bin/mold",
        "-Clink-arg=-fuse-ld=gold ",
    ] {
        let warning = text_order::wanted("linux", "release", false, settings).unwrap_err();
        assert!(
            warning.contains("does not take its linker script"),
            "{warning}"
        );
    }
}

#[test]
fn a_line_that_is_not_a_symbol_glob_is_refused_with_its_number() {
    let err = text_order::linker_script("# comment\nfoo\nbar) } /DISCARD/ : { *(*\n").unwrap_err();
    assert!(err.starts_with("line 3:"), "{err}");
    assert_eq!(text_order::linker_script("# only a comment\n\n"), Ok(None));
}

/// A program whose functions are defined cold, hot, cold, hot, cold, hot, with symbol names
/// shaped as Rust's (a legacy one with its hash and `$` escapes, a v0 one with a crate
/// disambiguator) and as C's, and one the compiler puts in `.text.unlikely.`.
const PROGRAM: &str = r#"
#include <stdio.h>
#define FN(name, sym) __attribute__((noinline)) void name(void) __asm__(sym); \
    __attribute__((noinline)) void name(void) { puts(#name); }
FN(cold_a, "cold_a")
FN(hot_legacy, "_ZN4demo6hot$u20$17h0123456789abcdefE")
FN(cold_b, "cold_b")
FN(hot_v0, "_RNvCs1a2B3c4D5e_4demo3hot")
FN(cold_c, "cold_c")
FN(hot_c, "sqlite3HotPath")
__attribute__((cold)) FN(hot_unlikely, "_ZN4demo8unlikely17hfedcba9876543210E")
int main(void) {
    cold_a(); hot_legacy(); cold_b(); hot_v0(); cold_c(); hot_c(); hot_unlikely(); return 0;
}
"#;

/// The list as `scripts/text-order` writes it: hashes and disambiguators as wildcards.
const LIST: &str =
    "# test\n_ZN4demo6hot$u20$17h*\n_RNvCs*_4demo3hot\nsqlite3HotPath\n_ZN4demo8unlikely17h*\n";

fn link_and_check(dir: &Path, linker: &[String]) {
    let source = dir.join("main.c");
    std::fs::write(&source, PROGRAM).unwrap();
    let script = dir.join("text-order.ld");
    std::fs::write(&script, text_order::linker_script(LIST).unwrap().unwrap()).unwrap();
    let exe = dir.join("demo");
    let out = Command::new("cc")
        .args(["-O2", "-ffunction-sections", "-o"])
        .arg(&exe)
        .arg(&source)
        .arg(format!("-T{}", script.display()))
        .args(linker)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The program still runs, every function in place.
    let run = Command::new(&exe).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "cold_a\nhot_legacy\ncold_b\nhot_v0\ncold_c\nhot_c\nhot_unlikely\n"
    );

    // The four hot functions sit in `.text.hot`, before the text, and nothing else does.
    let nm = Command::new("nm")
        .arg("--defined-only")
        .arg(&exe)
        .output()
        .unwrap();
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let address = |name: &str| {
        let line = symbols
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} not in\n{symbols}"));
        u64::from_str_radix(line.split(' ').next().unwrap(), 16).unwrap()
    };
    let hot = [
        "_ZN4demo6hot$u20$17h0123456789abcdefE",
        "_RNvCs1a2B3c4D5e_4demo3hot",
        "sqlite3HotPath",
        "_ZN4demo8unlikely17hfedcba9876543210E",
    ]
    .map(address);
    let cold = ["cold_a", "cold_b", "cold_c", "main"].map(address);
    let sections = Command::new("readelf")
        .arg("-SW")
        .arg(&exe)
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    // `[16] .text.hot PROGBITS <address> <offset> <size> <entry size> AX …`
    let hot_section: Vec<&str> = sections
        .lines()
        .find(|l| l.contains(&format!(" {} ", text_order::HOT_SECTION)))
        .unwrap_or_else(|| panic!("no {} in\n{sections}", text_order::HOT_SECTION))
        .split_whitespace()
        .skip_while(|w| *w != text_order::HOT_SECTION)
        .collect();
    assert_eq!(hot_section[6], "AX", "{hot_section:?}");
    let start = u64::from_str_radix(hot_section[2], 16).unwrap();
    let end = start + u64::from_str_radix(hot_section[4], 16).unwrap();
    let inside = |a: &u64| (start..end).contains(a);
    assert!(
        hot.iter().all(inside),
        "hot {hot:x?} not all in {start:x}..{end:x}"
    );
    assert!(
        !cold.iter().any(inside),
        "cold {cold:x?} in {start:x}..{end:x}"
    );
    assert!(
        hot.iter().max() < cold.iter().min(),
        "hot {hot:x?} not before cold {cold:x?}"
    );
}

#[test]
fn gnu_ld_gathers_the_listed_functions_before_the_rest_of_the_text() {
    // A comma in the path, as `-Wl,-T,…` could not take.
    let dir = tempfile::Builder::new()
        .prefix("text,order")
        .tempdir()
        .unwrap();
    link_and_check(dir.path(), &["-fuse-ld=bfd".to_string()]);
}

#[test]
fn lld_gathers_the_listed_functions_before_the_rest_of_the_text() {
    let Some(lld) = lld_dir() else {
        eprintln!("skipped: no ld.lld, neither rustup's nor one on PATH");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    link_and_check(
        dir.path(),
        &["-fuse-ld=lld".to_string(), format!("-B{}", lld.display())],
    );
}

/// A folder with an `ld.lld`: the one rustup ships with the toolchain (what rustc itself links
/// with on x86_64 Linux), else one on `PATH`.
fn lld_dir() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let version = Command::new(&rustc).arg("-vV").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    let host = version.lines().find_map(|l| l.strip_prefix("host: "))?;
    let rustup = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/gcc-ld");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(rustup)
        .chain(std::env::split_paths(&path))
        .find(|dir| dir.join("ld.lld").exists())
}

/// The binary this build made (`cargo test --release`): its text has the packed section, and
/// the request path is in it.
#[cfg(not(debug_assertions))]
#[test]
fn the_release_binary_has_the_request_path_in_its_hot_text() {
    let exe = env!("CARGO_BIN_EXE_codex-helper");
    let sections = Command::new("readelf")
        .arg("-SW")
        .arg(exe)
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    let hot: Vec<&str> = sections
        .lines()
        .find(|l| l.contains(" .text.hot "))
        .unwrap_or_else(|| panic!("no .text.hot in {exe}:\n{sections}"))
        .split_whitespace()
        .skip_while(|w| *w != ".text.hot")
        .collect();
    let start = u64::from_str_radix(hot[2], 16).unwrap();
    let end = start + u64::from_str_radix(hot[4], 16).unwrap();
    let nm = Command::new("nm")
        .arg("--defined-only")
        .arg(exe)
        .output()
        .unwrap();
    let handle = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .find(|l| l.contains("12codex_helper5proxy8pipeline6handle"))
        .map(|l| u64::from_str_radix(l.split(' ').next().unwrap(), 16).unwrap())
        .expect("pipeline::handle is a symbol");
    assert!(
        (start..end).contains(&handle),
        "{handle:x} not in {start:x}..{end:x}"
    );
}
