//! The Sessions page's pickers: a small menu of route targets to pin a session to, or of
//! profiles to apply. Pure: the choices are built from what was read, and a key returns what
//! it chose, so the App only sends it.

use crossterm::event::KeyCode;

use super::data::{Endpoint, Profiles, SessionChange};
use super::scroll::{Cursor, movement};

/// Choices a picker shows at once.
pub const PICKER_ROWS: usize = 8;

/// What a picker chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickKind {
    /// A route target to pin the session to.
    Pin,
    /// A profile to apply, or none.
    Profile,
}

/// One choice of a picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The target or profile name; `None` is "no profile".
    pub value: Option<String>,
    /// A provider alone: any of its endpoints.
    pub any_endpoint: bool,
    /// What a profile sets (`gpt-5 · high`).
    pub note: String,
}

/// A small menu over the Sessions page: `↑/↓` choose, `Enter` applies, `Esc` cancels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picker {
    pub kind: PickKind,
    /// The session the choice applies to (as selected when the picker opened).
    pub session: String,
    pub choices: Vec<Choice>,
    pub cursor: Cursor,
}

/// What a key did to a picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked {
    /// Still open (moved, or a key it ignores).
    Open,
    Cancelled,
    Chosen(SessionChange),
}

/// Every route target: each provider (any of its endpoints), then its `provider.endpoint`s.
pub fn pin_choices(endpoints: &[Endpoint]) -> Vec<Choice> {
    let mut choices: Vec<Choice> = Vec::new();
    for endpoint in endpoints {
        let provider = Some(endpoint.provider.clone());
        if !choices
            .iter()
            .any(|c| c.any_endpoint && c.value == provider)
        {
            choices.push(Choice {
                value: provider,
                any_endpoint: true,
                note: String::new(),
            });
        }
        choices.push(Choice {
            value: Some(endpoint.key.clone()),
            any_endpoint: false,
            note: String::new(),
        });
    }
    choices
}

/// Every profile with what it sets, then "no profile".
pub fn profile_choices(profiles: &Profiles) -> Vec<Choice> {
    let mut choices: Vec<Choice> = profiles
        .profiles
        .iter()
        .map(|p| Choice {
            value: Some(p.name.clone()),
            any_endpoint: false,
            note: [&p.model, &p.reasoning_effort, &p.service_tier]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(" · "),
        })
        .collect();
    choices.push(Choice {
        value: None,
        any_endpoint: false,
        note: String::new(),
    });
    choices
}

impl Picker {
    /// A picker on `current` when it is among the choices, else on the first.
    pub fn open(
        kind: PickKind,
        session: String,
        choices: Vec<Choice>,
        current: Option<&str>,
    ) -> Self {
        let mut picker = Picker {
            kind,
            session,
            choices,
            cursor: Cursor::default(),
        };
        let at = current
            .and_then(|c| {
                picker
                    .choices
                    .iter()
                    .position(|choice| choice.value.as_deref() == Some(c))
            })
            .unwrap_or(0);
        picker.cursor.step(at as isize, &picker.keys(), PICKER_ROWS);
        picker
    }

    /// Applies a key: movement, `b` (the next profile, round), `Enter`, `Esc`.
    pub fn on_key(&mut self, code: KeyCode) -> Picked {
        let keys = self.keys();
        let step = match (movement(code, PICKER_ROWS), code) {
            (Some(step), _) => step,
            (None, KeyCode::Char('b')) if self.kind == PickKind::Profile => {
                if self.cursor.index + 1 >= keys.len() {
                    -(self.cursor.index as isize)
                } else {
                    1
                }
            }
            (None, KeyCode::Esc) => return Picked::Cancelled,
            (None, KeyCode::Enter) => return self.chosen().map_or(Picked::Open, Picked::Chosen),
            _ => return Picked::Open,
        };
        self.cursor.step(step, &keys, PICKER_ROWS);
        Picked::Open
    }

    fn chosen(&self) -> Option<SessionChange> {
        let value = self.choices.get(self.cursor.index)?.value.clone();
        Some(match self.kind {
            PickKind::Pin => SessionChange::Pin(value?),
            PickKind::Profile => SessionChange::Profile(value),
        })
    }

    fn keys(&self) -> Vec<String> {
        self.choices
            .iter()
            .map(|c| c.value.clone().unwrap_or_default())
            .collect()
    }
}
