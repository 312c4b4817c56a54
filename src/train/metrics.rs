//! What an epoch reports: losses, sparsity of the code, speed.
//!
//! # When a code unit is active
//!
//! A unit *fires* on a sample when its value exceeds the code's activity
//! threshold τ ([`code_threshold`]):
//! - τ = 0 for ReLU, leaky-ReLU, linear and tanh codes (and TopK codes,
//!   whose dropped values are exactly 0): the pre-activation is positive;
//! - τ = 0.5 for a sigmoid code without a KL target: again a positive
//!   pre-activation, σ(z) > 0.5 ⇔ z > 0;
//! - τ = ρ/10 for a sigmoid code with a KL target ρ. The KL penalty reads
//!   each unit as a Bernoulli variable of mean ρ̂ and pulls ρ̂ to ρ (0.05 in
//!   the presets), so a healthy unit's values sit near ρ and need never pass
//!   0.5: with τ = 0.5 a model on target reads as all dead. With τ = ρ/10 a
//!   unit counted dead has stayed below a tenth of its target on every
//!   sample, so its mean activation is ≤ ρ/10; conversely a unit whose mean
//!   activation over the samples counted is above ρ/10 is never dead. A
//!   tenth leaves room for the spread of ρ̂ a healthy model shows (a factor
//!   of 2 either way, see below) while catching units the penalty failed to
//!   hold (the KL gradient grows as ρ/ρ̂, so a unit that low is stuck, not
//!   resting).
//!
//! L0 is the mean number of units per sample above τ; a unit is dead in the
//! epoch when it never fired in it, and dead over the window
//! ([`crate::train::dead`]) when it has not fired in the last
//! `sae.dead_window` samples; both use the same τ.
//!
//! For a code with a KL target, the mean activation ρ̂ of each KL group
//! (a unit of a dense code; a channel, over all its positions, of a
//! convolutional one, as the penalty takes it) is summarised by its minimum,
//! median and maximum, and the groups *off target* are those with ρ̂
//! outside [ρ/2, 2ρ].

use crate::error::Result;
use crate::kernels::Activation;
use crate::nn::{LossParts, ModelConfig};

/// The activity threshold of a code from its activation alone: h > 0 for
/// ReLU, leaky ReLU, linear and tanh codes; h > 0.5 for sigmoid codes
/// (whose outputs are never 0), that is a positive pre-activation. See
/// [`code_threshold`] for the threshold of a code with a KL target.
pub fn active_threshold(act: Activation) -> f32 {
    match act {
        Activation::Sigmoid => 0.5,
        _ => 0.0,
    }
}

/// The KL target ρ of the code layer of `cfg`, if its KL penalty is on it.
pub fn code_rho(cfg: &ModelConfig) -> Option<f64> {
    cfg.kl.filter(|p| p.layer == cfg.code_layer).map(|p| p.rho)
}

/// The activity threshold τ of the code of `cfg` (see the module doc):
/// ρ/10 for a sigmoid code with a KL target ρ, else [`active_threshold`].
pub fn code_threshold(cfg: &ModelConfig) -> f32 {
    let act = cfg.producing_act(cfg.code_layer);
    match code_rho(cfg) {
        Some(rho) if act == Activation::Sigmoid => (rho / 10.0) as f32,
        _ => active_threshold(act),
    }
}

/// The spread of the mean activations ρ̂ of a code's KL groups against the
/// target ρ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RhoSpread {
    /// The target ρ.
    pub rho: f64,
    /// The smallest ρ̂.
    pub min: f64,
    /// The median ρ̂ (the mean of the two middle values for an even count).
    pub median: f64,
    /// The largest ρ̂.
    pub max: f64,
    /// Groups with ρ̂ outside [ρ/2, 2ρ].
    pub off_target: usize,
    /// Groups in all (units of a dense code, channels of a convolutional one).
    pub groups: usize,
}

impl RhoSpread {
    /// The spread of `rho_hat` against `rho`; `None` if `rho_hat` is empty.
    pub fn new(rho: f64, rho_hat: &[f64]) -> Option<RhoSpread> {
        let mut v = rho_hat.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Some(RhoSpread {
            rho,
            min: v[0],
            median,
            max: v[n - 1],
            off_target: v
                .iter()
                .filter(|&&r| !(r >= 0.5 * rho && r <= 2.0 * rho))
                .count(),
            groups: n,
        })
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
    /// The KL target of the code and its groups (channels, positions each).
    kl: Option<(f64, usize, usize)>,
}

impl CodeStats {
    /// Statistics for a code of `units` units with activation `act`
    /// (threshold [`active_threshold`], no KL target).
    pub fn new(units: usize, act: Activation) -> CodeStats {
        CodeStats {
            threshold: active_threshold(act),
            samples: 0,
            active_total: 0,
            sum: vec![0.0; units],
            fired: vec![0; units],
            kl: None,
        }
    }

    /// Statistics for the code of `cfg`: threshold [`code_threshold`], and
    /// the spread of ρ̂ when the code has a KL target.
    pub fn for_model(cfg: &ModelConfig) -> CodeStats {
        let (c, h, w) = cfg.shapes()[cfg.code_layer];
        let mut s = CodeStats::new(c * h * w, cfg.producing_act(cfg.code_layer));
        s.threshold = code_threshold(cfg);
        s.kl = code_rho(cfg).map(|rho| (rho, c, h * w));
        s
    }

    /// The activity threshold τ.
    pub fn threshold(&self) -> f32 {
        self.threshold
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

    /// The spread of ρ̂ per KL group against ρ, for a code with a KL target
    /// (`None` otherwise, or before any sample).
    pub fn rho_spread(&self) -> Option<RhoSpread> {
        let (rho, channels, positions) = self.kl?;
        if self.samples == 0 {
            return None;
        }
        let n = (self.samples * positions as u64) as f64;
        let rho_hat: Vec<f64> = self
            .sum
            .chunks_exact(positions)
            .take(channels)
            .map(|c| c.iter().sum::<f64>() / n)
            .collect();
        RhoSpread::new(rho, &rho_hat)
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

    /// The statistics of every rank of `comm` summed, in rank order (the
    /// counts exactly; the sums of activations rounded in that order).
    ///
    /// # Errors
    /// Any error of `comm`.
    pub fn merged<T>(&self, comm: &mut dyn crate::dist::Collective<T>) -> Result<CodeStats> {
        let units = self.sum.len();
        let mut mine = Vec::with_capacity(8 * (2 + 2 * units));
        let words = [self.samples, self.active_total]
            .into_iter()
            .chain(self.sum.iter().map(|v| v.to_bits()))
            .chain(self.fired.iter().copied());
        for w in words {
            mine.extend_from_slice(&w.to_le_bytes());
        }
        let p = comm.ranks();
        let mut all = vec![0u8; mine.len() * p];
        comm.all_gather_bytes(&mine, &mut all, &vec![mine.len(); p])?;
        let mut out = CodeStats {
            samples: 0,
            active_total: 0,
            sum: vec![0.0; units],
            fired: vec![0; units],
            ..self.clone()
        };
        for part in all.chunks_exact(mine.len().max(1)) {
            let w: Vec<u64> = part
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            out.samples += w[0];
            out.active_total += w[1];
            for j in 0..units {
                out.sum[j] += f64::from_bits(w[2 + j]);
                out.fired[j] += w[2 + units + j];
            }
        }
        Ok(out)
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

/// The statistics of an epoch stopped before its last step (by a step
/// limit, or an observer's stop): what [`crate::train::fit()`] had summed
/// over its steps so far. A trainer keeps it
/// ([`crate::train::Trainer::epoch_so_far`]), a checkpoint saves it
/// (`sparse_ae.epoch_so_far`), and a run that continues the epoch adds to
/// it, so the epoch's record covers every step of it, as in a run never
/// stopped (its times add the two runs' times).
#[derive(Clone, Debug)]
pub struct EpochSoFar {
    /// The optimizer steps done when it was taken.
    pub step: u64,
    /// The training loss summed over the epoch's steps so far.
    pub(crate) loss: LossMean,
    /// The code statistics over those steps (every rank's, summed).
    pub(crate) code: CodeStats,
    /// The seconds of training those steps took.
    pub seconds: f64,
    /// Those of its steps that ran on one thread.
    pub one_thread_steps: u64,
}

impl EpochSoFar {
    /// The samples the epoch's steps so far took.
    pub fn samples(&self) -> u64 {
        self.code.samples
    }

    /// As a JSON object; every sum as the 16 hex digits of its bits, so
    /// that it is read back exactly.
    pub fn to_json_value(&self) -> crate::io::json::Value {
        use crate::io::json::Value;
        let hex = |v: f64| format!("{:016x}", v.to_bits());
        let list = |words: Vec<String>| Value::String(words.join(","));
        let l = &self.loss.sum;
        let loss = [l.recon, l.l1, l.kl, l.l2, l.auxk, self.loss.weight];
        Value::Object(vec![
            ("step".into(), Value::String(self.step.to_string())),
            ("loss".into(), list(loss.iter().map(|&v| hex(v)).collect())),
            (
                "samples".into(),
                Value::String(self.code.samples.to_string()),
            ),
            (
                "active".into(),
                Value::String(self.code.active_total.to_string()),
            ),
            (
                "sum".into(),
                list(self.code.sum.iter().map(|&v| hex(v)).collect()),
            ),
            (
                "fired".into(),
                list(self.code.fired.iter().map(u64::to_string).collect()),
            ),
            ("seconds".into(), Value::String(hex(self.seconds))),
            (
                "one_thread_steps".into(),
                Value::String(self.one_thread_steps.to_string()),
            ),
        ])
    }

    /// Reads [`EpochSoFar::to_json_value`]'s object for the code of `cfg`.
    ///
    /// # Errors
    /// A message naming the field that is missing, malformed or
    /// inconsistent (counts beyond the samples, sums not finite, another
    /// number of code units).
    pub fn from_json_value(
        v: &crate::io::json::Value,
        cfg: &ModelConfig,
    ) -> std::result::Result<EpochSoFar, String> {
        let field = |k: &str| {
            v.get(k)
                .and_then(|f| f.as_str())
                .ok_or_else(|| format!("`{k}` is missing or not a string"))
        };
        let whole = |k: &str| {
            field(k)?
                .parse::<u64>()
                .map_err(|_| format!("`{k}` is not a whole number"))
        };
        let reals = |k: &str| {
            let mut out = Vec::new();
            for w in field(k)?.split(',') {
                let x = u64::from_str_radix(w, 16)
                    .ok()
                    .filter(|_| w.len() == 16)
                    .map(f64::from_bits)
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        format!("`{k}` holds {w:?}, not the 16 hex digits of a finite number")
                    })?;
                out.push(x);
            }
            Ok::<_, String>(out)
        };
        let mut code = CodeStats::for_model(cfg);
        let units = code.sum.len();
        code.samples = whole("samples")?;
        code.active_total = whole("active")?;
        code.sum = reals("sum")?;
        code.fired = Vec::with_capacity(units);
        for w in field("fired")?.split(',') {
            let f: u64 = w
                .parse()
                .map_err(|_| format!("`fired` holds {w:?}, not a count of samples"))?;
            if f > code.samples {
                return Err(format!(
                    "`fired` holds {f}, more than the {} samples",
                    code.samples
                ));
            }
            code.fired.push(f);
        }
        for (k, n) in [("sum", code.sum.len()), ("fired", code.fired.len())] {
            if n != units {
                return Err(format!(
                    "`{k}` holds {n} values, but the model's code has {units} units"
                ));
            }
        }
        if code.active_total != code.fired.iter().sum::<u64>() {
            return Err("`active` is not the sum of `fired`".into());
        }
        let loss = reals("loss")?;
        let [recon, l1, kl, l2, auxk, weight] = loss[..] else {
            return Err(format!("`loss` holds {} values, not 6", loss.len()));
        };
        let seconds = match reals("seconds")?[..] {
            [s] if s >= 0.0 => s,
            _ => return Err("`seconds` is not one time ≥ 0".into()),
        };
        if weight != code.samples as f64 {
            return Err(format!(
                "`loss` is over {weight} samples, but the code statistics over {}",
                code.samples
            ));
        }
        Ok(EpochSoFar {
            step: whole("step")?,
            loss: LossMean {
                sum: LossParts {
                    recon,
                    l1,
                    kl,
                    l2,
                    auxk,
                },
                weight,
            },
            code,
            seconds,
            one_thread_steps: whole("one_thread_steps")?,
        })
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
    /// The code units dead over the window (`dead_fraction` as a count).
    pub dead_window_units: usize,
    /// The dead window in samples.
    pub dead_window: u64,
    /// Whether training has seen at least `dead_window` samples; before, no
    /// unit can be dead over the window.
    pub window_full: bool,
    /// The activity threshold τ of the code (see the module doc).
    pub active_threshold: f32,
    /// The spread of the mean activation ρ̂ against the KL target, for a
    /// code with one.
    pub rho: Option<RhoSpread>,
    /// Mean activation of each code unit over the epoch.
    pub mean_activation: Vec<f64>,
    /// Fraction of samples each code unit fired in.
    pub firing_rate: Vec<f64>,
    /// Training samples per second (steps only, without validation).
    pub samples_per_sec: f64,
    /// Wall time of the epoch including validation, seconds.
    pub seconds: f64,
    /// Steps of the epoch that ran on one thread because a second did not
    /// pay, measured ([`crate::parallel::Pace`]).
    pub one_thread_steps: u64,
}

impl EpochMetrics {
    /// Column names of [`EpochMetrics::csv_row`].
    pub const CSV_HEADER: &'static str = "epoch,step,train_loss,train_recon,train_l1,train_kl,train_l2,train_auxk,test_loss,test_recon,test_l1,test_kl,test_l2,l0,dead_units,code_units,dead_fraction,samples_per_sec,seconds,dead_window_units,dead_window,window_full,active_threshold,rho,rho_hat_min,rho_hat_median,rho_hat_max,rho_off_target,one_thread_steps";

    /// One CSV line (no newline); test columns are empty without
    /// validation, the ρ columns without a KL target on the code.
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
        ) + &format!(
            ",{},{},{},{},{},{}",
            self.dead_window_units,
            self.dead_window,
            self.window_full,
            self.active_threshold,
            self.rho.map_or(",,,,".to_string(), |r| format!(
                "{},{},{},{},{}",
                r.rho, r.min, r.median, r.max, r.off_target
            )),
            self.one_thread_steps
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
        let rho = self.rho.map_or("null".to_string(), |r| {
            format!(
                "{{\"rho\":{},\"min\":{},\"median\":{},\"max\":{},\"off_target\":{},\"groups\":{}}}",
                json_num(r.rho),
                json_num(r.min),
                json_num(r.median),
                json_num(r.max),
                r.off_target,
                r.groups
            )
        });
        format!(
            "{{\"epoch\":{},\"step\":{},\"train\":{},\"test\":{},\"l0\":{},\"dead_units\":{},\"code_units\":{},\"dead_fraction\":{},\"dead_window_units\":{},\"dead_window\":{},\"window_full\":{},\"active_threshold\":{},\"rho_hat\":{rho},\"samples_per_sec\":{},\"seconds\":{},\"one_thread_steps\":{},\"mean_activation\":[{}]}}",
            self.epoch,
            self.step,
            parts(&self.train),
            test,
            json_num(self.l0),
            self.dead_units,
            self.code_units,
            json_num(self.dead_fraction),
            self.dead_window_units,
            self.dead_window,
            self.window_full,
            json_num(self.active_threshold as f64),
            json_num(self.samples_per_sec),
            json_num(self.seconds),
            self.one_thread_steps,
            means.join(",")
        )
    }
}

/// The objective of `cfg` as a sum of its named parts, e.g. `bce + l1 +
/// l2`: the reconstruction loss (`bce`, `mse` or `sse`), then `l1`, `kl`,
/// `l2` (weight decay) and `auxk` when the model has them. These are the
/// names of the [`LossParts`] fields that the model can make non-zero.
pub fn objective_name(cfg: &ModelConfig) -> String {
    let mut parts = vec![cfg.loss.name()];
    parts.extend(penalty_names(cfg));
    parts.join(" + ")
}

/// The parts of `cfg`'s loss besides the reconstruction, by their
/// [`LossParts`] names, in order: `l1`, `kl`, `l2` (weight decay) and
/// `auxk`, each when the model has it.
pub fn penalty_names(cfg: &ModelConfig) -> Vec<&'static str> {
    [
        ("l1", cfg.l1.is_some()),
        ("kl", cfg.kl.is_some()),
        ("l2", cfg.weight_decay != 0.0),
        ("auxk", cfg.sae.auxk.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, has)| has.then_some(name))
    .collect()
}

/// The space a loss or error is in: `input space` for inputs as read
/// (`scale` 1), else `normalised space (inputs × s)`.
pub fn space_name(scale: f32) -> String {
    if scale == 1.0 {
        "input space".to_string()
    } else {
        format!("normalised space (inputs × {scale})")
    }
}

/// A number for a label such as `(h > τ)` or `ρ 0.05`: the shortest text
/// that reads back to the same value, in exponent form (`1e-31`) below 10⁻⁴
/// or from 10⁶ up, where the plain form would run to dozens of digits
/// (`{}` never uses an exponent).
pub fn label_num<T>(v: T) -> String
where
    T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp,
{
    let a = v.into().abs();
    if a != 0.0 && a.is_finite() && !(1e-4..1e6).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::json::Value;
    use crate::nn::{LayerSpec, ModelBuilder};

    fn dense(act: Activation, kl: bool) -> ModelConfig {
        let b = ModelBuilder::new(6)
            .code(4, act)
            .decoder(6, Activation::Sigmoid);
        if kl { b.kl(0.05, 3.0) } else { b }.build().unwrap()
    }

    #[test]
    fn the_threshold_follows_the_code() {
        assert_eq!(code_threshold(&dense(Activation::Relu, false)), 0.0);
        assert_eq!(code_threshold(&dense(Activation::Tanh, false)), 0.0);
        assert_eq!(code_threshold(&dense(Activation::Sigmoid, false)), 0.5);
        assert_eq!(code_threshold(&dense(Activation::Sigmoid, true)), 0.005);
        // A KL penalty on another layer sets no target for the code.
        let other = ModelBuilder::new(6)
            .encoder(5, Activation::Sigmoid)
            .code(4, Activation::Sigmoid)
            .decoder(6, Activation::Sigmoid)
            .kl_on(0.1, 3.0, 0)
            .build()
            .unwrap();
        assert_eq!(code_rho(&other), None);
        assert_eq!(code_threshold(&other), 0.5);
        assert!(CodeStats::for_model(&other).rho_spread().is_none());
    }

    #[test]
    fn an_epoch_so_far_reads_back_exactly_and_bad_ones_are_named() {
        let cfg = dense(Activation::Sigmoid, true);
        let mut code = CodeStats::for_model(&cfg);
        code.add(&[0.1, 0.003, 0.7, 0.0, 1.0 / 3.0, 0.2, 0.9, 0.004]);
        let mut loss = LossMean::default();
        let parts = LossParts {
            recon: 0.1 + 0.2,
            kl: 1.0 / 3.0,
            ..LossParts::default()
        };
        loss.add(&parts, 2);
        let s = EpochSoFar {
            step: 7,
            loss,
            code,
            seconds: 0.25,
            one_thread_steps: 1,
        };
        let v = s.to_json_value();
        let back = EpochSoFar::from_json_value(&v, &cfg).unwrap();
        assert_eq!(format!("{back:?}"), format!("{s:?}"));
        assert_eq!(back.samples(), 2);

        let with = |key: &str, value: &str| {
            let mut v = v.clone();
            if let Value::Object(fields) = &mut v {
                for (k, x) in fields.iter_mut() {
                    if k == key {
                        *x = Value::String(value.into());
                    }
                }
            }
            EpochSoFar::from_json_value(&v, &cfg).unwrap_err()
        };
        let e = with("fired", "1,1,1,3");
        assert!(e.contains("more than the 2 samples"), "{e}");
        let e = with("fired", "1,1,1");
        assert!(
            e.contains("3 values, but the model's code has 4 units"),
            "{e}"
        );
        assert!(with("active", "4").contains("`active` is not the sum"));
        let e = with("sum", "7ff0000000000000,0,0,0");
        assert!(
            e.contains("not the 16 hex digits of a finite number"),
            "{e}"
        );
        assert!(with("samples", "3").contains("`loss` is over 2 samples"));
        assert!(with("step", "x").contains("`step` is not a whole number"));
        let e = EpochSoFar::from_json_value(&v, &dense(Activation::Relu, false));
        assert!(e.is_ok(), "another activation, the same code units");
        let wider = ModelBuilder::new(6)
            .code(5, Activation::Sigmoid)
            .decoder(6, Activation::Sigmoid)
            .build()
            .unwrap();
        let e = EpochSoFar::from_json_value(&v, &wider).unwrap_err();
        assert!(e.contains("5 units"), "{e}");
    }

    #[test]
    fn label_numbers_stay_short_and_exact() {
        assert_eq!(label_num(1e-31f32), "1e-31");
        assert_eq!(label_num(0.005f32), "0.005");
        assert_eq!(label_num(0.05f64), "0.05");
        assert_eq!(label_num(0.0f32), "0");
        assert_eq!(label_num(2.5e7f64), "2.5e7");
        assert_eq!(label_num(123456.0f64), "123456");
        assert_eq!(label_num(f32::NAN), "NaN");
        for v in [1e-31f32, 3.3e-5, 0.1, 7.0e9] {
            assert_eq!(label_num(v).parse::<f32>().unwrap(), v);
        }
    }

    #[test]
    fn rho_spread_counts_groups_off_by_more_than_two() {
        let r = RhoSpread::new(0.1, &[0.3, 0.05, 0.2, 0.049, 0.1]).unwrap();
        assert_eq!((r.min, r.median, r.max), (0.049, 0.1, 0.3));
        // 0.05 and 0.2 are on the band's edges; 0.049 and 0.3 are off.
        assert_eq!((r.off_target, r.groups), (2, 5));
        let even = RhoSpread::new(0.1, &[0.4, 0.1, 0.2, 0.0]).unwrap();
        assert!((even.median - 0.15).abs() < 1e-15);
        assert_eq!(even.off_target, 2);
        assert!(RhoSpread::new(0.1, &[]).is_none());
    }

    /// A dead unit's mean activation is at most τ, so a unit whose mean is
    /// above τ is never dead, whatever its values; a unit at ρ that never
    /// passes 0.5 (the old sigmoid threshold) is alive.
    #[test]
    fn a_unit_dead_at_rho_over_ten_has_a_mean_below_it() {
        let cfg = dense(Activation::Sigmoid, true);
        let mut s = CodeStats::for_model(&cfg);
        let mut old = CodeStats::new(4, Activation::Sigmoid);
        let mut state = 12345u64;
        for _ in 0..200 {
            let mut row = [0.0f32; 4];
            for (j, v) in row.iter_mut().enumerate() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                // Unit 0 on target (0.02..0.08), unit 1 constant at ρ, unit 2
                // at most 0.004 (< ρ/10), unit 3 mostly 0.001 with rare 0.9 (mean ≈ ρ).
                *v = match j {
                    0 => 0.02 + 0.06 * u,
                    1 => 0.05,
                    2 => 0.004 * u,
                    _ if u > 0.95 => 0.9,
                    _ => 0.001,
                };
            }
            s.add(&row);
            old.add(&row);
        }
        let means = s.mean_activation();
        let fired = s.firing_rate();
        for j in 0..4 {
            if fired[j] == 0.0 {
                assert!(means[j] <= s.threshold() as f64, "unit {j}");
            }
            if means[j] > s.threshold() as f64 {
                assert!(fired[j] > 0.0, "unit {j}");
            }
        }
        assert_eq!(s.dead(), 1, "only unit 2 stays below ρ/10");
        assert_eq!(old.dead(), 3, "at 0.5 the units on target read as dead");
        let r = s.rho_spread().unwrap();
        assert_eq!(r.groups, 4);
        assert_eq!(r.off_target, 1, "only unit 2 is off target: {r:?}");
    }

    /// A convolutional code's ρ̂ is per channel, over all its positions, as
    /// the KL penalty takes it.
    #[test]
    fn a_conv_code_is_summarised_per_channel() {
        let cfg = ModelBuilder::new(16)
            .image(1, 4, 4)
            .code_layer(LayerSpec::conv(2, 3, Activation::Sigmoid))
            .layer(LayerSpec::conv(1, 3, Activation::Sigmoid))
            .kl(0.1, 1.0)
            .build()
            .unwrap();
        let mut s = CodeStats::for_model(&cfg);
        // Channel 0: 0.1 everywhere; channel 1: 0.3 on half its positions, 0 elsewhere.
        let mut row = vec![0.1f32; 32];
        for (p, v) in row[16..].iter_mut().enumerate() {
            *v = if p % 2 == 0 { 0.3 } else { 0.0 };
        }
        s.add(&row);
        s.add(&row);
        let r = s.rho_spread().unwrap();
        assert_eq!(r.groups, 2);
        assert!(
            (r.min - 0.1).abs() < 1e-7 && (r.max - 0.15).abs() < 1e-7,
            "{r:?}"
        );
        assert_eq!(r.off_target, 0);
        // Per unit, the odd positions of channel 1 never fire.
        assert_eq!(s.dead(), 8);
    }
}
