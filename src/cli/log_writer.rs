//! Where log lines go: a buffer in memory that a writer thread empties into stderr in batches.
//!
//! The proxy logs a line per request. Writing it from the event loop would stall every request
//! behind a slow reader of stderr (a full pipe, a paused terminal); handing each line to a
//! thread (as `tracing-appender` does) costs a wake-up and a `write(2)` per line, which a
//! profile of the proxy showed as a real share of its CPU. Here the event loop appends the line
//! to a buffer under an uncontended lock, wakes the writer only when the buffer was empty, and
//! the writer lets lines gather for [`GATHER`] before writing them with one call. When the
//! buffer is full (the reader is that slow) lines are dropped and counted, never waited for.
//!
//! Where the writer writes can change while it runs ([`LogTarget::redirect`]): `serve` sends
//! the lines to a file while the terminal UI owns the screen, and back to stderr after.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long lines gather before the writer writes them: short enough to read as live.
const GATHER: Duration = Duration::from_millis(25);

/// The most log text held for the writer; past it lines are dropped.
const HELD_MAX: usize = 1 << 20;

/// The buffer the log lines go into; [`LogWriter::start`] starts the thread that empties it.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

/// Changes where the writer thread writes.
#[derive(Clone)]
pub struct LogTarget {
    shared: Arc<Shared>,
}

/// What the writer thread writes to.
pub type Output = Box<dyn Write + Send>;

/// Stops the writer thread when dropped, after it has written what is left.
pub struct LogWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<Held>,
    ready: Condvar,
    /// Locked only by the writer thread while it writes, and by a redirect.
    out: Mutex<Output>,
}

#[derive(Default)]
struct Held {
    text: Vec<u8>,
    dropped: u64,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Held> {
        // A panic elsewhere while holding this lock leaves plain bytes behind: still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn out(&self) -> MutexGuard<'_, Output> {
        self.out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LogWriter {
    /// Starts a thread writing what goes into the returned buffer to `out`.
    pub fn start(out: impl Write + Send + 'static) -> (LogBuffer, LogWriter) {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            ready: Condvar::new(),
            out: Mutex::new(Box::new(out)),
        });
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = shared.clone();
                move || write_loop(&shared)
            })
            .ok();
        let buffer = LogBuffer {
            shared: shared.clone(),
        };
        (buffer, LogWriter { shared, thread })
    }

    /// A handle that changes where the lines go.
    pub fn target(&self) -> LogTarget {
        LogTarget {
            shared: self.shared.clone(),
        }
    }
}

impl LogTarget {
    /// From now on lines go to `out`; the lines still held go to the previous output first,
    /// which is returned (so stderr can be put back later).
    pub fn redirect(&self, out: Output) -> Output {
        let mut current = self.shared.out();
        let text = std::mem::take(&mut self.shared.lock().text);
        let _ = current.write_all(&text);
        let _ = current.flush();
        std::mem::replace(&mut *current, out)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(shared: &Shared) {
    loop {
        let mut held = shared.lock();
        while held.text.is_empty() && held.dropped == 0 && !held.closed {
            held = shared
                .ready
                .wait(held)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let gather = !held.closed;
        drop(held);
        if gather {
            std::thread::sleep(GATHER);
        }
        // The output before the lines (as a redirect takes them), so no line overtakes another.
        let mut out = shared.out();
        let mut held = shared.lock();
        let text = std::mem::take(&mut held.text);
        let dropped = std::mem::take(&mut held.dropped);
        let closed = held.closed;
        drop(held);
        // Nowhere to report a failing stderr: the lines are lost either way.
        let _ = out.write_all(&text);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "codex-helper: {dropped} log line(s) dropped: stderr is read too slowly"
            );
        }
        let _ = out.flush();
        drop(out);
        if closed {
            return;
        }
    }
}

impl Write for LogBuffer {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut held = self.shared.lock();
        if held.closed {
            return Ok(line.len());
        }
        if held.text.len() + line.len() > HELD_MAX {
            held.dropped += 1;
            return Ok(line.len());
        }
        let was_empty = held.text.is_empty();
        held.text.extend_from_slice(line);
        drop(held);
        if was_empty {
            self.shared.ready.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that keeps what it is given and counts the calls.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut inner = self.0.lock().unwrap();
            inner.0.extend_from_slice(buf);
            inner.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_in_few_writes_and_none_is_lost_at_shutdown() {
        let capture = Capture::default();
        let (mut buffer, writer) = LogWriter::start(capture.clone());
        for i in 0..1000 {
            buffer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        drop(writer);
        let (text, writes) = capture.0.lock().unwrap().clone();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(text).unwrap(), expected);
        assert!(writes < 10, "{writes} writes for 1000 lines");
    }

    #[test]
    fn a_redirect_sends_later_lines_elsewhere_and_earlier_ones_where_they_were_going() {
        let (first, second) = (Capture::default(), Capture::default());
        let (mut buffer, writer) = LogWriter::start(first.clone());
        buffer.write_all(b"before\n").unwrap();
        let previous = writer.target().redirect(Box::new(second.clone()));
        buffer.write_all(b"during\n").unwrap();
        writer.target().redirect(previous);
        buffer.write_all(b"after\n").unwrap();
        drop(writer);
        let text = |c: &Capture| String::from_utf8(c.0.lock().unwrap().0.clone()).unwrap();
        assert_eq!(text(&first), "before\nafter\n");
        assert_eq!(text(&second), "during\n");
    }

    /// Stands for a terminal nobody reads: every write blocks until the test lets it go.
    struct Stalled(std::sync::mpsc::Receiver<()>, Capture);

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            self.1.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stderr_drops_and_counts_lines_instead_of_blocking() {
        let (release, stalled) = std::sync::mpsc::channel();
        let capture = Capture::default();
        let (mut buffer, writer) = LogWriter::start(Stalled(stalled, capture.clone()));
        let line = vec![b'x'; 1023];
        let mut line = line;
        line.push(b'\n');
        // Well past the cap; each write returns at once although nothing is being written.
        for _ in 0..3 * (HELD_MAX / line.len()) {
            buffer.write_all(&line).unwrap();
        }
        // Let every write through (the sender's drop ends the stall for good).
        drop(release);
        drop(writer);
        let text = String::from_utf8(capture.0.lock().unwrap().0.clone()).unwrap();
        assert!(text.len() <= 2 * HELD_MAX, "{} bytes kept", text.len());
        assert!(
            text.contains("log line(s) dropped: stderr is read too slowly"),
            "the loss is reported"
        );
    }
}
