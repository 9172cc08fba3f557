//! Requests: the newest requests from the ledger, or only the failed ones (`f`); the list
//! shows the part around the selected request, which stays on its request as new ones arrive.

use ratatui::style::{Color, Style};
use ratatui::text::Line;

use super::{fit_columns, hint, marker, plain, row, selectable};
use crate::tui::app::{App, Page};
use crate::tui::data::Snapshot;
use crate::tui::i18n::Msg;
use crate::tui::widgets::{cell, cell_right, count, millis, money_fit, usd};

pub fn lines(app: &App, data: &Snapshot, width: usize, height: usize) -> Vec<Line<'static>> {
    let filter = if app.query.errors_only {
        Msg::ErrorsOnly
    } else {
        Msg::AllRequests
    };
    let rows = app.shown_requests(data);
    let text = format!("{}  ·  {}", app.t(filter), app.t(Msg::RequestsKeys));
    let mut lines = vec![hint(&text, width)];
    if rows.is_empty() {
        lines.push(plain(app.t(Msg::NoRequests), width));
        return lines;
    }
    // Marker, time, model, provider/endpoint (the rest), status, tokens, cost, TTFB.
    let cols = fit_columns(&[1, 8, 18, 0, 8, 7, 9, 8], width);
    lines.push(plain(
        &row(
            &[
                cell("", cols[0]),
                cell(app.t(Msg::ColTime), cols[1]),
                cell(app.t(Msg::ColModel), cols[2]),
                cell(app.t(Msg::ColProvider), cols[3]),
                cell(app.t(Msg::ColStatus), cols[4]),
                cell_right(app.t(Msg::Tokens), cols[5]),
                cell_right(app.t(Msg::Cost), cols[6]),
                cell_right(app.t(Msg::ColTtfb), cols[7]),
            ],
            width,
        ),
        width,
    ));
    let shown = Page::Requests.list_rows(height);
    let top = app.requests.top_for(rows.len(), shown);
    for (i, request) in rows.iter().enumerate().skip(top).take(shown) {
        let selected = i == app.requests.index;
        // `YYYY-MM-DD HH:MM:SS`: the time of day is enough here.
        let time = request
            .started_local
            .split(' ')
            .nth(1)
            .unwrap_or(&request.started_local);
        let target = match (&request.provider, &request.endpoint) {
            (Some(p), Some(e)) if !e.starts_with(&format!("{p}.")) => format!("{p}/{e}"),
            (_, Some(e)) => e.clone(),
            (Some(p), None) => p.clone(),
            (None, None) => "-".into(),
        };
        let status = request
            .status
            .map_or_else(|| request.outcome.clone(), |s| s.to_string());
        let cost = request.cost_usd.map_or("-".into(), usd);
        let text = row(
            &[
                cell(marker(selected), cols[0]),
                cell(time, cols[1]),
                cell(request.model.as_deref().unwrap_or("-"), cols[2]),
                cell(&target, cols[3]),
                cell(&status, cols[4]),
                cell_right(&request.total_tokens.map_or("-".into(), count), cols[5]),
                cell_right(&money_fit(&cost, cols[6]), cols[6]),
                cell_right(&request.ttfb_ms.map_or("-".into(), millis), cols[7]),
            ],
            width,
        );
        let style = if request.failed() {
            Style::default().fg(Color::Red)
        } else {
            Style::default()
        };
        lines.push(Line::styled(text, selectable(style, selected)));
    }
    lines
}
