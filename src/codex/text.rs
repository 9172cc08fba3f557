//! Codex's `config.toml` as bytes on disk: a UTF-8 byte order mark.
//!
//! `toml_edit` (0.25) cannot parse a BOM, so it is taken off when reading and put back when
//! writing. Line breaks stay in the text: the patch keeps every line it does not change byte
//! for byte and ends the lines it adds like most of the file's ([`super::lines`]).

use std::path::Path;

use anyhow::Context;

use crate::files;

const BOM: char = '\u{feff}';

/// How a text file is laid out beyond its text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextStyle {
    /// Starts with a UTF-8 byte order mark.
    pub bom: bool,
}

impl TextStyle {
    /// The style of `raw`, and its text without the BOM.
    pub fn split(raw: &str) -> (Self, String) {
        match raw.strip_prefix(BOM) {
            Some(rest) => (Self { bom: true }, rest.to_string()),
            None => (Self { bom: false }, raw.to_string()),
        }
    }

    /// `text` (without a BOM) in this style: the inverse of [`TextStyle::split`].
    pub fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + usize::from(self.bom) * 3);
        if self.bom {
            out.push(BOM);
        }
        out.push_str(text);
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
            assert_eq!(style.bom, raw.starts_with(BOM));
            assert_eq!(style.apply(&text), raw, "{style:?}");
        }
    }
}
