//! The dense layer: `h = act(x·Wᵀ + b)` and its backward pass.
//!
//! Shapes (llm.c style): x: (batch, in), W: (out, in), b: (out), h: (batch, out).
//! A tied decoder layer uses an encoder weight `E: (in, out)` as `W = Eᵀ`.

use crate::kernels::{Activation, Epilogue, MatMut, MatRef, Real};

/// How a layer holds its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightUse {
    /// W is stored as `(out, in)`.
    Own,
    /// W = Eᵀ with E stored as `(in, out)` (tied to an encoder layer).
    Tied,
}

/// The weight as a GEMM operand `Wᵀ: (in, out)` for the forward product.
fn w_t<'a, T: Copy>(w: &'a [T], out: usize, inp: usize, use_: WeightUse) -> MatRef<'a, T> {
    match use_ {
        WeightUse::Own => MatRef::new(w, out, inp).t(),
        WeightUse::Tied => MatRef::new(w, inp, out),
    }
}

/// Forward: `h ← act(x·Wᵀ + b)` in one GEMM with a fused epilogue
/// (writes `h`; `x: (batch, in)`, `h: (batch, out)`).
#[allow(clippy::too_many_arguments)]
pub fn dense_forward<T: Real>(
    h: &mut [T],
    x: &[T],
    w: &[T],
    b: &[T],
    batch: usize,
    inp: usize,
    out: usize,
    act: Activation,
    use_: WeightUse,
) {
    T::gemm(
        T::ONE,
        MatRef::new(x, batch, inp),
        w_t(w, out, inp, use_),
        T::ZERO,
        MatMut::new(h, batch, out),
        Epilogue::bias_act(b, act),
    );
}

/// Backward, given `dz = ∂L/∂z: (batch, out)`:
/// - `dw (+)= dzᵀ·x` (`(out, in)`; for a tied layer `dE (+)= xᵀ·dz`, `(in, out)`),
///   overwriting when `accumulate` is false and adding otherwise;
/// - `db ← Σ_batch dz` (overwrites);
/// - `dx ← dz·W` (`(batch, in)`, overwrites) when `dx` is given.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward<T: Real>(
    dw: &mut [T],
    db: &mut [T],
    dx: Option<&mut [T]>,
    dz: &[T],
    x: &[T],
    w: &[T],
    batch: usize,
    inp: usize,
    out: usize,
    use_: WeightUse,
    accumulate: bool,
) {
    let beta = if accumulate { T::ONE } else { T::ZERO };
    let dz_m = MatRef::new(dz, batch, out);
    let x_m = MatRef::new(x, batch, inp);
    match use_ {
        WeightUse::Own => T::gemm(
            T::ONE,
            dz_m.t(),
            x_m,
            beta,
            MatMut::new(dw, out, inp),
            Epilogue::NONE,
        ),
        WeightUse::Tied => T::gemm(
            T::ONE,
            x_m.t(),
            dz_m,
            beta,
            MatMut::new(dw, inp, out),
            Epilogue::NONE,
        ),
    }
    T::col_sum(dz, out, db);
    if let Some(dx) = dx {
        // dx = dz · W, with W = (Wᵀ)ᵀ.
        T::gemm(
            T::ONE,
            dz_m,
            w_t(w, out, inp, use_).t(),
            T::ZERO,
            MatMut::new(dx, batch, inp),
            Epilogue::NONE,
        );
    }
}
