//! Training: the step, the loop over a data set, and its metrics.

pub mod dead;
pub mod fit;
pub mod infer;
pub mod metrics;
pub mod samples;
pub mod step;

pub use dead::DeadLatents;
pub use fit::{FitOptions, Observer, Silent, evaluate, fit};
pub use infer::{Explained, encode, explained, score};
pub use metrics::{CodeStats, EpochMetrics};
pub use samples::Samples;
pub use step::Trainer;
