//! `[notify]`: which events reach the user, and how (a desktop toast, a command of theirs).
//! The original codex-helper's `[notify]` keys are read too, so its config loads unchanged:
//! `system.enabled`, `exec.enabled` / `exec.command` and `min_duration_ms` take effect when
//! the keys of ours are not set; the rest are reported as not used ([`NotifySettings::unused_original_keys`]).

use serde::Deserialize;

/// A key of the original's read but not acted on (as `model::Deferred`; not imported from
/// there, which imports this file).
type Deferred = Option<toml::Value>;

/// What can be notified.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A Codex turn that took at least `min_turn_secs` (through `notify codex`).
    LongTurn,
    /// A request that one relay failed and another answered.
    Failover,
    /// A relay taken out of routing by its balance.
    RelayExhausted,
    /// A request no relay could take: the proxy answered itself.
    AllBlocked,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        Self::LongTurn,
        Self::Failover,
        Self::RelayExhausted,
        Self::AllBlocked,
    ];

    /// The name in the config and in the event's JSON (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LongTurn => "long_turn",
            Self::Failover => "failover",
            Self::RelayExhausted => "relay_exhausted",
            Self::AllBlocked => "all_blocked",
        }
    }
}

/// `[notify]`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Nothing is notified unless this is `true`.
    pub enabled: bool,
    /// A desktop toast (`notify-send` on Linux, `osascript` on macOS) when one of them is
    /// installed. Unset: on, unless the original's `system.enabled = false` says otherwise.
    pub toast: Option<bool>,
    /// A program and its arguments, run for each event with the event's JSON on stdin.
    pub command: Option<Vec<String>>,
    /// A command still running after this long is killed.
    pub command_timeout_secs: u64,
    /// `notify codex` notifies turns that took at least this long. Unset: the original's
    /// `min_duration_ms`, else 60 s.
    pub min_turn_secs: Option<u64>,
    /// One event of a kind for a relay per window: repeats inside it are counted, not sent
    /// (the next one sent says how many were held back).
    pub rate_limit_secs: u64,
    /// Which events are notified (all by default).
    pub events: Vec<EventKind>,

    // The original codex-helper's keys.
    /// `system = { enabled = bool }`: its toast switch.
    #[schemars(with = "Option<serde_json::Value>")]
    pub system: Deferred,
    /// `exec = { enabled = bool, command = [..] | ".." }`: its command.
    #[schemars(with = "Option<serde_json::Value>")]
    pub exec: Deferred,
    pub min_duration_ms: Option<u64>,
    #[schemars(with = "Option<serde_json::Value>")]
    pub merge_window_ms: Deferred,
    #[schemars(with = "Option<serde_json::Value>")]
    pub global_cooldown_ms: Deferred,
    #[schemars(with = "Option<serde_json::Value>")]
    pub per_thread_cooldown_ms: Deferred,
    #[schemars(with = "Option<serde_json::Value>")]
    pub recent_search_window_ms: Deferred,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            enabled: false,
            toast: None,
            command: None,
            command_timeout_secs: 10,
            min_turn_secs: None,
            rate_limit_secs: 300,
            events: EventKind::ALL.to_vec(),
            system: None,
            exec: None,
            min_duration_ms: None,
            merge_window_ms: None,
            global_cooldown_ms: None,
            per_thread_cooldown_ms: None,
            recent_search_window_ms: None,
        }
    }
}

impl NotifySettings {
    /// Whether a toast is wanted (found or not).
    pub fn toast_wanted(&self) -> bool {
        self.toast.unwrap_or_else(|| {
            let original = self.system.as_ref().and_then(|s| s.get("enabled"));
            original.and_then(toml::Value::as_bool).unwrap_or(true)
        })
    }

    /// The command to run for each event: ours, else the original's enabled `exec.command`
    /// (an array, or a string run as one program without a shell).
    pub fn command(&self) -> Option<Vec<String>> {
        if let Some(command) = self.command.clone().filter(|c| !c.is_empty()) {
            return Some(command);
        }
        let exec = self.exec.as_ref()?;
        if exec.get("enabled").and_then(toml::Value::as_bool) == Some(false) {
            return None;
        }
        match exec.get("command")? {
            toml::Value::String(program) if !program.is_empty() => Some(vec![program.clone()]),
            toml::Value::Array(parts) => {
                let argv: Option<Vec<String>> = parts
                    .iter()
                    .map(|p| p.as_str().map(str::to_string))
                    .collect();
                argv.filter(|a| !a.is_empty())
            }
            _ => None,
        }
    }

    /// The shortest turn `notify codex` tells about, in seconds.
    pub fn min_turn_secs(&self) -> u64 {
        self.min_turn_secs
            .or(self.min_duration_ms.map(|ms| ms / 1000))
            .unwrap_or(60)
    }

    /// Whether `kind` is notified at all.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.enabled && self.events.contains(&kind)
    }

    /// The original's keys present that this version does not act on, as dotted keys.
    pub fn unused_original_keys(&self) -> Vec<String> {
        [
            ("merge_window_ms", self.merge_window_ms.is_some()),
            ("global_cooldown_ms", self.global_cooldown_ms.is_some()),
            (
                "per_thread_cooldown_ms",
                self.per_thread_cooldown_ms.is_some(),
            ),
            (
                "recent_search_window_ms",
                self.recent_search_window_ms.is_some(),
            ),
        ]
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(key, _)| format!("notify.{key}"))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotifySettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_notify_nothing_until_enabled() {
        let s = NotifySettings::default();
        assert!(!s.wants(EventKind::Failover));
        assert_eq!(s.min_turn_secs(), 60);
        assert!(s.toast_wanted());
        let s = parse("enabled = true\nevents = [\"failover\"]");
        assert!(s.wants(EventKind::Failover) && !s.wants(EventKind::AllBlocked));
    }

    #[test]
    fn the_originals_keys_fill_in_what_ours_leave_out() {
        let s = parse(
            "enabled = true\nmin_duration_ms = 90000\nmerge_window_ms = 10000\n\
             [system]\nenabled = false\n[exec]\nenabled = true\ncommand = [\"notify-me\", \"--json\"]\n",
        );
        assert_eq!(s.min_turn_secs(), 90);
        assert!(!s.toast_wanted());
        assert_eq!(s.command().unwrap(), ["notify-me", "--json"]);
        assert_eq!(s.unused_original_keys(), ["notify.merge_window_ms"]);
        let s = parse("command = [\"mine\"]\nmin_turn_secs = 5\n[exec]\ncommand = \"theirs\"");
        assert_eq!(s.command().unwrap(), ["mine"]);
        assert_eq!(s.min_turn_secs(), 5);
        let s = parse("[exec]\nenabled = false\ncommand = \"theirs\"");
        assert_eq!(s.command(), None);
    }

    #[test]
    fn kind_names_are_the_serde_names() {
        for kind in EventKind::ALL {
            let parsed: NotifySettings =
                toml::from_str(&format!("events = [\"{}\"]", kind.as_str())).unwrap();
            assert_eq!(parsed.events, [kind]);
        }
        assert!(toml::from_str::<NotifySettings>("events = [\"fail_over\"]").is_err());
        assert!(toml::from_str::<NotifySettings>("comand = [\"x\"]").is_err());
    }
}
