//! Normalising a data set to a fixed average norm, as the interpretability
//! libraries do for activations taken from another model: one scalar `s` per
//! data set, over the n training samples, either
//!
//! ```text
//! unit mean squared norm:  s = 1 / √((1/n) Σ_i ‖x_i‖²)      (the default)
//! SAELens mean norm √d:    s = √d / ((1/n) Σ_i ‖x_i‖)
//! ```
//!
//! The second is SAELens' `normalize_activations = "expected_average_only_in"`
//! (from Anthropic's April 2024 update; d the number of features). The model
//! trains on s·x; `s` is saved in the model file
//! ([`crate::io::model_file::save_model_scaled`]), the samples of later
//! commands are scaled by it ([`crate::train::Samples::scaled`]), and outputs
//! in input space are divided by it: reconstructions, the per-sample scores
//! and the mean squared error of [`crate::train::explained`] (FVU does not
//! change with the scale). [`crate::io::interop::export_sae_scaled`] folds
//! it into the weights as SAELens does before saving.

use super::source::Rows;
use crate::dist::{Collective, agree};
use crate::error::{Error, Result};

/// What a normalisation makes of the training samples (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormTarget {
    /// Mean squared norm 1.
    UnitMeanSquare,
    /// Mean norm √d (SAELens `expected_average_only_in`).
    MeanNormSqrtD,
}

/// The scale that gives the rows of `rows` (read as they are: give rows of
/// scale 1) the `target` average, in one pass in stored order, summed in
/// f64; reads blocks of `block_rows` rows (one buffer of that size).
///
/// # Errors
/// [`Error::Config`] if there are no rows or every row is zero (no scale
/// can normalise them); any error of [`Rows::read`].
pub fn norm_scale(rows: &mut dyn Rows, block_rows: usize, target: NormTarget) -> Result<f32> {
    let (mut sum, n) = (0.0f64, rows.len());
    terms(rows, block_rows, target, 0..n, |t| sum += t)?;
    scale_of(target, rows.len(), rows.dim(), sum)
}

/// `s = √d / mean ‖x‖` ([`NormTarget::MeanNormSqrtD`]) over all rows of
/// `rows`, as [`norm_scale`].
///
/// # Errors
/// As [`norm_scale`].
pub fn mean_norm_scale(rows: &mut dyn Rows, block_rows: usize) -> Result<f32> {
    norm_scale(rows, block_rows, NormTarget::MeanNormSqrtD)
}

/// [`norm_scale`] computed by the ranks of `comm` together, each reading
/// its share of the rows: the rows are cut into `comm.ranks()` contiguous
/// ranges (of whole blocks of `block_rows` rows for
/// [`NormTarget::UnitMeanSquare`], whose terms are the blocks' sums of
/// squares; of rows for [`NormTarget::MeanNormSqrtD`], whose terms are the
/// rows' norms), each rank computes the terms of its range, and every rank
/// gathers all terms (8 bytes each) and adds them in stored order, as
/// [`norm_scale`] does: the same bits on every rank and in one process.
///
/// # Errors
/// As [`norm_scale`]; an error on another rank as [`Error::Rank`].
pub fn norm_scale_on(
    rows: &mut dyn Rows,
    block_rows: usize,
    target: NormTarget,
    comm: &mut dyn Collective<f32>,
) -> Result<f32> {
    let (n, p) = (rows.len(), comm.ranks());
    let block = block_rows.clamp(1, n.max(1));
    let blocks = n.div_ceil(block);
    let share = |r: usize| match target {
        NormTarget::UnitMeanSquare => {
            (blocks * r / p * block).min(n)..(blocks * (r + 1) / p * block).min(n)
        }
        NormTarget::MeanNormSqrtD => n * r / p..n * (r + 1) / p,
    };
    let count = |r: usize| match target {
        NormTarget::UnitMeanSquare => share(r).len().div_ceil(block),
        NormTarget::MeanNormSqrtD => share(r).len(),
    };
    let mut mine = Vec::with_capacity(8 * count(comm.rank()));
    let local = terms(rows, block_rows, target, share(comm.rank()), |t| {
        mine.extend(t.to_le_bytes());
    });
    let status = match &local {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::Data {
            reason: e.to_string(),
        }),
    };
    if let Err(e) = agree(comm, status, true) {
        return Err(local.err().unwrap_or(e));
    }
    let counts: Vec<usize> = (0..p).map(|r| 8 * count(r)).collect();
    let mut all = vec![0u8; counts.iter().sum()];
    comm.all_gather_bytes(&mine, &mut all, &counts)?;
    let mut sum = 0.0f64;
    for t in all.chunks_exact(8) {
        sum += f64::from_le_bytes(t.try_into().expect("chunks of 8"));
    }
    scale_of(target, n, rows.dim(), sum)
}

/// Calls `f` with the terms of the rows `range` in stored order (read in
/// blocks of `block_rows` from `range.start`): each block's sum of squares
/// ([`NormTarget::UnitMeanSquare`]) or each row's norm
/// ([`NormTarget::MeanNormSqrtD`]), in f64.
fn terms(
    rows: &mut dyn Rows,
    block_rows: usize,
    target: NormTarget,
    range: std::ops::Range<usize>,
    mut f: impl FnMut(f64),
) -> Result<()> {
    let dim = rows.dim();
    let sq = |v: &f32| f64::from(*v) * f64::from(*v);
    for_blocks(rows, block_rows, range, |block| match target {
        NormTarget::UnitMeanSquare => f(block.iter().map(sq).sum::<f64>()),
        NormTarget::MeanNormSqrtD => {
            for row in block.chunks_exact(dim.max(1)) {
                f(row.iter().map(sq).sum::<f64>().sqrt());
            }
        }
    })
}

/// The scale of `target` from the sum of its terms over `n` rows of `dim`.
fn scale_of(target: NormTarget, n: usize, dim: usize, sum: f64) -> Result<f32> {
    let mean = sum / n.max(1) as f64;
    match target {
        NormTarget::UnitMeanSquare => {
            let s = (1.0 / mean.sqrt()) as f32;
            if n == 0 || mean <= 0.0 || !s.is_finite() || s <= 0.0 {
                return Err(Error::config(
                    "normalize",
                    format!(
                        "the mean squared norm of the {n} training samples is {mean}: no scale normalises it"
                    ),
                ));
            }
            Ok(s)
        }
        NormTarget::MeanNormSqrtD => {
            let s = ((dim as f64).sqrt() / mean) as f32;
            let usable = n > 0 && mean > 0.0 && s.is_finite() && s > 0.0;
            if !usable {
                return Err(Error::config(
                    "normalize",
                    format!(
                        "the mean norm of the {n} training samples is {mean}: no scale normalises it"
                    ),
                ));
            }
            Ok(s)
        }
    }
}

/// Calls `f` on the values of each block of (at most) `block_rows` rows of
/// the rows `range` of `rows`, from its start, in stored order, read into
/// one buffer.
fn for_blocks(
    rows: &mut dyn Rows,
    block_rows: usize,
    range: std::ops::Range<usize>,
    mut f: impl FnMut(&[f32]),
) -> Result<()> {
    let (n, dim) = (rows.len(), rows.dim());
    let block = block_rows.clamp(1, n.max(1));
    let (mut start, end) = (range.start.min(n), range.end.min(n));
    let mut buf = vec![0.0f32; block.min(end - start) * dim];
    while start < end {
        let len = block.min(end - start);
        rows.read(start, &mut buf[..len * dim])?;
        f(&buf[..len * dim]);
        start += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Samples;

    #[test]
    fn the_scaled_samples_have_mean_norm_sqrt_d() {
        // Rows of norm 3 and 5 in 4 features: mean norm 4, s = 2/4.
        let data = [3.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0, -3.0];
        let mut s = Samples::f32(&data, 4).unwrap();
        // Norms 3, 5, 3: mean 11/3.
        let want = 2.0 / (11.0f64 / 3.0);
        for block in [1, 2, 3, 100] {
            let got = mean_norm_scale(&mut s, block).unwrap();
            assert_eq!(got, want as f32, "block {block}");
        }
        let zeros = [0.0; 8];
        let e = mean_norm_scale(&mut Samples::f32(&zeros, 4).unwrap(), 2).unwrap_err();
        assert!(e.to_string().contains("no scale normalises"), "{e}");
    }

    #[test]
    fn the_scaled_samples_have_unit_mean_squared_norm() {
        // Squared norms 9, 25, 9: mean 43/3, s = 1/√(43/3).
        let data = [3.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0, -3.0];
        let want = 1.0 / (43.0f64 / 3.0).sqrt();
        for block in [1, 2, 3, 100] {
            let mut s = Samples::f32(&data, 4).unwrap();
            let got = norm_scale(&mut s, block, NormTarget::UnitMeanSquare).unwrap();
            assert!(
                (f64::from(got) - want).abs() <= 1e-7 * want,
                "block {block}"
            );
            let ms: f64 = data
                .chunks(4)
                .map(|r| r.iter().map(|&v| f64::from(v * got).powi(2)).sum::<f64>())
                .sum::<f64>()
                / 3.0;
            assert!((ms - 1.0).abs() < 1e-6, "{ms}");
        }
        let zeros = [0.0; 8];
        let mut z = Samples::f32(&zeros, 4).unwrap();
        let e = norm_scale(&mut z, 2, NormTarget::UnitMeanSquare).unwrap_err();
        assert!(e.to_string().contains("no scale normalises"), "{e}");
    }
}
