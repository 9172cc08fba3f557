//! The help overlay (`?`): the keys that work everywhere, then each page's, over the page.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::tui::app::App;
use crate::tui::i18n::Msg;
use crate::tui::widgets::truncate;

/// Every line of the overlay, in order.
pub const KEYS: [Msg; 16] = [
    Msg::HelpPages,
    Msg::HelpQuit,
    Msg::HelpReload,
    Msg::HelpLang,
    Msg::HelpHelp,
    Msg::HelpMove,
    Msg::RoutingKeys,
    Msg::HelpRoutingPin,
    Msg::HelpSessions,
    Msg::HelpSessionEffort,
    Msg::HelpSessionPin,
    Msg::HelpSessionReset,
    Msg::HelpRequests,
    Msg::UsageKeys,
    Msg::SettingsKeys,
    Msg::HelpPickers,
];

/// Draws the overlay in the middle of `area`.
pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let width = area.width.min(72);
    let height = area.height.min(KEYS.len() as u16 + 2);
    let x = area.x + (area.width - width) / 2;
    let y = area.y + (area.height - height) / 2;
    let popup = Rect::new(x, y, width, height);
    let inner = width.saturating_sub(2) as usize;
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|&m| {
            if m == Msg::HelpQuit {
                app.quit_help()
            } else {
                m
            }
        })
        .map(|m| Line::raw(truncate(app.t(m), inner)))
        .collect();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(truncate(app.t(Msg::HelpTitle), inner));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
