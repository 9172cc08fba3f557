//! The listening socket: accepts connections and serves HTTP/1.1 on each, on this event loop
//! and on the serving threads ([`ServerThreads`]).
//!
//! One accept loop hands connections out in turn, itself included. A connection, its requests
//! and their relay connections then stay on the thread that got it (each thread has its own
//! relay clients), so no request pays a cross-thread wake-up per hop, while several
//! connections use several cores. (Threads all accepting from the same socket spread a burst of
//! connections unevenly: whichever wakes first takes most of them.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::limits::{ConnectionCap, Slot};
use super::write_stall::WriteStall;
use super::{ProxyState, client_key, idle, limits, pipeline};

/// A connection on its way to a serving thread, with its place under the connection cap.
type Handed = (std::net::TcpStream, Slot);

/// How long in-flight requests get to finish after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running proxy server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    threads: Option<ServerThreads>,
}

impl ServerHandle {
    /// Stops accepting, lets in-flight requests finish (bounded) on every thread, and waits
    /// for them.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let threads = self.threads.take().map(ServerThreads::stop);
        let _ = (&mut self.task).await;
        if let Some(threads) = threads {
            let _ = tokio::task::spawn_blocking(move || join(threads)).await;
        }
    }

    /// Stops at once: open connections are dropped (tests use this to kill a relay).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Serves the proxy on `listener` in a background task of this event loop.
pub fn serve(listener: TcpListener, state: Arc<ProxyState>) -> std::io::Result<ServerHandle> {
    serve_on(listener, state, ServerThreads::none())
}

/// Serves the proxy on `listener`: connections are accepted here and served in turn by this
/// event loop and by each of `threads`.
pub fn serve_on(
    listener: TcpListener,
    state: Arc<ProxyState>,
    threads: ServerThreads,
) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = oneshot::channel();
    let hands: Vec<_> = threads.threads.iter().map(|t| t.hand.clone()).collect();
    let cap = ConnectionCap::new(state.settings.max_client_connections);
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut turn = 0usize;
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut stopped => break,
            };
            // Past the cap: answered 503 and closed (see `limits`).
            let Some((stream, slot)) = cap.admit(stream) else {
                continue;
            };
            turn = (turn + 1) % (hands.len() + 1);
            match turn.checked_sub(1).map(|i| &hands[i]) {
                None => spawn_connection(stream, slot, state.clone(), &graceful),
                Some(hand) => hand_over(stream, slot, hand),
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    });
    Ok(ServerHandle {
        addr,
        stop: Some(stop),
        task,
        threads: Some(threads),
    })
}

/// Serves one connection on this event loop, watched by `graceful` for the drain at shutdown,
/// by an [`idle::Watch`] for its head-read and keep-alive limits, and by a [`WriteStall`] for a
/// client that stops reading; `slot` is its place under the connection cap, held by the socket
/// until it closes.
fn spawn_connection(
    stream: TcpStream,
    slot: Slot,
    state: Arc<ProxyState>,
    graceful: &GracefulShutdown,
) {
    // Without this, small SSE writes can wait for the peer's delayed ACK (Nagle).
    let _ = stream.set_nodelay(true);
    let open = state.metrics.connections.track();
    let peer = stream.peer_addr().ok().map(client_key::Peer);
    let watch = idle::Watch::new(&state.settings);
    let write_stall = state.settings.write_stall_limit();
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    limits::configure_http1(&mut builder, &state.settings);
    let requests = watch.clone();
    let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
        let state = state.clone();
        let busy = requests.busy();
        if let Some(peer) = peer {
            request.extensions_mut().insert(peer);
        }
        async move {
            let response = pipeline::handle(state, request).await;
            Ok::<_, Infallible>(response.map(|body| idle::Tracked::new(body, busy)))
        }
    });
    // Upgrades: a Responses WebSocket (see `websocket`) takes the connection over after its 101.
    let stream = WriteStall::new(stream, write_stall, "client");
    let io = TokioIo::new(watch.io(stream, Some(slot)));
    let connection = builder.serve_connection_with_upgrades(io, service);
    let connection = graceful.watch(connection.into_owned());
    tokio::spawn(async move {
        match watch.run(connection).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("connection ended with an error: {e}"),
            Err(expired) => tracing::debug!("client connection closed: {}", expired.as_str()),
        }
        drop(open);
    });
}

/// Gives a connection to another serving thread (leaving this event loop's reactor).
fn hand_over(stream: TcpStream, slot: Slot, hand: &mpsc::UnboundedSender<Handed>) {
    match stream.into_std() {
        // A thread that has stopped drops what it is handed: only at shutdown.
        Ok(stream) => drop(hand.send((stream, slot))),
        Err(e) => tracing::warn!("could not hand a connection over: {e}"),
    }
}

/// The serving threads besides the accepting one: each runs an event loop of its own and
/// serves the connections it is handed.
pub struct ServerThreads {
    threads: Vec<ServingThread>,
}

struct ServingThread {
    thread: std::thread::JoinHandle<()>,
    hand: mpsc::UnboundedSender<Handed>,
    stop: oneshot::Sender<()>,
}

impl ServerThreads {
    /// No thread besides the accepting one.
    pub fn none() -> Self {
        Self {
            threads: Vec::new(),
        }
    }

    /// Starts `count` serving threads; returns once each serves, or with the first one's
    /// reason it could not.
    pub fn start(state: &Arc<ProxyState>, count: usize) -> anyhow::Result<Self> {
        let mut started = Self::none();
        for index in 1..=count {
            let state = state.clone();
            let (hand, handed) = mpsc::unbounded_channel();
            let (stop, stopped) = oneshot::channel();
            let (ready, serving) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("proxy-{index}"))
                .spawn(move || serve_thread(state, handed, ready, stopped))?;
            started.threads.push(ServingThread { thread, hand, stop });
            let failed = match serving.recv() {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.context(format!("proxy thread {index} could not start")),
                Err(_) => anyhow::anyhow!("proxy thread {index} ended before it served"),
            };
            join(started.stop());
            return Err(failed);
        }
        Ok(started)
    }

    /// Asks every thread to stop once its connections are drained (bounded).
    fn stop(self) -> Vec<std::thread::JoinHandle<()>> {
        self.threads
            .into_iter()
            .map(|serving| {
                let _ = serving.stop.send(());
                serving.thread
            })
            .collect()
    }
}

/// Waits for stopped threads to end.
fn join(threads: Vec<std::thread::JoinHandle<()>>) {
    for thread in threads {
        let _ = thread.join();
    }
}

/// One serving thread's life: says on `ready` whether it serves, then serves what it is
/// handed until `stopped`, and drains its connections.
fn serve_thread(
    state: Arc<ProxyState>,
    mut handed: mpsc::UnboundedReceiver<Handed>,
    ready: std::sync::mpsc::SyncSender<anyhow::Result<()>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let setup = || -> anyhow::Result<_> {
        state.add_proxy_thread()?;
        Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?)
    };
    let runtime = match setup() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    state.runtimes.add(runtime.handle().clone());
    let _ = ready.send(Ok(()));
    runtime.block_on(async move {
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, slot) = tokio::select! {
                handed = handed.recv() => match handed {
                    Some(handed) => handed,
                    None => break,
                },
                _ = &mut stopped => break,
            };
            match TcpStream::from_std(stream) {
                Ok(stream) => spawn_connection(stream, slot, state.clone(), &graceful),
                Err(e) => tracing::warn!("could not take over a connection: {e}"),
            }
        }
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    });
}
