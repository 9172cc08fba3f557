//! Every key, with an injected clock and hand-made snapshots: what it changes and what it sends.

use super::*;
use crate::tui::data::{Endpoint, Overrides, Profile, Profiles, Window};
use crate::tui::picker::PickKind;
use serde_json::json;

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn with_endpoints() -> App {
    let endpoint = |p: &str| Endpoint {
        provider: p.into(),
        endpoint: "default".into(),
        key: format!("{p}.default"),
        ..Endpoint::default()
    };
    let mut app = App::default();
    app.on_update(Update::Data(Box::new(Snapshot {
        endpoints: vec![endpoint("a"), endpoint("b"), endpoint("c")],
        ..Snapshot::default()
    })));
    app
}

#[test]
fn number_keys_and_tab_switch_pages() {
    let now = Instant::now();
    let mut app = App::default();
    app.on_key(key('5'), now);
    assert_eq!(app.page, Page::Usage);
    app.on_key(code(KeyCode::Tab), now);
    assert_eq!(app.page, Page::Settings);
    app.on_key(code(KeyCode::Tab), now);
    assert_eq!(app.page, Page::Dashboard);
    app.on_key(code(KeyCode::BackTab), now);
    assert_eq!(app.page, Page::Settings);
}

#[test]
fn q_and_ctrl_c_quit_and_help_closes_on_any_key() {
    let now = Instant::now();
    let mut app = App::default();
    app.on_key(key('?'), now);
    assert!(app.help);
    app.on_key(code(KeyCode::Esc), now);
    assert!(!app.help && !app.quit);
    app.on_key(
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
        now,
    );
    assert!(app.quit);
    let mut app = App::default();
    app.on_key(key('q'), now);
    assert!(app.quit);
}

#[test]
fn language_switches_with_l() {
    let mut app = App::default();
    app.on_key(key('L'), Instant::now());
    assert_eq!(app.lang, Lang::Zh);
    assert_eq!(app.t(Msg::PageRouting), "路由");
    app.on_key(key('L'), Instant::now());
    assert_eq!(app.lang, Lang::En);
}

#[test]
fn routing_keys_switch_the_selected_endpoint() {
    let now = Instant::now();
    let mut app = with_endpoints();
    app.on_key(key('2'), now);
    app.on_key(code(KeyCode::Down), now);
    app.on_key(code(KeyCode::Down), now);
    app.on_key(code(KeyCode::Down), now);
    assert_eq!(
        app.routing.index, 2,
        "the selection stops at the last endpoint"
    );
    let command = app.on_key(key('x'), now);
    assert!(matches!(
        command,
        Some(Command::Act(Action::Switch { ref provider, enabled: false, .. })) if provider == "c"
    ));
    app.on_key(code(KeyCode::Up), now);
    let command = app.on_key(key('e'), now);
    assert!(matches!(
        command,
        Some(Command::Act(Action::Switch { ref provider, enabled: true, .. })) if provider == "b"
    ));
    // Not on the Routing page, `x` does nothing.
    app.on_key(key('1'), now);
    assert!(app.on_key(key('x'), now).is_none());
}

#[test]
fn filters_and_window_change_what_is_fetched() {
    let now = Instant::now();
    let mut app = App::default();
    app.on_key(key('4'), now);
    let command = app.on_key(key('f'), now);
    assert!(matches!(command, Some(Command::Query(q)) if q.errors_only));
    app.on_key(key('5'), now);
    let windows: Vec<Window> = (0..4)
        .map(|_| match app.on_key(key('d'), now) {
            Some(Command::Query(q)) => q.window,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(windows, [Window::D7, Window::D30, Window::H1, Window::H24]);
    app.on_key(key('a'), now);
    assert!(app.attention);
    app.on_key(code(KeyCode::PageDown), now);
    assert_eq!(app.scroll, 10);
    app.on_key(code(KeyCode::PageUp), now);
    app.on_key(code(KeyCode::PageUp), now);
    assert_eq!(app.scroll, 0);
}

#[test]
fn the_relay_probe_needs_a_second_c_within_three_seconds() {
    let start = Instant::now();
    let mut app = App::default();
    app.on_key(key('6'), start);
    assert!(app.on_key(key('C'), start).is_none());
    assert_eq!(app.notice.as_ref().unwrap().msg, Msg::PressCAgain);
    // Too late: the second press asks again instead of running.
    let late = start + Duration::from_secs(4);
    assert!(app.on_key(key('C'), late).is_none());
    let command = app.on_key(key('C'), late + Duration::from_secs(2));
    assert!(matches!(
        command,
        Some(Command::Act(Action::RelayCapabilities))
    ));
    // A tick after the window forgets a lone first press.
    app.on_key(key('C'), start);
    app.on_tick(start + Duration::from_secs(5));
    assert!(app.confirm.is_none() && app.notice.is_none());
}

#[test]
fn reload_works_on_every_page_but_sessions_and_results_show_as_notices() {
    let now = Instant::now();
    let mut app = App::default();
    for page in ['1', '2', '4', '5', '6'] {
        app.on_key(key(page), now);
        assert!(
            matches!(
                app.on_key(key('R'), now),
                Some(Command::Act(Action::Reload))
            ),
            "page {page}"
        );
    }
    // On Sessions `R` is the page's reset (it asks first), never a reload.
    app.on_key(key('3'), now);
    assert!(app.on_key(key('R'), now).is_none());
    app.on_update(Update::Done(Action::Reload, Err("bad toml".into())));
    let notice = app.notice.clone().unwrap();
    assert_eq!(
        (notice.msg, notice.detail.as_str()),
        (Msg::ReloadFailed, "bad toml")
    );
    app.on_update(Update::Done(
        Action::RelayCapabilities,
        Ok(vec!["a.default: official-relay fits".into()]),
    ));
    assert_eq!(app.verdicts, ["a.default: official-relay fits"]);
}

fn session(id: &str, errors: u64, overrides: Option<Overrides>) -> Session {
    Session {
        session: id.into(),
        upstream: Some("alpha.default".into()),
        current_graph: true,
        requests_24h: 10,
        errors_24h: errors,
        overrides,
        ..Session::default()
    }
}

/// Four sessions (s2 with overrides, s3 with errors, s4 only overrides), three
/// endpoints of two providers, two profiles.
fn with_sessions() -> App {
    let endpoint = |p: &str, e: &str| Endpoint {
        provider: p.into(),
        endpoint: e.into(),
        key: format!("{p}.{e}"),
        ..Endpoint::default()
    };
    let pinned = Overrides {
        reasoning_effort: Some("high".into()),
        route_target: Some("alpha.default".into()),
        profile: Some("fast".into()),
        ..Overrides::default()
    };
    let only = Overrides {
        model: Some("gpt-5".into()),
        ..Overrides::default()
    };
    let mut app = App {
        page: Page::Sessions,
        ..App::default()
    };
    app.on_update(Update::Data(Box::new(Snapshot {
        endpoints: vec![
            endpoint("alpha", "default"),
            endpoint("alpha", "backup"),
            endpoint("beta", "default"),
        ],
        sessions: Some(vec![
            session("s1", 0, None),
            session("s2", 0, Some(pinned)),
            session("s3", 2, None),
            Session {
                upstream: None,
                ..session("s4", 0, Some(only))
            },
        ]),
        profiles: Some(Profiles {
            default_profile: None,
            profiles: vec![
                Profile {
                    name: "fast".into(),
                    model: Some("gpt-5-mini".into()),
                    ..Profile::default()
                },
                Profile {
                    name: "deep".into(),
                    reasoning_effort: Some("xhigh".into()),
                    ..Profile::default()
                },
            ],
        }),
        ..Snapshot::default()
    })));
    app
}

fn selected(app: &App) -> Option<&str> {
    app.selected_session().map(|s| s.session.as_str())
}

/// The route and body a command would send, for a session action.
fn sent(command: Option<Command>) -> (String, &'static str, serde_json::Value) {
    match command {
        Some(Command::Act(Action::Session { session, change })) => {
            let (route, body) = change.request(&session);
            (session, route, body)
        }
        other => panic!("not a session action: {other:?}"),
    }
}

#[test]
fn the_session_selection_moves_and_stays_in_the_list() {
    let now = Instant::now();
    let mut app = with_sessions();
    assert_eq!(selected(&app), Some("s1"));
    for _ in 0..10 {
        app.on_key(code(KeyCode::Down), now);
    }
    assert_eq!(selected(&app), Some("s4"), "clamped at the last");
    app.on_key(code(KeyCode::Up), now);
    app.on_key(key('k'), now);
    assert_eq!(selected(&app), Some("s2"));
    app.on_key(key('j'), now);
    assert_eq!(selected(&app), Some("s3"));
    app.on_key(code(KeyCode::PageUp), now);
    assert_eq!(selected(&app), Some("s1"));
    app.on_key(code(KeyCode::PageDown), now);
    assert_eq!(selected(&app), Some("s4"));
}

#[test]
fn session_filters_keep_the_selection_on_its_session() {
    let now = Instant::now();
    let mut app = with_sessions();
    app.on_key(code(KeyCode::Down), now);
    assert_eq!(selected(&app), Some("s2"));
    app.on_key(key('v'), now);
    assert!(app.session_filter.overrides_only);
    let data = app.data.as_ref().unwrap();
    let shown: Vec<&str> = app
        .shown_sessions(data)
        .iter()
        .map(|s| s.session.as_str())
        .collect();
    assert_eq!(shown, ["s2", "s4"]);
    assert_eq!((selected(&app), app.sessions.index), (Some("s2"), 0));
    // Both filters: nothing matches, and an override key says so instead of acting.
    app.on_key(key('e'), now);
    assert_eq!(selected(&app), None);
    assert!(app.on_key(key('h'), now).is_none());
    assert_eq!(app.notice.as_ref().unwrap().msg, Msg::NoSessionSelected);
    app.on_key(key('v'), now);
    assert_eq!(selected(&app), Some("s3"), "errors only");
    // Nothing matches both; the selection waits on its session and is back on it after.
    app.on_key(key('v'), now);
    assert_eq!(selected(&app), None);
    app.on_key(key('v'), now);
    assert_eq!(selected(&app), Some("s3"));
    // A refresh that drops another session keeps the selection on its session; one that
    // drops the selected session clamps the selection.
    let mut data = app.data.clone().unwrap();
    data.sessions
        .as_mut()
        .unwrap()
        .retain(|s| s.session != "s3");
    app.on_key(key('e'), now);
    app.on_key(code(KeyCode::PageDown), now);
    assert_eq!(selected(&app), Some("s4"));
    app.on_update(Update::Data(Box::new(data)));
    assert_eq!(selected(&app), Some("s4"), "kept by identity");
    assert_eq!(app.sessions.index, 2);
    let mut data = app.data.clone().unwrap();
    data.sessions
        .as_mut()
        .unwrap()
        .retain(|s| s.session != "s4");
    app.on_update(Update::Data(Box::new(data)));
    assert_eq!(
        (selected(&app), app.sessions.index),
        (Some("s2"), 1),
        "clamped"
    );
}

#[test]
fn each_override_key_sends_the_right_change_for_the_selected_session() {
    let now = Instant::now();
    let mut app = with_sessions();
    app.on_key(code(KeyCode::Down), now);
    let effort = |e: &str| json!({"session_id": "s2", "reasoning_effort": e});
    let clear = |f: &str| json!({"session_id": "s2", "clear": [f]});
    let cases = [
        ('l', effort("low")),
        ('m', effort("medium")),
        ('h', effort("high")),
        ('X', effort("xhigh")),
        ('x', clear("reasoning_effort")),
        ('P', clear("route_target")),
    ];
    for (pressed, body) in cases {
        let (session, route, sent_body) = sent(app.on_key(key(pressed), now));
        assert_eq!(session, "s2", "{pressed}");
        assert_eq!(route, "/overrides/session", "{pressed}");
        assert_eq!(sent_body, body, "{pressed}");
    }
    // Off the Sessions page these keys do something else or nothing.
    app.on_key(key('1'), now);
    assert!(app.on_key(key('h'), now).is_none());
}

#[test]
fn reset_needs_a_second_r_for_the_same_session_within_three_seconds() {
    let start = Instant::now();
    let mut app = with_sessions();
    app.on_key(code(KeyCode::Down), start);
    assert!(app.on_key(key('R'), start).is_none());
    let notice = app.notice.clone().unwrap();
    assert_eq!(
        (notice.msg, notice.detail.as_str()),
        (Msg::PressRAgain, "s2")
    );
    let (session, route, body) = sent(app.on_key(key('R'), start + Duration::from_secs(2)));
    assert_eq!((session.as_str(), route), ("s2", "/overrides/session"));
    assert_eq!(body, json!({"session_id": "s2", "clear": ["all"]}));
    // The selection moved between the presses: the second asks again, for the new one.
    app.on_key(key('R'), start);
    app.on_key(code(KeyCode::Down), start);
    assert!(app.on_key(key('R'), start).is_none());
    assert_eq!(app.notice.as_ref().unwrap().detail, "s3");
    // Too late.
    assert!(
        app.on_key(key('R'), start + Duration::from_secs(4))
            .is_none()
    );
    app.on_tick(start + Duration::from_secs(8));
    assert!(app.confirm.is_none() && app.notice.is_none());
}

#[test]
fn the_pin_picker_opens_on_the_current_pin_moves_pins_and_cancels() {
    let now = Instant::now();
    let mut app = with_sessions();
    app.on_key(code(KeyCode::Down), now);
    assert!(app.on_key(key('p'), now).is_none());
    let picker = app.picker.as_ref().unwrap();
    let values: Vec<&str> = picker
        .choices
        .iter()
        .map(|c| c.value.as_deref().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "alpha",
            "alpha.default",
            "alpha.backup",
            "beta",
            "beta.default"
        ]
    );
    assert!(picker.choices[0].any_endpoint && !picker.choices[1].any_endpoint);
    assert_eq!(picker.cursor.index, 1, "on the current pin");
    // The picker takes the keys: no page switch, no quit, no effort change.
    for pressed in ['1', 'q', 'h'] {
        assert!(app.on_key(key(pressed), now).is_none());
    }
    assert!(!app.quit && app.page == Page::Sessions);
    app.on_key(code(KeyCode::Down), now);
    app.on_key(key('j'), now);
    app.on_key(key('k'), now);
    let (session, route, body) = sent(app.on_key(code(KeyCode::Enter), now));
    assert_eq!((session.as_str(), route), ("s2", "/overrides/session"));
    assert_eq!(
        body,
        json!({"session_id": "s2", "route_target": "alpha.backup"})
    );
    assert!(app.picker.is_none());
    // Esc closes without sending; a session without a pin starts at the top.
    app.on_key(code(KeyCode::Up), now);
    app.on_key(key('p'), now);
    assert_eq!(app.picker.as_ref().unwrap().cursor.index, 0);
    app.on_key(code(KeyCode::PageDown), now);
    assert_eq!(app.picker.as_ref().unwrap().cursor.index, 4, "clamped");
    assert!(app.on_key(code(KeyCode::Esc), now).is_none());
    assert!(app.picker.is_none());
    assert!(app.on_key(key('q'), now).is_none() && app.quit);
}

#[test]
fn the_profile_picker_cycles_with_b_and_can_remove_the_profile() {
    let now = Instant::now();
    let mut app = with_sessions();
    app.on_key(code(KeyCode::Down), now);
    app.on_key(key('b'), now);
    let picker = app.picker.as_ref().unwrap();
    assert_eq!(picker.kind, PickKind::Profile);
    assert_eq!(picker.cursor.index, 0, "on the current profile, fast");
    assert_eq!(picker.choices[0].note, "gpt-5-mini");
    app.on_key(key('b'), now);
    app.on_key(key('b'), now);
    assert_eq!(app.picker.as_ref().unwrap().choices[2].value, None);
    let (_, route, body) = sent(app.on_key(code(KeyCode::Enter), now));
    assert_eq!(route, "/overrides/session/profile");
    assert_eq!(body, json!({"session_id": "s2", "profile": null}));
    // `b` after the last choice comes back to the first.
    app.on_key(key('b'), now);
    for _ in 0..3 {
        app.on_key(key('b'), now);
    }
    let (_, _, body) = sent(app.on_key(code(KeyCode::Enter), now));
    assert_eq!(body, json!({"session_id": "s2", "profile": "fast"}));
    // Profiles that could not be read: said so, with the helper's words.
    let mut data = app.data.clone().unwrap();
    data.profiles = None;
    data.profiles_error = Some("the running codex-helper refused (404, not_found)".into());
    app.on_update(Update::Data(Box::new(data)));
    assert!(app.on_key(key('b'), now).is_none() && app.picker.is_none());
    let notice = app.notice.clone().unwrap();
    assert_eq!(notice.msg, Msg::ProfilesUnreadable);
    assert!(notice.detail.contains("404"));
}

#[test]
fn session_results_and_refusals_show_on_the_status_line() {
    let mut app = with_sessions();
    let action = Action::Session {
        session: "s2".into(),
        change: SessionChange::Effort(Effort::High),
    };
    app.on_update(Update::Done(action.clone(), Ok(Vec::new())));
    let notice = app.notice.clone().unwrap();
    assert_eq!(notice.msg, Msg::SessionUpdated);
    assert_eq!(notice.detail, "s2: reasoning effort high");
    let refusal =
        "the running codex-helper refused (400, bad_request): unknown route target `zeta`";
    app.on_update(Update::Done(action, Err(refusal.into())));
    let notice = app.notice.clone().unwrap();
    assert!(notice.failed && notice.detail == refusal);
}

fn request_rows(ids: std::ops::Range<i64>) -> Vec<Request> {
    ids.rev()
        .map(|id| Request {
            id,
            outcome: "completed".into(),
            ..Request::default()
        })
        .collect()
}

#[test]
fn requests_scroll_keeps_the_selection_visible_and_on_its_row() {
    let now = Instant::now();
    let mut app = App {
        page: Page::Requests,
        // Ten rows of requests on screen.
        body_rows: 13,
        ..App::default()
    };
    app.on_update(Update::Data(Box::new(Snapshot {
        recent: request_rows(0..50),
        ..Snapshot::default()
    })));
    app.on_key(code(KeyCode::PageDown), now);
    app.on_key(code(KeyCode::PageDown), now);
    assert_eq!((app.requests.index, app.requests.top), (20, 11));
    app.on_key(key('j'), now);
    assert_eq!((app.requests.index, app.requests.top), (21, 12));
    let id = app.requests.key.clone();
    assert_eq!(id.as_deref(), Some("28"), "newest first: row 21 is id 28");
    // Three new requests arrive on top: the same request stays selected, in view.
    app.on_update(Update::Data(Box::new(Snapshot {
        recent: request_rows(0..53),
        ..Snapshot::default()
    })));
    assert_eq!(app.requests.key, id);
    assert_eq!((app.requests.index, app.requests.top), (24, 15));
    for _ in 0..40 {
        app.on_key(code(KeyCode::Down), now);
    }
    assert_eq!((app.requests.index, app.requests.top), (52, 43));
    // Fewer rows now: clamped.
    app.on_update(Update::Data(Box::new(Snapshot {
        recent: request_rows(40..45),
        ..Snapshot::default()
    })));
    assert_eq!((app.requests.index, app.requests.top), (4, 0));
}

#[test]
fn routing_scroll_keeps_the_selection_visible() {
    let now = Instant::now();
    let mut app = App {
        page: Page::Routing,
        body_rows: 10,
        ..App::default()
    };
    let endpoints = (0..30)
        .map(|i| Endpoint {
            provider: format!("p{i:02}"),
            endpoint: "default".into(),
            key: format!("p{i:02}.default"),
            ..Endpoint::default()
        })
        .collect();
    app.on_update(Update::Data(Box::new(Snapshot {
        endpoints,
        ..Snapshot::default()
    })));
    let rows = Page::Routing.list_rows(10);
    assert_eq!(rows, 5);
    for _ in 0..12 {
        app.on_key(key('j'), now);
    }
    assert_eq!((app.routing.index, app.routing.top), (12, 8));
    app.on_key(code(KeyCode::PageUp), now);
    assert_eq!((app.routing.index, app.routing.top), (7, 7));
    let command = app.on_key(key('x'), now);
    assert!(matches!(
        command,
        Some(Command::Act(Action::Switch { ref provider, .. })) if provider == "p07"
    ));
}

/// The provider a `P` `P` pins, if the keys sent one.
fn pinned_in_config(command: Option<Command>) -> Option<String> {
    match command {
        Some(Command::Act(Action::PinInConfig { provider })) => Some(provider),
        _ => None,
    }
}

#[test]
fn a_pin_in_the_config_needs_a_second_p_on_the_same_endpoint_within_three_seconds() {
    let start = Instant::now();
    let mut app = with_endpoints();
    app.on_key(key('2'), start);
    app.on_key(code(KeyCode::Down), start);
    assert!(app.on_key(key('P'), start).is_none());
    let notice = app.notice.clone().unwrap();
    assert_eq!(
        (notice.msg, notice.detail.as_str()),
        (Msg::PressPAgain, "b")
    );
    let second = app.on_key(key('P'), start + Duration::from_secs(2));
    assert_eq!(pinned_in_config(second).as_deref(), Some("b"));
    assert_eq!(app.notice.as_ref().unwrap().msg, Msg::Running);
}

#[test]
fn a_late_second_p_asks_again_and_a_tick_forgets_the_first() {
    let start = Instant::now();
    let mut app = with_endpoints();
    app.on_key(key('2'), start);
    assert!(app.on_key(key('P'), start).is_none());
    let late = start + Duration::from_secs(4);
    assert!(pinned_in_config(app.on_key(key('P'), late)).is_none());
    assert_eq!(app.notice.as_ref().unwrap().msg, Msg::PressPAgain);
    app.on_tick(late + Duration::from_secs(4));
    assert!(app.confirm.is_none() && app.notice.is_none());
}

#[test]
fn a_p_on_another_endpoint_starts_over() {
    let start = Instant::now();
    let mut app = with_endpoints();
    app.on_key(key('2'), start);
    assert!(app.on_key(key('P'), start).is_none());
    app.on_key(key('j'), start);
    assert!(pinned_in_config(app.on_key(key('P'), start)).is_none());
    assert_eq!(app.notice.as_ref().unwrap().detail, "b");
    // Another endpoint of the same provider is another endpoint too.
    let mut app = App {
        page: Page::Routing,
        ..App::default()
    };
    let endpoint = |name: &str| Endpoint {
        provider: "a".into(),
        endpoint: name.into(),
        key: format!("a.{name}"),
        ..Endpoint::default()
    };
    app.on_update(Update::Data(Box::new(Snapshot {
        endpoints: vec![endpoint("default"), endpoint("backup")],
        ..Snapshot::default()
    })));
    app.on_key(key('P'), start);
    app.on_key(key('j'), start);
    assert!(pinned_in_config(app.on_key(key('P'), start)).is_none());
}

#[test]
fn the_pin_in_the_config_shows_the_helpers_answer_or_refusal() {
    let mut app = with_endpoints();
    let action = Action::PinInConfig {
        provider: "b".into(),
    };
    let answer = "main → b (/h/config.toml)".to_string();
    app.on_update(Update::Done(action.clone(), Ok(vec![answer.clone()])));
    let notice = app.notice.clone().unwrap();
    assert_eq!((notice.msg, notice.detail), (Msg::PinnedInConfig, answer));
    assert!(!notice.failed);
    let refusal = "the running codex-helper refused (409, conflict): /h/config.toml changed on \
                   disk since it was loaded; reload first (POST /runtime/reload)";
    app.on_update(Update::Done(action, Err(refusal.into())));
    let notice = app.notice.clone().unwrap();
    assert!(notice.failed && notice.msg == Msg::ActionFailed && notice.detail == refusal);
}
