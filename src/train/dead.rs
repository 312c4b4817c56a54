//! Dead latents: how many training samples ago each code unit last fired.
//!
//! After every step each counter grows by the batch size, and the counters
//! of units that fired in the batch (an activation above the code's
//! threshold [`super::metrics::code_threshold`], after TopK) go back to 0 — the
//! `num_tokens_since_fired` of sparsify, counted in samples. A unit is dead
//! when its counter has reached the window N (`sae.dead_window`): it has not
//! fired in the last N samples (to the batch). Counters start at 0, so no
//! unit is dead before N samples have been seen. The AuxK mask of a step is
//! taken from the counters *before* the step, as sparsify does.

use super::metrics::code_threshold;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::{Autoencoder, ModelConfig, Workspace};

/// Per-unit samples since the unit last fired.
#[derive(Clone, Debug)]
pub struct DeadLatents {
    since: Vec<u64>,
    window: u64,
    threshold: f64,
    /// Scratch of [`Self::update_from`]: the units that fired in a batch.
    fired: Vec<bool>,
}

/// Equal counters, window and threshold (the scratch is not compared).
impl PartialEq for DeadLatents {
    fn eq(&self, other: &DeadLatents) -> bool {
        (self.since == other.since)
            && self.window == other.window
            && self.threshold == other.threshold
    }
}

impl DeadLatents {
    /// Counters at 0 for the code of `cfg`, window `cfg.sae.dead_window`.
    pub fn new(cfg: &ModelConfig) -> DeadLatents {
        DeadLatents {
            since: vec![0; cfg.width(cfg.code_layer)],
            window: cfg.sae.dead_window,
            threshold: code_threshold(cfg) as f64,
            fired: Vec::new(),
        }
    }

    /// Counts a batch of codes `(batch, units)`.
    pub fn update<T: Real>(&mut self, code: &[T]) {
        self.update_parts(&[code]);
    }

    /// Counts one batch given in parts (each `(rows, units)`).
    pub fn update_parts<T: Real>(&mut self, parts: &[&[T]]) {
        let units = self.since.len();
        let batch = parts.iter().map(|c| c.len() / units.max(1)).sum::<usize>() as u64;
        self.since
            .iter_mut()
            .for_each(|s| *s = s.saturating_add(batch));
        let t = T::from_f64(self.threshold);
        for row in parts.iter().flat_map(|c| c.chunks_exact(units)) {
            for (s, &v) in self.since.iter_mut().zip(row) {
                if v > t {
                    *s = 0;
                }
            }
        }
    }

    /// Marks in `fired` the units that fire in `code` (`(rows, units)`),
    /// leaving the other entries as they are.
    pub fn mark_fired<T: Real>(&self, code: &[T], fired: &mut [bool]) {
        let t = T::from_f64(self.threshold);
        for row in code.chunks_exact(self.since.len().max(1)) {
            for (f, &v) in fired.iter_mut().zip(row) {
                *f |= v > t;
            }
        }
    }

    /// [`Self::mark_fired`] on the code of `model`'s last forward pass in
    /// `ws`. On the sparse top-k path it reads only the kept entries (a
    /// batch-1024 code of 16,384 units has 32 of them per sample): a unit
    /// not listed is 0, which does not exceed a threshold of 0 or more.
    pub fn mark_fired_in<T: Real>(
        &self,
        model: &Autoencoder<T>,
        ws: &Workspace<T>,
        fired: &mut [bool],
    ) {
        match ws.sparse_code() {
            Some((layer, code)) if layer == model.config().code_layer && self.threshold >= 0.0 => {
                let t = T::from_f64(self.threshold);
                for (&j, &v) in code.cols.iter().zip(code.vals) {
                    if v > t {
                        fired[j as usize] = true;
                    }
                }
            }
            _ => self.mark_fired(model.code(ws), fired),
        }
    }

    /// Counts the batch whose parts' last forward passes are in `parts`
    /// (the same as [`Self::update_parts`] on their codes; see
    /// [`Self::mark_fired_in`]).
    pub fn update_from<T: Real>(&mut self, model: &Autoencoder<T>, parts: &[Workspace<T>]) {
        let mut fired = std::mem::take(&mut self.fired);
        fired.clear();
        fired.resize(self.since.len(), false);
        for ws in parts {
            self.mark_fired_in(model, ws, &mut fired);
        }
        let batch = parts.iter().map(|w| w.batch() as u64).sum();
        self.update_fired(batch, &fired);
        self.fired = fired;
    }

    /// Counts a batch of `batch` samples in which the units marked in
    /// `fired` fired (the same as [`Self::update_parts`] on its codes).
    pub fn update_fired(&mut self, batch: u64, fired: &[bool]) {
        for (s, &f) in self.since.iter_mut().zip(fired) {
            *s = if f { 0 } else { s.saturating_add(batch) };
        }
    }

    /// Whether unit `j` is dead.
    pub fn is_dead(&self, j: usize) -> bool {
        self.since[j] >= self.window
    }

    /// Writes the dead mask (one entry per unit).
    pub fn fill_mask(&self, mask: &mut [bool]) {
        for (m, &s) in mask.iter_mut().zip(&self.since) {
            *m = s >= self.window;
        }
    }

    /// Dead units.
    pub fn dead(&self) -> usize {
        self.since.iter().filter(|&&s| s >= self.window).count()
    }

    /// The fraction of units that are dead.
    pub fn fraction(&self) -> f64 {
        self.dead() as f64 / self.since.len().max(1) as f64
    }

    /// The window N in samples.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The counters (samples since each unit fired).
    pub fn counters(&self) -> &[u64] {
        &self.since
    }

    /// Replaces the counters (from a checkpoint).
    ///
    /// # Errors
    /// [`Error::Shape`] if there is not one counter per code unit.
    pub fn set_counters(&mut self, counters: &[u64]) -> Result<()> {
        if counters.len() != self.since.len() {
            return Err(Error::shape(
                "DeadLatents::set_counters",
                format!("{} counters (one per code unit)", self.since.len()),
                format!("{}", counters.len()),
            ));
        }
        self.since.copy_from_slice(counters);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Activation;
    use crate::nn::ModelBuilder;

    #[test]
    fn counts_samples_since_firing_and_flags_the_window() {
        let cfg = ModelBuilder::new(4)
            .code(3, Activation::Relu)
            .decoder(4, Activation::Sigmoid)
            .dead_window(5)
            .build()
            .unwrap();
        let mut d = DeadLatents::new(&cfg);
        // Two samples: unit 0 fires in the first, unit 2 never, unit 1 at 0 (not firing).
        d.update(&[1.0f32, 0.0, -1.0, 0.0, 0.0, 0.0]);
        assert_eq!(d.counters(), &[0, 2, 2]);
        d.update(&[0.0f32, 0.5, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(d.counters(), &[2, 0, 4]);
        assert_eq!(d.dead(), 0);
        d.update(&[0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(d.counters(), &[4, 2, 6]);
        assert!(d.is_dead(2) && !d.is_dead(0));
        let mut mask = [false; 3];
        d.fill_mask(&mut mask);
        assert_eq!(mask, [false, false, true]);
        assert!((d.fraction() - 1.0 / 3.0).abs() < 1e-12);
        assert!(d.set_counters(&[1, 2]).is_err());
    }
}
