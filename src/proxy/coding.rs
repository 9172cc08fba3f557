//! HTTP content codings (`Content-Encoding`), undone in both directions.
//!
//! Requests: Codex compresses request bodies with zstd for the built-in provider, and other
//! clients may send gzip, br or deflate; many relays only take plain JSON, and the proxy must
//! read the body (model, session) anyway. [`decode`] undoes a whole body, every step capped so
//! a decompression bomb is refused instead of filling memory.
//!
//! Replies: the proxy asks relays for `identity`, but some compress anyway. [`decode_stream`]
//! undoes a reply as it arrives, so the tap can read usage and a broken stream can still be
//! ended with a readable event. It holds a chunk at a time, never a whole reply, and ends a
//! reply that decodes past a cap with an error.
//!
//! What a decoder may hold is bounded too: at most [`MAX_CODINGS`] stacked, and zstd frames
//! whose window is at most 8 MiB.
//!
//! Both directions use the same decoders (async-compression): they resume wherever their input
//! was cut, which streaming needs. A whole body is the same decoders over one chunk held in
//! memory, where every poll is ready, so decoding it is a plain loop on the caller's thread.

use std::io;

use async_compression::tokio::bufread::{
    BrotliDecoder, DeflateDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder,
};
use async_compression::zstd::DParameter as ZstdParameter;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt, TryStreamExt, stream};
use http::HeaderMap;
use http::header::CONTENT_ENCODING;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::io::StreamReader;

use super::relay_body::ChunkStream;

/// Decoded bytes one relay reply may produce at each coding step. Real replies are far
/// smaller; the cap is there so a relay sending a compressed bomb cannot keep the proxy
/// decoding (and the client reading) forever.
pub const REPLY_DECODED_MAX: u64 = 1 << 30;

/// The most a decoder hands on at once.
const CHUNK: usize = 16 * 1024;

/// The largest zstd window accepted, as a power of two (8 MiB): zstd's levels 1 to 19 never
/// need more, and Codex's own frames use 2 MiB. zstd's default (128 MiB) would let a frame of a
/// few bytes make the decoder hold 128 MiB for as long as its stream stays open.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// The most codings one body may list. Real senders use one (a CDN may add a second); a
/// streamed reply nests one decoder per coding, and a list of thousands would overflow the
/// stack polling them.
pub const MAX_CODINGS: usize = 8;

/// Why a request body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(
        "request Content-Encoding \"{0}\" is not supported (supported: zstd, gzip, x-gzip, br, deflate)"
    )]
    Unsupported(String),
    #[error("request body is not valid \"{encoding}\" data: {detail}")]
    Corrupt { encoding: String, detail: String },
    #[error("request body decoded with \"{encoding}\" is larger than the limit of {limit} bytes")]
    TooLarge { encoding: String, limit: usize },
    #[error("request Content-Encoding header is not valid text")]
    BadHeader,
    #[error("request Content-Encoding lists more than {MAX_CODINGS} codings")]
    TooManyCodings,
}

/// A content coding the proxy can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// zlib-wrapped by the spec, but raw deflate is common in the wild; both are read.
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    fn named(name: &str) -> Option<Self> {
        match name {
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "deflate" => Some(Self::Deflate),
            "br" => Some(Self::Brotli),
            "zstd" | "zst" => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// One coding from a `Content-Encoding` list, with the name the sender used (lower-cased),
/// which errors quote so the user recognises what they sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub coding: Coding,
    pub name: String,
}

/// The codings named by every `Content-Encoding` header, in the order they were applied,
/// without `identity`. A coding the proxy cannot undo is an error naming it, and so is a list
/// longer than [`MAX_CODINGS`].
pub fn listed(headers: &HeaderMap) -> Result<Vec<Listed>, DecodeError> {
    let mut codings = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| DecodeError::BadHeader)?;
        for name in text.split(',').map(|e| e.trim().to_ascii_lowercase()) {
            if name.is_empty() || name == "identity" {
                continue;
            }
            let coding =
                Coding::named(&name).ok_or_else(|| DecodeError::Unsupported(name.clone()))?;
            if codings.len() == MAX_CODINGS {
                return Err(DecodeError::TooManyCodings);
            }
            codings.push(Listed { coding, name });
        }
    }
    Ok(codings)
}

/// Undoes `codings` (listed in the order applied, so undone last-first) on a whole body.
/// `limit` caps the size of each decoded step. CPU-bound: callers on the event loop run it on
/// a blocking thread.
pub fn decode(body: Bytes, codings: &[Listed], limit: usize) -> Result<Bytes, DecodeError> {
    let mut data = body;
    for listed in codings.iter().rev() {
        data = decode_one(data, listed, limit)?;
    }
    Ok(data)
}

fn decode_one(data: Bytes, listed: &Listed, limit: usize) -> Result<Bytes, DecodeError> {
    let corrupt = |detail: String| DecodeError::Corrupt {
        encoding: listed.name.clone(),
        detail,
    };
    let decoded = undo(Box::pin(stream::once(async { Ok(data) })), listed.coding);
    let mut out = BytesMut::new();
    // The input is all in memory, so the read never waits: one poll finishes it.
    match read_capped(decoded, &mut out, limit).now_or_never() {
        Some(Ok(())) if out.len() <= limit => Ok(out.freeze()),
        Some(Ok(())) => Err(DecodeError::TooLarge {
            encoding: listed.name.clone(),
            limit,
        }),
        Some(Err(e)) => Err(corrupt(e.to_string())),
        None => Err(corrupt(
            "the decoder waited for input it already had".into(),
        )),
    }
}

/// Undoes `codings` on a streamed body as it arrives. Each step ends the stream with an error
/// once it has decoded more than `cap` bytes, so a bomb in any layer of a stacked list stops.
/// A step's own errors name its coding; errors from before it (the relay's connection, an
/// earlier step) pass through as they were.
pub fn decode_stream(body: ChunkStream, codings: &[Listed], cap: u64) -> ChunkStream {
    codings.iter().rev().fold(body, |input, listed| {
        let name = listed.name.clone();
        let input = Box::pin(input.map_err(|e| io::Error::other(Passed(e))));
        let output = undo(input, listed.coding).map_err(move |e| labelled(e, &name));
        capped(Box::pin(output), listed.name.clone(), cap)
    })
}

/// An error from a decoder's input, carried through the decoder so that it can be told apart
/// from the decoder's own errors and handed on unchanged.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Passed(io::Error);

/// The input's error as it was, or the decoder's own error with the coding named.
fn labelled(e: io::Error, name: &str) -> io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Passed>()) {
        if let Some(Ok(passed)) = e.into_inner().map(|inner| inner.downcast::<Passed>()) {
            return passed.0;
        }
        unreachable!("the error was checked to be a `Passed`");
    }
    io::Error::new(e.kind(), format!("reply is not valid \"{name}\" data: {e}"))
}

/// Appends `stream`'s chunks to `into` until the stream ends or `into` holds more than `max`
/// bytes; the chunk that went over is kept, so `into.len() > max` says the cap was reached.
/// What was read before a failed chunk, or before the caller stopped waiting, stays in `into`.
pub async fn read_capped(
    mut stream: ChunkStream,
    into: &mut BytesMut,
    max: usize,
) -> io::Result<()> {
    while into.len() <= max {
        match stream.next().await {
            Some(chunk) => into.extend_from_slice(&chunk?),
            None => break,
        }
    }
    Ok(())
}

/// Undoes one coding. The first two bytes are awaited before a decoder is chosen: they tell
/// zlib from raw deflate, and a body that ends before any byte is empty, not corrupt.
fn undo(mut input: ChunkStream, coding: Coding) -> ChunkStream {
    let start = async move {
        let mut head = Vec::new();
        let mut seen = 0;
        while seen < 2 {
            match input.next().await {
                Some(Ok(chunk)) => {
                    seen += chunk.len();
                    head.push(chunk);
                }
                Some(Err(e)) => return failed(e),
                None if seen == 0 => return Box::pin(stream::empty()) as ChunkStream,
                None => break,
            }
        }
        let zlib = is_zlib_header(head.iter().flat_map(|c| c.iter().copied()));
        // Fused: it is read again after the decoder saw its end (see `decoded`).
        let reader = StreamReader::new(stream::iter(head.into_iter().map(Ok)).chain(input).fuse());
        match coding {
            Coding::Gzip => {
                let mut decoder = GzipDecoder::new(reader);
                decoder.multiple_members(true);
                decoded(decoder, GzipDecoder::into_inner)
            }
            Coding::Deflate if zlib => decoded(ZlibDecoder::new(reader), ZlibDecoder::into_inner),
            Coding::Deflate => decoded(DeflateDecoder::new(reader), DeflateDecoder::into_inner),
            Coding::Brotli => decoded(BrotliDecoder::new(reader), BrotliDecoder::into_inner),
            Coding::Zstd => {
                let window = [ZstdParameter::window_log_max(ZSTD_WINDOW_LOG_MAX)];
                let mut decoder = ZstdDecoder::with_params(reader, &window);
                decoder.multiple_members(true);
                decoded(decoder, ZstdDecoder::into_inner)
            }
        }
    };
    Box::pin(stream::once(start).flatten())
}

/// A decoder's output, then the rest of its input read to the end. A brotli or deflate
/// decoder stops at the end of its own data; what follows is not data, but an error in it
/// (from the relay, or from the step that produced this one's input) still ends the stream
/// with that error, as it does when the body is decoded whole.
fn decoded<D, S>(decoder: D, input_of: fn(D) -> StreamReader<S, Bytes>) -> ChunkStream
where
    D: AsyncRead + Unpin + Send + 'static,
    S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
{
    enum Step<D> {
        Decoding(D),
        Done,
    }
    Box::pin(stream::unfold(
        Step::Decoding(decoder),
        move |step| async move {
            let Step::Decoding(mut decoder) = step else {
                return None;
            };
            let mut chunk = BytesMut::with_capacity(CHUNK);
            match decoder.read_buf(&mut chunk).await {
                Ok(0) => {}
                Ok(_) => return Some((Ok(chunk.freeze()), Step::Decoding(decoder))),
                Err(e) => return Some((Err(e), Step::Done)),
            }
            let mut rest = input_of(decoder).into_inner();
            while let Some(item) = rest.next().await {
                if let Err(e) = item {
                    return Some((Err(e), Step::Done));
                }
            }
            None
        },
    ))
}

/// Whether a `deflate` body starts with a zlib header (RFC 1950: method 8, window ≤ 32 KiB,
/// check bits). Raw deflate never does: its first byte would have to be a stored block with
/// non-zero padding bits, which no encoder writes.
fn is_zlib_header(mut head: impl Iterator<Item = u8>) -> bool {
    let (Some(cmf), Some(flg)) = (head.next(), head.next()) else {
        return false;
    };
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

/// Passes `stream` on until it has yielded more than `cap` bytes; then one error, then the end.
fn capped(stream: ChunkStream, name: String, cap: u64) -> ChunkStream {
    Box::pin(stream.scan(0u64, move |total, item| {
        if *total > cap {
            return std::future::ready(None);
        }
        let item = item.and_then(|chunk| {
            *total += chunk.len() as u64;
            if *total > cap {
                return Err(io::Error::other(format!(
                    "reply decoded with \"{name}\" is larger than the limit of {cap} bytes"
                )));
            }
            Ok(chunk)
        });
        std::future::ready(Some(item))
    }))
}

fn failed(e: io::Error) -> ChunkStream {
    Box::pin(stream::once(std::future::ready(Err(e))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    const BODY: &[u8] = br#"{"model":"gpt-5","input":[{"type":"message","content":"hi"}]}"#;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::CompressorWriter::new(&mut out, 4096, 5, 22)
            .write_all(data)
            .unwrap();
        out
    }

    fn zstd_no_size(data: &[u8]) -> Vec<u8> {
        // A streaming encoder writes frames without a content size, as Codex does.
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, value.parse().unwrap());
        h
    }

    fn list(value: &str) -> Vec<Listed> {
        listed(&headers(value)).unwrap()
    }

    /// `data` as a stream of `size`-byte chunks.
    fn chunks(data: &[u8], size: usize) -> ChunkStream {
        let parts: Vec<io::Result<Bytes>> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(stream::iter(parts))
    }

    /// Everything a stream yields (it never waits: its input is in memory), and its error.
    fn drain(mut stream: ChunkStream) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        loop {
            match stream
                .next()
                .now_or_never()
                .expect("an in-memory stream never waits")
            {
                Some(Ok(chunk)) => out.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    let end = stream.next().now_or_never().expect("never waits");
                    assert!(end.is_none(), "the stream ends after its error");
                    return (out, Some(e));
                }
                None => return (out, None),
            }
        }
    }

    /// Each coding, as a header names it and as a sender encodes it.
    fn cases() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("zstd", zstd_no_size(BODY)),
            ("zst", zstd_no_size(BODY)),
            ("gzip", gzip(BODY)),
            ("x-gzip", gzip(BODY)),
            ("br", brotli(BODY)),
            ("deflate", zlib(BODY)),
            ("deflate", raw_deflate(BODY)),
            ("gzip, zstd", zstd_no_size(&gzip(BODY))),
            ("deflate, br", brotli(&raw_deflate(BODY))),
            ("br,identity, deflate", zlib(&brotli(BODY))),
        ]
    }

    #[test]
    fn each_coding_decodes_whole() {
        for (name, encoded) in cases() {
            let decoded = decode(Bytes::from(encoded), &list(name), 1 << 20).unwrap();
            assert_eq!(decoded, BODY, "{name}");
        }
    }

    #[test]
    fn each_coding_decodes_streamed_however_the_input_is_cut() {
        for (name, encoded) in cases() {
            for size in [1, 2, 3, 7, 64, encoded.len()] {
                let stream = decode_stream(chunks(&encoded, size), &list(name), 1 << 20);
                let (out, error) = drain(stream);
                assert!(error.is_none(), "{name} in {size}-byte chunks: {error:?}");
                assert_eq!(out, BODY, "{name} in {size}-byte chunks");
            }
        }
    }

    #[tokio::test]
    async fn a_stream_whose_chunks_arrive_later_decodes() {
        let encoded = gzip(&BODY.repeat(500));
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
        let feed = tokio::spawn(async move {
            for piece in encoded.chunks(100) {
                tx.send(Ok(Bytes::copy_from_slice(piece))).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let input: ChunkStream = Box::pin(tokio_stream_from(rx));
        let decoded = decode_stream(input, &list("gzip"), 1 << 20);
        let mut out = BytesMut::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            read_capped(decoded, &mut out, 1 << 20),
        )
        .await
        .expect("decoded within 10 s")
        .unwrap();
        assert_eq!(out, BODY.repeat(500));
        feed.await.unwrap();
    }

    fn tokio_stream_from(
        rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    ) -> impl futures_util::Stream<Item = io::Result<Bytes>> {
        stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        })
    }

    #[test]
    fn concatenated_members_all_decode() {
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        assert_eq!(
            decode(Bytes::from(two.clone()), &list("gzip"), 1 << 20).unwrap(),
            &b"first second"[..]
        );
        let (out, error) = drain(decode_stream(chunks(&two, 5), &list("gzip"), 1 << 20));
        assert!(error.is_none(), "{error:?}");
        assert_eq!(out, b"first second");

        let mut frames = zstd_no_size(b"one ");
        frames.extend(zstd_no_size(b"two"));
        assert_eq!(
            decode(Bytes::from(frames), &list("zstd"), 1 << 20).unwrap(),
            &b"one two"[..]
        );
    }

    #[test]
    fn header_lists_are_read_in_the_order_applied() {
        assert!(listed(&headers("identity")).unwrap().is_empty());
        assert!(listed(&HeaderMap::new()).unwrap().is_empty());
        let codings: Vec<Coding> = list("GZip, identity,zst , x-gzip,br,deflate")
            .iter()
            .map(|l| l.coding)
            .collect();
        use Coding::*;
        assert_eq!(codings, [Gzip, Zstd, Gzip, Brotli, Deflate]);

        let mut two = headers("gzip");
        two.append(CONTENT_ENCODING, "zstd".parse().unwrap());
        let names: Vec<String> = listed(&two).unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["gzip", "zstd"]);
    }

    #[test]
    fn unknown_codings_and_unreadable_headers_are_named() {
        assert_eq!(
            listed(&headers("gzip, compress")).unwrap_err(),
            DecodeError::Unsupported("compress".into())
        );
        let mut bad = HeaderMap::new();
        bad.insert(
            CONTENT_ENCODING,
            http::HeaderValue::from_bytes(b"gz\xffip").unwrap(),
        );
        assert_eq!(listed(&bad).unwrap_err(), DecodeError::BadHeader);
        // A stack deeper than any sender makes is refused, however it is spread over headers.
        let eight = ["gzip"; MAX_CODINGS].join(", ");
        assert_eq!(list(&eight).len(), MAX_CODINGS);
        let mut nine = headers(&eight);
        nine.append(CONTENT_ENCODING, "identity, br".parse().unwrap());
        assert_eq!(listed(&nine).unwrap_err(), DecodeError::TooManyCodings);
        let thousands = vec!["br"; 2000].join(",");
        assert_eq!(
            listed(&headers(&thousands)).unwrap_err(),
            DecodeError::TooManyCodings
        );
        assert_eq!(
            DecodeError::Unsupported("compress".into()).to_string(),
            "request Content-Encoding \"compress\" is not supported (supported: zstd, gzip, x-gzip, br, deflate)"
        );
    }

    #[test]
    fn corrupt_data_is_an_error_naming_the_coding() {
        for name in ["zstd", "x-gzip", "br", "deflate"] {
            let err = decode(
                Bytes::from_static(b"not compressed at all"),
                &list(name),
                1 << 20,
            )
            .unwrap_err();
            assert!(
                matches!(err, DecodeError::Corrupt { ref encoding, .. } if encoding == name),
                "{name}: {err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("request body is not valid \"{name}\" data: ")),
                "{err}"
            );
            let stream = decode_stream(chunks(b"not compressed at all", 4), &list(name), 1 << 20);
            let error = drain(stream).1.unwrap().to_string();
            assert!(
                error.starts_with(&format!("reply is not valid \"{name}\" data: ")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_reply_cut_short_ends_with_an_error() {
        let encoded = gzip(&BODY.repeat(100));
        let cut = &encoded[..encoded.len() / 2];
        let (_, error) = drain(decode_stream(chunks(cut, 16), &list("gzip"), 1 << 20));
        assert!(error.unwrap().to_string().contains("\"gzip\""));
        assert!(matches!(
            decode(Bytes::copy_from_slice(cut), &list("gzip"), 1 << 20),
            Err(DecodeError::Corrupt { .. })
        ));
    }

    #[test]
    fn input_errors_pass_through_unchanged() {
        let encoded = brotli(&gzip(&BODY.repeat(100)));
        let input: ChunkStream = Box::pin(stream::iter(vec![
            Ok(Bytes::copy_from_slice(&encoded[..encoded.len() / 2])),
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "relay connection reset",
            )),
        ]));
        let (_, error) = drain(decode_stream(input, &list("gzip, br"), 1 << 20));
        let error = error.unwrap();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(error.to_string(), "relay connection reset");

        // An earlier step's error is not labelled again by a later one.
        let corrupt_inner = brotli(b"not gzip");
        let (_, error) = drain(decode_stream(
            chunks(&corrupt_inner, 3),
            &list("gzip, br"),
            1 << 20,
        ));
        let error = error.unwrap().to_string();
        assert!(
            error.starts_with("reply is not valid \"gzip\" data: "),
            "{error}"
        );
        assert!(!error.contains("\"br\""), "{error}");
    }

    /// Found by fuzzing: when an inner coding's data ended before its input did, the
    /// streamed reply ended cleanly while the same body decoded whole was refused, because
    /// the outer step's error after that point was never read.
    #[test]
    fn an_error_after_an_inner_codings_end_is_not_lost() {
        let inner = brotli(BODY);
        let mut outer = raw_deflate(&[inner.as_slice(), b"trailing"].concat());
        outer.truncate(outer.len() - 2);
        let whole = decode(Bytes::from(outer.clone()), &list("br, deflate"), 1 << 20);
        assert!(
            matches!(whole, Err(DecodeError::Corrupt { ref encoding, .. }) if encoding == "deflate")
        );
        for size in [1, 5, outer.len()] {
            let (out, error) = drain(decode_stream(
                chunks(&outer, size),
                &list("br, deflate"),
                1 << 20,
            ));
            assert_eq!(out, BODY, "the inner data is all there");
            let error = error
                .expect("the outer step's error ends the stream")
                .to_string();
            assert!(error.contains("\"deflate\""), "{error}");
        }
        // Data after an inner coding's end is not an error (as whole), and is not passed on.
        let complete = raw_deflate(&[inner.as_slice(), b"trailing"].concat());
        let (out, error) = drain(decode_stream(
            chunks(&complete, 3),
            &list("br, deflate"),
            1 << 20,
        ));
        assert!(error.is_none(), "{error:?}");
        assert_eq!(out, BODY);
        assert_eq!(
            decode(Bytes::from(complete), &list("br, deflate"), 1 << 20).unwrap(),
            BODY
        );
    }

    #[test]
    fn empty_bodies_stay_empty() {
        for name in ["gzip", "deflate", "br", "zstd"] {
            assert_eq!(decode(Bytes::new(), &list(name), 10).unwrap(), "", "{name}");
            assert_eq!(drain(decode_stream(chunks(b"", 1), &list(name), 10)).0, b"");
        }
    }

    /// `data` in a zstd frame that declares a `2^log`-byte window.
    fn zstd_window(data: &[u8], log: u32) -> Vec<u8> {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.window_log(log).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_zstd_window_over_8_mib_is_refused_both_ways() {
        let ok = zstd_window(BODY, ZSTD_WINDOW_LOG_MAX);
        assert_eq!(
            decode(Bytes::from(ok.clone()), &list("zstd"), 1 << 20).unwrap(),
            BODY
        );
        let (out, error) = drain(decode_stream(chunks(&ok, 7), &list("zstd"), 1 << 20));
        assert_eq!((out.as_slice(), error.map(|e| e.to_string())), (BODY, None));

        // A few bytes that would make the decoder hold 16 MiB (128 MiB for zstd's default).
        let big = zstd_window(BODY, ZSTD_WINDOW_LOG_MAX + 1);
        let err = decode(Bytes::from(big.clone()), &list("zstd"), 1 << 20).unwrap_err();
        assert!(
            matches!(err, DecodeError::Corrupt { ref encoding, .. } if encoding == "zstd"),
            "{err}"
        );
        let (out, error) = drain(decode_stream(chunks(&big, 7), &list("zstd"), 1 << 20));
        assert!(out.is_empty());
        assert!(
            error
                .unwrap()
                .to_string()
                .starts_with("reply is not valid \"zstd\" data"),
        );
    }

    #[test]
    fn bombs_are_refused_whole_and_stopped_streamed() {
        let bomb = zstd_no_size(&vec![0u8; 8 << 20]);
        assert!(bomb.len() < 4096);

        let err = decode(Bytes::from(bomb.clone()), &list("zstd"), 1 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "request body decoded with \"zstd\" is larger than the limit of 1048576 bytes"
        );

        // A bomb inside a stacked list is stopped at its own step.
        let wrapped = gzip(&bomb);
        let err = decode(Bytes::from(wrapped.clone()), &list("zstd, gzip"), 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { ref encoding, .. } if encoding == "zstd"));

        let (out, error) = drain(decode_stream(chunks(&bomb, 512), &list("zstd"), 1 << 20));
        assert!(out.len() <= 1 << 20, "{} bytes passed the cap", out.len());
        assert_eq!(
            error.unwrap().to_string(),
            "reply decoded with \"zstd\" is larger than the limit of 1048576 bytes"
        );
        let (_, error) = drain(decode_stream(
            chunks(&wrapped, 512),
            &list("zst, gzip"),
            1 << 20,
        ));
        assert!(error.unwrap().to_string().contains("\"zst\""));
    }

    #[tokio::test]
    async fn read_capped_keeps_what_arrived() {
        let stream = chunks(&[7u8; 100], 30);
        let mut out = BytesMut::new();
        read_capped(stream, &mut out, 50).await.unwrap();
        assert_eq!(out.len(), 60, "stops after the chunk that passed the cap");

        let failing: ChunkStream = Box::pin(stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(io::Error::other("reset")),
        ]));
        let mut out = BytesMut::new();
        assert!(read_capped(failing, &mut out, 50).await.is_err());
        assert_eq!(out, &b"partial"[..]);
    }
}
