//! Time limits on a client connection while it holds no request: a head that takes too long
//! to arrive (`[proxy] header_read_timeout_ms`, against slowloris clients that dribble header
//! bytes to hold connections) and a kept-alive connection with nothing to do
//! (`keep_alive_idle_timeout_ms`). Past either, the connection is dropped (closed).
//!
//! hyper has one timer for both (it starts when a connection waits for a head, so it also
//! ends idle connections), which would make a short head timeout a short keep-alive, or a
//! long keep-alive a long head timeout. So a [`Watch`] follows each connection instead:
//! - **head**: from the connection's opening, or on a kept-alive connection from the first
//!   byte of its next request ([`WatchedIo`] sees the bytes), until hyper hands the request
//!   to the proxy ([`Watch::busy`]);
//! - **busy**: a request is being answered, its body included ([`Tracked`]); the proxy's own
//!   limits apply then (body read timeout, relay timeouts, stream idle timeout);
//! - **idle**: from the end of an answer until the next byte.
//!
//! A phase change only updates a few atomics: it never wakes the watch. The watch's one timer
//! is armed no further ahead than the shortest limit, so a phase that starts after it was armed
//! (a head on a kept-alive connection) is looked at before its own limit can pass, and the timer
//! is then moved to that phase's deadline. A request therefore costs no wake-up and no timer
//! registration here (each used to cost both, twice).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::limits::Slot;
use crate::config::model::ProxySettings;

/// How often a busy connection is looked at again (it has no deadline of its own here).
const BUSY_RECHECK: Duration = Duration::from_secs(30);

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Its request head did not arrive in time.
    Head,
    /// It was kept alive with no request for too long.
    Idle,
}

impl Expired {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Head => "header_read_timeout",
            Self::Idle => "keep_alive_idle_timeout",
        }
    }
}

/// What a connection is doing, as far as its time limits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving a request head since this many ms after the connection opened.
    Head(u64),
    /// Answering at least one request.
    Busy,
    /// Kept alive, doing nothing since this many ms after the connection opened.
    Idle(u64),
}

struct Shared {
    opened: Instant,
    /// Requests being answered (their bodies included).
    in_flight: AtomicUsize,
    /// True between the end of an answer and the next byte from the client.
    idle: AtomicBool,
    /// When the head or idle phase began, in ms after `opened`.
    since_ms: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// `instant` in ms after the connection opened.
    fn ms_at(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.opened).as_millis())
            .unwrap_or(u64::MAX)
    }

    fn phase(&self) -> Phase {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Phase::Busy;
        }
        // `idle` first: its writers store `since_ms` before it, so a new `idle` comes with
        // its own `since_ms`.
        let idle = self.idle.load(Ordering::Acquire);
        let since = self.since_ms.load(Ordering::Acquire);
        if idle {
            Phase::Idle(since)
        } else {
            Phase::Head(since)
        }
    }
}

/// The time limits of one client connection.
#[derive(Clone)]
pub struct Watch {
    shared: Arc<Shared>,
    head: Option<Duration>,
    idle: Option<Duration>,
}

impl Watch {
    /// A connection that has just opened: its first head is timed from now.
    pub fn new(settings: &ProxySettings) -> Self {
        let limit = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        Self {
            shared: Arc::new(Shared {
                opened: Instant::now(),
                in_flight: AtomicUsize::new(0),
                idle: AtomicBool::new(false),
                since_ms: AtomicU64::new(0),
            }),
            head: limit(settings.header_read_timeout_ms),
            idle: limit(settings.keep_alive_idle_timeout_ms),
        }
    }

    /// The connection's socket, watched for the first byte of each next request. `slot`, its
    /// place under the connection cap, lives as long as the socket: also after an upgrade
    /// (a WebSocket) has taken it from hyper.
    pub fn io<T>(&self, io: T, slot: Option<Slot>) -> WatchedIo<T> {
        WatchedIo {
            inner: io,
            shared: self.shared.clone(),
            _slot: slot,
        }
    }

    /// A request's head has arrived: the connection is busy until the returned guard (kept
    /// by the answer's body, see [`Tracked`]) is dropped.
    pub fn busy(&self) -> Busy {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.shared.clone())
    }

    /// Runs `connection` until it ends, or until a limit passes (then it is dropped, which
    /// closes the socket).
    pub async fn run<F: Future>(self, connection: F) -> Result<F::Output, Expired> {
        let mut connection = std::pin::pin!(connection);
        let mut check = std::pin::pin!(tokio::time::sleep_until(self.next_check(Instant::now())));
        loop {
            tokio::select! {
                output = &mut connection => return Ok(output),
                () = check.as_mut() => {
                    let now = Instant::now();
                    if let Some(expired) = self.expired(now) {
                        return Err(expired);
                    }
                    check.as_mut().reset(self.next_check(now));
                }
            }
        }
    }

    /// When to look at the connection next: the deadline of the phase in force, but no later
    /// than the shortest limit from now, so that a phase starting in the meantime (unseen, as
    /// phase changes do not wake the watch) is looked at before its own deadline.
    fn next_check(&self, now: Instant) -> Instant {
        let at =
            |since: u64, limit: Duration| self.shared.opened + Duration::from_millis(since) + limit;
        let phase_deadline = match (self.shared.phase(), self.head, self.idle) {
            (Phase::Head(since), Some(limit), _) => Some(at(since, limit)),
            (Phase::Idle(since), _, Some(limit)) => Some(at(since, limit)),
            _ => None,
        };
        let shortest = [self.head, self.idle]
            .into_iter()
            .flatten()
            .fold(BUSY_RECHECK, Duration::min);
        let latest = now + shortest;
        phase_deadline.map_or(latest, |deadline| deadline.min(latest))
    }

    /// Whether the phase in force has outlived its limit at `now`.
    fn expired(&self, now: Instant) -> Option<Expired> {
        let now = self.shared.ms_at(now);
        let past = |since: u64, limit: Duration| {
            now.saturating_sub(since) >= u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)
        };
        match (self.shared.phase(), self.head, self.idle) {
            (Phase::Head(since), Some(limit), _) if past(since, limit) => Some(Expired::Head),
            (Phase::Idle(since), _, Some(limit)) if past(since, limit) => Some(Expired::Idle),
            _ => None,
        }
    }
}

/// A request being answered; dropping the last one makes the connection idle.
pub struct Busy(Arc<Shared>);

impl Drop for Busy {
    fn drop(&mut self) {
        let shared = &self.0;
        shared.since_ms.store(shared.now_ms(), Ordering::Release);
        shared.idle.store(true, Ordering::Release);
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A client connection's socket: a byte that arrives on an idle connection starts the next
/// head's time.
pub struct WatchedIo<T> {
    inner: T,
    shared: Arc<Shared>,
    _slot: Option<Slot>,
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before && this.shared.idle.load(Ordering::Acquire) {
            let shared = &this.shared;
            shared.since_ms.store(shared.now_ms(), Ordering::Release);
            shared.idle.store(false, Ordering::Release);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// An answer's body that keeps its connection busy until it ends (or is dropped).
pub struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, busy: Busy) -> Self {
        Self { inner, _busy: busy }
    }
}

impl<B> http_body::Body for Tracked<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(head_ms: u64, idle_ms: u64) -> ProxySettings {
        ProxySettings {
            header_read_timeout_ms: head_ms,
            keep_alive_idle_timeout_ms: idle_ms,
            ..ProxySettings::default()
        }
    }

    /// Every wait in these tests is bounded; none asserts how long anything took.
    async fn bounded<F: Future>(future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("ended in time")
    }

    #[tokio::test]
    async fn a_head_that_never_completes_ends_the_connection() {
        let watch = Watch::new(&settings(50, 600_000));
        let never = std::future::pending::<()>();
        assert_eq!(bounded(watch.run(never)).await, Err(Expired::Head));
    }

    #[tokio::test]
    async fn a_busy_connection_is_not_ended_and_an_idle_one_is_by_its_own_limit() {
        let watch = Watch::new(&settings(50, 50));
        let busy = watch.busy();
        let run = tokio::spawn(watch.clone().run(std::future::pending::<()>()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!run.is_finished(), "busy connections have no limit here");
        drop(busy);
        assert!(matches!(watch.shared.phase(), Phase::Idle(_)));
        assert_eq!(bounded(run).await.unwrap(), Err(Expired::Idle));

        // Idle is judged by the idle limit, not the head's.
        let long_idle = Watch::new(&settings(50, 600_000));
        drop(long_idle.busy());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(long_idle.expired(Instant::now()), None);
    }

    #[tokio::test]
    async fn zero_disables_a_limit() {
        let watch = Watch::new(&settings(0, 0));
        let done = watch.run(tokio::time::sleep(Duration::from_millis(200)));
        assert_eq!(bounded(done).await, Ok(()));
    }

    /// `at` ms after the watch's connection opened.
    fn at(watch: &Watch, ms: u64) -> Instant {
        watch.shared.opened + Duration::from_millis(ms)
    }

    /// Moves the connection into the head phase at `ms`, as a byte arriving then would.
    fn head_from(watch: &Watch, ms: u64) {
        watch.shared.since_ms.store(ms, Ordering::Release);
        watch.shared.idle.store(false, Ordering::Release);
    }

    /// Phase changes do not wake the watch: a head that starts while the watch waits on a long
    /// idle limit must still be looked at in time, and end at the head's own limit exactly.
    #[test]
    fn a_head_starting_while_the_watch_waits_ends_at_its_own_limit() {
        let watch = Watch::new(&settings(1_000, 600_000));
        drop(watch.busy()); // idle from about 0 ms
        // Idle: looked at again after the shortest limit, not at the idle deadline.
        assert_eq!(watch.next_check(at(&watch, 2_000)), at(&watch, 3_000));
        head_from(&watch, 2_500);
        // The check at 3 s finds the head, not yet expired, and waits for its deadline.
        assert_eq!(watch.expired(at(&watch, 3_000)), None);
        assert_eq!(watch.next_check(at(&watch, 3_000)), at(&watch, 3_500));
        assert_eq!(watch.expired(at(&watch, 3_499)), None);
        assert_eq!(watch.expired(at(&watch, 3_500)), Some(Expired::Head));
    }

    #[test]
    fn an_idle_connection_ends_at_the_idle_limit_exactly() {
        let watch = Watch::new(&settings(1_000, 90_000));
        drop(watch.busy());
        let since = watch.shared.since_ms.load(Ordering::Acquire);
        let deadline = since + 90_000;
        assert_eq!(watch.expired(at(&watch, deadline - 1)), None);
        assert_eq!(
            watch.next_check(at(&watch, deadline - 400)),
            at(&watch, deadline)
        );
        assert_eq!(watch.expired(at(&watch, deadline)), Some(Expired::Idle));
    }

    /// Whatever the limits and the phase, a watch that finds nothing expired waits for a later
    /// instant (it never spins), and never past the phase's own deadline.
    #[test]
    fn a_check_that_finds_nothing_expired_waits_for_a_later_instant() {
        for (head, idle) in [
            (1_000, 600_000),
            (1_000, 0),
            (0, 90_000),
            (0, 0),
            (100, 100),
        ] {
            let watch = Watch::new(&settings(head, idle));
            let phases: [&dyn Fn(&Watch); 3] = [&|w| head_from(w, 10), &|w| drop(w.busy()), &|w| {
                std::mem::forget(w.busy())
            }];
            for phase in phases {
                phase(&watch);
                for ms in [0, 10, 99, 500, 5_000, 200_000] {
                    let now = at(&watch, ms);
                    if watch.expired(now).is_none() {
                        let next = watch.next_check(now);
                        assert!(next > now, "{head}/{idle} at {ms} ms: {next:?}");
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn a_byte_on_an_idle_connection_starts_the_next_head() {
        let watch = Watch::new(&settings(1_000, 60_000));
        drop(watch.busy());
        assert!(matches!(watch.shared.phase(), Phase::Idle(_)));
        let mut io = watch.io(&b"G"[..], None);
        let mut byte = [0u8; 1];
        tokio::io::AsyncReadExt::read(&mut io, &mut byte)
            .await
            .unwrap();
        assert!(matches!(watch.shared.phase(), Phase::Head(_)));
    }
}
