//! What the Responses WebSocket bridge adds: the real `codex-helper` binary between a client
//! and a mock relay that speaks the transport, against the direct path, interleaved.
//!
//! - per message: a small frame the relay echoes back, round trip;
//! - per turn: a `response.create` answered by `EVENTS` events and `response.completed`, from
//!   sending the frame to the last event.
//!
//! `cargo bench --bench websocket`; `CODEX_HELPER_BENCH_BIN` measures another build.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use common::ProxyProcess;

const ECHOES: usize = 2000;
const TURNS: usize = 500;
/// Events in one turn's answer besides `response.created` and `response.completed`.
const EVENTS: usize = 20;
const ROUNDS: usize = 4;

type Socket = WebSocketStream<TcpStream>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let relay = start_relay().await;
    let binary = std::env::var_os("CODEX_HELPER_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_codex-helper").into());
    let config = format!(
        "version = 5\n[codex.providers.bench]\nbase_url = \"http://{relay}/v1\"\nauth_token = \"bench-key-0123456789\"\n"
    );
    let proxy = ProxyProcess::start(&config, binary);
    let targets = [("direct", relay), ("codex-helper", proxy.addr)];

    let mut echo: [Vec<Duration>; 2] = Default::default();
    let mut turn: [Vec<Duration>; 2] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (_, addr)) in targets.iter().enumerate() {
            let mut socket = connect(*addr).await;
            for _ in 0..ECHOES / ROUNDS {
                echo[i].push(echo_once(&mut socket).await);
            }
            for _ in 0..TURNS / ROUNDS {
                turn[i].push(turn_once(&mut socket).await);
            }
            let _ = socket.close(None).await;
        }
    }

    println!(
        "codex-helper Responses WebSocket overhead: one connection each, {ECHOES} echoed frames, \
         {TURNS} turns of {EVENTS} events, loopback\n"
    );
    println!("{:<34}{:>12}{:>16}", "", "direct", "codex-helper");
    row("message round trip p50", &mut echo, 0.5);
    row("message round trip p99", &mut echo, 0.99);
    row("turn p50", &mut turn, 0.5);
    row("turn p99", &mut turn, 0.99);
}

fn row(label: &str, samples: &mut [Vec<Duration>; 2], q: f64) {
    let direct = quantile(&mut samples[0], q);
    let proxied = quantile(&mut samples[1], q);
    let added = proxied.as_secs_f64() - direct.as_secs_f64();
    println!(
        "{label:<34}{:>9.3} ms{:>+13.3} ms",
        direct.as_secs_f64() * 1e3,
        added * 1e3
    );
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

async fn connect(addr: SocketAddr) -> Socket {
    let mut request = format!("ws://{addr}/v1/responses")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("session-id", "bench".parse().unwrap());
    headers.insert(
        "openai-beta",
        "responses_websockets=2026-02-06".parse().unwrap(),
    );
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket handshake")
        .0
}

async fn echo_once(socket: &mut Socket) -> Duration {
    let started = Instant::now();
    socket
        .send(Message::text(r#"{"type":"bench.echo"}"#))
        .await
        .unwrap();
    loop {
        if let Some(Ok(Message::Text(_))) = socket.next().await {
            return started.elapsed();
        }
    }
}

async fn turn_once(socket: &mut Socket) -> Duration {
    let create = json!({"type": "response.create", "model": "gpt-5.1", "stream": true,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]});
    let started = Instant::now();
    socket
        .send(Message::text(create.to_string()))
        .await
        .unwrap();
    loop {
        if let Some(Ok(Message::Text(text))) = socket.next().await {
            if text.as_str().contains("\"response.completed\"") {
                return started.elapsed();
            }
        }
    }
}

/// A relay that echoes `bench.echo` frames and answers `response.create` with a stream.
async fn start_relay() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    if frame["type"] != "response.create" {
                        let _ = socket.send(Message::Text(text)).await;
                        continue;
                    }
                    let mut events = vec![
                        json!({"type": "response.created", "response": {"id": "r", "status": "in_progress"}}),
                    ];
                    events.extend((0..EVENTS).map(|i| {
                        json!({"type": "response.output_text.delta", "delta": format!("word{i} ")})
                    }));
                    events.push(json!({"type": "response.completed", "response": {"id": "r", "status": "completed",
                        "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}}}));
                    for event in events {
                        if socket.send(Message::text(event.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}
