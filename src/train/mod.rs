//! Training: the step, the loop over a data set, and its metrics.

pub mod dead;
pub mod evaluation;
pub mod fit;
pub mod infer;
pub mod metrics;
pub mod normalize;
pub mod samples;
pub mod source;
pub mod step;
pub mod step_log;

pub use dead::DeadLatents;
pub use evaluation::EVAL_BATCH;
pub use fit::{
    FitOptions, Observer, Silent, evaluate, evaluate_rows, evaluate_rows_of, fit, fit_on,
    fit_source, fit_source_on, nothing_left, steps_per_epoch,
};
pub use infer::{
    Explained, FeatureErrors, decode, encode, explained, explained_rows, feature_errors,
    reconstruct, score, score_of,
};
pub use metrics::{CodeStats, EpochMetrics, EpochSoFar, RhoSpread};
pub use samples::Samples;
pub use source::{Chunked, EpochOrder, EpochSource, FileRows, NpyRows, Rows, Shuffled};
pub use step::{MicroWorkspaces, Trainer, whole_batch_first};
pub use step_log::StepLog;
