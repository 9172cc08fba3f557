//! Every page drawn on a test terminal at 80×24 and 200×50 in both languages, from data shaped
//! like a real helper's: what the user reads is asserted, and no line is wider than the screen.

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::*;
use crate::balance::report::EndpointBalance;
use crate::balance::snapshot::{Amounts, Reading, Snapshot as BalanceSnapshot, Status};
use crate::tui::data::{
    Endpoint, Overrides, Profile, Profiles, Request, Runtime, Session, SkipWhy, Snapshot, Summary,
    SummaryRow, Window,
};
use crate::tui::i18n::Lang;
use crate::tui::picker::{Choice, PickKind, Picker};
use crate::tui::scroll::Cursor;

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
        id: 1000 - i as i64,
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

/// When the fixture was read.
const AT_MS: u64 = 1_777_000_000_000;

const PLAIN: &str = "019a3c1e-7b2d-7c41-9f7e-2b8d3a6e9c10";
const OVERRIDDEN: &str = "019a3b90-1c44-7e02-8a51-77f0c2d4e8b3";
const FAILING: &str = "019a3a07-9f10-7b3c-b2e6-0d4c5e6f7a81";
const UNBOUND: &str = "019a3f55-4e21-7aaa-8bbb-5c6d7e8f9a01";

/// Four sessions: a plain one, one with overrides (and a large cost), one with errors bound
/// under an earlier config, one with only an override and no binding yet.
fn sessions() -> Vec<Session> {
    let bound = |id: &str, upstream: &str, ago_ms: u64, requests: u64, cost: f64| Session {
        session: id.into(),
        upstream: Some(upstream.into()),
        current_graph: true,
        last_selected_ms: Some(AT_MS - ago_ms),
        last_changed_ms: Some(AT_MS - ago_ms - 60_000),
        change_reason: Some("first_request".into()),
        requests_24h: requests,
        tokens_24h: requests * 4_400,
        cost_usd_24h: cost,
        ..Session::default()
    };
    vec![
        bound(PLAIN, "alpha.default", 45_000, 42, 2.35),
        Session {
            change_reason: Some("pinned".into()),
            overrides: Some(Overrides {
                reasoning_effort: Some("high".into()),
                route_target: Some("beta.default".into()),
                profile: Some("deep".into()),
                ..Overrides::default()
            }),
            ..bound(OVERRIDDEN, "beta.default", 720_000, 12, 1234.56)
        },
        Session {
            current_graph: false,
            change_reason: Some("failover".into()),
            errors_24h: 3,
            ..bound(FAILING, "alpha.default", 7_200_000, 20, 0.4321)
        },
        Session {
            session: UNBOUND.into(),
            overrides: Some(Overrides {
                model: Some("gpt-5-codex-mini".into()),
                ..Overrides::default()
            }),
            ..Session::default()
        },
    ]
}

/// Three endpoints (one cooling down), 20 requests with three failures, balances in four
/// states, four sessions, two profiles.
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
        sessions: Some(sessions()),
        sessions_error: None,
        profiles: Some(Profiles {
            default_profile: None,
            profiles: vec![Profile {
                name: "deep".into(),
                reasoning_effort: Some("xhigh".into()),
                ..Profile::default()
            }],
        }),
        profiles_error: None,
        at_ms: AT_MS,
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
            for line in page_lines(&app, w as usize, h as usize - 2) {
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
fn routing_asks_for_the_second_p_before_pinning_in_the_config() {
    for lang in [Lang::En, Lang::Zh] {
        let mut app = app(Page::Routing, lang);
        let p = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char('P'));
        app.on_key(p, std::time::Instant::now());
        let screen = draw(&app, 80, 24);
        let asked = format!("{}: alpha", app.t(Msg::PressPAgain));
        assert!(
            screen_has(&screen, &asked),
            "{lang:?}\n{}",
            screen.join("\n")
        );
        assert!(
            screen_has(&screen, app.t(Msg::RoutingKeys)),
            "{lang:?}: the hint is cut"
        );
    }
}

/// The screen line that carries the selection marker.
fn marked(screen: &[String]) -> Vec<&String> {
    screen.iter().filter(|l| l.starts_with('>')).collect()
}

/// Every `$` amount on `app`'s page at `width` is one of `whole`, or an ellipsis.
fn amounts_are_whole(app: &App, width: usize, height: usize, whole: &[&str]) {
    for line in page_lines(app, width, height) {
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        for word in text.split_whitespace().filter(|w| w.starts_with('$')) {
            assert!(whole.contains(&word), "a cut amount `{word}` in `{text}`");
        }
    }
}

const SESSION_COSTS: [&str; 4] = ["$2.35", "$1234.56", "$0.4321", "$0.00"];

#[test]
fn sessions_show_each_session_where_it_goes_and_its_overrides() {
    each_size_and_language(Page::Sessions, |app, screen, width| {
        let all = screen.join("\n");
        // Ids cut in the middle on a narrow screen, whole on a wide one.
        if width >= 200 {
            for id in [PLAIN, OVERRIDDEN, FAILING, UNBOUND] {
                assert!(screen_has(screen, id), "{id}\n{all}");
            }
        } else {
            assert!(marked(screen)[0].contains("019a3c…6e9c10"), "{all}");
            // The detail under the table has room for the whole id.
            assert!(screen_has(
                screen,
                &format!("{}: {PLAIN}", app.t(Msg::ColSession))
            ));
        }
        assert!(screen_has(screen, app.t(Msg::NotBound)), "{all}");
        assert!(screen_has(screen, "beta.default"));
        let ago = format!("45 s{}", app.t(Msg::Ago));
        assert!(screen_has(screen, &ago), "{ago}\n{all}");
        let effort = format!("{}high", app.t(Msg::OvShortEffort));
        assert!(screen_has(screen, &effort), "{all}");
        assert!(screen_has(screen, "$2.35") && screen_has(screen, "$0.4321"));
        assert!(screen_has(screen, app.t(Msg::AllSessions)), "{all}");
        assert!(screen_has(screen, "(4/4)"), "{all}");
        // The first session is selected: the marker is on its row, and its detail is below.
        let marked = marked(screen);
        assert_eq!(marked.len(), 1, "{all}");
        assert!(marked[0].contains("019a3c"), "{all}");
        assert!(screen_has(screen, "first_request"), "{all}");
        assert!(screen_has(screen, app.t(Msg::OverridesNone)), "{all}");
        assert!(screen_has(screen, app.t(Msg::FooterKeysSessions)), "{all}");
        amounts_are_whole(app, width as usize, 22, &SESSION_COSTS);
    });
}

#[test]
fn the_selected_session_shows_its_overrides_in_full() {
    for lang in [Lang::En, Lang::Zh] {
        let mut app = app(Page::Sessions, lang);
        app.sessions = Cursor {
            index: 1,
            top: 0,
            key: Some(OVERRIDDEN.into()),
        };
        let screen = draw(&app, 80, 24);
        let all = screen.join("\n");
        let marked = marked(&screen);
        assert_eq!(marked.len(), 1, "{all}");
        assert!(marked[0].contains("019a3b"), "{all}");
        let effort = format!("{}: high", app.t(Msg::OvEffort));
        let pin = format!("{}: beta.default", app.t(Msg::OvPin));
        let profile = format!("{}: deep", app.t(Msg::OvProfile));
        for text in [&effort, &pin, &profile] {
            assert!(screen_has(&screen, text), "{text}\n{all}");
        }
        let reason = format!("{}: pinned", app.t(Msg::ChangeReason));
        assert!(screen_has(&screen, &reason), "{all}");
        assert!(
            screen_has(&screen, OVERRIDDEN),
            "the detail has the whole id\n{all}"
        );
    }
}

#[test]
fn session_filters_are_shown_and_applied() {
    for lang in [Lang::En, Lang::Zh] {
        let mut app = app(Page::Sessions, lang);
        app.session_filter.errors_only = true;
        let screen = draw(&app, 200, 50);
        let all = screen.join("\n");
        assert!(
            screen_has(&screen, app.t(Msg::FilterSessionErrors)),
            "{all}"
        );
        assert!(screen_has(&screen, "(1/4)"), "{all}");
        assert!(screen_has(&screen, FAILING));
        assert!(!screen_has(&screen, PLAIN) && !screen_has(&screen, UNBOUND));
        assert!(screen_has(&screen, app.t(Msg::EarlierConfig)), "{all}");
        assert!(marked(&screen)[0].contains(FAILING));

        app.session_filter = crate::tui::app::SessionFilter {
            overrides_only: true,
            errors_only: false,
        };
        let screen = draw(&app, 200, 50);
        assert!(screen_has(&screen, app.t(Msg::FilterOverrides)));
        assert!(screen_has(&screen, "(2/4)"));
        assert!(screen_has(&screen, OVERRIDDEN) && screen_has(&screen, UNBOUND));
        let model = format!("{}gpt-5-codex-mini", app.t(Msg::OvShortModel));
        assert!(screen_has(&screen, &model), "{}", screen.join("\n"));
        assert!(!screen_has(&screen, FAILING));

        app.session_filter.errors_only = true;
        let screen = draw(&app, 80, 24);
        assert!(
            screen_has(&screen, app.t(Msg::SessionsNoneMatch)) || {
                let cut = crate::tui::widgets::truncate(app.t(Msg::SessionsNoneMatch), 80);
                screen_has(&screen, cut.trim_end_matches('…'))
            }
        );
    }
}

#[test]
fn sessions_empty_waiting_and_failed_are_said_honestly() {
    for lang in [Lang::En, Lang::Zh] {
        for (w, h) in [(80u16, 24u16), (200, 50)] {
            let mut app = app(Page::Sessions, lang);
            app.data.as_mut().unwrap().sessions = Some(Vec::new());
            let screen = draw(&app, w, h);
            let text = crate::tui::widgets::truncate(app.t(Msg::SessionsNone), w as usize);
            assert!(
                screen_has(&screen, text.trim_end_matches('…')),
                "{}",
                screen.join("\n")
            );
            assert!(screen_has(&screen, "(0/0)"));
            assert!(marked(&screen).is_empty());

            app.data.as_mut().unwrap().sessions = None;
            let screen = draw(&app, w, h);
            assert!(screen_has(&screen, app.t(Msg::SessionsWaiting)));

            app.data.as_mut().unwrap().sessions_error =
                Some("the running codex-helper refused (503, unavailable): sessions".into());
            let screen = draw(&app, w, h);
            assert!(screen_has(&screen, app.t(Msg::SessionsFailed)));
            assert!(screen_has(&screen, "(503, unavailable)"));
        }
    }
}

#[test]
fn on_a_narrow_terminal_session_costs_are_whole_or_an_ellipsis() {
    for lang in [Lang::En, Lang::Zh] {
        let app = app(Page::Sessions, lang);
        for width in [40, 50, 60, 66, 70, 80] {
            amounts_are_whole(&app, width, 22, &SESSION_COSTS);
            let screen = draw(&app, width as u16, 24);
            assert!(!screen.join("\n").contains("$1234.5 "));
        }
    }
}

#[test]
fn a_short_screen_drops_the_detail_and_keeps_the_selected_session_in_view() {
    let mut app = app(Page::Sessions, Lang::En);
    app.sessions = Cursor {
        index: 3,
        top: 0,
        key: Some(UNBOUND.into()),
    };
    // Eight body lines: title, filter, column names and five rows; no detail.
    let screen = draw(&app, 120, 10);
    let all = screen.join("\n");
    assert!(marked(&screen)[0].contains("019a3f55"), "{all}");
    assert!(!screen_has(&screen, app.t(Msg::SessionKeys)), "{all}");
    // Five body lines: two rows, the selected one among them.
    let screen = draw(&app, 120, 7);
    let all = screen.join("\n");
    assert!(marked(&screen)[0].contains("019a3f55"), "{all}");
    assert!(
        !screen_has(&screen, "019a3c1e"),
        "scrolled past the first\n{all}"
    );
}

#[test]
fn the_pin_picker_lists_the_route_targets_over_the_page() {
    for lang in [Lang::En, Lang::Zh] {
        let mut app = app(Page::Sessions, lang);
        let choice = |value: &str, any: bool| Choice {
            value: Some(value.into()),
            any_endpoint: any,
            note: String::new(),
        };
        app.picker = Some(Picker {
            kind: PickKind::Pin,
            session: OVERRIDDEN.into(),
            choices: vec![
                choice("alpha", true),
                choice("alpha.default", false),
                choice("beta", true),
                choice("beta.default", false),
            ],
            cursor: Cursor {
                index: 3,
                top: 0,
                key: Some("beta.default".into()),
            },
        });
        let screen = draw(&app, 80, 24);
        let all = screen.join("\n");
        assert!(screen_has(&screen, app.t(Msg::PickPin)), "{all}");
        let any = format!("alpha ({})", app.t(Msg::AnyEndpoint));
        assert!(screen_has(&screen, &any), "{all}");
        assert!(screen_has(&screen, "> beta.default"), "{all}");
        assert!(!screen_has(&screen, "> alpha"), "{all}");
        app.picker = Some(Picker {
            kind: PickKind::Profile,
            session: OVERRIDDEN.into(),
            choices: vec![
                Choice {
                    value: Some("deep".into()),
                    any_endpoint: false,
                    note: "xhigh".into(),
                },
                Choice {
                    value: None,
                    any_endpoint: false,
                    note: String::new(),
                },
            ],
            cursor: Cursor::default(),
        });
        let screen = draw(&app, 80, 24);
        assert!(
            screen_has(&screen, "> deep  xhigh"),
            "{}",
            screen.join("\n")
        );
        assert!(screen_has(&screen, app.t(Msg::NoProfileChoice)));
    }
}

#[test]
fn requests_and_routing_show_the_selected_row_when_the_list_is_taller_than_the_screen() {
    let mut app = app(Page::Requests, Lang::En);
    app.requests = Cursor {
        index: 15,
        top: 0,
        key: Some("985".into()),
    };
    // Ten body lines: title, filter, column names and seven rows.
    let screen = draw(&app, 80, 12);
    let all = screen.join("\n");
    let rows = marked(&screen);
    assert_eq!(rows.len(), 1, "{all}");
    assert!(rows[0].contains("12:44:07"), "{all}");
    assert!(!screen_has(&screen, "12:59:07"), "{all}");

    let mut app = app_at(Page::Routing);
    app.routing = Cursor {
        index: 2,
        top: 0,
        key: Some("gamma.default".into()),
    };
    let screen = draw(&app, 80, 8);
    let all = screen.join("\n");
    assert!(marked(&screen)[0].contains("gamma.default"), "{all}");
    assert!(!screen_has(&screen, "alpha.example.com"), "{all}");
}

fn app_at(page: Page) -> App {
    app(page, Lang::En)
}

#[test]
fn requests_list_rows_and_filter_errors() {
    each_size_and_language(Page::Requests, |_, screen, _| {
        assert!(screen_has(screen, "12:59:07"), "{}", screen.join("\n"));
        assert!(
            marked(screen)[0].contains("12:59:07"),
            "the newest is selected"
        );
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
    for line in page_lines(&app, 30, 28) {
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
fn the_help_lists_every_key_whole_in_both_languages() {
    for lang in [Lang::En, Lang::Zh] {
        let mut app = app(Page::Sessions, lang);
        app.help = true;
        let screen = draw(&app, 80, 24);
        for msg in help::KEYS {
            assert!(
                screen_has(&screen, app.t(msg)),
                "{msg:?} is cut or missing\n{}",
                screen.join("\n")
            );
        }
    }
    // The keys the Sessions page adds are among them.
    let en: Vec<&str> = help::KEYS.iter().map(|m| m.text(Lang::En)).collect();
    let en = en.join("\n");
    for key in [
        "l/m/h/X",
        "x clear",
        "p pin",
        "P unpin",
        "b profile",
        "R R",
        "P P pin the selected provider in the config",
        "v ",
        "e ",
        "PgUp/PgDn",
        "j/k",
    ] {
        assert!(en.contains(key), "{key}");
    }
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
