//! Sessions: each session the helper knows, newest first: where it goes, when it was last
//! used, its last 24 h, and its overrides in a compact column; under the table, when there is
//! room, the selected session in full. `v`/`e` filter, the override keys act on the selection.

use ratatui::style::{Color, Style};
use ratatui::text::Line;

use super::{fit_columns, hint, marker, plain, row, selectable};
use crate::tui::app::{App, Page, session_detail_shown};
use crate::tui::data::{Overrides, Session, Snapshot};
use crate::tui::i18n::Msg;
use crate::tui::widgets::{ago, cell, cell_middle, cell_right, count, middle, money_fit, usd};

pub fn lines(app: &App, data: &Snapshot, width: usize, height: usize) -> Vec<Line<'static>> {
    let Some(all) = &data.sessions else {
        return match &data.sessions_error {
            Some(error) => vec![
                plain(app.t(Msg::SessionsFailed), width),
                plain(error, width),
            ],
            None => vec![plain(app.t(Msg::SessionsWaiting), width)],
        };
    };
    let shown = app.shown_sessions(data);
    let mut lines = vec![hint(&filter_line(app, shown.len(), all.len()), width)];
    if all.is_empty() {
        lines.push(plain(app.t(Msg::SessionsNone), width));
        return lines;
    }
    if shown.is_empty() {
        lines.push(plain(app.t(Msg::SessionsNoneMatch), width));
        return lines;
    }
    // Marker, session, where it goes, last used, requests, errors, tokens, cost, overrides.
    let (id, goes) = match width {
        w if w >= 160 => (38, 24),
        w if w >= 120 => (24, 18),
        _ => (13, 14),
    };
    let cols = fit_columns(&[1, id, goes, 10, 4, 4, 6, 8, 0], width);
    lines.push(plain(
        &row(
            &[
                cell("", cols[0]),
                cell(app.t(Msg::ColSession), cols[1]),
                cell(app.t(Msg::ColGoesTo), cols[2]),
                cell(app.t(Msg::ColLastUsed), cols[3]),
                cell_right(app.t(Msg::ColReq), cols[4]),
                cell_right(app.t(Msg::ColErr), cols[5]),
                cell_right(app.t(Msg::Tokens), cols[6]),
                cell_right(app.t(Msg::Cost), cols[7]),
                cell(app.t(Msg::ColOverrides), cols[8]),
            ],
            width,
        ),
        width,
    ));
    let rows = Page::Sessions.list_rows(height);
    let top = app.sessions.top_for(shown.len(), rows);
    for (i, session) in shown.iter().enumerate().skip(top).take(rows) {
        let selected = i == app.sessions.index;
        let cost = usd(session.cost_usd_24h);
        let text = row(
            &[
                cell(marker(selected), cols[0]),
                cell_middle(&session.session, cols[1]),
                cell(&goes_to(app, session), cols[2]),
                cell(&last_used(app, data, session), cols[3]),
                cell_right(&session.requests_24h.to_string(), cols[4]),
                cell_right(&session.errors_24h.to_string(), cols[5]),
                cell_right(&count(session.tokens_24h), cols[6]),
                cell_right(&money_fit(&cost, cols[7]), cols[7]),
                cell(&compact(app, session.overrides.as_ref()), cols[8]),
            ],
            width,
        );
        let style = if session.errors_24h > 0 {
            Style::default().fg(Color::Red)
        } else {
            Style::default()
        };
        lines.push(Line::styled(text, selectable(style, selected)));
    }
    if session_detail_shown(height) {
        if let Some(session) = shown.get(app.sessions.index) {
            lines.extend(detail(app, data, session, width));
        }
    }
    lines
}

/// The filters in force, how many sessions they keep of all, and the columns' window.
fn filter_line(app: &App, shown: usize, all: usize) -> String {
    let filter = app.session_filter;
    let mut parts = Vec::new();
    if filter.overrides_only {
        parts.push(app.t(Msg::FilterOverrides));
    }
    if filter.errors_only {
        parts.push(app.t(Msg::FilterSessionErrors));
    }
    if parts.is_empty() {
        parts.push(app.t(Msg::AllSessions));
    }
    format!(
        "{} ({shown}/{all})  ·  {}",
        parts.join(" + "),
        app.t(Msg::Last24h)
    )
}

fn goes_to(app: &App, session: &Session) -> String {
    session
        .upstream
        .clone()
        .unwrap_or_else(|| app.t(Msg::NotBound).to_string())
}

fn last_used(app: &App, data: &Snapshot, session: &Session) -> String {
    match session.last_selected_ms {
        Some(ms) => format!("{}{}", ago(data.at_ms.saturating_sub(ms)), app.t(Msg::Ago)),
        None => "-".into(),
    }
}

/// The overrides in force as `effort:high pin:alpha.default`, or `-`.
fn compact(app: &App, overrides: Option<&Overrides>) -> String {
    let Some(o) = overrides else {
        return "-".into();
    };
    let parts: Vec<String> = [
        (Msg::OvShortModel, &o.model),
        (Msg::OvShortEffort, &o.reasoning_effort),
        (Msg::OvShortTier, &o.service_tier),
        (Msg::OvShortPin, &o.route_target),
        (Msg::OvShortProfile, &o.profile),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.as_ref().map(|v| format!("{}{v}", app.t(label))))
    .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// The selected session in full: id, binding and why it last changed, every override, keys.
fn detail(app: &App, data: &Snapshot, session: &Session, width: usize) -> Vec<Line<'static>> {
    let rule = "─".repeat(width);
    let id = format!("{}: ", app.t(Msg::ColSession));
    let id = format!(
        "{id}{}",
        middle(
            &session.session,
            width.saturating_sub(crate::tui::widgets::width(&id))
        )
    );
    let mut binding = format!("{}: {}", app.t(Msg::ColGoesTo), goes_to(app, session));
    if session.upstream.is_some() && !session.current_graph {
        binding.push_str(&format!(" ({})", app.t(Msg::EarlierConfig)));
    }
    if let Some(reason) = &session.change_reason {
        binding.push_str(&format!("  ·  {}: {reason}", app.t(Msg::ChangeReason)));
        if let Some(ms) = session.last_changed_ms {
            let when = ago(data.at_ms.saturating_sub(ms));
            binding.push_str(&format!(" ({when}{})", app.t(Msg::Ago)));
        }
    }
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let pair = |label: Msg, v: &Option<String>| format!("{}: {}", app.t(label), value(v));
    let (first, second) = match session.overrides.as_ref().filter(|o| !o.is_empty()) {
        Some(o) => (
            [
                pair(Msg::OvModel, &o.model),
                pair(Msg::OvEffort, &o.reasoning_effort),
                pair(Msg::OvTier, &o.service_tier),
            ]
            .join("  ·  "),
            [
                pair(Msg::OvPin, &o.route_target),
                pair(Msg::OvProfile, &o.profile),
            ]
            .join("  ·  "),
        ),
        None => (app.t(Msg::OverridesNone).to_string(), String::new()),
    };
    vec![
        hint(&rule, width),
        plain(&id, width),
        plain(&binding, width),
        plain(&first, width),
        plain(&second, width),
        hint(app.t(Msg::SessionKeys), width),
    ]
}
