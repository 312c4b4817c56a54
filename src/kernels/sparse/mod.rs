//! Sparse × dense products for k-sparse codes, dispatched by [`Isa`].
//!
//! A top-k code touches k of its units per sample, so the layers on either
//! side of it need only the rows of a weight that belong to those units. The
//! sparse matrix is held in compressed-row form ([`Csr`]) and the two
//! products are:
//!
//! - [`spmm`]: `C ← S·A`, row r of C = `Σ_{e ∈ row r} vals[e]·A[cols[e], :]`,
//!   a sum of gathered rows of A (overwrites C; a row without entries is 0);
//! - [`sddmm`]: for each entry e of row r, `out[e] = X[r, :]·Y[cols[e], :]`,
//!   a dot product of row r of X with a gathered row of Y.
//!
//! With the code as S (rows = samples) these give a decoder's forward pass
//! and its input gradient; with the transposed code (rows = units) they give
//! weight gradients that touch only the units in use. [`transpose`] turns a
//! weight stored `(out, in)` into one whose rows are the units' directions.
//!
//! Every function has a scalar twin in [`scalar`], generic over
//! [`Real`](super::Real). Agreement: [`spmm`]'s SIMD paths add the same
//! products in the same order without fused multiply-adds, so they equal the
//! twin bit for bit. [`sddmm`] rounds each product to f32 as the twin does and
//! sums in f64 in another fixed order, so a result differs from the twin's by
//! at most one rounding of the f64 sum to f32 plus 2·n·2⁻⁵³·Σ|xᵢyᵢ|.
//! Each element is summed in an order fixed by the data alone, so results do
//! not depend on how a caller splits rows across threads.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod body;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

use super::{Isa, MatMut, MatRef};

/// A sparse matrix in compressed-row form.
///
/// Row r holds the entries `starts[r]..starts[r + 1]`; entry e is
/// `vals[e]` at column `cols[e]`. The indices are absolute, so a block of
/// rows is described by a sub-slice of `starts` over the same `cols` and
/// `vals`.
#[derive(Clone, Copy, Debug)]
pub struct Csr<'a, T> {
    /// Row boundaries, non-decreasing; the matrix has `starts.len() − 1` rows.
    pub starts: &'a [usize],
    /// The column of each entry.
    pub cols: &'a [u32],
    /// The value of each entry (as many as `cols`).
    pub vals: &'a [T],
}

impl<T> Csr<'_, T> {
    /// Rows of the matrix.
    pub fn rows(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }
}

/// `C ← S·A` (overwrites C) on the chosen path.
///
/// Shapes: S has `c.rows` rows and columns indexing rows of A; A is
/// `(a.rows, width)`, C is `(c.rows, width)`, both with their own row stride.
///
/// # Panics
/// On a shape mismatch or a column index out of range (see
/// [`scalar::check_spmm`]), or if `isa` is not available on this CPU.
pub fn spmm(isa: Isa, s: Csr<'_, f32>, a: MatRef<'_, f32>, c: MatMut<'_, f32>) {
    scalar::check_spmm(&s, &a, &c);
    match checked(isa) {
        Isa::Scalar => scalar::spmm_unchecked(s, a, c),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `checked` asserted that this CPU runs AVX2 + FMA.
            unsafe { avx2::spmm(s, a, c) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `checked` asserted that this CPU runs AVX-512F.
            unsafe { avx512::spmm(s, a, c) }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            // SAFETY: `checked` asserted that this CPU runs NEON.
            unsafe { neon::spmm(s, a, c) }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => {
            // SAFETY: `checked` asserted the path, which this build compiles
            // in (SIMD128 is a compile-time feature).
            #[allow(unused_unsafe)]
            unsafe {
                simd128::spmm(s, a, c)
            }
        }
        #[allow(unreachable_patterns)]
        _ => unreachable!("kernel path {isa} is not built for this target"),
    }
}

/// `out[e − starts[0]] = X[r, :]·Y[cols[e], :]` for every entry e of every
/// row r of the pattern (`starts`, `cols`), on the chosen path.
///
/// Shapes: X is `(starts.len() − 1, width)`, Y is `(y.rows, width)`; `out`
/// holds one value per entry of the rows, `starts[rows] − starts[0]`.
///
/// # Panics
/// On a shape mismatch or a column index out of range (see
/// [`scalar::check_sddmm`]), or if `isa` is not available on this CPU.
pub fn sddmm(
    isa: Isa,
    starts: &[usize],
    cols: &[u32],
    x: MatRef<'_, f32>,
    y: MatRef<'_, f32>,
    out: &mut [f32],
) {
    scalar::check_sddmm(starts, cols, &x, &y, out.len());
    match checked(isa) {
        Isa::Scalar => scalar::sddmm_unchecked(starts, cols, x, y, out),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: `checked` asserted that this CPU runs AVX2 + FMA.
            unsafe { avx2::sddmm(starts, cols, x, y, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            // SAFETY: `checked` asserted that this CPU runs AVX-512F.
            unsafe { avx512::sddmm(starts, cols, x, y, out) }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            // SAFETY: `checked` asserted that this CPU runs NEON.
            unsafe { neon::sddmm(starts, cols, x, y, out) }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => {
            // SAFETY: `checked` asserted the path, which this build compiles
            // in (SIMD128 is a compile-time feature).
            #[allow(unused_unsafe)]
            unsafe {
                simd128::sddmm(starts, cols, x, y, out)
            }
        }
        #[allow(unreachable_patterns)]
        _ => unreachable!("kernel path {isa} is not built for this target"),
    }
}

/// `dst ← srcᵀ`: `dst[c, r] = src[r, c]` for `src: (rows, cols)` and
/// `dst: (cols, rows)`, each with its own row stride; the values are moved
/// bit for bit.
///
/// The SIMD paths gather one column of 16 (AVX-512) or 8 (AVX2) source rows
/// and store it as one destination row segment, so every store is a full
/// vector and the gathered lines stay in L1 for the next columns; the last
/// rows go element by element. A source stride too large for 32-bit gather
/// offsets takes the scalar path.
///
/// # Panics
/// On a shape mismatch (see [`scalar::check_transpose`]), or if `isa` is not
/// available on this CPU.
pub fn transpose(isa: Isa, src: MatRef<'_, f32>, dst: MatMut<'_, f32>) {
    scalar::check_transpose(&src, &dst);
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    let gather_ok = src
        .ld
        .checked_mul(16)
        .is_some_and(|v| v <= i32::MAX as usize);
    match checked(isa) {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if gather_ok => {
            // SAFETY: `checked` asserted that this CPU runs AVX2 + FMA.
            unsafe { avx2::transpose(src, dst) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if gather_ok => {
            // SAFETY: `checked` asserted that this CPU runs AVX-512F.
            unsafe { avx512::transpose(src, dst) }
        }
        _ => scalar::transpose_unchecked(src, dst),
    }
}

/// Returns `isa` after asserting that this CPU can run it.
fn checked(isa: Isa) -> Isa {
    assert!(
        isa.is_available(),
        "kernel path {isa} is not available on this CPU"
    );
    isa
}
