//! A mock relay that speaks the Responses WebSocket transport on loopback: it answers each
//! `response.create` frame with `response.created`, a text delta and `response.completed`
//! (with usage), as the real API sends them one JSON object per text frame. It can also drop
//! the connection in the middle of a response. Handshakes and frames are recorded.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// How the relay answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A whole response per `response.create`.
    Answer,
    /// `response.created`, then the TCP connection is dropped without a close frame.
    DropMidResponse,
    /// `response.created`, then nothing more (the connection stays open).
    StallMidResponse,
    /// An `error` frame: `previous_response_not_found`, as the API sends when it forgot.
    PreviousNotFound,
    /// Two `error` frames quoting the key `sk-<name>-relay-key` (the one the tests configure
    /// for a relay of that name), as relays that echo the request's headers do: the first
    /// ends the response, the second comes outside any.
    EchoesKey,
    /// Nothing at all after `response.create` (not even `response.created`).
    StallBeforeFirst,
    /// `response.created`, then `response.failed` (a failure inside an accepted response).
    FailedInResponse,
    /// A text frame that is not JSON, then nothing.
    Malformed,
    /// `response.created`, then one text frame of this many bytes.
    HugeMessage { bytes: usize },
    /// A ping frame every 50 ms, forever, and never a message.
    PingForever,
}

#[derive(Default)]
struct Seen {
    handshakes: Vec<HeaderMap>,
    frames: Vec<Value>,
}

pub struct WsRelay {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl WsRelay {
    pub async fn start(name: &str, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let name = name.to_string();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = shared.clone();
                let name = name.clone();
                tokio::spawn(async move { serve(stream, seen, &name, behaviour).await });
            }
        });
        Self { addr, seen, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn handshakes(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().handshakes.clone()
    }

    pub fn frames(&self) -> Vec<Value> {
        self.seen.lock().unwrap().frames.clone()
    }
}

impl Drop for WsRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    seen: Arc<Mutex<Seen>>,
    name: &str,
    behaviour: Behaviour,
) {
    let record = seen.clone();
    // The `Err` is tungstenite's error response; this callback never refuses.
    #[allow(clippy::result_large_err)]
    let callback = move |request: &Request, response: Response| {
        record
            .lock()
            .unwrap()
            .handshakes
            .push(request.headers().clone());
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    respond(&mut socket, name, behaviour, |frame| {
        seen.lock().unwrap().frames.push(frame.clone())
    })
    .await;
}

/// Answers a client's frames on `socket` as a relay does, handing each frame to `seen`: a
/// `response.create` gets `response.created`, a text delta and `response.completed` with
/// usage; a prewarm (`generate: false`) gets `response.created` and an empty
/// `response.completed`.
pub async fn respond<S>(
    socket: &mut tokio_tungstenite::WebSocketStream<S>,
    name: &str,
    behaviour: Behaviour,
    seen: impl Fn(&Value),
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut n = 0;
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        seen(&frame);
        if frame["type"] != "response.create" {
            continue;
        }
        n += 1;
        if behaviour == Behaviour::EchoesKey {
            let error = json!({"type": "error", "status": 401, "error": {"type": "invalid_request_error",
                "code": "invalid_api_key", "message": format!("bad key: Bearer sk-{name}-relay-key")}});
            let _ = socket.send(Message::text(error.to_string())).await;
            let _ = socket.send(Message::text(error.to_string())).await;
            continue;
        }
        if behaviour == Behaviour::PreviousNotFound {
            let error = json!({"type": "error", "status": 400, "error": {"type": "invalid_request_error",
                "code": "previous_response_not_found", "message": "Previous response not found.",
                "param": "previous_response_id"}});
            let _ = socket.send(Message::text(error.to_string())).await;
            continue;
        }
        match behaviour {
            Behaviour::StallBeforeFirst => std::future::pending::<()>().await,
            Behaviour::Malformed => {
                let _ = socket.send(Message::text("this is not JSON {")).await;
                std::future::pending::<()>().await
            }
            Behaviour::PingForever => loop {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            },
            _ => {}
        }
        let id = format!("resp_{name}_{n}");
        let model = frame["model"].as_str().unwrap_or("gpt-5.1").to_string();
        let created = json!({"type": "response.created", "response": {"id": id, "model": model, "status": "in_progress"}});
        if socket
            .send(Message::text(created.to_string()))
            .await
            .is_err()
        {
            return;
        }
        match behaviour {
            Behaviour::DropMidResponse => return, // TCP closes without a close frame.
            Behaviour::StallMidResponse => std::future::pending::<()>().await,
            Behaviour::FailedInResponse => {
                let failed = json!({"type": "response.failed", "response": {"id": id, "status": "failed",
                    "error": {"code": "server_error", "message": "mock relay: failed in response"}}});
                let _ = socket.send(Message::text(failed.to_string())).await;
                continue;
            }
            Behaviour::HugeMessage { bytes } => {
                let delta = format!(
                    r#"{{"type":"response.output_text.delta","item_id":"msg_huge","delta":"{}"}}"#,
                    "h".repeat(bytes)
                );
                let _ = socket.send(Message::text(delta)).await;
                std::future::pending::<()>().await
            }
            _ => {}
        }
        let events = if frame["generate"] == false {
            vec![
                json!({"type": "response.completed", "response": {"id": id, "model": model, "status": "completed", "output": []}}),
            ]
        } else {
            let text = format!("hi from {name}");
            vec![
                json!({"type": "response.output_item.added", "output_index": 0,
                    "item": {"type": "message", "id": format!("msg_{id}"), "role": "assistant", "status": "in_progress", "content": []}}),
                json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                    "item_id": format!("msg_{id}"), "delta": text}),
                json!({"type": "response.output_item.done", "output_index": 0,
                    "item": {"type": "message", "id": format!("msg_{id}"), "role": "assistant", "status": "completed",
                             "content": [{"type": "output_text", "text": text, "annotations": []}]}}),
                json!({"type": "response.completed", "response": {"id": id, "model": model, "status": "completed",
                    "output": [{"type": "message", "id": format!("msg_{id}"), "role": "assistant", "status": "completed",
                                "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                    "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1000},
                              "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2},
                              "total_tokens": 1205}}}),
            ]
        };
        for event in events {
            if socket.send(Message::text(event.to_string())).await.is_err() {
                return;
            }
        }
    }
}
