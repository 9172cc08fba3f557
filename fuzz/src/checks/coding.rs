//! Request and reply body decoding (`proxy::coding`).
//!
//! Three kinds of input:
//! - `Content-Encoding` header values: [`listed`] reads exactly the codings named, in order,
//!   lower-cased, without `identity`, or names the one it cannot undo;
//! - arbitrary bytes under a list of codings: decoding never panics, never hands on more than
//!   the cap, and a whole body and the same body streamed in any pieces agree;
//! - a payload encoded with a list of codings (some stacked, some made of several
//!   gzip members or zstd frames): it decodes back exactly when every step fits the cap, and
//!   is refused as too large, naming the step, when one does not.

use std::io::{self, Write};

use bytes::Bytes;
use codex_helper::proxy::coding::{
    Coding, DecodeError, Listed, MAX_CODINGS, decode, decode_stream, listed,
};
use codex_helper::proxy::relay_body::ChunkStream;
use futures_util::{FutureExt, StreamExt, stream};
use http::header::CONTENT_ENCODING;
use http::{HeaderMap, HeaderValue};

use super::input::{Input, pieces};

/// Names a sender may use, and some the proxy must refuse.
const NAMES: [&str; 12] = [
    "gzip",
    "x-gzip",
    "deflate",
    "br",
    "zstd",
    "zst",
    "identity",
    " GZip ",
    "BR",
    "compress",
    "",
    "x-unknown",
];

const KNOWN: [(&str, Coding); 6] = [
    ("gzip", Coding::Gzip),
    ("x-gzip", Coding::Gzip),
    ("deflate", Coding::Deflate),
    ("br", Coding::Brotli),
    ("zstd", Coding::Zstd),
    ("zst", Coding::Zstd),
];

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => header_lists(&mut input),
        1 => arbitrary_bodies(&mut input),
        _ => round_trip(&mut input),
    }
}

fn header_lists(input: &mut Input) {
    let mut headers = HeaderMap::new();
    let mut values = Vec::new();
    for _ in 0..1 + input.below(3) {
        let raw: Vec<u8> = if input.chance(20) {
            input.bytes(24).to_vec()
        } else {
            let names: Vec<&str> = (0..input.below(4)).map(|_| input.pick(&NAMES)).collect();
            names
                .join(if input.chance(50) { "," } else { " , " })
                .into_bytes()
        };
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            headers.append(CONTENT_ENCODING, value);
            values.push(raw);
        }
    }
    let expected = expected_list(&values);
    let got = listed(&headers);
    match (&got, &expected) {
        (Ok(got), Ok(want)) => {
            let got: Vec<(Coding, &str)> =
                got.iter().map(|l| (l.coding, l.name.as_str())).collect();
            let want: Vec<(Coding, &str)> = want.iter().map(|(c, n)| (*c, n.as_str())).collect();
            assert_eq!(got, want, "codings of {values:?}");
        }
        (Err(got), Err(want)) => assert_eq!(got, want, "error for {values:?}"),
        _ => panic!("{values:?}: listed gave {got:?}, expected {expected:?}"),
    }
}

/// What [`listed`] should say about these header values, worked out independently.
fn expected_list(values: &[Vec<u8>]) -> Result<Vec<(Coding, String)>, DecodeError> {
    let mut out = Vec::new();
    for raw in values {
        let text = std::str::from_utf8(raw)
            .ok()
            .filter(|t| t.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b)))
            .ok_or(DecodeError::BadHeader)?;
        for item in text.split(',') {
            let name = item.trim().to_ascii_lowercase();
            if name.is_empty() || name == "identity" {
                continue;
            }
            let coding = KNOWN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| *c)
                .ok_or_else(|| DecodeError::Unsupported(name.clone()))?;
            // A list longer than any sender makes is refused at the first coding past it.
            if out.len() == MAX_CODINGS {
                return Err(DecodeError::TooManyCodings);
            }
            out.push((coding, name));
        }
    }
    Ok(out)
}

fn codings(input: &mut Input) -> Vec<Listed> {
    (0..1 + input.below(3))
        .map(|_| {
            let (name, coding) = input.pick(&KNOWN);
            Listed {
                coding,
                name: name.to_string(),
            }
        })
        .collect()
}

/// Whatever bytes arrive, under any list: the cap holds, and whole and streamed agree.
fn arbitrary_bodies(input: &mut Input) {
    let list = codings(input);
    let limit = 1 + input.below(8192);
    let plan = input.cut_plan();
    let body = input.rest();
    let whole = decode(Bytes::copy_from_slice(body), &list, limit);
    if let Ok(out) = &whole {
        assert!(
            out.len() <= limit,
            "{} bytes passed a cap of {limit}",
            out.len()
        );
    }
    if let Err(DecodeError::Corrupt { detail, .. }) = &whole {
        assert!(
            !detail.contains("waited"),
            "an in-memory body waited: {detail}"
        );
    }
    let (streamed, error) = drain(decode_stream(chunked(body, &plan), &list, limit as u64));
    assert!(
        streamed.len() <= limit,
        "{} streamed bytes passed a cap of {limit}",
        streamed.len()
    );
    match (&whole, &error) {
        (Ok(out), None) => assert_eq!(&streamed[..], &out[..], "whole and streamed differ"),
        (Err(_), Some(_)) => {}
        _ => panic!(
            "whole body gave {:?}, streamed in pieces {plan:?} gave {error:?} (list {list:?}, cap {limit})",
            whole.as_ref().map(Bytes::len)
        ),
    }
}

/// A payload encoded with the listed codings decodes back, or is refused at the first step
/// (undone last-first) whose output is over the cap.
fn round_trip(input: &mut Input) {
    let list = codings(input);
    let limit = 1 + input.below(1 << 16);
    let repeat = 1 + input.below(512);
    let members = 1 + input.below(3);
    let plan = input.cut_plan();
    let payload = input.rest().repeat(repeat);

    // Each layer as it is before the next coding is applied: layers[0] is the payload.
    let mut layers = vec![payload.clone()];
    for listed in &list {
        let last = layers.last().expect("at least the payload");
        layers.push(encode(listed, last, members));
    }
    let encoded = layers.last().expect("at least the payload").clone();
    // Undoing list[i] produces layers[i]; the steps run from the last coding to the first.
    let too_large = (0..list.len())
        .rev()
        .find(|&i| layers[i].len() > limit)
        .map(|i| list[i].name.clone());

    let whole = decode(Bytes::from(encoded.clone()), &list, limit);
    match (&whole, &too_large) {
        (Ok(out), None) => assert_eq!(&out[..], &payload[..], "round trip through {list:?}"),
        (Err(DecodeError::TooLarge { encoding, limit: l }), Some(name)) => {
            assert_eq!(
                (encoding, *l),
                (name, limit),
                "the step over the cap is named"
            );
        }
        _ => panic!(
            "{list:?}, payload {} bytes, layers {:?}, cap {limit}: got {whole:?}",
            payload.len(),
            layers.iter().map(Vec::len).collect::<Vec<_>>()
        ),
    }

    let (streamed, error) = drain(decode_stream(chunked(&encoded, &plan), &list, limit as u64));
    assert!(
        streamed.len() <= limit,
        "{} streamed bytes passed the cap",
        streamed.len()
    );
    match (&too_large, error) {
        (None, None) => assert_eq!(streamed, payload, "streamed round trip through {list:?}"),
        (Some(_), Some(e)) => assert!(
            e.to_string().contains("is larger than the limit"),
            "a step over the cap says so: {e}"
        ),
        (_, error) => panic!("{list:?}, cap {limit}: streamed gave {error:?}"),
    }
}

/// `data` encoded with one coding, as `members` concatenated gzip members or zstd frames
/// where the coding allows it.
fn encode(listed: &Listed, data: &[u8], members: usize) -> Vec<u8> {
    let parts: Vec<&[u8]> = if members > 1 && !data.is_empty() {
        let size = data.len().div_ceil(members);
        data.chunks(size).collect()
    } else {
        vec![data]
    };
    let write = |mut w: Box<dyn WriteFinish>, data: &[u8]| {
        w.write_all(data).expect("in memory");
        w.finish()
    };
    let level = flate2::Compression::fast();
    match listed.coding {
        Coding::Gzip => parts
            .iter()
            .flat_map(|p| {
                write(
                    Box::new(flate2::write::GzEncoder::new(Vec::new(), level)),
                    p,
                )
            })
            .collect(),
        // Both forms Codex-like senders use: zlib-wrapped (the spec) for `deflate`, raw for
        // a stacked list's inner steps.
        Coding::Deflate if data.len() % 2 == 0 => write(
            Box::new(flate2::write::ZlibEncoder::new(Vec::new(), level)),
            data,
        ),
        Coding::Deflate => write(
            Box::new(flate2::write::DeflateEncoder::new(Vec::new(), level)),
            data,
        ),
        Coding::Brotli => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 1, 18);
                w.write_all(data).expect("in memory");
            }
            out
        }
        Coding::Zstd => parts
            .iter()
            .flat_map(|p| {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd");
                e.write_all(p).expect("in memory");
                e.finish().expect("in memory")
            })
            .collect(),
    }
}

trait WriteFinish: Write {
    fn finish(self: Box<Self>) -> Vec<u8>;
}

impl WriteFinish for flate2::write::GzEncoder<Vec<u8>> {
    fn finish(self: Box<Self>) -> Vec<u8> {
        (*self).finish().expect("in memory")
    }
}

impl WriteFinish for flate2::write::ZlibEncoder<Vec<u8>> {
    fn finish(self: Box<Self>) -> Vec<u8> {
        (*self).finish().expect("in memory")
    }
}

impl WriteFinish for flate2::write::DeflateEncoder<Vec<u8>> {
    fn finish(self: Box<Self>) -> Vec<u8> {
        (*self).finish().expect("in memory")
    }
}

fn chunked(data: &[u8], plan: &[u8]) -> ChunkStream {
    let parts: Vec<io::Result<Bytes>> = pieces(data, plan)
        .into_iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    Box::pin(stream::iter(parts))
}

/// Everything a stream over in-memory input yields, and its error; it must never wait, and
/// nothing follows an error.
fn drain(mut stream: ChunkStream) -> (Vec<u8>, Option<io::Error>) {
    let mut out = Vec::new();
    loop {
        let next = stream
            .next()
            .now_or_never()
            .expect("an in-memory stream never waits");
        match next {
            Some(Ok(chunk)) => out.extend_from_slice(&chunk),
            Some(Err(e)) => {
                let after = stream.next().now_or_never().expect("never waits");
                assert!(after.is_none(), "the stream ends after its error");
                return (out, Some(e));
            }
            None => return (out, None),
        }
    }
}
