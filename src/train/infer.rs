//! Using a trained model on a data set: codes and per-sample errors.
//!
//! Every pass reads the samples in chunks of at most [`EVAL_BATCH`] (see
//! [`crate::train::evaluation`]): no result depends on the chunks, the
//! memory budget or the threads, except that a batch top-k model keeps the
//! k·B largest values of each block of [`EVAL_BATCH`] samples (a budget
//! that cannot hold a block is an error, never smaller blocks).
//!
//! Samples with an input scale `s` ([`Samples::scaled`]) reach the model
//! as s·x; results in input space are given back in it: squared errors are
//! divided by s² (see [`crate::train::normalize`]).

use super::evaluation::{Chunks, EVAL_BATCH};
use super::samples::Samples;
use super::source::Rows;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::{Autoencoder, Loss, non_finite_output};

/// Runs `f(first_index, batch, workspace)` after a forward pass over each
/// chunk of `samples` ([`Chunks::plan`] for `batch`; clean inputs) whose
/// codes and outputs are finite
/// ([`Autoencoder::check_outputs`]; `of` says what the samples are, for
/// its error); an error of `f` stops the pass.
fn for_batches(
    model: &Autoencoder<f32>,
    samples: &mut dyn Rows,
    batch: usize,
    of: Option<&str>,
    mut f: impl FnMut(usize, &[f32], &crate::nn::Workspace<f32>) -> Result<()>,
) -> Result<()> {
    crate::parallel::start_global_pool(None)?;
    crate::kernels::gemm::reserve_pack_buffers()?;
    let d = model.config().input;
    if samples.dim() != d {
        return Err(Error::shape(
            "model input",
            format!("samples of {d} features"),
            format!("{} features", samples.dim()),
        ));
    }
    let n = samples.len();
    let chunks = Chunks::plan(model, batch, n)?;
    let mut ws = chunks.workspace(model, chunks.chunk)?;
    let mut x = vec![0.0f32; chunks.chunk * d];
    let mut start = 0;
    while start < n {
        let len = chunks.chunk.min(n - start);
        if len != ws.batch() {
            ws = chunks.workspace(model, len)?;
            x.truncate(len * d);
        }
        samples.read(start, &mut x)?;
        model.forward(&mut ws, &x)?;
        model.check_outputs(&ws, &x, start, of)?;
        f(start, &x, &ws)?;
        start += len;
    }
    Ok(())
}

/// The code of every sample, `(n, code units)` row-major.
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model.
pub fn encode(model: &Autoencoder<f32>, samples: Samples<'_>) -> Result<Vec<f32>> {
    let units = model.config().width(model.config().code_layer);
    let n = samples.len();
    crate::memory::check(
        &format!("the codes of {n} samples"),
        crate::memory::f32_bytes(n.saturating_mul(units)),
    )?;
    let mut out = Vec::with_capacity(n * units);
    for_batches(model, &mut { samples }, EVAL_BATCH, None, |_, _, ws| {
        out.extend_from_slice(model.code(ws));
        Ok(())
    })?;
    Ok(out)
}

/// The reconstruction x̂ of every sample, `(n, in)` row-major, in input
/// space (divided by s for samples of scale s).
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model;
/// [`Error::Memory`] if the reconstructions exceed the memory budget.
pub fn reconstruct(model: &Autoencoder<f32>, samples: Samples<'_>) -> Result<Vec<f32>> {
    let d = model.config().input;
    let scale = samples.scale();
    let n = samples.len();
    crate::memory::check(
        &format!("the reconstructions of {n} samples"),
        crate::memory::f32_bytes(n.saturating_mul(d)),
    )?;
    let mut out = vec![0.0f32; n * d];
    for_batches(model, &mut { samples }, EVAL_BATCH, None, |start, x, ws| {
        let rows = &mut out[start * d..start * d + x.len()];
        model.reconstruction(ws, rows);
        if scale != 1.0 {
            rows.iter_mut().for_each(|v| *v /= scale);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The decoder's output for `codes: (n, code units)` row-major: x̂ as
/// [`reconstruct`] gives it, `(n, in)`, divided by `scale` (the input
/// scale the model was trained with; 1 for none).
///
/// # Errors
/// [`Error::Shape`] if `codes` does not hold whole codes;
/// [`Error::Config`] for a scale that is not finite and positive;
/// [`Error::Memory`] if the outputs exceed the memory budget;
/// [`Error::Value`] naming the code whose output is not finite in f32.
pub fn decode(model: &Autoencoder<f32>, codes: &[f32], scale: f32) -> Result<Vec<f32>> {
    crate::parallel::start_global_pool(None)?;
    crate::kernels::gemm::reserve_pack_buffers()?;
    super::samples::check_scale(scale)?;
    let cfg = model.config();
    let (units, d) = (cfg.width(cfg.code_layer), cfg.input);
    if !codes.len().is_multiple_of(units) {
        return Err(Error::shape(
            "decode",
            format!("codes of {units} units"),
            format!("{} values", codes.len()),
        ));
    }
    let n = codes.len() / units;
    crate::memory::check(
        &format!("the decoder's outputs for {n} codes"),
        crate::memory::f32_bytes(n.saturating_mul(d)),
    )?;
    // Batches whose workspace fits the budget (a convolution's buffers
    // may be large whatever the batch).
    let batch = model.eval_batch(n.clamp(1, 1000))?;
    let mut ws = model.try_workspace_with(batch, crate::nn::TopkPath::Dense)?;
    let mut out = vec![0.0f32; n * d];
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        if len != ws.batch() {
            ws = model.try_workspace_with(len, crate::nn::TopkPath::Dense)?;
        }
        let batch_codes = &codes[start * units..(start + len) * units];
        model.decode(&mut ws, batch_codes)?;
        let rows = &mut out[start * d..(start + len) * d];
        model.reconstruction(&ws, rows);
        // A finite code whose output overflowed f32 is not a result.
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            let r = i / d;
            return Err(non_finite_output(
                start + r,
                Some("the codes"),
                &batch_codes[r * units..(r + 1) * units],
            ));
        }
        if scale != 1.0 {
            rows.iter_mut().for_each(|v| *v /= scale);
        }
        start += len;
    }
    Ok(out)
}

/// Each sample's reconstruction error under the model's loss, mean over
/// features (BCE from logits, or squared error; for `sse`, ½ the sum over
/// features): a score for anomaly detection, higher = less typical. Squared
/// errors are in input space (divided by s² for samples of scale s).
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model; [`Error::Value`]
/// if the model's loss is binary cross-entropy and a value is outside
/// [0, 1] (its score would mean nothing); [`Error::Memory`] if the scores
/// exceed the memory budget.
pub fn score(model: &Autoencoder<f32>, samples: Samples<'_>) -> Result<Vec<f32>> {
    score_of(model, samples, None)
}

/// [`score`] of samples that are `of` (say, "the test split"): a sample
/// its errors name is "sample i of {of}", i counted within the samples.
///
/// # Errors
/// As [`score`].
pub fn score_of(
    model: &Autoencoder<f32>,
    samples: Samples<'_>,
    of: Option<&str>,
) -> Result<Vec<f32>> {
    let cfg = model.config();
    if cfg.loss == Loss::Bce
        && let Some((i, j, v)) = samples.outside_unit()
    {
        let of = of.map(|o| format!(" of {o}")).unwrap_or_default();
        return Err(crate::nn::bce_target_error(
            format!("feature {j} of sample {i}{of}"),
            f64::from(v),
        ));
    }
    let d = cfg.input;
    let last = cfg.layers.len() - 1;
    crate::memory::check(
        &format!("the scores of {} samples", samples.len()),
        crate::memory::f32_bytes(samples.len()),
    )?;
    let mut out = Vec::with_capacity(samples.len());
    let undo = 1.0 / (f64::from(samples.scale()) * f64::from(samples.scale()));
    for_batches(model, &mut { samples }, EVAL_BATCH, of, |start, x, ws| {
        let rows = ws.h[last].chunks_exact(d).zip(x.chunks_exact(d));
        for (i, (out_row, x_row)) in rows.enumerate() {
            let s = match cfg.loss {
                Loss::Bce => f32::bce_logits(out_row, x_row, None, 1.0) / d as f64,
                Loss::Mse => undo * f32::sq_err(out_row, x_row, None, 1.0) / d as f64,
                Loss::Sse => undo * 0.5 * f32::sq_err(out_row, x_row, None, 1.0),
            };
            // A score that f32 cannot hold (its squares overflowed) is not one.
            if !(s as f32).is_finite() {
                return Err(non_finite_output(start + i, of, x_row));
            }
            out.push(s as f32);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Reconstruction quality in the terms of the interpretability literature:
/// the mean squared error per feature, and the fraction of variance
/// unexplained FVU = Σ‖x − x̂‖² / Σ‖x − x̄‖² (x̄ the mean sample of `samples`);
/// explained variance is 1 − FVU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Explained {
    /// Mean of (x̂ − x)² over samples and features.
    pub mse: f64,
    /// Fraction of variance unexplained; NaN where the samples do not vary
    /// (one sample, or all alike), so that there is no variance to explain.
    pub fvu: f64,
}

impl Explained {
    /// Why FVU has no value, where [`Explained::fvu`] is NaN.
    pub const FVU_UNDEFINED: &'static str = "undefined: the samples do not vary (one sample, or all alike), so there is no variance to explain";

    /// FVU and the explained variance as text: `0.1234 (explained variance
    /// 0.8766)`, or [`Explained::FVU_UNDEFINED`].
    pub fn fvu_text(&self) -> String {
        match self.fvu.is_nan() {
            true => Self::FVU_UNDEFINED.to_owned(),
            false => format!("{:.4} (explained variance {:.4})", self.fvu, 1.0 - self.fvu),
        }
    }
}

/// [`Explained`] for `model` on `samples` (clean inputs). The MSE is in
/// input space (divided by s² for samples of scale s); FVU is the same in
/// either.
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model.
pub fn explained(model: &Autoencoder<f32>, samples: Samples<'_>) -> Result<Explained> {
    explained_rows(model, &mut { samples })
}

/// [`explained`] over any [`Rows`], read once in order.
///
/// # Errors
/// [`Error::Shape`] if the rows do not fit the model; any error of reading them.
pub fn explained_rows(model: &Autoencoder<f32>, samples: &mut dyn Rows) -> Result<Explained> {
    let d = model.config().input;
    let scale = f64::from(samples.scale());
    no_samples(samples.len(), "explained variance")?;
    let mut moments = Moments::new(d);
    let mut err = 0.0f64;
    let mut recon = Vec::new();
    for_batches(model, samples, EVAL_BATCH, None, |start, x, ws| {
        recon.resize(x.len(), 0.0);
        model.reconstruction(ws, &mut recon);
        let rows = recon.chunks_exact(d).zip(x.chunks_exact(d));
        for (i, (r_row, row)) in rows.enumerate() {
            let e = f32::sq_err(r_row, row, None, 1.0);
            if !e.is_finite() {
                return Err(non_finite_output(start + i, None, row));
            }
            err += e;
            moments.add(row);
        }
        Ok(())
    })?;
    let n = samples.len() as f64;
    let total: f64 = moments.squares().iter().sum();
    Ok(Explained {
        mse: err / (n * d as f64) / (scale * scale),
        fvu: if total > 0.0 { err / total } else { f64::NAN },
    })
}

/// The error for a quality measure `what` asked of no samples.
fn no_samples(n: usize, what: &str) -> Result<()> {
    if n == 0 {
        return Err(Error::Value {
            reason: format!("no samples to compute the {what} of (the split or array is empty)"),
        });
    }
    Ok(())
}

/// Each feature's sum of squared deviations from its mean over rows read
/// once, in f64 and shifted by the first row: Σ(x − c)² − (Σ(x − c))²/n
/// with c the first row's value, which loses nothing when the values sit
/// far from zero with a small spread (the plain Σx² − (Σx)²/n of values
/// near 1000 spread by 0.01 in f32 cancels to noise).
struct Moments {
    shift: Vec<f64>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    n: usize,
}

impl Moments {
    fn new(d: usize) -> Moments {
        Moments {
            shift: Vec::with_capacity(d),
            sum: vec![0.0; d],
            sum_sq: vec![0.0; d],
            n: 0,
        }
    }

    fn add(&mut self, row: &[f32]) {
        if self.shift.is_empty() {
            self.shift.extend(row.iter().map(|&v| f64::from(v)));
        }
        for (j, &v) in row.iter().enumerate() {
            let dv = f64::from(v) - self.shift[j];
            self.sum[j] += dv;
            self.sum_sq[j] += dv * dv;
        }
        self.n += 1;
    }

    /// Each feature's Σ(x − x̄)² (0 before any row; never negative).
    fn squares(&self) -> Vec<f64> {
        let n = self.n.max(1) as f64;
        self.sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(&s, &q)| (q - s * s / n).max(0.0))
            .collect()
    }
}

/// The reconstruction error of each input feature, in input space.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureErrors {
    /// Mean of (x̂_j − x_j)² over the samples, per feature j.
    pub mse: Vec<f64>,
    /// Variance of x_j over the samples, per feature j.
    pub variance: Vec<f64>,
}

impl FeatureErrors {
    /// The fraction of each feature's variance left unexplained,
    /// FVU_j = mse_j / variance_j (NaN for a constant feature).
    pub fn fvu(&self) -> Vec<f64> {
        self.mse
            .iter()
            .zip(&self.variance)
            .map(|(&e, &v)| if v > 0.0 { e / v } else { f64::NAN })
            .collect()
    }
}

/// [`FeatureErrors`] of `model` on `samples` (clean inputs), divided by s²
/// for samples of scale s. Summed over the features with the same weights,
/// they give [`explained`]: mse = mean of `mse`, FVU = Σ mse_j / Σ variance_j.
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model.
pub fn feature_errors(model: &Autoencoder<f32>, samples: Samples<'_>) -> Result<FeatureErrors> {
    let d = model.config().input;
    let scale = f64::from(samples.scale());
    no_samples(samples.len(), "per-feature errors")?;
    let mut err = vec![0.0f64; d];
    let mut moments = Moments::new(d);
    let mut recon = Vec::new();
    for_batches(model, &mut { samples }, EVAL_BATCH, None, |_, x, ws| {
        recon.resize(x.len(), 0.0);
        model.reconstruction(ws, &mut recon);
        for (row, r_row) in x.chunks_exact(d).zip(recon.chunks_exact(d)) {
            for j in 0..d {
                let (v, r) = (f64::from(row[j]), f64::from(r_row[j]));
                err[j] += (r - v) * (r - v);
            }
            moments.add(row);
        }
        Ok(())
    })?;
    let n = samples.len() as f64;
    let s2 = scale * scale;
    Ok(FeatureErrors {
        mse: err.iter().map(|e| e / n / s2).collect(),
        variance: moments.squares().iter().map(|q| q / n / s2).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Activation;
    use crate::nn::ModelBuilder;

    /// The per-feature errors add up to [`explained`]: the mean of MSE_j is
    /// the MSE, Σ MSE_j / Σ variance_j the FVU, in input space at any scale
    /// (to 1e-6: `explained` sums its squares with the f32 kernels).
    #[test]
    fn feature_errors_sum_to_the_explained_variance() {
        let cfg = ModelBuilder::new(6)
            .code(4, Activation::Relu)
            .decoder(6, Activation::Linear)
            .loss(Loss::Mse)
            .build()
            .unwrap();
        let model = Autoencoder::<f32>::new(cfg, 3).unwrap();
        let x: Vec<f32> = (0..6 * 50)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * (1 + i % 6) as f32)
            .collect();
        for scale in [1.0, 0.25] {
            let s = Samples::f32(&x, 6).unwrap().scaled(scale).unwrap();
            let fe = feature_errors(&model, s).unwrap();
            let ex = explained(&model, s).unwrap();
            let mse = fe.mse.iter().sum::<f64>() / 6.0;
            let fvu = fe.mse.iter().sum::<f64>() / fe.variance.iter().sum::<f64>();
            assert!((mse - ex.mse).abs() <= 1e-6 * ex.mse, "{mse} {}", ex.mse);
            assert!((fvu - ex.fvu).abs() <= 1e-6 * ex.fvu, "{fvu} {}", ex.fvu);
            // Feature j's values span (1 + j)·[−1, 1]: its variance grows as (1 + j)².
            assert!(fe.variance.windows(2).all(|w| w[0] < w[1]), "{fe:?}");
            assert_eq!(fe.fvu().len(), 6);
        }
    }

    /// The FVU's variance is exact for values far from zero with a small
    /// spread (values 1000 + 0.01·u, whose variance the plain one-pass
    /// Σx² − (Σx)²/n in f32 lost entirely), equal to the two-pass f64
    /// variance; one sample has no variance (NaN), and no samples are an
    /// error for both measures and for the loss.
    #[test]
    fn the_variance_survives_a_large_offset_and_no_samples_are_an_error() {
        let cfg = ModelBuilder::new(4)
            .code(3, Activation::Relu)
            .decoder(4, Activation::Linear)
            .loss(Loss::Mse)
            .build()
            .unwrap();
        let model = Autoencoder::<f32>::new(cfg, 5).unwrap();
        let n = 500;
        let x: Vec<f32> = (0..4 * n)
            .map(|i| 1000.0 + 0.01 * ((i * 7919 % 1009) as f32 / 1009.0))
            .collect();
        let s = Samples::f32(&x, 4).unwrap();
        let fe = feature_errors(&model, s).unwrap();
        for j in 0..4 {
            let col: Vec<f64> = x.iter().skip(j).step_by(4).map(|&v| f64::from(v)).collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            assert!(var > 5e-6, "{var}");
            let rel = (fe.variance[j] - var).abs() / var;
            assert!(rel < 1e-9, "feature {j}: {} against {var}", fe.variance[j]);
        }
        let ex = explained(&model, s).unwrap();
        let want = fe.mse.iter().sum::<f64>() / fe.variance.iter().sum::<f64>();
        assert!(
            (ex.fvu - want).abs() <= 1e-6 * want,
            "{} against {want}",
            ex.fvu
        );
        let one = Samples::f32(&x[..4], 4).unwrap();
        assert!(explained(&model, one).unwrap().fvu.is_nan());
        assert!(
            feature_errors(&model, one)
                .unwrap()
                .fvu()
                .iter()
                .all(|v| v.is_nan())
        );
        let none = Samples::f32(&[], 4).unwrap();
        for e in [
            explained(&model, none).unwrap_err(),
            feature_errors(&model, none).unwrap_err(),
            crate::train::evaluate(&model, none, 8).unwrap_err(),
        ] {
            assert!(e.to_string().contains("no samples"), "{e}");
        }
    }
}
