//! A time limit on a peer that stops taking our bytes (`[proxy] write_stall_timeout_ms`).
//!
//! Reading has its own limits (head, body, relay reply, stream idle), but a write waits for
//! the peer: a client that stops reading an event stream, or a relay that takes a request's
//! head and never reads its body, would otherwise hold the connection, its concurrency permit
//! and every byte queued for it (up to the decoded body cap) for as long as the peer stays
//! connected. [`WriteStall`] wraps a socket, on both sides of the proxy: a write (or flush or
//! shutdown) that has waited `limit` for the peer to make room fails with
//! [`std::io::ErrorKind::TimedOut`], which ends the connection and frees what it held. (The
//! socket says it has room only once a good share of its buffer is free, so a peer that reads
//! a few bytes a minute is cut off too.)
//!
//! A write that goes through costs one branch: the timer is only made and armed while the
//! peer's buffer is full.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A socket whose writes fail once one has waited `limit` for the peer to make room.
pub struct WriteStall<T> {
    inner: T,
    limit: Option<Duration>,
    /// Who the peer is, for the error: "client" or "relay".
    peer: &'static str,
    /// Made on the first write that waits, then reused.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether a wait is being timed: from the first write that found the peer's buffer full
    /// until a write (or flush) goes through. A writer that gives up on a waiting write and
    /// comes back later keeps its start: nothing was taken in between, or its next write
    /// would not wait.
    waiting: bool,
}

impl<T> WriteStall<T> {
    /// `limit` None: writes wait as long as the peer stays connected. `peer` names it in the
    /// error ("client", "relay").
    pub fn new(inner: T, limit: Option<Duration>, peer: &'static str) -> Self {
        Self {
            inner,
            limit,
            peer,
            timer: None,
            waiting: false,
        }
    }

    /// A write found the peer's buffer full: times the wait (registering the timer with `cx`,
    /// like the socket), and fails it once the limit has passed.
    fn wait<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        let deadline = || Instant::now() + limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline())));
        if !self.waiting {
            timer.as_mut().reset(deadline());
            self.waiting = true;
        }
        ready!(timer.as_mut().poll(cx));
        self.waiting = false;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the {} took no bytes for {} ms (write_stall_timeout_ms)",
                self.peer,
                limit.as_millis()
            ),
        )))
    }

    /// What the inner socket's write (or flush or shutdown) says: one that went through or
    /// failed ends the wait, one that waits is timed.
    fn after<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(outcome) => {
                self.waiting = false;
                Poll::Ready(outcome)
            }
            Poll::Pending => self.wait(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.after(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.after(cx, polled)
    }
}

/// A relay connection keeps what the connector says of it (HTTP/2 negotiated, proxy, …).
impl<T: hyper_util::client::legacy::connect::Connection>
    hyper_util::client::legacy::connect::Connection for WriteStall<T>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_secs(60);

    /// A pipe whose far end never reads: writes fill its buffer, then wait.
    fn unread_pipe() -> (WriteStall<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (near, far) = tokio::io::duplex(1024);
        (WriteStall::new(near, Some(LIMIT), "client"), far)
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_takes_nothing_fails_the_write_at_the_limit() {
        let (mut near, _far) = unread_pipe();
        let started = Instant::now();
        let error = near.write_all(&[7; 4096]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            error.to_string(),
            "the client took no bytes for 60000 ms (write_stall_timeout_ms)"
        );
        // The paused clock moves only to the timer: the write failed at the limit exactly.
        assert_eq!(started.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_peer_that_keeps_taking_bytes_is_never_cut_off() {
        let (mut near, mut far) = unread_pipe();
        // The reader takes 512 bytes every 40 s: each wait is shorter than the limit, the
        // whole write far longer.
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0; 512];
            while total < 16 * 1024 {
                tokio::time::sleep(Duration::from_secs(40)).await;
                total += far.read(&mut buf).await.unwrap();
            }
            total
        });
        let started = Instant::now();
        near.write_all(&[7; 16 * 1024]).await.unwrap();
        assert!(started.elapsed() > LIMIT * 10);
        drop(near);
        assert_eq!(reader.await.unwrap(), 16 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_waits_as_long_as_the_peer_stays() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut near = WriteStall::new(near, None, "client");
        let write = near.write_all(&[7; 4096]);
        assert!(
            tokio::time::timeout(LIMIT * 100, write).await.is_err(),
            "still waiting"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_after_a_write_went_through_is_timed_from_its_own_start() {
        let (mut near, mut far) = unread_pipe();
        near.write_all(&[7; 1024]).await.unwrap(); // fills the pipe without waiting
        // A write waits 50 s, then the peer takes everything: the write goes through.
        let drain = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(50)).await;
            let mut buf = vec![0; 2048];
            far.read_exact(&mut buf).await.unwrap();
            far
        });
        near.write_all(&[8; 1024]).await.unwrap();
        let _far = drain.await.unwrap();
        // The next wait starts now: it has its whole limit, not the 10 s left of the first.
        let started = Instant::now();
        let error = near.write_all(&[9; 2048]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMIT);
    }
}
