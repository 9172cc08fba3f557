//! The terminal UI's state and what each key does to it. Pure: no terminal, no network, no
//! clock of its own (the caller passes `now`), so every key can be tested; what must reach the
//! helper comes back as a [`Command`] for the fetcher.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::data::{Action, Command, Query, Snapshot, Update};
use super::i18n::{Lang, Msg};

/// How long a first `C` waits for the second that starts the relay probe.
pub const CONFIRM_WINDOW: Duration = Duration::from_secs(3);
/// Lines `PgUp`/`PgDn` move.
const PAGE_STEP: usize = 10;

/// The pages, in the order of their number keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Page {
    #[default]
    Dashboard,
    Routing,
    Sessions,
    Requests,
    Usage,
    Settings,
}

impl Page {
    pub const ALL: [Page; 6] = [
        Page::Dashboard,
        Page::Routing,
        Page::Sessions,
        Page::Requests,
        Page::Usage,
        Page::Settings,
    ];

    pub fn title(self) -> Msg {
        match self {
            Page::Dashboard => Msg::PageDashboard,
            Page::Routing => Msg::PageRouting,
            Page::Sessions => Msg::PageSessions,
            Page::Requests => Msg::PageRequests,
            Page::Usage => Msg::PageUsage,
            Page::Settings => Msg::PageSettings,
        }
    }

    fn index(self) -> usize {
        Page::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    fn step(self, by: isize) -> Page {
        let n = Page::ALL.len() as isize;
        Page::ALL[(self.index() as isize + by).rem_euclid(n) as usize]
    }
}

/// Whose helper the UI shows, which decides what quitting does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// `codex-helper tui`: a helper running elsewhere; quitting the UI leaves it running.
    #[default]
    Attached,
    /// Started by `serve` in its own terminal: quitting the UI stops the helper; while the UI
    /// owns the screen the helper's log lines go to `log`.
    Serving { log: PathBuf },
}

impl Mode {
    pub fn serving(&self) -> bool {
        matches!(self, Mode::Serving { .. })
    }
}

/// A line for the status bar: what happened, and the helper's own words if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub msg: Msg,
    pub detail: String,
    pub failed: bool,
}

/// Everything the UI shows and remembers.
#[derive(Debug, Default)]
pub struct App {
    /// Attached to a helper elsewhere, or run by `serve`: what quitting does.
    pub mode: Mode,
    pub page: Page,
    pub lang: Lang,
    pub help: bool,
    pub quit: bool,
    /// The latest poll; `None` until the first arrives.
    pub data: Option<Snapshot>,
    pub query: Query,
    /// The selected endpoint on the Routing page.
    pub selected: usize,
    /// Usage: only providers with errors or a balance that is not ok.
    pub attention: bool,
    /// Usage: the first line shown.
    pub scroll: usize,
    /// When the first `C` was pressed, while the second is awaited.
    pub confirm_since: Option<Instant>,
    /// The relay probe's verdict lines.
    pub verdicts: Vec<String>,
    pub notice: Option<Notice>,
}

impl App {
    /// Applies a key pressed at `now`; returns what the fetcher must do, if anything.
    pub fn on_key(&mut self, key: KeyEvent, now: Instant) -> Option<Command> {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return None;
        }
        if self.help {
            match key.code {
                KeyCode::Char('q') => self.quit = true,
                _ => self.help = false,
            }
            return None;
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('L') => self.lang = self.lang.toggled(),
            KeyCode::Char('R') => return self.act(Action::Reload, Msg::Running),
            KeyCode::Tab => self.page = self.page.step(1),
            KeyCode::BackTab => self.page = self.page.step(-1),
            KeyCode::Char(c @ '1'..='6') => {
                self.page = Page::ALL[c as usize - '1' as usize];
            }
            _ => return self.on_page_key(key.code, now),
        }
        None
    }

    fn on_page_key(&mut self, code: KeyCode, now: Instant) -> Option<Command> {
        match (self.page, code) {
            (Page::Routing, KeyCode::Up) => self.selected = self.selected.saturating_sub(1),
            (Page::Routing, KeyCode::Down) => {
                let last = self.endpoint_count().saturating_sub(1);
                self.selected = (self.selected + 1).min(last);
            }
            (Page::Routing, KeyCode::Char(c @ ('e' | 'x'))) => {
                let endpoint = self.data.as_ref()?.endpoints.get(self.selected)?;
                let action = Action::Switch {
                    provider: endpoint.provider.clone(),
                    endpoint: endpoint.endpoint.clone(),
                    enabled: c == 'e',
                };
                return self.act(action, Msg::Running);
            }
            (Page::Requests, KeyCode::Char('f')) => {
                self.query.errors_only = !self.query.errors_only;
                return Some(Command::Query(self.query));
            }
            (Page::Usage, KeyCode::Char('g')) => {
                return self.act(Action::RefreshBalances, Msg::Running);
            }
            (Page::Usage, KeyCode::Char('d')) => {
                self.query.window = self.query.window.next();
                return Some(Command::Query(self.query));
            }
            (Page::Usage, KeyCode::Char('a')) => {
                self.attention = !self.attention;
                self.scroll = 0;
            }
            (Page::Usage, KeyCode::PageDown) => self.scroll += PAGE_STEP,
            (Page::Usage, KeyCode::PageUp) => self.scroll = self.scroll.saturating_sub(PAGE_STEP),
            (Page::Settings, KeyCode::Char('C')) => return self.confirm_probe(now),
            _ => {}
        }
        None
    }

    /// The first `C` asks; a second within [`CONFIRM_WINDOW`] runs the probe.
    fn confirm_probe(&mut self, now: Instant) -> Option<Command> {
        match self.confirm_since {
            Some(first) if now.duration_since(first) <= CONFIRM_WINDOW => {
                self.confirm_since = None;
                self.verdicts.clear();
                self.act(Action::RelayCapabilities, Msg::Running)
            }
            _ => {
                self.confirm_since = Some(now);
                self.notice(Msg::PressCAgain, String::new(), false);
                None
            }
        }
    }

    /// Forgets a first `C` that waited too long (called on every tick).
    pub fn on_tick(&mut self, now: Instant) {
        if self
            .confirm_since
            .is_some_and(|first| now.duration_since(first) > CONFIRM_WINDOW)
        {
            self.confirm_since = None;
            if self
                .notice
                .as_ref()
                .is_some_and(|n| n.msg == Msg::PressCAgain)
            {
                self.notice = None;
            }
        }
    }

    /// Applies what the fetcher sent.
    pub fn on_update(&mut self, update: Update) {
        match update {
            Update::Data(snapshot) => {
                self.selected = self
                    .selected
                    .min(snapshot.endpoints.len().saturating_sub(1));
                self.data = Some(*snapshot);
            }
            Update::Done(action, Ok(lines)) => {
                let msg = match action {
                    Action::Reload => Msg::Reloaded,
                    Action::Switch { enabled: true, .. } => Msg::Enabled,
                    Action::Switch { enabled: false, .. } => Msg::Disabled,
                    Action::RefreshBalances => Msg::BalancesRefreshed,
                    Action::RelayCapabilities => Msg::Verdicts,
                };
                let detail = match &action {
                    Action::Switch {
                        provider, endpoint, ..
                    } => format!("{provider}.{endpoint}"),
                    _ => String::new(),
                };
                if action == Action::RelayCapabilities {
                    self.verdicts = lines;
                }
                self.notice(msg, detail, false);
            }
            Update::Done(action, Err(error)) => {
                let msg = match action {
                    Action::Reload => Msg::ReloadFailed,
                    _ => Msg::ActionFailed,
                };
                self.notice(msg, error, true);
            }
        }
    }

    fn act(&mut self, action: Action, msg: Msg) -> Option<Command> {
        self.notice(msg, String::new(), false);
        Some(Command::Act(action))
    }

    fn notice(&mut self, msg: Msg, detail: String, failed: bool) {
        self.notice = Some(Notice {
            msg,
            detail,
            failed,
        });
    }

    fn endpoint_count(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.endpoints.len())
    }

    /// The status bar's keys, saying what `q` does to the helper.
    pub fn footer_keys(&self) -> Msg {
        if self.mode.serving() {
            Msg::FooterKeysServing
        } else {
            Msg::FooterKeys
        }
    }

    /// The help overlay's line for `q`.
    pub fn quit_help(&self) -> Msg {
        if self.mode.serving() {
            Msg::HelpQuitServing
        } else {
            Msg::HelpQuit
        }
    }

    /// Where the helper logs while this UI owns the screen (run by `serve` only).
    pub fn log_file(&self) -> Option<&std::path::Path> {
        match &self.mode {
            Mode::Serving { log } => Some(log),
            Mode::Attached => None,
        }
    }

    /// A message in the current language.
    pub fn t(&self, msg: Msg) -> &'static str {
        msg.text(self.lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::data::{Endpoint, Window};

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn code(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn with_endpoints() -> App {
        let endpoint = |p: &str| Endpoint {
            provider: p.into(),
            endpoint: "default".into(),
            key: format!("{p}.default"),
            ..Endpoint::default()
        };
        let mut app = App::default();
        app.on_update(Update::Data(Box::new(Snapshot {
            endpoints: vec![endpoint("a"), endpoint("b"), endpoint("c")],
            ..Snapshot::default()
        })));
        app
    }

    #[test]
    fn number_keys_and_tab_switch_pages() {
        let now = Instant::now();
        let mut app = App::default();
        app.on_key(key('5'), now);
        assert_eq!(app.page, Page::Usage);
        app.on_key(code(KeyCode::Tab), now);
        assert_eq!(app.page, Page::Settings);
        app.on_key(code(KeyCode::Tab), now);
        assert_eq!(app.page, Page::Dashboard);
        app.on_key(code(KeyCode::BackTab), now);
        assert_eq!(app.page, Page::Settings);
    }

    #[test]
    fn q_and_ctrl_c_quit_and_help_closes_on_any_key() {
        let now = Instant::now();
        let mut app = App::default();
        app.on_key(key('?'), now);
        assert!(app.help);
        app.on_key(code(KeyCode::Esc), now);
        assert!(!app.help && !app.quit);
        app.on_key(
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            now,
        );
        assert!(app.quit);
        let mut app = App::default();
        app.on_key(key('q'), now);
        assert!(app.quit);
    }

    #[test]
    fn language_switches_with_l() {
        let mut app = App::default();
        app.on_key(key('L'), Instant::now());
        assert_eq!(app.lang, Lang::Zh);
        assert_eq!(app.t(Msg::PageRouting), "路由");
        app.on_key(key('L'), Instant::now());
        assert_eq!(app.lang, Lang::En);
    }

    #[test]
    fn routing_keys_switch_the_selected_endpoint() {
        let now = Instant::now();
        let mut app = with_endpoints();
        app.on_key(key('2'), now);
        app.on_key(code(KeyCode::Down), now);
        app.on_key(code(KeyCode::Down), now);
        app.on_key(code(KeyCode::Down), now);
        assert_eq!(app.selected, 2, "the selection stops at the last endpoint");
        let command = app.on_key(key('x'), now);
        assert!(matches!(
            command,
            Some(Command::Act(Action::Switch { ref provider, enabled: false, .. })) if provider == "c"
        ));
        app.on_key(code(KeyCode::Up), now);
        let command = app.on_key(key('e'), now);
        assert!(matches!(
            command,
            Some(Command::Act(Action::Switch { ref provider, enabled: true, .. })) if provider == "b"
        ));
        // Not on the Routing page, `x` does nothing.
        app.on_key(key('1'), now);
        assert!(app.on_key(key('x'), now).is_none());
    }

    #[test]
    fn filters_and_window_change_what_is_fetched() {
        let now = Instant::now();
        let mut app = App::default();
        app.on_key(key('4'), now);
        let command = app.on_key(key('f'), now);
        assert!(matches!(command, Some(Command::Query(q)) if q.errors_only));
        app.on_key(key('5'), now);
        let windows: Vec<Window> = (0..4)
            .map(|_| match app.on_key(key('d'), now) {
                Some(Command::Query(q)) => q.window,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(windows, [Window::D7, Window::D30, Window::H1, Window::H24]);
        app.on_key(key('a'), now);
        assert!(app.attention);
        app.on_key(code(KeyCode::PageDown), now);
        assert_eq!(app.scroll, 10);
        app.on_key(code(KeyCode::PageUp), now);
        app.on_key(code(KeyCode::PageUp), now);
        assert_eq!(app.scroll, 0);
    }

    #[test]
    fn the_relay_probe_needs_a_second_c_within_three_seconds() {
        let start = Instant::now();
        let mut app = App::default();
        app.on_key(key('6'), start);
        assert!(app.on_key(key('C'), start).is_none());
        assert_eq!(app.notice.as_ref().unwrap().msg, Msg::PressCAgain);
        // Too late: the second press asks again instead of running.
        let late = start + Duration::from_secs(4);
        assert!(app.on_key(key('C'), late).is_none());
        let command = app.on_key(key('C'), late + Duration::from_secs(2));
        assert!(matches!(
            command,
            Some(Command::Act(Action::RelayCapabilities))
        ));
        // A tick after the window forgets a lone first press.
        app.on_key(key('C'), start);
        app.on_tick(start + Duration::from_secs(5));
        assert!(app.confirm_since.is_none() && app.notice.is_none());
    }

    #[test]
    fn reload_works_on_every_page_and_results_show_as_notices() {
        let now = Instant::now();
        let mut app = App::default();
        app.on_key(key('3'), now);
        assert!(matches!(
            app.on_key(key('R'), now),
            Some(Command::Act(Action::Reload))
        ));
        app.on_update(Update::Done(Action::Reload, Err("bad toml".into())));
        let notice = app.notice.clone().unwrap();
        assert_eq!(
            (notice.msg, notice.detail.as_str()),
            (Msg::ReloadFailed, "bad toml")
        );
        app.on_update(Update::Done(
            Action::RelayCapabilities,
            Ok(vec!["a.default: official-relay fits".into()]),
        ));
        assert_eq!(app.verdicts, ["a.default: official-relay fits"]);
    }
}
