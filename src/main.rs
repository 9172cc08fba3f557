fn main() -> std::process::ExitCode {
    codex_helper::cli::main()
}
