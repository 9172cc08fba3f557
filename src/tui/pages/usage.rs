//! Usage: the window's totals, each provider's requests, errors, tokens and cost, and every
//! endpoint's balance with its state. `a` keeps only what needs attention: providers with
//! errors or a balance that is not fine.

use ratatui::style::{Color, Style};
use ratatui::text::Line;

use super::{fit_columns, hint, plain, row, title};
use crate::balance::report::EndpointBalance;
use crate::balance::snapshot::Status;
use crate::tui::app::App;
use crate::tui::data::Snapshot;
use crate::tui::i18n::Msg;
use crate::tui::widgets::{cell, cell_right, count, money_fit, usd};

/// The word for a balance state.
pub fn state_word(status: Status) -> Msg {
    match status {
        Status::Ok => Msg::StateOk,
        Status::Unlimited => Msg::StateUnlimited,
        Status::Unknown => Msg::StateUnknown,
        Status::Stale => Msg::StateStale,
        Status::Exhausted => Msg::StateExhausted,
        Status::Error => Msg::StateError,
    }
}

fn fine(status: Status) -> bool {
    matches!(status, Status::Ok | Status::Unlimited)
}

/// The money left as the lookup read it: the balance, else the quota remaining.
fn money_left(balance: &EndpointBalance) -> Option<String> {
    let amounts = &balance.snapshot.as_ref()?.amounts;
    let left = amounts.total_balance.or(amounts.quota_remaining)?;
    Some(usd(left.as_f64()))
}

/// Whether `provider` needs attention: errors in the window, or an endpoint's balance not fine.
fn needs_attention(data: &Snapshot, provider: &str) -> bool {
    let errors = data
        .summary
        .iter()
        .flat_map(|s| &s.rows)
        .any(|r| r.key == provider && r.errors > 0);
    errors
        || data
            .balances
            .iter()
            .any(|b| b.provider == provider && !fine(b.status))
}

pub fn lines(app: &App, data: &Snapshot, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![hint(app.t(Msg::UsageKeys), width)];
    if app.attention {
        lines.push(hint(app.t(Msg::AttentionOn), width));
    }
    let total = data
        .summary
        .as_ref()
        .map(|s| s.total.clone())
        .unwrap_or_default();
    lines.push(plain(
        &format!(
            "{} {}  |  {} {}  |  {} {}  |  {} {}  |  {} {}",
            app.t(Msg::Window),
            data.window.as_str(),
            app.t(Msg::Requests),
            total.requests,
            app.t(Msg::Errors),
            total.errors,
            app.t(Msg::Tokens),
            count(total.total_tokens),
            app.t(Msg::Cost),
            usd(total.cost_usd),
        ),
        width,
    ));
    lines.push(Line::default());
    // Provider (the rest), requests, errors, tokens, cost.
    let cols = fit_columns(&[0, 9, 7, 8, 10], width);
    lines.push(plain(
        &row(
            &[
                cell(app.t(Msg::ColProvider), cols[0]),
                cell_right(app.t(Msg::Requests), cols[1]),
                cell_right(app.t(Msg::Errors), cols[2]),
                cell_right(app.t(Msg::Tokens), cols[3]),
                cell_right(app.t(Msg::Cost), cols[4]),
            ],
            width,
        ),
        width,
    ));
    for r in data.summary.iter().flat_map(|s| &s.rows) {
        if app.attention && !needs_attention(data, &r.key) {
            continue;
        }
        let text = row(
            &[
                cell(&r.key, cols[0]),
                cell_right(&r.requests.to_string(), cols[1]),
                cell_right(&r.errors.to_string(), cols[2]),
                cell_right(&count(r.total_tokens), cols[3]),
                cell_right(&money_fit(&usd(r.cost_usd), cols[4]), cols[4]),
            ],
            width,
        );
        lines.push(plain(&text, width));
    }
    lines.push(Line::default());
    lines.push(title(app.t(Msg::Balances), width));
    if data.balances.is_empty() {
        lines.push(plain(app.t(Msg::NoBalances), width));
        return lines;
    }
    // Endpoint (the rest), state, money left.
    let cols = fit_columns(&[0, 10, 12], width);
    for balance in &data.balances {
        if app.attention && !needs_attention(data, &balance.provider) {
            continue;
        }
        let money = money_left(balance).unwrap_or_else(|| "-".into());
        let text = row(
            &[
                cell(&balance.endpoint, cols[0]),
                cell(app.t(state_word(balance.status)), cols[1]),
                cell_right(&money_fit(&money, cols[2]), cols[2]),
            ],
            width,
        );
        let color = if fine(balance.status) {
            Color::Green
        } else {
            Color::Yellow
        };
        lines.push(Line::styled(text, Style::default().fg(color)));
    }
    lines
}
