//! Keeping the bytes of the lines an edit of Codex's `config.toml` did not touch.
//!
//! `toml_edit` renders every line break outside multi-line strings as LF and ends the last
//! line with one, so its rendering of an edited file differs from the file on lines the edit
//! never touched: a CRLF file (or one CRLF line in an LF file) and a file without a final line
//! break would come back changed. [`keep_untouched`] lines the rendering of the edit up
//! against the rendering of the file as it was (a line diff), takes every line the edit left
//! alone from the file itself with its own break, and ends the lines it adds the way the file
//! ends most of its lines.

use similar::{Algorithm, DiffTag, capture_diff_slices};

/// `edited` (the rendering of `before` after an edit) with every line the edit left alone
/// exactly as in `before`. `untouched` is the rendering of `before` without the edit.
///
/// With `restore_unterminated_end`, a file whose last line lost its missing final break only
/// because lines followed it that the edit removed gets it back missing (`switch on` added
/// lines after a last line without a break; `switch off` takes them away again).
///
/// When `before` and `untouched` do not match line for line (not a rendering of it), `edited`
/// is returned as it is.
pub fn keep_untouched(
    before: &str,
    untouched: &str,
    edited: &str,
    restore_unterminated_end: bool,
) -> String {
    let before_lines: Vec<&str> = before.split_inclusive('\n').collect();
    let untouched_lines: Vec<&str> = untouched.split_inclusive('\n').collect();
    let aligned = before_lines.len() == untouched_lines.len()
        && before_lines
            .iter()
            .zip(&untouched_lines)
            .all(|(b, u)| content(b) == content(u));
    if !aligned {
        return edited.to_string();
    }
    let edited_lines: Vec<&str> = edited.split_inclusive('\n').collect();
    let newline = majority_break(before);

    let mut out: Vec<String> = Vec::with_capacity(edited_lines.len());
    let mut tail_removed = false;
    for op in capture_diff_slices(Algorithm::Myers, &untouched_lines, &edited_lines) {
        let (tag, old, new) = op.as_tag_tuple();
        tail_removed = tag == DiffTag::Delete && old.end == before_lines.len();
        match tag {
            DiffTag::Equal => out.extend(before_lines[old].iter().map(|l| l.to_string())),
            DiffTag::Delete => {}
            DiffTag::Insert => out.extend(edited_lines[new].iter().map(|l| with_break(l, newline))),
            DiffTag::Replace => {
                // A line changed in place keeps the break it had.
                let same_count = old.len() == new.len();
                let olds = &before_lines[old];
                out.extend(edited_lines[new].iter().enumerate().map(|(i, l)| {
                    match same_count.then(|| line_break(olds[i])) {
                        Some(Some(brk)) => with_break(l, brk),
                        // The last line had none; it gets one below if lines follow it.
                        Some(None) => content(l).to_string(),
                        None => with_break(l, newline),
                    }
                }));
            }
        }
    }
    // A line taken from `before` without a break (its last) gets one when lines follow it.
    let last = out.len().saturating_sub(1);
    for line in &mut out[..last] {
        if line_break(line).is_none() {
            line.push_str(newline);
        }
    }
    if restore_unterminated_end && tail_removed {
        if let Some(line) = out.last_mut() {
            line.truncate(content(line).len());
        }
    }
    out.concat()
}

/// The break most of `text`'s lines end with (LF when there are none).
pub fn majority_break(text: &str) -> &'static str {
    let crlf = text.matches("\r\n").count();
    if crlf > 0 && crlf * 2 > text.matches('\n').count() {
        "\r\n"
    } else {
        "\n"
    }
}

/// Whether `text`'s last line has no line break (a non-empty file only).
pub fn unterminated(text: &str) -> bool {
    !text.is_empty() && !text.ends_with('\n')
}

/// A line without its break.
fn content(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

fn line_break(line: &str) -> Option<&'static str> {
    if line.ends_with("\r\n") {
        Some("\r\n")
    } else if line.ends_with('\n') {
        Some("\n")
    } else {
        None
    }
}

/// `line` ending with `brk`; a line rendered without a break (the last) stays without one.
fn with_break(line: &str, brk: &str) -> String {
    match line_break(line) {
        Some(_) => format!("{}{brk}", content(line)),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `before` rendered the way `toml_edit` does: LF breaks and a final one.
    fn render(text: &str) -> String {
        let mut out = text.replace("\r\n", "\n");
        if unterminated(&out) {
            out.push('\n');
        }
        out
    }

    #[test]
    fn untouched_lines_keep_their_breaks_and_added_lines_follow_the_file() {
        let before = "a = 1\r\nb = 2\r\nc = 3\n";
        let edited = "a = 1\nb = 20\nc = 3\nd = 4\n";
        assert_eq!(
            keep_untouched(before, &render(before), edited, false),
            "a = 1\r\nb = 20\r\nc = 3\nd = 4\r\n"
        );
    }

    #[test]
    fn a_missing_final_break_is_added_only_when_lines_follow() {
        let before = "a = 1";
        let on = keep_untouched(before, &render(before), "a = 1\nx = 9\n", false);
        assert_eq!(on, "a = 1\nx = 9\n");
        assert_eq!(keep_untouched(on.as_str(), &on, "a = 1\n", true), "a = 1");
        assert_eq!(
            keep_untouched(on.as_str(), &on, "a = 1\n", false),
            "a = 1\n"
        );
        // An edit that only changes the last line keeps it without a break.
        assert_eq!(
            keep_untouched(before, &render(before), "a = 2\n", false),
            "a = 2"
        );
        assert_eq!(
            keep_untouched(before, &render(before), "a = 1\n", false),
            "a = 1"
        );
    }

    #[test]
    fn lines_appended_after_the_removed_ones_keep_the_final_break() {
        let on = "a = 1\nx = 9\ny = 8\n";
        assert_eq!(
            keep_untouched(on, on, "a = 1\ny = 8\n", true),
            "a = 1\ny = 8\n"
        );
    }

    #[test]
    fn a_rendering_that_does_not_line_up_is_taken_as_it_is() {
        assert_eq!(keep_untouched("a\nb\n", "a\n", "a\nc\n", false), "a\nc\n");
    }

    #[test]
    fn majority_break_counts_lines() {
        assert_eq!(majority_break(""), "\n");
        assert_eq!(majority_break("a\r\nb\r\nc\n"), "\r\n");
        assert_eq!(majority_break("a\r\nb\nc\n"), "\n");
    }
}
