//! The training loop: epochs of shuffled batches, validation, metrics.

use super::evaluation::{Chunks, SplitLoss};
use super::metrics::{CodeStats, EpochMetrics, EpochSoFar, LossMean};
use super::samples::Samples;
use super::source::{EpochOrder, EpochSource, Rows, Shuffled};
use super::step::Trainer;
use crate::dist::{Collective, Solo, agree};
use crate::error::{Error, Result};
use crate::nn::{Autoencoder, LossParts};
use crate::rng::Rng;
use std::time::Instant;

/// How to run [`fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Epochs to run (counting those already done by a resumed trainer).
    pub epochs: usize,
    /// Stop after this many optimizer steps in all, if set.
    pub max_steps: Option<u64>,
    /// Shuffle the samples each epoch (a permutation drawn from
    /// `shuffle_seed` and the epoch number, so a resumed run sees the same
    /// order); in order otherwise.
    pub shuffle: bool,
    /// Seed of the shuffling.
    pub shuffle_seed: u64,
    /// Batch size of validation passes ([`evaluate`]): for a batch top-k
    /// model the block its selection is over, otherwise only the most
    /// samples run at once (no result depends on it).
    pub eval_batch: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            max_steps: None,
            shuffle: true,
            shuffle_seed: 0,
            eval_batch: super::EVAL_BATCH,
        }
    }
}

impl FitOptions {
    /// Checks that the options train something: at least one epoch, and
    /// not a step limit of 0 (a run that trains nothing would save an
    /// untrained model as if trained).
    ///
    /// # Errors
    /// [`Error::Config`] naming the option.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::config(
                "epochs",
                "must be at least 1 (0 epochs would train nothing)",
            ));
        }
        if self.max_steps == Some(0) {
            return Err(Error::config(
                "steps",
                "must be at least 1 (0 steps would train nothing)",
            ));
        }
        Ok(())
    }
}

/// Hooks called by [`fit`]: progress after each step, a record after each
/// epoch (write metrics, save a checkpoint). An error stops training.
pub trait Observer {
    /// After each step: 1-based step within the epoch, steps per epoch.
    fn on_step(
        &mut self,
        _epoch: usize,
        _step_in_epoch: usize,
        _steps_per_epoch: usize,
        _loss: &LossParts,
    ) {
    }
    /// After each epoch (and its validation).
    ///
    /// # Errors
    /// Any error stops training and is returned by [`fit`].
    fn on_epoch(&mut self, _metrics: &EpochMetrics, _trainer: &Trainer<f32>) -> Result<()> {
        Ok(())
    }
    /// Asked before each step: `false` ends training there, and [`fit`]
    /// returns the epochs finished so far, with the model as the last step
    /// left it (to stop on Ctrl-C, or after an epoch's record).
    fn keep_going(&mut self) -> bool {
        true
    }
}

/// An observer that does nothing.
pub struct Silent;
impl Observer for Silent {}

/// The word mixed into the shuffle seed for `epoch`.
pub(crate) fn epoch_mix(epoch: usize) -> u64 {
    (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The sample order of `epoch` (0-based).
pub fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: usize, order: &mut Vec<u32>) {
    order.clear();
    order.extend(0..n as u32);
    if shuffle {
        Rng::new(seed ^ epoch_mix(epoch)).shuffle(order);
    }
}

/// Trains for `opts.epochs` epochs (or `opts.max_steps` steps) over `train`,
/// a step taking [`Trainer::samples_per_step`] samples (a batch of the
/// trainer's batch size, or the batches it accumulates; a last partial step
/// is dropped), validating on `test` after each epoch. Each epoch is one permutation of
/// the samples ([`epoch_order`]).
///
/// A trainer that has already taken steps continues where it stopped: the
/// epoch and the position inside it follow from its step count, so a resumed
/// run trains a model identical to an uninterrupted one. An epoch ended
/// before its last step leaves its sums so far in the trainer
/// ([`Trainer::epoch_so_far`], which a checkpoint keeps), and the run that
/// continues the epoch adds to them: its record is the uninterrupted run's
/// (the times aside).
///
/// # Errors
/// [`Error::Shape`] if the samples do not match the model's input,
/// [`Error::Config`] if there is not one whole batch, [`Error::Value`] if a
/// binary cross-entropy model is given targets outside [0, 1] (naming the
/// sample), [`Error::NonFinite`] if the loss or a parameter becomes NaN or
/// infinite (naming the step), or any error of the observer.
pub fn fit(
    trainer: &mut Trainer<f32>,
    train: Samples<'_>,
    test: Option<Samples<'_>>,
    opts: &FitOptions,
    obs: &mut (dyn Observer + Send),
) -> Result<Vec<EpochMetrics>> {
    fit_on(trainer, train, test, opts, obs, &mut Solo)
}

/// [`fit`] with each step shared by the ranks of `comm` (see
/// [`fit_source_on`]).
///
/// # Errors
/// As [`fit_source_on`].
pub fn fit_on(
    trainer: &mut Trainer<f32>,
    train: Samples<'_>,
    test: Option<Samples<'_>>,
    opts: &FitOptions,
    obs: &mut (dyn Observer + Send),
    comm: &mut (dyn Collective<f32> + Send),
) -> Result<Vec<EpochMetrics>> {
    if trainer.model.config().loss == crate::nn::Loss::Bce {
        let splits = [("training", Some(train)), ("test", test)];
        for (name, s) in splits {
            if let Some((i, j, v)) = s.and_then(|s| s.outside_unit()) {
                return Err(crate::nn::bce_target_error(
                    format!("feature {j} of sample {i} of the {name} split"),
                    f64::from(v),
                ));
            }
        }
    }
    let mut test = test;
    fit_source_on(
        trainer,
        &mut Shuffled::new(train),
        test.as_mut().map(|t| t as &mut dyn Rows),
        opts,
        obs,
        comm,
    )
}

/// [`fit`] over any [`EpochSource`] (for example rows of a `.npy` file read
/// chunk by chunk, [`crate::train::source::Chunked`]) and any [`Rows`] to
/// validate on. Batch `k` of epoch `e` is positions `k·B..(k+1)·B` of the
/// source's order for `e` (`opts.shuffle`, `opts.shuffle_seed`), so resuming
/// is exact here too.
///
/// # Errors
/// As [`fit`], and any error of reading the source.
pub fn fit_source(
    trainer: &mut Trainer<f32>,
    train: &mut dyn EpochSource,
    test: Option<&mut dyn Rows>,
    opts: &FitOptions,
    obs: &mut (dyn Observer + Send),
) -> Result<Vec<EpochMetrics>> {
    fit_source_on(trainer, train, test, opts, obs, &mut Solo)
}

/// [`fit_source`] with each step shared by the ranks of `comm`
/// ([`crate::dist`]): every rank runs this with the same trainer, options
/// and data, reads only the rows of its own micro-batches
/// ([`crate::dist::MicroPlan::rows`] of [`Trainer::plan`]) and applies the same update
/// ([`Trainer::step_on`]), so the model is the same bits on every rank and
/// for any number of ranks. The loss is the whole batch's; the code
/// statistics of an epoch are summed over the ranks at its end. Only rank 0
/// validates on `test`. The ranks agree before each step (an error or a
/// stop on one rank ends every rank) and after each epoch's record.
///
/// # Errors
/// As [`fit_source`]; an error on another rank as [`Error::Rank`].
pub fn fit_source_on(
    trainer: &mut Trainer<f32>,
    train: &mut dyn EpochSource,
    test: Option<&mut dyn Rows>,
    opts: &FitOptions,
    obs: &mut (dyn Observer + Send),
    comm: &mut (dyn Collective<f32> + Send),
) -> Result<Vec<EpochMetrics>> {
    // The loop runs on a thread of the rayon pool, so the parallel kernels it
    // calls push their tasks on that thread's own deque instead of the
    // pool's injection queue (which allocates as it grows).
    crate::parallel::start_global_pool(None)?;
    rayon::scope(|_| fit_in_pool(trainer, train, test, opts, obs, comm))
}

/// The steps of an epoch over `n` training samples: `n` over the samples a
/// step of `trainer` takes (one batch, or the batches it accumulates), the
/// rest of the epoch's samples left out.
///
/// # Errors
/// [`Error::Config`] naming `batch_size` or `accumulate` when one step
/// takes more samples than there are.
pub fn steps_per_epoch<T: crate::kernels::Real>(trainer: &Trainer<T>, n: usize) -> Result<usize> {
    let batch = trainer.samples_per_step();
    let spe = n / batch;
    if spe > 0 {
        return Ok(spe);
    }
    let samples = if n == 1 { "sample" } else { "samples" };
    Err(match trainer.accumulate() {
        1 => Error::config(
            "batch_size",
            format!("{batch} is larger than the {n} training {samples}"),
        ),
        k => Error::config(
            "accumulate",
            format!(
                "{k} batches of {} ({batch} samples per step) are more than the {n} training {samples} (a step takes every batch it accumulates whole: lower the batch size or the batches accumulated)",
                trainer.batch()
            ),
        ),
    })
}

/// Which limit of `opts` leaves a trainer that has done `steps` steps (of
/// `spe` a epoch) nothing to train: `Some("steps")` or `Some("epochs")`,
/// `None` while there is work ([`fit`] refuses such a trainer). Epochs of
/// no steps (`spe` 0) hold nothing to train.
pub fn nothing_left(steps: u64, spe: usize, opts: &FitOptions) -> Option<&'static str> {
    if opts.max_steps.is_some_and(|m| steps >= m) {
        return Some("steps");
    }
    if spe == 0 {
        return Some("epochs");
    }
    let epoch = (steps / spe as u64) as usize;
    (epochs_to_run(steps, spe, epoch, opts) == 0).then_some("epochs")
}

/// The epochs a run from `steps` steps done (in epoch `epoch`) will record:
/// up to `opts.epochs`, or fewer when `opts.max_steps` ends it sooner.
fn epochs_to_run(steps: u64, spe: usize, epoch: usize, opts: &FitOptions) -> usize {
    let by_epochs = opts.epochs.saturating_sub(epoch);
    match opts.max_steps {
        Some(m) => {
            // Epoch boundaries crossed before step `m`, the last one partial.
            let last = m.saturating_sub(1) / spe as u64 + 1;
            let by_steps = last.saturating_sub(steps / spe as u64);
            by_epochs.min(usize::try_from(by_steps).unwrap_or(usize::MAX))
        }
        None => by_epochs,
    }
}

/// The bytes of one epoch's [`EpochMetrics`] with `code_units` code units
/// (its mean activation and firing rate per unit).
fn epoch_record_bytes(code_units: usize) -> u64 {
    (std::mem::size_of::<EpochMetrics>() as u64)
        .saturating_add(16u64.saturating_mul(code_units as u64))
}

fn fit_in_pool(
    trainer: &mut Trainer<f32>,
    train: &mut dyn EpochSource,
    mut test: Option<&mut dyn Rows>,
    opts: &FitOptions,
    obs: &mut (dyn Observer + Send),
    comm: &mut (dyn Collective<f32> + Send),
) -> Result<Vec<EpochMetrics>> {
    let cfg = trainer.model.config().clone();
    opts.validate()?;
    let dims = [
        ("fit: the training split", Some(train.dim())),
        ("fit: the test split", test.as_ref().map(|t| t.dim())),
    ];
    for (op, dim) in dims {
        if let Some(dim) = dim
            && dim != cfg.input
        {
            return Err(Error::shape(
                op,
                format!("samples of {} features (the model's input)", cfg.input),
                format!("{dim} features"),
            ));
        }
    }
    // A step takes `batch` samples: one batch, or the batches accumulated.
    let batch = trainer.samples_per_step();
    let spe = steps_per_epoch(trainer, train.len())?;
    let code_units = cfg.width(cfg.code_layer);
    let shared = comm.ranks() > 1 || trainer.micro_step();
    let rows = match shared {
        true => trainer.plan(comm.ranks())?.rows(comm.rank()),
        false => 0..batch,
    };
    let mut epoch = (trainer.steps() / spe as u64) as usize;
    let records = epochs_to_run(trainer.steps(), spe, epoch, opts);
    if let Some(field) = nothing_left(trainer.steps(), spe, opts) {
        // A resumed trainer already past the end: saving it would look
        // like a run that trained.
        let limit = match (field, opts.max_steps) {
            ("steps", Some(m)) => format!("{m} steps"),
            _ => format!("{} epochs", opts.epochs),
        };
        return Err(Error::config(
            field,
            format!(
                "{limit} in all leave nothing to train: this run has done {} steps already ({epoch} whole epochs of {spe}); epochs and steps count from the start of training, a resumed run's too, so ask for more",
                trainer.steps()
            ),
        ));
    }
    crate::memory::check(
        &format!(
            "keeping the metrics of {records} epochs of {spe} step{} (ask for fewer epochs, or give --steps)",
            if spe == 1 { "" } else { "s" }
        ),
        (records as u64).saturating_mul(epoch_record_bytes(code_units)),
    )?;
    let mut x = vec![0.0f32; rows.len() * cfg.input];
    let mut out = Vec::with_capacity(records.min(1 << 16));
    let awake = crate::parallel::KeepAwake::new();
    while epoch < opts.epochs {
        if opts.max_steps.is_some_and(|m| trainer.steps() >= m) {
            break;
        }
        let t0 = Instant::now();
        let order = EpochOrder {
            epoch,
            shuffle: opts.shuffle,
            seed: opts.shuffle_seed,
        };
        let first = (trainer.steps() % spe as u64) as usize;
        // An epoch continued from its middle adds to what its steps so far
        // summed (the code statistics on one rank only: the ranks' are
        // summed at the end).
        let steps = trainer.steps();
        let so_far = trainer
            .take_epoch_so_far()
            .filter(|s| first > 0 && s.step == steps && s.samples() == first as u64 * batch as u64);
        let (mut loss, mut code, secs_before, one_before) = match so_far {
            Some(s) => {
                let code = match comm.rank() {
                    0 => s.code,
                    _ => CodeStats::for_model(&cfg),
                };
                (s.loss, code, s.seconds, s.one_thread_steps)
            }
            None => (LossMean::default(), CodeStats::for_model(&cfg), 0.0, 0),
        };
        let serial_before = awake.counts().1;
        for k in first..spe {
            if opts.max_steps.is_some_and(|m| trainer.steps() >= m) {
                break;
            }
            let go = obs.keep_going();
            if !shared && !go {
                if k > 0 {
                    trainer.set_epoch_so_far(Some(EpochSoFar {
                        step: trainer.steps(),
                        loss,
                        code,
                        seconds: secs_before + t0.elapsed().as_secs_f64(),
                        one_thread_steps: one_before + awake.counts().1 - serial_before,
                    }));
                }
                return Ok(out);
            }
            awake.beat();
            let filled = match rows.is_empty() || !go {
                true => Ok(()),
                false => train.fill(order, k * batch + rows.start, &mut x),
            };
            if shared {
                if !agree(comm, filled, go)? {
                    return Ok(out);
                }
            } else {
                filled?;
            }
            let parts = trainer.step_on_with(&x, comm, &mut |c| code.add(c))?;
            loss.add(&parts, batch);
            obs.on_step(epoch + 1, k + 1, spe, &parts);
        }
        // Validation is no step: it runs on the whole pool, untimed.
        awake.rest();
        if shared {
            code = code.merged(comm)?;
        }
        let train_secs = secs_before + t0.elapsed().as_secs_f64();
        let one_thread_steps = one_before + awake.counts().1 - serial_before;
        if let Some(i) = trainer.model.params.iter().position(|v| !v.is_finite()) {
            let name = trainer
                .model
                .layout()
                .tensors
                .iter()
                .find(|t| t.range().contains(&i))
                .map_or("a parameter".to_string(), |t| t.name.clone());
            return Err(Error::NonFinite {
                step: trainer.steps(),
                tensor: name,
            });
        }
        let (evaluated, test_loss) = match test.as_deref_mut() {
            Some(t) if comm.rank() == 0 => {
                match evaluate_rows(&trainer.model, t, opts.eval_batch) {
                    Ok((loss, _)) => (Ok(()), Some(loss)),
                    Err(e) => (Err(e), None),
                }
            }
            _ => (Ok(()), None),
        };
        if shared {
            agree(comm, evaluated, true)?;
        } else {
            evaluated?;
        }
        let m = EpochMetrics {
            epoch: epoch + 1,
            step: trainer.steps(),
            train: loss.mean(),
            test: test_loss,
            l0: code.l0(),
            dead_units: code.dead(),
            code_units,
            dead_fraction: trainer.dead_latents().fraction(),
            dead_window_units: trainer.dead_latents().dead(),
            dead_window: trainer.dead_latents().window(),
            window_full: trainer.steps().saturating_mul(batch as u64)
                >= trainer.dead_latents().window(),
            active_threshold: code.threshold(),
            rho: code.rho_spread(),
            mean_activation: code.mean_activation(),
            firing_rate: code.firing_rate(),
            samples_per_sec: code.samples() as f64 / train_secs.max(1e-9),
            seconds: secs_before + t0.elapsed().as_secs_f64(),
            one_thread_steps,
        };
        // An epoch a step limit ended before its last step: its sums so
        // far, for a run that continues it.
        if !trainer.steps().is_multiple_of(spe as u64) {
            trainer.set_epoch_so_far(Some(EpochSoFar {
                step: trainer.steps(),
                loss,
                code,
                seconds: train_secs,
                one_thread_steps,
            }));
        }
        let recorded = obs.on_epoch(&m, trainer);
        if shared {
            agree(comm, recorded, true)?;
        } else {
            recorded?;
        }
        out.push(m);
        epoch += 1;
    }
    Ok(out)
}

/// The loss of `model` over all of `samples` (clean inputs, no noise), and
/// the statistics of its codes. The loss is defined over the whole set
/// (see [`crate::train::evaluation`]): a KL penalty's ρ̂ is each unit's
/// mean over all the samples, and no part depends on `batch`, the memory
/// budget or the thread count, except for a batch top-k model, which keeps
/// the k·B largest values of each block of `batch` samples (the last block
/// holds the rest; [`crate::train::EVAL_BATCH`] is the CLI's). `batch` is
/// otherwise the most samples run at once, fewer where the memory budget
/// cannot hold them.
///
/// # Errors
/// [`Error::Shape`] if the samples do not match the model's input;
/// [`Error::Memory`] if not one sample fits the memory budget, or for a
/// batch top-k model if a block of `batch` does not.
pub fn evaluate(
    model: &Autoencoder<f32>,
    samples: Samples<'_>,
    batch: usize,
) -> Result<(LossParts, CodeStats)> {
    let mut samples = samples;
    evaluate_rows(model, &mut samples, batch)
}

/// [`evaluate`] over any [`Rows`], read in order (for example the test rows
/// of a `.npy` file, read a batch at a time). The loss is the training
/// objective, on the rows as read (so on normalised inputs if they are
/// scaled).
///
/// # Errors
/// [`Error::Shape`] if the rows do not match the model's input; any error
/// of reading them.
pub fn evaluate_rows(
    model: &Autoencoder<f32>,
    rows: &mut dyn Rows,
    batch: usize,
) -> Result<(LossParts, CodeStats)> {
    evaluate_rows_of(model, rows, batch, None)
}

/// [`evaluate_rows`] of rows that are `of` (say, "the test split"): a
/// sample its errors name is "sample i of {of}", i counted within the rows.
///
/// # Errors
/// As [`evaluate_rows`].
pub fn evaluate_rows_of(
    model: &Autoencoder<f32>,
    rows: &mut dyn Rows,
    batch: usize,
    of: Option<&str>,
) -> Result<(LossParts, CodeStats)> {
    crate::parallel::start_global_pool(None)?;
    crate::kernels::gemm::reserve_pack_buffers()?;
    let cfg = model.config();
    if rows.dim() != cfg.input {
        return Err(Error::shape(
            "evaluate",
            format!("samples of {} features", cfg.input),
            format!("{} features", rows.dim()),
        ));
    }
    let n = rows.len();
    if n == 0 {
        return Err(Error::Value {
            reason: "no samples to evaluate (the split or array is empty)".into(),
        });
    }
    let chunks = Chunks::plan(model, batch, n)?;
    let mut ws = chunks.workspace(model, chunks.chunk)?;
    let mut x = vec![0.0f32; chunks.chunk * cfg.input];
    let mut loss = SplitLoss::new(model);
    let mut code = CodeStats::for_model(cfg);
    let mut start = 0;
    while start < n {
        let len = chunks.chunk.min(n - start);
        if len != ws.batch() {
            ws = chunks.workspace(model, len)?;
            x.truncate(len * cfg.input);
        }
        rows.read(start, &mut x)?;
        // Named by its place among the rows (the model's own check knows
        // only the batch).
        if cfg.loss == crate::nn::Loss::Bce
            && let Some(i) = crate::nn::first_outside_unit(&x)
        {
            return Err(crate::nn::bce_target_error(
                format!(
                    "feature {} of sample {}{}",
                    i % cfg.input,
                    start + i / cfg.input,
                    of.map(|o| format!(" of {o}")).unwrap_or_default()
                ),
                f64::from(x[i]),
            ));
        }
        model.forward(&mut ws, &x)?;
        model.check_outputs(&ws, &x, start, of)?;
        loss.add(model, &ws, &x, start, of)?;
        code.add(model.code(&ws));
        start += len;
    }
    Ok((loss.parts(model), code))
}
