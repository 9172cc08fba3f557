//! Requests: the newest requests from the ledger, or only the failed ones (`f`).

use ratatui::style::{Color, Style};
use ratatui::text::Line;

use super::{fit_columns, hint, plain, row};
use crate::tui::app::App;
use crate::tui::data::{Request, Snapshot};
use crate::tui::i18n::Msg;
use crate::tui::widgets::{cell, cell_right, count, millis, money_fit, usd};

pub fn lines(app: &App, data: &Snapshot, width: usize) -> Vec<Line<'static>> {
    let (filter, rows): (Msg, &[Request]) = if app.query.errors_only {
        (Msg::ErrorsOnly, &data.recent_errors)
    } else {
        (Msg::AllRequests, &data.recent)
    };
    let mut lines = vec![hint(app.t(filter), width)];
    if rows.is_empty() {
        lines.push(plain(app.t(Msg::NoRequests), width));
        return lines;
    }
    // Time, model, provider/endpoint (the rest), status, tokens, cost, TTFB.
    let cols = fit_columns(&[8, 18, 0, 8, 7, 9, 8], width);
    lines.push(plain(
        &row(
            &[
                cell(app.t(Msg::ColTime), cols[0]),
                cell(app.t(Msg::ColModel), cols[1]),
                cell(app.t(Msg::ColProvider), cols[2]),
                cell(app.t(Msg::ColStatus), cols[3]),
                cell_right(app.t(Msg::Tokens), cols[4]),
                cell_right(app.t(Msg::Cost), cols[5]),
                cell_right(app.t(Msg::ColTtfb), cols[6]),
            ],
            width,
        ),
        width,
    ));
    for request in rows {
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
                cell(time, cols[0]),
                cell(request.model.as_deref().unwrap_or("-"), cols[1]),
                cell(&target, cols[2]),
                cell(&status, cols[3]),
                cell_right(&request.total_tokens.map_or("-".into(), count), cols[4]),
                cell_right(&money_fit(&cost, cols[5]), cols[5]),
                cell_right(&request.ttfb_ms.map_or("-".into(), millis), cols[6]),
            ],
            width,
        );
        let style = if request.failed() {
            Style::default().fg(Color::Red)
        } else {
            Style::default()
        };
        lines.push(Line::styled(text, style));
    }
    lines
}
