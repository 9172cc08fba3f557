//! The mock relays of the soak: a steady one and a flaky one that fails a share of requests
//! (so the proxy fails over), both answering like a Responses relay: an SSE stream of spaced
//! events ending in `response.completed` with usage, or a JSON body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Events in a streamed reply, and the pause between two: a stream lasts about 200 ms, so a
/// client can abort it midway.
pub const EVENTS: usize = 10;
const EVENT_GAP: Duration = Duration::from_millis(20);
/// The model both relays refuse with a 400 (a client error: returned as is, no failover).
pub const REJECTED_MODEL: &str = "soak-rejected";
/// Request bodies read at most.
const BODY_CAP: usize = 1 << 20;

/// A relay that answers every `fail_every`-th request with a 502 (0: never).
pub async fn start(fail_every: u64) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let seen = seen.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
                answer(request, fail_every != 0 && n % fail_every == 0)
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

async fn answer(request: Request<Incoming>, fail: bool) -> Result<Response<Body>, Infallible> {
    let sse = request
        .headers()
        .get("accept")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = Limited::new(request.into_body(), BODY_CAP)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let rejected = memchr::memmem::find(&body, REJECTED_MODEL.as_bytes()).is_some();
    let response = if rejected {
        json_reply(
            400,
            r#"{"error":{"message":"unknown model","type":"invalid_request_error"}}"#,
        )
    } else if fail {
        json_reply(502, r#"{"error":{"message":"upstream unavailable"}}"#)
    } else if sse {
        let frames = futures_util::stream::unfold(0usize, |i| async move {
            if i == EVENTS {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(EVENT_GAP).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(event(i))), i + 1))
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(StreamBody::new(frames).boxed_unsync())
            .unwrap()
    } else {
        json_reply(
            200,
            r#"{"id":"resp_soak","object":"response","status":"completed","output":[],"usage":{"input_tokens":4000,"input_tokens_details":{"cached_tokens":3000},"output_tokens":40,"total_tokens":4040}}"#,
        )
    };
    Ok(response)
}

fn json_reply(status: u16, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync())
        .unwrap()
}

fn event(i: usize) -> Bytes {
    let (kind, data) = if i == EVENTS - 1 {
        (
            "response.completed",
            r#"{"type":"response.completed","response":{"id":"resp_soak","usage":{"input_tokens":4000,"input_tokens_details":{"cached_tokens":3000},"output_tokens":40,"total_tokens":4040}}}"#.to_string(),
        )
    } else {
        (
            "response.output_text.delta",
            format!(
                r#"{{"type":"response.output_text.delta","sequence_number":{i},"delta":"word {i} "}}"#
            ),
        )
    };
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}
