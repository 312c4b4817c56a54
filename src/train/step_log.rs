//! The training loss and its parts over steps, in bounded memory.
//!
//! Each point is the mean of the loss over a window of `stride` consecutive
//! steps, placed at the mean step of the window. The stride starts at 1,
//! so a short run keeps every step. When the log holds `capacity` points,
//! neighbouring pairs are merged (their means averaged, which is the mean
//! over the doubled window) and the stride doubles: a run of any length
//! keeps between capacity/2 and capacity points.

use crate::nn::LossParts;

/// The loss over steps, at a stride that doubles as the log fills.
#[derive(Clone, Debug)]
pub struct StepLog {
    capacity: usize,
    stride: u64,
    steps_per_epoch: u64,
    /// (mean step, mean loss) of each full window.
    points: Vec<(f64, LossParts)>,
    /// Sums over the window being filled: steps, loss, count.
    pending: (f64, LossParts, u64),
}

impl Default for StepLog {
    fn default() -> Self {
        StepLog::new(StepLog::DEFAULT_CAPACITY)
    }
}

impl StepLog {
    /// Points kept by [`StepLog::default`]: about two per pixel column of a
    /// report chart at most.
    pub const DEFAULT_CAPACITY: usize = 2048;

    /// An empty log of at most `capacity` points (rounded up to an even
    /// number, at least 2).
    pub fn new(capacity: usize) -> StepLog {
        let capacity = capacity.max(2).next_multiple_of(2);
        StepLog {
            capacity,
            stride: 1,
            steps_per_epoch: 0,
            points: Vec::with_capacity(capacity),
            pending: (0.0, LossParts::default(), 0),
        }
    }

    /// Records the loss of optimizer step `step` (1-based, counted over the
    /// whole run) of an epoch of `steps_per_epoch` steps.
    pub fn add(&mut self, step: u64, steps_per_epoch: u64, loss: &LossParts) {
        self.steps_per_epoch = steps_per_epoch;
        let (s, l, n) = &mut self.pending;
        *s += step as f64;
        *l = *l + *loss;
        *n += 1;
        if *n < self.stride {
            return;
        }
        let w = *n as f64;
        self.points.push((*s / w, l.map(|v| v / w)));
        self.pending = (0.0, LossParts::default(), 0);
        if self.points.len() == self.capacity {
            let merged: Vec<(f64, LossParts)> = self
                .points
                .chunks_exact(2)
                .map(|p| (0.5 * (p[0].0 + p[1].0), (p[0].1 + p[1].1).map(|v| 0.5 * v)))
                .collect();
            self.points = merged;
            self.stride *= 2;
        }
    }

    /// The points: (mean step, mean loss) per window, the last one possibly
    /// over a window not yet full.
    pub fn points(&self) -> Vec<(f64, LossParts)> {
        let mut out = self.points.clone();
        let (s, l, n) = self.pending;
        if n > 0 {
            let w = n as f64;
            out.push((s / w, l.map(|v| v / w)));
        }
        out
    }

    /// Steps per point now.
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// Steps in an epoch (0 before the first step).
    pub fn steps_per_epoch(&self) -> u64 {
        self.steps_per_epoch
    }

    /// Whether no step has been recorded.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.pending.2 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(v: f64) -> LossParts {
        LossParts {
            recon: v,
            l1: 2.0 * v,
            ..LossParts::default()
        }
    }

    #[test]
    fn a_short_run_keeps_every_step() {
        let mut log = StepLog::new(8);
        for s in 1..=5 {
            log.add(s, 10, &loss(s as f64));
        }
        let p = log.points();
        assert_eq!(p.len(), 5);
        assert_eq!((p[4].0, p[4].1.recon, p[4].1.l1), (5.0, 5.0, 10.0));
        assert_eq!((log.stride(), log.steps_per_epoch()), (1, 10));
    }

    /// The loss of step s is s, so the mean of each window equals its mean
    /// step: every point lies on y = x whatever was merged, and the points
    /// together still cover all the steps.
    #[test]
    fn a_long_run_stays_within_capacity_and_keeps_window_means() {
        let mut log = StepLog::new(8);
        for s in 1..=1000 {
            log.add(s, 100, &loss(s as f64));
            assert!(log.points().len() <= 9, "step {s}");
        }
        let p = log.points();
        assert!(p.len() >= 4, "{}", p.len());
        assert_eq!(log.stride(), 128);
        for (x, l) in &p {
            assert!((x - l.recon).abs() < 1e-9, "{x} {}", l.recon);
        }
        let full = p.len() - 1;
        let covered: f64 = p[..full].iter().map(|_| log.stride() as f64).sum();
        assert_eq!(covered as u64 + 1000 % 128, 1000);
        assert!(p.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
