//! WebSocket frame headers (RFC 6455 §5.2), read and written: what the deflate layer needs to
//! find frames in a byte stream and to write the frames it rebuilds. Everything else about
//! the protocol (fragmentation rules, control frames, closing) stays tungstenite's.

use bytes::{BufMut, BytesMut};

pub const CONTINUATION: u8 = 0x0;
#[cfg(test)]
pub const TEXT: u8 = 0x1;
#[cfg(test)]
pub const BINARY: u8 = 0x2;

/// A frame's header, as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    /// RSV1: "this message is compressed" once permessage-deflate is agreed.
    pub rsv1: bool,
    /// RSV2 or RSV3: no extension we speak uses them.
    pub rsv23: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// How many bytes the header takes on the wire.
    pub len: usize,
}

impl Header {
    /// The header at the start of `bytes`, or `None` while it is incomplete.
    pub fn read(bytes: &[u8]) -> Option<Header> {
        let [first, second, ..] = *bytes else {
            return None;
        };
        let (payload_len, mut len) = match second & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
            short => (u64::from(short), 2),
        };
        let mask = if second & 0x80 != 0 {
            let key: [u8; 4] = bytes.get(len..len + 4)?.try_into().ok()?;
            len += 4;
            Some(key)
        } else {
            None
        };
        Some(Header {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            rsv23: first & 0x30 != 0,
            opcode: first & 0x0f,
            mask,
            payload_len,
            len,
        })
    }

    /// Whether this is a control frame (close, ping, pong): never compressed, never split.
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Writes one frame to `out`: its header, then `payload`, masked with `mask` when given.
pub fn write(out: &mut BytesMut, opcode: u8, rsv1: bool, mask: Option<[u8; 4]>, payload: &[u8]) {
    out.put_u8(0x80 | if rsv1 { 0x40 } else { 0 } | (opcode & 0x0f));
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.put_u8(masked | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.put_u8(masked | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(masked | 127);
            out.put_u64(n as u64);
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        unmask(&mut out[start..], key, 0);
    }
}

/// Applies (or removes: the same XOR) a masking key to `data`, which starts `offset` bytes
/// into the frame's payload.
pub fn unmask(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_in_each_length_form() {
        // RFC 6455 §5.7: a masked "Hello" from a client.
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let header = Header::read(&hello).unwrap();
        assert_eq!(
            header,
            Header {
                fin: true,
                rsv1: false,
                rsv23: false,
                opcode: TEXT,
                mask: Some([0x37, 0xfa, 0x21, 0x3d]),
                payload_len: 5,
                len: 6,
            }
        );
        let mut payload = hello[6..].to_vec();
        unmask(&mut payload, header.mask.unwrap(), 0);
        assert_eq!(payload, b"Hello");

        // 256 bytes in one unmasked binary frame (16-bit length), and 64 KiB (64-bit length).
        assert_eq!(
            Header::read(&[0x82, 0x7e, 0x01, 0x00]).unwrap().payload_len,
            256
        );
        let long = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
        let header = Header::read(&long).unwrap();
        assert_eq!((header.payload_len, header.len), (65536, 10));
    }

    #[test]
    fn an_incomplete_header_is_waited_for() {
        for bytes in [
            &[][..],
            &[0x81],
            &[0x82, 0x7e, 0x01],
            &[0x81, 0x85, 0x37, 0xfa],
        ] {
            assert_eq!(Header::read(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn written_frames_read_back() {
        for len in [0, 5, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = BytesMut::new();
                write(&mut out, BINARY, true, mask, &payload);
                let header = Header::read(&out).unwrap();
                assert!(header.fin && header.rsv1 && !header.rsv23);
                assert_eq!((header.opcode, header.mask), (BINARY, mask));
                assert_eq!(header.payload_len as usize, len);
                assert_eq!(out.len(), header.len + len);
                let mut back = out[header.len..].to_vec();
                if let Some(key) = mask {
                    unmask(&mut back, key, 0);
                }
                assert_eq!(back, payload);
            }
        }
    }
}
