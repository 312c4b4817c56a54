//! The data of `train`: splits in memory, or a `.npy` file streamed chunk
//! by chunk; the starting model (`--init` a file or an SAE-library
//! directory); the input scale (`--normalize`).

use crate::cli::{SplitArg, TrainArgs};
use crate::data::{self, Loaded};
use sparse_ae::data::mnist;
use sparse_ae::dist::Collective;
use sparse_ae::io::interop::import_sae_scaled;
use sparse_ae::io::json::Value;
use sparse_ae::io::model_file::{load_model_scaled, load_params_into_scaled};
use sparse_ae::nn::{Autoencoder, Loss, ModelConfig, ParamLayout};
use sparse_ae::train::normalize::{NormTarget, norm_scale, norm_scale_on};
use sparse_ae::train::source::{chunk_mb, chunk_rows};
use sparse_ae::train::{
    Chunked, EpochMetrics, FileRows, FitOptions, NpyRows, Observer, Rows, Samples, Shuffled,
    Trainer, fit_on, fit_source_on,
};
use sparse_ae::{Error, Result};
use std::path::{Path, PathBuf};

/// Test rows kept for the report of a streamed run.
const REPORT_ROWS: usize = 10_000;

/// Where the training rows are.
pub enum Input {
    /// Both splits in memory (the test split on rank 0 only).
    Memory { train: Loaded, test: Option<Loaded> },
    /// Rows of a `.npy` file, read `chunk_rows` at a time (or, on a rank
    /// of a job over several, `by_row`: only the rows of its micro-batches).
    Stream {
        path: PathBuf,
        train: (usize, usize),
        test: (usize, usize),
        dim: usize,
        chunk_rows: usize,
        by_row: bool,
    },
    /// A rank's share of a job over several ranks: the training rows of an
    /// IDX or `.npy` data set that one process would hold in memory, read
    /// from the file as each step needs them; the test split in memory on
    /// rank 0 (which alone validates), not read elsewhere.
    Share {
        train: TrainFile,
        n_train: usize,
        dim: usize,
        test: Option<Loaded>,
    },
}

/// The file of a training split read by row.
pub enum TrainFile {
    /// Rows `lo..hi` of a `.npy` matrix.
    Npy { path: PathBuf, rows: (usize, usize) },
    /// The first `n` images of a raw IDX training split.
    Idx { dir: PathBuf, n: usize },
}

impl TrainFile {
    /// The rows, opened again (their headers read and checked again).
    fn open(&self) -> Result<FileRows> {
        match self {
            TrainFile::Npy { path, rows } => FileRows::open(path)?.range(rows.0, rows.1),
            TrainFile::Idx { dir, n } => match mnist::open_split(dir, mnist::Split::Train)? {
                mnist::SplitFile::Rows(file) => FileRows::new(file).range(0, *n),
                mnist::SplitFile::Whole(_) => Err(Error::Data {
                    reason: format!(
                        "{}: the training images became gzip-compressed while training started",
                        dir.display()
                    ),
                }),
            },
        }
    }
}

fn bytes_of(rows: usize, dim: usize) -> f64 {
    rows as f64 * dim as f64 * 4.0
}

/// Which rank of how many this process is.
#[derive(Clone, Copy, Debug)]
pub struct RankOf {
    pub rank: usize,
    pub ranks: usize,
}

impl Input {
    /// Opens the data at `path` as `a` asks, or as the resumed run did
    /// (`resumed_chunk_rows`: `Some(Some(rows))` streamed, `Some(None)` in
    /// memory), for rank `me.rank` of `me.ranks`: with more than one rank,
    /// each reads only its own rows of the training split where the file
    /// allows it (raw IDX, `.npy`), and only rank 0 loads the test split.
    pub fn open(
        path: &Path,
        a: &TrainArgs,
        resumed_chunk_rows: Option<Option<usize>>,
        me: RankOf,
    ) -> Result<Input> {
        let limit = a.data.limit;
        for (flag, v) in [
            ("--memory-budget", Some(a.memory_budget)),
            ("--chunk-mb", a.chunk_mb),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(Error::config(
                    flag,
                    format!(
                        "must be a positive number of MB, got {}",
                        sparse_ae::io::json::short_number(v)
                    ),
                ));
            }
        }
        if let Some(c) = a.chunk_mb
            && c > a.memory_budget
        {
            return Err(Error::config(
                "--chunk-mb",
                format!(
                    "{} MB is more than --memory-budget {} MB: a chunk is held in memory whole",
                    sparse_ae::io::json::short_number(c),
                    sparse_ae::io::json::short_number(a.memory_budget)
                ),
            ));
        }
        let shared = me.ranks > 1;
        if !data::is_npy(path) {
            if a.stream || resumed_chunk_rows.is_some_and(|c| c.is_some()) {
                return Err(Error::config(
                    "--stream",
                    "streaming reads a .npy matrix; IDX data sets are loaded into memory",
                ));
            }
            if !shared {
                return Input::memory(path, limit);
            }
            return Input::idx_share(path, limit, me, a.quiet);
        }
        let rows = data::open_npy(path)?;
        let (n, dim) = (rows.len(), rows.dim());
        let train = data::npy_split(n, SplitArg::Train, limit);
        let test = data::npy_split(n, SplitArg::Test, limit);
        // Not a progress line: printed under -q too.
        if n == 1 && me.rank == 0 {
            note!(
                "note: {} has one row: it is both the training and the test split, so the test loss is not of a held-out sample",
                path.display()
            );
        }
        // The whole split's size decides, the same on every rank: it
        // decides the order of the rows.
        let chunk_rows = match resumed_chunk_rows {
            Some(c) => c,
            None => {
                let large = bytes_of(train.1 - train.0, dim) > a.memory_budget * 1048576.0;
                (a.stream || large).then(|| chunk_rows(chunk_mb(a.memory_budget, a.chunk_mb), dim))
            }
        };
        match chunk_rows {
            None if shared => {
                let n_train = train.1 - train.0;
                if u32::try_from(n_train).is_err() {
                    return Err(Error::shape(
                        "Samples",
                        "at most 2^32 − 1 samples",
                        n_train.to_string(),
                    ));
                }
                Ok(Input::Share {
                    train: TrainFile::Npy {
                        path: path.to_owned(),
                        rows: train,
                    },
                    n_train,
                    dim,
                    test: match me.rank {
                        0 => Some(data::load_from(path, limit, SplitArg::Test)?),
                        _ => None,
                    },
                })
            }
            None => Input::memory(path, limit),
            Some(chunk_rows) => Ok(Input::Stream {
                path: path.to_owned(),
                train,
                test,
                dim,
                chunk_rows,
                by_row: shared,
            }),
        }
    }

    /// A rank's share of an IDX data set: the training images read by row
    /// if the file is raw; a gzip file loaded whole (it cannot be read by
    /// row), which rank 0 says.
    fn idx_share(dir: &Path, limit: Option<usize>, me: RankOf, quiet: bool) -> Result<Input> {
        let train = mnist::open_split(dir, mnist::Split::Train)?;
        let test = match me.rank {
            0 => Some(data::load_from(dir, limit, SplitArg::Test)?),
            _ => None,
        };
        match train {
            mnist::SplitFile::Rows(file) => {
                let n = file.rows().min(limit.unwrap_or(usize::MAX));
                Ok(Input::Share {
                    dim: file.dim(),
                    train: TrainFile::Idx {
                        dir: dir.to_owned(),
                        n,
                    },
                    n_train: n,
                    test,
                })
            }
            mnist::SplitFile::Whole(d) => {
                if me.rank == 0 && !quiet {
                    note!(
                        "note: the training images in {} are gzip-compressed, which cannot be read by row: every rank loads them whole (gunzip them to have each rank read only its own rows)",
                        dir.display()
                    );
                }
                let dim = d.features();
                let mut pixels = d.pixels;
                pixels.truncate(d.n.min(limit.unwrap_or(usize::MAX)) * dim);
                Ok(Input::Memory {
                    train: Loaded::U8 { pixels, dim },
                    test,
                })
            }
        }
    }

    fn memory(path: &Path, limit: Option<usize>) -> Result<Input> {
        // The two splits decode in parallel.
        let (train, test) = std::thread::scope(|sc| {
            let test = std::thread::Builder::new()
                .spawn_scoped(sc, || data::load_from(path, limit, SplitArg::Test))
                .map_err(|e| {
                    sparse_ae::parallel::thread_refused("a thread to read the test split", &e)
                })?;
            let train = data::load_from(path, limit, SplitArg::Train);
            Ok::<_, Error>((
                train,
                test.join().expect("the loading thread does not panic"),
            ))
        })?;
        Ok(Input::Memory {
            train: train?,
            test: Some(test?),
        })
    }

    /// Features per sample.
    pub fn dim(&self) -> Result<usize> {
        Ok(match self {
            Input::Memory { train, .. } => train.samples()?.dim(),
            Input::Stream { dim, .. } | Input::Share { dim, .. } => *dim,
        })
    }

    /// Training and test samples (no test samples on a rank other than 0
    /// that holds the data in memory or reads its share).
    /// The bytes of the samples held in memory (a stream reads a chunk at a
    /// time, a rank's share of a file its own rows at each step).
    pub fn memory_bytes(&self) -> u64 {
        match self {
            Input::Memory { train, test } => train.bytes() + test.as_ref().map_or(0, Loaded::bytes),
            Input::Share { test, .. } => test.as_ref().map_or(0, Loaded::bytes),
            Input::Stream { .. } => 0,
        }
    }

    pub fn lens(&self) -> Result<(usize, usize)> {
        let n_test = |t: &Option<Loaded>| -> Result<usize> {
            Ok(match t {
                Some(t) => t.samples()?.len(),
                None => 0,
            })
        };
        Ok(match self {
            Input::Memory { train, test } => (train.samples()?.len(), n_test(test)?),
            Input::Stream { train, test, .. } => (train.1 - train.0, test.1 - test.0),
            Input::Share { n_train, test, .. } => (*n_train, n_test(test)?),
        })
    }

    /// Rows per chunk when streaming.
    pub fn chunk_rows(&self) -> Option<usize> {
        match self {
            Input::Memory { .. } | Input::Share { .. } => None,
            Input::Stream { chunk_rows, .. } => Some(*chunk_rows),
        }
    }

    fn rows(path: &Path, (lo, hi): (usize, usize), scale: f32) -> Result<NpyRows> {
        NpyRows::open(path)?.range(lo, hi)?.scaled(scale)
    }

    /// The normalising scale of the training split: one pass over it, or
    /// with `comm`, each rank's pass over its share of it
    /// ([`norm_scale_on`]), to the same bits.
    pub fn norm_scale(
        &self,
        target: NormTarget,
        comm: Option<&mut dyn Collective<f32>>,
    ) -> Result<f32> {
        let scale = |rows: &mut dyn Rows, block: usize| match comm {
            Some(comm) => norm_scale_on(rows, block, target, comm),
            None => norm_scale(rows, block, target),
        };
        match self {
            Input::Memory { train, .. } => scale(&mut train.samples()?, 4096),
            Input::Stream {
                path,
                train,
                chunk_rows,
                ..
            } => scale(&mut Input::rows(path, *train, 1.0)?, *chunk_rows),
            Input::Share { train, .. } => scale(&mut train.open()?, 4096),
        }
    }

    /// Trains on the training split scaled by `scale`, validating on the test split.
    pub fn fit(
        &self,
        trainer: &mut Trainer<f32>,
        scale: f32,
        opts: &FitOptions,
        obs: &mut (dyn Observer + Send),
        comm: &mut (dyn Collective<f32> + Send),
    ) -> Result<Vec<EpochMetrics>> {
        fn test_samples(t: &Option<Loaded>, scale: f32) -> Result<Option<Samples<'_>>> {
            t.as_ref().map(|t| t.samples()?.scaled(scale)).transpose()
        }
        match self {
            Input::Memory { train, test } => fit_on(
                trainer,
                train.samples()?.scaled(scale)?,
                test_samples(test, scale)?,
                opts,
                obs,
                comm,
            ),
            Input::Stream {
                path,
                train,
                test,
                chunk_rows,
                by_row,
                ..
            } => {
                // A binary cross-entropy target outside [0, 1] is named by
                // its row as the chunk is read (not by its place in a batch).
                let bce = trainer.model.config().loss == Loss::Bce;
                let mut rows = Input::rows(path, *train, scale)?;
                let mut test = Input::rows(path, *test, scale)?;
                if bce {
                    rows = rows.in_unit_range("training");
                    test = test.in_unit_range("test");
                }
                let mut train = match by_row {
                    true => Chunked::by_row(rows, *chunk_rows)?,
                    false => Chunked::new(rows, *chunk_rows)?,
                };
                fit_source_on(trainer, &mut train, Some(&mut test), opts, obs, comm)
            }
            Input::Share { train, test, .. } => {
                let bce = trainer.model.config().loss == Loss::Bce;
                let mut test = test_samples(test, scale)?;
                if bce && let Some((i, j, v)) = test.and_then(|s| s.outside_unit()) {
                    return Err(sparse_ae::nn::bce_target_error(
                        format!("feature {j} of sample {i} of the test split"),
                        f64::from(v),
                    ));
                }
                let mut rows = train.open()?.scaled(scale)?;
                if bce {
                    rows = rows.in_unit_range("training");
                }
                fit_source_on(
                    trainer,
                    &mut Shuffled::new(rows),
                    test.as_mut().map(|t| t as &mut dyn Rows),
                    opts,
                    obs,
                    comm,
                )
            }
        }
    }

    /// Calls `f` with the test samples for the report, unscaled (all of
    /// them in memory; the first [`REPORT_ROWS`] of a streamed file).
    pub fn with_report_samples<R>(&self, f: impl FnOnce(Samples<'_>) -> Result<R>) -> Result<R> {
        match self {
            Input::Memory { test: Some(t), .. } | Input::Share { test: Some(t), .. } => {
                f(t.samples()?)
            }
            Input::Memory { .. } | Input::Share { .. } => Err(Error::Data {
                reason: "the test split was not loaded on this rank".into(),
            }),
            Input::Stream {
                path, test, dim, ..
            } => {
                let hi = test.1.min(test.0 + REPORT_ROWS);
                let data = Input::rows(path, (test.0, hi), 1.0)?.read_all()?;
                f(Samples::f32(&data, *dim)?)
            }
        }
    }
}

/// What a resumed run's `sparse_ae.fit` metadata records of its data.
pub struct ResumedData {
    /// The input scale (1 when absent, as in checkpoints written before it
    /// was recorded).
    pub scale: f32,
    /// The streaming chunk size (`None`: the data was in memory).
    pub chunk_rows: Option<usize>,
    /// The training samples the run's epochs were counted over (`None` in
    /// checkpoints written before it was recorded).
    pub train_samples: Option<usize>,
}

/// The data a resumed run's `sparse_ae.fit` metadata records.
pub fn resumed(fit: &Value) -> Result<ResumedData> {
    let scale = match fit.get("input_scale") {
        Some(_) => sparse_ae::io::model_file::input_scale_from_f64(
            fit.f64_at("input_scale")?,
            "sparse_ae.fit.input_scale",
        )?,
        None => 1.0,
    };
    let optional = |key: &str| match fit.get(key) {
        Some(_) => fit.usize_at(key).map(Some),
        None => Ok(None),
    };
    Ok(ResumedData {
        scale,
        chunk_rows: optional("chunk_rows")?,
        train_samples: optional("train_samples")?,
    })
}

/// Refuses data for a resumed run whose training split has another number
/// of samples than the run's: its steps would count the epochs done in the
/// wrong unit (a smaller set would make the run look finished and train
/// nothing, a larger one repeat part of an epoch).
pub fn check_resumed_samples(kept: &ResumedData, now: usize) -> Result<()> {
    match kept.train_samples {
        Some(n) if n != now => Err(Error::config(
            "--resume",
            format!(
                "the checkpoint's run trained on {n} samples, but the data given has {now} training samples: a resumed run continues on the same data (give the same --data and --limit, or start a new run from the checkpoint's model with --init)"
            ),
        )),
        _ => Ok(()),
    }
}

/// The loop's options and the data's layout, saved with each checkpoint.
pub fn fit_json(
    opts: &FitOptions,
    scale: f32,
    chunk_rows: Option<usize>,
    train_samples: usize,
) -> Value {
    let mut fields = vec![
        ("shuffle".into(), Value::Bool(opts.shuffle)),
        (
            "shuffle_seed".into(),
            Value::String(opts.shuffle_seed.to_string()),
        ),
        ("input_scale".into(), Value::from(f64::from(scale))),
        ("train_samples".into(), Value::from(train_samples)),
    ];
    if let Some(c) = chunk_rows {
        fields.push(("chunk_rows".into(), Value::from(c)));
    }
    Value::Object(fields)
}

/// The starting model and the input scale stored with it (1 if none):
/// `--init` read into `cfg` (a model file, a state dict or an SAE-library
/// directory with the same tensor shapes), `--init` alone (a model file or
/// directory with its own configuration), or fresh weights.
pub fn initial_model(
    init: Option<&Path>,
    cfg: Option<ModelConfig>,
    seed: u64,
) -> Result<(Autoencoder<f32>, f32)> {
    let Some(p) = init else {
        let cfg = cfg.ok_or_else(|| {
            Error::config(
                "model",
                "give --preset NAME (see `sparse-ae presets`), --config FILE, --init MODEL|DIR, or --resume CHECKPOINT",
            )
        })?;
        return Ok((Autoencoder::new(cfg, seed)?, 1.0));
    };
    match (p.is_dir(), cfg) {
        (false, Some(cfg)) => load_params_into_scaled(p, cfg),
        (false, None) => load_model_scaled(p),
        (true, None) => import_sae_scaled(p),
        (true, Some(cfg)) => {
            let (m, s) = import_sae_scaled(p)?;
            let shapes = |l: &ParamLayout| -> Vec<Vec<usize>> {
                l.tensors.iter().map(|t| t.shape.clone()).collect()
            };
            let (have, want) = (shapes(m.layout()), shapes(&ParamLayout::new(&cfg)));
            if have != want {
                return Err(Error::config(
                    "--init",
                    format!(
                        "{}: the SAE's tensors have shapes {have:?} but the chosen model needs {want:?}",
                        p.display()
                    ),
                ));
            }
            Ok((Autoencoder::with_params(cfg, m.params)?, s))
        }
    }
}

/// The input scale of a new run: the one stored with `--init` weights,
/// else the training split's with `--normalize`, else 1.
pub fn choose_scale(
    input: &Input,
    cfg: &ModelConfig,
    init_scale: f32,
    normalize: Option<NormTarget>,
    quiet: bool,
    comm: Option<&mut dyn Collective<f32>>,
) -> Result<f32> {
    let scale = if init_scale != 1.0 {
        if !quiet {
            note!("inputs scaled by {init_scale}, as the --init weights were trained");
        }
        init_scale
    } else if let Some(target) = normalize {
        let s = input.norm_scale(target, comm)?;
        if !quiet {
            let what = match target {
                NormTarget::UnitMeanSquare => "mean squared norm 1".to_string(),
                NormTarget::MeanNormSqrtD => format!("mean norm √{}", cfg.input),
            };
            note!("normalised: inputs scaled by s = {s} ({what} over the training split)");
        }
        s
    } else {
        1.0
    };
    if scale != 1.0 && cfg.loss == Loss::Bce {
        return Err(Error::config(
            if init_scale != 1.0 {
                "--init"
            } else {
                "--normalize"
            },
            "scaled inputs need an mse or sse loss (binary cross-entropy targets must stay in [0, 1])",
        ));
    }
    Ok(scale)
}
