//! Joining upstream chunks that are already available into one frame.
//!
//! A relay's reply often arrives in one read yet decodes into one chunk per event, and hyper's
//! client connection task hands those over one at a time, one per scheduler turn. Passing them
//! on one by one would cost the client a write (a packet, a wake-up) per event. So with
//! something in hand the [`Coalescer`] gives the upstream connection [`UPSTREAM_TURNS`] turns
//! to hand over what it already holds, and sends what it has when they bring nothing: it never
//! waits for the network.

use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

/// Chunks already available are joined up to this size before they are passed on.
pub const COALESCE_MAX: usize = 64 * 1024;

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
            return Poll::Ready(item);
        }
        while self.gathered.len() < COALESCE_MAX {
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

    /// What is left after the gathered chunks went out: the stashed end or error, else `stream`.
    pub fn rest<S>(self, stream: S) -> Rest<S> {
        debug_assert!(self.gathered.is_empty(), "gathered chunks would be lost");
        match self.stashed {
            Some(item) => Rest::Stashed(item),
            None => Rest::Stream(stream),
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
        let first = self.first.take();
        self.joined.take().map(BytesMut::freeze).or(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    type Script = std::collections::VecDeque<Poll<Item>>;

    /// A stream that plays `script`: a `Pending` step wakes its task, as hyper's connection
    /// task does once it has a chunk to hand over.
    fn scripted(script: Vec<Poll<Item>>) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin {
        let mut script = Script::from(script);
        futures_util::stream::poll_fn(move |cx| match script.pop_front() {
            Some(Poll::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(ready) => ready,
            None => Poll::Ready(None),
        })
    }

    fn ready(text: &str) -> Poll<Item> {
        Poll::Ready(Some(Ok(Bytes::from(text.to_string()))))
    }

    #[tokio::test]
    async fn awaiting_it_joins_what_comes_within_the_turns_and_keeps_the_end() {
        let mut script = vec![ready("b"), Poll::Pending, ready("c")];
        script.extend((0..=UPSTREAM_TURNS).map(|_| Poll::Pending));
        script.push(ready("late"));
        let mut stream = scripted(script);
        let mut coalescer = Coalescer::holding(Bytes::from_static(b"a"));
        let first =
            std::future::poll_fn(|cx| coalescer.poll_next(&mut stream, cx, UPSTREAM_TURNS)).await;
        assert_eq!(first.unwrap().unwrap(), "abc");
        // The stream had more after the turns ran out: it is passed on untouched.
        let rest: Vec<_> = coalescer.rest(stream).map(Result::unwrap).collect().await;
        assert_eq!(rest, ["late"]);
    }

    #[tokio::test]
    async fn an_end_or_error_met_while_gathering_comes_after_the_data() {
        let mut stream = scripted(vec![ready("b"), Poll::Ready(None)]);
        let mut coalescer = Coalescer::holding(Bytes::from_static(b"a"));
        let first =
            std::future::poll_fn(|cx| coalescer.poll_next(&mut stream, cx, UPSTREAM_TURNS)).await;
        assert_eq!(first.unwrap().unwrap(), "ab");
        assert_eq!(coalescer.rest(stream).count().await, 0, "the end, once");

        let cut = Poll::Ready(Some(Err(std::io::Error::other("cut"))));
        let mut stream = scripted(vec![ready("b"), cut, ready("never")]);
        let mut coalescer = Coalescer::holding(Bytes::from_static(b"a"));
        let first =
            std::future::poll_fn(|cx| coalescer.poll_next(&mut stream, cx, UPSTREAM_TURNS)).await;
        assert_eq!(first.unwrap().unwrap(), "ab");
        let rest: Vec<_> = coalescer.rest(stream).collect().await;
        assert_eq!(rest.len(), 1, "the error ends it");
        assert!(rest[0].is_err());
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
