//! permessage-deflate (RFC 7692) as a layer beneath tungstenite, which has no extension hook
//! and refuses any frame with RSV1 set.
//!
//! [`Deflated`] wraps one side's socket. Reading, it finds the frames in the bytes that arrive;
//! a compressed message (RSV1 on its first frame) is gathered across its fragments, inflated,
//! and handed up as one plain frame, masked again with the peer's key so that a server-side
//! tungstenite still sees a client's masked frame. Writing, it finds the frames tungstenite
//! writes and compresses each data message into one frame with RSV1 set. Control frames and
//! uncompressed messages pass as they are, and anything malformed is passed on for
//! tungstenite to refuse.
//!
//! Inflation is bounded by the connection's largest message, checked as it inflates, so a
//! small frame cannot grow into an allocation past it; and one message is inflated at a time,
//! so many small compressed messages in one read cannot grow into many such allocations.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{self, CONTINUATION, Header};
use super::negotiate::Deflate;

/// The empty stored block a sync flush ends with: dropped from every message sent, put back
/// on every message received (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Compressed bytes waiting for the socket past which writes wait for it.
const WRITE_HIGH_WATER: usize = 256 * 1024;

/// A socket speaking permessage-deflate underneath, plain frames above.
pub struct Deflated<S> {
    io: S,
    inbound: Inbound,
    outbound: Outbound,
}

impl<S> Deflated<S> {
    /// `max_message`: the largest message, compressed or not, either way.
    pub fn new(io: S, agreed: Deflate, max_message: usize) -> Self {
        Deflated {
            io,
            inbound: Inbound {
                raw: BytesMut::new(),
                ready: BytesMut::new(),
                message: None,
                plain_open: false,
                inflater: Inflater::new(agreed.reset_decompressor),
                max_message,
                eof: false,
            },
            outbound: Outbound {
                pending: BytesMut::new(),
                out: BytesMut::new(),
                message: None,
                deflater: Deflater::new(agreed.reset_compressor),
                max_message,
            },
        }
    }
}

/// A data message being gathered across its frames, its payload in the clear.
struct Assembly {
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

/// The read side: wire bytes in, plain frames out.
struct Inbound {
    /// Bytes read from the socket and not yet a whole frame.
    raw: BytesMut,
    /// Plain frames for tungstenite.
    ready: BytesMut,
    /// A compressed message still waiting for its last frame.
    message: Option<Assembly>,
    /// An uncompressed message is between its first and last frame.
    plain_open: bool,
    inflater: Inflater,
    max_message: usize,
    eof: bool,
}

impl Inbound {
    /// Moves whole frames from `raw` to `ready`, inflating compressed messages, up to and
    /// including the first message inflated: one read can hold many small compressed messages,
    /// and inflating them all at once would hold every one at its full size. The rest wait in
    /// `raw`, compressed, until `ready` has gone up.
    fn process(&mut self) -> io::Result<()> {
        while let Some(header) = Header::read(&self.raw) {
            let total = frame_len(&header, self.max_message)?;
            if self.raw.len() < total {
                self.raw.reserve(total - self.raw.len());
                return Ok(());
            }
            let wire = self.raw.split_to(total);
            let payload = &wire[header.len..];
            let clean = !header.rsv23 && !header.is_control();
            let starts = clean
                && header.rsv1
                && header.opcode != CONTINUATION
                && self.message.is_none()
                && !self.plain_open;
            let continues = clean && !header.rsv1 && header.opcode == CONTINUATION;
            if starts || (continues && self.message.is_some()) {
                let message = self.message.get_or_insert_with(|| Assembly {
                    opcode: header.opcode,
                    mask: header.mask,
                    payload: Vec::with_capacity(payload.len()),
                });
                if message.payload.len() + payload.len() > self.max_message {
                    return Err(too_big("a compressed message"));
                }
                let start = message.payload.len();
                message.payload.extend_from_slice(payload);
                if let Some(key) = header.mask {
                    frame::unmask(&mut message.payload[start..], key, 0);
                }
                if header.fin {
                    let message = self.message.take().expect("the message being gathered");
                    let plain = self.inflater.inflate(&message.payload, self.max_message)?;
                    frame::write(&mut self.ready, message.opcode, false, message.mask, &plain);
                    return Ok(());
                }
                continue;
            }
            if clean {
                self.plain_open = !header.fin;
            }
            self.ready.extend_from_slice(&wire);
        }
        Ok(())
    }
}

/// The write side: tungstenite's plain frames in, wire bytes out.
struct Outbound {
    /// Bytes tungstenite wrote and not yet a whole frame.
    pending: BytesMut,
    /// Bytes for the socket.
    out: BytesMut,
    /// A message tungstenite wrote in fragments, waiting for its last.
    message: Option<Assembly>,
    deflater: Deflater,
    max_message: usize,
}

impl Outbound {
    /// Moves every whole frame in `pending` to `out`, compressing data messages.
    fn process(&mut self) -> io::Result<()> {
        while let Some(header) = Header::read(&self.pending) {
            let total = frame_len(&header, self.max_message)?;
            if self.pending.len() < total {
                return Ok(());
            }
            let wire = self.pending.split_to(total);
            let data = !header.is_control() && !header.rsv1 && !header.rsv23;
            // A continuation with nothing to continue, or a new message inside one: a protocol
            // error for the peer to report, passed on as it is.
            let fits = !matches!(
                (&self.message, header.opcode),
                (None, CONTINUATION) | (Some(_), 0x1..)
            );
            if !(data && fits) {
                self.out.extend_from_slice(&wire);
                continue;
            }
            let mut payload = wire[header.len..].to_vec();
            if let Some(key) = header.mask {
                frame::unmask(&mut payload, key, 0);
            }
            let mut message = match self.message.take() {
                Some(mut message) => {
                    if message.payload.len() + payload.len() > self.max_message {
                        return Err(too_big("a message to send"));
                    }
                    message.payload.extend_from_slice(&payload);
                    message
                }
                None => Assembly {
                    opcode: header.opcode,
                    mask: header.mask,
                    payload,
                },
            };
            if header.fin {
                let compressed = self.deflater.deflate(&message.payload)?;
                frame::write(
                    &mut self.out,
                    message.opcode,
                    true,
                    message.mask,
                    &compressed,
                );
            } else {
                message.payload.shrink_to_fit();
                self.message = Some(message);
            }
        }
        Ok(())
    }
}

/// A frame's whole length on the wire, refused past the largest message.
fn frame_len(header: &Header, max_message: usize) -> io::Result<usize> {
    usize::try_from(header.payload_len)
        .ok()
        .filter(|len| *len <= max_message)
        .map(|len| header.len + len)
        .ok_or_else(|| too_big("a frame"))
}

fn too_big(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what} is larger than the WebSocket message limit"),
    )
}

fn corrupt(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a compressed WebSocket message does not inflate: {error}"),
    )
}

struct Inflater {
    z: Decompress,
    reset: bool,
}

impl Inflater {
    fn new(reset: bool) -> Self {
        Inflater {
            z: Decompress::new(false),
            reset,
        }
    }

    /// One message's payload, inflated; an error past `limit` bytes.
    fn inflate(&mut self, data: &[u8], limit: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len().saturating_mul(3).clamp(64, limit + 1));
        'input: for input in [data, &TAIL[..]] {
            let mut offset = 0;
            loop {
                if out.len() == out.capacity() {
                    if out.len() > limit {
                        return Err(too_big("an inflated message"));
                    }
                    out.reserve_exact(out.capacity().min(limit + 1 - out.len()).max(1));
                }
                let (before_in, before_out) = (self.z.total_in(), self.z.total_out());
                let status = self
                    .z
                    .decompress_vec(&input[offset..], &mut out, FlushDecompress::Sync)
                    .map_err(corrupt)?;
                offset += (self.z.total_in() - before_in) as usize;
                if status == Status::StreamEnd {
                    // The peer closed its stream (a final block): the next message starts
                    // a new one, and what follows this block in the message is padding.
                    self.z.reset(false);
                    break 'input;
                }
                let stuck = self.z.total_in() == before_in && self.z.total_out() == before_out;
                if offset == input.len() && out.len() < out.capacity() {
                    break;
                }
                if stuck && out.len() < out.capacity() {
                    return Err(corrupt("it stops short"));
                }
            }
        }
        if out.len() > limit {
            return Err(too_big("an inflated message"));
        }
        if self.reset {
            self.z.reset(false);
        }
        Ok(out)
    }
}

struct Deflater {
    z: Compress,
    reset: bool,
}

impl Deflater {
    fn new(reset: bool) -> Self {
        Deflater {
            // Level 1: most of the gain on JSON for a fraction of the time of the default.
            z: Compress::new(Compression::fast(), false),
            reset,
        }
    }

    /// One message, compressed and sync-flushed, without the flush's empty block.
    fn deflate(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut offset = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let before = self.z.total_in();
            self.z
                .compress_vec(&data[offset..], &mut out, FlushCompress::Sync)
                .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
            offset += (self.z.total_in() - before) as usize;
            if offset == data.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.reset {
            self.z.reset();
        }
        Ok(out)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Deflated<S> {
    /// Writes `out` to the socket until it is empty.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outbound.out.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outbound.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outbound.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Deflated<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inbound = &mut this.inbound;
        loop {
            if !inbound.ready.is_empty() {
                let n = buf.remaining().min(inbound.ready.len());
                buf.put_slice(&inbound.ready.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if inbound.eof {
                return Poll::Ready(Ok(()));
            }
            // Whole frames already read go up before more is read.
            inbound.process()?;
            if !inbound.ready.is_empty() {
                continue;
            }
            inbound.raw.reserve(READ_CHUNK);
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.io),
                cx,
                &mut inbound.raw
            ))?;
            if n == 0 {
                // A frame cut short goes up as it is, for tungstenite to report.
                inbound.eof = true;
                let rest = inbound.raw.split();
                inbound.ready.extend_from_slice(&rest);
                continue;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Deflated<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outbound.out.len() >= WRITE_HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.outbound.pending.extend_from_slice(buf);
        this.outbound.process()?;
        // Start sending now; what the socket cannot take yet goes with the next flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::websocket::frame::{BINARY, TEXT};

    const LIMIT: usize = 1 << 20;

    fn inbound(agreed: Deflate) -> Inbound {
        Deflated::new((), agreed, LIMIT).inbound
    }

    fn outbound(agreed: Deflate) -> Outbound {
        Deflated::new((), agreed, LIMIT).outbound
    }

    /// What goes up from `wire`, processed as `poll_read` does: until nothing more is ready.
    fn receive(side: &mut Inbound, wire: &[u8]) -> Vec<u8> {
        side.raw.extend_from_slice(wire);
        let mut up = Vec::new();
        loop {
            side.process().unwrap();
            if side.ready.is_empty() {
                return up;
            }
            up.extend_from_slice(&side.ready.split());
        }
    }

    #[test]
    fn one_compressed_message_is_inflated_at_a_time() {
        let mut side = inbound(Deflate::default());
        let wire = [&HELLO[..], &PLAIN_HELLO, &HELLO, &HELLO].concat();
        side.raw.extend_from_slice(&wire);
        side.process().unwrap();
        assert_eq!(&side.ready[..], PLAIN_HELLO);
        assert_eq!(
            &side.raw[..],
            &wire[HELLO.len()..],
            "the rest waits, compressed"
        );
        side.ready.clear();
        side.process().unwrap();
        // A plain frame goes up with the compressed message after it.
        assert_eq!(&side.ready[..], [PLAIN_HELLO, PLAIN_HELLO].concat());
        side.ready.clear();
        assert_eq!(receive(&mut side, &[]), PLAIN_HELLO);
        assert!(side.raw.is_empty());
    }

    // RFC 7692 §7.2.3.1: "Hello" compressed, in one unmasked frame.
    const HELLO: [u8; 9] = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    const PLAIN_HELLO: [u8; 7] = [0x81, 0x05, b'H', b'e', b'l', b'l', b'o'];

    #[test]
    fn the_rfc_examples_inflate() {
        let mut side = inbound(Deflate::default());
        assert_eq!(receive(&mut side, &HELLO), PLAIN_HELLO);
        // §7.2.3.2: the same message again, now referring to the first (context takeover).
        assert_eq!(
            receive(&mut side, &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]),
            PLAIN_HELLO
        );
        // §7.2.3.1, fragmented: the compressed bytes split over two frames.
        let mut side = inbound(Deflate::default());
        let first = [0x41, 0x03, 0xf2, 0x48, 0xcd];
        assert_eq!(receive(&mut side, &first), b"");
        assert_eq!(
            receive(&mut side, &[0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]),
            PLAIN_HELLO
        );
        // §7.2.3.3: a stored (uncompressed) block.
        let stored = [
            0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00,
        ];
        assert_eq!(
            receive(&mut inbound(Deflate::default()), &stored),
            PLAIN_HELLO
        );
        // §7.2.3.4: a block with BFINAL set, then padding; the next message starts afresh.
        let mut side = inbound(Deflate::default());
        let last = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(receive(&mut side, &last), PLAIN_HELLO);
        assert_eq!(receive(&mut side, &HELLO), PLAIN_HELLO);
    }

    #[test]
    fn frames_arrive_in_any_pieces_and_control_frames_pass_between_fragments() {
        let mut side = inbound(Deflate::default());
        let ping = [0x89, 0x02, b'h', b'i'];
        let mut wire = vec![0x41, 0x03, 0xf2, 0x48, 0xcd];
        wire.extend_from_slice(&ping);
        wire.extend_from_slice(&[0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]);
        wire.extend_from_slice(&PLAIN_HELLO); // an uncompressed message is allowed too
        let mut got = Vec::new();
        for byte in &wire {
            got.extend(receive(&mut side, std::slice::from_ref(byte)));
        }
        let mut want = ping.to_vec();
        want.extend_from_slice(&PLAIN_HELLO);
        want.extend_from_slice(&PLAIN_HELLO);
        assert_eq!(got, want);
    }

    #[test]
    fn a_client_frame_is_masked_again_with_its_own_key() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut payload = HELLO[2..].to_vec();
        frame::unmask(&mut payload, key, 0);
        let mut wire = vec![0xc1, 0x87];
        wire.extend_from_slice(&key);
        wire.extend_from_slice(&payload);
        // RFC 6455 §5.7: the masked "Hello".
        let want = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(receive(&mut inbound(Deflate::default()), &wire), want);
    }

    #[test]
    fn what_is_sent_is_compressed_and_inflates_back() {
        for agreed in [
            Deflate::default(),
            Deflate {
                reset_compressor: true,
                reset_decompressor: true,
            },
        ] {
            let mut sender = outbound(agreed);
            let mut receiver = inbound(agreed);
            let event = br#"{"type":"response.output_text.delta","delta":"hello hello hello"}"#;
            for mask in [None, Some([9, 8, 7, 6])] {
                for _ in 0..3 {
                    let mut plain = BytesMut::new();
                    frame::write(&mut plain, TEXT, false, mask, event);
                    sender.pending.extend_from_slice(&plain);
                    sender.process().unwrap();
                    let wire = sender.out.split();
                    let header = Header::read(&wire).unwrap();
                    assert!(header.rsv1 && header.fin, "compressed, in one frame");
                    assert_eq!(header.mask, mask);
                    assert!(wire.len() < plain.len(), "{} < {}", wire.len(), plain.len());
                    assert_eq!(receive(&mut receiver, &wire), plain.to_vec());
                }
            }
        }
    }

    #[test]
    fn fragments_written_are_sent_as_one_message_and_control_frames_pass() {
        let mut sender = outbound(Deflate::default());
        let mut plain = BytesMut::new();
        plain.extend_from_slice(&[0x02, 0x03, 1, 2, 3]); // binary, not final
        plain.extend_from_slice(&[0x8a, 0x00]); // a pong in between
        plain.extend_from_slice(&[0x80, 0x02, 4, 5]); // the last fragment
        sender.pending.extend_from_slice(&plain);
        sender.process().unwrap();
        let wire = sender.out.split();
        assert_eq!(&wire[..2], &[0x8a, 0x00], "the pong goes first, untouched");
        let mut want = BytesMut::new();
        frame::write(&mut want, BINARY, false, None, &[1, 2, 3, 4, 5]);
        assert_eq!(
            receive(&mut inbound(Deflate::default()), &wire[2..]),
            want.to_vec()
        );
    }

    #[test]
    fn an_inflation_past_the_limit_is_refused() {
        let mut sender = outbound(Deflate::default());
        let mut plain = BytesMut::new();
        frame::write(&mut plain, BINARY, false, None, &vec![0u8; LIMIT]);
        sender.pending.extend_from_slice(&plain);
        sender.process().unwrap();
        let wire = sender.out.split();
        assert!(
            wire.len() < LIMIT / 100,
            "a megabyte of zeros is {} bytes compressed",
            wire.len()
        );
        // The same bytes against a limit one byte smaller.
        let mut side = Deflated::new((), Deflate::default(), LIMIT - 1).inbound;
        side.raw.extend_from_slice(&wire);
        let error = side.process().unwrap_err();
        assert!(error.to_string().contains("larger than"), "{error}");
    }

    #[test]
    fn malformed_input_is_an_error_or_left_to_tungstenite() {
        // Compressed bytes that are not deflate.
        let mut side = inbound(Deflate::default());
        side.raw.extend_from_slice(&[0xc1, 0x03, 0xff, 0xff, 0xff]);
        assert!(side.process().is_err());
        // RSV1 on a control frame, and RSV2: passed on unchanged for tungstenite to refuse.
        for wire in [[0xc9, 0x00], [0xa1, 0x00]] {
            assert_eq!(receive(&mut inbound(Deflate::default()), &wire), wire);
        }
        // A frame declaring more than the limit is refused from its header.
        let mut side = inbound(Deflate::default());
        side.raw
            .extend_from_slice(&[0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(side.process().is_err());
    }
}
