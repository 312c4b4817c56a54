//! Training: the step, and the loop over a data set.

pub mod step;

pub use step::Trainer;
