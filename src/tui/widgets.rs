//! Shared text helpers for the pages: widths are display columns (a CJK character takes two),
//! so a Chinese line is cut where the terminal cuts, and money is never cut in half.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

const ELLIPSIS: char = '…';

/// Display columns `text` takes.
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` in at most `max` columns: whole when it fits, else cut with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        // Room is kept for the ellipsis (one column).
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push(ELLIPSIS);
    out
}

/// `text` in at most `max` columns, cut in the middle: `019a3c1e…3a6e9c10`. Ids differ at
/// both ends (a time prefix, a random tail), so keeping both tells them apart better than a
/// cut end would.
pub fn middle(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    if max <= 2 {
        return truncate(text, max);
    }
    // The ellipsis takes one column; the head gets the odd one.
    let room = max - 1;
    let head_room = room.div_ceil(2);
    let tail_room = room - head_room;
    let mut head = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > head_room {
            break;
        }
        head.push(c);
        used += w;
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used = 0;
    for c in text.chars().rev() {
        let w = c.width().unwrap_or(0);
        if used + w > tail_room {
            break;
        }
        tail.push(c);
        used += w;
    }
    head.push(ELLIPSIS);
    head.extend(tail.into_iter().rev());
    head
}

/// `text` in exactly `columns` columns: cut in the middle, then padded with spaces.
pub fn cell_middle(text: &str, columns: usize) -> String {
    let mut out = middle(text, columns);
    let pad = columns.saturating_sub(width(&out));
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

/// `text` in exactly `columns` columns: truncated, then padded with spaces.
pub fn cell(text: &str, columns: usize) -> String {
    let mut out = truncate(text, columns);
    let pad = columns.saturating_sub(width(&out));
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

/// `text` right-aligned in exactly `columns` columns.
pub fn cell_right(text: &str, columns: usize) -> String {
    let fitted = truncate(text, columns);
    let pad = columns.saturating_sub(width(&fitted));
    format!("{}{fitted}", " ".repeat(pad))
}

/// A money amount in at most `max` columns: whole, or an ellipsis alone: a cut amount would
/// read as a different amount.
pub fn money_fit(amount: &str, max: usize) -> String {
    if width(amount) <= max {
        amount.to_string()
    } else if max >= 1 {
        ELLIPSIS.to_string()
    } else {
        String::new()
    }
}

/// `$12.35`; `$0.0123` below a dollar, so a request's small cost does not read as zero.
pub fn usd(amount: f64) -> String {
    if amount != 0.0 && amount.abs() < 1.0 {
        format!("${amount:.4}")
    } else {
        format!("${amount:.2}")
    }
}

/// `1.2k`, `3.4M` token counts.
pub fn count(n: u64) -> String {
    match n {
        n if n < 1_000 => n.to_string(),
        n if n < 1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        n => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Milliseconds as `850 ms` or `2.3 s`.
pub fn millis(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// A span of time as `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// How long ago, in one coarse unit (a table cell): `45 s`, `12 min`, `3 h`, `2 d`.
pub fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_cut_by_display_columns() {
        // Each character is two columns: five columns hold two and the ellipsis.
        assert_eq!(truncate("中文字符串", 5), "中文…");
        assert_eq!(width(&truncate("中文字符串", 5)), 5);
        assert_eq!(truncate("中文字符串", 10), "中文字符串");
        assert_eq!(cell("中文", 6), "中文  ");
        assert_eq!(width(&cell("中文字符串", 7)), 7);
    }

    #[test]
    fn ids_are_cut_in_the_middle_by_display_columns() {
        let id = "019a3c1e-7b2d-7c41-9f7e-2b8d3a6e9c10";
        assert_eq!(middle(id, 40), id);
        assert_eq!(middle(id, 13), "019a3c…6e9c10");
        assert_eq!(width(&middle(id, 13)), 13);
        // Wide characters are never split: the cut stays within the columns.
        assert_eq!(middle("会话一二三四五六", 9), "会话…五六");
        assert_eq!(width(&middle("会话一二三四五六", 8)), 7);
        assert_eq!(cell_middle(id, 14), "019a3c1…6e9c10");
        assert_eq!(width(&cell_middle("会话一二三四五六", 8)), 8);
        assert_eq!(middle(id, 2), "0…");
        assert_eq!(ago(59_000), "59 s");
        assert_eq!(ago(3_599_000), "59 min");
        assert_eq!(ago(7_300_000), "2 h");
        assert_eq!(ago(200_000_000), "2 d");
    }

    #[test]
    fn money_is_whole_or_an_ellipsis() {
        assert_eq!(money_fit("$1234.56", 8), "$1234.56");
        assert_eq!(money_fit("$1234.56", 7), "…");
        assert_eq!(money_fit("$1234.56", 0), "");
        assert_eq!(usd(0.0123), "$0.0123");
        assert_eq!(usd(12.345), "$12.35");
    }
}
