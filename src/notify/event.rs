//! One notification, as a command receives it on stdin (JSON) and a toast shows it.

use serde::Serialize;

use super::EventKind;

/// One event for the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `long_turn`, `failover`, `relay_exhausted`, `all_blocked`.
    #[serde(serialize_with = "kind_name")]
    pub kind: EventKind,
    /// The relay (`provider.endpoint`) it is about, if one: the rate limit is per kind and relay.
    pub relay: Option<String>,
    /// A toast's title.
    pub title: String,
    /// One line for a person.
    pub message: String,
    /// When it happened (epoch ms).
    pub at_ms: u64,
    /// Events of this kind and relay held back by the rate limit since the last one sent.
    pub suppressed: u32,
    /// What a script may want: trace id, session, the relays tried, durations.
    pub details: serde_json::Value,
}

fn kind_name<S: serde::Serializer>(kind: &EventKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

impl Event {
    /// The JSON a command gets on stdin.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event is plain data")
    }

    /// The toast's text: the message, and how many were held back.
    pub fn body(&self) -> String {
        match self.suppressed {
            0 => self.message.clone(),
            n => format!("{} ({n} more like it held back)", self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_names_the_kind_by_its_config_name() {
        let event = Event {
            kind: EventKind::RelayExhausted,
            relay: Some("a.default".into()),
            title: "t".into(),
            message: "m".into(),
            at_ms: 5,
            suppressed: 2,
            details: serde_json::json!({}),
        };
        let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(json["kind"], "relay_exhausted");
        assert_eq!(json["relay"], "a.default");
        assert_eq!(event.body(), "m (2 more like it held back)");
    }
}
