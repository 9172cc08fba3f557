//! Setting a few string members of a JSON object in place (pure). Only the bytes of the
//! values set (or the members added) change: key order, spacing, number spellings and every
//! other byte stay as the client sent them, which re-serialising would not keep.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::value::RawValue;

/// One change to the body: `at` replaced by `text` (an insertion when `at` is empty).
#[derive(Debug)]
pub struct Edit {
    at: Range<usize>,
    text: String,
}

/// Where a body's top-level object opens and where the members a patch may set sit in it, as
/// one read of the body found them (the proxy's inspection): with it a large body is patched
/// without being parsed once more to find them. Spans are of raw values, `null` included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopLevel {
    /// Just after the opening `{`.
    pub open: usize,
    /// The object has no members at all.
    pub empty: bool,
    pub model: Option<Range<usize>>,
    pub service_tier: Option<Range<usize>>,
    pub reasoning: Option<Range<usize>>,
}

/// A JSON object inside `body`: its members' value spans and where a new member goes.
pub struct Object<'a> {
    /// Value spans by key: every member when read, only those a patch may set when known.
    members: BTreeMap<Cow<'a, str>, Range<usize>>,
    body: &'a [u8],
    /// Just after the opening `{`.
    open: usize,
    empty: bool,
    added: Vec<String>,
}

impl<'a> Object<'a> {
    /// The object at `span` of `body` (all of it for the top level); `None` when it is not one.
    pub fn read(body: &'a [u8], span: Range<usize>) -> Option<Self> {
        let slice = &body[span.clone()];
        let brace = slice.iter().position(|b| !b.is_ascii_whitespace())?;
        if slice[brace] != b'{' {
            return None;
        }
        let raw: BTreeMap<Cow<'a, str>, &'a RawValue> = serde_json::from_slice(slice).ok()?;
        let members: BTreeMap<_, _> = raw
            .into_iter()
            .map(|(key, value)| (key, span_in(body, value.get())))
            .collect();
        Some(Object {
            empty: members.is_empty(),
            members,
            body,
            open: span.start + brace + 1,
            added: Vec::new(),
        })
    }

    /// The top-level object of `body` as `top` describes it, not read again.
    pub fn known(body: &'a [u8], top: &TopLevel) -> Self {
        let members = [
            ("model", &top.model),
            ("service_tier", &top.service_tier),
            ("reasoning", &top.reasoning),
        ]
        .into_iter()
        .filter_map(|(key, span)| Some((Cow::Borrowed(key), span.clone()?)))
        .collect();
        Object {
            members,
            body,
            open: top.open,
            empty: top.empty,
            added: Vec::new(),
        }
    }

    /// A member's raw JSON value and its span in the body.
    pub fn get(&self, key: &str) -> Option<(&'a str, Range<usize>)> {
        let span = self.members.get(key)?.clone();
        let raw = std::str::from_utf8(&self.body[span.clone()]).ok()?;
        Some((raw, span))
    }

    /// Sets `key` to the JSON text `value`: its old value replaced, or a member added.
    pub fn set(&mut self, key: &str, value: String, edits: &mut Vec<Edit>) {
        match self.get(key) {
            Some((_, at)) => edits.push(Edit { at, text: value }),
            None => self.added.push(format!("{}:{value}", quote(key))),
        }
    }

    /// The members added, as one insertion after the opening brace.
    pub fn finish(self, edits: &mut Vec<Edit>) {
        if self.added.is_empty() {
            return;
        }
        let mut text = self.added.join(",");
        if !self.empty {
            text.push(',');
        }
        edits.push(Edit {
            at: self.open..self.open,
            text,
        });
    }
}

/// Where `raw`, a slice of `body`, sits in it.
pub fn span_in(body: &[u8], raw: &str) -> Range<usize> {
    let start = raw.as_ptr() as usize - body.as_ptr() as usize;
    start..start + raw.len()
}

/// `text` as a JSON string.
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serialises")
}

/// `body` with `edits` made (spans never overlap: each is one member's value or an insertion
/// point of its own object), written front to back in one pass: splicing into a copy would
/// move the rest of a large body once per edit.
pub fn apply(body: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    // An insertion before a replacement that starts where it does.
    edits.sort_by_key(|e| (e.at.start, e.at.end));
    let grown: usize = edits.iter().map(|e| e.text.len()).sum();
    let mut out = Vec::with_capacity(body.len() + grown);
    let mut done = 0;
    for edit in edits {
        assert!(edit.at.start >= done, "edits overlap: {edit:?}");
        out.extend_from_slice(&body[done..edit.at.start]);
        out.extend_from_slice(edit.text.as_bytes());
        done = edit.at.end;
    }
    out.extend_from_slice(&body[done..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_values_set_change() {
        let body = br#" { "tools" : [{"properties":{"zeta":{},"alpha":{}}}], "n": 1e2, "big": 123456789012345678901234567890, "model":"a" }"#;
        let mut top = Object::read(body, 0..body.len()).unwrap();
        let mut edits = Vec::new();
        top.set("model", quote("b"), &mut edits);
        top.set("service_tier", quote("flex"), &mut edits);
        top.finish(&mut edits);
        let out = String::from_utf8(apply(body, edits)).unwrap();
        assert_eq!(
            out,
            r#" {"service_tier":"flex", "tools" : [{"properties":{"zeta":{},"alpha":{}}}], "n": 1e2, "big": 123456789012345678901234567890, "model":"b" }"#
        );
    }

    #[test]
    fn edits_are_made_whatever_order_they_come_in() {
        let body = b"{\"a\":1,\"b\":2}";
        let edit = |at: Range<usize>, text: &str| Edit {
            at,
            text: text.into(),
        };
        // Given back to front, with an insertion where a replacement starts.
        let edits = vec![
            edit(11..12, "\"two\""),
            edit(5..6, "\"one\""),
            edit(1..1, "\"z\":0,"),
            edit(5..5, " "),
        ];
        assert_eq!(apply(body, edits), br#"{"z":0,"a": "one","b":"two"}"#);
    }

    #[test]
    fn members_added_to_an_empty_object_are_separated() {
        let body = b"{}";
        let mut top = Object::read(body, 0..2).unwrap();
        let mut edits = Vec::new();
        top.set("a", quote("1"), &mut edits);
        top.set("b", quote("2"), &mut edits);
        top.finish(&mut edits);
        let out = apply(body, edits);
        assert_eq!(out, br#"{"a":"1","b":"2"}"#);
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    }

    #[test]
    fn a_nested_object_is_read_in_place() {
        let body = br#"{"reasoning": {"summary":"auto","effort":"low"}}"#;
        let top = Object::read(body, 0..body.len()).unwrap();
        let (_, span) = top.get("reasoning").unwrap();
        let mut inner = Object::read(body, span).unwrap();
        let mut edits = Vec::new();
        inner.set("effort", quote("high"), &mut edits);
        inner.finish(&mut edits);
        assert_eq!(
            apply(body, edits),
            br#"{"reasoning": {"summary":"auto","effort":"high"}}"#
        );
        assert!(Object::read(b"[1]", 0..3).is_none());
        assert!(Object::read(b"{\"a\":", 0..5).is_none());
    }
}
