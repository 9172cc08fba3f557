//! The fault matrix: every fault the mock relays can produce × transport (streamed SSE, JSON,
//! WebSocket where the fault applies) × topology (one relay, a primary and a fallback), through
//! the real `codex-helper serve`. Each cell asserts what the client sees (status, events, the
//! final event or JSON body), the ledger row `serve` wrote (outcome, failure class, the relay
//! that answered, every attempt), and that each relay only ever saw its own key; redirects point
//! at another loopback relay that must receive nothing, on direct routes (hyper) and through an
//! outbound proxy (reqwest).
//!
//! One `serve` runs every cell: each cell has relays and a route of its own, picked by the
//! `x-fault-cell` header through a chain of `conditional` route nodes, so cells run side by
//! side. Timeouts are short (hundreds of milliseconds) and every wait is bounded.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::cli::{Homes, serve};
use support::mock_relay::{Fault, MockRelay};
use support::outbound::{ClosedPort, TestOutbound};
use support::ws_relay::Behaviour;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long any one client exchange may take before it counts as a hang.
const CLIENT_LIMIT: Duration = Duration::from_secs(20);
/// A stall longer than every timeout in the config below.
const LONG: Duration = Duration::from_secs(30);
/// Bigger than every buffer the proxy has for one event or line (16 MiB SSE line, 512 KiB
/// held before the first event's line and 2 MiB for that line, 8 MiB JSON usage tap).
const HUGE: usize = 17 << 20;
/// A large first event, past the 512 KiB the proxy holds ahead of a stream's first event and
/// under the 2 MiB that event's line may take: served however loopback splits the write.
const BIG_FIRST: usize = 600 << 10;
/// A first event past the 2 MiB its line may take, and under every other limit.
const TOO_BIG_FIRST: usize = 3 << 20;

const TIMEOUTS: &str = "[proxy]\nconnect_timeout_ms = 1000\nresponse_header_timeout_ms = 2000\n\
    stream_idle_timeout_ms = 1500\n[retry]\nbackoff_ms = 20\njitter_ms = 0\n\
    first_event_timeout_ms = 1500\nretry_after_max_ms = 2000\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Stream,
    Json,
    WebSocket,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Topology {
    /// One relay.
    Alone,
    /// The faulty relay first, a healthy one after it.
    Fallback,
}

/// What the faulty relay is.
#[derive(Clone)]
enum Primary {
    /// Nothing listens on its port.
    Dead,
    /// An HTTP relay with this fault on every request (for a WebSocket: on the handshake).
    Http(Fault),
    /// A relay that accepts the WebSocket and answers its frames so.
    Ws(Behaviour),
}

/// What a cell must show, by rule: the client's side and the ledger row follow from it and
/// the topology (see [`expected`]).
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// The relay fails before the client has seen a byte: with a fallback the client gets the
    /// fallback's answer; alone it gets the proxy's own retryable error (a `response.failed`
    /// in a 200 stream, a 502 for JSON, a 426 for a WebSocket, so Codex uses HTTP). `tries`
    /// attempts on the faulty relay are recorded, each `outcome` (`class` in the ledger).
    FailsOver {
        outcome: &'static str,
        class: &'static str,
        tries: usize,
    },
    /// The relay's answer reaches the client whole (a compressed reply decoded), with
    /// `events` events (0: JSON); `usage` says whether the ledger reads its usage.
    Served { events: usize, usage: bool },
    /// The fault comes after output reached the client: no failover, no replay; the client
    /// gets `events` of the relay's events, then a final `last` event with error `code`;
    /// the ledger row says `outcome`.
    Cut {
        events: usize,
        last: &'static str,
        code: &'static str,
        outcome: &'static str,
    },
    /// A 200 the proxy cannot judge (not JSON, a coding it cannot undo): handed on as it is.
    PassedOn,
}

/// One row: a fault and, per transport, how the relay commits it and what must follow.
struct Case {
    name: &'static str,
    /// The fault and its rule for a transport; `None` where the fault does not apply.
    cell: fn(Transport) -> Option<(Primary, Rule)>,
    /// Relays reached through an outbound HTTP proxy (reqwest) instead of directly (hyper).
    via_proxy: bool,
}

/// Stands for the other host's URL in a redirect's `Location` (filled in per route).
const ELSEWHERE: &str = "{elsewhere}";

fn http(fault: Fault, rule: Rule) -> Option<(Primary, Rule)> {
    Some((Primary::Http(fault), rule))
}

fn ws(behaviour: Behaviour, rule: Rule) -> Option<(Primary, Rule)> {
    Some((Primary::Ws(behaviour), rule))
}

/// Fails over after `tries` on HTTP, after one handshake on a WebSocket (no same-relay retry).
fn fails_over(t: Transport, outcome: &'static str, class: &'static str, tries: usize) -> Rule {
    Rule::FailsOver {
        outcome,
        class,
        tries: if t == Transport::WebSocket { 1 } else { tries },
    }
}

/// A status the retry policy tries twice on the same relay, then fails over from.
fn retried_status(t: Transport, status: u16, class: &'static str) -> Option<(Primary, Rule)> {
    http(
        Fault::status(status),
        fails_over(t, "failed_status", class, 2),
    )
}

fn redirect(t: Transport, status: u16) -> Option<(Primary, Rule)> {
    let fault = Fault::Redirect {
        status,
        location: format!("{ELSEWHERE}/v1/responses"),
    };
    http(fault, fails_over(t, "failed_status", "redirect", 1))
}

fn compressed(t: Transport, coding: &'static str) -> Option<(Primary, Rule)> {
    let events = if t == Transport::Stream { 10 } else { 0 };
    (t != Transport::WebSocket).then_some((
        Primary::Http(Fault::Compressed(coding)),
        Rule::Served {
            events,
            usage: true,
        },
    ))
}

/// A stream cut after `events`: the proxy ends it with its own `response.failed`.
const fn cut_stream(events: usize) -> Rule {
    Rule::Cut {
        events,
        last: "response.failed",
        code: "server_error",
        outcome: "upstream_stream_error",
    }
}

/// A WebSocket response cut after `events`: an `error` event, then a close.
const fn cut_ws(events: usize) -> Rule {
    Rule::Cut {
        events,
        last: "error",
        code: "relay_connection_lost",
        outcome: "upstream_stream_error",
    }
}

fn case(name: &'static str, cell: fn(Transport) -> Option<(Primary, Rule)>) -> Case {
    Case {
        name,
        cell,
        via_proxy: false,
    }
}

/// The matrix. Streamed answers have 10 events, WebSocket ones 5.
fn cases() -> Vec<Case> {
    use Transport::*;
    vec![
        case("connect refused", |t| {
            Some((Primary::Dead, fails_over(t, "connect_error", "connect", 1)))
        }),
        case("reset before headers", |t| {
            http(
                Fault::ResetBeforeHeaders,
                fails_over(t, "transport_error", "transport", 2),
            )
        }),
        case("stall before headers", |t| {
            http(
                Fault::StallBeforeHeaders(LONG),
                fails_over(t, "timeout", "header_timeout", 1),
            )
        }),
        case("stall before the first event", |t| match t {
            Stream => http(
                Fault::StallMidStream {
                    after_events: 0,
                    pause: LONG,
                },
                fails_over(t, "failed_stream", "first_event_timeout", 1),
            ),
            Json => None,
            WebSocket => ws(Behaviour::StallBeforeFirst, cut_ws(0)),
        }),
        case("reset mid-stream", |t| match t {
            Stream => http(Fault::ResetMidStream { after_events: 4 }, cut_stream(4)),
            // A small JSON body is read whole before answering, so it can still fail over.
            Json => http(
                Fault::ResetMidJson,
                fails_over(t, "transport_error", "transport", 2),
            ),
            WebSocket => ws(Behaviour::DropMidResponse, cut_ws(1)),
        }),
        case("stall mid-stream", |t| match t {
            Stream => http(
                Fault::StallMidStream {
                    after_events: 4,
                    pause: LONG,
                },
                cut_stream(4),
            ),
            Json => http(
                Fault::StallMidJson(LONG),
                fails_over(t, "timeout", "header_timeout", 1),
            ),
            WebSocket => ws(Behaviour::StallMidResponse, cut_ws(1)),
        }),
        case("429 without Retry-After", |t| {
            retried_status(t, 429, "rate_limited")
        }),
        case("429 with Retry-After", |t| {
            let fault = Fault::Status {
                status: 429,
                body: r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#.into(),
                retry_after: Some(1),
            };
            http(fault, fails_over(t, "failed_status", "rate_limited", 2))
        }),
        case("500", |t| retried_status(t, 500, "server_error")),
        case("502", |t| retried_status(t, 502, "server_error")),
        case("503", |t| retried_status(t, 503, "server_error")),
        case("504", |t| retried_status(t, 504, "server_error")),
        case("520 from Cloudflare", |t| {
            http(
                Fault::Cloudflare { status: 520 },
                fails_over(t, "failed_status", "server_error", 2),
            )
        }),
        case("524 from Cloudflare", |t| {
            // The WebSocket handshake does not look at `server`: a plain 5xx there.
            let class = match t {
                WebSocket => "server_error",
                _ => "cloudflare_timeout",
            };
            http(
                Fault::Cloudflare { status: 524 },
                fails_over(t, "failed_status", class, 2),
            )
        }),
        case("response.failed in a 200", |t| match t {
            Stream => http(
                Fault::FailedInStream,
                fails_over(t, "failed_stream", "failed_in_stream", 2),
            ),
            Json => None,
            // The relay's own event reaches Codex as it sent it.
            WebSocket => ws(
                Behaviour::FailedInResponse,
                Rule::Cut {
                    events: 1,
                    last: "response.failed",
                    code: "server_error",
                    outcome: "failed_in_stream",
                },
            ),
        }),
        case("response.failed after output", |t| match t {
            Stream => http(
                Fault::FailedAfterOutput,
                Rule::Cut {
                    events: 2,
                    last: "response.failed",
                    code: "server_error",
                    outcome: "failed_in_stream",
                },
            ),
            _ => None,
        }),
        case("malformed", |t| match t {
            // Lines that are no events: the stream ends before any.
            Stream => http(
                Fault::Malformed,
                fails_over(t, "failed_stream", "empty_stream", 2),
            ),
            Json => http(Fault::Malformed, Rule::PassedOn),
            // The frame is passed on (the proxy bridges frames); then the relay is silent.
            WebSocket => ws(Behaviour::Malformed, cut_ws(1)),
        }),
        case("large first event", |t| match t {
            // Held whole until it is complete, in however many reads it comes.
            Stream => http(
                Fault::HugeEvent {
                    after_events: 0,
                    bytes: BIG_FIRST,
                },
                Rule::Served {
                    events: 11,
                    usage: true,
                },
            ),
            _ => None,
        }),
        case("first event past its line's limit", |t| match t {
            // Held up to its line's 2 MiB, however it arrives, then given up on.
            Stream => http(
                Fault::HugeEvent {
                    after_events: 0,
                    bytes: TOO_BIG_FIRST,
                },
                fails_over(t, "failed_stream", "preamble_too_large", 1),
            ),
            _ => None,
        }),
        case("event larger than any buffer", |t| match t {
            Stream => http(
                Fault::HugeEvent {
                    after_events: 4,
                    bytes: HUGE,
                },
                Rule::Served {
                    events: 11,
                    usage: true,
                },
            ),
            Json => http(
                Fault::HugeEvent {
                    after_events: 0,
                    bytes: HUGE,
                },
                // Past the JSON usage tap's 8 MiB: answered whole, its usage not read.
                Rule::Served {
                    events: 0,
                    usage: false,
                },
            ),
            WebSocket => ws(Behaviour::HugeMessage { bytes: 65 << 20 }, cut_ws(1)),
        }),
        case("gzip", |t| compressed(t, "gzip")),
        case("deflate", |t| compressed(t, "deflate")),
        case("br", |t| compressed(t, "br")),
        case("zstd", |t| compressed(t, "zstd")),
        case("a coding the proxy cannot undo", |t| match t {
            // No event can be found in it: like an empty stream.
            Stream => http(
                Fault::Compressed("x-unknown"),
                fails_over(t, "failed_stream", "empty_stream", 2),
            ),
            Json => http(Fault::Compressed("x-unknown"), Rule::PassedOn),
            WebSocket => None,
        }),
        // Events without their content type are events: served, and labelled for Codex.
        case("an event stream without a content type", |t| match t {
            Stream => http(
                Fault::Unlabelled,
                Rule::Served {
                    events: 10,
                    usage: true,
                },
            ),
            Json | WebSocket => None,
        }),
        // No event in it: the attempt failed, as an empty stream does. (A JSON request gets any
        // 200 as it is.)
        case("a 200 JSON error to a streaming turn", |t| {
            let busy = Fault::Status {
                status: 200,
                body: r#"{"error":{"message":"upstream busy"}}"#.into(),
                retry_after: None,
            };
            match t {
                Stream => http(busy, fails_over(t, "failed_stream", "empty_stream", 2)),
                Json => None,
                WebSocket => None,
            }
        }),
        // Refused as a list, not undone one nested decoder per coding (which overflowed the
        // stack and aborted the proxy).
        case("thousands of codings", |t| match t {
            Stream => http(
                Fault::Compressed("x-stacked"),
                fails_over(t, "failed_stream", "empty_stream", 2),
            ),
            Json => http(Fault::Compressed("x-stacked"), Rule::PassedOn),
            WebSocket => None,
        }),
        case("endless keep-alives before the first event", |t| match t {
            Stream => http(
                Fault::EndlessComments {
                    after_events: 0,
                    every: Duration::from_millis(100),
                },
                fails_over(t, "failed_stream", "first_event_timeout", 1),
            ),
            Json => None,
            WebSocket => ws(Behaviour::PingForever, cut_ws(0)),
        }),
        case("endless keep-alives mid-stream", |t| match t {
            Stream => http(
                Fault::EndlessComments {
                    after_events: 4,
                    every: Duration::from_millis(100),
                },
                cut_stream(4),
            ),
            _ => None,
        }),
        case("301 to another host", |t| redirect(t, 301)),
        case("302 to another host", |t| redirect(t, 302)),
        case("307 to another host", |t| redirect(t, 307)),
        case("308 to another host", |t| redirect(t, 308)),
        Case {
            via_proxy: true,
            ..case("302 to another host through an outbound proxy", |t| {
                redirect(t, 302)
            })
        },
        Case {
            via_proxy: true,
            ..case("307 to another host through an outbound proxy", |t| {
                redirect(t, 307)
            })
        },
    ]
}

/// What one cell's client saw.
#[derive(Debug, Default)]
struct Seen {
    status: u16,
    /// Event types in order (SSE and WebSocket); empty for JSON.
    events: Vec<String>,
    /// The final event, or the JSON body.
    last: Value,
    /// The whole body as text (SSE, JSON), or the frames joined.
    text: String,
    hung: bool,
}

/// The ledger row of one cell.
#[derive(Debug, Default)]
struct Row {
    outcome: String,
    error_class: Option<String>,
    provider: Option<String>,
    endpoint: Option<String>,
    /// Read from the answer's usage.
    input_tokens: Option<i64>,
    /// (provider, outcome, class) per attempt.
    attempts: Vec<(String, String, Option<String>)>,
}

/// Who answered: the faulty relay, or its fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Primary,
    Fallback,
}

/// What the client ends with.
#[derive(Debug)]
enum End {
    /// The relay's whole answer: `events` events ending in `response.completed` (a JSON
    /// body for JSON), with its text.
    Answer { by: Role, events: usize },
    /// `events` events, then a final `last` event with error `code`.
    Failed {
        events: usize,
        last: &'static str,
        code: &'static str,
    },
    /// A JSON error body with this `error.code`.
    Error(&'static str),
    /// A body that is not JSON, as the relay sent it.
    Opaque,
}

/// One cell's expected client outcome and ledger row.
#[derive(Debug)]
struct Expect {
    status: u16,
    end: End,
    outcome: &'static str,
    error_class: Option<&'static str>,
    provider: Option<Role>,
    /// Whether an answer's usage is in the row.
    usage: bool,
    /// (who, outcome, class) per recorded attempt.
    attempts: Vec<(Role, &'static str, Option<&'static str>)>,
}

/// The rule of a cell applied to its transport and topology.
fn expected(cell: &Cell) -> Expect {
    let ws = cell.transport == Transport::WebSocket;
    let answered = |by: Role, events: usize| {
        // Over HTTP the answering attempt is recorded; a WebSocket records failed ones only.
        let mut attempts = Vec::new();
        if !ws {
            attempts.push((by, "responded", None));
        }
        (
            End::Answer { by, events },
            "completed",
            None,
            Some(by),
            attempts,
        )
    };
    let status = match cell.transport {
        Transport::WebSocket => 101,
        _ => 200,
    };
    match cell.rule {
        Rule::FailsOver {
            outcome,
            class,
            tries,
        } => {
            // Failed statuses and streams name their class in the attempt; the others only
            // in the ledger's `error_class`.
            let named = matches!(outcome, "failed_status" | "failed_stream").then_some(class);
            let mut attempts: Vec<_> = (0..tries)
                .map(|_| (Role::Primary, outcome, named))
                .collect();
            if cell.topology == Topology::Fallback {
                let events = match cell.transport {
                    Transport::Stream => 10,
                    Transport::Json => 0,
                    Transport::WebSocket => 5,
                };
                if !ws {
                    attempts.push((Role::Fallback, "responded", None));
                }
                return Expect {
                    status,
                    end: End::Answer {
                        by: Role::Fallback,
                        events,
                    },
                    outcome: "completed",
                    error_class: None,
                    provider: Some(Role::Fallback),
                    usage: true,
                    attempts,
                };
            }
            let (status, end, outcome) = match cell.transport {
                Transport::Stream => (
                    200,
                    End::Failed {
                        events: 0,
                        last: "response.failed",
                        code: "rate_limit_exceeded",
                    },
                    "all_upstreams_failed",
                ),
                Transport::Json => (
                    502,
                    End::Error("all_upstreams_failed"),
                    "all_upstreams_failed",
                ),
                Transport::WebSocket => (426, End::Error("websocket_not_supported"), "rejected"),
            };
            Expect {
                status,
                end,
                outcome,
                error_class: Some(class),
                provider: None,
                usage: false,
                attempts,
            }
        }
        Rule::Served { events, usage } => {
            let (end, outcome, error_class, provider, attempts) = answered(Role::Primary, events);
            Expect {
                status,
                end,
                outcome,
                error_class,
                provider,
                usage,
                attempts,
            }
        }
        Rule::Cut {
            events,
            last,
            code,
            outcome,
        } => Expect {
            status,
            end: End::Failed { events, last, code },
            outcome,
            error_class: Some(outcome),
            provider: Some(Role::Primary),
            usage: false,
            attempts: if ws {
                Vec::new()
            } else {
                vec![(Role::Primary, "responded", None)]
            },
        },
        Rule::PassedOn => Expect {
            status,
            end: End::Opaque,
            outcome: "completed",
            error_class: None,
            provider: Some(Role::Primary),
            usage: false,
            attempts: vec![(Role::Primary, "responded", None)],
        },
    }
}

/// The provider id of `role` in `cell`.
fn provider_of(cell: &Cell, role: Role) -> String {
    match role {
        Role::Primary => format!("p{}", cell.id),
        Role::Fallback => format!("f{}", cell.id),
    }
}

/// Notes `what` in `problems` when `want` and `got` differ.
fn differ(problems: &mut Vec<String>, what: &str, want: String, got: String) {
    if want != got {
        problems.push(format!("{what}: want {want}, got {got}"));
    }
}

/// How `seen` and `row` differ from `expect`; empty when they agree.
fn check(cell: &Cell, expect: &Expect, seen: &Seen, row: Option<&Row>) -> Vec<String> {
    let mut problems = Vec::new();
    if seen.hung {
        return vec![format!("the client got no end within {CLIENT_LIMIT:?}")];
    }
    differ(
        &mut problems,
        "status",
        expect.status.to_string(),
        seen.status.to_string(),
    );
    let error_code = |v: &Value| {
        v.pointer("/response/error/code")
            .or_else(|| v.pointer("/error/code"))
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string()
    };
    match &expect.end {
        End::Answer { by, events } => {
            let text = format!("hi from {}", provider_of(cell, *by));
            if *events > 0 {
                differ(
                    &mut problems,
                    "events",
                    events.to_string(),
                    seen.events.len().to_string(),
                );
                differ(
                    &mut problems,
                    "final event",
                    "response.completed".into(),
                    seen.last["type"].as_str().unwrap_or("-").into(),
                );
                let answer = seen.last["response"]["output"][0]["content"][0]["text"]
                    .as_str()
                    .unwrap_or(&seen.text);
                if !answer.ends_with(&text) {
                    problems.push(format!("the answer is not {text:?}"));
                }
            } else {
                let answer = seen.last["output"][0]["content"][0]["text"].as_str();
                if !answer.is_some_and(|a| a.ends_with(&text)) {
                    problems.push(format!("the JSON answer is not {text:?}"));
                }
            }
        }
        End::Failed { events, last, code } => {
            differ(
                &mut problems,
                "events",
                (events + 1).to_string(),
                seen.events.len().to_string(),
            );
            differ(
                &mut problems,
                "final event",
                last.to_string(),
                seen.last["type"].as_str().unwrap_or("-").into(),
            );
            differ(
                &mut problems,
                "error code",
                code.to_string(),
                error_code(&seen.last),
            );
        }
        End::Error(code) => differ(
            &mut problems,
            "error code",
            code.to_string(),
            error_code(&seen.last),
        ),
        End::Opaque => {
            if !seen.last.is_null() {
                problems.push("the body was expected to be handed on, unreadable".into());
            }
        }
    }
    let Some(row) = row else {
        problems.push("no ledger row".into());
        return problems;
    };
    differ(
        &mut problems,
        "ledger outcome",
        expect.outcome.into(),
        row.outcome.clone(),
    );
    differ(
        &mut problems,
        "ledger error_class",
        format!("{:?}", expect.error_class),
        format!("{:?}", row.error_class.as_deref()),
    );
    differ(
        &mut problems,
        "ledger provider",
        format!("{:?}", expect.provider.map(|r| provider_of(cell, r))),
        format!("{:?}", row.provider),
    );
    // A whole answer's usage is read, whatever came before it or how it was coded.
    if matches!(expect.end, End::Answer { .. }) {
        differ(
            &mut problems,
            "ledger input_tokens",
            format!(
                "{:?}",
                expect.usage.then_some(support::mock_relay::USAGE.0 as i64)
            ),
            format!("{:?}", row.input_tokens),
        );
    }
    if row.provider.is_some() {
        differ(
            &mut problems,
            "ledger endpoint",
            "Some(\"default\")".into(),
            format!("{:?}", row.endpoint),
        );
    }
    let attempts: Vec<_> = expect
        .attempts
        .iter()
        .map(|(role, outcome, class)| {
            (
                provider_of(cell, *role),
                outcome.to_string(),
                class.map(str::to_string),
            )
        })
        .collect();
    differ(
        &mut problems,
        "ledger attempts",
        format!("{attempts:?}"),
        format!("{:?}", row.attempts),
    );
    problems
}

/// Every request a cell's relays received carried that relay's own key, and no other.
fn keys_stayed_home(cell: &Cell) -> Vec<String> {
    let mut problems = Vec::new();
    let relays = [
        (Role::Primary, cell.primary_relay.as_ref()),
        (Role::Fallback, cell.fallback.as_ref()),
    ];
    for (role, relay) in relays {
        let Some(relay) = relay else { continue };
        let own = format!("Bearer {}", key(&provider_of(cell, role)));
        for request in relay.received() {
            // WebSocket frames are recorded without headers; their handshake has them.
            if request.method == "WS" {
                continue;
            }
            let sent = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if sent.is_some_and(|s| s != own)
                || request.path_and_query.contains("/responses") && sent.is_none()
            {
                problems.push(format!(
                    "{}: {} {} carried {sent:?}",
                    cell.id, request.method, request.path_and_query
                ));
            }
        }
    }
    problems
}

/// One cell ready to run.
struct Cell {
    id: String,
    case: usize,
    rule: Rule,
    transport: Transport,
    topology: Topology,
    primary_relay: Option<MockRelay>,
    fallback: Option<MockRelay>,
}

fn key(provider: &str) -> String {
    format!("sk-fault-{provider}-9d2e7c41")
}

async fn send_http(base: &str, cell: &Cell) -> Seen {
    let streaming = cell.transport == Transport::Stream;
    let body = json!({"model": "gpt-5.1", "stream": streaming, "input": [{"type": "message",
        "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]});
    let mut request = support::client()
        .post(format!("{base}/v1/responses"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer codex-own-key")
        .header("session-id", &cell.id)
        .header("x-fault-cell", &cell.id)
        .body(body.to_string());
    if streaming {
        request = request.header("accept", "text/event-stream");
    }
    let exchange = async {
        let reply = match request.send().await {
            Ok(reply) => reply,
            Err(e) => return (0, format!("client error: {e:?}")),
        };
        let status = reply.status().as_u16();
        let bytes = reply.bytes().await.unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    };
    let Ok((status, text)) = tokio::time::timeout(CLIENT_LIMIT, exchange).await else {
        return Seen {
            hung: true,
            ..Seen::default()
        };
    };
    let mut seen = Seen {
        status,
        text,
        ..Seen::default()
    };
    if streaming && status == 200 {
        for block in seen.text.split("\n\n") {
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if let Ok(event) = serde_json::from_str::<Value>(&data) {
                seen.events
                    .push(event["type"].as_str().unwrap_or("?").to_string());
                seen.last = event;
            }
        }
    } else {
        seen.last = serde_json::from_str(&seen.text).unwrap_or(Value::Null);
    }
    seen
}

async fn send_ws(base: &str, cell: &Cell) -> Seen {
    let url = format!("{base}/v1/responses").replace("http://", "ws://");
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", "Bearer codex-own-key".parse().unwrap());
    headers.insert("session-id", cell.id.parse().unwrap());
    headers.insert("x-fault-cell", cell.id.parse().unwrap());
    headers.insert(
        "openai-beta",
        "responses_websockets=2026-02-06".parse().unwrap(),
    );
    headers.insert(
        "x-codex-turn-metadata",
        r#"{"model":"gpt-5.1"}"#.parse().unwrap(),
    );
    let exchange = async {
        let mut seen = Seen::default();
        let addr = base.trim_start_matches("http://").to_string();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut socket = match tokio_tungstenite::client_async(request, stream).await {
            Ok((socket, response)) => {
                seen.status = response.status().as_u16();
                socket
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                seen.status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                seen.text = String::from_utf8_lossy(&body).into_owned();
                seen.last = serde_json::from_str(&seen.text).unwrap_or(Value::Null);
                return seen;
            }
            Err(e) => panic!("{}: handshake: {e}", cell.id),
        };
        let create = json!({"type": "response.create", "model": "gpt-5.1", "stream": true,
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "hi"}]}]});
        socket
            .send(Message::text(create.to_string()))
            .await
            .unwrap();
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    let event: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    seen.events
                        .push(event["type"].as_str().unwrap_or("?").to_string());
                    let end = matches!(
                        event["type"].as_str(),
                        Some("response.completed" | "response.failed" | "error")
                    );
                    seen.text.push_str(text.as_str());
                    seen.last = event;
                    if end {
                        break;
                    }
                }
                Ok(Message::Close(frame)) => {
                    seen.events.push(format!("(closed: {frame:?})"));
                    break;
                }
                Err(e) => {
                    seen.events.push(format!("(broken: {e})"));
                    break;
                }
                Ok(_) => {}
            }
        }
        seen
    };
    tokio::time::timeout(CLIENT_LIMIT, exchange)
        .await
        .unwrap_or(Seen {
            hung: true,
            ..Seen::default()
        })
}

/// The cell's ledger row, waiting (bounded) for the ledger thread to write it.
async fn ledger_row(db: &std::path::Path, id: &str) -> Option<Row> {
    for _ in 0..100 {
        if let Some(row) = read_row(db, id) {
            return Some(row);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn read_row(db: &std::path::Path, id: &str) -> Option<Row> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.busy_timeout(Duration::from_secs(2)).ok()?;
    conn.query_row(
        "SELECT outcome, error_class, provider, endpoint, attempts_json, input_tokens FROM requests \
         WHERE session_id = ?1 ORDER BY id",
        [id],
        |r| {
            let attempts: String = r.get(4)?;
            let attempts: Vec<Value> = serde_json::from_str(&attempts).unwrap();
            Ok(Row {
                outcome: r.get(0)?,
                error_class: r.get(1)?,
                provider: r.get(2)?,
                endpoint: r.get(3)?,
                input_tokens: r.get(5)?,
                attempts: attempts
                    .iter()
                    .map(|a| {
                        (
                            a["provider"].as_str().unwrap_or_default().to_string(),
                            a["outcome"].as_str().unwrap_or_default().to_string(),
                            a["class"].as_str().map(str::to_string),
                        )
                    })
                    .collect(),
            })
        },
    )
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_on_every_transport_and_topology() {
    let cases = cases();
    let elsewhere = MockRelay::start("elsewhere").await;
    elsewhere.speak_websocket();
    let outbound = TestOutbound::http(None).await;
    let mut config = String::from("version = 5\n");
    let mut cells = Vec::new();
    let mut reserved = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        for transport in [Transport::Stream, Transport::Json, Transport::WebSocket] {
            let Some((primary, rule)) = (case.cell)(transport) else {
                continue;
            };
            for topology in [Topology::Alone, Topology::Fallback] {
                let id = format!("c{}", cells.len());
                let host = |relay: &MockRelay| {
                    if case.via_proxy {
                        format!("http://relay-{id}.test:{}/v1", relay.addr.port())
                    } else {
                        relay.base_url()
                    }
                };
                let (primary_relay, primary_url) = match &primary {
                    Primary::Dead => {
                        let port = ClosedPort::new();
                        let url = format!("http://127.0.0.1:{port}/v1");
                        reserved.push(port);
                        (None, url)
                    }
                    Primary::Http(fault) => {
                        let relay = MockRelay::start(&format!("p{id}")).await;
                        let fault = match fault.clone() {
                            Fault::Redirect { status, location } => {
                                let other = if case.via_proxy {
                                    format!("http://elsewhere.test:{}", elsewhere.addr.port())
                                } else {
                                    format!("http://{}", elsewhere.addr)
                                };
                                Fault::Redirect {
                                    status,
                                    location: location.replace(ELSEWHERE, &other),
                                }
                            }
                            other => other,
                        };
                        relay.always(Some(fault));
                        if transport == Transport::WebSocket {
                            relay.speak_websocket();
                        }
                        let url = host(&relay);
                        (Some(relay), url)
                    }
                    Primary::Ws(behaviour) => {
                        let relay = MockRelay::start(&format!("p{id}")).await;
                        relay.speak_websocket_as(*behaviour);
                        let url = host(&relay);
                        (Some(relay), url)
                    }
                };
                let via = if case.via_proxy {
                    format!("outbound_proxy = \"http://{}\"\n", outbound.addr)
                } else {
                    String::new()
                };
                config.push_str(&format!(
                    "[codex.providers.p{id}]\nbase_url = \"{primary_url}\"\nauth_token = \"{}\"\n{via}",
                    key(&format!("p{id}"))
                ));
                let mut children = vec![format!("\"p{id}\"")];
                let fallback = if topology == Topology::Fallback {
                    let relay = MockRelay::start(&format!("f{id}")).await;
                    relay.speak_websocket();
                    config.push_str(&format!(
                        "[codex.providers.f{id}]\nbase_url = \"{}\"\nauth_token = \"{}\"\n{via}",
                        host(&relay),
                        key(&format!("f{id}"))
                    ));
                    children.push(format!("\"f{id}\""));
                    Some(relay)
                } else {
                    None
                };
                config.push_str(&format!(
                    "[codex.routing.routes.{id}]\nchildren = [{}]\n",
                    children.join(", ")
                ));
                cells.push(Cell {
                    id,
                    case: index,
                    rule,
                    transport,
                    topology,
                    primary_relay,
                    fallback,
                });
            }
        }
    }
    // `m<n>`: cell n's route when its header says so, else the next test.
    for (n, cell) in cells.iter().enumerate() {
        let next = match cells.get(n + 1) {
            Some(_) => format!("m{}", n + 1),
            None => cell.id.clone(),
        };
        config.push_str(&format!(
            "[codex.routing.routes.m{n}]\nstrategy = \"conditional\"\n\
             when = {{ headers = {{ \"x-fault-cell\" = \"{}\" }} }}\nthen = \"{}\"\ndefault = \"{next}\"\n",
            cell.id, cell.id
        ));
    }
    config.push_str("[codex.routing]\nentry = \"m0\"\n");
    config.push_str(TIMEOUTS);

    let homes = Homes::new();
    std::fs::write(homes.helper_config(), &config).unwrap();
    let served = serve(homes.command(&["serve", "--no-switch"])).await;
    let base = served.url.clone();
    let db = homes.helper.path().join("ledger.sqlite3");

    let results: Vec<(usize, Seen, Option<Row>)> =
        futures_util::stream::iter(cells.iter().enumerate())
            .map(|(n, cell)| {
                let base = base.clone();
                let db = db.clone();
                async move {
                    let seen = match cell.transport {
                        Transport::WebSocket => send_ws(&base, cell).await,
                        _ => send_http(&base, cell).await,
                    };
                    let row = ledger_row(&db, &cell.id).await;
                    (n, seen, row)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let mut problems = Vec::new();
    for (n, seen, row) in &results {
        let cell = &cells[*n];
        let expect = expected(cell);
        let found = check(cell, &expect, seen, row.as_ref());
        if !found.is_empty() {
            problems.push(format!(
                "{} {} ({:?}, {:?}): {}\n    client saw: status {} events {:?} last {}\n    ledger: {:?}",
                cell.id,
                cases[cell.case].name,
                cell.transport,
                cell.topology,
                found.join("; "),
                seen.status,
                seen.events,
                seen.last.to_string().chars().take(400).collect::<String>(),
                row
            ));
        }
        problems.extend(keys_stayed_home(cell));
    }
    // The other host never heard from anyone: not the proxy, not a client sent on by it.
    if elsewhere.hits() != 0 {
        let paths: Vec<String> = elsewhere
            .received()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path_and_query))
            .collect();
        problems.push(format!("the other host received {paths:?}"));
    }
    if let Some(target) = outbound
        .targets()
        .iter()
        .find(|t| t.starts_with("elsewhere"))
    {
        problems.push(format!("the outbound proxy was asked for {target}"));
    }
    assert!(
        problems.is_empty(),
        "{} of {} cells differ:\n{}",
        problems.len(),
        cells.len(),
        problems.join("\n")
    );
    served.stop().await;
}
