//! Dashboard: the numbers to glance at: requests and success rate in the window, the p95
//! duration and the 429/5xx counts of the recent requests, how many endpoints can take a
//! request, and where the next one goes.

use ratatui::text::Line;

use super::{field, plain};
use crate::tui::app::App;
use crate::tui::data::{Request, Snapshot};
use crate::tui::i18n::Msg;
use crate::tui::widgets::{count, millis, usd};

/// The dashboard's figures, computed from one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    /// Share of successful requests, 0–100; `None` without requests.
    pub success_percent: Option<f64>,
    pub p95_ms: Option<f64>,
    pub too_many: usize,
    pub server_errors: usize,
    pub routable: usize,
    pub endpoints: usize,
}

impl Figures {
    pub fn of(data: &Snapshot) -> Figures {
        let total = data.summary.as_ref().map(|s| &s.total);
        let requests = total.map_or(0, |t| t.requests);
        let errors = total.map_or(0, |t| t.errors);
        let success_percent = (requests > 0)
            .then(|| 100.0 * requests.saturating_sub(errors) as f64 / requests as f64);
        Figures {
            requests,
            errors,
            success_percent,
            p95_ms: p95(&data.recent),
            too_many: data.recent.iter().filter(|r| r.status == Some(429)).count(),
            server_errors: data
                .recent
                .iter()
                .filter(|r| r.status.is_some_and(|s| s >= 500))
                .count(),
            routable: data.endpoints.iter().filter(|e| e.routable).count(),
            endpoints: data.endpoints.len(),
        }
    }
}

/// The 95th percentile of the recent durations (nearest rank).
fn p95(recent: &[Request]) -> Option<f64> {
    let mut durations: Vec<f64> = recent.iter().map(|r| r.duration_ms).collect();
    if durations.is_empty() {
        return None;
    }
    durations.sort_by(f64::total_cmp);
    let rank = (durations.len() as f64 * 0.95).ceil() as usize;
    durations.get(rank.saturating_sub(1)).copied()
}

pub fn lines(app: &App, data: &Snapshot, width: usize) -> Vec<Line<'static>> {
    let f = Figures::of(data);
    let label = 26;
    let window = data.window.as_str();
    let total = data.summary.as_ref().map(|s| &s.total);
    let mut lines = vec![
        field(app.t(Msg::Window), window, label, width),
        field(
            app.t(Msg::Requests),
            &format!("{} ({} {})", f.requests, f.errors, app.t(Msg::Errors)),
            label,
            width,
        ),
        field(
            app.t(Msg::SuccessRate),
            &f.success_percent.map_or("-".into(), |p| format!("{p:.1}%")),
            label,
            width,
        ),
        field(
            app.t(Msg::P95),
            &f.p95_ms.map_or("-".into(), millis),
            label,
            width,
        ),
        field(app.t(Msg::Status429), &f.too_many.to_string(), label, width),
        field(
            app.t(Msg::Status5xx),
            &f.server_errors.to_string(),
            label,
            width,
        ),
        field(
            app.t(Msg::Tokens),
            &count(total.map_or(0, |t| t.total_tokens)),
            label,
            width,
        ),
        field(
            app.t(Msg::Cost),
            &usd(total.map_or(0.0, |t| t.cost_usd)),
            label,
            width,
        ),
        field(
            app.t(Msg::EndpointsRoutable),
            &format!("{}/{}", f.routable, f.endpoints),
            label,
            width,
        ),
    ];
    lines.push(match &data.chosen {
        Some(chosen) => field(app.t(Msg::NextRequestGoesTo), chosen, label, width),
        None => plain(app.t(Msg::NoRoute), width),
    });
    lines
}
