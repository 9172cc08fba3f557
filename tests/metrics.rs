//! `GET /metrics` of a real running `serve` with mock relays: the scrape is valid Prometheus
//! text format 0.0.4, and its series move by exactly what happened: successful streams, a
//! client that goes away mid-stream (the open-stream and connection gauges up while it is
//! open, back to zero after), rows the ledger could not write (its database locked by the
//! test), and a failover from a relay answering 502.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::cli::{Homes, serve};
use support::mock_relay::{Fault, MockRelay};
use support::{client, codex_body, providers, turn};

type Labels = BTreeMap<String, String>;
/// A sample line: name, labels, value.
type Line = (String, Labels, f64);

/// One scrape, checked and parsed: every sample by name with its labels.
struct Scrape {
    samples: Vec<Line>,
    text: String,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

fn metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `{a="x",b="y"}` (after the name) → labels and the rest of the line.
fn parse_labels(text: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = text.strip_prefix('{') else {
        return (labels, text);
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (name, after) = rest.split_once("=\"").expect("a label is name=\"value\"");
        assert!(label_name(name), "label name `{name}`");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("a label value ends with a quote");
            match c {
                '"' => break i,
                '\\' => match chars.next().expect("an escape has a character").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("`\\{other}` is not an escape of the format"),
                },
                '\n' => panic!("a raw line feed in a label value"),
                c => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "label `{name}` twice"
        );
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("`{text}` is not a sample value")),
    }
}

/// A strict reading of the text format 0.0.4: `# HELP` and `# TYPE` once per family, before
/// its samples, which are together; names and labels well formed; histograms with cumulative
/// buckets ending in `+Inf`, equal to `_count`, and a `_sum`; counters end in `_total`.
fn parse(text: &str) -> Scrape {
    assert!(text.ends_with('\n'), "the body ends with a line feed");
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped = std::collections::HashSet::new();
    let mut done_families = std::collections::HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(metric_name(name), "{line}");
            assert!(helped.insert(name.to_string()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "a counter's name ends in _total: {line}"
                );
            }
            assert!(
                types.insert(name.into(), kind.into()).is_none(),
                "TYPE twice: {line}"
            );
            if let Some(previous) = current.replace(name.to_string()) {
                done_families.insert(previous);
            }
            continue;
        }
        assert!(!line.starts_with('#'), "an unknown comment line: {line}");
        assert!(!line.is_empty(), "an empty line");
        let name_end = line.find(['{', ' ']).expect(line);
        let name = &line[..name_end];
        assert!(metric_name(name), "{line}");
        let (labels, rest) = parse_labels(&line[name_end..]);
        let value = rest.strip_prefix(' ').expect(line);
        assert!(!value.contains(' '), "no timestamps: {line}");
        let value = parse_value(value);
        let family = current.as_deref().expect("a sample after its TYPE");
        let kind = &types[family];
        let belongs = match kind.as_str() {
            "histogram" => [
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&name.to_string()),
            _ => name == family,
        };
        assert!(belongs, "`{name}` is not of family `{family}` ({kind})");
        assert!(
            !done_families.contains(name),
            "samples not together: {line}"
        );
        if kind == "histogram" && name.ends_with("_bucket") {
            assert!(labels.contains_key("le"), "{line}");
        }
        samples.push((name.to_string(), labels, value));
    }
    for family in types.keys() {
        assert!(helped.contains(family), "{family} has TYPE but no HELP");
    }
    check_histograms(&types, &samples);
    Scrape {
        samples,
        text: text.to_string(),
    }
}

fn check_histograms(types: &HashMap<String, String>, samples: &[Line]) {
    for (family, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for (name, labels, value) in samples {
            if *name == format!("{family}_bucket") {
                let mut key = labels.clone();
                key.remove("le");
                series
                    .entry(key)
                    .or_default()
                    .push((parse_value(&labels["le"]), *value));
            }
        }
        for (labels, buckets) in series {
            for pair in buckets.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{family}: `le` ascending");
                assert!(pair[0].1 <= pair[1].1, "{family}: buckets cumulative");
            }
            let last = buckets.last().unwrap();
            assert_eq!(last.0, f64::INFINITY, "{family}: the last bucket is +Inf");
            let one = |suffix: &str| {
                samples
                    .iter()
                    .filter(|(n, l, _)| *n == format!("{family}{suffix}") && *l == labels)
                    .map(|(_, _, v)| *v)
                    .collect::<Vec<_>>()
            };
            assert_eq!(one("_count"), vec![last.1], "{family}: +Inf = _count");
            assert_eq!(one("_sum").len(), 1, "{family}: one _sum");
        }
    }
}

async fn scrape(base: &str) -> Scrape {
    let response = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&response.text().await.unwrap())
}

/// Scrapes until `ready` holds (bounded: 15 s).
async fn scrape_until(base: &str, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let scrape = scrape(base).await;
        if ready(&scrape) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "{what}; last scrape:\n{}",
            scrape.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const FIRST_OK: &[(&str, &str)] = &[
    ("provider", "first"),
    ("endpoint", "default"),
    ("code", "200"),
    ("outcome", "completed"),
];

/// All observations of a histogram family, over every endpoint.
fn observations(scrape: &Scrape, family: &str) -> f64 {
    scrape.get(&format!("{family}_count"), &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_move_with_requests_drops_ledger_losses_and_failovers() {
    let first = MockRelay::start("first").await;
    let second = MockRelay::start("second").await;
    let homes = Homes::new();
    let relays = providers(&[("first", &first.base_url()), ("second", &second.base_url())]);
    std::fs::write(
        homes.helper_config(),
        format!("version = 5\n{relays}[retry]\nprofile = \"aggressive-failover\"\n"),
    )
    .unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let base = homes.admin_base();

    // The admin API's refusals hold for it as for every route: a foreign `Host` is refused.
    let foreign = client()
        .get(format!("{base}/metrics"))
        .header("host", "metrics.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);

    let start = scrape(&base).await;
    // Prometheus' default path answers too, with the same families.
    let bare = scrape(base.trim_end_matches("/__codex_helper/api/v1")).await;
    assert_eq!(
        bare.get("codex_helper_build_info", &[]),
        start.get("codex_helper_build_info", &[])
    );
    assert!(
        bare.get("codex_helper_tasks", &[]) >= 1.0,
        "the accept loop is a task"
    );
    assert_eq!(
        start.get(
            "codex_helper_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    for endpoint in ["first", "second"] {
        let labels = [("provider", endpoint), ("endpoint", "default")];
        assert!(
            start
                .samples
                .iter()
                .any(|(n, l, v)| n == "codex_helper_failovers_total"
                    && l.get("provider").map(String::as_str) == Some(endpoint)
                    && *v == 0.0),
            "every configured endpoint has its series from the start:\n{}",
            start.text
        );
        assert_eq!(
            start.get("codex_helper_time_to_first_byte_seconds_count", &labels),
            0.0
        );
    }
    assert_eq!(start.get("codex_helper_requests_total", &[]), 0.0);
    assert_eq!(start.get("codex_helper_active_streams", &[]), 0.0);
    assert!(start.has("codex_helper_ledger_queue_rows"));
    assert!(!start.text.contains("session"), "no session label");

    // Three streamed turns answered by the first relay.
    for i in 0..3 {
        assert_eq!(turn(&served.url, &format!("ok-{i}")).await, "first");
    }
    let after_ok = scrape_until(&base, "three completed requests", |s| {
        s.get("codex_helper_requests_total", FIRST_OK) == 3.0
    })
    .await;
    assert_eq!(after_ok.get("codex_helper_requests_total", &[]), 3.0);
    assert_eq!(
        after_ok.get(
            "codex_helper_upstream_attempts_total",
            &[("provider", "first"), ("result", "responded")]
        ),
        3.0
    );
    for family in [
        "codex_helper_time_to_first_byte_seconds",
        "codex_helper_request_duration_seconds",
        "codex_helper_proxy_overhead_seconds",
    ] {
        assert_eq!(observations(&after_ok, family), 3.0, "{family}");
    }
    assert!(after_ok.get("codex_helper_request_duration_seconds_sum", &[]) > 0.0);

    // A client that goes away mid-stream: open while the relay holds the stream.
    let release = Arc::new(tokio::sync::Notify::new());
    // Through the first text delta: a stream is held until its first real event.
    first.push(Fault::HoldMidStream {
        after_events: 5,
        release: release.clone(),
    });
    let leaving = client();
    let mut reply = leaving
        .post(format!("{}/v1/responses", served.url))
        .header("accept", "text/event-stream")
        .header("session-id", "leaving")
        .body(codex_body("gpt-5.1", "leaving", 500))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(reply.chunk().await.unwrap().is_some(), "the first events");
    let during = scrape(&base).await;
    assert_eq!(
        during.get("codex_helper_active_streams", &[]),
        1.0,
        "{}",
        during.text
    );
    assert!(during.get("codex_helper_active_connections", &[]) >= 1.0);
    drop(reply);
    drop(leaving);
    let after_drop = scrape_until(&base, "the dropped stream recorded and closed", |s| {
        s.get(
            "codex_helper_requests_total",
            &[("provider", "first"), ("outcome", "client_disconnected")],
        ) == 1.0
            && s.get("codex_helper_active_streams", &[]) == 0.0
            && s.get("codex_helper_active_connections", &[]) == 0.0
    })
    .await;
    release.notify_one();
    assert_eq!(
        after_drop.get("codex_helper_requests_total", FIRST_OK),
        3.0,
        "the completed count is unchanged"
    );
    assert_eq!(
        observations(&after_drop, "codex_helper_request_duration_seconds"),
        4.0
    );

    // Rows the ledger cannot write: the test holds its database's write lock.
    let written_before = scrape_until(&base, "the ledger written up to date", |s| {
        s.get("codex_helper_ledger_rows_written_total", &[]) == 4.0
    })
    .await;
    assert_eq!(
        written_before.get("codex_helper_ledger_queue_rows", &[]),
        0.0
    );
    let ledger = homes.helper.path().join("ledger.sqlite3");
    let locker = rusqlite::Connection::open(&ledger).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    assert_eq!(turn(&served.url, "locked-out").await, "first");
    let lost = scrape_until(&base, "a row lost to the locked ledger", |s| {
        s.get(
            "codex_helper_ledger_rows_lost_total",
            &[("reason", "write_failed")],
        ) == 1.0
    })
    .await;
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!(
        lost.get(
            "codex_helper_ledger_rows_lost_total",
            &[("reason", "queue_full")]
        ),
        0.0
    );
    assert_eq!(lost.get("codex_helper_ledger_rows_written_total", &[]), 4.0);
    assert_eq!(lost.get("codex_helper_ledger_queue_rows", &[]), 0.0);
    assert_eq!(lost.get("codex_helper_requests_total", FIRST_OK), 4.0);

    // A failover: the first relay answers 502, the second one the request.
    first.push(Fault::status(502));
    assert_eq!(turn(&served.url, "failing-over").await, "second");
    let end = scrape_until(&base, "the failover recorded", |s| {
        s.get(
            "codex_helper_requests_total",
            &[("provider", "second"), ("outcome", "completed")],
        ) == 1.0
    })
    .await;
    let at = |provider| [("provider", provider), ("endpoint", "default")];
    assert_eq!(end.get("codex_helper_failovers_total", &at("first")), 1.0);
    assert_eq!(end.get("codex_helper_failovers_total", &at("second")), 0.0);
    assert_eq!(
        end.get(
            "codex_helper_upstream_attempts_total",
            &[("provider", "first"), ("result", "failed_status")]
        ),
        1.0
    );
    assert_eq!(
        end.get(
            "codex_helper_upstream_attempts_total",
            &[("provider", "second"), ("result", "responded")]
        ),
        1.0
    );
    assert_eq!(end.get("codex_helper_requests_total", FIRST_OK), 4.0);
    assert_eq!(end.get("codex_helper_requests_total", &[]), 6.0);
    for family in [
        "codex_helper_time_to_first_byte_seconds",
        "codex_helper_request_duration_seconds",
    ] {
        assert_eq!(observations(&end, family), 6.0, "{family}");
    }
    assert_eq!(end.get("codex_helper_active_streams", &[]), 0.0);

    // Every configured endpoint has exactly one balance state set.
    for provider in ["first", "second"] {
        assert_eq!(
            end.get("codex_helper_balance_state", &at(provider)),
            1.0,
            "{}",
            end.text
        );
        let states = end
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == "codex_helper_balance_state"
                    && l.get("provider").map(String::as_str) == Some(provider)
            })
            .count();
        assert_eq!(states, 6, "every state listed");
    }
    served.stop().await;
}

#[tokio::test]
async fn the_format_check_refuses_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"2\"} 3\n";
    assert_eq!(parse(good).get("a_total", &[("x", "1\"2")]), 3.0);
    for bad in [
        // No TYPE before the sample.
        "a_total 1\n",
        // A counter without _total.
        "# HELP a A.\n# TYPE a counter\na 1\n",
        // A bad escape.
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"\\q\"} 1\n",
        // Buckets not cumulative.
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        // No +Inf bucket.
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
    ] {
        let refused = std::panic::catch_unwind(|| parse(bad)).is_err();
        assert!(refused, "accepted:\n{bad}");
    }
}
