//! The triple-loop GEMM: the plain definition every fast path is checked
//! against, and the GEMM of the `f64` model.

use super::{Epilogue, MatMut, MatRef, apply_epilogue, check_shapes};
use crate::kernels::Real;

/// `C ← act(α·op(A)·op(B) + β·C + bias)` by the definition: each element is
/// Σₚ a(i,p)·b(p,j) with p increasing. β = 0 ignores C (NaN in C vanishes).
///
/// # Panics
/// On any shape mismatch.
pub fn gemm<T: Real>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
    epi: Epilogue<'_, T>,
) {
    let (m, n, k) = check_shapes(&a, &b, &c, &epi);
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::ZERO;
            for p in 0..k {
                acc += a.at(i, p) * b.at(p, j);
            }
            let idx = i * c.ld + j;
            c.data[idx] = if beta == T::ZERO {
                alpha * acc
            } else {
                alpha * acc + beta * c.data[idx]
            };
        }
    }
    apply_epilogue(&mut c, &epi);
}
