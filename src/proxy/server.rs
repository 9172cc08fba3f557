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
