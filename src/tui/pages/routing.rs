//! Routing: every endpoint, its host, and whether routing takes it or why it passes it over;
//! the selected one can be switched on or off for 30 minutes. A list longer than the screen
//! shows the part around the selection.

use ratatui::style::{Color, Style};
use ratatui::text::Line;

use super::{fit_columns, hint, marker, plain, row, selectable};
use crate::tui::app::{App, Page};
use crate::tui::data::Snapshot;
use crate::tui::i18n::Msg;
use crate::tui::widgets::cell;

pub fn lines(app: &App, data: &Snapshot, width: usize, height: usize) -> Vec<Line<'static>> {
    let mut lines = vec![hint(app.t(Msg::RoutingKeys), width)];
    if data.endpoints.is_empty() {
        lines.push(plain(app.t(Msg::NoEndpoints), width));
        return lines;
    }
    // Marker, key, host, state (the rest).
    let cols = fit_columns(&[1, 28, 24, 0], width);
    lines.push(plain(
        &row(
            &[
                cell("", cols[0]),
                cell(app.t(Msg::ColEndpoint), cols[1]),
                cell(app.t(Msg::ColHost), cols[2]),
                cell(app.t(Msg::ColState), cols[3]),
            ],
            width,
        ),
        width,
    ));
    let rows = Page::Routing.list_rows(height);
    let top = app.routing.top_for(data.endpoints.len(), rows);
    for (i, endpoint) in data.endpoints.iter().enumerate().skip(top).take(rows) {
        let selected = i == app.routing.index;
        let state = match (&endpoint.skip, endpoint.routable) {
            (Some(skip), _) => format!("{}: {}", app.t(Msg::Skipped), skip.why),
            (None, true) => app.t(Msg::Routable).to_string(),
            (None, false) => app.t(Msg::Skipped).to_string(),
        };
        let text = row(
            &[
                cell(marker(selected), cols[0]),
                cell(&endpoint.key, cols[1]),
                cell(&endpoint.host, cols[2]),
                cell(&state, cols[3]),
            ],
            width,
        );
        let style = Style::default().fg(if endpoint.routable {
            Color::Green
        } else {
            Color::Yellow
        });
        lines.push(Line::styled(text, selectable(style, selected)));
    }
    lines.push(Line::default());
    lines.push(match &data.chosen {
        Some(chosen) => plain(
            &format!("{}: {chosen}", app.t(Msg::NextRequestGoesTo)),
            width,
        ),
        None => plain(app.t(Msg::NoRoute), width),
    });
    lines
}
