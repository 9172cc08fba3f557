//! Command-line interface: `codex-helper` and its alias `ch`.

mod balance;
mod balance_view;
mod codex;
mod codex_sessions;
mod completions;
mod config_cmd;
mod console;
mod console_edit;
mod console_metrics;
mod console_persist;
mod console_routing;
mod console_sessions;
mod daemon;
mod diagnose;
mod doctor;
mod doctor_facts;
mod evidence;
mod keys;
mod log_file;
mod log_writer;
mod notify;
mod provider;
mod resident;
mod routing;
mod serve;
mod serve_exposure;
mod serve_lock;
mod serve_tui;
mod session;
mod status;
mod switch;
mod switch_live;
mod tui;
mod usage;
mod usage_copy;
mod usage_reprice;
mod usage_source;

use clap::{Parser, Subcommand, ValueEnum};

/// A local relay proxy for the OpenAI Codex CLI.
///
/// Codex talks to the proxy on 127.0.0.1:3211; the proxy sends each request to one of your
/// relays, fails over to the next before Codex sees any output, and logs what happened.
#[derive(Debug, Parser)]
#[command(
    name = "codex-helper",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// With no command, `serve` runs with these options.
    #[command(flatten)]
    serve: serve::ServeArgs,

    /// Log format (on stderr, or in logs/serve.log while `serve` shows the terminal UI).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the default when no command is given).
    Serve(serve::ServeArgs),
    /// Add, list, show, enable, disable or remove relays.
    #[command(subcommand)]
    Provider(provider::ProviderCommand),
    /// Show, explain or edit how requests are routed.
    #[command(subcommand)]
    Routing(routing::RoutingCommand),
    /// Point Codex at codex-helper, or put its own settings back.
    #[command(subcommand)]
    Switch(switch::SwitchCommand),
    /// Codex's recorded threads: list, search, resume the last, read a transcript, retag.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// What requests cost and how they went, from the ledger.
    #[command(subcommand)]
    Usage(usage::UsageCommand),
    /// Model prices used for cost estimates.
    #[command(subcommand)]
    Pricing(PricingCommand),
    /// Relays' balances and quotas: show them, or look them up now.
    #[command(subcommand)]
    Balance(balance::BalanceCommand),
    /// The running helper at a glance (through its admin API), or what `serve` would use.
    Status(status::StatusArgs),
    /// Diagnose relays for Codex: what each supports, live smoke tests, the evidence they leave.
    #[command(subcommand)]
    Codex(codex::CodexCommand),
    /// The config file: path, init, validate, import from Codex, retry profile, migrate,
    /// JSON Schema.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// The terminal UI attached to the running helper: dashboard, routing, requests, usage,
    /// settings. Quitting it leaves the helper running (`serve` in a terminal shows the same
    /// UI itself, and quitting that stops the helper).
    Tui(tui::TuiArgs),
    /// What is off in the helper's and Codex's setup, and the command that fixes it.
    Doctor(doctor::DoctorArgs),
    /// The helper running on this home (`serve --resident`): status, stop, restart.
    #[command(subcommand)]
    Daemon(daemon::DaemonCommand),
    /// Notifications: Codex's `notify` hook for long turns, and a test of the channels.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Team members' keys (team mode): add, list, disable, enable, remove.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Shell completions (bash, zsh, fish, powershell, elvish) on stdout.
    Completions(completions::CompletionsArgs),
    /// The man page (roff) on stdout, or one page per command with `--dir`.
    Man(completions::ManArgs),
}

#[derive(Debug, Subcommand)]
enum PricingCommand {
    /// The price table and where each price comes from.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Entry point shared by both binaries.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let tui = match &cli.command {
        None => serve::tui_wanted(&cli.serve),
        Some(Command::Serve(args)) => serve::tui_wanted(args),
        Some(_) => false,
    };
    // Kept to the end of `main`: dropping it flushes the log lines still queued.
    let log_writer = init_logging(cli.log_format, tui);
    // `notify` writes to programs that may exit without reading: an error, not a signal.
    if !matches!(
        cli.command,
        None | Some(Command::Serve(_) | Command::Notify(_))
    ) {
        restore_sigpipe();
    }
    let result = match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => serve::run(args, tui.then(|| log_writer.target())),
        Command::Provider(command) => provider::run(command),
        Command::Routing(command) => routing::run(command),
        Command::Usage(command) => usage::run(command),
        Command::Switch(command) => switch::run(command),
        Command::Session(command) => session::run(command),
        Command::Pricing(PricingCommand::List { json }) => usage::pricing_list(json),
        Command::Balance(command) => balance::run(command),
        Command::Status(args) => status::run(args),
        Command::Codex(command) => codex::run(command),
        Command::Tui(args) => tui::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Daemon(command) => daemon::run(command),
        Command::Notify(command) => notify::run(command),
        Command::Keys(command) => keys::run(command),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
        Command::Config(command) => config_cmd::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codex-helper: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The helper's config, which a command needs to exist.
fn existing_config(homes: &crate::config::Homes) -> anyhow::Result<crate::config::LoadedConfig> {
    use anyhow::Context;
    let path = homes.helper_config();
    crate::config::load::load(&path)?.with_context(|| {
        format!(
            "{} does not exist yet; run `codex-helper serve` or `codex-helper provider add` first",
            path.display()
        )
    })
}

/// Runs a command's async part on a runtime of its own (one thread: a command waits on the
/// network, it does not serve).
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    use anyhow::Context;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Logs go to stderr through a writer thread (see [`log_writer`]): the proxy's event loop
/// only appends a line to a buffer, so a slow or stalled reader of stderr never stalls requests.
/// With `tui` (`serve` will show the terminal UI) they go to a log file for most of the run,
/// so they are written without colours.
fn init_logging(format: LogFormat, tui: bool) -> log_writer::LogWriter {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("CODEX_HELPER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (buffer, writer) = log_writer::LogWriter::start(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(buffer)
        .with_ansi(!tui && std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.fmt_fields(crate::log_fields::LogFields).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    writer
}

/// Reports go to stdout, often into a pipe (`| head`); like other command-line tools they end
/// quietly when the reader goes away. (The server keeps Rust's default of ignoring SIGPIPE, so
/// a closed socket is an error to handle, not a signal.)
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal disposition to its default at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
