//! `write_stall_timeout_ms` where a relay's socket cannot show it.
//!
//! A direct HTTP/1 relay's socket is a [`super::write_stall::WriteStall`], whose writes fail
//! once the relay stops reading. Two cases get past it: an HTTP/2 relay that stops granting
//! flow-control window (its socket stays writable; the body just waits), and a relay reached
//! through an outbound proxy, whose connection belongs to reqwest, which offers no hook on its
//! IO. What their HTTP layers do show is when they ask for more of the request body, so a body
//! longer than one slice goes out in slices ([`WatchedBody`]), each ask is noted, and
//! [`BodyWatch::stalled`] ends when the relay has gone `limit` without one before the body is
//! all asked for.
//!
//! How closely asks follow the relay's reading depends on the protocol. HTTP/2 asks for a
//! slice, then waits for window before the next: asks follow what the relay grants. HTTP/1
//! queues up to about 400 KiB and asks again only once all of it is written, so on HTTP/1
//! (which a direct relay's socket covers, and which is what most relays through a proxy
//! speak) a relay that reads less than that within `limit` counts as stalled: at the 60 s
//! default, one slower than about 7 KiB/s. A body of one slice or less is not watched: the
//! buffers take it whole, and the response header timeout bounds the wait.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

/// The most handed over at a time: a few of these fill the HTTP layer's queue.
const SLICE: usize = 64 << 10;

/// A request body handed over a slice at a time, noting each ask when it is watched. Its
/// exact length is known, so it is sent with `Content-Length`, as the whole body would be.
pub struct WatchedBody {
    rest: Bytes,
    watch: Option<Arc<Asked>>,
}

/// What the relay's side has asked for of the body so far.
#[derive(Default)]
struct Asked {
    state: Mutex<Watched>,
}

/// Whether, and when last, the relay's side asked for a slice.
#[derive(Default, Clone, Copy)]
enum Watched {
    /// Not asked for yet: the connection may still be opening, which the connect and header
    /// timeouts bound.
    #[default]
    NotYet,
    Asked(Instant),
    Done,
}

/// The watch on one [`WatchedBody`].
pub struct BodyWatch(Arc<Asked>);

impl WatchedBody {
    /// `body`, and its watch when it is longer than one slice (a shorter one cannot stall).
    pub fn new(body: Bytes) -> (Self, Option<BodyWatch>) {
        let watch = (body.len() > SLICE).then(|| Arc::new(Asked::default()));
        let this = Self {
            rest: body,
            watch: watch.clone(),
        };
        (this, watch.map(BodyWatch))
    }

    /// The body not yet handed over, whole.
    pub fn into_bytes(self) -> Bytes {
        self.rest
    }
}

impl Asked {
    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        let slice = this.rest.split_to(this.rest.len().min(SLICE));
        if let Some(watch) = &this.watch {
            *watch.lock() = if this.rest.is_empty() {
                Watched::Done
            } else {
                Watched::Asked(Instant::now())
            };
        }
        Poll::Ready(Some(Ok(Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

impl BodyWatch {
    /// Ends once `limit` has passed since the last ask with body still to send; never when
    /// the whole body was asked for or none of it yet.
    pub async fn stalled(&self, limit: Duration) {
        loop {
            let wake = match *self.0.lock() {
                Watched::Asked(at) if at.elapsed() >= limit => return,
                Watched::Asked(at) => at + limit,
                // Not begun: look again after a limit (nothing wakes this but time).
                Watched::NotYet => Instant::now() + limit,
                Watched::Done => break,
            };
            tokio::time::sleep_until(wake).await;
        }
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    const LIMIT: Duration = Duration::from_secs(60);

    fn body(len: usize) -> Bytes {
        Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn the_body_goes_out_whole_in_slices_with_its_length() {
        let whole = body(3 * SLICE + 5);
        let (watched, watch) = WatchedBody::new(whole.clone());
        assert!(watch.is_some());
        assert_eq!(watched.size_hint().exact(), Some(whole.len() as u64));
        let mut watched = std::pin::pin!(watched);
        let mut sizes = Vec::new();
        let mut joined = Vec::new();
        while let Some(frame) = watched.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            sizes.push(data.len());
            joined.extend_from_slice(&data);
        }
        assert_eq!(sizes, [SLICE, SLICE, SLICE, 5]);
        assert_eq!(joined, whole);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_not_asked_for_past_the_limit_is_stalled_at_the_limit() {
        let (watched, watch) = WatchedBody::new(body(2 * SLICE));
        let watch = watch.unwrap();
        let mut watched = std::pin::pin!(watched);
        watched.frame().await.unwrap().unwrap();
        let asked = Instant::now();
        watch.stalled(LIMIT).await;
        assert_eq!(asked.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn asks_within_the_limit_keep_it_going() {
        let (watched, watch) = WatchedBody::new(body(4 * SLICE));
        let watch = watch.unwrap();
        let reader = tokio::spawn(async move {
            let mut watched = std::pin::pin!(watched);
            while watched.frame().await.is_some() {
                tokio::time::sleep(LIMIT / 2).await;
            }
        });
        let ended = tokio::time::timeout(LIMIT * 10, watch.stalled(LIMIT)).await;
        assert!(
            ended.is_err(),
            "a reader that keeps asking is never stalled"
        );
        reader.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_never_asked_for_or_all_asked_for_is_not_stalled() {
        let (_watched, not_begun) = WatchedBody::new(body(2 * SLICE));
        let not_begun = not_begun.unwrap();
        assert!(
            tokio::time::timeout(LIMIT * 10, not_begun.stalled(LIMIT))
                .await
                .is_err()
        );
        let (watched, done) = WatchedBody::new(body(SLICE + 1));
        let done = done.unwrap();
        let mut watched = std::pin::pin!(watched);
        watched.frame().await.unwrap().unwrap();
        watched.frame().await.unwrap().unwrap();
        assert!(watched.is_end_stream());
        assert!(
            tokio::time::timeout(LIMIT * 10, done.stalled(LIMIT))
                .await
                .is_err()
        );
    }

    #[test]
    fn a_body_of_one_slice_is_not_watched() {
        assert!(WatchedBody::new(body(SLICE)).1.is_none());
        assert!(WatchedBody::new(Bytes::new()).1.is_none());
        let (whole, _) = WatchedBody::new(body(SLICE));
        assert_eq!(whole.into_bytes(), body(SLICE));
    }
}
