//! A small, bounded `multipart/form-data` reader (RFC 7578) for Images edits.
//!
//! The body is already whole in memory (capped by `proxy.max_request_body_bytes`), so this only
//! splits it: parts borrow from the body, nothing is copied. Every count and size has a cap, so
//! a form with a million tiny parts or a huge header cannot make the proxy work or allocate
//! without bound.

use memchr::memmem;

/// How much of a form the reader accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Parts in one form.
    pub parts: usize,
    /// Bytes of one part's headers.
    pub header_bytes: usize,
    /// Bytes of one file part.
    pub file_bytes: usize,
    /// Bytes of one text field.
    pub field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            parts: 32,
            header_bytes: 8 * 1024,
            file_bytes: 50 << 20,
            field_bytes: 64 * 1024,
        }
    }
}

/// One part of a form.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, present for file parts.
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

impl Part<'_> {
    /// A file: it has a filename, or a content type other than text (some clients send files
    /// without a name).
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
            || self
                .content_type
                .as_deref()
                .is_some_and(|t| !t.trim().to_ascii_lowercase().starts_with("text/"))
    }
}

/// Why a form could not be read. The message names the limit or the defect, never the data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("the multipart Content-Type has no boundary")]
    NoBoundary,
    #[error("the multipart body does not start with its boundary")]
    NoFirstBoundary,
    #[error("the multipart body ends before its closing boundary")]
    Unterminated,
    #[error("a multipart part has malformed headers")]
    BadHeaders,
    #[error("a multipart part has no Content-Disposition name")]
    NoName,
    #[error("the multipart form has more than {0} parts")]
    TooManyParts(usize),
    #[error("multipart part \"{name}\" is larger than {limit} bytes")]
    TooLarge { name: String, limit: usize },
}

/// The boundary parameter of a `multipart/form-data` Content-Type (quoted or not).
pub fn boundary(content_type: &str) -> Result<String, FormError> {
    let kind = content_type.split(';').next().unwrap_or_default().trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(FormError::NoBoundary);
    }
    // RFC 2046: 1 to 70 characters.
    parameter(content_type, "boundary")
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or(FormError::NoBoundary)
}

/// Splits `body` into its parts, each checked against `limits`.
pub fn parse<'a>(
    content_type: &str,
    body: &'a [u8],
    limits: Limits,
) -> Result<Vec<Part<'a>>, FormError> {
    let boundary = boundary(content_type)?;
    let opening = format!("--{boundary}");
    // Every delimiter after the first is preceded by a line break.
    let delimiter = format!("\r\n--{boundary}");
    let next_delimiter = memmem::Finder::new(delimiter.as_bytes());
    let start = if body.starts_with(opening.as_bytes()) {
        opening.len()
    } else {
        next_delimiter
            .find(body)
            .ok_or(FormError::NoFirstBoundary)?
            + delimiter.len()
    };
    let mut rest = &body[start..];
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its line break.
        let padding = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        rest = rest[padding..]
            .strip_prefix(b"\r\n")
            .ok_or(FormError::Unterminated)?;
        if parts.len() == limits.parts {
            return Err(FormError::TooManyParts(limits.parts));
        }
        let end = next_delimiter.find(rest).ok_or(FormError::Unterminated)?;
        parts.push(part(&rest[..end], limits)?);
        rest = &rest[end + delimiter.len()..];
    }
}

/// One part: its headers, a blank line, its content.
fn part(raw: &[u8], limits: Limits) -> Result<Part<'_>, FormError> {
    let (head, data) = match memmem::find(raw, b"\r\n\r\n") {
        Some(at) => (&raw[..at], &raw[at + 4..]),
        // No headers at all: the blank line comes first.
        None if raw.starts_with(b"\r\n") => (&raw[..0], &raw[2..]),
        None => return Err(FormError::BadHeaders),
    };
    if head.len() > limits.header_bytes {
        return Err(FormError::BadHeaders);
    }
    let head = std::str::from_utf8(head).map_err(|_| FormError::BadHeaders)?;
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once(':').ok_or(FormError::BadHeaders)?;
        let key = key.trim();
        if key.eq_ignore_ascii_case("content-disposition") {
            name = parameter(value, "name");
            filename = parameter(value, "filename");
        } else if key.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    let part = Part {
        name: name.ok_or(FormError::NoName)?,
        filename,
        content_type,
        data,
    };
    let limit = if part.is_file() {
        limits.file_bytes
    } else {
        limits.field_bytes
    };
    if data.len() > limit {
        let name = part.name;
        return Err(FormError::TooLarge { name, limit });
    }
    Ok(part)
}

/// A `key=value` or `key="value"` parameter of a header value (quotes may hold `;`).
fn parameter(value: &str, key: &str) -> Option<String> {
    let mut rest = value;
    while let Some(at) = rest.find(';') {
        rest = rest[at + 1..].trim_start();
        let Some((k, v)) = rest.split_once('=') else {
            continue;
        };
        let quoted = v.strip_prefix('"');
        let found = match quoted {
            Some(q) => q.split_once('"').map_or(q, |(inside, _)| inside),
            None => v.split(';').next().unwrap_or_default().trim(),
        };
        if k.trim().eq_ignore_ascii_case(key) {
            return Some(found.replace("\\\"", "\""));
        }
        if let Some(q) = quoted {
            // Skip past the closing quote, so a `;` inside it is not taken for a separator.
            let consumed = q
                .split_once('"')
                .map_or(q.len(), |(inside, _)| inside.len() + 1);
            rest = &q[consumed.min(q.len())..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "multipart/form-data; boundary=XyZ";

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut body = b"preamble is ignored\r\n".to_vec();
        for (name, filename, data) in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            match filename {
                Some(f) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    }

    #[test]
    fn the_boundary_is_read_quoted_or_not_and_required() {
        assert_eq!(boundary(TYPE).as_deref(), Ok("XyZ"));
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b;c\"").as_deref(),
            Ok("a b;c")
        );
        assert_eq!(boundary("multipart/form-data"), Err(FormError::NoBoundary));
        assert_eq!(
            boundary("application/json; boundary=x"),
            Err(FormError::NoBoundary)
        );
    }

    #[test]
    fn files_and_fields_are_split_with_binary_content_intact() {
        let png = b"\x89PNG\r\n\x1a\n--XyZ is not a delimiter here\r\n";
        let body = form(&[
            ("prompt", None, b"a cat; with a hat"),
            ("image[]", Some("a.png"), png),
            ("mask", Some("m.png"), b"M"),
        ]);
        let parts = parse(TYPE, &body, Limits::default()).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].filename.as_deref()),
            ("prompt", None)
        );
        assert_eq!(parts[0].data, b"a cat; with a hat");
        assert_eq!(parts[1].name, "image[]");
        assert_eq!(parts[1].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/png"));
        assert_eq!(parts[1].data, png);
        assert_eq!(parts[2].data, b"M");
    }

    #[test]
    fn a_quoted_filename_may_hold_a_separator() {
        assert_eq!(
            parameter(
                " form-data; filename=\"a;name=b.png\"; name=\"image\"",
                "name"
            ),
            Some("image".into())
        );
        assert_eq!(
            parameter(" form-data; name=image; filename=x.png", "filename"),
            Some("x.png".into())
        );
    }

    #[test]
    fn broken_forms_are_refused() {
        assert_eq!(
            parse(TYPE, b"no delimiter at all", Limits::default()),
            Err(FormError::NoFirstBoundary)
        );
        let cut = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue";
        assert_eq!(
            parse(TYPE, cut, Limits::default()),
            Err(FormError::Unterminated)
        );
        let nameless = b"--XyZ\r\nContent-Type: text/plain\r\n\r\nv\r\n--XyZ--";
        assert_eq!(
            parse(TYPE, nameless, Limits::default()),
            Err(FormError::NoName)
        );
        let headless = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nv\r\n--XyZ--";
        assert_eq!(
            parse(TYPE, headless, Limits::default()),
            Err(FormError::BadHeaders)
        );
    }

    #[test]
    fn every_size_and_count_is_capped() {
        let limits = Limits {
            parts: 2,
            header_bytes: 200,
            file_bytes: 8,
            field_bytes: 4,
        };
        let body = form(&[("image", Some("a.png"), b"123456789")]);
        assert_eq!(
            parse(TYPE, &body, limits),
            Err(FormError::TooLarge {
                name: "image".into(),
                limit: 8
            })
        );
        let body = form(&[("prompt", None, b"12345")]);
        assert!(matches!(
            parse(TYPE, &body, limits),
            Err(FormError::TooLarge { limit: 4, .. })
        ));
        let body = form(&[("a", None, b"1"), ("b", None, b"2"), ("c", None, b"3")]);
        assert_eq!(parse(TYPE, &body, limits), Err(FormError::TooManyParts(2)));
        let long = "x".repeat(300);
        let body = form(&[(long.as_str(), None, b"1")]);
        assert_eq!(parse(TYPE, &body, limits), Err(FormError::BadHeaders));
    }
}
