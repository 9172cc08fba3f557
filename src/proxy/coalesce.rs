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
    /// A coalescer that already holds `bytes` (the start of a stream read elsewhere).
    pub fn holding(bytes: Bytes) -> Self {
        let mut coalescer = Self::default();
        if !bytes.is_empty() {
            coalescer.gathered.push(bytes);
        }
        coalescer
    }

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
        if let Some(item) = self.stashed.take() {
            self.ended = true;
            return Poll::Ready(item);
        }
        while self.gathered.len() < COALESCE_MAX && self.gathered.chunks < CHUNKS_MAX {
            match std::pin::Pin::new(&mut *stream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.gathered.push(chunk),
                Poll::Pending if self.gathered.is_empty() => return Poll::Pending,
                Poll::Pending if self.gathered.turns_given < turns => {
                    self.gathered.turns_given += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => break,
                Poll::Ready(end_or_error) if self.gathered.is_empty() => {
                    self.ended = true;
                    return Poll::Ready(end_or_error);
                }
                Poll::Ready(end_or_error) => {
                    self.stashed = Some(end_or_error);
                    break;
                }
            }
        }
        Poll::Ready(self.gathered.take().map(Ok))
    }

    /// What is left of `stream` after what this coalescer handed out: the stashed end or
    /// error, nothing once the end went out, else the stream itself.
    pub fn rest<S>(self, stream: S) -> Rest<S> {
        debug_assert!(self.gathered.is_empty(), "gathered chunks would be lost");
        match (self.stashed, self.ended) {
            (Some(item), _) => Rest::Stashed(item),
            (None, true) => Rest::Stashed(None),
            (None, false) => Rest::Stream(stream),
        }
    }
}

/// A stream after what a [`Coalescer`] took from it.
pub enum Rest<S> {
    Stream(S),
    /// The stream's end (`None`) or error, met while gathering.
    Stashed(Item),
}

impl<S> Stream for Rest<S>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Item> {
        match self.get_mut() {
            Rest::Stream(stream) => std::pin::Pin::new(stream).poll_next(cx),
            Rest::Stashed(item) => Poll::Ready(item.take()),
        }
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
    use std::time::Duration;

    use super::*;
    use futures_util::StreamExt;

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

    /// The first frame of `stream` after `held`, as the held start awaits it.
    async fn first_frame<S>(coalescer: &mut Coalescer, stream: &mut S) -> Bytes
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        let frame = std::future::poll_fn(|cx| coalescer.poll_next(stream, cx, UPSTREAM_TURNS));
        let frame = tokio::time::timeout(Duration::from_secs(5), frame).await;
        frame
            .expect("no hang")
            .expect("data")
            .expect("not an error")
    }

    #[tokio::test]
    async fn awaiting_it_joins_what_comes_within_the_turns_and_keeps_the_end() {
        let mut script = vec![ready("b"), Poll::Pending, ready("c")];
        script.extend((0..=UPSTREAM_TURNS).map(|_| Poll::Pending));
        script.push(ready("late"));
        let mut stream = scripted(script);
        let mut coalescer = Coalescer::holding(Bytes::from_static(b"a"));
        assert_eq!(first_frame(&mut coalescer, &mut stream).await, "abc");
        // The stream had more after the turns ran out: it is passed on untouched.
        let rest: Vec<_> = coalescer.rest(stream).map(Result::unwrap).collect().await;
        assert_eq!(rest, ["late"]);
    }

    #[tokio::test]
    async fn an_end_or_error_met_while_gathering_comes_after_the_data() {
        let mut stream = scripted(vec![ready("b"), Poll::Ready(None)]);
        let mut coalescer = Coalescer::holding(Bytes::from_static(b"a"));
        assert_eq!(first_frame(&mut coalescer, &mut stream).await, "ab");
        assert_eq!(coalescer.rest(stream).count().await, 0, "the end, once");

        let cut = Poll::Ready(Some(Err(std::io::Error::other("cut"))));
        let mut stream = scripted(vec![ready("b"), cut, ready("never")]);
        let mut coalescer = Coalescer::holding(Bytes::from_static(b"a"));
        assert_eq!(first_frame(&mut coalescer, &mut stream).await, "ab");
        let rest: Vec<_> = coalescer.rest(stream).collect().await;
        assert_eq!(rest.len(), 1, "the error ends it");
        assert!(rest[0].is_err());
    }

    #[tokio::test]
    async fn a_trickle_of_tiny_chunks_cannot_hold_a_frame_back_for_long() {
        let script = (0..CHUNKS_MAX as usize + 10).flat_map(|_| [Poll::Pending, ready("x")]);
        let mut stream = scripted(script.collect());
        let mut coalescer = Coalescer::holding(Bytes::from_static(b"a"));
        let frame = first_frame(&mut coalescer, &mut stream).await;
        assert_eq!(
            frame.len(),
            CHUNKS_MAX as usize,
            "the start and 255 more chunks"
        );
    }

    #[test]
    fn after_the_end_went_out_the_rest_is_empty_and_the_stream_not_polled_again() {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut polls = 0;
        let mut stream = futures_util::stream::poll_fn(|_| {
            polls += 1;
            assert_eq!(polls, 1, "polled after its end");
            Poll::<Item>::Ready(None)
        });
        let mut coalescer = Coalescer::default();
        let end = coalescer.poll_next(&mut stream, &mut cx, UPSTREAM_TURNS);
        assert!(matches!(end, Poll::Ready(None)));
        let mut rest = coalescer.rest(stream);
        assert!(matches!(rest.poll_next_unpin(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn holding_nothing_is_the_streams_own_poll() {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut stream = futures_util::stream::poll_fn(|_| Poll::<Item>::Pending);
        let mut coalescer = Coalescer::holding(Bytes::new());
        assert!(!coalescer.has_gathered());
        assert!(
            coalescer
                .poll_next(&mut stream, &mut cx, UPSTREAM_TURNS)
                .is_pending()
        );
    }
}
