//! A line chart per series, stacked, as a PNG: a small rasterizer (lines, a 5×7 font) and a
//! PNG encoder over flate2, enough for the soak's plot without a plotting library.

use std::io::Write;

/// One series to plot: its title and its values (one per sample).
pub struct Series<'a> {
    pub title: &'a str,
    pub values: Vec<f64>,
}

const WIDTH: usize = 1000;
const PANEL: usize = 150;
const LEFT: usize = 90;
const RIGHT: usize = 20;
const TOP: usize = 26;
const BOTTOM: usize = 22;
/// Font pixels are drawn this big.
const SCALE: usize = 2;

const WHITE: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [30, 30, 30];
const GRID: [u8; 3] = [220, 220, 220];
const LINE: [u8; 3] = [20, 90, 200];

/// Renders `series` against `times` (seconds since the start) as a PNG file's bytes. Each
/// panel's y axis starts at zero, so a flat series looks flat and noise is not magnified;
/// a NaN value is a missing reading.
pub fn chart(times: &[f64], series: &[Series]) -> Vec<u8> {
    let mut canvas = Canvas::new(WIDTH, PANEL * series.len().max(1));
    let t_max = times.iter().copied().fold(1.0, f64::max);
    for (index, s) in series.iter().enumerate() {
        let y0 = index * PANEL;
        let (left, right) = (LEFT, WIDTH - RIGHT);
        let (top, bottom) = (y0 + TOP, y0 + PANEL - BOTTOM);
        let max = s.values.iter().copied().fold(0.0, f64::max);
        let ceiling = if max > 0.0 { max * 1.1 } else { 1.0 };
        let last = s
            .values
            .iter()
            .rev()
            .find(|v| v.is_finite())
            .copied()
            .unwrap_or(0.0);
        canvas.text(
            left,
            y0 + 6,
            &format!("{}   MAX {}   LAST {}", s.title, short(max), short(last)),
            INK,
        );
        for k in 0..=4 {
            let y = bottom - (bottom - top) * k / 4;
            canvas.hline(left, right, y, if k == 0 { INK } else { GRID });
            canvas.text_right(left - 6, y - 7, &short(ceiling * k as f64 / 4.0), INK);
        }
        canvas.vline(left, top, bottom, INK);
        for k in 0..=6 {
            let x = left + (right - left) * k / 6;
            canvas.vline(x, bottom, bottom + 4, INK);
            let label = short(t_max * k as f64 / 6.0 / 60.0);
            if k == 6 {
                canvas.text_right(x, bottom + 6, &format!("{label} MIN"), INK);
            } else {
                canvas.text(x.saturating_sub(8), bottom + 6, &label, INK);
            }
        }
        let point = |t: f64, v: f64| {
            let x = left as f64 + (right - left) as f64 * t / t_max;
            let y = bottom as f64 - (bottom - top) as f64 * v / ceiling;
            (x.round() as i64, y.round() as i64)
        };
        let mut previous = None;
        for (t, v) in times.iter().zip(&s.values) {
            // A missing reading (NaN) breaks the line.
            if !v.is_finite() {
                previous = None;
                continue;
            }
            let p = point(*t, *v);
            if let Some(q) = previous {
                canvas.line(q, p, LINE);
            }
            previous = Some(p);
        }
    }
    canvas.png()
}

/// A number in at most a few characters: 12, 3.4, 0.25, 12K, 3.4M.
fn short(v: f64) -> String {
    let (v, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e4 {
        (v / 1e3, "K")
    } else {
        (v, "")
    };
    let digits = if v >= 100.0 || v == v.trunc() {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{unit}")
}

struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            rgb: WHITE.repeat(width * height),
        }
    }

    fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let at = (y as usize * self.width + x as usize) * 3;
            self.rgb[at..at + 3].copy_from_slice(&color);
        }
    }

    fn hline(&mut self, x0: usize, x1: usize, y: usize, color: [u8; 3]) {
        for x in x0..=x1 {
            self.set(x as i64, y as i64, color);
        }
    }

    fn vline(&mut self, x: usize, y0: usize, y1: usize, color: [u8; 3]) {
        for y in y0..=y1 {
            self.set(x as i64, y as i64, color);
        }
    }

    /// A two-pixel-thick line (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), color: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = ((x1 - x0).signum(), (y1 - y0).signum());
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, color);
            self.set(x, y + 1, color);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn text(&mut self, x: usize, y: usize, text: &str, color: [u8; 3]) {
        for (i, c) in text.chars().enumerate() {
            let rows = glyph(c.to_ascii_uppercase());
            let left = x + i * 6 * SCALE;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            let px = left + col * SCALE + dx;
                            let py = y + r * SCALE + dy;
                            self.set(px as i64, py as i64, color);
                        }
                    }
                }
            }
        }
    }

    fn text_right(&mut self, right: usize, y: usize, text: &str, color: [u8; 3]) {
        let width = text.chars().count() * 6 * SCALE;
        self.text(right.saturating_sub(width), y, text, color);
    }

    /// The canvas as a PNG: 8-bit RGB, no filter, one zlib stream.
    fn png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity((self.width * 3 + 1) * self.height);
        for row in self.rgb.chunks(self.width * 3) {
            raw.push(0);
            raw.extend_from_slice(row);
        }
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&raw).expect("in memory");
        let idat = zlib.finish().expect("in memory");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.width as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.height as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [(b"IHDR", &ihdr), (b"IDAT", &idat), (b"IEND", &Vec::new())] {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            png.extend_from_slice(kind);
            png.extend_from_slice(data);
            png.extend_from_slice(&crc.sum().to_be_bytes());
        }
        png
    }
}

/// A 5×7 glyph: one row a byte, the leftmost pixel in bit 4. Unknown characters are blank.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        _ => [0; 7],
    }
}
