//! `filter.json` followed while `serve` runs: checked once a second on a thread of its own
//! (reading and compiling never run on the proxy's event loop). A file that changed is compiled
//! and put in force; one that cannot be used is reported and the rules in force are kept; a
//! removed file means no rules.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::file::{FilterSlot, load};
use super::rules::Rules;

/// How often the file is checked.
const POLL: Duration = Duration::from_secs(1);

/// The watching thread; [`FilterWatcher::stop`] ends it.
pub struct FilterWatcher {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

/// What a file looked like when last read: a change of either means read it again.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Says on stderr what a loaded file holds (how many rules, which are literal).
pub fn describe(path: &Path, rules: &Rules) -> String {
    let mut text = format!("{}: {} filter rule(s)", path.display(), rules.len());
    for (index, why) in &rules.literal {
        text.push_str(&format!(
            "; rule {index}'s source is not a regex ({why}), matched literally"
        ));
    }
    text
}

impl FilterWatcher {
    /// Follows `path` from now on (its present content is in `slot` already).
    pub fn start(path: PathBuf, slot: FilterSlot) -> Self {
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("filter-watch".into())
            .spawn(move || {
                let mut seen = stamp(&path);
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(POLL) {
                    if let Some(said) = check(&path, &mut seen, &slot) {
                        eprintln!("codex-helper: {said}");
                    }
                }
            })
            .expect("start the filter watcher thread");
        Self { stop, thread }
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// One look at the file: when it changed since `seen`, it is read and its rules put in
/// force, or, when it cannot be used, the rules in force are kept. Returns what to say.
fn check(path: &Path, seen: &mut Stamp, slot: &FilterSlot) -> Option<String> {
    let now = stamp(path);
    if now == *seen {
        return None;
    }
    *seen = now;
    Some(match load(path) {
        Ok(rules) => {
            let said = format!("reloaded {}", describe(path, &rules));
            slot.set(rules);
            said
        }
        Err(e) => format!("{e:#}; still using the previous filter rules"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_put_in_force_and_a_bad_one_keeps_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("filter.json");
        let slot = FilterSlot::default();
        let mut seen = stamp(&path);
        assert_eq!(check(&path, &mut seen, &slot), None);
        std::fs::write(&path, r#"[{"op":"remove","source":"a"}]"#).unwrap();
        let said = check(&path, &mut seen, &slot).unwrap();
        assert!(said.ends_with("filter.json: 1 filter rule(s)"), "{said}");
        assert_eq!(slot.get().len(), 1);
        assert_eq!(check(&path, &mut seen, &slot), None);
        std::fs::write(&path, r#"[{"op":"remove","source":"b"}, {"op":"remove"}]"#).unwrap();
        let said = check(&path, &mut seen, &slot).unwrap();
        assert!(
            said.contains("filter.json: rule 1: missing field `source`")
                && said.ends_with("still using the previous filter rules"),
            "{said}"
        );
        assert_eq!(slot.get().len(), 1);
        std::fs::remove_file(&path).unwrap();
        assert!(
            check(&path, &mut seen, &slot)
                .unwrap()
                .contains("0 filter rule(s)")
        );
        assert!(slot.get().is_empty());
    }

    #[test]
    fn the_watcher_thread_stops_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        FilterWatcher::start(dir.path().join("filter.json"), FilterSlot::default()).stop();
    }
}
