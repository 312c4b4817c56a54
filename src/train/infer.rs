//! Using a trained model on a data set: codes and per-sample errors.

use super::samples::Samples;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::{Autoencoder, Loss};

/// Runs `f(first_index, batch_len, workspace)` after a forward pass over
/// each batch of `samples` (clean inputs).
fn for_batches(
    model: &Autoencoder<f32>,
    samples: Samples<'_>,
    batch: usize,
    mut f: impl FnMut(usize, &[f32], &crate::nn::Workspace<f32>),
) -> Result<()> {
    let d = model.config().input;
    if samples.dim() != d {
        return Err(Error::shape(
            "model input",
            format!("samples of {d} features"),
            format!("{} features", samples.dim()),
        ));
    }
    let n = samples.len();
    let batch = batch.clamp(1, n.max(1));
    let mut ws = model.workspace(batch);
    let mut x = vec![0.0f32; batch * d];
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        if len != ws.batch() {
            ws = model.workspace(len);
            x.truncate(len * d);
        }
        let idx: Vec<u32> = (start as u32..(start + len) as u32).collect();
        samples.gather(&idx, &mut x);
        model.forward(&mut ws, &x)?;
        f(start, &x, &ws);
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
    let mut out = Vec::with_capacity(samples.len() * units);
    for_batches(model, samples, 1000, |_, _, ws| {
        out.extend_from_slice(model.code(ws))
    })?;
    Ok(out)
}

/// Each sample's reconstruction error under the model's loss, mean over
/// features (BCE from logits, or squared error; for `sse`, ½ the sum over
/// features): a score for anomaly detection, higher = less typical.
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model.
pub fn score(model: &Autoencoder<f32>, samples: Samples<'_>) -> Result<Vec<f32>> {
    let cfg = model.config();
    let d = cfg.input;
    let last = cfg.layers.len() - 1;
    let mut out = Vec::with_capacity(samples.len());
    for_batches(model, samples, 1000, |_, x, ws| {
        for (out_row, x_row) in ws.h[last].chunks_exact(d).zip(x.chunks_exact(d)) {
            let s = match cfg.loss {
                Loss::Bce => f32::bce_logits(out_row, x_row, None, 1.0) / d as f64,
                Loss::Mse => f32::sq_err(out_row, x_row, None, 1.0) / d as f64,
                Loss::Sse => 0.5 * f32::sq_err(out_row, x_row, None, 1.0),
            };
            out.push(s as f32);
        }
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
    /// Fraction of variance unexplained.
    pub fvu: f64,
}

/// [`Explained`] for `model` on `samples` (clean inputs).
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model.
pub fn explained(model: &Autoencoder<f32>, samples: Samples<'_>) -> Result<Explained> {
    let d = model.config().input;
    let mut sum = vec![0.0f64; d];
    let mut sum_sq = 0.0f64;
    let mut err = 0.0f64;
    let mut recon = Vec::new();
    for_batches(model, samples, 1000, |_, x, ws| {
        recon.resize(x.len(), 0.0);
        model.reconstruction(ws, &mut recon);
        err += f32::sq_err(&recon, x, None, 1.0);
        for row in x.chunks_exact(d) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += v as f64;
            }
        }
        sum_sq += f32::sum_sq(x);
    })?;
    let n = samples.len().max(1) as f64;
    let total = sum_sq - sum.iter().map(|s| s * s / n).sum::<f64>();
    Ok(Explained {
        mse: err / (n * d as f64),
        fvu: if total > 0.0 { err / total } else { f64::NAN },
    })
}
