//! Request body `Content-Encoding` normalisation.
//!
//! Codex compresses request bodies with zstd for the built-in provider, and other clients may
//! send gzip, br or deflate; many relays only take plain JSON, and the proxy must read the body
//! (model, session) anyway. Decoders stream, because Codex's zstd frames carry no content size,
//! and every step is capped so a decompression bomb is refused instead of filling memory.

use std::io::Read;

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_ENCODING;

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
}

/// The encodings named by every `Content-Encoding` header, in the order they were applied,
/// without `identity`.
pub fn listed_encodings(headers: &HeaderMap) -> Result<Vec<String>, DecodeError> {
    let mut encodings = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| DecodeError::BadHeader)?;
        encodings.extend(
            text.split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty() && e != "identity"),
        );
    }
    Ok(encodings)
}

/// Undoes `encodings` (listed in the order applied, so decoded last-first). `limit` caps the
/// size of each decoded step.
pub fn decode(body: Bytes, encodings: &[String], limit: usize) -> Result<Bytes, DecodeError> {
    let mut data = body;
    for encoding in encodings.iter().rev() {
        data = Bytes::from(decode_one(&data, encoding, limit)?);
    }
    Ok(data)
}

fn decode_one(data: &[u8], encoding: &str, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |e: std::io::Error| DecodeError::Corrupt {
        encoding: encoding.to_string(),
        detail: e.to_string(),
    };
    let result = match encoding {
        "zstd" | "zst" => {
            let decoder = zstd::stream::read::Decoder::new(data).map_err(corrupt)?;
            read_capped(decoder, limit)
        }
        "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(data), limit),
        "br" => read_capped(brotli::Decompressor::new(data, 64 * 1024), limit),
        // `deflate` is zlib-wrapped by the spec, but raw deflate is common in the wild.
        "deflate" => read_capped(flate2::read::ZlibDecoder::new(data), limit)
            .or_else(|_| read_capped(flate2::read::DeflateDecoder::new(data), limit)),
        other => return Err(DecodeError::Unsupported(other.to_string())),
    };
    match result {
        Ok(Some(out)) => Ok(out),
        Ok(None) => Err(DecodeError::TooLarge {
            encoding: encoding.to_string(),
            limit,
        }),
        Err(e) => Err(corrupt(e)),
    }
}

/// Reads all of `reader`, or `None` as soon as it yields more than `limit` bytes.
fn read_capped(reader: impl Read, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    Ok((out.len() <= limit).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
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

    #[test]
    fn each_encoding_decodes() {
        let body = br#"{"model":"gpt-5","input":[]}"#.to_vec();
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(&body)
            .unwrap();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&body).unwrap();
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&body).unwrap();
        let cases = [
            ("zstd", zstd_no_size(&body)),
            ("gzip", gzip(&body)),
            ("x-gzip", gzip(&body)),
            ("br", br),
            ("deflate", zlib.finish().unwrap()),
            ("deflate", raw.finish().unwrap()),
        ];
        for (name, encoded) in cases {
            let list = listed_encodings(&headers(name)).unwrap();
            assert_eq!(
                decode(Bytes::from(encoded), &list, 1 << 20).unwrap(),
                body,
                "{name}"
            );
        }
    }

    #[test]
    fn stacked_encodings_are_undone_in_reverse() {
        let body = b"hello stacked".to_vec();
        let encoded = zstd_no_size(&gzip(&body)); // gzip first, then zstd
        let list = listed_encodings(&headers("gzip, zstd")).unwrap();
        assert_eq!(list, ["gzip", "zstd"]);
        assert_eq!(decode(Bytes::from(encoded), &list, 1 << 20).unwrap(), body);
    }

    #[test]
    fn identity_and_absent_mean_nothing_to_do() {
        assert!(listed_encodings(&headers("identity")).unwrap().is_empty());
        assert!(listed_encodings(&HeaderMap::new()).unwrap().is_empty());
    }

    #[test]
    fn corrupt_unsupported_and_bombs_are_refused() {
        let list = vec!["zstd".to_string()];
        let err = decode(Bytes::from_static(b"not zstd"), &list, 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::Corrupt { ref encoding, .. } if encoding == "zstd"));

        let err = decode(Bytes::new(), &["compress".to_string()], 1 << 20).unwrap_err();
        assert_eq!(err, DecodeError::Unsupported("compress".into()));

        let bomb = zstd_no_size(&vec![0u8; 8 << 20]);
        assert!(bomb.len() < 4096);
        let err = decode(Bytes::from(bomb), &list, 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { limit, .. } if limit == 1 << 20));
    }
}
