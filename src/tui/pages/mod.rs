//! Draws the UI: the tab bar, the current page's lines, the status line, and the help
//! overlay. Each page builds its lines for a given width (one file per page), so a test can
//! check that no line is wider than the terminal.

mod dashboard;
mod help;
mod picker;
mod requests;
mod routing;
mod sessions;
mod settings;
mod usage;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::{App, Page};
use super::i18n::Msg;
use super::widgets::truncate;

/// Draws everything into `frame`.
pub fn render(frame: &mut Frame, app: &App) {
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(tab_bar(app, tabs.width as usize)), tabs);
    let lines = page_lines(app, body.width as usize, body.height as usize);
    let skip = if app.page == Page::Usage {
        app.scroll
    } else {
        0
    };
    let shown: Vec<Line> = lines.into_iter().skip(skip).collect();
    frame.render_widget(Paragraph::new(shown), body);
    frame.render_widget(
        Paragraph::new(status_line(app, status.width as usize)),
        status,
    );
    if let Some(picker) = &app.picker {
        picker::render(frame, app, picker, body);
    }
    if app.help {
        help::render(frame, app, body);
    }
}

/// The lines of the current page for a body `width` columns wide and `height` lines high
/// (lists show the part around their selection; Usage scrolls its lines as a whole).
pub fn page_lines(app: &App, width: usize, height: usize) -> Vec<Line<'static>> {
    let mut lines = vec![title(app.t(app.page.title()), width)];
    let Some(data) = &app.data else {
        lines.push(plain(app.t(Msg::Waiting), width));
        return lines;
    };
    lines.extend(match app.page {
        Page::Dashboard => dashboard::lines(app, data, width),
        Page::Routing => routing::lines(app, data, width, height),
        Page::Sessions => sessions::lines(app, data, width, height),
        Page::Requests => requests::lines(app, data, width, height),
        Page::Usage => usage::lines(app, data, width),
        Page::Settings => settings::lines(app, data, width),
    });
    lines
}

fn tab_bar(app: &App, width: usize) -> Line<'static> {
    let mut spans = Vec::new();
    let mut used = 0;
    for (i, page) in Page::ALL.iter().enumerate() {
        let text = format!(" {} {} ", i + 1, app.t(page.title()));
        let w = super::widgets::width(&text);
        if used + w > width {
            break;
        }
        used += w;
        let style = if *page == app.page {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::default()
        };
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

fn status_line(app: &App, width: usize) -> Line<'static> {
    if let Some(notice) = &app.notice {
        let text = if notice.detail.is_empty() {
            app.t(notice.msg).to_string()
        } else {
            format!("{}: {}", app.t(notice.msg), notice.detail)
        };
        let color = if notice.failed {
            Color::Red
        } else {
            Color::Green
        };
        return Line::styled(truncate(&text, width), Style::default().fg(color));
    }
    if let Some(error) = app.data.as_ref().and_then(|d| d.errors.first()) {
        let text = format!("{}: {error}", app.t(Msg::FetchFailed));
        return Line::styled(truncate(&text, width), Style::default().fg(Color::Yellow));
    }
    plain(app.t(app.footer_keys()), width)
}

/// A bold heading line.
fn title(text: &str, width: usize) -> Line<'static> {
    Line::styled(
        truncate(text, width),
        Style::default().add_modifier(Modifier::BOLD),
    )
}

/// The style of a list row: reversed when selected.
fn selectable(style: Style, selected: bool) -> Style {
    if selected {
        style.add_modifier(Modifier::REVERSED)
    } else {
        style
    }
}

/// The selection marker column.
fn marker(selected: bool) -> &'static str {
    if selected { ">" } else { " " }
}

/// A plain line cut to `width`.
fn plain(text: &str, width: usize) -> Line<'static> {
    Line::raw(truncate(text, width))
}

/// A dim line (key hints).
fn hint(text: &str, width: usize) -> Line<'static> {
    Line::styled(truncate(text, width), Style::default().fg(Color::DarkGray))
}

/// `label: value` with the label padded to `label_width`.
fn field(label: &str, value: &str, label_width: usize, width: usize) -> Line<'static> {
    let text = format!("{} {value}", super::widgets::cell(label, label_width));
    plain(&text, width)
}

/// Column widths that fit `width` (columns are separated by one space): the flexible column
/// (`0`) takes what is left; when even the fixed ones do not fit, the widest shrink first, so
/// every cell is fitted to its own column and nothing is cut at the terminal's edge.
fn fit_columns(fixed: &[usize], width: usize) -> Vec<usize> {
    let gaps = fixed.len().saturating_sub(1);
    let taken: usize = fixed.iter().sum::<usize>() + gaps;
    let rest = width.saturating_sub(taken);
    let mut widths: Vec<usize> = fixed
        .iter()
        .map(|&w| if w == 0 { rest } else { w })
        .collect();
    let mut total: usize = widths.iter().sum::<usize>() + gaps;
    while total > width {
        let Some(widest) = widths.iter_mut().max() else {
            break;
        };
        if *widest == 0 {
            break;
        }
        *widest -= 1;
        total -= 1;
    }
    widths
}

/// Joins cells already fitted to their widths, cut to `width` at the end.
fn row(cells: &[String], width: usize) -> String {
    truncate(&cells.join(" "), width)
}

#[cfg(test)]
mod tests;
