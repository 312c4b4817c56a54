//! What an epoch reports: losses, sparsity of the code, speed.

use crate::kernels::Activation;
use crate::nn::LossParts;

/// Whether a code unit counts as active: h > 0 for ReLU, leaky ReLU, linear
/// and tanh codes; h > 0.5 for sigmoid codes (whose outputs are never 0).
pub fn active_threshold(act: Activation) -> f32 {
    match act {
        Activation::Sigmoid => 0.5,
        _ => 0.0,
    }
}

/// Running statistics of the code layer over the samples of an epoch.
#[derive(Clone, Debug)]
pub struct CodeStats {
    threshold: f32,
    samples: u64,
    active_total: u64,
    /// Σ activation per unit.
    sum: Vec<f64>,
    /// Samples in which each unit was active.
    fired: Vec<u64>,
}

impl CodeStats {
    /// Statistics for a code of `units` units.
    pub fn new(units: usize, act: Activation) -> CodeStats {
        CodeStats {
            threshold: active_threshold(act),
            samples: 0,
            active_total: 0,
            sum: vec![0.0; units],
            fired: vec![0; units],
        }
    }

    /// Adds a batch of codes `(batch, units)`.
    pub fn add(&mut self, code: &[f32]) {
        let units = self.sum.len();
        for row in code.chunks_exact(units) {
            self.samples += 1;
            for (j, &v) in row.iter().enumerate() {
                self.sum[j] += v as f64;
                if v > self.threshold {
                    self.fired[j] += 1;
                    self.active_total += 1;
                }
            }
        }
    }

    /// Mean number of active units per sample (L0).
    pub fn l0(&self) -> f64 {
        self.active_total as f64 / self.samples.max(1) as f64
    }

    /// Mean activation of each unit.
    pub fn mean_activation(&self) -> Vec<f64> {
        let n = self.samples.max(1) as f64;
        self.sum.iter().map(|s| s / n).collect()
    }

    /// Fraction of samples in which each unit fired.
    pub fn firing_rate(&self) -> Vec<f64> {
        let n = self.samples.max(1) as f64;
        self.fired.iter().map(|&f| f as f64 / n).collect()
    }

    /// Units that never fired.
    pub fn dead(&self) -> usize {
        self.fired.iter().filter(|&&f| f == 0).count()
    }

    /// Samples seen.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

/// Mean loss parts over batches, weighted by batch size.
#[derive(Clone, Copy, Debug, Default)]
pub struct LossMean {
    sum: LossParts,
    weight: f64,
}

impl LossMean {
    /// Adds the loss of a batch of `n` samples.
    pub fn add(&mut self, p: &LossParts, n: usize) {
        let w = n as f64;
        self.sum = self.sum + p.map(|v| v * w);
        self.weight += w;
    }

    /// The mean.
    pub fn mean(&self) -> LossParts {
        let w = self.weight.max(f64::MIN_POSITIVE);
        self.sum.map(|v| v / w)
    }
}

/// The record of one epoch.
#[derive(Clone, Debug)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Optimizer steps so far.
    pub step: u64,
    /// Mean training loss over the epoch's batches (before each update).
    pub train: LossParts,
    /// Loss on the validation set after the epoch, if there is one.
    pub test: Option<LossParts>,
    /// Mean active code units per training sample.
    pub l0: f64,
    /// Code units that never fired in the epoch.
    pub dead_units: usize,
    /// Code units in all.
    pub code_units: usize,
    /// The fraction of code units dead at the end of the epoch: not fired in
    /// the last `sae.dead_window` training samples (see [`crate::train::dead`]).
    pub dead_fraction: f64,
    /// Mean activation of each code unit over the epoch.
    pub mean_activation: Vec<f64>,
    /// Fraction of samples each code unit fired in.
    pub firing_rate: Vec<f64>,
    /// Training samples per second (steps only, without validation).
    pub samples_per_sec: f64,
    /// Wall time of the epoch including validation, seconds.
    pub seconds: f64,
}

impl EpochMetrics {
    /// Column names of [`EpochMetrics::csv_row`].
    pub const CSV_HEADER: &'static str = "epoch,step,train_loss,train_recon,train_l1,train_kl,train_l2,train_auxk,test_loss,test_recon,test_l1,test_kl,test_l2,l0,dead_units,code_units,dead_fraction,samples_per_sec,seconds";

    /// One CSV line (no newline); test columns are empty without validation.
    pub fn csv_row(&self) -> String {
        let t = &self.train;
        let test = match &self.test {
            Some(v) => format!("{},{},{},{},{}", v.total(), v.recon, v.l1, v.kl, v.l2),
            None => ",,,,".to_string(),
        };
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.3}",
            self.epoch,
            self.step,
            t.total(),
            t.recon,
            t.l1,
            t.kl,
            t.l2,
            t.auxk,
            test,
            self.l0,
            self.dead_units,
            self.code_units,
            self.dead_fraction,
            self.samples_per_sec,
            self.seconds
        )
    }

    /// One JSON object (no newline), for JSON-lines logs.
    pub fn json_line(&self) -> String {
        let parts = |p: &LossParts| {
            format!(
                "{{\"loss\":{},\"recon\":{},\"l1\":{},\"kl\":{},\"l2\":{},\"auxk\":{}}}",
                json_num(p.total()),
                json_num(p.recon),
                json_num(p.l1),
                json_num(p.kl),
                json_num(p.l2),
                json_num(p.auxk)
            )
        };
        let test = self.test.as_ref().map_or("null".to_string(), parts);
        let means: Vec<String> = self.mean_activation.iter().map(|&v| json_num(v)).collect();
        format!(
            "{{\"epoch\":{},\"step\":{},\"train\":{},\"test\":{},\"l0\":{},\"dead_units\":{},\"code_units\":{},\"dead_fraction\":{},\"samples_per_sec\":{},\"seconds\":{},\"mean_activation\":[{}]}}",
            self.epoch,
            self.step,
            parts(&self.train),
            test,
            json_num(self.l0),
            self.dead_units,
            self.code_units,
            json_num(self.dead_fraction),
            json_num(self.samples_per_sec),
            json_num(self.seconds),
            means.join(",")
        )
    }
}

/// A JSON number (`null` for NaN or infinity, which JSON cannot hold).
pub fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}
