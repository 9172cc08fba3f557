//! Reading `filter.json` and the slot holding the rules in force.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context;

use super::rules::{FilterError, Rules};

/// The largest `filter.json` read.
pub const FILE_MAX_BYTES: u64 = 4 << 20;

/// The rules in `path`: none when the file does not exist; an error naming the file (and the
/// rule) when it cannot be read or used.
pub fn load(path: &Path) -> anyhow::Result<Rules> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Rules::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if metadata.len() > FILE_MAX_BYTES {
        return Err(FilterError::File {
            path: path.to_path_buf(),
            message: format!(
                "{} bytes; a filter file may have at most {FILE_MAX_BYTES}",
                metadata.len()
            ),
        }
        .into());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (it must be UTF-8 JSON)", path.display()))?;
    Ok(Rules::compile(path, &text)?)
}

/// The rules in force, swapped whole on reload; a request takes the rules once per attempt.
#[derive(Debug, Clone, Default)]
pub struct FilterSlot(Arc<RwLock<Arc<Rules>>>);

impl FilterSlot {
    /// The rules in force.
    pub fn get(&self) -> Arc<Rules> {
        self.0.read().expect("filter lock").clone()
    }

    /// Puts `rules` in force for the bodies sent from now on.
    pub fn set(&self, rules: Rules) {
        *self.0.write().expect("filter lock") = Arc::new(rules);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_no_rules_and_a_big_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("filter.json");
        assert!(load(&path).unwrap().is_empty());
        std::fs::write(&path, vec![b' '; FILE_MAX_BYTES as usize + 1]).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("filter.json") && e.contains("at most"), "{e}");
    }

    #[test]
    fn the_slot_hands_out_what_was_set_last() {
        let slot = FilterSlot::default();
        assert!(slot.get().is_empty());
        let rules = Rules::compile(Path::new("f"), r#"{"op":"remove","source":"a"}"#).unwrap();
        slot.clone().set(rules);
        assert_eq!(slot.get().len(), 1);
    }
}
