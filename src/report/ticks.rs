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

/// A scale over optimizer steps [lo, hi] with its labelled ticks at whole
/// epochs of `steps_per_epoch` steps, labelled with the epoch number
/// (every 1, 2, 5, 10, … epochs, for about `target` ticks). The low bound
/// goes down to the epoch boundary at or below `lo`. `None` when the range
/// holds less than one whole epoch (then steps are the better ticks).
pub fn epochs(lo: f64, hi: f64, steps_per_epoch: u64, target: usize) -> Option<Scale> {
    let spe = steps_per_epoch as f64;
    if !(spe > 0.0 && lo.is_finite() && hi.is_finite()) {
        return None;
    }
    let (e0, e1) = ((lo / spe).floor(), hi / spe);
    if e1 - e0 < 1.0 {
        return None;
    }
    let every = nice_step(e1 - e0, target).max(1.0).round();
    let ticks = ticks_in(e0, e1, every)
        .into_iter()
        .map(|e| (e * spe, format!("{e}")))
        .collect();
    Some(Scale {
        lo: e0 * spe,
        hi: hi.max(e0 * spe + spe),
        ticks,
        minor: Vec::new(),
        log: false,
    })
}

/// A log₁₀ scale over data values [lo, hi] (finite, 0 < lo < hi).
///
/// Across more than three decades, the bounds are whole decades and the
/// ticks are powers of ten (every k-th decade when there are more than 8),
/// with minor ticks at 2…9 × 10ᵏ. Across one to three decades, the bounds
/// are the enclosing m·10ᵏ (m = 1…9), 1, 2 and 5 × 10ᵏ are labelled and the
/// other multiples are minor ticks. Within less than a decade, the labelled
/// ticks are the nice linear values inside [lo, hi], placed logarithmically.
pub fn log(lo: f64, hi: f64) -> Scale {
    let (a, b) = (lo.log10(), hi.log10());
    if b - a < 1.0 {
        let pad = 0.05 * (b - a);
        let step = nice_step(hi - lo, 4);
        let ticks = ticks_in(lo, hi, step)
            .into_iter()
            .filter(|&t| t > 0.0)
            .map(|t| (t.log10(), label(t, step)))
            .collect();
        return Scale {
            lo: a - pad,
            hi: b + pad,
            ticks,
            minor: Vec::new(),
            log: true,
        };
    }
    let (da, db) = (a.floor(), b.ceil());
    let mut minor = Vec::new();
    if db - da > 3.0 {
        let every = ((db - da) / 8.0).ceil().max(1.0);
        let ticks = ticks_in(da, db, every)
            .into_iter()
            .map(|k| (k, decade_label(k as i32)))
            .collect();
        if every == 1.0 && db - da <= MAX_TICKS as f64 / 8.0 {
            let mut k = da;
            while k < db {
                minor.extend((2..10).map(|m| k + f64::from(m).log10()));
                k += 1.0;
            }
        }
        return Scale {
            lo: da,
            hi: db,
            ticks,
            minor,
            log: true,
        };
    }
    // The enclosing multiples m·10ᵏ; 1e-9 absorbs rounding in log10/powf.
    let lo_m = (10f64.powf(a - da) + 1e-9).floor().clamp(1.0, 9.0);
    let (hk, hf) = (b.floor(), b - b.floor());
    let hi_m = (10f64.powf(hf) - 1e-9).ceil().clamp(1.0, 10.0);
    let (lo_b, hi_b) = (da + lo_m.log10(), hk + hi_m.log10());
    let mut ticks = Vec::new();
    let mut k = da;
    while k < db {
        for m in 1..10 {
            let v = k + f64::from(m).log10();
            if v < lo_b - 1e-9 || v > hi_b + 1e-9 {
                continue;
            }
            match m {
                1 => ticks.push((v, decade_label(k as i32))),
                2 | 5 => ticks.push((v, label(f64::from(m) * 10f64.powf(k), 10f64.powf(k)))),
                _ => minor.push(v),
            }
        }
        k += 1.0;
    }
    if (hi_b - db).abs() < 1e-9 {
        ticks.push((db, decade_label(db as i32)));
    }
    Scale {
        lo: lo_b,
        hi: hi_b,
        ticks,
        minor,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &Scale) -> Vec<&str> {
        s.ticks.iter().map(|(_, l)| l.as_str()).collect()
    }

    #[test]
    fn linear_ticks_are_nice_and_loose_bounds_enclose_the_data() {
        let s = linear(0.03, 0.97, true, 5);
        assert_eq!((s.lo, s.hi), (0.0, 1.0));
        assert_eq!(labels(&s), ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let s = linear(-3.7, 12.2, false, 8);
        assert_eq!((s.lo, s.hi), (-3.7, 12.2));
        assert_eq!(labels(&s), ["-2", "0", "2", "4", "6", "8", "10", "12"]);
        let s = linear(0.0, 2.5e-4, true, 5);
        assert_eq!(
            labels(&s),
            ["0", "5e-5", "1e-4", "1.5e-4", "2e-4", "2.5e-4"]
        );
        let s = linear(0.0, 3.2e6, true, 4);
        assert_eq!(labels(&s), ["0", "1e6", "2e6", "3e6", "4e6"]);
    }

    #[test]
    fn log_ticks_by_span() {
        // Five decades: whole-decade bounds and labels.
        let s = log(0.003, 20.0);
        assert_eq!((s.lo, s.hi), (-3.0, 2.0));
        assert_eq!(labels(&s), ["0.001", "0.01", "0.1", "1", "10", "100"]);
        assert_eq!(s.minor.len(), 5 * 8);
        // One decade and a bit: bounds at 0.06 and 0.7, labels at 1, 2, 5.
        let s = log(0.066, 0.69);
        assert!((s.lo - 0.06f64.log10()).abs() < 1e-12 && (s.hi - 0.7f64.log10()).abs() < 1e-12);
        assert_eq!(labels(&s), ["0.1", "0.2", "0.5"]);
        // Under a decade: linear values at log positions.
        let s = log(2.0, 7.0);
        assert_eq!(labels(&s), ["2", "3", "4", "5", "6", "7"]);
        assert!((s.ticks[0].0 - 2f64.log10()).abs() < 1e-12);
        // Twenty decades: every third one (multiples of 3) is labelled.
        let s = log(1e-10, 1e10);
        assert_eq!(
            labels(&s),
            ["1e-9", "1e-6", "0.001", "1", "1000", "1e6", "1e9"]
        );
    }

    #[test]
    fn epoch_ticks_sit_on_whole_epochs() {
        // 3.5 epochs of 40 steps: ticks at steps 0, 40, 80, 120 read 0..3.
        let s = epochs(1.0, 140.0, 40, 8).unwrap();
        assert_eq!((s.lo, s.hi), (0.0, 140.0));
        assert_eq!(labels(&s), ["0", "1", "2", "3"]);
        assert_eq!(s.ticks[3].0, 120.0);
        // A resumed run starting in epoch 7 of 10 steps.
        let s = epochs(73.0, 100.0, 10, 8).unwrap();
        assert_eq!(labels(&s), ["7", "8", "9", "10"]);
        // 1000 epochs: every 100th is labelled.
        let s = epochs(1.0, 3000.0, 3, 8).unwrap();
        assert_eq!(labels(&s)[..3], ["0", "100", "200"]);
        // Less than an epoch, or no epoch length: no epoch ticks.
        assert!(epochs(1.0, 20.0, 100, 8).is_none());
        assert!(epochs(1.0, 20.0, 0, 8).is_none());
    }

    #[test]
    fn labels_and_widening() {
        assert_eq!(label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(label(-0.5, 0.25), "-0.50");
        assert_eq!(label(1e-7, 1e-7), "1e-7");
        assert_eq!(decade_label(4), "10000");
        assert_eq!(decade_label(5), "1e5");
        assert_eq!(decade_label(-3), "0.001");
        assert_eq!(widen(3.0, 3.0), (2.5, 3.5));
        assert_eq!(widen(-50.0, -50.0), (-55.0, -45.0));
    }
}
