//! A WebSocket peer written by hand for the permessage-deflate tests: it reads and writes raw
//! frames, so a test sees RSV1 and the compressed bytes, and it compresses with flate2 as RFC
//! 7692 says, independently of the proxy's own framing code.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// A frame as it was on the wire (its payload unmasked).
#[derive(Debug)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// Reads an HTTP head up to its blank line.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("a whole HTTP head"));
        assert!(head.len() < 64 * 1024, "an HTTP head that does not end");
    }
    String::from_utf8(head).unwrap()
}

/// The value of `name` in an HTTP head, case-insensitively.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

pub async fn read_frame(stream: &mut TcpStream) -> RawFrame {
    let first = stream.read_u8().await.unwrap();
    let second = stream.read_u8().await.unwrap();
    let len = match second & 0x7f {
        126 => u64::from(stream.read_u16().await.unwrap()),
        127 => stream.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    let mut key = [0; 4];
    let masked = second & 0x80 != 0;
    if masked {
        stream.read_exact(&mut key).await.unwrap();
    }
    let mut payload = vec![0; len as usize];
    stream.read_exact(&mut payload).await.unwrap();
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    RawFrame {
        fin: first & 0x80 != 0,
        rsv1: first & 0x40 != 0,
        opcode: first & 0x0f,
        masked,
        payload,
    }
}

/// Writes one final frame; a client masks (RFC 6455 §5.3), a server does not.
pub async fn write_frame(stream: &mut TcpStream, opcode: u8, rsv1: bool, mask: bool, data: &[u8]) {
    let mut frame = vec![0x80 | if rsv1 { 0x40 } else { 0 } | opcode];
    let bit = if mask { 0x80 } else { 0 };
    if data.len() < 126 {
        frame.push(bit | data.len() as u8);
    } else if data.len() <= 0xffff {
        frame.push(bit | 126);
        frame.extend_from_slice(&(data.len() as u16).to_be_bytes());
    } else {
        frame.push(bit | 127);
        frame.extend_from_slice(&(data.len() as u64).to_be_bytes());
    }
    let key = [0x5a, 0x17, 0xc3, 0x81];
    if mask {
        frame.extend_from_slice(&key);
    }
    frame.extend(
        data.iter()
            .enumerate()
            .map(|(i, b)| if mask { b ^ key[i % 4] } else { *b }),
    );
    stream.write_all(&frame).await.unwrap();
}

/// One direction's compressor, keeping its window across messages (context takeover).
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        Deflater(Compress::new(Compression::default(), false))
    }
}

impl Deflater {
    pub fn deflate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        self.0
            .compress_vec(data, &mut out, FlushCompress::Sync)
            .unwrap();
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - 4);
        out
    }
}

/// One direction's decompressor, keeping its window across messages.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(Decompress::new(false))
    }
}

impl Inflater {
    pub fn inflate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut input = data.to_vec();
        input.extend_from_slice(&TAIL);
        let mut out = Vec::with_capacity(1 << 20);
        self.0
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .expect("a message that inflates");
        out
    }
}

/// What a [`DeflateRelay`] saw: each handshake's head, and each client message as JSON with
/// whether it came compressed.
#[derive(Default)]
struct Seen {
    heads: Vec<String>,
    messages: Vec<(Value, bool)>,
}

/// A relay that answers handshakes with a given `Sec-WebSocket-Extensions` (and a turn-state
/// and model header, as the API does), and answers every `response.create` with compressed
/// events when the extension was agreed.
pub struct DeflateRelay {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl DeflateRelay {
    /// `extension`: the handshake answer's extension header, or `None` for no extension.
    pub async fn start(extension: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone(), extension));
            }
        });
        Self { addr, seen, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn heads(&self) -> Vec<String> {
        self.seen.lock().unwrap().heads.clone()
    }

    /// The client messages, each with whether it arrived compressed.
    pub fn messages(&self) -> Vec<(Value, bool)> {
        self.seen.lock().unwrap().messages.clone()
    }
}

impl Drop for DeflateRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Seen>>, extension: Option<&'static str>) {
    let head = read_head(&mut stream).await;
    let key = header(&head, "sec-websocket-key").unwrap();
    seen.lock().unwrap().heads.push(head);
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nx-codex-turn-state: ts-relay\r\nopenai-model: relay-model\r\n",
        derive_accept_key(key.as_bytes())
    );
    if let Some(extension) = extension {
        answer.push_str(&format!("Sec-WebSocket-Extensions: {extension}\r\n"));
    }
    answer.push_str("\r\n");
    stream.write_all(answer.as_bytes()).await.unwrap();
    let compress = extension.is_some();
    let (mut deflater, mut inflater) = (Deflater::default(), Inflater::default());
    let mut n = 0;
    loop {
        let frame = read_frame(&mut stream).await;
        if frame.opcode == CLOSE {
            write_frame(&mut stream, CLOSE, false, false, &frame.payload).await;
            return;
        }
        let text = if frame.rsv1 {
            inflater.inflate(&frame.payload)
        } else {
            frame.payload
        };
        let message: Value = serde_json::from_slice(&text).unwrap();
        seen.lock().unwrap().messages.push((message, frame.rsv1));
        n += 1;
        let id = format!("resp_deflate_{n}");
        let events = [
            json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}}),
            json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                   "item_id": "msg_1", "delta": "squeezed hello"}),
            json!({"type": "response.completed", "response": {"id": id, "model": "relay-model",
                   "status": "completed", "output": [],
                   "usage": {"input_tokens": 700, "output_tokens": 42, "total_tokens": 742}}}),
        ];
        for event in events {
            let event = event.to_string();
            if compress {
                let data = deflater.deflate(event.as_bytes());
                write_frame(&mut stream, TEXT, true, false, &data).await;
            } else {
                write_frame(&mut stream, TEXT, false, false, event.as_bytes()).await;
            }
        }
    }
}
