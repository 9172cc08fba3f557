//! The listening socket: accepts connections and serves HTTP/1.1 on each.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{ProxyState, pipeline};

/// How long in-flight requests get to finish after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running proxy server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting, lets in-flight requests finish (bounded), and waits for the server.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Stops at once: open connections are dropped (tests use this to kill a relay).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Serves the proxy on `listener` in a background task.
pub fn serve(listener: TcpListener, state: Arc<ProxyState>) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
            // Without this, small SSE writes can wait for the peer's delayed ACK (Nagle).
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(pipeline::handle(state, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("connection ended with an error: {e}");
                }
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    });
    Ok(ServerHandle {
        addr,
        stop: Some(stop),
        task,
    })
}

/// Threads serving the proxy besides the caller's: each runs an event loop of its own and
/// accepts from the same listening socket, so a connection, its requests and their relay
/// connections stay on the thread that accepted it (no cross-thread wake-ups per hop), while
/// several connections use several cores.
pub struct ServerThreads {
    threads: Vec<(std::thread::JoinHandle<()>, oneshot::Sender<()>)>,
}

impl ServerThreads {
    /// Starts `count` threads serving `listener` (a non-blocking socket); returns once each
    /// serves, or with the first one's reason it could not.
    pub fn start(
        listener: &std::net::TcpListener,
        state: &Arc<ProxyState>,
        count: usize,
    ) -> anyhow::Result<Self> {
        let mut started = Self {
            threads: Vec::with_capacity(count),
        };
        for index in 1..=count {
            let listener = listener.try_clone()?;
            let state = state.clone();
            let (stop, stopped) = oneshot::channel();
            let (ready, serving) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("proxy-{index}"))
                .spawn(move || serve_thread(listener, state, ready, stopped))?;
            started.threads.push((thread, stop));
            match serving.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    started.shutdown();
                    return Err(e.context(format!("proxy thread {index} could not start")));
                }
                Err(_) => {
                    started.shutdown();
                    anyhow::bail!("proxy thread {index} ended before it served");
                }
            }
        }
        Ok(started)
    }

    /// Stops every thread after its in-flight requests finish (bounded); blocks until then.
    pub fn shutdown(self) {
        let threads: Vec<_> = self
            .threads
            .into_iter()
            .map(|(thread, stop)| {
                let _ = stop.send(());
                thread
            })
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// One serving thread's life: says on `ready` whether it serves, then serves until `stopped`.
fn serve_thread(
    listener: std::net::TcpListener,
    state: Arc<ProxyState>,
    ready: std::sync::mpsc::SyncSender<anyhow::Result<()>>,
    stopped: oneshot::Receiver<()>,
) {
    let setup = || -> anyhow::Result<_> {
        state.add_proxy_thread()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let server = runtime.block_on(async { serve(TcpListener::from_std(listener)?, state) })?;
        Ok((runtime, server))
    };
    let (runtime, server) = match setup() {
        Ok(serving) => serving,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    runtime.block_on(async move {
        let _ = stopped.await;
        server.shutdown().await;
    });
}
