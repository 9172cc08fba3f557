//! The text log's field formatter: `tracing-subscriber`'s own output, written faster.
//!
//! Every request logs one line of about 27 fields. With the default formatter each field's
//! name went through `nu-ansi-term`'s styling (a no-op without colours) and each string value
//! through `str`'s `Debug`, char by char: about 14 % of the instructions the proxy spent on a
//! request (callgrind). [`LogFields`] writes the common fields (strings that need no escaping,
//! integers, booleans, `%` and `?` values) straight to the line and hands everything else (the
//! message, errors, raw identifiers, `log.` fields, and every field when colours are on) to
//! `tracing-subscriber`'s [`DefaultVisitor`], so the line is byte for byte the one it writes.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The field formatter for the text log (`fmt().fmt_fields(LogFields)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFields;

impl<'a> MakeVisitor<Writer<'a>> for LogFields {
    type Visitor = LogVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> LogVisitor<'a> {
        LogVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields: `name=value`, separated by spaces.
pub struct LogVisitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet, so the next field needs no separating space.
    is_empty: bool,
    result: fmt::Result,
}

impl LogVisitor<'_> {
    /// Whether this visitor writes `field` itself; the others go to [`DefaultVisitor`].
    fn writes_itself(&self, field: &Field) -> bool {
        let name = field.name();
        !self.writer.has_ansi_escapes()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
    }

    /// Writes `name=` and then the value.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        if !self.is_empty {
            self.result = self.writer.write_char(' ');
        }
        self.is_empty = false;
        self.result = self
            .result
            .and_then(|()| self.writer.write_str(field.name()))
            .and_then(|()| self.writer.write_char('='))
            .and_then(|()| value(&mut self.writer));
    }

    /// Hands one field to `tracing-subscriber`'s own visitor, with the same spacing state.
    fn delegate(&mut self, field: &Field, visit: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        visit(&mut default);
        self.result = default.finish();
        // It skips `log.` fields (metadata the line already shows; with tracing-subscriber's
        // `tracing-log` feature, which Cargo.toml names) and writes every other.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }
}

impl Visit for LogVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.writes_itself(field) {
            return self.delegate(field, |v| v.record_str(field, value));
        }
        self.field(field, |w| {
            // `Debug` leaves printable ASCII other than `"` and `\` as it is.
            let plain = value
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
            if plain {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.writes_itself(field) {
            return self.delegate(field, |v| v.record_u64(field, value));
        }
        // `itoa` writes the digits directly; `write!` goes through `fmt`'s padding machinery.
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.writes_itself(field) {
            return self.delegate(field, |v| v.record_i64(field, value));
        }
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.writes_itself(field) {
            return self.delegate(field, |v| v.record_bool(field, value));
        }
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.writes_itself(field) {
            return self.delegate(field, |v| v.record_debug(field, value));
        }
        self.field(field, |w| write!(w, "{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for LogVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for LogVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A log writer that keeps what it is given, for tests that read log lines.
#[cfg(test)]
pub(crate) mod capture {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Lines {
        /// Everything written so far.
        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capture::Lines;
    use super::*;

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// A value whose `Debug` writes a raw escape character.
    struct RawEscape;

    impl fmt::Debug for RawEscape {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\u{1b}[2J")
        }
    }

    /// Logs a set of events covering every kind of field, in a span that records a field
    /// later (so its fields are formatted twice, the second time appended).
    fn log_everything() {
        let span = tracing::info_span!(
            "serve",
            port = 3211_u64,
            host = "127.0.0.1",
            later = tracing::field::Empty
        );
        span.record("later", "set");
        let _entered = span.enter();
        tracing::info!(
            trace_id = %"1a2b-1",
            session = "019a0000-0000-7000-8000-000000000000",
            quoted = "say \"hi\"",
            backslash = r"C:\codex",
            newline = "two\nlines",
            tab = "a\tb",
            escape = "\u{1b}[31mred",
            unicode = "größe ✓ 模型",
            empty = "",
            count = 5020_u64,
            below = -3_i64,
            streaming = false,
            ratio = 0.25_f64,
            big = 1_u128 << 100,
            negative = -(1_i128 << 100),
            nan = f64::NAN,
            apostrophe = "it's ~ok~",
            delete = "a\u{7f}b",
            display_escape = %"\u{1b}[31mx",
            debug_escape = ?RawEscape,
            list = ?["a", "b"],
            optional = ?Some("x"),
            r#type = "message",
            "request {} of {}", 1, 2
        );
        let error = Failure(
            "relay refused",
            Some(Box::new(Failure("connection reset", None))),
        );
        tracing::warn!(error = &error as &dyn std::error::Error, "failed");
        let plain = Failure("alone", None);
        tracing::warn!(error = &plain as &dyn std::error::Error, retry = true);
        tracing::error!(message = "only a message");
        tracing::info!(first = "no message", "log.target" = "x", after = 1_u64);
        tracing::info!("log.target" = "skipped first", then = "a space?");
        tracing::info!("text with \"quotes\" and \u{1b}[0m escapes");
    }

    fn output(ansi: bool, ours: bool) -> String {
        let lines = Lines::default();
        let builder = tracing_subscriber::fmt()
            .without_time()
            .with_ansi(ansi)
            .with_writer(lines.clone());
        if ours {
            let subscriber = builder.fmt_fields(LogFields).finish();
            tracing::subscriber::with_default(subscriber, log_everything);
        } else {
            tracing::subscriber::with_default(builder.finish(), log_everything);
        }
        lines.text()
    }

    #[test]
    fn every_line_is_the_one_tracing_subscriber_writes() {
        let ours = output(false, true);
        assert_eq!(ours, output(false, false));
        // The cases are really there (a wrong test would compare two empty logs).
        assert_eq!(ours.lines().count(), 7, "{ours}");
        assert!(
            ours.contains("display_escape=\u{1b}[31mx debug_escape=\u{1b}[2J"),
            "{ours}"
        );
        assert!(ours.contains(r#"quoted="say \"hi\"""#), "{ours}");
        assert!(ours.contains(r#"escape="\u{1b}[31mred""#), "{ours}");
        assert!(
            ours.contains(" count=5020 below=-3 streaming=false"),
            "{ours}"
        );
        assert!(
            ours.contains("serve{port=3211 host=\"127.0.0.1\" later=\"set\"}"),
            "{ours}"
        );
        assert!(ours.contains("error.sources=[connection reset]"), "{ours}");
    }

    #[test]
    fn with_colours_every_field_goes_to_tracing_subscriber() {
        let ours = output(true, true);
        assert_eq!(ours, output(true, false));
        assert!(ours.contains('\u{1b}'), "{ours}");
    }
}
