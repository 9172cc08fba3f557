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

    let mut steps = steps(&untouched_lines, &edited_lines, &before_lines);
    slide_drops_up(&mut steps, &untouched_lines);
    let tail_removed = matches!(steps.last(), Some(Step::Drop(i)) if *i + 1 == before_lines.len());
    let mut out: Vec<String> = steps
        .iter()
        .filter_map(|step| match *step {
            Step::Keep(i) => Some(before_lines[i].to_string()),
            Step::Drop(_) => None,
            Step::Add(j, Break::Majority) => Some(with_break(edited_lines[j], newline)),
            Step::Add(j, Break::Same(brk)) => Some(with_break(edited_lines[j], brk)),
            // The last line had none; it gets one below if lines follow it.
            Step::Add(j, Break::None) => Some(content(edited_lines[j]).to_string()),
        })
        .collect();
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

/// One line of the result: a line of `before` kept (by index), dropped, or a line of the
/// edit added (by index) with the break it ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Keep(usize),
    Drop(usize),
    Add(usize, Break),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// The file's majority break.
    Majority,
    /// The break of the line it replaces.
    Same(&'static str),
    /// None: it replaces a last line that had none.
    None,
}

/// The line diff of the two renderings as steps, one per line.
fn steps(untouched: &[&str], edited: &[&str], before: &[&str]) -> Vec<Step> {
    let mut steps = Vec::with_capacity(untouched.len().max(edited.len()));
    for op in capture_diff_slices(Algorithm::Myers, untouched, edited) {
        let (tag, old, new) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => steps.extend(old.map(Step::Keep)),
            DiffTag::Delete => steps.extend(old.map(Step::Drop)),
            DiffTag::Insert => steps.extend(new.map(|j| Step::Add(j, Break::Majority))),
            DiffTag::Replace => {
                // A line changed in place keeps the break it had.
                let same_count = old.len() == new.len();
                let first_old = old.start;
                steps.extend(old.clone().map(Step::Drop));
                steps.extend(new.enumerate().map(|(k, j)| {
                    let brk = match same_count.then(|| line_break(before[first_old + k])) {
                        Some(Some(brk)) => Break::Same(brk),
                        Some(None) => Break::None,
                        None => Break::Majority,
                    };
                    Step::Add(j, brk)
                }));
            }
        }
    }
    steps
}

/// Where dropped lines could as well be the ones just above them (a kept line equal to the
/// last dropped one: the same text either way), takes the upper ones. The renderings compare
/// equal, but the file's lines may differ in their breaks, and what an edit removes starts
/// with the blank line above it (`toml_edit` puts a table's blank line before it): without
/// this, removing a table before a blank line of another break would keep the wrong one.
fn slide_drops_up(steps: &mut [Step], lines: &[&str]) {
    // Each slide moves a run up by one line; the budget only guards against a pathological
    // file of thousands of equal lines.
    let mut budget = steps.len().saturating_mul(4);
    let mut i = 0;
    while i + 1 < steps.len() && budget > 0 {
        let (Step::Keep(kept), Step::Drop(_)) = (steps[i], steps[i + 1]) else {
            i += 1;
            continue;
        };
        let end = steps[i + 1..]
            .iter()
            .position(|s| !matches!(s, Step::Drop(_)))
            .map_or(steps.len(), |n| i + 1 + n);
        let Step::Drop(last) = steps[end - 1] else {
            unreachable!("the run holds drops only")
        };
        if lines[kept] != lines[last] {
            i += 1;
            continue;
        }
        budget -= 1;
        steps[i] = Step::Drop(kept);
        steps[end - 1] = Step::Keep(last);
        // The run now starts one line higher: the line above may slide it further.
        i = i.saturating_sub(1);
    }
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

    /// Found by the `codex_patch` fuzz target: a table removed from before a blank line of
    /// another break kept its own blank line (CRLF) and dropped the user's (LF).
    #[test]
    fn removing_lines_keeps_the_blank_line_that_was_not_removed() {
        let on = "a = 1\r\n\r\n[ours]\r\nk = 1\r\n\n[theirs]\nk = 2\n";
        let untouched = on.replace("\r\n", "\n");
        let edited = "a = 1\n\n[theirs]\nk = 2\n";
        assert_eq!(
            keep_untouched(on, &untouched, edited, false),
            "a = 1\r\n\n[theirs]\nk = 2\n"
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
