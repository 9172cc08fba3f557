//! Packs the code a serving proxy runs into one stretch at the front of the binary's text.
//!
//! Why: the kernel maps a binary's code in 64 KiB windows around each page that runs. Laid out
//! as the compiler emits it, the few MiB that start-up and requests run are spread over the
//! whole 14 MB text, so nearly every window gets mapped: 10.7 MiB of code was resident at idle.
//! Packed, 5.4 MiB is, and idle RSS fell from 16.6 to 12 MiB (README, "Benchmark"). Globs
//! without hashes also take the instances of a generic function that did not run (about 2 MiB
//! of the packed code); exact symbols would pack tighter but go stale with every build.
//!
//! `build/text-order.txt` lists those functions as globs over their symbol names, without the
//! hashes that change with every build (`scripts/text-order` writes it from a run under
//! callgrind). For release builds on Linux, `build.rs` turns the list into a linker script
//! that gathers every matching function section (one per function, `.text.<symbol>` or
//! `.text.unlikely.<symbol>`) into an output section `.text.hot` placed before `.text`.
//!
//! GNU ld and lld both take the script; mold and gold do not, so a build that names them
//! links without it. An entry that no longer matches anything is ignored, so a stale list
//! costs only its benefit. The `.text.unlikely.` patterns also take the cold parts GCC splits
//! off listed SQLite functions (`….cold`), a few bytes each.
//!
//! Shared by `build.rs` and `tests/text_order.rs`.

/// Whether to link with the script: `Ok(true)` for a release build on Linux, `Ok(false)` for
/// any other build or when `CODEX_HELPER_TEXT_ORDER=0` opts out, and `Err` (a warning for the
/// build to show) when `linker_settings` (`CARGO_ENCODED_RUSTFLAGS` and `RUSTC_LINKER`) name
/// mold or gold, which do not take `INSERT` scripts and would fail the link.
pub fn wanted(
    target_os: &str,
    profile: &str,
    opted_out: bool,
    linker_settings: &str,
) -> Result<bool, String> {
    if target_os != "linux" || profile != "release" || opted_out {
        return Ok(false);
    }
    match ["mold", "gold"]
        .into_iter()
        .find(|l| linker_settings.contains(l))
    {
        Some(linker) => Err(format!(
            "linking without build/text-order.txt: {linker} does not take its linker script \
             (release builds are packed with GNU ld or lld only)"
        )),
        None => Ok(true),
    }
}

/// The output section the listed functions are gathered in.
pub const HOT_SECTION: &str = ".text.hot";

/// The linker script for `list`, the text of `build/text-order.txt`: one glob per line, `#`
/// starting a comment line. `None` when it lists nothing.
pub fn linker_script(list: &str) -> Result<Option<String>, String> {
    let mut script = format!("SECTIONS\n{{\n  {HOT_SECTION} :\n  {{\n");
    let mut entries = 0;
    for (n, line) in list.lines().enumerate() {
        let glob = line.trim();
        if glob.is_empty() || glob.starts_with('#') {
            continue;
        }
        // Unquoted, so that `*` is a wildcard; these characters are all a linker reads as
        // part of one name, and all that Rust's mangled symbols and C identifiers use.
        let bare = glob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$' | b'*'));
        if !bare {
            return Err(format!("line {}: {glob:?} is not a symbol glob", n + 1));
        }
        // LLVM puts a function it finds cold (`#[cold]`, or only reached on a way out) in
        // `.text.unlikely.<symbol>`; start-up runs many of those.
        script.push_str(&format!("    *(.text.{glob} .text.unlikely.{glob})\n"));
        entries += 1;
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    Ok((entries > 0).then_some(script))
}
