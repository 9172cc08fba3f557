//! Codex's `config.toml` as bytes on disk: a UTF-8 byte order mark and CRLF line endings.
//!
//! `toml_edit` (0.25) drops a BOM and writes every line break outside string literals as LF
//! (only inside multi-line strings does a CRLF stay raw), so an edited CRLF file would come
//! back LF and lose its BOM. Instead the style is taken off when reading, the pure patch
//! ([`super::patch`]) works on plain LF text, and the style is put back when writing: the
//! lines the helper adds end like the file's own, and an untouched file round-trips byte for
//! byte.

use std::path::Path;

use anyhow::Context;

use crate::files;

const BOM: char = '\u{feff}';

/// How a text file is laid out beyond its text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextStyle {
    /// Starts with a UTF-8 byte order mark.
    pub bom: bool,
    /// Uses CRLF line breaks (most of its line breaks are CRLF; a file mixing both is written
    /// back all in its majority style).
    pub crlf: bool,
}

impl TextStyle {
    /// The style of `raw`, and its text without BOM and with LF line breaks.
    pub fn split(raw: &str) -> (Self, String) {
        let (bom, text) = match raw.strip_prefix(BOM) {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let crlf_breaks = text.matches("\r\n").count();
        let crlf = crlf_breaks > 0 && crlf_breaks * 2 > text.matches('\n').count();
        let text = if crlf {
            text.replace("\r\n", "\n")
        } else {
            text.to_string()
        };
        (Self { bom, crlf }, text)
    }

    /// `text` (LF line breaks, no BOM) in this style: the inverse of [`TextStyle::split`].
    pub fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + usize::from(self.bom) * 3);
        if self.bom {
            out.push(BOM);
        }
        if self.crlf {
            out.push_str(&text.replace('\n', "\r\n"));
        } else {
            out.push_str(text);
        }
        out
    }
}

/// Reads a text file as its style and plain text; no text when it does not exist (and the
/// default style, LF without BOM, for a file written new).
pub fn read(path: &Path) -> anyhow::Result<(TextStyle, Option<String>)> {
    match std::fs::read_to_string(path) {
        Ok(raw) => {
            let (style, text) = TextStyle::split(&raw);
            Ok((style, Some(text)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((TextStyle::default(), None)),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes plain `text` in `style`, atomically (through links, keeping the mode; a new file
/// gets `new_mode`): see [`files::write_atomic`].
pub fn write(path: &Path, style: TextStyle, text: &str, new_mode: u32) -> anyhow::Result<()> {
    files::write_atomic(path, style.apply(text).as_bytes(), new_mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_then_apply_gives_back_the_bytes() {
        for raw in [
            "",
            "a = 1\n",
            "a = 1\r\nb = 2\r\n",
            "\u{feff}a = 1\n",
            "\u{feff}a = 1\r\n\r\n[t]\r\nb = \"\"\"\r\nx\r\n\"\"\"\r\n",
            "no final break\r\nx = 1",
            "a = 1\nb = \"\"\"\r\nraw crlf in an LF file\r\n\"\"\"\n",
        ] {
            let (style, text) = TextStyle::split(raw);
            assert!(!text.starts_with(BOM), "{raw:?}");
            assert_eq!(style.apply(&text), raw, "{style:?}");
        }
    }

    #[test]
    fn the_style_is_what_most_line_breaks_use() {
        let style = |raw: &str| TextStyle::split(raw).0;
        assert_eq!(
            style("\u{feff}a = 1\r\n"),
            TextStyle {
                bom: true,
                crlf: true
            }
        );
        assert!(!style("a = 1\n").crlf);
        assert!(style("a\r\nb\r\nc\n").crlf);
        assert!(!style("a\r\nb\nc\n").crlf);
        let (mostly_crlf, text) = TextStyle::split("a\r\nb\r\nc\n");
        assert_eq!(
            mostly_crlf.apply(&format!("{text}added\n")),
            "a\r\nb\r\nc\r\nadded\r\n"
        );
    }
}
