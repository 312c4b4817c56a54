//! One function per subcommand: validate, call the library, print.

use crate::cli::{
    DownloadArgs, EncoderInitArg, EvalArgs, ExportArgs, FeaturesArgs, GradcheckArgs, HistogramArgs,
    OptimizerKind, OutArgs, ReconstructArgs, SaeArgs, SplitArg, TrainArgs,
};
use crate::data::{self, Loaded};
use crate::files::Files;
use crate::out::out;
use crate::progress::{Labels, Progress};
use crate::train_input::{Input, choose_scale, fit_json, initial_model};
use sparse_ae::dist::{self, Collective};
use sparse_ae::gradcheck::{
    ArgNames, CheckOptions, Verdict, check_model_with_progress, check_request, random_setup,
};
use sparse_ae::io::model_file::{
    load_checkpoint, load_model, load_model_scaled, save_checkpoint, save_model_scaled,
};
use sparse_ae::kernels::Activation;
use sparse_ae::nn::sae::{DEFAULT_AUXK_COEF, default_auxk_k};
use sparse_ae::nn::{
    Autoencoder, AuxK, EncoderInit, LayerSpec, Loss, ModelConfig, PRESETS, conv_pool_stages,
    preset, preset_for_image,
};
use sparse_ae::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use sparse_ae::report::html::utc_timestamp;
use sparse_ae::report::png_out::save_png;
use sparse_ae::report::training::{
    DataKind, RunInfo, code_histogram, feature_picture, reconstruction_grid, write_training_report,
};
use sparse_ae::train::metrics::{json_num, label_num, objective_name, penalty_names, space_name};
use sparse_ae::train::{
    EVAL_BATCH, EpochMetrics, FitOptions, Rows, Trainer, encode as encode_all, evaluate_rows_of,
    explained, explained_rows, score_of,
};
use sparse_ae::{Error, Result};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn read_config(path: &Path) -> Result<ModelConfig> {
    ModelConfig::read(path)
}

fn model_config(
    preset_name: Option<&str>,
    config: Option<&Path>,
    input: usize,
    image: Option<(usize, usize, usize)>,
) -> Result<ModelConfig> {
    match (preset_name, config) {
        (Some(p), _) => {
            // Images (IDX, or a .npy of images) keep their shape: the conv
            // presets fit any, and pictures draw them as they are.
            let image = image.filter(|&(c, h, w)| {
                c.checked_mul(h).and_then(|ch| ch.checked_mul(w)) == Some(input)
            });
            let built = match image {
                Some(chw) => preset_for_image(p, chw),
                None => preset(p, input),
            };
            // Name the preset and the data it was built for, not only the
            // layer that could not be.
            let cfg = built.map_err(|e| match e {
                Error::Config { field, reason } if field != "preset" => {
                    let data = match image {
                        Some((1, h, w)) => format!("{h}×{w} images"),
                        Some((c, h, w)) => format!("{c}×{h}×{w} images"),
                        None => format!("{input} features"),
                    };
                    Error::config(
                        "--preset",
                        format!("`{p}` cannot be built for the data's {data}: {field}: {reason}"),
                    )
                }
                e => e,
            })?;
            if cfg.image != Some((1, 28, 28)) {
                // Never silent: the preset list describes the presets on 784 inputs.
                let widths: Vec<String> = std::iter::once(cfg.input)
                    .chain((0..cfg.layers.len()).map(|l| cfg.width(l)))
                    .map(|w| w.to_string())
                    .collect();
                let data = match image {
                    Some((1, h, w)) => format!("{h}×{w} images"),
                    Some((c, h, w)) => format!("{c}×{h}×{w} images"),
                    None => format!("{input} features"),
                };
                let pools = match (cfg.image, p) {
                    (Some((_, h, w)), "conv" | "conv-kl") => match conv_pool_stages(h, w) {
                        2 => String::new(),
                        1 => " (pooled once: the sides are even, not multiples of 4)".into(),
                        _ => " (not pooled: a side is odd)".into(),
                    },
                    _ => String::new(),
                };
                note!(
                    "note: preset `{p}` (listed for 28×28 images, 784 inputs) is built for the data's {data}: {}{pools}",
                    widths.join("-")
                );
            }
            Ok(cfg)
        }
        (None, Some(c)) => {
            let cfg = read_config(c)?;
            if cfg.input != input {
                return Err(Error::config(
                    format!("{}: input", c.display()),
                    format!(
                        "the model takes {} features but the data has {input}",
                        cfg.input
                    ),
                ));
            }
            Ok(cfg)
        }
        (None, None) => Err(Error::config(
            "model",
            "give --preset NAME (see `sparse-ae presets`), --config FILE, --init MODEL|DIR, or --resume CHECKPOINT",
        )),
    }
}

/// The preset or config with the SAE flags of `train` applied, validated.
fn apply_sae_flags(mut cfg: ModelConfig, a: &SaeArgs) -> Result<ModelConfig> {
    if a.linear_output {
        let last = cfg.layers.len() - 1;
        if let LayerSpec::Dense { act, .. } | LayerSpec::Conv2d { act, .. } = &mut cfg.layers[last]
        {
            *act = Activation::Linear;
        }
        cfg.loss = Loss::Mse;
    }
    let s = &mut cfg.sae;
    s.unit_norm_decoder |= a.unit_norm_decoder;
    s.pre_encoder_bias |= a.pre_encoder_bias;
    match a.encoder_init {
        Some(EncoderInitArg::Glorot) => s.encoder_init = EncoderInit::Glorot,
        Some(EncoderInitArg::Transpose) => s.encoder_init = EncoderInit::DecoderTranspose,
        None => {}
    }
    if let Some(w) = a.dead_window {
        s.dead_window = w;
    }
    if a.auxk || a.auxk_coef.is_some() || a.auxk_k.is_some() {
        let old = s.auxk;
        let units = cfg.width(cfg.code_layer);
        cfg.sae.auxk = Some(AuxK {
            k: a.auxk_k
                .or(old.map(|o| o.k))
                .unwrap_or_else(|| default_auxk_k(cfg.input, units)),
            coef: a
                .auxk_coef
                .or(old.map(|o| o.coef))
                .unwrap_or(DEFAULT_AUXK_COEF),
        });
    }
    cfg.validate().map_err(|e| match e {
        Error::Config { field, reason }
            if field == "sae.dead_window" && a.dead_window.is_some() =>
        {
            Error::Config {
                field: "--dead-window".into(),
                reason,
            }
        }
        Error::Config { field, reason } if field == "sae.auxk.coef" && a.auxk_coef.is_some() => {
            Error::Config {
                field: "--auxk-coef".into(),
                reason,
            }
        }
        Error::Config { field, reason }
            if field.starts_with("sae.") && reason.contains("linear output") =>
        {
            Error::Config {
                field,
                reason: format!("{reason}; add --linear-output"),
            }
        }
        e => e,
    })?;
    Ok(cfg)
}

/// Peak resident memory of this process in MB (Linux; None elsewhere).
fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Checks the values of `train`'s own flags before anything is read.
fn check_train_flags(a: &TrainArgs) -> Result<()> {
    if a.epochs == 0 {
        return Err(Error::config(
            "--epochs",
            "must be at least 1 (0 epochs would train nothing and save an untrained model)",
        ));
    }
    if a.steps == Some(0) {
        return Err(Error::config(
            "--steps",
            "must be at least 1 (0 steps would train nothing and save an untrained model)",
        ));
    }
    if a.batch_size == Some(0) {
        return Err(Error::config("--batch-size", "must be at least 1"));
    }
    if a.accumulate == Some(0) {
        return Err(Error::config(
            "--accumulate",
            "must be at least 1 (batches per optimizer step), got 0",
        ));
    }
    if let Some(lr) = a.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::config(
                "--lr",
                format!("must be a finite positive number, got {lr}"),
            ));
        }
        sparse_ae::data::check_f32_param("--lr", lr)?;
    }
    if let Some(m) = a.momentum {
        if a.resume.is_none() && a.optimizer != Some(OptimizerKind::Sgd) {
            return Err(Error::config(
                "--momentum",
                "applies to --optimizer sgd only (Adam has no momentum setting)",
            ));
        }
        if !(0.0..1.0).contains(&m) {
            return Err(Error::config(
                "--momentum",
                format!("must be in [0, 1), got {m}"),
            ));
        }
        sparse_ae::data::check_f32_fraction("--momentum", m)?;
    }
    Ok(())
}

/// The batch size a new run trains with: `asked`, or when a step of
/// `accumulate` such batches would take more than the `n` training samples,
/// the largest that fits (each step then takes all of them, as Keras does
/// with a batch larger than the data), which is said. With fewer samples
/// than batches to accumulate (or none) it stays `asked`, and the training
/// loop refuses it by name.
fn batch_for_data(asked: usize, accumulate: usize, n: usize) -> usize {
    let fits = batch_fitting(asked, accumulate, n);
    if fits == asked {
        return asked;
    }
    let samples = if n == 1 { "sample" } else { "samples" };
    note!(
        "note: batch size {asked}{} is more than the {n} training {samples}: training with batch size {fits}",
        match accumulate {
            1 => String::new(),
            k => format!(" accumulated over {k} batches"),
        }
    );
    fits
}

/// The batch size [`batch_for_data`] trains with, without its note.
fn batch_fitting(asked: usize, accumulate: usize, n: usize) -> usize {
    let fits = n / accumulate.max(1);
    if asked.saturating_mul(accumulate) <= n || fits == 0 {
        asked
    } else {
        fits
    }
}

/// What every rank of a data-parallel job must agree on (see
/// [`dist::agree_on`]): the version, the kernel path (paths differ in their
/// last bits), the model and its parameters (the seed, `--init` or the
/// checkpoint), the optimizer and its step, the step's shape, the epochs
/// and their order, the noise, the data (its size, shape, streaming and
/// scale, and a fingerprint of its files: lengths and their first and last
/// 64 KiB; not their paths, which may differ between machines).
#[allow(clippy::too_many_arguments)]
fn job_settings(
    a: &TrainArgs,
    t: &Trainer<f32>,
    input: &crate::train_input::Input,
    opts: &FitOptions,
    path: &Path,
    dim: usize,
    scale: f32,
) -> Result<Vec<(&'static str, String)>> {
    use sparse_ae::io::{FNV1A_START, fnv1a};
    let params = t
        .model
        .params
        .iter()
        .fold(FNV1A_START, |h, v| fnv1a(h, &v.to_bits().to_le_bytes()));
    let (n_train, _) = input.lens()?;
    Ok(vec![
        ("sparse-ae version", env!("CARGO_PKG_VERSION").to_string()),
        ("kernel path", sparse_ae::kernels::Isa::active().to_string()),
        ("model", t.model.config().to_json()),
        (
            "parameters (seed, --init or --resume)",
            format!("{params:016x}"),
        ),
        ("optimizer", format!("{:?}", t.opt.config)),
        ("steps done (--resume)", t.steps().to_string()),
        ("--batch-size", t.batch().to_string()),
        ("--micro-batches", format!("{:?}", t.micro_batches_set())),
        ("--accumulate", t.accumulate().to_string()),
        ("--epochs", opts.epochs.to_string()),
        ("--steps", format!("{:?}", opts.max_steps)),
        ("--no-shuffle", (!opts.shuffle).to_string()),
        ("--seed (shuffle)", opts.shuffle_seed.to_string()),
        ("--noise-seed", format!("{:?}", a.noise_seed)),
        ("--normalize", format!("{:?} (scale {scale})", a.normalize)),
        ("--stream", format!("{:?}", input.chunk_rows().is_some())),
        // Only rank 0 reads the test split.
        (
            "data samples (--limit)",
            format!("{n_train} training of {dim} features"),
        ),
        ("data files", data_fingerprint(path)?),
    ])
}

/// The lengths of the data's files and a hash of their first and last
/// 64 KiB each.
fn data_fingerprint(path: &Path) -> Result<String> {
    use sparse_ae::io::{FNV1A_START, fnv1a};
    use std::io::{Read, Seek, SeekFrom};
    let files: Vec<std::path::PathBuf> = if data::is_npy(path) {
        vec![path.to_path_buf()]
    } else {
        sparse_ae::data::mnist::data_files(path)
    };
    let mut out = String::new();
    for f in files {
        let mut file = std::fs::File::open(&f).map_err(|e| Error::io(&f, e))?;
        let len = file.metadata().map_err(|e| Error::io(&f, e))?.len();
        let mut h = FNV1A_START;
        let mut buf = Vec::with_capacity(64 << 10);
        for at in [0, len.saturating_sub(64 << 10)] {
            file.seek(SeekFrom::Start(at))
                .map_err(|e| Error::io(&f, e))?;
            buf.clear();
            (&mut file)
                .take(64 << 10)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(&f, e))?;
            h = fnv1a(h, &buf);
        }
        let name = f
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        out.push_str(&format!("{name} {len} bytes {h:016x}; "));
    }
    Ok(out)
}

/// Refuses to resume from `ck` a trainer that `--epochs` and `--steps`
/// (counted from the start of training) leave nothing to train: the run
/// saved the checkpoint's model again as if trained.
fn check_resume_left(t: &Trainer<f32>, n_train: usize, opts: &FitOptions, ck: &Path) -> Result<()> {
    let spe = sparse_ae::train::steps_per_epoch(t, n_train)?;
    let done = t.steps();
    let (flag, given) = match (
        sparse_ae::train::nothing_left(done, spe, opts),
        opts.max_steps,
    ) {
        (None, _) => return Ok(()),
        (Some("steps"), Some(m)) => ("--steps", m.to_string()),
        (Some(_), _) => ("--epochs", opts.epochs.to_string()),
    };
    let spe = spe as u64;
    Err(Error::config(
        flag,
        format!(
            "{flag} {given} leaves nothing to train: {} has done {done} steps ({} whole epochs of {spe}) already; --epochs and --steps count from the start of training, a resumed run's too, so ask for more",
            ck.display(),
            done / spe
        ),
    ))
}

/// Refuses a flag of `train` that a resumed run cannot honour: one that
/// differs from what the checkpoint continues with. A `--batch-size` is
/// compared as a new run on the checkpoint's `train_samples` would have
/// cut it (the command that made the checkpoint, repeated with
/// `--resume`, gave a batch larger than the data).
fn check_resume_flags(
    a: &TrainArgs,
    t: &Trainer<f32>,
    opts: &FitOptions,
    train_samples: Option<usize>,
) -> Result<()> {
    let differs = |flag: &str, given: String, kept: String| {
        Err(Error::config(
            flag,
            format!(
                "{given} differs from the checkpoint's {kept}: a resumed run continues with its checkpoint's settings (leave {flag} out, or start a new run with --init)"
            ),
        ))
    };
    if let Some(b) = a.batch_size
        && train_samples.map_or(b, |n| batch_fitting(b, t.accumulate(), n)) != t.batch()
    {
        return differs("--batch-size", b.to_string(), t.batch().to_string());
    }
    if let Some(m) = a.micro_batches
        && Some(m) != t.micro_batches_set()
    {
        let kept = t
            .micro_batches_set()
            .map_or("default micro-batches".into(), |m| m.to_string());
        return differs("--micro-batches", m.to_string(), kept);
    }
    if let Some(k) = a.accumulate
        && k != t.accumulate()
    {
        let kept = format!("{} batch(es) per step", t.accumulate());
        return differs("--accumulate", k.to_string(), kept);
    }
    let (kind, lr, momentum) = match t.opt.config {
        OptimizerConfig::Adam(c) => (OptimizerKind::Adam, c.lr, None),
        OptimizerConfig::Sgd(c) => (OptimizerKind::Sgd, c.lr, Some(c.momentum)),
    };
    let name = |k: OptimizerKind| format!("{k:?}").to_lowercase();
    if let Some(k) = a.optimizer
        && k != kind
    {
        return differs("--optimizer", name(k), name(kind));
    }
    if let Some(v) = a.lr
        && v != lr
    {
        return differs("--lr", v.to_string(), lr.to_string());
    }
    if let Some(m) = a.momentum
        && Some(m) != momentum
    {
        let kept = momentum.map_or("Adam (no momentum)".into(), |v| v.to_string());
        return differs("--momentum", m.to_string(), kept);
    }
    if let Some(s) = a.seed
        && s != opts.shuffle_seed
    {
        return differs("--seed", s.to_string(), opts.shuffle_seed.to_string());
    }
    if a.no_shuffle && opts.shuffle {
        return differs(
            "--no-shuffle",
            "no shuffling".into(),
            "shuffled order".into(),
        );
    }
    Ok(())
}

/// `train`, in one process or, under an MPI launcher (with the `mpi`
/// feature), as one rank of a data-parallel job: rank 0 prints and writes,
/// the other ranks only compute (and exit with a failure status when the
/// job fails, rank 0 giving the reason).
pub fn train(a: TrainArgs) -> Result<ExitCode> {
    #[cfg(feature = "mpi")]
    if sparse_ae::dist::mpi::launched() {
        let mut world = sparse_ae::dist::mpi::MpiWorld::init()?;
        let rank = sparse_ae::dist::Collective::<f32>::rank(&world);
        let ranks = sparse_ae::dist::Collective::<f32>::ranks(&world);
        if rank == 0 {
            crate::ended::watch().map_err(|e| {
                Error::config("mpi", format!("cannot watch for mpirun's SIGTERM: {e}"))
            })?;
        }
        let result = train_on(a, &mut world);
        read_stats(rank, ranks);
        // Rank 0 reports before MPI ends: a rank that fails exits once the
        // others finalise, and mpirun then ends the ones still running.
        let code = match (rank, result) {
            (0, Err(e)) => {
                note!("error: {e}");
                ExitCode::FAILURE
            }
            (_, Ok(code)) => code,
            (_, Err(_)) => ExitCode::FAILURE,
        };
        crate::ended::written().done = true;
        drop(world);
        return Ok(code);
    }
    let result = train_on(a, &mut sparse_ae::dist::Solo);
    read_stats(0, 1);
    result
}

/// The variable asking `train` for [`read_stats`].
pub const READ_STATS_ENV: &str = "SPARSE_AE_READ_STATS";

/// Whether `SPARSE_AE_READ_STATS` asks for [`read_stats`]: `1` yes, `0`
/// (or unset, or blank) no.
///
/// # Errors
/// [`Error::Config`] naming the variable for any other value (`0` was
/// taken as yes, being set).
pub fn read_stats_wanted() -> Result<bool> {
    match Error::env_text(READ_STATS_ENV)?.as_deref().map(str::trim) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(Error::config(
            READ_STATS_ENV,
            format!("`{other}` is neither 1 (print the bytes read) nor 0 (do not)"),
        )),
    }
}

/// With `SPARSE_AE_READ_STATS=1`, one line on stderr from every rank
/// (silenced or not): the bytes it read from data files
/// ([`sparse_ae::data::row_file::bytes_read`]).
fn read_stats(rank: usize, ranks: usize) {
    if read_stats_wanted().unwrap_or(false) {
        // One write: the ranks share a stderr.
        sparse_ae::io::warn(format_args!(
            "rank {rank} of {ranks}: read {} bytes of data",
            sparse_ae::data::row_file::bytes_read()
        ));
    }
}

fn train_on(mut a: TrainArgs, comm: &mut (dyn Collective<f32> + Send)) -> Result<ExitCode> {
    let start = Instant::now();
    let rank = comm.rank();
    // Only rank 0 speaks and writes.
    if rank != 0 {
        a.quiet = true;
        crate::out::silence();
    }
    let shared = comm.ranks() > 1;
    let me = crate::train_input::RankOf {
        rank,
        ranks: comm.ranks(),
    };
    // A step that takes more samples than there are is refused before its
    // buffers are counted (a huge --accumulate would need terabytes); the
    // buffers of a step in micro-batches are counted before they exist.
    let setup = train_setup(&a, start, me).and_then(|s| {
        if s.trainer.micro_step() || comm.ranks() > 1 {
            sparse_ae::train::steps_per_epoch(&s.trainer, s.input.lens()?.0)?;
        }
        s.trainer.check_memory(rank, comm.ranks()).map(|()| s)
    });
    if shared {
        // No rank starts the first step unless every rank is ready.
        let ready = match &setup {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Data {
                reason: e.to_string(),
            }),
        };
        if let Err(e) = dist::agree(comm, ready, true) {
            return Err(setup.err().unwrap_or(e));
        }
    }
    let Setup {
        mut trainer,
        input,
        _data_held,
        scale,
        normalize_here,
        opts,
        path,
        dim,
    } = setup?;
    if shared {
        // Before any collective whose size depends on them.
        dist::agree_on(
            comm,
            &job_settings(&a, &trainer, &input, &opts, &path, dim, scale)?,
        )?;
    }
    // The normalising scale of a job over several ranks: each reads its
    // share of the training rows, and every rank adds up the same terms.
    let scale = match normalize_here {
        true => choose_scale(
            &input,
            trainer.model.config(),
            1.0,
            a.normalize.map(|n| n.target()),
            a.quiet,
            Some(comm),
        )?,
        false => scale,
    };
    if let Some(r) = &a.resume {
        crate::ended::written().checkpoint = Some((r.clone(), trainer.steps()));
    }
    if (shared || trainer.micro_step()) && !a.quiet {
        let plan = trainer.plan(comm.ranks())?;
        note!(
            "{} rank(s), {} micro-batch(es) of {} samples per step{}{}",
            comm.ranks(),
            plan.m,
            plan.rows_of(0).len(),
            if trainer.reuses_workspaces() && plan.owned(rank).len() > 1 {
                ", computed one after another in one workspace"
            } else {
                ""
            },
            if shared {
                ", each rank reading the rows of its own"
            } else {
                ""
            }
        );
        if let Some(text) = plan.unevenness() {
            note!("note: {text}");
        }
    }
    let fit_meta = fit_json(&opts, scale, input.chunk_rows(), input.lens()?.0);
    let first_step = trainer.steps();
    let mut history: Vec<EpochMetrics> = Vec::new();
    let saved = std::sync::atomic::AtomicBool::new(false);
    let mut labels = Labels::of(trainer.model.config(), scale);
    if trainer.accumulate() > 1 {
        labels.accumulated = Some((trainer.accumulate(), trainer.batch()));
    }
    if !a.quiet && scale != 1.0 {
        note!(
            "losses below are in normalised space (inputs × {scale}); eval's MSE and the report's pictures are in input space"
        );
    }
    let mut obs = Progress::new(
        a.quiet,
        labels,
        Box::new(|m: &EpochMetrics, t: &Trainer<f32>| {
            if rank != 0 {
                return Ok(());
            }
            // The row first, then the checkpoint, which keeps the row: a
            // run resumed from it drops the rows written after it (those
            // of epochs whose checkpoint was never saved) and writes them
            // again; a row is never missing from a checkpoint's epochs.
            // Whole writes only, if mpirun ends the job meanwhile. A row
            // that cannot be added still leaves the epoch's checkpoint
            // (without the row), so the failure that ends the run loses no
            // training.
            let mut written = crate::ended::written();
            let row = a.metrics.as_ref().map(|p| crate::metrics_file::row(p, m));
            let appended = match (&a.metrics, &row) {
                (Some(p), Some(r)) => crate::metrics_file::append(p, r),
                _ => Ok(()),
            };
            if let Some(p) = &a.checkpoint {
                let kept = row.as_deref().filter(|_| appended.is_ok());
                save_checkpoint(p, t, &with_metrics_row(&fit_meta, kept))?;
                saved.store(true, std::sync::atomic::Ordering::Relaxed);
                written.checkpoint = Some((p.clone(), t.steps()));
            }
            appended
        }),
    );
    let result = input.fit(&mut trainer, scale, &opts, &mut obs, comm);
    let log = std::mem::take(&mut obs.log);
    drop(obs);
    match result {
        Ok(h) => history.extend(h),
        Err(e) => {
            // Name a checkpoint only if this run wrote it (or resumed from it).
            let last = match (&a.checkpoint, &a.resume) {
                (Some(p), _) if saved.load(std::sync::atomic::Ordering::Relaxed) => Some(p),
                (_, Some(r)) => Some(r),
                _ => None,
            };
            match last {
                Some(p) => note!(
                    "training stopped; the last good checkpoint is {}",
                    p.display()
                ),
                None if a.checkpoint.is_some() => {
                    note!("training stopped before the first checkpoint was written")
                }
                None => {}
            }
            return Err(e);
        }
    }
    if rank != 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let writing = crate::ended::written();
    if let Err(e) = save_model_scaled(&a.out, &trainer.model, scale) {
        // Say where the trained weights are, if anywhere.
        match (&a.checkpoint, &writing.checkpoint) {
            (Some(p), Some((at, step))) if at == p && *step == trainer.steps() => note!(
                "the model was not saved; the checkpoint {} holds the trained weights (step {step})",
                p.display()
            ),
            (Some(p), Some((at, step))) if at == p => note!(
                "the model was not saved; the checkpoint {} holds the weights of step {step}",
                p.display()
            ),
            _ => {}
        }
        return Err(e);
    }
    drop(writing);
    if let Some(dir) = &a.report {
        let (n_train, n_test) = input.lens()?;
        let images = !data::is_npy(&path) || trainer.model.config().image.is_some();
        let mut run = RunInfo {
            title: a.preset.clone().unwrap_or_else(|| "sparse-ae model".into()),
            data: if images {
                DataKind::Images
            } else {
                DataKind::Vectors
            },
            settings: vec![
                ("command line".into(), command_line()),
                ("data".into(), path.display().to_string()),
                (
                    "data shape".into(),
                    format!(
                        "{n_train} training and {n_test} test samples of {dim} features{}",
                        input.chunk_rows().map_or(String::new(), |c| format!(
                            ", streamed in chunks of {c} rows"
                        ))
                    ),
                ),
                ("seed".into(), opts.shuffle_seed.to_string()),
                ("date".into(), run_date()),
            ],
        };
        if let Some(r) = &a.resume {
            // This process holds the steps it ran only.
            run.settings.push((
                "resumed".into(),
                format!(
                    "from {} at step {first_step}: the loss curves, the per-epoch table, metrics.csv and steps.csv cover steps {} to {} only (the --metrics file of the run holds every epoch); the evaluation and pictures are of the final model",
                    r.display(),
                    first_step + 1,
                    trainer.steps()
                ),
            ));
        }
        let _writing = crate::ended::written();
        let index = input
            .with_report_samples(|s| {
                write_training_report(dir, &trainer, &run, &history, &log, s.scaled(scale)?)
            })
            .inspect_err(|_| {
                note!(
                    "the model was saved to {}; writing the report into {} failed:",
                    a.out.display(),
                    dir.display()
                )
            })?;
        if !a.quiet {
            note!("report: {}", index.display());
        }
    }
    if !a.quiet {
        note!(
            "saved {} after {} steps in {:.1} s; peak RSS {}",
            a.out.display(),
            trainer.steps(),
            start.elapsed().as_secs_f64(),
            peak_rss_mb().map_or("unknown".into(), |m| format!("{m:.0} MB"))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The key of a checkpoint's `sparse_ae.fit` that keeps the `--metrics`
/// row of its epoch, exactly as written.
const METRICS_ROW: &str = "metrics_row";

/// `fit` with the `--metrics` row of the checkpoint's epoch, if any.
fn with_metrics_row(
    fit: &sparse_ae::io::json::Value,
    row: Option<&str>,
) -> sparse_ae::io::json::Value {
    use sparse_ae::io::json::Value;
    match (fit, row) {
        (Value::Object(fields), Some(r)) => {
            let mut fields = fields.clone();
            fields.push((METRICS_ROW.into(), Value::String(r.into())));
            Value::Object(fields)
        }
        _ => fit.clone(),
    }
}

/// On `--resume` with `--metrics`: removes the rows written after the
/// checkpoint's own row (by a run that stopped between a row and its
/// checkpoint), so every epoch has one row, as in a run never
/// interrupted; for a checkpoint taken inside an epoch, its row too (this
/// run writes that epoch's row again, over all its steps). A checkpoint written without `--metrics`, or before rows
/// were kept in checkpoints, leaves the file as it is.
fn trim_metrics(a: &TrainArgs, last: Option<&str>, t: &Trainer<f32>) -> Result<()> {
    use crate::metrics_file::{Trimmed, trim_after};
    let (Some(m), Some(last), Some(ck)) = (&a.metrics, last, &a.resume) else {
        return Ok(());
    };
    let steps = t.steps();
    // A checkpoint taken inside an epoch keeps that epoch's sums so far:
    // this run writes the epoch's row again, over all its steps.
    let inside = t.epoch_so_far().is_some();
    match trim_after(m, last, inside)? {
        Trimmed::Dropped(0) | Trimmed::Empty => {}
        Trimmed::Dropped(n) if inside => note!(
            "note: {}: removed the row of the epoch the checkpoint (step {steps} of {}) stopped inside of{}; this run writes that epoch's row over all its steps",
            m.display(),
            ck.display(),
            match n - 1 {
                0 => String::new(),
                k => format!(" and {k} row(s) written after it by the run that was interrupted"),
            }
        ),
        Trimmed::Dropped(n) => note!(
            "note: {}: removed {n} row(s) written after the last checkpoint (step {steps} of {}) by the run that was interrupted; this run writes those epochs again",
            m.display(),
            ck.display()
        ),
        Trimmed::NotFound => note!(
            "note: {} does not hold the row of the checkpoint's epoch (step {steps} of {}); this run's rows are added after what it holds",
            m.display(),
            ck.display()
        ),
    }
    Ok(())
}

/// What `train` starts from.
struct Setup {
    trainer: Trainer<f32>,
    /// The data.
    input: Input,
    /// The data's bytes, counted against the memory budget while it lives.
    _data_held: sparse_ae::memory::Held,
    /// The input scale (1 without normalisation).
    scale: f32,
    /// Whether the ranks of the job compute the scale of `--normalize`
    /// together once every rank is ready (`scale` is 1 until then).
    normalize_here: bool,
    /// The loop's options.
    opts: FitOptions,
    /// Where the data came from.
    path: std::path::PathBuf,
    /// Features per sample.
    dim: usize,
}

/// Everything before the first step: flags, files, the model, the data.
/// `writes`: whether this process writes the outputs (checked up front).
fn train_setup(a: &TrainArgs, start: Instant, me: crate::train_input::RankOf) -> Result<Setup> {
    let writes = me.rank == 0;
    check_train_flags(a)?;
    let path = data::locate(&a.data)?;
    let mut files = Files::default();
    files.data(&path);
    if let Some(c) = &a.config {
        files.input("--config", c);
    }
    if let Some(i) = &a.init {
        files.model_or_dir("--init", i);
    }
    if let Some(r) = &a.resume {
        files.input("--resume", r);
    }
    files.output("--out", &a.out);
    if let Some(c) = &a.checkpoint {
        files.output("--checkpoint", c);
    }
    if let Some(m) = &a.metrics {
        files.appended("--metrics", m, crate::metrics_file::head(m));
    }
    if let Some(r) = &a.report {
        files.report(r);
    }
    // Resuming from a checkpoint and saving it again is the usual way.
    if writes {
        files.allow("--resume", "--checkpoint").check()?;
        // Rows are added to whole rows only: a row cut short is refused now.
        if let Some(m) = &a.metrics {
            crate::metrics_file::check_name(m)?;
            crate::metrics_file::existing(m)?;
        }
    }
    let mut opts = FitOptions {
        epochs: a.epochs,
        max_steps: a.steps,
        shuffle: !a.no_shuffle,
        shuffle_seed: a.seed.unwrap_or(0),
        eval_batch: EVAL_BATCH,
    };
    let mut metrics_row = None;
    let resumed = match &a.resume {
        Some(ck) => {
            let (t, fit) = load_checkpoint(ck)?;
            opts.shuffle = fit.bool_at("shuffle")?;
            opts.shuffle_seed = fit
                .str_at("shuffle_seed")?
                .parse()
                .map_err(|_| Error::config("sparse_ae.fit.shuffle_seed", "not a number"))?;
            let kept = crate::train_input::resumed(&fit)?;
            check_resume_flags(a, &t, &opts, kept.train_samples)?;
            if !a.quiet {
                note!("resuming {} at step {}", ck.display(), t.steps());
            }
            metrics_row = fit
                .get(METRICS_ROW)
                .and_then(|v| v.as_str())
                .map(String::from);
            Some((t, kept))
        }
        None => None,
    };
    let input = Input::open(&path, a, resumed.as_ref().map(|(_, d)| d.chunk_rows), me)?;
    // The data counts against the budget of the trainer and all after it.
    let data_held = sparse_ae::memory::Held::new(input.memory_bytes());
    if let Some((_, kept)) = &resumed {
        crate::train_input::check_resumed_samples(kept, input.lens()?.0)?;
    }
    let dim = input.dim()?;
    let normalize_here = resumed.is_none() && me.ranks > 1 && a.normalize.is_some();
    let (trainer, scale) = if let Some((t, kept)) = resumed {
        (t, kept.scale)
    } else {
        let cfg = match (a.preset.as_deref(), a.config.as_deref()) {
            (None, None) => None,
            (p, c) => {
                let image = data::image_of(&path)?;
                Some(apply_sae_flags(model_config(p, c, dim, image)?, &a.sae)?)
            }
        };
        let seed = a.seed.unwrap_or(0);
        let (model, init_scale) = initial_model(a.init.as_deref(), cfg, seed)?;
        if model.config().input != dim {
            return Err(Error::config(
                "--init",
                format!(
                    "the model takes {} features but the data has {dim}",
                    model.config().input
                ),
            ));
        }
        let scale = match me.ranks > 1 && init_scale == 1.0 && a.normalize.is_some() {
            true => 1.0,
            false => choose_scale(
                &input,
                model.config(),
                init_scale,
                a.normalize.map(|n| n.target()),
                a.quiet,
                None,
            )?,
        };
        let opt = match a.optimizer.unwrap_or(OptimizerKind::Adam) {
            OptimizerKind::Adam => OptimizerConfig::Adam(AdamConfig {
                lr: a.lr.unwrap_or(1e-3),
                ..AdamConfig::default()
            }),
            OptimizerKind::Sgd => OptimizerConfig::Sgd(SgdConfig {
                lr: a.lr.unwrap_or(0.01),
                momentum: a.momentum.unwrap_or(0.9),
            }),
        };
        let batch = batch_for_data(
            a.batch_size.unwrap_or(256),
            a.accumulate.unwrap_or(1),
            input.lens()?.0,
        );
        let mut t = Trainer::new(
            model,
            opt,
            batch,
            a.noise_seed.unwrap_or(seed ^ 0x5eed_5eed),
        )?;
        t.set_micro_batches(a.micro_batches).map_err(|e| match e {
            Error::Config { reason, .. } => Error::config("--micro-batches", reason),
            e => e,
        })?;
        t.set_accumulate(a.accumulate.unwrap_or(1))
            .map_err(|e| match e {
                Error::Config { reason, .. } => Error::config("--accumulate", reason),
                e => e,
            })?;
        (t, scale)
    };
    check_image(trainer.model.config(), &path)?;
    if let Some(ck) = &a.resume {
        check_resume_left(&trainer, input.lens()?.0, &opts, ck)?;
        // Last, once the run is known to go ahead (a refused run changes
        // no file); the ranks agree on the setup's outcome.
        if writes {
            trim_metrics(a, metrics_row.as_deref(), &trainer)?;
        }
    }
    // A report a killed run left half swapped in is completed now, not
    // after training.
    if let Some(r) = a.report.as_deref().filter(|_| writes) {
        sparse_ae::report::training::recover_report(r)?;
    }
    if !a.quiet {
        let (n_train, n_test) = input.lens()?;
        let streamed = match input.chunk_rows() {
            Some(c) => format!(", streamed in chunks of {c} rows"),
            None => String::new(),
        };
        let batch = match trainer.accumulate() {
            1 => trainer.batch().to_string(),
            k => format!(
                "{} accumulated over {k} batches per optimizer step ({} samples per step)",
                trainer.batch(),
                trainer.samples_per_step()
            ),
        };
        note!(
            "training {} parameters on {n_train} samples ({dim} features{streamed}), batch {batch}{}, {} kernels ({}; {}), {}; test set {n_test} samples (startup {:.0} ms)",
            trainer.model.params.len(),
            step_shape(&trainer),
            sparse_ae::kernels::Isa::active(),
            sparse_ae::kernels::gemm::blocking_summary(sparse_ae::kernels::Isa::active()),
            sparse_ae::kernels::elementwise::adam_summary(sparse_ae::kernels::Isa::active()),
            sparse_ae::parallel::threads_summary(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(Setup {
        normalize_here: normalize_here && scale == 1.0,
        trainer,
        input,
        _data_held: data_held,
        scale,
        opts,
        path,
        dim,
    })
}

/// What a split holds, for the output of `eval`; `limited`: cut by
/// `--limit`, which takes the first samples of all the data in order
/// (train first) when the split is all.
fn split_name(split: SplitArg, npy: bool, limited: bool) -> &'static str {
    match (split, npy, limited) {
        (SplitArg::Train, false, _) => "train",
        (SplitArg::Test, false, _) => "test",
        (SplitArg::All, false, false) => "all (train and test)",
        (SplitArg::All, false, true) => "all (train, then test), the first by --limit",
        (SplitArg::Train, true, _) => "train (first 90 % of rows)",
        (SplitArg::Test, true, _) => "test (last 10 % of rows)",
        (SplitArg::All, true, false) => "all rows",
        (SplitArg::All, true, true) => "the first rows by --limit",
    }
}

/// The split, as the errors of `eval` and `score` name a sample's place
/// (counted within it).
fn split_of(split: SplitArg) -> &'static str {
    match split {
        SplitArg::Train => "the train split",
        SplitArg::Test => "the test split",
        SplitArg::All => "the data (train and test)",
    }
}

/// The command line as typed, each argument quoted for a POSIX shell when
/// it needs it.
fn command_line() -> String {
    let quote = |a: String| {
        let plain = !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
        if plain {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    std::env::args_os()
        .map(|a| quote(a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The time of the run, UTC: `SOURCE_DATE_EPOCH` (seconds since 1970) if
/// set, for reproducible reports, else the clock.
fn run_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    utc_timestamp(secs)
}

/// The split `split` of the data, once each model's image shape is checked
/// against the data's ([`check_image`]).
fn load_split<'m>(
    args: &crate::cli::DataArgs,
    split: SplitArg,
    models: impl IntoIterator<Item = (&'m Path, &'m Autoencoder<f32>)>,
) -> Result<Loaded> {
    let path = data::locate(args)?;
    let models: Vec<_> = models.into_iter().collect();
    for (_, m) in &models {
        check_image(m.config(), &path)?;
    }
    let d = data::load(args, split)?;
    let dim = d.samples()?.dim();
    for (file, m) in models {
        check_width(file, m.config(), &path, dim)?;
    }
    Ok(d)
}

/// Refuses a model (the file `model`) whose input width is not the `dim`
/// features of the data at `data`, naming both files: with several models
/// (`histogram`), "shape mismatch" alone did not say which.
fn check_width(model: &Path, cfg: &ModelConfig, data: &Path, dim: usize) -> Result<()> {
    if cfg.input == dim {
        return Ok(());
    }
    Err(Error::config(
        model.display().to_string(),
        format!(
            "the model takes {} features per sample, but the data in {} has {dim}",
            cfg.input,
            data.display()
        ),
    ))
}

/// Refuses a model configured for images of another shape than the images
/// at `path` (IDX, or a `.npy` of images) that have as many values (a
/// model of 8×4 images on 4×8 ones would read every image in the wrong
/// shape); a `.npy` matrix has no image shape, and a model of another width
/// is refused by its width.
fn check_image(cfg: &ModelConfig, path: &Path) -> Result<()> {
    let Some((c, h, w)) = cfg.image else {
        return Ok(());
    };
    let Some((dc, dh, dw)) = data::image_of(path)? else {
        return Ok(());
    };
    let values = dc.checked_mul(dh).and_then(|v| v.checked_mul(dw));
    if (c, h, w) == (dc, dh, dw) || values != Some(cfg.input) {
        return Ok(());
    }
    Err(Error::config(
        "image",
        format!(
            "the model takes images of {c}×{h}×{w} (channels × height × width), but the images in {} are {dc}×{dh}×{dw}: their {} values would be read in the wrong shape",
            path.display(),
            cfg.input
        ),
    ))
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    let (model, scale) = load_model_scaled(&a.model)?;
    // A .npy split is read a batch at a time (twice), never held whole.
    let path = data::locate(&a.data)?;
    check_image(model.config(), &path)?;
    let (n, (l, stats), ex) = if data::is_npy(&path) {
        let rows = data::open_npy(&path)?;
        check_width(&a.model, model.config(), &path, rows.dim())?;
        let (lo, hi) = data::npy_split(rows.len(), a.split, a.data.limit);
        let mut rows = rows.range(lo, hi)?.scaled(scale)?;
        let ev = evaluate_rows_of(&model, &mut rows, EVAL_BATCH, Some(split_of(a.split)))?;
        (hi - lo, ev, explained_rows(&model, &mut rows)?)
    } else {
        let d = data::load_from(&path, a.data.limit, a.split)?;
        check_width(&a.model, model.config(), &path, d.samples()?.dim())?;
        let s = d.samples()?.scaled(scale)?;
        let ev = evaluate_rows_of(&model, &mut { s }, EVAL_BATCH, Some(split_of(a.split)))?;
        (s.len(), ev, explained(&model, s)?)
    };
    let cfg = model.config();
    let units = cfg.width(cfg.code_layer);
    let objective = objective_name(cfg);
    let split = split_name(a.split, data::is_npy(&path), a.data.limit.is_some());
    if a.json {
        out(&format!(
            "{{\"split\":\"{}\",\"samples\":{},\"objective\":\"{objective}\",\"inputs\":\"clean\",\"loss_space\":\"{}\",\"input_scale\":{},\"loss\":{},\"recon\":{},\"l1\":{},\"kl\":{},\"l2\":{},\"auxk\":{},\"mse\":{},\"mse_space\":\"input\",\"fvu\":{},\"l0\":{},\"dead_units\":{},\"code_units\":{}}}",
            a.split.name(),
            n,
            if scale == 1.0 { "input" } else { "normalised" },
            json_num(f64::from(scale)),
            json_num(l.total()),
            json_num(l.recon),
            json_num(l.l1),
            json_num(l.kl),
            json_num(l.l2),
            json_num(l.auxk),
            json_num(ex.mse),
            json_num(ex.fvu),
            stats.l0(),
            stats.dead(),
            units
        ))?;
    } else {
        let space = space_name(scale);
        let mut lines = vec![
            format!("split       {split}, {n} samples"),
            format!(
                "loss        {:.6}  {objective}, on clean inputs, in {space}",
                l.total()
            ),
            format!("  recon     {:.6}  ({})", l.recon, cfg.loss.name()),
        ];
        for name in penalty_names(cfg) {
            lines.push(format!("  {name:<10}{:.6}", l.part(name)));
        }
        lines.push(format!(
            "mse         {:.6}  per feature, in input space
FVU         {}
L0          {:.3} active code units per sample (h > {})",
            ex.mse,
            ex.fvu_text(),
            stats.l0(),
            label_num(stats.threshold())
        ));
        if let Some(r) = stats.rho_spread() {
            lines.push(format!(
                "rho_hat     median {:.4} [{:.4}, {:.4}] against rho {}; {} of {} off by more than 2x",
                r.median,
                r.min,
                r.max,
                label_num(r.rho),
                r.off_target,
                r.groups
            ));
        }
        lines.push(format!("dead units  {} of {}", stats.dead(), units));
        out(&lines.join("\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The inputs and output of `encode`, `score` and `reconstruct`, checked.
fn check_files(model: &Path, data: &crate::cli::DataArgs, out: &Path) -> Result<()> {
    Files::default()
        .input("--model", model)
        .data(&data::locate(data)?)
        .output("--out", out)
        .check()
}

/// Whether `encode` writes CSV text (an output named `*.csv`) or `.npy`
/// (`*.npy`, or no extension); another extension is refused before any
/// work, where it used to get `.npy` bytes under, say, a `.txt` name.
fn codes_as_csv(out: &Path) -> Result<bool> {
    crate::files::format_of(
        "--out",
        "encode",
        out,
        &[("npy", false), ("csv", true)],
        false,
    )
}

/// The codes as CSV: a header `sample,u0,u1,…`, then a row per sample with
/// its index and its code, each value as the shortest text that reads back
/// to the same f32. Streamed into the atomic write.
fn write_codes_csv(out: &Path, units: usize, codes: &[f32]) -> Result<()> {
    sparse_ae::io::atomic::write_atomic(out, |w| {
        let mut line = String::from("sample");
        for u in 0..units {
            line.push_str(&format!(",u{u}"));
        }
        line.push('\n');
        w.write_all(line.as_bytes())
            .map_err(|e| Error::io(out, e))?;
        for (i, row) in codes.chunks(units.max(1)).enumerate() {
            line.clear();
            line.push_str(&i.to_string());
            for v in row {
                line.push_str(&format!(",{v}"));
            }
            line.push('\n');
            w.write_all(line.as_bytes())
                .map_err(|e| Error::io(out, e))?;
        }
        Ok(())
    })
}

pub fn encode(a: OutArgs) -> Result<ExitCode> {
    check_files(&a.model, &a.data, &a.out)?;
    let csv = codes_as_csv(&a.out)?;
    let (model, scale) = load_model_scaled(&a.model)?;
    let d = load_split(&a.data, a.split, [(a.model.as_path(), &model)])?;
    let s = d.samples()?.scaled(scale)?;
    let codes = encode_all(&model, s)?;
    let units = model.config().width(model.config().code_layer);
    if csv {
        write_codes_csv(&a.out, units, &codes)?;
    } else {
        sparse_ae::data::npy::write(&a.out, s.len(), units, &codes)?;
    }
    note!(
        "wrote {} codes of {} units to {}",
        s.len(),
        units,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn score(a: OutArgs) -> Result<ExitCode> {
    check_files(&a.model, &a.data, &a.out)?;
    let npy = crate::files::format_of(
        "--out",
        "score",
        &a.out,
        &[("csv", false), ("npy", true)],
        false,
    )?;
    let (model, scale) = load_model_scaled(&a.model)?;
    let d = load_split(&a.data, a.split, [(a.model.as_path(), &model)])?;
    let s = d.samples()?.scaled(scale)?;
    let scores = score_of(&model, s, Some(split_of(a.split)))?;
    if npy {
        sparse_ae::data::npy::write_vector(&a.out, &scores)?;
    } else {
        let mut text = String::from("index,score\n");
        for (i, v) in scores.iter().enumerate() {
            text.push_str(&format!("{i},{v}\n"));
        }
        sparse_ae::io::atomic::write_atomic_bytes(&a.out, text.as_bytes())?;
    }
    note!("wrote {} scores to {}", scores.len(), a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn reconstruct(a: ReconstructArgs) -> Result<ExitCode> {
    if a.n == 0 {
        return Err(Error::config("-n", "must be at least 1 (samples to show)"));
    }
    check_files(&a.model, &a.data, &a.out)?;
    png_out(&a.out, "reconstruct")?;
    let (model, scale) = load_model_scaled(&a.model)?;
    let d = load_split(&a.data, a.split, [(a.model.as_path(), &model)])?;
    let pic = reconstruction_grid(&model, d.samples()?.scaled(scale)?, a.n, a.noise_seed)
        .map_err(|e| match e {
            // The picture's size is -n's doing.
            Error::Shape {
                op: "report canvas",
                got,
                ..
            } => Error::config(
                "-n",
                format!(
                    "{} samples make a picture of {got} pixels, more than the {} one picture may have; ask for fewer",
                    a.n,
                    sparse_ae::report::canvas::MAX_PIXELS
                ),
            ),
            e => e,
        })?;
    save_png(&a.out, &pic)?;
    note!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Refuses an output of `what` (a picture) named with another extension
/// than `.png` (or none).
fn png_out(out: &Path, what: &str) -> Result<()> {
    crate::files::format_of("--out", what, out, &[("png", ())], ())
}

pub fn features(a: FeaturesArgs) -> Result<ExitCode> {
    Files::default()
        .input("--model", &a.model)
        .output("--out", &a.out)
        .check()?;
    png_out(&a.out, "features")?;
    let model = load_model(&a.model)?;
    save_png(&a.out, &feature_picture(&model)?)?;
    note!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn histogram(a: HistogramArgs) -> Result<ExitCode> {
    let mut files = Files::default();
    for m in &a.model {
        files.input("--model", m);
    }
    files
        .data(&data::locate(&a.data)?)
        .output("--out", &a.out)
        .check()?;
    png_out(&a.out, "histogram")?;
    let models: Vec<(String, (Autoencoder<f32>, f32))> = a
        .model
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned());
            load_model_scaled(p).map(|m| (name, m))
        })
        .collect::<Result<_>>()?;
    let scale = models.first().map_or(1.0, |(_, (_, s))| *s);
    if models.iter().any(|(_, (_, s))| *s != scale) {
        return Err(Error::config(
            "--model",
            "the models were trained with different input scales; draw them separately",
        ));
    }
    let models: Vec<(String, Autoencoder<f32>)> =
        models.into_iter().map(|(n, (m, _))| (n, m)).collect();
    let d = load_split(
        &a.data,
        a.split,
        a.model
            .iter()
            .map(|p| p.as_path())
            .zip(models.iter().map(|(_, m)| m)),
    )?;
    let refs: Vec<(&str, &Autoencoder<f32>)> =
        models.iter().map(|(n, m)| (n.as_str(), m)).collect();
    save_png(
        &a.out,
        &code_histogram(&refs, d.samples()?.scaled(scale)?, 10_000)?,
    )?;
    note!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn gradcheck(a: GradcheckArgs) -> Result<ExitCode> {
    let cfg = match (&a.config, &a.preset) {
        (Some(c), _) => read_config(c)?,
        (None, Some(p)) => preset(p, 784)?,
        (None, None) => {
            return Err(Error::config(
                "gradcheck",
                "give --config FILE or --preset NAME",
            ));
        }
    };
    check_request(
        &cfg,
        a.batch,
        a.entries,
        a.tolerance,
        ArgNames {
            batch: "--batch",
            entries: "--entries",
            tolerance: "--tolerance",
        },
    )?;
    let (model, input, clean) = random_setup(&cfg, a.seed, a.batch)?;
    let opts = CheckOptions {
        max_entries: a.entries,
        seed: a.seed,
        tolerance: a.tolerance,
        ..CheckOptions::default()
    };
    let mut shown = crate::progress::Entries::new("gradcheck", "entries", a.quiet);
    let report = check_model_with_progress(&model, &input, &clean, a.batch, &opts, &mut |n, t| {
        shown.at(n, t)
    });
    shown.clear();
    let report = report?;
    out(&report.to_string())?;
    match report.verdict() {
        Verdict::Pass => Ok(ExitCode::SUCCESS),
        Verdict::Fail => Ok(ExitCode::FAILURE),
        // Not a pass: nothing was compared.
        Verdict::AtKink => {
            note!(
                "error: gradcheck measured nothing: at seed {} and batch {}, every sampled entry and directional step of every tensor crosses a kink (ReLU, top-k or max pooling); try another --seed or --batch",
                a.seed,
                a.batch
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    use sparse_ae::io::interop::{EXPORT_FILES, EXPORT_TAG, SAELENS_WEIGHTS, SPARSIFY_WEIGHTS};
    Files::default()
        .input("--model", &a.model)
        .output_dir("--out", &a.out, EXPORT_TAG, &EXPORT_FILES)
        .check()?;
    let (model, scale) = load_model_scaled(&a.model)?;
    sparse_ae::io::interop::export_sae_scaled(&model, scale, &a.out)?;
    let files = if model.config().topk.is_some() {
        format!("{SAELENS_WEIGHTS} (SAELens), {SPARSIFY_WEIGHTS} (sparsify)")
    } else {
        format!("{SAELENS_WEIGHTS} (SAELens)")
    };
    note!("wrote {}/{files} and cfg.json", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn presets() -> Result<ExitCode> {
    let text: Vec<String> = PRESETS
        .iter()
        .map(|(name, what)| format!("{name:<16} {what}"))
        .collect();
    out(&text.join("\n"))?;
    Ok(ExitCode::SUCCESS)
}

pub fn download(a: DownloadArgs) -> Result<ExitCode> {
    let cache = match a.cache {
        Some(c) => c,
        None => sparse_ae::data::download::cache_dir()?,
    };
    let dir = data::fetch(data::dataset(a.dataset), &cache)?;
    out(&dir.display().to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// Paths as a comma list, `none` when empty.
fn isa_list(paths: impl Iterator<Item = sparse_ae::kernels::Isa>) -> String {
    let names: Vec<&str> = paths.map(|i| i.name()).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

pub fn info() -> Result<ExitCode> {
    use sparse_ae::kernels::{CpuInfo, Isa};
    let all = Isa::ALL.into_iter();
    let lines = [
        format!("cpu: {}", CpuInfo::get().summary()),
        format!(
            "kernel paths: available {}; hidden by {}: {}; not on this CPU: {}",
            isa_list(all.clone().filter(|i| i.is_available())),
            sparse_ae::kernels::dispatch::MAX_ENV,
            isa_list(all.clone().filter(|i| i.cpu_has() && !i.is_available())),
            isa_list(all.filter(|i| !i.cpu_has())),
        ),
        format!(
            "active kernel path: {} ({}; {})",
            Isa::active(),
            sparse_ae::kernels::gemm::blocking_summary(Isa::active()),
            sparse_ae::kernels::elementwise::adam_summary(Isa::active())
        ),
        format!("threads: {}", sparse_ae::parallel::threads_summary()),
        format!("round trip between two threads: {}", round_trip_text()?),
    ];
    out(&lines.join("\n"))?;
    // A path SPARSE_AE_REQUIRE_ISA lists but this machine cannot run fails
    // the command, so scripts can check a machine before trusting it.
    for isa in Isa::required()? {
        isa.check_required()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// [`sparse_ae::parallel::round_trip`] for `info`: how far apart two
/// threads' CPUs are now.
fn round_trip_text() -> Result<String> {
    use sparse_ae::parallel::{ROUND_TRIP_ROUNDS, ROUND_TRIP_TRIPS, round_trip};
    Ok(match round_trip()? {
        Some(d) => format!(
            "{} ns (best of {ROUND_TRIP_ROUNDS} rounds of up to {ROUND_TRIP_TRIPS})",
            d.as_nanos()
        ),
        None if sparse_ae::parallel::cpus() < 2 => "none (one CPU)".to_string(),
        None => "none came back (the two threads shared one CPU)".to_string(),
    })
}

/// How a step computes its batch, for `train`'s first line: in
/// micro-batches, or in two halves side by side (when a plain step splits
/// it), and on which path a top-k code's neighbouring layers run.
fn step_shape(t: &Trainer<f32>) -> String {
    let ws = t.workspaces();
    let parts = match (t.micro_batches_set(), ws) {
        (Some(m), _) => format!(" (in {m} micro-batches)"),
        (None, [_, _]) => " (two halves side by side)".to_string(),
        _ => String::new(),
    };
    let topk = match t.model.config().topk {
        None => "",
        Some(_) if ws.first().is_some_and(|w| w.uses_sparse_topk()) => {
            ", top-k code on the sparse path"
        }
        Some(_) => ", top-k code on the dense path",
    };
    format!("{parts}{topk}")
}
