//! `codex-helper tui`: a terminal UI over the running helper's admin API.
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
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use app::App;
use data::{Fetcher, Update};

/// The UI redraws at least this often (uptimes and the confirmation window move on).
const TICK: Duration = Duration::from_secs(1);
/// How long one wait for a key lasts before the fetcher's channel is looked at again.
const KEY_WAIT: Duration = Duration::from_millis(100);

/// Runs the UI against the admin API at `admin` until the user quits.
pub fn run(admin: SocketAddr) -> anyhow::Result<()> {
    let mut app = App::default();
    let (fetcher, updates) = Fetcher::start(admin, app.query)?;
    let mut terminal = enter()?;
    let result = event_loop(&mut terminal, &mut app, &fetcher, &updates);
    leave();
    result
}

type Term = Terminal<CrosstermBackend<Stdout>>;

/// Raw mode and the alternate screen, with a panic hook that leaves them before the panic
/// message is printed (else it would be lost on the alternate screen).
fn enter() -> anyhow::Result<Term> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave();
        previous(info);
    }));
    terminal::enable_raw_mode()?;
    if let Err(e) = crossterm::execute!(std::io::stdout(), EnterAlternateScreen) {
        leave();
        return Err(e.into());
    }
    match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
        Ok(terminal) => Ok(terminal),
        Err(e) => {
            leave();
            Err(e.into())
        }
    }
}

/// Puts the terminal back; safe to call more than once.
fn leave() {
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
) -> anyhow::Result<()> {
    let mut dirty = true;
    let mut last_draw = Instant::now();
    while !app.quit {
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
    Ok(())
}
