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

/// The largest batch computed as one part whose products, loss and update
/// the threads share (with [`backward_cut`]'s sums and [`bce_in_halves`]);
/// larger batches of the models that allow it run as two halves side by
/// side (`train::step`'s parts, from `SMALL_BATCH + 1` samples).
pub const SMALL_BATCH: usize = 64;

/// Where the product `dx ← dz·W` through an own (untied) weight `(out, in)`
/// at batch `batch` is cut along `out` into two sums, one per half of the
/// weight's rows ([`crate::parallel::owned_half`]), added at the end: for
/// small batches (≤ [`SMALL_BATCH`]) through wide layers (`out` ≥ 256) whose products
/// the threads share ([`crate::kernels::gemm::may_split`]), where the
/// product is one weight-sized read. Two threads then each read
/// their own rows of W (the rows their forward strips, gradient strips and
/// optimizer halves hold) instead of every row's half of the other's: on
/// the W1 step the decoder's Adam halves fell from 76 to 20–30 µs. The cut
/// depends on the shapes alone, so the sums are the same on any thread count.
/// (A product cut while the rest of the step stays on one thread only moves
/// the weight between the cores: the shallow 784-32-784 model's decoder
/// product cut alone took its batch-32 step from 130 to 190–230 µs; with
/// its other products and its update shared as well, 106 µs.)
pub fn backward_cut(batch: usize, inp: usize, out: usize) -> Option<usize> {
    let wide =
        batch <= SMALL_BATCH && out >= 256 && crate::kernels::gemm::may_split(batch, inp, out);
    wide.then(|| crate::parallel::owned_half(out))
}

/// [`Real::bce_logits`] over `z, x: (rows, cols)` (at most [`SMALL_BATCH`] rows) in two
/// parts, columns `[0, cut)` and `[cut, cols)` of every row, side by side
/// while the pool is kept awake: each thread's part is the columns its
/// forward strip wrote and its weight-gradient rows read. The loss is the
/// first part's rows summed in order, plus the second's: the same on any
/// thread count. (W3 at batch 32, two threads: 104–106 → 101–102 µs a step,
/// W1 277–281 → 273–276; on one thread, the row-by-row passes cost both
/// about 1 %.)
pub fn bce_in_halves<T: Real>(
    z: &[T],
    x: &[T],
    dz: Option<&mut [T]>,
    scale: T,
    cols: usize,
    cut: usize,
) -> f64 {
    let rows = z.len() / cols;
    assert!(rows <= SMALL_BATCH && rows * cols == z.len() && x.len() == z.len());
    let mut lo: [&mut [T]; SMALL_BATCH] = std::array::from_fn(|_| <&mut [T]>::default());
    let mut hi: [&mut [T]; SMALL_BATCH] = std::array::from_fn(|_| <&mut [T]>::default());
    let grad = dz.is_some();
    if let Some(dz) = dz {
        for (i, row) in dz.chunks_mut(cols).enumerate() {
            (lo[i], hi[i]) = row.split_at_mut(cut);
        }
    }
    let part = |segs: &mut [&mut [T]], cols_of: std::ops::Range<usize>| -> f64 {
        let mut sum = 0.0;
        for (i, seg) in segs.iter_mut().enumerate().take(rows) {
            let at = i * cols + cols_of.start..i * cols + cols_of.end;
            let d = if grad { Some(&mut **seg) } else { None };
            sum += T::bce_logits(&z[at.clone()], &x[at], d, scale);
        }
        sum
    };
    let (a, b) = if crate::parallel::awake() {
        crate::parallel::join(|| part(&mut lo, 0..cut), || part(&mut hi, cut..cols))
    } else {
        (part(&mut lo, 0..cut), part(&mut hi, cut..cols))
    };
    a + b
}

/// Backward, given `dz = ∂L/∂z: (batch, out)`:
/// - `dw (+)= dzᵀ·x` (`(out, in)`; for a tied layer `dE (+)= xᵀ·dz`, `(in, out)`),
///   overwriting when `accumulate` is false and adding otherwise;
/// - `db ← Σ_batch dz` (overwrites);
/// - `dx ← dz·W` (`(batch, in)`, overwrites) when `dx` is given, in two sums
///   when [`backward_cut`] says so (the second in `dx_part`, at least
///   `batch × in` values then), side by side while the pool is kept awake.
///
/// The weight gradient is split between threads by its rows
/// ([`Real::gemm_rows`]).
#[allow(clippy::too_many_arguments)]
pub fn dense_backward<T: Real>(
    dw: &mut [T],
    db: &mut [T],
    dx: Option<&mut [T]>,
    dx_part: &mut [T],
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
        WeightUse::Own => T::gemm_rows(
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
    let Some(dx) = dx else { return };
    if let (WeightUse::Own, Some(h)) = (use_, backward_cut(batch, inp, out)) {
        let part = &mut dx_part[..batch * inp];
        let (dz_lo, dz_hi) = (
            MatRef::new(dz, batch, h).with_ld(out),
            MatRef::new(&dz[h..], batch, out - h).with_ld(out),
        );
        let (w_lo, w_hi) = (
            MatRef::new(w, h, inp),
            MatRef::new(&w[h * inp..], out - h, inp),
        );
        let mut lo = || {
            T::gemm(
                T::ONE,
                dz_lo,
                w_lo,
                T::ZERO,
                MatMut::new(dx, batch, inp),
                Epilogue::NONE,
            )
        };
        let mut hi = || {
            T::gemm(
                T::ONE,
                dz_hi,
                w_hi,
                T::ZERO,
                MatMut::new(part, batch, inp),
                Epilogue::NONE,
            )
        };
        if crate::parallel::awake() {
            crate::parallel::join(
                || crate::parallel::as_part(lo),
                || crate::parallel::as_part(hi),
            );
        } else {
            lo();
            hi();
        }
        T::axpy(T::ONE, part, dx);
        return;
    }
    {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::{KeepAwake, Policy};

    /// Runs `f` on a new pool of `threads` threads, the others spinning for
    /// work (as in a kept-awake training loop) before it starts.
    fn on_awake_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let awake = KeepAwake::with_policy(Policy::Split);
            let t = std::time::Instant::now();
            while threads > 1 && !crate::parallel::awake() {
                assert!(t.elapsed().as_secs() < 10, "no spinner started");
                awake.beat();
                std::thread::yield_now();
            }
            f()
        })
    }

    /// The cut engages for the deep and shallow models' decoders at batch
    /// 32: not for a small product, a large batch or a narrow layer.
    #[test]
    fn backward_cut_by_shape() {
        assert_eq!(backward_cut(32, 128, 784), Some(384));
        assert_eq!(backward_cut(64, 1024, 784), Some(384));
        assert_eq!(backward_cut(32, 32, 784), Some(384));
        assert_eq!(backward_cut(16, 32, 784), None);
        assert_eq!(backward_cut(128, 128, 784), None);
        assert_eq!(backward_cut(32, 784, 128), None);
    }

    /// The loss in two column parts: the whole pass's gradient bit for bit,
    /// its loss to rounding, the same bits on one thread and on two kept
    /// awake, and the same loss without a gradient.
    #[test]
    fn bce_in_halves_matches_one_pass() {
        let (rows, cols, cut) = (33, 333, 160);
        let mut r = crate::rng::Rng::new(5);
        let z: Vec<f32> = (0..rows * cols).map(|_| 8.0 * r.next_f32() - 4.0).collect();
        let x: Vec<f32> = (0..rows * cols).map(|_| r.next_f32()).collect();
        let mut whole = vec![0.0f32; rows * cols];
        let want = f32::bce_logits(&z, &x, Some(&mut whole), 0.5);
        let run = |threads: usize| {
            let mut dz = vec![f32::NAN; rows * cols];
            let loss = on_awake_pool(threads, || {
                bce_in_halves(&z, &x, Some(&mut dz), 0.5, cols, cut)
            });
            (loss, dz)
        };
        let (l1, d1) = run(1);
        let (l2, d2) = run(2);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&d1) == bits(&whole) && bits(&d2) == bits(&whole));
        assert_eq!(l1.to_bits(), l2.to_bits());
        assert!((l1 - want).abs() <= 1e-12 * want.abs());
        let none = bce_in_halves(&z, &x, None, 0.5, cols, cut);
        assert_eq!(none.to_bits(), l1.to_bits());
    }

    /// `dx` of a cut layer is the sum of its two halves' products, bit for
    /// bit, on one thread and on two kept awake, and close to the f64
    /// product; the weight gradient does not depend on the threads either.
    #[test]
    fn cut_backward_is_the_sum_of_its_halves() {
        let (batch, inp, out) = (32, 128, 784);
        let h = backward_cut(batch, inp, out).unwrap();
        let mut r = crate::rng::Rng::new(3);
        let mut draw = |n: usize| (0..n).map(|_| r.next_f32() - 0.5).collect::<Vec<f32>>();
        let (dz, x, w) = (draw(batch * out), draw(batch * inp), draw(out * inp));
        let run = |threads: usize| {
            let (mut dw, mut db, mut dx) =
                (vec![0.0; out * inp], vec![0.0; out], vec![0.0; batch * inp]);
            let mut part = vec![f32::NAN; batch * inp];
            on_awake_pool(threads, || {
                dense_backward(
                    &mut dw,
                    &mut db,
                    Some(&mut dx),
                    &mut part,
                    &dz,
                    &x,
                    &w,
                    batch,
                    inp,
                    out,
                    WeightUse::Own,
                    false,
                );
            });
            (dw, dx)
        };
        let (dw1, dx1) = run(1);
        let (dw2, dx2) = run(2);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&dx1) == bits(&dx2) && bits(&dw1) == bits(&dw2));
        // The two sums, by hand.
        let mut lo = vec![0.0f32; batch * inp];
        let mut hi = vec![0.0f32; batch * inp];
        f32::gemm(
            1.0,
            MatRef::new(&dz, batch, h).with_ld(out),
            MatRef::new(&w, h, inp),
            0.0,
            MatMut::new(&mut lo, batch, inp),
            Epilogue::NONE,
        );
        f32::gemm(
            1.0,
            MatRef::new(&dz[h..], batch, out - h).with_ld(out),
            MatRef::new(&w[h * inp..], out - h, inp),
            0.0,
            MatMut::new(&mut hi, batch, inp),
            Epilogue::NONE,
        );
        let sum: Vec<f32> = lo.iter().zip(&hi).map(|(a, b)| a + b).collect();
        assert!(bits(&dx1) == bits(&sum));
        for i in 0..batch {
            for j in 0..inp {
                let exact: f64 = (0..out)
                    .map(|o| f64::from(dz[i * out + o]) * f64::from(w[o * inp + j]))
                    .sum();
                assert!(
                    (f64::from(dx1[i * inp + j]) - exact).abs() < 1e-4,
                    "dx[{i}][{j}]"
                );
            }
        }
    }
}
