//! Codex-like traffic at a steady rate: SSE streams, JSON, streams the client drops after the
//! first event, and requests for a model the relays refuse. Sessions change every
//! [`REQUESTS_PER_SESSION`] requests, as new Codex threads would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::relays::REJECTED_MODEL;

/// Requests in flight at most; past it a tick is skipped (and counted) rather than queued.
const IN_FLIGHT: usize = 512;
/// A request (all of its body) takes at most this long, or counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const REQUESTS_PER_SESSION: u64 = 100;

/// What the traffic has done so far.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    /// Completed with a 2xx and a whole body.
    pub ok: AtomicU64,
    /// Dropped by the client after the first event, on purpose.
    pub aborted: AtomicU64,
    /// The 4xx asked for (the refused model).
    pub refused: AtomicU64,
    /// Anything else: a 5xx, a transport error, a timeout, a wrong status.
    pub errors: AtomicU64,
    /// Ticks skipped because [`IN_FLIGHT`] requests were still running.
    pub skipped: AtomicU64,
}

/// The kinds of request, in the shares [`kind_of`] hands out.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Stream,
    Json,
    AbortedStream,
    Refused,
}

/// Of 20 requests: 10 streams, 6 JSON, 3 aborted streams, 1 refused.
fn kind_of(n: u64) -> Kind {
    match n % 20 {
        0..=9 => Kind::Stream,
        10..=15 => Kind::Json,
        16..=18 => Kind::AbortedStream,
        _ => Kind::Refused,
    }
}

/// Sends `rate` requests a second to `url` until `stop` is set.
pub async fn run(
    url: String,
    rate: u32,
    counters: Arc<Counters>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(70);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        n += 1;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        let kind = kind_of(n);
        let request = request(&url, kind, n / REQUESTS_PER_SESSION, &filler);
        let (client, counters) = (client.clone(), counters.clone());
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, send(&client, request, kind)).await;
            let counter = match outcome {
                Ok(Ok(counted)) => counted(&counters),
                Ok(Err(())) | Err(_) => &counters.errors,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

type Counted = fn(&Counters) -> &AtomicU64;

/// Sends one request and reads (or drops) its reply; says which counter it goes to.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
    kind: Kind,
) -> Result<Counted, ()> {
    let mut response = client.request(request).await.map_err(|_| ())?;
    let status = response.status().as_u16();
    if kind == Kind::Refused {
        let _ = response.into_body().collect().await;
        return if status == 400 {
            Ok(|c| &c.refused)
        } else {
            Err(())
        };
    }
    if status != 200 {
        return Err(());
    }
    if kind == Kind::AbortedStream {
        // The first event, then the client goes away mid-stream (the connection closes).
        response
            .body_mut()
            .frame()
            .await
            .ok_or(())?
            .map_err(|_| ())?;
        return Ok(|c| &c.aborted);
    }
    response.into_body().collect().await.map_err(|_| ())?;
    Ok(|c| &c.ok)
}

fn request(url: &str, kind: Kind, session: u64, filler: &str) -> Request<Full<Bytes>> {
    let stream = kind != Kind::Json;
    let model = if kind == Kind::Refused {
        REJECTED_MODEL
    } else {
        "gpt-5.1"
    };
    let session = format!("019a0000-0000-7000-8000-{session:012x}");
    let body = serde_json::json!({
        "model": model,
        "stream": stream,
        "input": [
            {"type":"message","role":"developer","content":[{"type":"input_text","text":filler}]},
            {"type":"message","role":"user","content":[{"type":"input_text","text":"say hi"}]}
        ],
        "tools": [], "tool_choice": "auto", "parallel_tool_calls": true,
        "reasoning": {"effort":"medium","summary":"auto"}, "store": false,
        "prompt_cache_key": session,
    });
    Request::post(url)
        .header("content-type", "application/json")
        .header(
            "accept",
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        )
        .header("session-id", &session)
        .header("authorization", "Bearer soak")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
