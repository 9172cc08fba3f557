//! Settings: the running helper itself (version, pid, uptime, config, preset, the web
//! console's address), reload, and
//! the relay capability probe behind a double `C`, with its verdicts.

use ratatui::text::Line;

use super::{field, hint, plain, title};
use crate::tui::app::App;
use crate::tui::data::Snapshot;
use crate::tui::i18n::Msg;
use crate::tui::widgets::span;

pub fn lines(app: &App, data: &Snapshot, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![hint(app.t(Msg::SettingsKeys), width)];
    let label = 16;
    if let Some(runtime) = &data.runtime {
        lines.push(field(app.t(Msg::Version), &runtime.version, label, width));
        lines.push(field(
            app.t(Msg::Pid),
            &runtime.pid.to_string(),
            label,
            width,
        ));
        lines.push(field(
            app.t(Msg::Uptime),
            &span(runtime.uptime_ms),
            label,
            width,
        ));
        lines.push(field(
            app.t(Msg::ProxyAddress),
            &runtime.proxy,
            label,
            width,
        ));
        lines.push(field(
            app.t(Msg::ConfigPath),
            &runtime.config_path,
            label,
            width,
        ));
        let preset = runtime.preset.as_deref().unwrap_or(app.t(Msg::NoPreset));
        lines.push(field(app.t(Msg::Preset), preset, label, width));
    }
    if !app.console_url.is_empty() {
        lines.push(field(
            app.t(Msg::WebConsole),
            &app.console_url,
            label,
            width,
        ));
    }
    if let Some(log) = app.log_file() {
        let log = log.display().to_string();
        lines.push(field(app.t(Msg::LogFile), &log, label, width));
    }
    if !app.verdicts.is_empty() {
        lines.push(Line::default());
        lines.push(title(app.t(Msg::Verdicts), width));
        lines.extend(app.verdicts.iter().map(|v| plain(v, width)));
    }
    lines
}
