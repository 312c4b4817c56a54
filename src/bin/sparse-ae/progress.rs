//! Progress on the terminal: a bar redrawn in place when stderr is a
//! terminal, a plain line per epoch otherwise.

use sparse_ae::nn::LossParts;
use sparse_ae::train::metrics::label_num;
use sparse_ae::train::{EpochMetrics, Observer, StepLog, Trainer};
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// What to do after each epoch (write metrics, save a checkpoint).
pub type EpochHook<'a> =
    Box<dyn FnMut(&EpochMetrics, &Trainer<f32>) -> sparse_ae::Result<()> + Send + 'a>;

/// How far a long count of work is, on stderr: a line redrawn at most ten
/// times a second on a terminal, else a line every 10 s (so a short run
/// prints nothing). Nothing when quiet.
pub struct Entries {
    what: &'static str,
    unit: &'static str,
    quiet: bool,
    tty: bool,
    started: Instant,
    last: Instant,
    drawn: bool,
}

impl Entries {
    pub fn new(what: &'static str, unit: &'static str, quiet: bool) -> Self {
        let now = Instant::now();
        Entries {
            what,
            unit,
            quiet,
            tty: std::io::stderr().is_terminal(),
            started: now,
            last: now,
            drawn: false,
        }
    }

    /// At item `n` of `total`.
    pub fn at(&mut self, n: usize, total: usize) {
        let gap = if self.tty { 100 } else { 10_000 };
        if self.quiet || self.last.elapsed().as_millis() < gap {
            return;
        }
        self.last = Instant::now();
        let pct = 100.0 * n as f64 / total.max(1) as f64;
        let (what, unit) = (self.what, self.unit);
        let secs = self.started.elapsed().as_secs();
        if self.tty {
            note_part!("\r{what}: {n} of {total} {unit} ({pct:.0} %), {secs} s");
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            note!("{what}: {n} of {total} {unit} ({pct:.0} %), {secs} s");
        }
    }

    /// Takes the redrawn line away before the result is printed.
    pub fn clear(&mut self) {
        if self.drawn {
            note_part!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// Per-epoch output, metrics file, checkpoints.
pub struct Progress<'a> {
    pub quiet: bool,
    tty: bool,
    last_draw: Instant,
    loss_ema: f64,
    labels: Labels,
    /// The training loss and its parts over the steps, for the report.
    pub log: StepLog,
    pub on_epoch: EpochHook<'a>,
}

impl<'a> Progress<'a> {
    pub fn new(quiet: bool, labels: Labels, on_epoch: EpochHook<'a>) -> Self {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            last_draw: Instant::now(),
            loss_ema: f64::NAN,
            labels,
            log: StepLog::default(),
            on_epoch,
        }
    }
}

/// What the losses of an epoch line are computed on, when it is not plain
/// inputs in input space.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    /// The model corrupts its training inputs (a denoising model): the
    /// training loss is on noisy inputs, the test loss on clean ones.
    pub noisy: bool,
    /// The inputs are scaled (`--normalize`): losses are in normalised space.
    pub normalised: bool,
    /// The parts of the loss besides the reconstruction that the model has
    /// (`l1`, `kl`, `l2`); the epoch line shows only these, and AuxK when
    /// it is non-zero.
    pub parts: Vec<&'static str>,
    /// Batches per optimizer step and the batch size, when a step
    /// accumulates more than one batch (`--accumulate`).
    pub accumulated: Option<(usize, usize)>,
}

impl Labels {
    /// The labels of a model's losses.
    pub fn of(cfg: &sparse_ae::nn::ModelConfig, scale: f32) -> Labels {
        let mut parts = sparse_ae::train::metrics::penalty_names(cfg);
        // AuxK is shown when it is non-zero (no latent is dead at first).
        parts.retain(|&p| p != "auxk");
        Labels {
            noisy: cfg.noise != sparse_ae::nn::Noise::None,
            normalised: scale != 1.0,
            parts,
            accumulated: None,
        }
    }

    /// The bracketed tag after `train` or `test`, or nothing.
    fn tag(&self, train: bool) -> String {
        let mut tags = Vec::new();
        if self.noisy {
            tags.push(if train {
                "noisy inputs"
            } else {
                "clean inputs"
            });
        }
        if self.normalised {
            tags.push("normalised");
        }
        if tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", tags.join(", "))
        }
    }
}

pub fn epoch_line(m: &EpochMetrics, labels: &Labels) -> String {
    let test = m.test.map_or(String::new(), |t| {
        format!(
            "  test{} {:.5} (recon {:.5})",
            labels.tag(false),
            t.total(),
            t.recon
        )
    });
    let mut parts = String::new();
    for name in &labels.parts {
        parts.push_str(&format!(" {name} {:.2e}", m.train.part(name)));
    }
    if m.train.auxk != 0.0 {
        parts.push_str(&format!(" auxk {:.2e}", m.train.auxk));
    }
    let per_step = labels
        .accumulated
        .map_or(String::new(), |(k, b)| format!(" of {k}×{b} samples"));
    let one_thread = match m.one_thread_steps {
        0 => String::new(),
        n => format!(" ({n} steps on one thread)"),
    };
    format!(
        "epoch {:>3}  step {:>7}{per_step}  train{} {:.5} (recon {:.5}{parts}){test}  {}  {:.0} samples/s{one_thread}  {:.2}s",
        m.epoch,
        m.step,
        labels.tag(true),
        m.train.total(),
        m.train.recon,
        sparsity(m),
        m.samples_per_sec,
        m.seconds
    )
}

/// L0 (with its threshold when it is not 0), the spread of ρ̂ against ρ
/// for a code with a KL target, and the two dead counts, each saying what
/// it counts.
fn sparsity(m: &EpochMetrics) -> String {
    let above = if m.active_threshold != 0.0 {
        format!(" (h > {})", label_num(m.active_threshold))
    } else {
        String::new()
    };
    let rho = m.rho.map_or(String::new(), |r| {
        format!(
            "  ρ̂ {:.4} [{:.4}, {:.4}] ρ {} ({}/{} off ×2)",
            r.median,
            r.min,
            r.max,
            label_num(r.rho),
            r.off_target,
            r.groups
        )
    });
    let window = if m.window_full {
        format!(
            "{}/{} in window of {}",
            m.dead_window_units, m.code_units, m.dead_window
        )
    } else {
        format!("window of {} not full", m.dead_window)
    };
    format!(
        "L0 {:.2}{above}{rho}  dead {}/{} in epoch, {window}",
        m.l0, m.dead_units, m.code_units
    )
}

impl Observer for Progress<'_> {
    fn on_step(&mut self, epoch: usize, k: usize, spe: usize, loss: &LossParts) {
        let step = (epoch as u64 - 1) * spe as u64 + k as u64;
        self.log.add(step, spe as u64, loss);
        let l = loss.total();
        self.loss_ema = if self.loss_ema.is_nan() {
            l
        } else {
            0.98 * self.loss_ema + 0.02 * l
        };
        if self.quiet || !self.tty || (k != spe && self.last_draw.elapsed().as_millis() < 100) {
            return;
        }
        self.last_draw = Instant::now();
        let width = 30;
        let done = k * width / spe.max(1);
        let bar: String = "#".repeat(done) + &"-".repeat(width - done);
        note_part!(
            "\repoch {epoch:>3} [{bar}] {k}/{spe}  loss {:.5}",
            self.loss_ema
        );
        let _ = std::io::stderr().flush();
    }

    fn on_epoch(&mut self, m: &EpochMetrics, t: &Trainer<f32>) -> sparse_ae::Result<()> {
        if !self.quiet {
            if self.tty {
                note_part!("\r\x1b[2K");
            }
            note!("{}", epoch_line(m, &self.labels));
        }
        (self.on_epoch)(m, t)
    }
}
