//! Joining upstream chunks that are already available into one frame.
//!
//! A relay's reply often arrives in one read yet decodes into one chunk per event, and hyper's
//! client connection task hands those over one at a time, one per scheduler turn. Passing them
//! on one by one would cost the client a write (a packet, a wake-up) per event. So with
//! something in hand the [`Coalescer`] gives the upstream connection the scheduler turns its
//! caller allows ([`UPSTREAM_TURNS`], or none for a frame that must go at once) to hand over
//! what it already holds, and sends what it has when they bring nothing: it never waits for
//! the network. A frame is bounded in bytes and in chunks, so in time too.

use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

/// Chunks already available are joined until this size is reached (a frame can go over by
/// the last chunk) before they are passed on.
pub const COALESCE_MAX: usize = 64 * 1024;

/// The most chunks joined into one frame. Each one found within the turns resets them, so
/// without this a relay trickling tiny chunks just fast enough would hold a frame back for
/// 64 Ki chunks' worth of turns.
const CHUNKS_MAX: u16 = 256;

/// Scheduler turns the upstream connection gets to hand over a chunk it already holds before
/// what is gathered goes out. Under tokio's current-thread runtime a chunk hyper's connection
/// task holds reaches the body on the second turn (measured with `benches/proxy_overhead.rs`:
/// never on the first, always by the second).
pub const UPSTREAM_TURNS: u8 = 2;

type Item = Option<std::io::Result<Bytes>>;

/// What has been taken from a chunk stream and not handed out yet.
#[derive(Default)]
pub struct Coalescer {
    gathered: Gathered,
    /// The end or error met while gathering; handed out after what was gathered.
    stashed: Option<Item>,
    /// The stream's end or error has been handed out: the stream is not to be polled again.
    ended: bool,
}

impl Coalescer {
    /// Something taken from the stream is waiting to go out.
    pub fn has_gathered(&self) -> bool {
        !self.gathered.is_empty()
    }

    /// The next chunk: what `stream` has ready now, with what follows within `turns` scheduler
    /// turns joined to it (up to [`COALESCE_MAX`]). With nothing in hand it is the stream's own
    /// poll; with something in hand it wakes itself for each turn it gives (so awaiting it
    /// never hangs), and an end or error met after data comes on the next call.
    pub fn poll_next<S>(&mut self, stream: &mut S, cx: &mut Context<'_>, turns: u8) -> Poll<Item>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + ?Sized,
    {
        if self.gather(stream, cx, turns, true).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(match self.gathered.take() {
            Some(bytes) => Some(Ok(bytes)),
            None => {
                self.ended = true;
                self.stashed.take().flatten()
            }
        })
    }

    /// Takes what `stream` holds now, and what it hands over within `turns` scheduler turns,
    /// for the next [`Coalescer::poll_next`]. Never waits for the network: with nothing in
    /// hand and nothing ready it is done at once.
    pub fn poll_gather<S>(&mut self, stream: &mut S, cx: &mut Context<'_>, turns: u8) -> Poll<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + ?Sized,
    {
        self.gather(stream, cx, turns, false)
    }

    /// Pending only while giving a turn (it has woken itself) or, with nothing in hand and
    /// `wait_for_data`, while the stream is.
    fn gather<S>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
        turns: u8,
        wait_for_data: bool,
    ) -> Poll<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin + ?Sized,
    {
        while self.stashed.is_none()
            && !self.ended
            && self.gathered.len() < COALESCE_MAX
            && self.gathered.chunks < CHUNKS_MAX
        {
            match std::pin::Pin::new(&mut *stream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.gathered.push(chunk),
                Poll::Ready(end_or_error) => self.stashed = Some(end_or_error),
                Poll::Pending if self.gathered.is_empty() && wait_for_data => return Poll::Pending,
                Poll::Pending if self.gathered.is_empty() => break,
                Poll::Pending if self.gathered.turns_given < turns => {
                    self.gathered.turns_given += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => break,
            }
        }
        Poll::Ready(())
    }
}

/// Chunks gathered for one frame: the first kept as it came (no copy when it is alone), the
/// rest joined after it.
#[derive(Default)]
struct Gathered {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
    chunks: u16,
    /// Scheduler turns given to the upstream since the last chunk arrived.
    turns_given: u8,
}

impl Gathered {
    fn len(&self) -> usize {
        match (&self.joined, &self.first) {
            (Some(joined), _) => joined.len(),
            (None, Some(first)) => first.len(),
            (None, None) => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push(&mut self, chunk: Bytes) {
        self.turns_given = 0;
        self.chunks += 1;
        match (&mut self.joined, &self.first) {
            (Some(joined), _) => joined.extend_from_slice(&chunk),
            (None, Some(first)) => {
                let mut joined = BytesMut::with_capacity(first.len() + chunk.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&chunk);
                self.joined = Some(joined);
            }
            (None, None) => self.first = Some(chunk),
        }
    }

    fn take(&mut self) -> Option<Bytes> {
        self.turns_given = 0;
        self.chunks = 0;
        let first = self.first.take();
        self.joined.take().map(BytesMut::freeze).or(first)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    type Script = std::collections::VecDeque<Poll<Item>>;

    /// A stream that plays `script`. A `Pending` step does not wake the task: only the
    /// coalescer's own wake-up (it has data in hand) brings the next poll.
    fn scripted(script: Vec<Poll<Item>>) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin {
        let mut script = Script::from(script);
        futures_util::stream::poll_fn(move |_| script.pop_front().unwrap_or(Poll::Ready(None)))
    }

    fn ready(text: &str) -> Poll<Item> {
        Poll::Ready(Some(Ok(Bytes::from(text.to_string()))))
    }

    /// Gathers as the response's start is (awaited, with the turns), bounded in time.
    async fn gather<S>(coalescer: &mut Coalescer, stream: &mut S)
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let gathered = std::future::poll_fn(|cx| coalescer.poll_gather(stream, cx, UPSTREAM_TURNS));
        tokio::time::timeout(Duration::from_secs(5), gathered)
            .await
            .expect("never waits for the network");
    }

    /// The next frame as the body's first one is taken: without giving turns.
    fn next<S>(coalescer: &mut Coalescer, stream: &mut S) -> Poll<Option<String>>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        coalescer
            .poll_next(stream, &mut cx, 0)
            .map(|item| item.map(|chunk| String::from_utf8(chunk.expect("data").to_vec()).unwrap()))
    }

    #[tokio::test]
    async fn gathering_joins_what_comes_within_the_turns_and_no_more() {
        let mut script = vec![ready("a"), ready("b"), Poll::Pending, ready("c")];
        script.extend((0..=UPSTREAM_TURNS).map(|_| Poll::Pending));
        script.extend([Poll::Pending, ready("late")]);
        let mut stream = scripted(script);
        let mut coalescer = Coalescer::default();
        gather(&mut coalescer, &mut stream).await;
        assert_eq!(
            next(&mut coalescer, &mut stream),
            Poll::Ready(Some("abc".into()))
        );
        assert_eq!(
            next(&mut coalescer, &mut stream),
            Poll::Ready(Some("late".into()))
        );
        assert_eq!(next(&mut coalescer, &mut stream), Poll::Ready(None));
    }

    #[tokio::test]
    async fn an_end_met_while_gathering_comes_after_the_data_and_ends_it() {
        let mut stream = scripted(vec![ready("a"), ready("b"), Poll::Ready(None)]);
        let mut coalescer = Coalescer::default();
        gather(&mut coalescer, &mut stream).await;
        assert_eq!(
            next(&mut coalescer, &mut stream),
            Poll::Ready(Some("ab".into()))
        );
        assert_eq!(next(&mut coalescer, &mut stream), Poll::Ready(None));
        // Not polled again after its end (a second item would be taken here).
        let mut stream = scripted(vec![Poll::Ready(None), ready("after the end")]);
        let mut coalescer = Coalescer::default();
        assert_eq!(next(&mut coalescer, &mut stream), Poll::Ready(None));
        assert_eq!(next(&mut coalescer, &mut stream), Poll::Ready(None));
    }

    #[tokio::test]
    async fn an_error_met_while_gathering_comes_after_the_data_and_ends_it() {
        let cut = Poll::Ready(Some(Err(std::io::Error::other("cut"))));
        let mut stream = scripted(vec![ready("a"), ready("b"), cut, ready("never")]);
        let mut coalescer = Coalescer::default();
        gather(&mut coalescer, &mut stream).await;
        assert_eq!(
            next(&mut coalescer, &mut stream),
            Poll::Ready(Some("ab".into()))
        );
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let error = coalescer.poll_next(&mut stream, &mut cx, 0);
        assert!(
            matches!(error, Poll::Ready(Some(Err(_)))),
            "the error, after the data"
        );
        assert_eq!(next(&mut coalescer, &mut stream), Poll::Ready(None));
    }

    #[tokio::test]
    async fn a_trickle_of_tiny_chunks_cannot_hold_a_frame_back_for_long() {
        let trickle = (0..CHUNKS_MAX as usize + 10).flat_map(|_| [Poll::Pending, ready("x")]);
        let mut stream = scripted(std::iter::once(ready("a")).chain(trickle).collect());
        let mut coalescer = Coalescer::default();
        gather(&mut coalescer, &mut stream).await;
        let Poll::Ready(Some(frame)) = next(&mut coalescer, &mut stream) else {
            panic!("a frame");
        };
        assert_eq!(frame.len(), CHUNKS_MAX as usize);
    }

    #[test]
    fn with_nothing_ready_gathering_is_done_at_once_and_taking_waits_for_the_stream() {
        let wakes = Arc::new(WakeCount::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut stream = futures_util::stream::poll_fn(|_| Poll::<Item>::Pending);
        let mut coalescer = Coalescer::default();
        let gathered = coalescer.poll_gather(&mut stream, &mut cx, UPSTREAM_TURNS);
        assert!(
            gathered.is_ready(),
            "nothing to join: the head need not wait"
        );
        assert!(!coalescer.has_gathered());
        let taken = coalescer.poll_next(&mut stream, &mut cx, UPSTREAM_TURNS);
        assert!(taken.is_pending(), "the stream's own pending");
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            0,
            "no turn given for nothing"
        );
    }

    #[derive(Default)]
    struct WakeCount(AtomicUsize);

    impl std::task::Wake for WakeCount {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}
