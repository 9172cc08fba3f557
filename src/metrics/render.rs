//! The Prometheus text exposition format (version 0.0.4), written from plain data.
//!
//! Pure: a list of [`Family`]s in, the scrape body out. Each family gets its `# HELP` and
//! `# TYPE` lines, then its samples; a histogram's per-bucket counts become the cumulative
//! `_bucket{le=…}` lines (ending with `+Inf`), `_sum` and `_count`.

use std::fmt::Write;

/// The `Content-Type` of a scrape answer in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric's type, as the `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family: its name (a counter's ends in `_total`), help text, type and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

/// One labelled series of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `(label name, value)`; names are ours (fixed), values are escaped when written.
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// A sample's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter or a gauge.
    Number(f64),
    /// A histogram: `counts[i]` observations fell in bucket `i` (at most `bounds[i]`, above
    /// the bound before), and `counts[bounds.len()]` above the last bound; `sum` of all
    /// observations.
    Histogram {
        bounds: &'static [f64],
        counts: Vec<u64>,
        sum: f64,
    },
}

/// The scrape body for `families`, in their order.
pub fn render(families: &[Family]) -> String {
    let mut out = String::with_capacity(4096);
    for family in families {
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
        for sample in &family.samples {
            write_sample(&mut out, family.name, sample);
        }
    }
    out
}

fn write_sample(out: &mut String, name: &str, sample: &Sample) {
    match &sample.value {
        Value::Number(value) => {
            line(out, name, &sample.labels, None, &number(*value));
        }
        Value::Histogram {
            bounds,
            counts,
            sum,
        } => {
            let mut cumulative = 0u64;
            let bucket = format!("{name}_bucket");
            for (i, count) in counts.iter().enumerate() {
                cumulative += count;
                let le = bounds
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| number(*b));
                line(
                    out,
                    &bucket,
                    &sample.labels,
                    Some(&le),
                    &cumulative.to_string(),
                );
            }
            line(
                out,
                &format!("{name}_sum"),
                &sample.labels,
                None,
                &number(*sum),
            );
            line(
                out,
                &format!("{name}_count"),
                &sample.labels,
                None,
                &cumulative.to_string(),
            );
        }
    }
}

/// `name{labels,le="…"} value`.
fn line(
    out: &mut String,
    name: &str,
    labels: &[(&'static str, String)],
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    let le = le.map(|le| ("le", le));
    let all = labels.iter().map(|(k, v)| (*k, v.as_str())).chain(le);
    let mut first = true;
    for (key, value) in all {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(key);
        out.push_str("=\"");
        out.push_str(&escape_label(value));
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// A number as the format writes it: whole numbers without a fraction, `+Inf`, `-Inf`, `NaN`.
pub fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust's `Display` never uses an exponent and gives the shortest exact text.
        format!("{value}")
    }
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(labels: Vec<(&'static str, String)>, value: f64) -> Family {
        Family {
            name: "x_requests_total",
            help: "Requests.",
            kind: Kind::Counter,
            samples: vec![Sample {
                labels,
                value: Value::Number(value),
            }],
        }
    }

    #[test]
    fn a_family_has_help_type_and_its_samples() {
        let text = render(&[counter(vec![("code", "200".into())], 3.0)]);
        assert_eq!(
            text,
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{code=\"200\"} 3\n"
        );
    }

    #[test]
    fn a_sample_without_labels_has_no_braces() {
        let text = render(&[counter(vec![], 0.0)]);
        assert!(text.ends_with("\nx_requests_total 0\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let text = render(&[counter(
            vec![("provider", "a\"b\\c\nd".into()), ("endpoint", "é".into())],
            1.0,
        )]);
        assert!(
            text.contains(r#"x_requests_total{provider="a\"b\\c\nd",endpoint="é"} 1"#),
            "{text}"
        );
        // One sample line: the line feed did not break it.
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn help_text_is_escaped() {
        let mut family = counter(vec![], 1.0);
        family.help = "one\\two\nthree";
        assert!(render(&[family]).starts_with("# HELP x_requests_total one\\\\two\\nthree\n"));
    }

    #[test]
    fn numbers_are_written_as_the_format_reads_them() {
        assert_eq!(number(0.005), "0.005");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(1e-6), "0.000001");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf_sum_and_count() {
        let family = Family {
            name: "x_seconds",
            help: "Latency.",
            kind: Kind::Histogram,
            samples: vec![Sample {
                labels: vec![("endpoint", "a".into())],
                value: Value::Histogram {
                    bounds: &[0.1, 1.0],
                    counts: vec![2, 0, 3],
                    sum: 7.25,
                },
            }],
        };
        let text = render(&[family]);
        let expected = "# HELP x_seconds Latency.\n# TYPE x_seconds histogram\n\
            x_seconds_bucket{endpoint=\"a\",le=\"0.1\"} 2\n\
            x_seconds_bucket{endpoint=\"a\",le=\"1\"} 2\n\
            x_seconds_bucket{endpoint=\"a\",le=\"+Inf\"} 5\n\
            x_seconds_sum{endpoint=\"a\"} 7.25\n\
            x_seconds_count{endpoint=\"a\"} 5\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn an_empty_histogram_has_zero_buckets() {
        let family = Family {
            name: "x_seconds",
            help: "Latency.",
            kind: Kind::Histogram,
            samples: vec![Sample {
                labels: vec![],
                value: Value::Histogram {
                    bounds: &[0.5],
                    counts: vec![0, 0],
                    sum: 0.0,
                },
            }],
        };
        let text = render(&[family]);
        assert!(text.contains("x_seconds_bucket{le=\"0.5\"} 0\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 0\n"), "{text}");
        assert!(text.contains("x_seconds_count 0\n"), "{text}");
    }
}
