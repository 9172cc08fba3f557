//! The terminal UI over a helper's admin API: `codex-helper tui` attaches it to a helper
//! running elsewhere ([`Mode::Attached`]); `serve` in a terminal runs it over its own admin API
//! ([`Mode::Serving`]), where quitting the UI stops the helper.
//!
//! The UI thread only reads keys, applies them to [`app::App`] and draws; everything that
//! touches the network runs on the fetcher's own thread ([`data::Fetcher`]). The terminal is
//! put back (raw mode off, main screen, cursor shown) however the UI ends: normally, on an
//! error, or on a panic.

pub mod app;
pub mod data;
pub mod i18n;
pub mod overrides;
pub mod pages;
pub mod picker;
pub mod scroll;
pub mod widgets;

use std::io::Stdout;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use app::App;
pub use app::Mode;
use data::{Fetcher, Update};

/// The UI redraws at least this often (uptimes and the confirmation window move on).
const TICK: Duration = Duration::from_secs(1);
/// How long one wait for a key lasts before the fetcher's channel is looked at again.
const KEY_WAIT: Duration = Duration::from_millis(100);

/// How a run of the UI ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The user quit (`q`, Ctrl-C).
    Quit,
    /// Told to stop from outside (the helper is shutting down for another reason).
    Stopped,
}

/// Runs the UI against the admin API at `admin` until the user quits.
pub fn run(admin: SocketAddr) -> anyhow::Result<()> {
    run_with(admin, Mode::Attached, &AtomicBool::new(false)).map(|_| ())
}

/// Runs the UI in `mode` until the user quits or `stop` is set (looked at every
/// [`KEY_WAIT`]).
pub fn run_with(admin: SocketAddr, mode: Mode, stop: &AtomicBool) -> anyhow::Result<Ended> {
    let serving = mode.serving();
    let mut app = App {
        mode,
        console_url: crate::admin::console_url(admin),
        ..App::default()
    };
    let (fetcher, updates) = Fetcher::start(admin, app.query)?;
    let mut terminal = enter(serving)?;
    let result = event_loop(&mut terminal, &mut app, &fetcher, &updates, stop);
    restore_terminal();
    result
}

type Term = Terminal<CrosstermBackend<Stdout>>;

/// Raw mode and the alternate screen, with a panic hook that leaves them before the panic
/// message is printed (else it would be lost on the alternate screen). When `serving`, only a
/// panic of the UI's own thread does: the helper's other threads keep serving, and the UI on.
fn enter(serving: bool) -> anyhow::Result<Term> {
    let ui = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !serving || std::thread::current().id() == ui {
            restore_terminal();
        }
        previous(info);
    }));
    terminal::enable_raw_mode()?;
    if let Err(e) = crossterm::execute!(std::io::stdout(), EnterAlternateScreen) {
        restore_terminal();
        return Err(e.into());
    }
    match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
        Ok(terminal) => Ok(terminal),
        Err(e) => {
            restore_terminal();
            Err(e.into())
        }
    }
}

/// Puts the terminal back (raw mode off, main screen, cursor shown); safe to call more than
/// once, and from another thread than the UI's.
pub fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

fn event_loop(
    terminal: &mut Term,
    app: &mut App,
    fetcher: &Fetcher,
    updates: &Receiver<Update>,
    stop: &AtomicBool,
) -> anyhow::Result<Ended> {
    let mut dirty = true;
    let mut last_draw = Instant::now();
    while !app.quit {
        if stop.load(Ordering::Relaxed) {
            return Ok(Ended::Stopped);
        }
        if dirty || last_draw.elapsed() >= TICK {
            app.on_tick(Instant::now());
            // Keys move lists by what fits: the body is the screen less the tab and status bars.
            app.body_rows = usize::from(terminal.size()?.height.saturating_sub(2));
            terminal.draw(|frame| pages::render(frame, app))?;
            last_draw = Instant::now();
            dirty = false;
        }
        loop {
            match updates.try_recv() {
                Ok(update) => {
                    app.on_update(update);
                    dirty = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    anyhow::bail!("the terminal UI's fetcher stopped unexpectedly")
                }
            }
        }
        if event::poll(KEY_WAIT)? {
            match event::read()? {
                Event::Key(key) if key.kind != KeyEventKind::Release => {
                    if let Some(command) = app.on_key(key, Instant::now()) {
                        fetcher.send(command);
                    }
                    dirty = true;
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
    Ok(Ended::Quit)
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;

    use super::app::Page;
    use super::data::{Runtime, Snapshot};
    use super::i18n::{Lang, Msg};
    use super::*;

    /// The screen as text, one string per row (a wide character's filler cell skipped).
    fn screen(app: &App) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
        terminal.draw(|frame| pages::render(frame, app)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        let mut text = String::new();
        for y in 0..30 {
            let mut skip = 0;
            for x in 0..100 {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let symbol = buffer[(x, y)].symbol();
                skip = widgets::width(symbol).saturating_sub(1);
                text.push_str(symbol);
            }
            text.push('\n');
        }
        text
    }

    fn app(mode: Mode, lang: Lang) -> App {
        App {
            mode,
            lang,
            console_url: "http://127.0.0.1:4211/".into(),
            data: Some(Snapshot {
                runtime: Some(Runtime {
                    version: "0.1.0".into(),
                    ..Runtime::default()
                }),
                ..Snapshot::default()
            }),
            ..App::default()
        }
    }

    /// The two modes differ in what `q` does to the helper: the status bar and the help say
    /// which, in both languages; only `serve`'s UI names its log file (on Settings).
    #[test]
    fn the_footer_help_and_settings_say_what_quitting_does_in_each_mode() {
        let serving = || Mode::Serving {
            log: std::path::PathBuf::from("/home/u/.codex-helper/logs/serve.log"),
        };
        for (lang, stops, keeps) in [
            (
                Lang::En,
                "q quit and stop the helper",
                "q quit (the helper keeps running)",
            ),
            (Lang::Zh, "q 退出并停止 helper", "q 退出（helper 继续运行）"),
        ] {
            let own = screen(&app(serving(), lang));
            assert!(own.contains(stops) && !own.contains(keeps), "{own}");
            let attached = screen(&app(Mode::Attached, lang));
            assert!(
                attached.contains(keeps) && !attached.contains(stops),
                "{attached}"
            );

            let mut help = app(serving(), lang);
            help.help = true;
            let text = screen(&help);
            assert!(text.contains(help.t(Msg::HelpQuitServing)), "{text}");
            let mut help = app(Mode::Attached, lang);
            help.help = true;
            let text = screen(&help);
            assert!(text.contains(help.t(Msg::HelpQuit)), "{text}");

            let mut settings = app(serving(), lang);
            settings.page = Page::Settings;
            let text = screen(&settings);
            assert!(
                text.contains(settings.t(Msg::LogFile))
                    && text.contains("/home/u/.codex-helper/logs/serve.log"),
                "{text}"
            );
            assert!(
                text.contains(settings.t(Msg::WebConsole))
                    && text.contains("http://127.0.0.1:4211/"),
                "{text}"
            );
            let mut settings = app(Mode::Attached, lang);
            settings.page = Page::Settings;
            let text = screen(&settings);
            assert!(!text.contains("serve.log"), "{text}");
        }
    }
}
