//! A selection in a list taller than the screen: which row is selected, which row is at the
//! top of the view, and the selected row's identity, so a refresh that adds or drops rows
//! keeps the selection on the same row (a session id, a request id, an endpoint key) and
//! only clamps it when that row is gone.

/// The selection and the view of one list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The selected row.
    pub index: usize,
    /// The first row shown.
    pub top: usize,
    /// The selected row's identity, when the list had one.
    pub key: Option<String>,
}

impl Cursor {
    /// Moves the selection by `by` rows (clamped to the list) with `rows` rows on screen.
    pub fn step(&mut self, by: isize, keys: &[String], rows: usize) {
        let last = keys.len().saturating_sub(1);
        self.index = self.index.saturating_add_signed(by).min(last);
        self.settle(keys, rows);
    }

    /// Follows a new list: back on the row with the same identity if it is still there, else
    /// the same position clamped to the new length. An empty list (a filter that keeps
    /// nothing, rows not read yet) keeps the identity for when rows come back.
    pub fn refresh(&mut self, keys: &[String], rows: usize) {
        if keys.is_empty() {
            self.top = 0;
            return;
        }
        let found = self
            .key
            .as_ref()
            .and_then(|key| keys.iter().position(|k| k == key));
        if let Some(at) = found {
            // The rows above may have grown or shrunk: the view moves with the row.
            let offset = self.index.saturating_sub(self.top);
            self.top = at.saturating_sub(offset);
            self.index = at;
        } else {
            self.index = self.index.min(keys.len().saturating_sub(1));
        }
        self.settle(keys, rows);
    }

    /// The first row to show of `len` with `rows` on screen, so that the selection is in
    /// view: the stored top when it already is (the screen may have been resized since).
    pub fn top_for(&self, len: usize, rows: usize) -> usize {
        let rows = rows.max(1);
        let index = self.index.min(len.saturating_sub(1));
        let mut top = self.top.min(len.saturating_sub(rows));
        if index < top {
            top = index;
        } else if index >= top + rows {
            top = index + 1 - rows;
        }
        top
    }

    fn settle(&mut self, keys: &[String], rows: usize) {
        self.top = self.top_for(keys.len(), rows);
        self.key = keys.get(self.index).cloned();
    }
}

/// How far a movement key moves in a list with `rows` rows on screen.
pub fn movement(code: crossterm::event::KeyCode, rows: usize) -> Option<isize> {
    use crossterm::event::KeyCode;
    match code {
        KeyCode::Up | KeyCode::Char('k') => Some(-1),
        KeyCode::Down | KeyCode::Char('j') => Some(1),
        KeyCode::PageUp => Some(-(rows as isize)),
        KeyCode::PageDown => Some(rows as isize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("row{i}")).collect()
    }

    #[test]
    fn moving_keeps_the_selection_in_view_and_in_the_list() {
        let rows = keys(30);
        let mut cursor = Cursor::default();
        cursor.step(-1, &rows, 10);
        assert_eq!((cursor.index, cursor.top), (0, 0));
        cursor.step(12, &rows, 10);
        assert_eq!((cursor.index, cursor.top), (12, 3));
        cursor.step(100, &rows, 10);
        assert_eq!((cursor.index, cursor.top), (29, 20));
        assert_eq!(cursor.key.as_deref(), Some("row29"));
        // Moving up inside the view does not scroll it.
        cursor.step(-5, &rows, 10);
        assert_eq!((cursor.index, cursor.top), (24, 20));
        cursor.step(-10, &rows, 10);
        assert_eq!((cursor.index, cursor.top), (14, 14));
    }

    #[test]
    fn a_refresh_keeps_the_same_row_or_clamps() {
        let mut cursor = Cursor::default();
        cursor.step(5, &keys(30), 10);
        // Two new rows on top: the selection follows row5 to index 7, the view with it.
        let mut grown = vec!["new1".to_string(), "new0".to_string()];
        grown.extend(keys(30));
        cursor.refresh(&grown, 10);
        assert_eq!(
            (cursor.index, cursor.top, cursor.key.as_deref()),
            (7, 2, Some("row5"))
        );
        // The row is gone and the list is short: clamped to the last row.
        cursor.refresh(&keys(3), 10);
        assert_eq!((cursor.index, cursor.top), (2, 0));
        assert_eq!(cursor.key.as_deref(), Some("row2"));
        // Nothing shown for a while (a filter): the row is found again when it is back.
        cursor.refresh(&[], 10);
        assert_eq!(cursor.key.as_deref(), Some("row2"));
        cursor.refresh(&keys(30), 10);
        assert_eq!((cursor.index, cursor.key.as_deref()), (2, Some("row2")));
    }

    #[test]
    fn the_view_is_fitted_to_a_smaller_screen() {
        let rows = keys(30);
        let mut cursor = Cursor::default();
        cursor.step(20, &rows, 25);
        assert_eq!(cursor.top, 0);
        assert_eq!(cursor.top_for(30, 5), 16);
        assert_eq!(cursor.top_for(30, 0), 20);
    }
}
