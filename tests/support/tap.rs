//! A TCP tap between a client and a server on loopback: it forwards both ways and keeps
//! every byte of every connection, so a test can look at what really went over the wire
//! (handshake heads, WebSocket frame bits) between two programs it does not control.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The bytes of one tapped connection, each way.
#[derive(Debug, Clone, Default)]
pub struct Wire {
    pub from_client: Vec<u8>,
    pub from_server: Vec<u8>,
}

pub struct Tap {
    pub addr: SocketAddr,
    wires: Arc<Mutex<Vec<Arc<Mutex<Wire>>>>>,
    task: JoinHandle<()>,
}

/// The most a tap keeps of one direction of one connection.
const KEEP: usize = 4 << 20;

impl Tap {
    pub async fn start(server: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let wires: Arc<Mutex<Vec<Arc<Mutex<Wire>>>>> = Arc::default();
        let all = wires.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(server).await else {
                    continue;
                };
                let wire = Arc::new(Mutex::new(Wire::default()));
                all.lock().unwrap().push(wire.clone());
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = upstream.into_split();
                let up = wire.clone();
                tokio::spawn(copy(client_read, server_write, move |b| {
                    keep(&mut up.lock().unwrap().from_client, b)
                }));
                tokio::spawn(copy(server_read, client_write, move |b| {
                    keep(&mut wire.lock().unwrap().from_server, b)
                }));
            }
        });
        Tap { addr, wires, task }
    }

    pub fn wires(&self) -> Vec<Wire> {
        self.wires
            .lock()
            .unwrap()
            .iter()
            .map(|w| w.lock().unwrap().clone())
            .collect()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn keep(into: &mut Vec<u8>, bytes: &[u8]) {
    let room = KEEP.saturating_sub(into.len());
    into.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: impl Fn(&[u8]),
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Splits what one side sent on a WebSocket connection into its HTTP head and the
/// `(rsv1, opcode)` of each whole frame after it.
pub fn websocket_frames(bytes: &[u8]) -> (String, Vec<(bool, u8)>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut frames = Vec::new();
    let mut rest = &bytes[end..];
    while rest.len() >= 2 {
        let (first, second) = (rest[0], rest[1]);
        let (len, mut at) = match second & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if second & 0x80 != 0 {
            at += 4;
        }
        if rest.len() < at + len {
            break;
        }
        frames.push((first & 0x40 != 0, first & 0x0f));
        rest = &rest[at + len..];
    }
    (head, frames)
}
