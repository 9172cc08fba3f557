//! Sessions: not reported by the running helper yet, and said so rather than shown empty.

use ratatui::text::Line;

use super::plain;
use crate::tui::app::App;
use crate::tui::i18n::Msg;

pub fn lines(app: &App, width: usize) -> Vec<Line<'static>> {
    vec![Line::default(), plain(app.t(Msg::SessionsEmpty), width)]
}
