//! Outbound proxies on loopback for tests: an HTTP proxy (CONNECT tunnels and plain
//! forwarding) and a SOCKS5 proxy, each optionally asking for a user and password.
//!
//! They stand in for a proxy in front of a private network: whatever host a client names,
//! the proxy connects to that port on 127.0.0.1, so relays can be given names only the proxy
//! "resolves" (e.g. `relay.test`). Each counts the connections it opened for a client and
//! remembers the host names it was asked for.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest a test proxy waits for a client's handshake.
const HANDSHAKE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Seen {
    tunnels: usize,
    targets: Vec<String>,
    refused: usize,
}

/// A running test proxy; stops when dropped.
pub struct TestOutbound {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Drop for TestOutbound {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestOutbound {
    /// An HTTP proxy: `CONNECT host:port` tunnels, and absolute-form requests
    /// (`GET http://host:port/…`) forwarded as they are.
    pub async fn http(auth: Option<(&str, &str)>) -> Self {
        let expected = auth.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        Self::start(move |client, seen| http_session(client, seen, expected.clone())).await
    }

    /// A SOCKS5 proxy (RFC 1928, `CONNECT` only), with username/password auth (RFC 1929)
    /// when `auth` is given.
    pub async fn socks5(auth: Option<(&str, &str)>) -> Self {
        let auth = auth.map(|(u, p)| (u.to_string(), p.to_string()));
        Self::start(move |client, seen| socks_session(client, seen, auth.clone())).await
    }

    async fn start<F, Fut>(session: F) -> Self
    where
        F: Fn(TcpStream, Arc<Mutex<Seen>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut sessions = tokio::task::JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    sessions.spawn(session(client, seen.clone()));
                    while sessions.try_join_next().is_some() {}
                }
            })
        };
        Self { addr, seen, task }
    }

    /// `scheme://[user:pass@]127.0.0.1:port`.
    pub fn url(&self, scheme: &str, auth: Option<(&str, &str)>) -> String {
        let auth = auth.map(|(u, p)| format!("{u}:{p}@")).unwrap_or_default();
        format!("{scheme}://{auth}{}", self.addr)
    }

    /// Connections opened to a target for a client.
    pub fn tunnels(&self) -> usize {
        self.seen.lock().unwrap().tunnels
    }

    /// Clients turned away for missing or wrong credentials.
    pub fn refused(&self) -> usize {
        self.seen.lock().unwrap().refused
    }

    /// The `host:port` targets clients asked for, in order.
    pub fn targets(&self) -> Vec<String> {
        self.seen.lock().unwrap().targets.clone()
    }
}

/// A loopback port where connections are refused (a proxy or relay that is down). It stays
/// bound, without listening, while this lives: a port merely bound and closed again can be
/// handed to a listener of a test running meanwhile, which would then answer.
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl ClosedPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let port = socket.local_addr().unwrap().port();
        Self {
            _socket: socket,
            port,
        }
    }
}

impl std::fmt::Display for ClosedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.port.fmt(f)
    }
}

/// A loopback port free now, for a process the test starts to bind.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The port of `host:port` (or of the authority of an absolute URL).
fn port_of(target: &str) -> Option<u16> {
    let authority = target
        .split("://")
        .nth(1)
        .unwrap_or(target)
        .split('/')
        .next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// Opens the tunnel: every host is 127.0.0.1.
async fn open(seen: &Mutex<Seen>, target: String, port: u16) -> std::io::Result<TcpStream> {
    let upstream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut seen = seen.lock().unwrap();
    seen.tunnels += 1;
    seen.targets.push(target);
    Ok(upstream)
}

async fn http_session(
    mut client: TcpStream,
    seen: Arc<Mutex<Seen>>,
    expected_auth: Option<String>,
) -> std::io::Result<()> {
    // The request head, and whatever body bytes came with it.
    let mut buffer = Vec::new();
    let head_end = tokio::time::timeout(HANDSHAKE, async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(at + 4);
            }
            if buffer.len() > 64 * 1024 {
                return Err(std::io::Error::other("head too long"));
            }
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("closed before the head"));
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .map_err(|_| std::io::Error::other("head timeout"))??;
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut words = head.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or_default().to_string(),
        words.next().unwrap_or_default().to_string(),
    );
    if let Some(expected) = expected_auth {
        let given = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_string())
        });
        if given.as_deref() != Some(expected.as_str()) {
            seen.lock().unwrap().refused += 1;
            client
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\
                      Connection: close\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
    }
    let Some(port) = port_of(&target) else {
        client
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let host = target
        .split("://")
        .nth(1)
        .unwrap_or(&target)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let Ok(mut upstream) = open(&seen, host, port).await else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    if method.eq_ignore_ascii_case("CONNECT") {
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        upstream.write_all(&buffer[head_end..]).await?;
    } else {
        // Forwarded as sent: the test relay accepts an absolute-form request target.
        upstream.write_all(&buffer).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn socks_session(
    mut client: TcpStream,
    seen: Arc<Mutex<Seen>>,
    auth: Option<(String, String)>,
) -> std::io::Result<()> {
    let handshake = async {
        // Greeting: version 5, the methods the client offers.
        let mut greeting = [0u8; 2];
        client.read_exact(&mut greeting).await?;
        let mut methods = vec![0u8; greeting[1] as usize];
        client.read_exact(&mut methods).await?;
        let wanted = if auth.is_some() { 2 } else { 0 };
        if greeting[0] != 5 || !methods.contains(&wanted) {
            client.write_all(&[5, 0xff]).await?;
            seen.lock().unwrap().refused += 1;
            return Ok(None);
        }
        client.write_all(&[5, wanted]).await?;
        if let Some((user, pass)) = &auth {
            let mut version_len = [0u8; 2];
            client.read_exact(&mut version_len).await?;
            let mut given_user = vec![0u8; version_len[1] as usize];
            client.read_exact(&mut given_user).await?;
            let mut pass_len = [0u8; 1];
            client.read_exact(&mut pass_len).await?;
            let mut given_pass = vec![0u8; pass_len[0] as usize];
            client.read_exact(&mut given_pass).await?;
            if given_user != user.as_bytes() || given_pass != pass.as_bytes() {
                client.write_all(&[1, 1]).await?;
                seen.lock().unwrap().refused += 1;
                return Ok(None);
            }
            client.write_all(&[1, 0]).await?;
        }
        // Request: version, CONNECT, reserved, address type, address, port.
        let mut request = [0u8; 4];
        client.read_exact(&mut request).await?;
        let host = match request[3] {
            1 => {
                let mut ip = [0u8; 4];
                client.read_exact(&mut ip).await?;
                std::net::Ipv4Addr::from(ip).to_string()
            }
            3 => {
                let mut len = [0u8; 1];
                client.read_exact(&mut len).await?;
                let mut name = vec![0u8; len[0] as usize];
                client.read_exact(&mut name).await?;
                String::from_utf8_lossy(&name).into_owned()
            }
            4 => {
                let mut ip = [0u8; 16];
                client.read_exact(&mut ip).await?;
                format!("[{}]", std::net::Ipv6Addr::from(ip))
            }
            _ => return Err(std::io::Error::other("bad address type")),
        };
        let mut port = [0u8; 2];
        client.read_exact(&mut port).await?;
        Ok(Some((request[1], host, u16::from_be_bytes(port))))
    };
    let Some((command, host, port)) = tokio::time::timeout(HANDSHAKE, handshake)
        .await
        .map_err(|_| std::io::Error::other("handshake timeout"))??
    else {
        return Ok(());
    };
    let reply = |code: u8| [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
    if command != 1 {
        client.write_all(&reply(7)).await?;
        return Ok(());
    }
    match open(&seen, format!("{host}:{port}"), port).await {
        Ok(mut upstream) => {
            client.write_all(&reply(0)).await?;
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        }
        Err(_) => client.write_all(&reply(5)).await?,
    }
    Ok(())
}
