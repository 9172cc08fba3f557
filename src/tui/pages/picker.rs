//! The pin and profile pickers: a small box over the Sessions page listing the choices, the
//! selected one marked, scrolled so it stays in view.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{marker, selectable};
use crate::tui::app::App;
use crate::tui::i18n::Msg;
use crate::tui::picker::{Choice, PICKER_ROWS, PickKind, Picker};
use crate::tui::widgets::{middle, truncate};

/// Draws `picker` in the middle of `area`.
pub fn render(frame: &mut Frame, app: &App, picker: &Picker, area: Rect) {
    let width = area.width.min(64);
    let rows = picker.choices.len().min(PICKER_ROWS);
    // Borders, the session line, the choices.
    let height = area.height.min(rows as u16 + 3);
    let x = area.x + (area.width - width) / 2;
    let y = area.y + (area.height - height) / 2;
    let popup = Rect::new(x, y, width, height);
    let inner = width.saturating_sub(2) as usize;
    let shown_rows = (height as usize).saturating_sub(3);
    let title = match picker.kind {
        PickKind::Pin => Msg::PickPin,
        PickKind::Profile => Msg::PickProfile,
    };
    let session = format!("{}: ", app.t(Msg::ColSession));
    let session_room = inner.saturating_sub(crate::tui::widgets::width(&session));
    let mut lines = vec![Line::raw(truncate(
        &format!("{session}{}", middle(&picker.session, session_room)),
        inner,
    ))];
    let top = picker.cursor.top_for(picker.choices.len(), shown_rows);
    for (i, choice) in picker.choices.iter().enumerate().skip(top).take(shown_rows) {
        let selected = i == picker.cursor.index;
        let text = format!("{} {}", marker(selected), label(app, choice));
        lines.push(Line::styled(
            truncate(&text, inner),
            selectable(Style::default(), selected),
        ));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(truncate(app.t(title), inner));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}

/// What a choice reads as: `alpha (any of its endpoints)`, `fast  gpt-5 · high`.
fn label(app: &App, choice: &Choice) -> String {
    match &choice.value {
        None => app.t(Msg::NoProfileChoice).to_string(),
        Some(value) if choice.any_endpoint => format!("{value} ({})", app.t(Msg::AnyEndpoint)),
        Some(value) if choice.note.is_empty() => value.clone(),
        Some(value) => format!("{value}  {}", choice.note),
    }
}
