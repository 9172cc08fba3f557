//! What one client may hold of the proxy: a cap on the client connections open at once
//! ([`ConnectionCap`], with a clear answer past it) and the caps on a request head that hyper
//! enforces ([`configure_http1`]: size and count, answered 431). The time limits on a
//! connection (head read, idle keep-alive) are [`super::idle`]'s.
//!
//! Why a cap on connections: every connection costs a file descriptor and a task, and a
//! request on it may open a relay connection (another descriptor). Past the cap the proxy
//! would run out of descriptors and fail everyone, so a new connection is told plainly to come
//! back (503 `too_many_connections`, `Retry-After`) and closed. The cap bounds what a crowd
//! can take; it cannot tell a crowd from real clients. Against a crowd of slow clients the
//! head-read timeout is what frees the slots, and on a network a client key keeps strangers
//! out ([`super::client_key`]).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::model::ProxySettings;

/// hyper's own default header count: it keeps header slots on the stack up to this.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// The smallest read buffer hyper takes, so the smallest head cap.
const MIN_HEADER_BYTES: usize = 8192;

/// Over-cap connections being answered at once; past this they are closed unanswered (a
/// flood must not grow the refusals themselves without bound).
const MAX_REFUSALS: usize = 64;

/// How long a refused client gets to read the answer before its connection is dropped.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// The shortest head or idle limit a connection may have (0 turns one off).
const MIN_CONNECTION_LIMIT_MS: u64 = 100;

/// The most of a refused client's request read (and thrown away) while it reads the answer.
const REFUSAL_DRAIN_BYTES: usize = 64 << 10;

/// Checks the `[proxy]` limits a user set: values that would break every request or panic.
pub fn validate(settings: &ProxySettings) -> anyhow::Result<()> {
    if settings.max_header_bytes < MIN_HEADER_BYTES {
        anyhow::bail!(
            "[proxy] max_header_bytes = {} is too small: use at least {MIN_HEADER_BYTES} (the least the HTTP server takes; Codex's own request heads need a few kilobytes)",
            settings.max_header_bytes
        );
    }
    if settings.max_headers < 16 {
        anyhow::bail!(
            "[proxy] max_headers = {} is too small: Codex sends about a dozen headers; use at least 16",
            settings.max_headers
        );
    }
    let largest_body = settings
        .max_request_body_bytes
        .max(settings.max_decoded_body_bytes);
    if settings.max_request_bytes_in_flight != 0
        && settings.max_request_bytes_in_flight < largest_body
    {
        anyhow::bail!(
            "[proxy] max_request_bytes_in_flight = {} is smaller than one body may be ({largest_body} bytes, max_request_body_bytes or max_decoded_body_bytes): raise it, or use 0 for no limit",
            settings.max_request_bytes_in_flight
        );
    }
    if settings.max_client_connections == 0 {
        anyhow::bail!("[proxy] max_client_connections must be at least 1");
    }
    for (name, ms) in [
        ("header_read_timeout_ms", settings.header_read_timeout_ms),
        (
            "keep_alive_idle_timeout_ms",
            settings.keep_alive_idle_timeout_ms,
        ),
        ("write_stall_timeout_ms", settings.write_stall_timeout_ms),
    ] {
        // Every connection is looked at once per shortest limit (see `super::idle`), and a
        // write stall of a few ms would cut off any peer briefly busy.
        if ms != 0 && ms < MIN_CONNECTION_LIMIT_MS {
            anyhow::bail!(
                "[proxy] {name} = {ms} is too short: use 0 (no limit) or at least {MIN_CONNECTION_LIMIT_MS} ms"
            );
        }
    }
    Ok(())
}

/// Sets the request-head caps on a connection builder (HTTP/1.1, which is all the proxy
/// serves). hyper answers a head past either with 431 and closes. hyper's own head-read timer
/// is off: [`super::idle`] times heads and idle keep-alive apart.
pub fn configure_http1(builder: &mut auto::Builder<TokioExecutor>, settings: &ProxySettings) {
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        // The read buffer: a head that does not fit is answered 431 (bodies are read through
        // it in pieces, so this caps heads only).
        .max_buf_size(settings.max_header_bytes.max(MIN_HEADER_BYTES));
    // A count other than hyper's default moves the header slots to the heap; keep the
    // default's fast path when it is the one asked for.
    if settings.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        http1.max_headers(settings.max_headers.max(1));
    }
}

/// The client connections open at once, shared by the accept loop and every serving thread.
#[derive(Clone)]
pub struct ConnectionCap {
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    max: usize,
}

/// One open client connection's place under the cap; given back when dropped.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            open: Arc::new(Semaphore::new(max)),
            refusing: Arc::new(Semaphore::new(MAX_REFUSALS)),
            max,
        }
    }

    /// A place for a new connection, or `None` when the cap is reached; the connection is
    /// then answered 503 and closed in the background (never holding up the accept loop).
    pub fn admit(&self, stream: TcpStream) -> Option<(TcpStream, Slot)> {
        if let Ok(permit) = self.open.clone().try_acquire_owned() {
            return Some((stream, Slot(permit)));
        }
        tracing::warn!(
            "{} client connections are open ([proxy] max_client_connections): a new one is refused with 503",
            self.max
        );
        // Past the refusals' own bound the connection is just closed.
        if let Ok(permit) = self.refusing.clone().try_acquire_owned() {
            let max = self.max;
            tokio::spawn(async move {
                refuse(stream, max).await;
                drop(permit);
            });
        }
        None
    }
}

/// The answer past the cap: written straight onto the socket, before the client's request is
/// read (there is no slot to read it in).
pub fn too_many_connections(max: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "error": {
            "type": "too_many_connections",
            "code": "too_many_connections",
            "message": format!(
                "codex-helper already has {max} client connections open ([proxy] max_client_connections); retry shortly"
            ),
        }
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers an over-cap connection and closes it politely: the answer, then our side's end,
/// then the client's request read and dropped until it closes (bounded in time and bytes).
/// Closing with its request unread would reset the connection, and the client could lose the
/// answer.
async fn refuse(mut stream: TcpStream, max: usize) {
    let answer = too_many_connections(max);
    let linger = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_json_503() {
        let text = String::from_utf8(too_many_connections(7)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("retry-after: 1"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
        assert!(json["error"]["message"].as_str().unwrap().contains("7"));
    }

    #[test]
    fn limits_that_would_break_requests_are_refused() {
        let ok = ProxySettings::default();
        assert!(validate(&ok).is_ok());
        for broken in [
            ProxySettings {
                max_header_bytes: 100,
                ..ProxySettings::default()
            },
            ProxySettings {
                max_headers: 2,
                ..ProxySettings::default()
            },
            ProxySettings {
                max_client_connections: 0,
                ..ProxySettings::default()
            },
        ] {
            let e = validate(&broken).unwrap_err().to_string();
            assert!(e.contains("[proxy] max_"), "{e}");
        }
        for (stall, refused) in [(99, true), (0, false), (100, false)] {
            let settings = ProxySettings {
                write_stall_timeout_ms: stall,
                ..ProxySettings::default()
            };
            let e = validate(&settings).err().map(|e| e.to_string());
            let expected = format!("[proxy] write_stall_timeout_ms = {stall} is too short");
            assert_eq!(e.is_some_and(|e| e.contains(&expected)), refused, "{stall}");
        }
        for (head, idle, refused) in [
            (
                10,
                120_000,
                Some("header_read_timeout_ms = 10 is too short"),
            ),
            (
                30_000,
                99,
                Some("keep_alive_idle_timeout_ms = 99 is too short"),
            ),
            (0, 0, None),
            (100, 100, None),
        ] {
            let settings = ProxySettings {
                header_read_timeout_ms: head,
                keep_alive_idle_timeout_ms: idle,
                ..ProxySettings::default()
            };
            match (validate(&settings), refused) {
                (Ok(()), None) => {}
                (Err(e), Some(why)) => assert!(e.to_string().contains(why), "{e}"),
                (result, _) => panic!("{head}/{idle}: {result:?}"),
            }
        }
    }

    #[test]
    fn a_body_budget_smaller_than_one_body_is_refused() {
        let with = |in_flight, wire, decoded| ProxySettings {
            max_request_bytes_in_flight: in_flight,
            max_request_body_bytes: wire,
            max_decoded_body_bytes: decoded,
            ..ProxySettings::default()
        };
        for (settings, refused) in [
            (with(64, 32, 64), false),
            (with(0, 32, 64), false),
            (with(63, 32, 64), true),
            (with(63, 64, 32), true),
        ] {
            let e = validate(&settings).err().map(|e| e.to_string());
            let expected = format!(
                "max_request_bytes_in_flight = {} is smaller than one body may be (64 bytes",
                settings.max_request_bytes_in_flight
            );
            assert_eq!(e.is_some_and(|e| e.contains(&expected)), refused);
        }
    }

    #[tokio::test]
    async fn the_cap_admits_up_to_its_size_and_gives_places_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cap = ConnectionCap::new(1);
        let _client_a = TcpStream::connect(addr).await.unwrap();
        let (a, _) = listener.accept().await.unwrap();
        let kept = cap.admit(a).expect("the first connection fits");
        let mut client_b = TcpStream::connect(addr).await.unwrap();
        let (b, _) = listener.accept().await.unwrap();
        assert!(cap.admit(b).is_none());
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client_b.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 503"));
        drop(kept);
        let _client_c = TcpStream::connect(addr).await.unwrap();
        let (c, _) = listener.accept().await.unwrap();
        assert!(cap.admit(c).is_some());
    }
}
