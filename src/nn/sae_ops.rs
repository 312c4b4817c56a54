//! The arithmetic of the SAE options ([`crate::nn::sae`]): the pre-encoder
//! bias, unit-norm decoder columns, and the transposed encoder init.
//!
//! Shapes: x: (batch, d_in), encoder weight `W_enc: (d_sae, d_in)`, decoder
//! weight `W_dec: (d_in, d_sae)` (PyTorch `[out, in]`), so latent j's
//! decoder direction is column j of `W_dec`.

use super::params::ParamLayout;
use super::sae::{EncoderInit, SaeConfig};
use crate::kernels::Real;

/// Pre-encoder bias, forward: `out ← x − b_dec` row by row
/// (x, out: (batch, d_in), b_dec: (d_in)).
pub fn center_input<T: Real>(out: &mut [T], x: &[T], b_dec: &[T]) {
    let d = b_dec.len();
    for (o, xr) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        for ((o, &xv), &b) in o.iter_mut().zip(xr).zip(b_dec) {
            *o = xv - b;
        }
    }
}

/// Pre-encoder bias, backward: the encoder sees `x − b_dec`, so with
/// `dz: (batch, d_sae)` the encoder's pre-activation gradient,
/// `∂L/∂b_dec −= Σ_i dz_i·W_enc = W_encᵀ·db_enc` where `db_enc = Σ_i dz_i`
/// is the encoder bias gradient. Accumulates into `db_dec: (d_in)`.
pub fn pre_bias_backward<T: Real>(db_dec: &mut [T], db_enc: &[T], w_enc: &[T]) {
    let d_in = db_dec.len();
    for (&g, row) in db_enc.iter().zip(w_enc.chunks_exact(d_in)) {
        T::axpy(T::ZERO - g, row, db_dec);
    }
}

/// `out[j] = ‖column j of w‖²` for `w: (rows, cols)` (f64 sums in row order).
fn col_sq_norms<T: Real>(w: &[T], cols: usize, out: &mut [f64]) {
    out.iter_mut().for_each(|v| *v = 0.0);
    for row in w.chunks_exact(cols) {
        for (n, &v) in out.iter_mut().zip(row) {
            *n += v.to_f64() * v.to_f64();
        }
    }
}

/// Scales every column of `w: (rows, cols)` to unit L2 norm (a zero column
/// stays zero). `scratch` holds at least `cols` values.
pub fn normalize_columns<T: Real>(w: &mut [T], cols: usize, scratch: &mut [f64]) {
    let inv = &mut scratch[..cols];
    col_sq_norms(w, cols, inv);
    for v in inv.iter_mut() {
        *v = if *v > 0.0 { 1.0 / v.sqrt() } else { 1.0 };
    }
    for row in w.chunks_exact_mut(cols) {
        for (x, &s) in row.iter_mut().zip(inv.iter()) {
            *x = T::from_f64(x.to_f64() * s);
        }
    }
}

/// Removes from each column `g_j` of the gradient `g: (rows, cols)` its
/// component along the matching column `w_j` of the weight:
/// `g_j ← g_j − (g_j·w_j / ‖w_j‖²)·w_j` (sparsify's
/// `remove_gradient_parallel_to_decoder_directions`, which assumes
/// ‖w_j‖ = 1; dividing by ‖w_j‖² makes it the exact projection even when
/// rounding has moved the norm). A step along the result keeps ‖w_j‖ to
/// first order. `scratch` holds at least `2·cols` values.
pub fn remove_parallel_grad<T: Real>(w: &[T], g: &mut [T], cols: usize, scratch: &mut [f64]) {
    let (dot, norm) = scratch[..2 * cols].split_at_mut(cols);
    col_sq_norms(w, cols, norm);
    dot.iter_mut().for_each(|v| *v = 0.0);
    for (wr, gr) in w.chunks_exact(cols).zip(g.chunks_exact(cols)) {
        for ((d, &wv), &gv) in dot.iter_mut().zip(wr).zip(gr) {
            *d += wv.to_f64() * gv.to_f64();
        }
    }
    for (d, &n) in dot.iter_mut().zip(norm.iter()) {
        *d = if n > 0.0 { *d / n } else { 0.0 };
    }
    for (wr, gr) in w.chunks_exact(cols).zip(g.chunks_exact_mut(cols)) {
        for ((gv, &wv), &c) in gr.iter_mut().zip(wr).zip(dot.iter()) {
            *gv = T::from_f64(gv.to_f64() - c * wv.to_f64());
        }
    }
}

/// The SAE part of a fresh model's initialisation, after the Glorot draw:
/// with a unit-norm decoder, normalise its columns; with
/// [`EncoderInit::DecoderTranspose`], set `W_enc = W_decᵀ` (in that order,
/// as Gao et al.: the encoder starts as the transpose of the normalised
/// decoder). Does nothing for a model without these options.
pub fn init_sae_weights<T: Real>(sae: &SaeConfig, layout: &ParamLayout, params: &mut [T]) {
    if !sae.unit_norm_decoder && sae.encoder_init == EncoderInit::Glorot {
        return;
    }
    let dec = layout.weight(1).range();
    let (d_in, d_sae) = (layout.weight(1).shape[0], layout.weight(1).shape[1]);
    if sae.unit_norm_decoder {
        let mut scratch = vec![0.0; d_sae];
        normalize_columns(&mut params[dec.clone()], d_sae, &mut scratch);
    }
    if sae.encoder_init == EncoderInit::DecoderTranspose {
        let enc = layout.weight(0).range();
        let w_dec: Vec<T> = params[dec].to_vec();
        let w_enc = &mut params[enc];
        for (c, row) in w_dec.chunks_exact(d_sae).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                w_enc[j * d_in + c] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_is_orthogonal_and_normalisation_gives_unit_columns() {
        let (rows, cols) = (5, 3);
        let w: Vec<f64> = (0..rows * cols).map(|i| (i as f64 * 0.7).sin()).collect();
        let mut g: Vec<f64> = (0..rows * cols).map(|i| (i as f64 * 1.3).cos()).collect();
        let g0 = g.clone();
        let mut s = vec![0.0; 2 * cols];
        remove_parallel_grad(&w, &mut g, cols, &mut s);
        for j in 0..cols {
            let dot: f64 = (0..rows).map(|r| w[r * cols + j] * g[r * cols + j]).sum();
            assert!(dot.abs() < 1e-12, "column {j}: {dot}");
            // The removed part is parallel to w_j.
            let diff: Vec<f64> = (0..rows)
                .map(|r| g0[r * cols + j] - g[r * cols + j])
                .collect();
            let ww: f64 = (0..rows).map(|r| w[r * cols + j].powi(2)).sum();
            let ratio = (0..rows).map(|r| diff[r] * w[r * cols + j]).sum::<f64>() / ww;
            for r in 0..rows {
                assert!((diff[r] - ratio * w[r * cols + j]).abs() < 1e-12);
            }
        }
        let mut w2 = w.clone();
        normalize_columns(&mut w2, cols, &mut s);
        for j in 0..cols {
            let n: f64 = (0..rows).map(|r| w2[r * cols + j].powi(2)).sum();
            assert!((n - 1.0).abs() < 1e-12);
            assert!(w2[cols + j] * w[cols + j] > 0.0);
        }
    }

    #[test]
    fn pre_bias_backward_is_minus_w_enc_transposed_times_db_enc() {
        let (d_sae, d_in) = (3, 4);
        let w_enc: Vec<f64> = (0..d_sae * d_in).map(|i| i as f64 - 5.0).collect();
        let db_enc = [0.5, -1.0, 2.0];
        let mut db_dec = vec![1.0; d_in];
        pre_bias_backward(&mut db_dec, &db_enc, &w_enc);
        for c in 0..d_in {
            let want = 1.0
                - (0..d_sae)
                    .map(|j| db_enc[j] * w_enc[j * d_in + c])
                    .sum::<f64>();
            assert_eq!(db_dec[c], want);
        }
    }
}
