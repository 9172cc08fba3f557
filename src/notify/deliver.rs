//! Delivery: a desktop toast (`notify-send` on Linux, `osascript` on macOS, when installed)
//! and the user's command with the event's JSON on stdin. Every program run is bounded in
//! time (killed past its timeout) and never on the proxy's event loop: the [`super::Notifier`]
//! thread and `notify codex` call this.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Event, NotifySettings};

/// A toast is given this long to be shown.
const TOAST_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a failed command's stderr is quoted in the log.
const STDERR_QUOTED: usize = 300;

/// The desktop notifier found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toaster {
    /// `notify-send` (libnotify), Linux and BSDs.
    NotifySend(PathBuf),
    /// `osascript`'s `display notification`, macOS.
    Osascript(PathBuf),
}

impl Toaster {
    /// The notifier on `PATH` for this platform, if any.
    pub fn detect() -> Option<Self> {
        let path = std::env::var_os("PATH")?;
        if cfg!(target_os = "macos") {
            find_program(&path, "osascript").map(Self::Osascript)
        } else if cfg!(unix) {
            find_program(&path, "notify-send").map(Self::NotifySend)
        } else {
            None
        }
    }

    /// The program and arguments that show `event`.
    pub fn command(&self, event: &Event) -> (PathBuf, Vec<String>) {
        match self {
            Self::NotifySend(program) => (
                program.clone(),
                vec![
                    "--app-name=codex-helper".into(),
                    event.title.clone(),
                    event.body(),
                ],
            ),
            Self::Osascript(program) => (
                program.clone(),
                vec![
                    "-e".into(),
                    format!(
                        "display notification {} with title {}",
                        applescript_string(&event.body()),
                        applescript_string(&event.title)
                    ),
                ],
            ),
        }
    }
}

/// `text` as an AppleScript string literal: quotes and backslashes escaped, line breaks as
/// spaces (a notification is one line).
pub fn applescript_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first `name` in the `PATH` value `path` that is a file.
pub fn find_program(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// How the channels are set up for one run: the toast (if wanted and found) and the command.
#[derive(Debug, Clone)]
pub struct Channels {
    pub toast: Option<Toaster>,
    pub command: Option<Vec<String>>,
    pub command_timeout: Duration,
}

impl Channels {
    /// From `[notify]`; `toast` overrides the setting (`notify codex --toast / --no-toast`).
    pub fn from_settings(settings: &NotifySettings, toast: Option<bool>) -> Self {
        let toast = toast.unwrap_or_else(|| settings.toast_wanted());
        Self {
            toast: toast.then(Toaster::detect).flatten(),
            command: settings.command(),
            command_timeout: Duration::from_secs(settings.command_timeout_secs.max(1)),
        }
    }

    /// Whether anything can be delivered at all.
    pub fn any(&self) -> bool {
        self.toast.is_some() || self.command.is_some()
    }

    /// Shows and hands on `event`; what failed, in words (each channel is tried).
    pub fn deliver(&self, event: &Event) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(toaster) = &self.toast {
            let (program, args) = toaster.command(event);
            if let Err(e) = run(&program, &args, None, TOAST_TIMEOUT) {
                problems.push(format!("desktop notification: {e}"));
            }
        }
        if let Some(argv) = &self.command {
            let (program, args) = argv.split_first().expect("a command is never empty");
            let json = event.to_json();
            if let Err(e) = run(
                Path::new(program),
                args,
                Some(json.as_bytes()),
                self.command_timeout,
            ) {
                problems.push(format!("notify command `{program}`: {e}"));
            }
        }
        problems
    }
}

/// Stops a child and everything in its process group.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: a signal to the process group this function's caller created for the child.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

/// Runs `program` with `args`, `stdin` written to it, killed past `timeout`. An error says
/// what went wrong (not found, exit status with the start of its stderr, timed out).
pub fn run(
    program: &Path,
    args: &[String],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<(), String> {
    let mut command = Command::new(program);
    #[cfg(unix)]
    {
        // Its own process group: a timeout stops whatever it started too.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    // Written from a thread of its own: a program that does not read its stdin must not hold
    // this one past the timeout.
    let writer = stdin.zip(child.stdin.take()).map(|(bytes, mut pipe)| {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                kill_group(&mut child);
                let _ = child.wait();
                return Err(format!(
                    "still running after {} s; stopped",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    if status.success() {
        return Ok(());
    }
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = (&mut pipe).take(4096).read_to_end(&mut stderr);
    }
    let said: String = String::from_utf8_lossy(&stderr)
        .trim()
        .chars()
        .take(STDERR_QUOTED)
        .collect();
    Err(if said.is_empty() {
        format!("exited with {status}")
    } else {
        format!("exited with {status}: {said}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::EventKind;

    fn event() -> Event {
        Event {
            kind: EventKind::Failover,
            relay: Some("a.x".into()),
            title: "T \"q\"".into(),
            message: "line1\nline2 \\ end".into(),
            at_ms: 1,
            suppressed: 0,
            details: serde_json::json!({}),
        }
    }

    #[test]
    fn applescript_strings_are_escaped() {
        assert_eq!(applescript_string("a \"b\" \\ c\nd"), r#""a \"b\" \\ c d""#);
        let (_, args) = Toaster::Osascript("/usr/bin/osascript".into()).command(&event());
        assert_eq!(
            args[1],
            r#"display notification "line1 line2 \\ end" with title "T \"q\"""#
        );
        let (_, args) = Toaster::NotifySend("/usr/bin/notify-send".into()).command(&event());
        assert_eq!(
            args[1..],
            ["T \"q\"".to_string(), "line1\nline2 \\ end".to_string()]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_command_gets_the_json_on_stdin_and_failures_are_told() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let script = format!("cat > '{}'", out.display());
        let sh = Path::new("/bin/sh");
        let args = ["-c".to_string(), script];
        run(
            sh,
            &args,
            Some(b"{\"kind\":\"failover\"}"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"kind\":\"failover\"}"
        );
        let failing = ["-c".to_string(), "echo broken >&2; exit 3".to_string()];
        let e = run(sh, &failing, None, Duration::from_secs(10)).unwrap_err();
        assert!(e.contains("exit status: 3") && e.ends_with("broken"), "{e}");
        let e = run(
            Path::new("/no/such/program"),
            &[],
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.starts_with("cannot run /no/such/program"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_command_that_hangs_is_stopped_at_its_timeout() {
        let sh = Path::new("/bin/sh");
        // Reads nothing and sleeps: neither a full pipe nor the sleep holds the caller.
        let args = ["-c".to_string(), "sleep 30".to_string()];
        let big = vec![b'x'; 1 << 20];
        let e = run(sh, &args, Some(&big), Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("still running after 1 s"), "{e}");
    }

    #[test]
    fn programs_are_found_on_the_path_given() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notify-send"), "").unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(
            find_program(&path, "notify-send"),
            Some(dir.path().join("notify-send"))
        );
        assert_eq!(find_program(&path, "osascript"), None);
    }
}
