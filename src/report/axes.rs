//! The frame shared by every chart: title, plot area, grid, ticks, axis
//! labels and legend, and the map from axis units to pixels.

use super::canvas::{Canvas, Rgb, WHITE, text_height, text_width};
use super::ticks::Scale;

/// Chart width in pixels.
pub const WIDTH: usize = 900;
/// Chart height in pixels.
pub const HEIGHT: usize = 560;
/// Text scale of tick labels, axis labels and the legend.
pub const TEXT: usize = 2;
/// Text scale of the title.
const TITLE: usize = 3;
/// Length of a tick mark outside the frame.
const TICK: i64 = 6;
/// Dark grey used for text and ticks.
pub const INK: Rgb = [40, 40, 40];
const FRAME: Rgb = [110, 110, 110];
const GRID: Rgb = [226, 226, 226];
const MINOR_GRID: Rgb = [243, 243, 243];

/// The plot area of a chart and its two scales.
pub struct Axes {
    /// Horizontal scale.
    pub x: Scale,
    /// Vertical scale.
    pub y: Scale,
    left: i64,
    top: i64,
    width: i64,
    height: i64,
}

impl Axes {
    /// Pixel column of axis-unit value `ax`: left + (ax − x.lo)/(x.hi − x.lo)·width.
    pub fn px(&self, ax: f64) -> f64 {
        self.left as f64 + (ax - self.x.lo) / (self.x.hi - self.x.lo) * self.width as f64
    }

    /// Pixel row of axis-unit value `ay` (up is larger):
    /// top + height − (ay − y.lo)/(y.hi − y.lo)·height.
    pub fn py(&self, ay: f64) -> f64 {
        let t = (ay - self.y.lo) / (self.y.hi - self.y.lo);
        (self.top + self.height) as f64 - t * self.height as f64
    }

    /// Pixel row of the bottom edge of the plot area.
    pub fn bottom(&self) -> f64 {
        (self.top + self.height) as f64
    }

    /// The pixel of data point (x, y), or `None` if either coordinate has no
    /// place on its axis (non-finite, or ≤ 0 on a log axis).
    pub fn point(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        Some((self.px(self.x.to_axis(x)?), self.py(self.y.to_axis(y)?)))
    }

    /// Draws the frame around the plot area (after the data, so it stays on top).
    pub fn border(&self, c: &mut Canvas) {
        c.rect(self.left, self.top, self.width + 1, self.height + 1, FRAME);
    }

    /// Draws a boxed legend in the top-right corner of the plot area: a
    /// colour swatch (a bar when `filled`, else a line) and a name per entry.
    pub fn legend(&self, c: &mut Canvas, entries: &[(String, Rgb)], filled: bool) {
        if entries.is_empty() {
            return;
        }
        let row = text_height(TEXT) as i64 + 6;
        let swatch = 28;
        let text_w = entries.iter().map(|(n, _)| text_width(n, TEXT)).max();
        let w = swatch + 10 + text_w.unwrap_or(0) as i64 + 20;
        let h = row * entries.len() as i64 + 12;
        let x0 = self.left + self.width - w - 10;
        let y0 = self.top + 10;
        c.blend_rect(x0, y0, w, h, WHITE, 0.88);
        c.rect(x0, y0, w, h, GRID);
        for (i, (name, col)) in entries.iter().enumerate() {
            let y = y0 + 8 + i as i64 * row;
            let mid = y as f64 + 0.5 * 7.0 * TEXT as f64;
            if filled {
                c.blend_rect(x0 + 10, y, swatch, 7 * TEXT as i64, *col, 0.35);
                c.rect(x0 + 10, y, swatch, 7 * TEXT as i64, *col);
            } else {
                let (a, b) = ((x0 + 10) as f64, (x0 + 10 + swatch) as f64);
                c.line(a, mid, b, mid, 3.0, *col);
            }
            c.text(x0 + 20 + swatch, y, name, INK, TEXT);
        }
    }
}

/// A blank chart with its title and axis labels, and the plot-area rectangle
/// (left, top, width, height) that leaves room for tick labels `y_ticks`
/// and the last x tick label `x_last`.
fn blank(
    title: &str,
    x_label: &str,
    y_label: &str,
    y_ticks: usize,
    x_last: usize,
) -> (Canvas, [i64; 4]) {
    let mut c = Canvas::new(WIDTH, HEIGHT, WHITE);
    let th = text_height(TEXT) as i64;
    let left = 12 + th + 12 + y_ticks as i64 + 8 + TICK;
    let top = 16 + text_height(TITLE) as i64 + 16;
    let right = (x_last as i64 / 2 + 12).max(30);
    let bottom = TICK + 8 + th + 12 + th + 14;
    let (w, h) = (WIDTH as i64, HEIGHT as i64);
    let rect = [left, top, w - left - right, h - top - bottom];
    let title_scale = if text_width(title, TITLE) <= WIDTH - 16 {
        TITLE
    } else {
        TEXT
    };
    let title = fit(title, title_scale, WIDTH - 16);
    let tw = text_width(&title, title_scale) as i64;
    let tx = (left + rect[2] / 2 - tw / 2).clamp(8, (w - 8 - tw).max(8));
    c.text(tx, 16, &title, INK, title_scale);
    let (x_label, y_label) = (
        fit(x_label, TEXT, WIDTH - 16),
        fit(y_label, TEXT, HEIGHT - 16),
    );
    let (x_label, y_label) = (x_label.as_str(), y_label.as_str());
    let xw = text_width(x_label, TEXT) as i64;
    c.text(left + rect[2] / 2 - xw / 2, h - 14 - th, x_label, INK, TEXT);
    let yw = text_width(y_label, TEXT) as i64;
    c.text_up(12, top + rect[3] / 2 + yw / 2, y_label, INK, TEXT);
    (c, rect)
}

/// `s`, shortened with a trailing `..` if it is wider than `max_w` pixels at `scale`.
fn fit(s: &str, scale: usize, max_w: usize) -> String {
    if text_width(s, scale) <= max_w {
        return s.to_string();
    }
    let keep = (max_w / (6 * scale)).saturating_sub(2);
    s.chars().take(keep).chain("..".chars()).collect()
}

/// A chart frame for scales `x` and `y`: title, axis labels, grid lines,
/// tick marks and tick labels (thinned so that labels never overlap).
pub fn frame(title: &str, x_label: &str, y_label: &str, x: Scale, y: Scale) -> (Canvas, Axes) {
    let y_tick_w = y.ticks.iter().map(|(_, l)| text_width(l, TEXT)).max();
    let x_last = x.ticks.last().map_or(0, |(_, l)| text_width(l, TEXT));
    let (mut c, [left, top, width, height]) =
        blank(title, x_label, y_label, y_tick_w.unwrap_or(0), x_last);
    let axes = Axes {
        x,
        y,
        left,
        top,
        width,
        height,
    };
    let (l, r) = (left as f64, (left + width) as f64);
    let (t, b) = (top as f64, (top + height) as f64);
    for &m in &axes.y.minor {
        let py = axes.py(m).round();
        c.line(l, py, r, py, 1.0, MINOR_GRID);
    }
    for &m in &axes.x.minor {
        let px = axes.px(m).round();
        c.line(px, t, px, b, 1.0, MINOR_GRID);
    }
    let th = text_height(TEXT) as i64;
    let x_max_w = axes.x.ticks.iter().map(|(_, s)| text_width(s, TEXT)).max();
    let x_every = thinning(
        &axes.x.ticks,
        |v| axes.px(v),
        x_max_w.unwrap_or(0) as f64 + 16.0,
    );
    for (i, (v, s)) in axes.x.ticks.iter().enumerate() {
        let px = axes.px(*v).round();
        c.line(px, t, px, b, 1.0, GRID);
        c.line(px, b, px, b + TICK as f64, 1.0, FRAME);
        if i % x_every == 0 {
            let w = text_width(s, TEXT) as i64;
            c.text(px as i64 - w / 2, (b as i64) + TICK + 6, s, INK, TEXT);
        }
    }
    let y_every = thinning(&axes.y.ticks, |v| axes.py(v), th as f64 + 8.0);
    for (i, (v, s)) in axes.y.ticks.iter().enumerate() {
        let py = axes.py(*v).round();
        c.line(l, py, r, py, 1.0, GRID);
        c.line(l - TICK as f64, py, l, py, 1.0, FRAME);
        if i % y_every == 0 {
            let w = text_width(s, TEXT) as i64;
            let y0 = py as i64 - (7 * TEXT as i64) / 2;
            c.text(left - TICK - 6 - w, y0, s, INK, TEXT);
        }
    }
    axes.border(&mut c);
    (c, axes)
}

/// Label every k-th tick, k the least with k·(pixel spacing) ≥ `room`.
fn thinning(ticks: &[(f64, String)], pos: impl Fn(f64) -> f64, room: f64) -> usize {
    let gap = match ticks {
        [a, b, ..] => (pos(b.0) - pos(a.0)).abs(),
        _ => return 1,
    };
    if gap.is_finite() && gap > 0.0 {
        ((room / gap).ceil() as usize).clamp(1, ticks.len())
    } else {
        1
    }
}

/// A chart with a title, axis labels, an empty frame and a "no data" note,
/// for data with nothing finite to draw.
pub fn no_data(title: &str, x_label: &str, y_label: &str, note: &str) -> Canvas {
    let (mut c, [left, top, width, height]) = blank(title, x_label, y_label, 0, 0);
    c.rect(left, top, width + 1, height + 1, FRAME);
    let w = text_width(note, TEXT) as i64;
    let th = text_height(TEXT) as i64;
    c.text(
        left + width / 2 - w / 2,
        top + height / 2 - th / 2,
        note,
        INK,
        TEXT,
    );
    c
}
