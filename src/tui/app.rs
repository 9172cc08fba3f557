//! The terminal UI's state and what each key does to it. Pure: no terminal, no network, no
//! clock of its own (the caller passes `now`, and the screen's height in `body_rows`), so
//! every key can be tested; what must reach the helper comes back as a [`Command`] for the
//! fetcher.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::data::{
    Action, Command, Effort, Endpoint, Query, Request, Session, SessionChange, Snapshot, Update,
};
use super::i18n::{Lang, Msg};
use super::picker::{self, PickKind, Picked, Picker};
use super::scroll::{Cursor, movement};

/// How long a first `C` (or `R` on Sessions, `P` on Routing) waits for the second that runs it.
pub const CONFIRM_WINDOW: Duration = Duration::from_secs(3);
/// Lines `PgUp`/`PgDn` move on the Usage page.
const PAGE_STEP: usize = 10;
/// The body's height before the run loop has measured the screen (an 80×24 terminal).
const DEFAULT_BODY_ROWS: usize = 22;
/// Lines of the Sessions page above its table: title, filters, column names.
pub const SESSIONS_HEAD: usize = 3;
/// Lines of the selected session's detail under the table.
pub const SESSION_DETAIL: usize = 6;
/// Table rows kept before the detail is given room.
const SESSIONS_MIN_ROWS: usize = 4;

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

    /// Rows of the page's list that fit a body `body` lines high (at least one).
    pub fn list_rows(self, body: usize) -> usize {
        let chrome = match self {
            // Title, keys, column names; a blank line and where a request goes now.
            Page::Routing => 5,
            // Title, filter, column names.
            Page::Requests => 3,
            Page::Sessions if session_detail_shown(body) => SESSIONS_HEAD + SESSION_DETAIL,
            Page::Sessions => SESSIONS_HEAD,
            _ => 0,
        };
        body.saturating_sub(chrome).max(1)
    }
}

/// Whether a body `body` lines high has room for the selected session's detail.
pub fn session_detail_shown(body: usize) -> bool {
    body >= SESSIONS_HEAD + SESSION_DETAIL + SESSIONS_MIN_ROWS
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

/// The Sessions page's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionFilter {
    /// `v`: only sessions with an override in force.
    pub overrides_only: bool,
    /// `e`: only sessions with errors in the last 24 h.
    pub errors_only: bool,
}

impl SessionFilter {
    pub fn keeps(self, session: &Session) -> bool {
        (!self.overrides_only || session.overridden())
            && (!self.errors_only || session.errors_24h > 0)
    }
}

/// A double press waiting for its second key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// `C` `C` on Settings: the relay capability probe.
    Probe,
    /// `R` `R` on Sessions: reset every override of this session.
    Reset(String),
    /// `P` `P` on Routing: pin the entry route to `provider` in the config file. The endpoint
    /// key is kept so that a `P` on another endpoint (even of the same provider) asks again:
    /// the second press confirms what the first one showed.
    PinInConfig { endpoint: String, provider: String },
}

impl Pending {
    /// The status line's question after the first press.
    fn question(&self) -> (Msg, String) {
        match self {
            Pending::Probe => (Msg::PressCAgain, String::new()),
            Pending::Reset(session) => (Msg::PressRAgain, session.clone()),
            Pending::PinInConfig { provider, .. } => (Msg::PressPAgain, provider.clone()),
        }
    }

    /// What the second press runs.
    fn action(self) -> Action {
        match self {
            Pending::Probe => Action::RelayCapabilities,
            Pending::Reset(session) => Action::Session {
                session,
                change: SessionChange::ResetAll,
            },
            Pending::PinInConfig { provider, .. } => Action::PinInConfig { provider },
        }
    }
}

/// The first press of a double press, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub pending: Pending,
    pub since: Instant,
}

/// Everything the UI shows and remembers.
#[derive(Debug, Default)]
pub struct App {
    /// Attached to a helper elsewhere, or run by `serve`: what quitting does.
    pub mode: Mode,
    /// The helper's web console (its admin API's root), shown on Settings: under `serve` the
    /// UI covers the line that printed it.
    pub console_url: String,
    pub page: Page,
    pub lang: Lang,
    pub help: bool,
    pub quit: bool,
    /// The latest poll; `None` until the first arrives.
    pub data: Option<Snapshot>,
    pub query: Query,
    /// Lines the page body has on screen (set by the run loop; `0` until measured).
    pub body_rows: usize,
    /// The selected endpoint on the Routing page.
    pub routing: Cursor,
    /// The selected request on the Requests page.
    pub requests: Cursor,
    /// The selected session on the Sessions page (among those the filters keep).
    pub sessions: Cursor,
    pub session_filter: SessionFilter,
    /// The pin or profile menu, while open.
    pub picker: Option<Picker>,
    /// Usage: only providers with errors or a balance that is not ok.
    pub attention: bool,
    /// Usage: the first line shown.
    pub scroll: usize,
    /// A first `C`, `R` or `P`, while the second is awaited.
    pub confirm: Option<Confirm>,
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
        if self.picker.is_some() {
            return self.on_picker_key(key.code);
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('L') => self.lang = self.lang.toggled(),
            // On Sessions, `R` resets the selected session (a page key, below).
            KeyCode::Char('R') if self.page != Page::Sessions => {
                return self.act(Action::Reload, Msg::Running);
            }
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
        let rows = self.page.list_rows(self.body());
        if let Some(by) = movement(code, rows) {
            match self.page {
                Page::Routing => {
                    let keys = self.endpoint_keys();
                    self.routing.step(by, &keys, rows);
                }
                Page::Requests => {
                    let keys = self.request_keys();
                    self.requests.step(by, &keys, rows);
                }
                Page::Sessions => {
                    let keys = self.session_keys();
                    self.sessions.step(by, &keys, rows);
                }
                Page::Usage => match code {
                    KeyCode::PageDown => self.scroll += PAGE_STEP,
                    KeyCode::PageUp => self.scroll = self.scroll.saturating_sub(PAGE_STEP),
                    _ => {}
                },
                _ => {}
            }
            return None;
        }
        match (self.page, code) {
            (Page::Routing, KeyCode::Char(c @ ('e' | 'x'))) => {
                let endpoint = self.selected_endpoint()?;
                let action = Action::Switch {
                    provider: endpoint.provider.clone(),
                    endpoint: endpoint.endpoint.clone(),
                    enabled: c == 'e',
                };
                return self.act(action, Msg::Running);
            }
            (Page::Routing, KeyCode::Char('P')) => {
                let endpoint = self.selected_endpoint()?;
                let pending = Pending::PinInConfig {
                    endpoint: endpoint.key.clone(),
                    provider: endpoint.provider.clone(),
                };
                return self.confirm(pending, now);
            }
            (Page::Requests, KeyCode::Char('f')) => {
                self.query.errors_only = !self.query.errors_only;
                self.follow_lists();
                return Some(Command::Query(self.query));
            }
            (Page::Sessions, _) => return self.on_sessions_key(code, now),
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
            (Page::Settings, KeyCode::Char('C')) => return self.confirm(Pending::Probe, now),
            _ => {}
        }
        None
    }

    /// The Sessions page's own keys: filters, and overrides of the selected session.
    fn on_sessions_key(&mut self, code: KeyCode, now: Instant) -> Option<Command> {
        let change = match code {
            KeyCode::Char('v') => {
                self.session_filter.overrides_only = !self.session_filter.overrides_only;
                self.follow_lists();
                return None;
            }
            KeyCode::Char('e') => {
                self.session_filter.errors_only = !self.session_filter.errors_only;
                self.follow_lists();
                return None;
            }
            KeyCode::Char('l') => SessionChange::Effort(Effort::Low),
            KeyCode::Char('m') => SessionChange::Effort(Effort::Medium),
            KeyCode::Char('h') => SessionChange::Effort(Effort::High),
            KeyCode::Char('X') => SessionChange::Effort(Effort::XHigh),
            KeyCode::Char('x') => SessionChange::ClearEffort,
            KeyCode::Char('P') => SessionChange::ClearPin,
            KeyCode::Char('p') => return self.open_pin_picker(),
            KeyCode::Char('b') => return self.open_profile_picker(),
            KeyCode::Char('R') => {
                let session = self.selected_session_or_say()?;
                return self.confirm(Pending::Reset(session), now);
            }
            _ => return None,
        };
        let session = self.selected_session_or_say()?;
        self.act(Action::Session { session, change }, Msg::Running)
    }

    /// The selected session's id, or a notice that none is.
    fn selected_session_or_say(&mut self) -> Option<String> {
        let id = self.selected_session().map(|s| s.session.clone());
        if id.is_none() {
            self.notice(Msg::NoSessionSelected, String::new(), true);
        }
        id
    }

    fn open_pin_picker(&mut self) -> Option<Command> {
        let session = self.selected_session_or_say()?;
        let choices = picker::pin_choices(&self.data.as_ref()?.endpoints);
        if choices.is_empty() {
            self.notice(Msg::NoTargets, String::new(), true);
            return None;
        }
        let current = self
            .selected_session()
            .and_then(|s| s.overrides.as_ref())
            .and_then(|o| o.route_target.clone());
        self.picker = Some(Picker::open(
            PickKind::Pin,
            session,
            choices,
            current.as_deref(),
        ));
        None
    }

    fn open_profile_picker(&mut self) -> Option<Command> {
        let session = self.selected_session_or_say()?;
        let data = self.data.as_ref()?;
        let Some(profiles) = &data.profiles else {
            let error = data.profiles_error.clone().unwrap_or_default();
            self.notice(Msg::ProfilesUnreadable, error, true);
            return None;
        };
        if profiles.profiles.is_empty() {
            self.notice(Msg::NoProfiles, String::new(), true);
            return None;
        }
        let choices = picker::profile_choices(profiles);
        let current = self
            .selected_session()
            .and_then(|s| s.overrides.as_ref())
            .and_then(|o| o.profile.clone());
        self.picker = Some(Picker::open(
            PickKind::Profile,
            session,
            choices,
            current.as_deref(),
        ));
        None
    }

    /// Keys while a picker is open: it takes them all (Ctrl-C still quits).
    fn on_picker_key(&mut self, code: KeyCode) -> Option<Command> {
        match self.picker.as_mut()?.on_key(code) {
            Picked::Open => None,
            Picked::Cancelled => {
                self.picker = None;
                None
            }
            Picked::Chosen(change) => {
                let session = self.picker.take()?.session;
                self.act(Action::Session { session, change }, Msg::Running)
            }
        }
    }

    /// The first press asks; a second of the same within [`CONFIRM_WINDOW`] runs it.
    fn confirm(&mut self, pending: Pending, now: Instant) -> Option<Command> {
        match self.confirm.take() {
            Some(first)
                if first.pending == pending
                    && now.duration_since(first.since) <= CONFIRM_WINDOW =>
            {
                if pending == Pending::Probe {
                    self.verdicts.clear();
                }
                self.act(pending.action(), Msg::Running)
            }
            _ => {
                let (msg, detail) = pending.question();
                self.confirm = Some(Confirm {
                    pending,
                    since: now,
                });
                self.notice(msg, detail, false);
                None
            }
        }
    }

    /// Forgets a first `C`, `R` or `P` that waited too long (called on every tick), and its
    /// question on the status line.
    pub fn on_tick(&mut self, now: Instant) {
        let Some(first) = self
            .confirm
            .take_if(|first| now.duration_since(first.since) > CONFIRM_WINDOW)
        else {
            return;
        };
        let (asked, _) = first.pending.question();
        if self.notice.as_ref().is_some_and(|n| n.msg == asked) {
            self.notice = None;
        }
    }

    /// Applies what the fetcher sent.
    pub fn on_update(&mut self, update: Update) {
        match update {
            Update::Data(snapshot) => {
                self.data = Some(*snapshot);
                self.follow_lists();
            }
            Update::Done(action, Ok(lines)) => {
                let (msg, detail) = self.done_notice(&action, &lines);
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

    /// What the status line says when `action` succeeded with `lines`.
    fn done_notice(&self, action: &Action, lines: &[String]) -> (Msg, String) {
        match action {
            Action::Reload => (Msg::Reloaded, String::new()),
            Action::Switch {
                provider,
                endpoint,
                enabled,
            } => {
                let msg = if *enabled {
                    Msg::Enabled
                } else {
                    Msg::Disabled
                };
                (msg, format!("{provider}.{endpoint}"))
            }
            Action::RefreshBalances => (Msg::BalancesRefreshed, String::new()),
            Action::RelayCapabilities => (Msg::Verdicts, String::new()),
            Action::PinInConfig { .. } => (Msg::PinnedInConfig, lines.join("; ")),
            Action::Session { session, change } => {
                let set = |label: Msg, value: &str| {
                    (
                        Msg::SessionUpdated,
                        format!("{session}: {} {value}", self.t(label)),
                    )
                };
                match change {
                    SessionChange::Effort(effort) => set(Msg::OvEffort, effort.as_str()),
                    SessionChange::Pin(target) => set(Msg::OvPin, target),
                    SessionChange::Profile(Some(profile)) => set(Msg::OvProfile, profile),
                    SessionChange::ClearEffort => (Msg::EffortCleared, session.clone()),
                    SessionChange::ClearPin => (Msg::PinCleared, session.clone()),
                    SessionChange::ResetAll => (Msg::OverridesReset, session.clone()),
                    SessionChange::Profile(None) => (Msg::ProfileRemoved, session.clone()),
                }
            }
        }
    }

    /// Puts every list's selection back on its row after the rows or a filter changed.
    fn follow_lists(&mut self) {
        let body = self.body();
        let keys = self.endpoint_keys();
        self.routing.refresh(&keys, Page::Routing.list_rows(body));
        let keys = self.request_keys();
        self.requests.refresh(&keys, Page::Requests.list_rows(body));
        let keys = self.session_keys();
        self.sessions.refresh(&keys, Page::Sessions.list_rows(body));
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

    /// The body's height, or an 80×24 terminal's before it is measured.
    pub fn body(&self) -> usize {
        match self.body_rows {
            0 => DEFAULT_BODY_ROWS,
            rows => rows,
        }
    }

    /// The requests the Requests page lists: all, or the failed ones (`f`).
    pub fn shown_requests<'a>(&self, data: &'a Snapshot) -> &'a [Request] {
        if self.query.errors_only {
            &data.recent_errors
        } else {
            &data.recent
        }
    }

    /// The sessions the filters keep, newest first.
    pub fn shown_sessions<'a>(&self, data: &'a Snapshot) -> Vec<&'a Session> {
        data.sessions
            .iter()
            .flatten()
            .filter(|s| self.session_filter.keeps(s))
            .collect()
    }

    /// The selected session, if any is shown.
    pub fn selected_session(&self) -> Option<&Session> {
        let data = self.data.as_ref()?;
        self.shown_sessions(data).get(self.sessions.index).copied()
    }

    /// The endpoint selected on the Routing page, if any is listed.
    fn selected_endpoint(&self) -> Option<&Endpoint> {
        self.data.as_ref()?.endpoints.get(self.routing.index)
    }

    fn endpoint_keys(&self) -> Vec<String> {
        self.data.as_ref().map_or_else(Vec::new, |d| {
            d.endpoints.iter().map(|e| e.key.clone()).collect()
        })
    }

    fn request_keys(&self) -> Vec<String> {
        self.data.as_ref().map_or_else(Vec::new, |d| {
            self.shown_requests(d)
                .iter()
                .map(|r| match r.id {
                    // An older helper without row ids: the start time and endpoint.
                    0 => format!("{}|{:?}", r.started_local, r.endpoint),
                    id => id.to_string(),
                })
                .collect()
        })
    }

    fn session_keys(&self) -> Vec<String> {
        self.data.as_ref().map_or_else(Vec::new, |d| {
            self.shown_sessions(d)
                .iter()
                .map(|s| s.session.clone())
                .collect()
        })
    }

    /// The status bar's keys, saying what `q` does to the helper.
    pub fn footer_keys(&self) -> Msg {
        match (self.page == Page::Sessions, self.mode.serving()) {
            (false, false) => Msg::FooterKeys,
            (false, true) => Msg::FooterKeysServing,
            (true, false) => Msg::FooterKeysSessions,
            (true, true) => Msg::FooterKeysSessionsServing,
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
mod tests;
