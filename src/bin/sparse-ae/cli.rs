//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

// Numeric options take a leading minus (`--lr -1`), so the value's own
// check says what is wrong instead of clap calling it an unknown argument.

/// A count: a whole number ≥ 0.
fn count(s: &str) -> Result<usize, String> {
    s.parse()
        .map_err(|_| format!("expected a whole number from 0 to {}", usize::MAX))
}

/// A thread count: a whole number (its bounds are checked later, with the
/// same words as for `RAYON_NUM_THREADS`); what is none is refused with
/// the bounds of a thread count, not of a usize.
fn threads(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| {
        format!(
            "expected a whole number of threads from 1 to {}",
            sparse_ae::parallel::max_threads()
        )
    })
}

/// A count or seed as u64: a whole number ≥ 0.
fn count_u64(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("expected a whole number from 0 to {}", u64::MAX))
}

/// Train and inspect sparse autoencoders on the CPU.
#[derive(Parser, Debug)]
#[command(name = "sparse-ae", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, global = true, allow_negative_numbers = true, value_parser = threads)]
    pub threads: Option<usize>,
    /// Memory budget in GB: a command that would allocate more (a model,
    /// training or evaluation at its batch size) is refused before it
    /// starts. Default: 3/4 of the machine's memory, or half the
    /// address-space limit (`ulimit -v`) if that is smaller.
    #[arg(long, global = true, value_name = "GB", allow_negative_numbers = true)]
    pub max_memory: Option<f64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (a preset or a JSON config) on MNIST-style IDX data or a .npy matrix.
    Train(Box<TrainArgs>),
    /// Loss, L0 and dead units of a model on a data split.
    Eval(EvalArgs),
    /// Write the codes of a data split to a .npy file (or CSV, for an output named *.csv).
    Encode(OutArgs),
    /// A PNG grid of originals, noisy inputs and reconstructions.
    Reconstruct(ReconstructArgs),
    /// A PNG of the first layer's features (input weights of each unit).
    Features(FeaturesArgs),
    /// A PNG histogram of code activations of one or more models.
    Histogram(HistogramArgs),
    /// Per-sample reconstruction error (for anomaly detection), as CSV or .npy.
    Score(OutArgs),
    /// Check the backward pass against finite differences (f64).
    Gradcheck(GradcheckArgs),
    /// Write a one-hidden-layer model (ReLU or TopK code, linear output) as a
    /// folder SAELens and sparsify load: DIR/sae_weights.safetensors (SAELens: W_enc, b_enc, W_dec, b_dec), DIR/sae.safetensors (sparsify, TopK only: encoder.weight, encoder.bias, W_dec, b_dec) and DIR/cfg.json.
    Export(ExportArgs),
    /// List the preset models.
    Presets,
    /// The CPU, its caches and the kernel paths this machine runs.
    Info,
    /// Download MNIST or Fashion-MNIST into the cache and verify it.
    Download(DownloadArgs),
}

/// A data set the tool can download.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetArg {
    /// Handwritten digits.
    Mnist,
    /// Zalando's clothing images.
    FashionMnist,
}

#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// Which data set.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mnist)]
    pub dataset: DatasetArg,
    /// Cache directory. Default: $SPARSE_AE_CACHE, else
    /// $XDG_CACHE_HOME/sparse-ae, else ~/.cache/sparse-ae.
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// A directory of IDX files (train-images-idx3-ubyte[.gz], t10k-…), or a
    /// .npy file: a matrix (samples × features) or images (samples × height
    /// × width, or samples × channels × height × width). Default: the
    /// --dataset, else $SPARSE_AE_DATA (taken as --data is).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use only the first N samples of each split (of a .npy file: of its
    /// first 90 % and of its last 10 %); with --split all, the first N of
    /// all the data (the training samples first).
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    pub limit: Option<usize>,
    /// Without --data: the data set to take from the cache (see `sparse-ae
    /// download`), before $SPARSE_AE_DATA. Default: mnist.
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetArg>,
    /// Download the data set into the cache if it is not there.
    #[arg(long)]
    pub download: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    Adam,
    Sgd,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    /// The training split (for a .npy file: its first 90 %).
    Train,
    /// The test split (for a .npy file: its last 10 %).
    Test,
    /// Both (for a .npy file: all of it).
    All,
}

impl SplitArg {
    /// The split's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SplitArg::Train => "train",
            SplitArg::Test => "test",
            SplitArg::All => "all",
        }
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A preset model (see `sparse-ae presets`).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// A model configuration in JSON.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Epochs to train.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = count)]
    pub epochs: usize,
    /// Stop after this many steps in all.
    #[arg(long, allow_negative_numbers = true, value_parser = count_u64)]
    pub steps: Option<u64>,
    /// Samples per step [default: 256]. With --resume, the checkpoint's
    /// (another value is an error).
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    pub batch_size: Option<usize>,
    /// Cut each batch into M micro-batches whose gradients are summed in
    /// one fixed order, so `mpirun -n P` gives the same model for any P
    /// (see docs/mpi.md) [default: 2 from batch 65 where the model
    /// allows, else 1]. Kept in checkpoints.
    #[arg(long, value_name = "M", allow_negative_numbers = true, value_parser = count)]
    pub micro_batches: Option<usize>,
    /// Sum the gradients of K batches of --batch-size B before each
    /// optimizer step: one step per K·B samples, the same bits as
    /// --batch-size K·B --micro-batches K·M, holding one micro-batch's
    /// activations at a time (models without a KL penalty, AuxK or batch
    /// top-k, which hold every micro-batch's). Steps
    /// (--steps, the epoch line, checkpoints) count optimizer steps. Kept
    /// in checkpoints [default: 1].
    #[arg(long, value_name = "K", allow_negative_numbers = true, value_parser = count)]
    pub accumulate: Option<usize>,
    /// Optimizer [default: adam]. With --resume, the checkpoint's.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate (default: 1e-3 for Adam, 0.01 for SGD). With
    /// --resume, the checkpoint's.
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum, in [0, 1) [default: 0.9] (--optimizer sgd only). With
    /// --resume, the checkpoint's.
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Seed of the initial weights and the shuffling [default: 0]. With
    /// --resume, the checkpoint's.
    #[arg(long, allow_negative_numbers = true, value_parser = count_u64)]
    pub seed: Option<u64>,
    /// Seed of the input noise [default: derived from --seed, as the seed
    /// XOR 0x5eed5eed, so that a run is reproduced by --seed alone]. A
    /// resumed run continues its checkpoint's generator.
    #[arg(
        long,
        conflicts_with = "resume",
        allow_negative_numbers = true,
        value_parser = count_u64
    )]
    pub noise_seed: Option<u64>,
    /// Keep the samples in file order. With --resume, the checkpoint's order.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Where to save the trained model (safetensors).
    #[arg(long, short, default_value = "model.safetensors")]
    pub out: PathBuf,
    /// Save a checkpoint (model + optimizer state) here after every epoch.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from a checkpoint, exactly as if never interrupted.
    #[arg(long, conflicts_with_all = ["init", "preset", "config"])]
    pub resume: Option<PathBuf>,
    /// Start from these weights: a model file, a plain state dict (with
    /// --preset/--config), or a directory in the SAE-library layout (what
    /// `export` writes). Without --preset/--config, a model file's or
    /// directory's own configuration is used. An input scale stored with
    /// the weights is kept.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Scale the inputs by one s over the training split: `unit` (the
    /// default) to mean squared norm 1, s = 1/√mean‖x‖²; `sqrt-d` to mean
    /// norm √d, s = √d/mean‖x‖ (SAELens `expected_average_only_in`). s is
    /// saved in the model and undone where outputs are in input space. Needs
    /// an mse or sse loss.
    #[arg(long, value_name = "unit|sqrt-d", num_args = 0..=1, default_missing_value = "unit", conflicts_with = "resume")]
    pub normalize: Option<NormalizeArg>,
    /// Read the .npy file chunk by chunk instead of loading it (automatic
    /// when its training split, as f32, is larger than --memory-budget).
    /// An epoch visits the chunks in a shuffled order and the rows of each
    /// chunk in a shuffled order. (A resumed run reads its data as its
    /// checkpoint says.)
    #[arg(long, conflicts_with = "resume")]
    pub stream: bool,
    /// Largest training split (MB of f32) loaded into memory; a larger
    /// .npy file is streamed.
    #[arg(
        long,
        default_value_t = 4096.0,
        value_name = "MB",
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub memory_budget: f64,
    /// Size of one chunk when streaming (MB of f32 rows), at most
    /// --memory-budget [default: 64, or a quarter of --memory-budget if
    /// that is smaller].
    #[arg(
        long,
        value_name = "MB",
        allow_negative_numbers = true,
        conflicts_with = "resume"
    )]
    pub chunk_mb: Option<f64>,
    /// Append per-epoch metrics here (.csv, or JSON lines for .jsonl; a .json
    /// name is refused, as JSON lines are no JSON document).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Write a report (plots, pictures, index.html) into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress bar or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub sae: SaeArgs,
}

/// Sparse-autoencoder options of `train` (on top of the preset or config).
#[derive(Args, Debug, Default)]
pub struct SaeArgs {
    /// Make the output layer linear and the loss mse (the SAE-library form,
    /// which --pre-encoder-bias and --auxk need).
    #[arg(long, conflicts_with = "resume")]
    pub linear_output: bool,
    /// Keep every decoder column at unit norm (one-hidden-layer models).
    #[arg(long, conflicts_with = "resume")]
    pub unit_norm_decoder: bool,
    /// How a fresh model's encoder weight starts.
    #[arg(long, value_enum, conflicts_with = "resume")]
    pub encoder_init: Option<EncoderInitArg>,
    /// Subtract the decoder bias b_dec from the input before encoding.
    #[arg(long, conflicts_with = "resume")]
    pub pre_encoder_bias: bool,
    /// Add the AuxK loss, which reconstructs the residual from dead latents
    /// (TopK code, linear output).
    #[arg(long, conflicts_with = "resume")]
    pub auxk: bool,
    /// AuxK coefficient (implies --auxk) [default: 1/32].
    #[arg(long, conflicts_with = "resume", allow_negative_numbers = true)]
    pub auxk_coef: Option<f64>,
    /// Dead latents per sample in AuxK (implies --auxk) [default: half the
    /// input width, at most the code width].
    #[arg(long, conflicts_with = "resume", allow_negative_numbers = true, value_parser = count)]
    pub auxk_k: Option<usize>,
    /// A latent is dead when it has not fired in this many training samples
    /// [default: 100000].
    #[arg(long, conflicts_with = "resume", allow_negative_numbers = true, value_parser = count_u64)]
    pub dead_window: Option<u64>,
}

/// How a fresh model's encoder weight starts.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderInitArg {
    /// Glorot-uniform.
    Glorot,
    /// The transpose of the decoder weight.
    Transpose,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model file.
    #[arg(long, short)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct OutArgs {
    /// The model file.
    #[arg(long, short)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Output file.
    #[arg(long, short)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ReconstructArgs {
    /// The model file.
    #[arg(long, short)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Output PNG.
    #[arg(long, short, default_value = "reconstructions.png")]
    pub out: PathBuf,
    /// Samples to show.
    #[arg(long, short, default_value_t = 10, allow_negative_numbers = true, value_parser = count)]
    pub n: usize,
    /// Seed of the input noise of a denoising model.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = count_u64)]
    pub noise_seed: u64,
}

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    /// The model file.
    #[arg(long, short)]
    pub model: PathBuf,
    /// Output PNG.
    #[arg(long, short, default_value = "features.png")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The model file.
    #[arg(long, short)]
    pub model: PathBuf,
    /// Output directory.
    #[arg(long, short)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct HistogramArgs {
    /// Model files (repeat to compare).
    #[arg(long, short, required = true)]
    pub model: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Output PNG.
    #[arg(long, short, default_value = "histogram.png")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct GradcheckArgs {
    /// A model configuration in JSON.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// A preset model instead.
    #[arg(long)]
    pub preset: Option<String>,
    /// Samples in the check batch (random inputs in [0, 1]).
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = count)]
    pub batch: usize,
    /// Largest acceptable relative error.
    #[arg(long, default_value_t = 1e-6, allow_negative_numbers = true)]
    pub tolerance: f64,
    /// Entries checked per tensor.
    #[arg(long, default_value_t = 32, allow_negative_numbers = true, value_parser = count)]
    pub entries: usize,
    /// Seed of the weights, the inputs and the noise.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = count_u64)]
    pub seed: u64,
    /// No progress (shown on a terminal, and as a line every 10 s
    /// otherwise, while the check runs).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--normalize`'s target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NormalizeArg {
    /// Mean squared norm 1.
    Unit,
    /// Mean norm √d (SAELens).
    SqrtD,
}

impl NormalizeArg {
    /// The library's name for it.
    pub fn target(self) -> sparse_ae::train::normalize::NormTarget {
        match self {
            NormalizeArg::Unit => sparse_ae::train::normalize::NormTarget::UnitMeanSquare,
            NormalizeArg::SqrtD => sparse_ae::train::normalize::NormTarget::MeanNormSqrtD,
        }
    }
}
