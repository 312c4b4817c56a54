//! Axis scales: "nice" tick values (1, 2 or 5 × 10ᵏ apart) and their labels.
//!
//! A [`Scale`] works in axis units: the data value itself on a linear axis,
//! log₁₀ of it on a log axis.

/// The most ticks a scale will produce, whatever the range.
const MAX_TICKS: usize = 60;

/// An axis: its bounds, labelled ticks and unlabelled minor ticks, all in
/// axis units.
#[derive(Clone, Debug)]
pub struct Scale {
    /// Axis-unit value at the low end of the axis.
    pub lo: f64,
    /// Axis-unit value at the high end of the axis (`hi > lo`).
    pub hi: f64,
    /// Labelled ticks: (axis-unit position, label).
    pub ticks: Vec<(f64, String)>,
    /// Unlabelled minor ticks (the 2…9 multiples on a log axis).
    pub minor: Vec<f64>,
    /// Whether axis units are log₁₀ of the data.
    pub log: bool,
}

impl Scale {
    /// The axis-unit position of data value `v`: v, or log₁₀ v on a log axis
    /// (`None` if `v` is non-finite, or not positive on a log axis).
    pub fn to_axis(&self, v: f64) -> Option<f64> {
        let a = if self.log { v.log10() } else { v };
        (v.is_finite() && a.is_finite()).then_some(a)
    }
}

/// The nice step for about `target` intervals over `span`: span/target
/// rounded to 1, 2, 5 or 10 × 10^⌊log₁₀(span/target)⌋ (Heckbert's "nice
/// numbers", rounding the mantissa at 1.5, 3 and 7).
fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Widens a degenerate range: `lo == hi` becomes lo ∓ max(|lo|/10, ½).
/// The inputs must be finite with lo ≤ hi.
pub fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else {
        let d = (lo.abs() / 10.0).max(0.5);
        (lo - d, hi + d)
    }
}

/// A linear scale over [lo, hi] (finite, lo < hi). With `loose`, the bounds
/// are pushed out to the enclosing multiples of the tick step.
pub fn linear(lo: f64, hi: f64, loose: bool, target: usize) -> Scale {
    let step = nice_step(hi - lo, target);
    let (lo, hi) = if loose && step.is_finite() && step > 0.0 {
        ((lo / step).floor() * step, (hi / step).ceil() * step)
    } else {
        (lo, hi)
    };
    let ticks = ticks_in(lo, hi, step)
        .into_iter()
        .map(|t| (t, label(t, step)))
        .collect();
    Scale {
        lo,
        hi,
        ticks,
        minor: Vec::new(),
        log: false,
    }
}

/// A log₁₀ scale over data values [lo, hi] (finite, 0 < lo < hi).
///
/// Spanning a decade or more, the bounds are whole decades and the ticks are
/// powers of ten (every k-th decade when there are more than 8), with minor
/// ticks at 2…9 × 10ᵏ. Within less than a decade, the labelled ticks are the
/// nice linear values inside [lo, hi], placed logarithmically.
pub fn log(lo: f64, hi: f64) -> Scale {
    let (a, b) = (lo.log10(), hi.log10());
    if b - a >= 1.0 {
        let (a, b) = (a.floor(), b.ceil());
        let every = ((b - a) / 8.0).ceil().max(1.0);
        let ticks = ticks_in(a, b, every)
            .into_iter()
            .map(|k| (k, decade_label(k as i32)))
            .collect();
        let mut minor = Vec::new();
        if every == 1.0 && b - a <= MAX_TICKS as f64 / 8.0 {
            let mut k = a;
            while k < b {
                minor.extend((2..10).map(|m| k + f64::from(m).log10()));
                k += 1.0;
            }
        }
        return Scale {
            lo: a,
            hi: b,
            ticks,
            minor,
            log: true,
        };
    }
    let pad = 0.05 * (b - a);
    let step = nice_step(hi - lo, 4);
    let ticks = ticks_in(lo, hi, step)
        .into_iter()
        .filter(|&t| t > 0.0)
        .map(|t| (t.log10(), label(t, step)))
        .collect();
    Scale {
        lo: a - pad,
        hi: b + pad,
        ticks,
        minor: Vec::new(),
        log: true,
    }
}

/// The multiples of `step` in [lo, hi] (at most [`MAX_TICKS`]), with values
/// within step·10⁻⁹ of zero snapped to 0.
fn ticks_in(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(step.is_finite() && step > 0.0 && lo.is_finite() && hi.is_finite()) {
        return vec![lo, hi];
    }
    let first = (lo / step - 1e-9).ceil();
    let mut out = Vec::new();
    for i in 0..MAX_TICKS {
        let t = (first + i as f64) * step;
        if t > hi + step * 1e-9 {
            break;
        }
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
    }
    out
}

/// The fewest decimals (0..=8) that write `x` exactly to 6 significant digits.
fn decimals(x: f64) -> usize {
    (0..=8)
        .find(|&d| {
            let s = x * 10f64.powi(d as i32);
            (s - s.round()).abs() <= 1e-6 * s.abs().max(1.0)
        })
        .unwrap_or(8)
}

/// The label of tick value `v` on an axis with tick spacing `step`: plain
/// decimals with as many places as `step` needs, or `m e k` (m·10ᵏ) when
/// |v| ≥ 10⁵ or |v| < 10⁻³.
pub fn label(v: f64, step: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { format!("{v}") };
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let d = decimals(step);
        return format!("{v:.d$}");
    }
    let e = a.log10().floor();
    let m = v / 10f64.powf(e);
    let d = decimals(step / 10f64.powf(e)).min(3);
    let ms = format!("{m:.d$}");
    let ms = if ms.contains('.') {
        ms.trim_end_matches('0').trim_end_matches('.')
    } else {
        &ms
    };
    format!("{ms}e{e}")
}

/// The label of 10ᵏ: plain for 10⁻³ … 10⁴, `1eK` beyond.
pub fn decade_label(k: i32) -> String {
    match k {
        -3..=-1 => format!("{:.*}", (-k) as usize, 10f64.powi(k)),
        0..=4 => format!("{}", 10u32.pow(k as u32)),
        _ => format!("1e{k}"),
    }
}
