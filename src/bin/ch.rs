//! `ch`: a short alias for `codex-helper`.

fn main() -> std::process::ExitCode {
    codex_helper::cli::main()
}
