//! Reading a rollout line by line with a cap on each line: a line longer than the cap is
//! passed over without being held (counted in [`BoundedLines::oversized`]), so a huge tool
//! output never costs more memory than the cap.

use std::io::{BufRead, BufReader, Read};

/// Lines of a reader, each at most `cap` bytes (without its line break).
pub struct BoundedLines<R> {
    reader: BufReader<R>,
    cap: usize,
    line: Vec<u8>,
    /// Lines passed over because they were longer than the cap.
    pub oversized: u64,
}

impl<R: Read> BoundedLines<R> {
    pub fn new(reader: R, cap: usize) -> Self {
        Self {
            reader: BufReader::with_capacity(64 * 1024, reader),
            cap,
            line: Vec::new(),
            oversized: 0,
        }
    }

    /// The next line within the cap, without its `\n` or `\r\n`; `None` at the end.
    pub fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        loop {
            self.line.clear();
            let mut skipping = false;
            let mut read_any = false;
            loop {
                let available = self.reader.fill_buf()?;
                if available.is_empty() {
                    break;
                }
                read_any = true;
                let (piece, used, ended) = match memchr::memchr(b'\n', available) {
                    Some(at) => (&available[..at], at + 1, true),
                    None => (available, available.len(), false),
                };
                if !skipping {
                    if self.line.len() + piece.len() > self.cap {
                        skipping = true;
                        self.line = Vec::new();
                    } else {
                        self.line.extend_from_slice(piece);
                    }
                }
                self.reader.consume(used);
                if ended {
                    break;
                }
            }
            if !read_any {
                return Ok(None);
            }
            if skipping {
                self.oversized += 1;
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            return Ok(Some(&self.line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &[u8], cap: usize) -> (Vec<String>, u64) {
        let mut lines = BoundedLines::new(text, cap);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(String::from_utf8_lossy(line).into_owned());
        }
        (out, lines.oversized)
    }

    #[test]
    fn long_lines_are_passed_over_and_counted() {
        let long = "x".repeat(200_000);
        let text = format!("a\r\n{long}\nbb\n\nlast");
        let (lines, oversized) = all(text.as_bytes(), 100);
        assert_eq!(lines, ["a", "bb", "", "last"]);
        assert_eq!(oversized, 1);
        let (lines, oversized) = all(text.as_bytes(), 1 << 20);
        assert_eq!(lines.len(), 5);
        assert_eq!(oversized, 0);
        assert_eq!(all(b"", 10).0, Vec::<String>::new());
        assert_eq!(all(b"one\n", 10).0, ["one"]);
    }
}
