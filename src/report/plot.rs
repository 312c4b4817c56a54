//! Charts: line plots of series (loss curves) and overlaid histograms.
//!
//! Both take any data: NaN, ±∞ (and values ≤ 0 on a log axis) are skipped,
//! a constant range is widened, and a chart with nothing left to draw says
//! "no data". They always return a [`WIDTH`] × [`HEIGHT`] canvas.

use super::axes::{self, Axes};
use super::canvas::{Canvas, Rgb};
use super::ticks::{self, Scale};

pub use super::axes::{HEIGHT, WIDTH};

/// Ten distinct colours for series and datasets, in the order they are used.
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Width of plotted lines in pixels.
const LINE_W: f64 = 2.0;
/// Opacity of histogram bars.
const BAR_ALPHA: f32 = 0.3;
/// The most bins a histogram draws.
pub const MAX_BINS: usize = 4096;

/// One named curve of a line plot.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text; series with an empty name get no legend entry.
    pub name: String,
    /// (x, y) points, drawn joined in order. A point that cannot be drawn
    /// breaks the line there.
    pub points: Vec<(f64, f64)>,
    /// Line colour.
    pub color: Rgb,
}

/// The finite (lo, hi) of `vals`, or `None` if none is finite.
fn range(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.filter(|v| v.is_finite()).fold(None, |r, v| match r {
        None => Some((v, v)),
        Some((lo, hi)) => Some((v.min(lo), v.max(hi))),
    })
}

/// A y scale over finite data range (lo, hi): linear from nice bounds, or
/// log₁₀ (lo > 0 is required of the caller).
fn y_scale(lo: f64, hi: f64, log_y: bool) -> Scale {
    if log_y {
        let (a, b) = ticks::widen(lo.log10(), hi.log10());
        ticks::log(10f64.powf(a), 10f64.powf(b))
    } else {
        let (lo, hi) = ticks::widen(lo, hi);
        ticks::linear(lo, hi, true, 6)
    }
}

/// A line plot of `series` with nice ticks, grid, axis labels and a legend.
///
/// The x axis spans the data exactly; the y axis is extended to whole tick
/// steps (linear) or shows powers of ten (`log_y`, where y ≤ 0 cannot be
/// drawn). A lone drawable point between gaps is drawn as a dot.
pub fn line_plot(
    series: &[Series],
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
) -> Canvas {
    lines(series, title, x_label, y_label, log_y, None)
}

/// A [`line_plot`] of series over optimizer steps, with the x ticks at
/// whole epochs of `steps_per_epoch` steps, labelled by epoch number, and
/// the x axis labelled so. A run shorter than one epoch (or
/// `steps_per_epoch` 0) gets nice ticks in steps instead. The x axis ends
/// a little after the last step, so a point there is drawn whole.
pub fn step_plot(
    series: &[Series],
    title: &str,
    y_label: &str,
    log_y: bool,
    steps_per_epoch: u64,
) -> Canvas {
    lines(series, title, "step", y_label, log_y, Some(steps_per_epoch))
}

fn lines(
    series: &[Series],
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    steps_per_epoch: Option<u64>,
) -> Canvas {
    let ok = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| ok(p)))
    };
    let (Some((x0, x1)), Some((y0, y1))) = (range(pts().map(|p| p.0)), range(pts().map(|p| p.1)))
    else {
        return axes::no_data(title, x_label, y_label, "no data");
    };
    let (x0, mut x1) = ticks::widen(x0, x1);
    let spe = steps_per_epoch.unwrap_or(0);
    if steps_per_epoch.is_some() {
        // Room on the right, so that the last test point (at the last step)
        // is not half under the frame.
        x1 += 0.015 * (x1 - x0);
    }
    let (xs, x_label) = match ticks::epochs(x0, x1, spe, 10) {
        Some(xs) => (xs, format!("epoch ({spe} steps each)")),
        None => (ticks::linear(x0, x1, false, 8), x_label.to_string()),
    };
    let (mut c, ax) = axes::frame(title, &x_label, y_label, xs, y_scale(y0, y1, log_y));
    for s in series {
        draw_series(&mut c, &ax, s);
    }
    ax.border(&mut c);
    let legend: Vec<_> = series
        .iter()
        .filter(|s| !s.name.is_empty())
        .map(|s| (s.name.clone(), s.color))
        .collect();
    ax.legend(&mut c, &legend, false);
    c
}

/// Draws one series as a polyline, broken at points with no pixel.
fn draw_series(c: &mut Canvas, ax: &Axes, s: &Series) {
    let mut prev: Option<(f64, f64)> = None;
    let mut run = 0usize;
    for (i, &(x, y)) in s.points.iter().enumerate() {
        match ax.point(x, y) {
            Some(p) => {
                if let Some(q) = prev {
                    c.line(q.0, q.1, p.0, p.1, LINE_W, s.color);
                }
                prev = Some(p);
                run += 1;
            }
            None => {
                if let (Some(q), 1) = (prev, run) {
                    c.line(q.0, q.1, q.0, q.1, 2.0 * LINE_W, s.color);
                }
                prev = None;
                run = 0;
            }
        }
        if i + 1 == s.points.len()
            && let (Some(q), 1) = (prev, run)
        {
            c.line(q.0, q.1, q.0, q.1, 2.0 * LINE_W, s.color);
        }
    }
}

/// Overlaid histograms of `datasets`, each as translucent bars under a solid
/// step outline, coloured from [`PALETTE`] in order.
///
/// The `bins` equal bins (clamped to 1..=[`MAX_BINS`]) cover `range`, or
/// the finite range of all the data when `range` is `None` or unusable;
/// values outside it and non-finite values are left out, and each legend
/// entry gives the count drawn (n) and the count left out. A value equal to
/// the upper bound falls in the last bin. With `log_y`, the y axis is log₁₀
/// of the count and empty bins are not drawn.
pub fn histogram(
    datasets: &[(&str, &[f32])],
    bins: usize,
    range_x: Option<(f64, f64)>,
    title: &str,
    x_label: &str,
    log_y: bool,
) -> Canvas {
    let all = || {
        datasets
            .iter()
            .flat_map(|(_, d)| d.iter().map(|&v| f64::from(v)))
    };
    let usable = |&(lo, hi): &(f64, f64)| lo.is_finite() && hi.is_finite() && lo < hi;
    let Some((lo, hi)) = range_x.filter(usable).or_else(|| range(all())) else {
        return axes::no_data(title, x_label, "count", "no data");
    };
    let (lo, hi) = ticks::widen(lo, hi);
    let bins = bins.clamp(1, MAX_BINS);
    let width = (hi - lo) / bins as f64;
    let counts: Vec<Vec<u64>> = datasets
        .iter()
        .map(|(_, d)| {
            let mut h = vec![0u64; bins];
            for &v in d.iter() {
                let v = f64::from(v);
                if v >= lo && v <= hi {
                    let k = (((v - lo) / width) as usize).min(bins - 1);
                    h[k] += 1;
                }
            }
            h
        })
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(0);
    let y_label = if log_y { "count (log scale)" } else { "count" };
    if top == 0 {
        return axes::no_data(title, x_label, y_label, "no data in range");
    }
    let ys = y_scale(if log_y { 1.0 } else { 0.0 }, top as f64, log_y);
    let (mut c, ax) = axes::frame(title, x_label, y_label, ticks::linear(lo, hi, false, 8), ys);
    let mut legend = Vec::new();
    for (i, ((name, data), h)) in datasets.iter().zip(&counts).enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        draw_bars(&mut c, &ax, h, lo, width, col);
        let n: u64 = h.iter().sum();
        let left_out = data.len() as u64 - n;
        let entry = if left_out > 0 {
            format!("{name} (n={n}, {left_out} left out)")
        } else {
            format!("{name} (n={n})")
        };
        legend.push((entry, col));
    }
    ax.border(&mut c);
    ax.legend(&mut c, &legend, true);
    c
}

/// Draws one histogram: a translucent bar per non-empty bin, then the step
/// outline along the bar tops (down to the baseline at empty bins).
fn draw_bars(c: &mut Canvas, ax: &Axes, h: &[u64], lo: f64, width: f64, col: Rgb) {
    let base = ax.bottom();
    let top_of = |n: u64| {
        ax.y.to_axis(n as f64)
            .filter(|_| n > 0)
            .map_or(base, |a| ax.py(a).max(0.0))
    };
    let edge = |k: usize| ax.px(lo + k as f64 * width);
    for (k, &n) in h.iter().enumerate() {
        let (x0, x1, y) = (edge(k), edge(k + 1), top_of(n));
        if n > 0 {
            let (l, r) = (x0.round() as i64, x1.round() as i64);
            let t = y.round() as i64;
            c.blend_rect(l, t, (r - l).max(1), base as i64 - t, col, BAR_ALPHA);
        }
    }
    let mut prev_y = base;
    for (k, &n) in h.iter().enumerate() {
        let (x0, x1, y) = (edge(k), edge(k + 1), top_of(n));
        c.line(x0, prev_y, x0, y, 1.5, col);
        c.line(x0, y, x1, y, 1.5, col);
        prev_y = y;
    }
    let x_end = edge(h.len());
    c.line(x_end, prev_y, x_end, base, 1.5, col);
}
