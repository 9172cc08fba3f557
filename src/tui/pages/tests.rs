//! Every page drawn on a test terminal at 80×24 and 200×50 in both languages, from data shaped
//! like a real helper's: what the user reads is asserted, and no line is wider than the screen.

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::*;
use crate::balance::report::EndpointBalance;
use crate::balance::snapshot::{Amounts, Reading, Snapshot as BalanceSnapshot, Status};
use crate::tui::data::{
    Endpoint, Request, Runtime, SkipWhy, Snapshot, Summary, SummaryRow, Window,
};
use crate::tui::i18n::Lang;

fn endpoint(provider: &str, host: &str, skip: Option<&str>) -> Endpoint {
    Endpoint {
        provider: provider.into(),
        endpoint: "default".into(),
        key: format!("{provider}.default"),
        host: host.into(),
        routable: skip.is_none(),
        skip: skip.map(|why| SkipWhy { why: why.into() }),
    }
}

fn request(i: u64) -> Request {
    let (status, outcome) = match i {
        3 => (Some(429), "upstream_error"),
        7 => (Some(502), "upstream_error"),
        12 => (None, "timeout"),
        _ => (Some(200), "completed"),
    };
    Request {
        started_local: format!("2026-05-01 12:{:02}:07", 59 - i),
        provider: Some(if i % 2 == 0 { "alpha" } else { "beta" }.into()),
        endpoint: Some(
            if i % 2 == 0 {
                "alpha.default"
            } else {
                "beta.default"
            }
            .into(),
        ),
        model: Some("gpt-5-codex".into()),
        status,
        outcome: outcome.into(),
        total_tokens: Some(1200 + i * 10),
        cost_usd: Some(0.0125 + i as f64 * 0.001),
        ttfb_ms: Some(300.0 + i as f64),
        duration_ms: 1000.0 + i as f64 * 100.0,
    }
}

fn balance(provider: &str, status: Status, left: Option<&str>) -> EndpointBalance {
    let reading = Reading {
        amounts: Amounts {
            total_balance: left.map(|l| l.parse().unwrap()),
            ..Amounts::default()
        },
        exhausted: Some(status == Status::Exhausted),
        ..Reading::default()
    };
    EndpointBalance {
        provider: provider.into(),
        endpoint: format!("{provider}.default"),
        status,
        routing_exhausted_until_ms: None,
        snapshot: left.map(|_| {
            BalanceSnapshot::new(
                provider,
                "usage_provider:new_api",
                reading,
                true,
                (1_000, 181_000),
                None,
            )
        }),
    }
}

fn summary_row(key: &str, requests: u64, errors: u64, cost: f64) -> SummaryRow {
    SummaryRow {
        key: key.into(),
        requests,
        errors,
        total_tokens: requests * 1500,
        cost_usd: cost,
    }
}

/// Three endpoints (one cooling down), 20 requests with three failures, balances in four states.
pub fn fixture() -> Snapshot {
    let recent: Vec<Request> = (0..20).map(request).collect();
    let recent_errors = recent.iter().filter(|r| r.failed()).cloned().collect();
    Snapshot {
        runtime: Some(Runtime {
            version: "0.1.0".into(),
            pid: 4242,
            uptime_ms: 3_900_000,
            proxy: "http://127.0.0.1:3211".into(),
            config_path: "/home/u/.codex-helper/config.toml".into(),
            preset: Some("official-relay".into()),
        }),
        endpoints: vec![
            endpoint("alpha", "alpha.example.com", None),
            endpoint(
                "beta",
                "relay.beta.example",
                Some("cooling down for 42 s more"),
            ),
            endpoint("gamma", "gamma.example.net", None),
        ],
        chosen: Some("alpha.default".into()),
        recent,
        recent_errors,
        summary: Some(Summary {
            rows: vec![
                summary_row("alpha", 120, 0, 3.5),
                summary_row("beta", 80, 3, 1234.56),
                summary_row("gamma", 5, 0, 0.02),
            ],
            total: summary_row("(all)", 205, 3, 1238.08),
        }),
        window: Window::H24,
        balances: vec![
            balance("alpha", Status::Ok, Some("12.5")),
            balance("beta", Status::Exhausted, Some("0")),
            balance("gamma", Status::Stale, Some("98765.4321")),
            balance("delta", Status::Unknown, None),
        ],
        errors: Vec::new(),
    }
}

fn app(page: Page, lang: Lang) -> App {
    App {
        page,
        lang,
        data: Some(fixture()),
        ..App::default()
    }
}

/// The screen as text, one string per row.
fn draw(app: &App, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| render(frame, app)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| {
            let mut line = String::new();
            let mut skip = 0;
            for x in 0..width {
                // A wide character's second column is a filler cell: not text.
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let symbol = buffer[(x, y)].symbol();
                skip = crate::tui::widgets::width(symbol).saturating_sub(1);
                line.push_str(symbol);
            }
            line
        })
        .collect()
}

fn screen_has(screen: &[String], text: &str) -> bool {
    screen.iter().any(|line| line.contains(text))
}

/// Draws `page` in every size and language, checks no page line overflows, and hands the
/// screens to `check`.
fn each_size_and_language(page: Page, check: impl Fn(&App, &[String], u16)) {
    for lang in [Lang::En, Lang::Zh] {
        for (w, h) in [(80u16, 24u16), (200, 50)] {
            let app = app(page, lang);
            for line in page_lines(&app, w as usize) {
                assert!(
                    line.width() <= w as usize,
                    "{page:?} {lang:?} {w}: a line overflows: {line}"
                );
            }
            let screen = draw(&app, w, h);
            assert!(
                screen_has(&screen, app.t(page.title())),
                "{page:?} {lang:?} {w}: no title\n{}",
                screen.join("\n")
            );
            check(&app, &screen, w);
        }
    }
}

#[test]
fn dashboard_shows_the_figures() {
    each_size_and_language(Page::Dashboard, |app, screen, _| {
        assert!(screen_has(screen, app.t(Msg::SuccessRate)));
        // 202 of 205 succeeded.
        assert!(screen_has(screen, "98.5%"), "{}", screen.join("\n"));
        assert!(screen_has(screen, "2/3"), "two of three endpoints routable");
        assert!(screen_has(screen, "alpha.default"));
    });
}

#[test]
fn dashboard_p95_and_error_counts() {
    let figures = dashboard::Figures::of(&fixture());
    // Durations 1000..=2900 ms: the 19th of 20 is 2800 ms.
    assert_eq!(figures.p95_ms, Some(2800.0));
    assert_eq!((figures.too_many, figures.server_errors), (1, 1));
}

#[test]
fn routing_shows_each_endpoint_and_why_one_is_skipped() {
    each_size_and_language(Page::Routing, |app, screen, width| {
        assert!(screen_has(screen, "gamma.default"));
        assert!(screen_has(screen, "alpha.example.com"));
        assert!(screen_has(screen, app.t(Msg::Routable)));
        if width >= 200 {
            assert!(screen_has(screen, "cooling down for 42 s more"));
        }
        assert!(screen_has(screen, app.t(Msg::Skipped)));
    });
}

#[test]
fn sessions_say_honestly_that_none_are_reported_yet() {
    each_size_and_language(Page::Sessions, |app, screen, width| {
        let text = app.t(Msg::SessionsEmpty);
        let shown = if width >= 200 {
            text.to_string()
        } else {
            crate::tui::widgets::truncate(text, width as usize)
        };
        let shown = shown.trim_end_matches('…');
        assert!(screen_has(screen, shown), "{}", screen.join("\n"));
    });
}

#[test]
fn requests_list_rows_and_filter_errors() {
    each_size_and_language(Page::Requests, |_, screen, _| {
        assert!(screen_has(screen, "12:59:07"), "{}", screen.join("\n"));
        assert!(screen_has(screen, "429"));
        assert!(screen_has(screen, "$0.0125"));
    });
    let mut app = app(Page::Requests, Lang::En);
    app.query.errors_only = true;
    let screen = draw(&app, 120, 30);
    assert!(screen_has(&screen, "errors only"));
    assert!(
        screen_has(&screen, "502") && screen_has(&screen, "timeout"),
        "{}",
        screen.join("\n")
    );
    assert!(!screen_has(&screen, " 200 "), "{}", screen.join("\n"));
}

#[test]
fn usage_shows_providers_and_balance_states() {
    each_size_and_language(Page::Usage, |app, screen, _| {
        assert!(screen_has(screen, "beta"));
        assert!(screen_has(screen, app.t(Msg::StateExhausted)));
        assert!(screen_has(screen, app.t(Msg::StateStale)));
        assert!(screen_has(screen, "$12.50"));
        // A money amount is whole: never a cut one like `$98765.4`.
        assert!(screen_has(screen, "$98765.43"));
    });
    let mut app = app(Page::Usage, Lang::En);
    app.attention = true;
    let screen = draw(&app, 120, 30);
    assert!(screen_has(&screen, "beta.default"));
    assert!(
        screen_has(&screen, "gamma.default"),
        "stale needs attention"
    );
    assert!(!screen_has(&screen, "alpha"), "{}", screen.join("\n"));
}

#[test]
fn on_a_narrow_terminal_money_is_whole_or_an_ellipsis() {
    let app = app(Page::Usage, Lang::En);
    let screen = draw(&app, 30, 30);
    let joined = screen.join("\n");
    assert!(
        !joined.contains("$1234.5 ") && !joined.contains("$98765.4 "),
        "{joined}"
    );
    for line in page_lines(&app, 30) {
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        for word in text.split_whitespace().filter(|w| w.starts_with('$')) {
            let whole = [
                "$3.50",
                "$1234.56",
                "$0.0200",
                "$1238.08",
                "$12.50",
                "$0.00",
                "$98765.43",
            ];
            assert!(whole.contains(&word), "a cut amount `{word}` in `{text}`");
        }
    }
}

#[test]
fn settings_show_the_runtime_and_verdicts() {
    each_size_and_language(Page::Settings, |app, screen, _| {
        assert!(screen_has(screen, "4242"));
        assert!(screen_has(screen, "official-relay"));
        assert!(screen_has(screen, "1 h 5 min"));
        assert!(screen_has(screen, app.t(Msg::Version)));
    });
    let mut app = app(Page::Settings, Lang::En);
    app.verdicts = vec!["alpha.default: official-relay fits".into()];
    assert!(screen_has(
        &draw(&app, 80, 24),
        "alpha.default: official-relay fits"
    ));
}

#[test]
fn help_overlay_and_fetch_errors_are_shown() {
    let mut app = app(Page::Dashboard, Lang::Zh);
    app.help = true;
    let screen = draw(&app, 80, 24);
    assert!(screen_has(&screen, "快捷键"), "{}", screen.join("\n"));
    let mut app = app_without_data();
    app.data = Some(Snapshot {
        errors: vec!["cannot reach the running codex-helper's admin API".into()],
        ..Snapshot::default()
    });
    let screen = draw(&app, 120, 24);
    assert!(screen_has(
        &screen,
        "cannot read the running helper: cannot reach"
    ));
}

fn app_without_data() -> App {
    App::default()
}

#[test]
fn before_the_first_poll_the_ui_says_it_is_waiting() {
    let screen = draw(&app_without_data(), 80, 24);
    assert!(screen_has(&screen, "waiting for the running helper"));
}
