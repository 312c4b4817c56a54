//! [`Real`]: the float types the model maths is generic over.
//!
//! Training runs in `f32` on the dispatched SIMD kernels. Gradient checks run
//! the very same model code in `f64`, where every kernel is the portable scalar
//! twin. The trait carries both the arithmetic the model needs and the hooks
//! into the kernels, so `nn` is written once.

use super::elementwise::{self, AdamHyper, NoiseStreams};
use super::gemm::{self, Epilogue, MatMut, MatRef};
use super::sparse::{self, Csr};
use super::{Activation, Isa};
use std::fmt::{Debug, Display};
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point element type (`f32` or `f64`).
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + Display
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Machine epsilon (unit roundoff × 2).
    const EPSILON: Self;
    /// The smallest positive normal value.
    const MIN_POSITIVE: Self;
    /// Converts (rounding) from f64.
    fn from_f64(v: f64) -> Self;
    /// Widens to f64.
    fn to_f64(self) -> f64;
    /// eˣ.
    fn exp(self) -> Self;
    /// ln x.
    fn ln(self) -> Self;
    /// ln(1 + x).
    fn ln_1p(self) -> Self;
    /// |x|.
    fn abs(self) -> Self;
    /// √x.
    fn sqrt(self) -> Self;
    /// tanh x.
    fn tanh(self) -> Self;
    /// Larger of two (NaN-ignoring, as `f32::max`).
    fn max(self, o: Self) -> Self;
    /// Smaller of two (NaN-ignoring, as `f32::min`).
    fn min(self, o: Self) -> Self;
    /// Neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// NaN.
    fn is_nan(self) -> bool;

    /// `C ← act(α·op(A)·op(B) + β·C + bias)`; see [`gemm::gemm`].
    fn gemm(
        alpha: Self,
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        beta: Self,
        c: MatMut<'_, Self>,
        epi: Epilogue<'_, Self>,
    );
    /// [`Real::gemm`] with C split between threads in strips of rows
    /// ([`gemm::gemm_rows`]); the same values.
    fn gemm_rows(
        alpha: Self,
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        beta: Self,
        c: MatMut<'_, Self>,
        epi: Epilogue<'_, Self>,
    ) {
        Self::gemm(alpha, a, b, beta, c, epi)
    }
    /// `C ← S·A` for a sparse S; see [`sparse::spmm`].
    fn spmm(s: Csr<'_, Self>, a: MatRef<'_, Self>, c: MatMut<'_, Self>);
    /// Dot products of X's rows with gathered rows of Y; see [`sparse::sddmm`].
    fn sddmm(
        starts: &[usize],
        cols: &[u32],
        x: MatRef<'_, Self>,
        y: MatRef<'_, Self>,
        out: &mut [Self],
    );
    /// `dst ← srcᵀ`; see [`sparse::transpose`].
    fn transpose(src: MatRef<'_, Self>, dst: MatMut<'_, Self>);
    /// In place `x ← act(x)`; see [`elementwise::act_forward`].
    fn act_forward(act: Activation, x: &mut [Self]);
    /// In place `dh ← dh ⊙ act'(h)`; see [`elementwise::act_backward`].
    fn act_backward(act: Activation, h: &[Self], dh: &mut [Self]);
    /// Adds `bias` to every row; see [`elementwise::bias_add`].
    fn bias_add(x: &mut [Self], cols: usize, bias: &[Self]);
    /// Column sums in row order; see [`elementwise::col_sum`].
    fn col_sum(x: &[Self], cols: usize, out: &mut [Self]);
    /// Σ BCE from logits and its scaled gradient; see [`elementwise::bce_logits`].
    fn bce_logits(z: &[Self], x: &[Self], dz: Option<&mut [Self]>, scale: Self) -> f64;
    /// Σ (y − x)² and its scaled gradient; see [`elementwise::sq_err`].
    fn sq_err(y: &[Self], x: &[Self], dy: Option<&mut [Self]>, scale: Self) -> f64;
    /// Σ |h| and `dh += scale·sign(h)`; see [`elementwise::l1`].
    fn l1(h: &[Self], dh: Option<&mut [Self]>, scale: Self) -> f64;
    /// `y ← y + a·x`; see [`elementwise::axpy`].
    fn axpy(a: Self, x: &[Self], y: &mut [Self]);
    /// Σ x²; see [`elementwise::sum_sq`].
    fn sum_sq(x: &[Self]) -> f64;
    /// One fused Adam update; see [`elementwise::adam_step`].
    fn adam_step(p: &mut [Self], g: &[Self], m: &mut [Self], v: &mut [Self], h: &AdamHyper);
    /// One fused Adam update on `g0 + g1`; see [`elementwise::adam_step_sum`].
    fn adam_step_sum(
        p: &mut [Self],
        g0: &[Self],
        g1: &[Self],
        m: &mut [Self],
        v: &mut [Self],
        h: &AdamHyper,
    );
    /// One SGD-with-momentum update; see [`elementwise::sgd_momentum_step`].
    fn sgd_momentum_step(p: &mut [Self], g: &[Self], vel: &mut [Self], lr: f64, momentum: f64);
    /// `out ← clip(x + std·N(0, 1), 0, 1)`; see [`elementwise::gaussian_noise`].
    fn gaussian_noise(streams: &mut NoiseStreams, x: &[Self], out: &mut [Self], std: Self);
    /// `out ← x` with each value zeroed with probability p; see [`elementwise::mask_noise`].
    fn mask_noise(streams: &mut NoiseStreams, x: &[Self], out: &mut [Self], p: f64);
}

macro_rules! float_basics {
    ($t:ty) => {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        const EPSILON: Self = <$t>::EPSILON;
        const MIN_POSITIVE: Self = <$t>::MIN_POSITIVE;
        #[inline(always)]
        fn from_f64(v: f64) -> Self {
            v as $t
        }
        #[inline(always)]
        fn to_f64(self) -> f64 {
            self as f64
        }
        #[inline(always)]
        fn exp(self) -> Self {
            <$t>::exp(self)
        }
        #[inline(always)]
        fn ln(self) -> Self {
            <$t>::ln(self)
        }
        #[inline(always)]
        fn ln_1p(self) -> Self {
            <$t>::ln_1p(self)
        }
        #[inline(always)]
        fn abs(self) -> Self {
            <$t>::abs(self)
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            <$t>::sqrt(self)
        }
        #[inline(always)]
        fn tanh(self) -> Self {
            <$t>::tanh(self)
        }
        #[inline(always)]
        fn max(self, o: Self) -> Self {
            <$t>::max(self, o)
        }
        #[inline(always)]
        fn min(self, o: Self) -> Self {
            <$t>::min(self, o)
        }
        #[inline(always)]
        fn is_finite(self) -> bool {
            <$t>::is_finite(self)
        }
        #[inline(always)]
        fn is_nan(self) -> bool {
            <$t>::is_nan(self)
        }
    };
}

impl Real for f32 {
    float_basics!(f32);

    fn gemm(
        alpha: f32,
        a: MatRef<'_, f32>,
        b: MatRef<'_, f32>,
        beta: f32,
        c: MatMut<'_, f32>,
        epi: Epilogue<'_, f32>,
    ) {
        gemm::gemm(alpha, a, b, beta, c, epi)
    }
    fn gemm_rows(
        alpha: f32,
        a: MatRef<'_, f32>,
        b: MatRef<'_, f32>,
        beta: f32,
        c: MatMut<'_, f32>,
        epi: Epilogue<'_, f32>,
    ) {
        gemm::gemm_rows(alpha, a, b, beta, c, epi)
    }
    fn spmm(s: Csr<'_, f32>, a: MatRef<'_, f32>, c: MatMut<'_, f32>) {
        sparse::spmm(Isa::active(), s, a, c)
    }
    fn sddmm(
        starts: &[usize],
        cols: &[u32],
        x: MatRef<'_, f32>,
        y: MatRef<'_, f32>,
        out: &mut [f32],
    ) {
        sparse::sddmm(Isa::active(), starts, cols, x, y, out)
    }
    fn transpose(src: MatRef<'_, f32>, dst: MatMut<'_, f32>) {
        sparse::transpose(Isa::active(), src, dst)
    }
    fn act_forward(act: Activation, x: &mut [f32]) {
        elementwise::act_forward(Isa::active(), act, x)
    }
    fn act_backward(act: Activation, h: &[f32], dh: &mut [f32]) {
        elementwise::act_backward(Isa::active(), act, h, dh)
    }
    fn bias_add(x: &mut [f32], cols: usize, bias: &[f32]) {
        elementwise::bias_add(Isa::active(), x, cols, bias)
    }
    fn col_sum(x: &[f32], cols: usize, out: &mut [f32]) {
        elementwise::col_sum(Isa::active(), x, cols, out)
    }
    fn bce_logits(z: &[f32], x: &[f32], dz: Option<&mut [f32]>, scale: f32) -> f64 {
        elementwise::bce_logits(Isa::active(), z, x, dz, scale)
    }
    fn sq_err(y: &[f32], x: &[f32], dy: Option<&mut [f32]>, scale: f32) -> f64 {
        elementwise::sq_err(Isa::active(), y, x, dy, scale)
    }
    fn l1(h: &[f32], dh: Option<&mut [f32]>, scale: f32) -> f64 {
        elementwise::l1(Isa::active(), h, dh, scale)
    }
    fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        elementwise::axpy(Isa::active(), a, x, y)
    }
    fn sum_sq(x: &[f32]) -> f64 {
        elementwise::sum_sq(Isa::active(), x)
    }
    fn adam_step(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamHyper) {
        elementwise::adam_step(Isa::active(), p, g, m, v, h)
    }
    fn adam_step_sum(
        p: &mut [f32],
        g0: &[f32],
        g1: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        h: &AdamHyper,
    ) {
        elementwise::adam_step_sum(Isa::active(), p, g0, g1, m, v, h)
    }
    fn sgd_momentum_step(p: &mut [f32], g: &[f32], vel: &mut [f32], lr: f64, momentum: f64) {
        elementwise::sgd_momentum_step(Isa::active(), p, g, vel, lr, momentum)
    }
    fn gaussian_noise(streams: &mut NoiseStreams, x: &[f32], out: &mut [f32], std: f32) {
        elementwise::gaussian_noise(Isa::active(), streams, x, out, std)
    }
    fn mask_noise(streams: &mut NoiseStreams, x: &[f32], out: &mut [f32], p: f64) {
        elementwise::mask_noise(Isa::active(), streams, x, out, p)
    }
}

impl Real for f64 {
    float_basics!(f64);

    fn gemm(
        alpha: f64,
        a: MatRef<'_, f64>,
        b: MatRef<'_, f64>,
        beta: f64,
        c: MatMut<'_, f64>,
        epi: Epilogue<'_, f64>,
    ) {
        gemm::reference::gemm(alpha, a, b, beta, c, epi)
    }
    fn spmm(s: Csr<'_, f64>, a: MatRef<'_, f64>, c: MatMut<'_, f64>) {
        sparse::scalar::spmm(s, a, c)
    }
    fn sddmm(
        starts: &[usize],
        cols: &[u32],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        out: &mut [f64],
    ) {
        sparse::scalar::sddmm(starts, cols, x, y, out)
    }
    fn transpose(src: MatRef<'_, f64>, dst: MatMut<'_, f64>) {
        sparse::scalar::transpose(src, dst)
    }
    fn act_forward(act: Activation, x: &mut [f64]) {
        elementwise::scalar::act_forward(act, x)
    }
    fn act_backward(act: Activation, h: &[f64], dh: &mut [f64]) {
        elementwise::scalar::act_backward(act, h, dh)
    }
    fn bias_add(x: &mut [f64], cols: usize, bias: &[f64]) {
        elementwise::scalar::bias_add(x, cols, bias)
    }
    fn col_sum(x: &[f64], cols: usize, out: &mut [f64]) {
        elementwise::scalar::col_sum(x, cols, out)
    }
    fn bce_logits(z: &[f64], x: &[f64], dz: Option<&mut [f64]>, scale: f64) -> f64 {
        elementwise::scalar::bce_logits(z, x, dz, scale)
    }
    fn sq_err(y: &[f64], x: &[f64], dy: Option<&mut [f64]>, scale: f64) -> f64 {
        elementwise::scalar::sq_err(y, x, dy, scale)
    }
    fn l1(h: &[f64], dh: Option<&mut [f64]>, scale: f64) -> f64 {
        elementwise::scalar::l1(h, dh, scale)
    }
    fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
        elementwise::scalar::axpy(a, x, y)
    }
    fn sum_sq(x: &[f64]) -> f64 {
        elementwise::scalar::sum_sq(x)
    }
    fn adam_step(p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], h: &AdamHyper) {
        elementwise::scalar::adam_step(p, g, m, v, h)
    }
    fn adam_step_sum(
        p: &mut [f64],
        g0: &[f64],
        g1: &[f64],
        m: &mut [f64],
        v: &mut [f64],
        h: &AdamHyper,
    ) {
        elementwise::scalar::adam_step_sum(p, g0, g1, m, v, h)
    }
    fn sgd_momentum_step(p: &mut [f64], g: &[f64], vel: &mut [f64], lr: f64, momentum: f64) {
        elementwise::scalar::sgd_momentum_step(p, g, vel, lr, momentum)
    }
    fn gaussian_noise(streams: &mut NoiseStreams, x: &[f64], out: &mut [f64], std: f64) {
        elementwise::scalar::gaussian_noise(streams, x, out, std)
    }
    fn mask_noise(streams: &mut NoiseStreams, x: &[f64], out: &mut [f64], p: f64) {
        elementwise::scalar::mask_noise(streams, x, out, p)
    }
}
