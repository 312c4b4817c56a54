//! 2-D convolution (PyTorch `Conv2d`): `y = act(conv(x, W) + b)` and its
//! backward pass, by im2col + GEMM and col2im, or for stride 1 on shifted
//! zero-padded planes ([`super::conv_shift`], chosen per pass by [`ConvAlgo`]).
//!
//! Layout NCHW, row-major: x: (batch, in_c, in_h, in_w), W: (out_c, in_c, kh,
//! kw) exactly as PyTorch stores it, b: (out_c), y: (batch, out_c, out_h, out_w)
//! with `out = ⌊(in + 2·pad − k)/stride⌋ + 1`. Cross-correlation, as PyTorch:
//!
//! ```text
//! z[n,o,i,j] = b[o] + Σ_{c,u,v} W[o,c,u,v] · x[n, c, i·s − p + u, j·s − p + v]
//! ```
//!
//! (x outside the image is 0). With K = in_c·kh·kw and P = out_h·out_w, the
//! im2col matrix of one sample is `col: (K, P)`, `col[(c,u,v), (i,j)] =
//! x[c, i·s − p + u, j·s − p + v]`, W is the `(out_c, K)` matrix as stored, and
//! `z_n = W·col_n + b` is one GEMM writing the sample's NCHW block directly.
//! Backward: `dW = Σ_n dz_n·col_nᵀ`, `db = Σ_{n,P} dz`, `dcol_n = Wᵀ·dz_n` and
//! `dx_n = col2im(dcol_n)` (the adjoint of im2col: every column entry adds back
//! onto the pixel it was copied from).
//!
//! Work is split over samples: the batch is cut into at most
//! [`MAX_GROUPS`] contiguous groups, each with its own buffers and partial
//! dW, db, run as rayon tasks; the partials are summed in group order. The
//! grouping depends only on the batch size, so results are bit-identical for
//! any thread count. (Measured earlier, this beat one whole-batch im2col + one
//! big GEMM, which must permute its `(out_c, batch·P)` result into NCHW.)
//!
//! im2col is wasteful in two places: with one output channel the GEMMs have
//! m = 1 (forward, dW) or k = 1 (dcol), and for 14×14 images with 144 taps it
//! copies 144·14 short rows per sample. The shifted planes avoid both. At
//! batch 64 in f32 on two Ice Lake cores (`cargo bench --bench conv`, load
//! about 2, forward / backward in ms):
//!
//! ```text
//!                      im2col      shifted     ConvAlgo::Auto takes
//! Conv(1→16)  28×28   0.60/1.19   0.68/5.45   im2col / im2col
//! Conv(16→8)  14×14   1.27/1.99   0.45/0.77   shifted / shifted
//! Conv(8→16)  14×14   0.52/0.77   0.34/1.19   shifted / im2col
//! Conv(16→1)  28×28   1.76/3.13   0.40/0.72   shifted / shifted
//! ```

use super::conv_shift::{self, ShiftBufs};
use crate::error::{Error, Result};
use crate::kernels::{Activation, Epilogue, MatMut, MatRef, Real};
use rayon::prelude::*;

/// The most sample groups a batch is split into (the parallelism and the
/// number of partial dW buffers).
pub const MAX_GROUPS: usize = 8;

/// The geometry of a 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
}

impl Conv2dShape {
    /// A validated shape.
    ///
    /// # Errors
    /// [`Error::Config`] as for [`Conv2dShape::validate`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_c: usize,
        out_c: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
        in_h: usize,
        in_w: usize,
    ) -> Result<Conv2dShape> {
        let s = Conv2dShape {
            in_c,
            out_c,
            kh,
            kw,
            stride,
            pad,
            in_h,
            in_w,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks that the convolution exists: every size ≥ 1, the kernel fits in
    /// the padded input (`k ≤ in + 2·pad`), and every buffer size fits in
    /// `usize`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("conv.in_channels", self.in_c),
            ("conv.out_channels", self.out_c),
            ("conv.kernel_h", self.kh),
            ("conv.kernel_w", self.kw),
            ("conv.stride", self.stride),
            ("conv.in_h", self.in_h),
            ("conv.in_w", self.in_w),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(Error::config(name, "must be at least 1"));
            }
        }
        for (name, k, n) in [
            ("conv.kernel_h", self.kh, self.in_h),
            ("conv.kernel_w", self.kw, self.in_w),
        ] {
            let padded = self
                .pad
                .checked_mul(2)
                .and_then(|p| p.checked_add(n))
                .ok_or_else(|| Error::config("conv.padding", "too large"))?;
            if k > padded {
                return Err(Error::config(
                    name,
                    format!(
                        "kernel {k} is larger than the padded input {n} + 2·{} = {padded}",
                        self.pad
                    ),
                ));
            }
        }
        // Sizes, kernels, strides and padding beyond this are never a real
        // convolution, and keeping them bounded keeps all the arithmetic below
        // far from overflow.
        const MAX_DIM: usize = 1 << 20;
        if [self.kh, self.kw, self.pad, self.stride]
            .iter()
            .any(|&v| v > 4096)
            || [self.in_c, self.out_c, self.in_h, self.in_w]
                .iter()
                .any(|&v| v > MAX_DIM)
        {
            return Err(Error::config(
                "conv",
                "kernel, stride and padding must be at most 4096, channels and sides at most 2^20",
            ));
        }
        let sizes = [
            [self.in_c, self.in_h, self.in_w],
            [self.out_c, self.out_h(), self.out_w()],
            [self.out_c, self.in_c, self.kh * self.kw],
            [self.in_c * self.kh, self.kw, self.out_h() * self.out_w()],
        ];
        if sizes.iter().any(|s| {
            s.iter()
                .try_fold(1usize, |a, &b| a.checked_mul(b))
                .is_none()
        }) {
            return Err(Error::config("conv", "buffer sizes overflow usize"));
        }
        Ok(())
    }

    /// Output height `⌊(in_h + 2·pad − kh)/stride⌋ + 1`.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad - self.kh) / self.stride + 1
    }

    /// Output width `⌊(in_w + 2·pad − kw)/stride⌋ + 1`.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad - self.kw) / self.stride + 1
    }

    /// Values of one input sample, `in_c·in_h·in_w`.
    pub fn in_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }

    /// Values of one output sample, `out_c·out_h·out_w`.
    pub fn out_len(&self) -> usize {
        self.out_c * self.out_h() * self.out_w()
    }

    /// Rows of the im2col matrix, K = `in_c·kh·kw` (also the weight's row length).
    pub fn k(&self) -> usize {
        self.in_c * self.kh * self.kw
    }

    /// Weight entries, `out_c·in_c·kh·kw`.
    pub fn weight_len(&self) -> usize {
        self.out_c * self.k()
    }
}

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    /// The measured best per pass: [`ConvAlgo::Shifted`] where it applies
    /// and pays (see [`ConvAlgo::uses_shifted`]), im2col otherwise.
    Auto,
    /// im2col + GEMM forward; GEMMs and col2im backward.
    Im2col,
    /// Shifted planes (`conv_shift`) in both passes whenever the stride is 1,
    /// im2col otherwise.
    Shifted,
}

impl ConvAlgo {
    /// Whether the (forward, backward) pass of `s` runs on shifted planes.
    /// `Auto` takes them for stride 1: in the forward pass with one output
    /// channel (where the GEMM would have m = 1) or when im2col would copy at
    /// least twice as many short image rows (`in_c·kh·kw` per output row) as
    /// padding the input and cropping the output do (`in_c + out_c`); in the
    /// backward pass with `out_c ≤ in_c` (D has no more rows than im2col).
    /// Either only where that pass's shifted planes are small
    /// ([`SHIFT_SMALL`] values) or within [`SHIFT_EXCESS`] times im2col's
    /// matrix: with a padding large beside the image the padded planes
    /// dwarf it (a 1×1 image under a kernel of 401 and padding 200: 26·10⁹
    /// values for the backward pass's D, 160,801 for im2col), so such a
    /// pass runs on im2col. The choice depends on the shape alone, so a
    /// model computes the same bits on every machine.
    pub fn uses_shifted(self, s: &Conv2dShape) -> (bool, bool) {
        if s.stride != 1 {
            return (false, false);
        }
        match self {
            ConvAlgo::Auto => (
                (s.out_c == 1 || s.k() >= 2 * (s.in_c + s.out_c)) && shift_pays(s, true),
                s.out_c <= s.in_c && shift_pays(s, false),
            ),
            ConvAlgo::Im2col => (false, false),
            ConvAlgo::Shifted => (true, true),
        }
    }
}

/// Shifted planes of one pass up to this many values (4 MB in f32) are
/// taken whatever im2col would need.
pub const SHIFT_SMALL: u64 = 1 << 20;

/// Past [`SHIFT_SMALL`], a pass's shifted planes are taken only when they
/// hold at most this many times the values of im2col's matrix.
pub const SHIFT_EXCESS: u64 = 16;

/// Whether the shifted planes of the forward (`fwd`) or backward pass of
/// `s` hold at most [`SHIFT_SMALL`] values or [`SHIFT_EXCESS`] times the
/// values of im2col's matrix (`k·out_h·out_w`, per sample).
fn shift_pays(s: &Conv2dShape, fwd: bool) -> bool {
    let shift = conv_shift::buffer_lens(s, fwd, !fwd)
        .iter()
        .fold(0u64, |a, &b| a.saturating_add(b));
    let col = (s.k() as u64)
        .saturating_mul(s.out_h() as u64)
        .saturating_mul(s.out_w() as u64);
    shift <= SHIFT_SMALL || shift <= col.saturating_mul(SHIFT_EXCESS)
}

/// One sample group's buffers: the im2col matrix (reused for dcol in the
/// backward pass), the shifted-plane buffers, and partial parameter gradients.
#[derive(Clone, Debug)]
struct Group<T> {
    col: Vec<T>,
    shift: ShiftBufs<T>,
    dw: Vec<T>,
    db: Vec<T>,
}

/// What a [`ConvScratch`] holds for `batch` samples of a shape computed by
/// an algorithm: its groups and, in values, each group's im2col matrix and
/// shifted-plane buffers, and the transposed weight of the shifted
/// backward pass.
#[derive(Clone, Copy, Debug)]
struct ScratchPlan {
    fwd_shift: bool,
    bwd_shift: bool,
    per_group: usize,
    groups: usize,
    col: u64,
    shift: [u64; 6],
    wt: u64,
}

impl ScratchPlan {
    fn of(batch: usize, s: &Conv2dShape, algo: ConvAlgo) -> ScratchPlan {
        let (fwd_shift, bwd_shift) = algo.uses_shifted(s);
        let n_groups = batch.clamp(1, MAX_GROUPS);
        let per_group = batch.div_ceil(n_groups).max(1);
        let p = (s.out_h() * s.out_w()) as u64;
        ScratchPlan {
            fwd_shift,
            bwd_shift,
            per_group,
            groups: batch.div_ceil(per_group).max(1),
            col: match fwd_shift && bwd_shift {
                true => 0,
                false => (s.k() as u64).saturating_mul(p),
            },
            shift: conv_shift::buffer_lens(s, fwd_shift, bwd_shift),
            wt: if bwd_shift { s.weight_len() as u64 } else { 0 },
        }
    }

    /// The values of every buffer (saturating): per group the im2col
    /// matrix, the shifted-plane buffers and the partial dW and db; the
    /// transposed weight once.
    fn values(&self, s: &Conv2dShape) -> u64 {
        let group = self
            .shift
            .iter()
            .fold(self.col, |a, &b| a.saturating_add(b))
            .saturating_add((s.weight_len() + s.out_c) as u64);
        (self.groups as u64)
            .saturating_mul(group)
            .saturating_add(self.wt)
    }
}

/// The bytes [`ConvScratch::try_with_algo`] reserves for `batch` samples of
/// `shape` computed by `algo`, in `elem`-byte values (saturating): every
/// buffer of every sample group, the im2col matrix and, where `algo` takes
/// them, the shifted planes (with a large padding these dwarf the image:
/// the backward pass's D alone has `out_c·kh·kw·(in_h + 2p)·(in_w + 2p)`
/// values). [`crate::nn::workspace_bytes`] counts it for each convolution.
///
/// # Panics
/// If the shape is invalid (see [`Conv2dShape::validate`]).
pub fn scratch_bytes(batch: usize, shape: &Conv2dShape, algo: ConvAlgo, elem: usize) -> u64 {
    shape.validate().expect("scratch_bytes: invalid shape");
    ScratchPlan::of(batch, shape, algo)
        .values(shape)
        .saturating_mul(elem as u64)
}

/// Scratch memory of [`conv2d_forward`] and [`conv2d_backward`] for one shape
/// and batch size, so a training step allocates nothing: min(batch,
/// [`MAX_GROUPS`]) groups, each with the im2col matrix (`K·P` values) or the
/// shifted-plane buffers or both, and a partial dW and db
/// ([`scratch_bytes`] counts them).
#[derive(Clone, Debug)]
pub struct ConvScratch<T> {
    batch: usize,
    shape: Conv2dShape,
    per_group: usize,
    fwd_shift: bool,
    bwd_shift: bool,
    wt: Vec<T>,
    groups: Vec<Group<T>>,
}

impl<T: Real> ConvScratch<T> {
    /// Scratch for `batch` samples of `shape`, computed by [`ConvAlgo::Auto`].
    ///
    /// # Panics
    /// If the shape is invalid (see [`Conv2dShape::validate`]) or the system
    /// refuses the buffers (see [`ConvScratch::try_with_algo`]).
    pub fn new(batch: usize, shape: &Conv2dShape) -> ConvScratch<T> {
        ConvScratch::with_algo(batch, shape, ConvAlgo::Auto)
    }

    /// Scratch for `batch` samples of `shape`, computed by `algo`.
    ///
    /// # Panics
    /// If the shape is invalid (see [`Conv2dShape::validate`]) or the system
    /// refuses the buffers (see [`ConvScratch::try_with_algo`]).
    pub fn with_algo(batch: usize, shape: &Conv2dShape, algo: ConvAlgo) -> ConvScratch<T> {
        shape.validate().expect("ConvScratch::new: invalid shape");
        ConvScratch::try_with_algo(batch, shape, algo).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`ConvScratch::with_algo`] by [`ConvAlgo::Auto`], reserved fallibly.
    ///
    /// # Errors
    /// As [`ConvScratch::try_with_algo`].
    pub fn try_new(batch: usize, shape: &Conv2dShape) -> Result<ConvScratch<T>> {
        ConvScratch::try_with_algo(batch, shape, ConvAlgo::Auto)
    }

    /// Scratch for `batch` samples of `shape`, computed by `algo`, its
    /// [`scratch_bytes`] reserved fallibly ([`crate::memory::try_vec`]).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid shape; [`Error::Value`] naming the
    /// convolution when the system refuses a buffer.
    pub fn try_with_algo(
        batch: usize,
        shape: &Conv2dShape,
        algo: ConvAlgo,
    ) -> Result<ConvScratch<T>> {
        shape.validate()?;
        let plan = ScratchPlan::of(batch, shape, algo);
        let s = shape;
        let what = format!(
            "the buffers of a convolution ({}→{} channels, kernel {}×{}, stride {}, padding {}, on {}×{} images) at batch {batch}",
            s.in_c, s.out_c, s.kh, s.kw, s.stride, s.pad, s.in_h, s.in_w
        );
        let z = |n: u64| crate::memory::try_vec_u64(&what, n, T::ZERO);
        let mut groups = Vec::with_capacity(plan.groups);
        for _ in 0..plan.groups {
            groups.push(Group {
                col: z(plan.col)?,
                shift: ShiftBufs::try_new(s, plan.fwd_shift, plan.bwd_shift, &what)?,
                dw: z(s.weight_len() as u64)?,
                db: z(s.out_c as u64)?,
            });
        }
        Ok(ConvScratch {
            batch,
            shape: *s,
            per_group: plan.per_group,
            fwd_shift: plan.fwd_shift,
            bwd_shift: plan.bwd_shift,
            wt: z(plan.wt)?,
            groups,
        })
    }

    /// Bytes the buffers hold (their capacities): what [`scratch_bytes`]
    /// counts.
    pub fn heap_bytes(&self) -> u64 {
        let of = crate::memory::vec_bytes::<T>;
        self.groups.iter().fold(of(&self.wt), |a, g| {
            a + of(&g.col) + g.shift.heap_bytes() + of(&g.dw) + of(&g.db)
        })
    }

    fn check(&self, batch: usize, shape: &Conv2dShape, op: &str) {
        assert!(
            self.batch == batch && self.shape == *shape,
            "{op}: scratch was made for batch {} of {:?}, called with batch {batch} of {shape:?}",
            self.batch,
            self.shape
        );
    }
}

/// `col ← im2col(x)` for one sample: `col[(c,u,v)·ld + i·out_w + j] =
/// x[c, i·s − p + u, j·s − p + v]`, 0 outside the image. x: (in_c, in_h,
/// in_w); col: K rows of P = out_h·out_w values with row stride `ld ≥ P`
/// (writes every entry of those rows).
///
/// # Panics
/// If a slice is too short or `ld < P`.
pub fn im2col<T: Real>(col: &mut [T], ld: usize, x: &[T], s: &Conv2dShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    assert!(ld >= oh * ow, "im2col: ld {ld} < P {}", oh * ow);
    assert!(x.len() >= s.in_len(), "im2col: x too short");
    assert!(
        col.len() >= (s.k() - 1) * ld + oh * ow,
        "im2col: col too short"
    );
    for c in 0..s.in_c {
        let plane = &x[c * s.in_h * s.in_w..(c + 1) * s.in_h * s.in_w];
        for u in 0..s.kh {
            for v in 0..s.kw {
                let row = ((c * s.kh + u) * s.kw + v) * ld;
                let (j0, j1) = valid_range(v, s.pad, s.stride, s.in_w, ow);
                for i in 0..oh {
                    let dst = &mut col[row + i * ow..row + (i + 1) * ow];
                    let iy = (i * s.stride + u).wrapping_sub(s.pad);
                    if iy >= s.in_h {
                        dst.fill(T::ZERO);
                        continue;
                    }
                    let src = &plane[iy * s.in_w..(iy + 1) * s.in_w];
                    dst[..j0].fill(T::ZERO);
                    dst[j1..].fill(T::ZERO);
                    if j0 == j1 {
                        continue;
                    }
                    let x0 = j0 * s.stride + v - s.pad;
                    if s.stride == 1 {
                        conv_shift::copy_row(&mut dst[j0..j1], &src[x0..x0 + (j1 - j0)]);
                    } else {
                        for (d, &xv) in dst[j0..j1]
                            .iter_mut()
                            .zip(src[x0..].iter().step_by(s.stride))
                        {
                            *d = xv;
                        }
                    }
                }
            }
        }
    }
}

/// `x ← x + col2im(col)` for one sample, the adjoint of [`im2col`]:
/// `x[c, i·s − p + u, j·s − p + v] += col[(c,u,v)·ld + i·out_w + j]` for every
/// position inside the image (accumulates into x).
///
/// # Panics
/// If a slice is too short or `ld < P`.
pub fn col2im<T: Real>(x: &mut [T], col: &[T], ld: usize, s: &Conv2dShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    assert!(ld >= oh * ow, "col2im: ld {ld} < P {}", oh * ow);
    assert!(x.len() >= s.in_len(), "col2im: x too short");
    assert!(
        col.len() >= (s.k() - 1) * ld + oh * ow,
        "col2im: col too short"
    );
    for c in 0..s.in_c {
        let plane = &mut x[c * s.in_h * s.in_w..(c + 1) * s.in_h * s.in_w];
        for u in 0..s.kh {
            for v in 0..s.kw {
                let row = ((c * s.kh + u) * s.kw + v) * ld;
                let (j0, j1) = valid_range(v, s.pad, s.stride, s.in_w, ow);
                for i in 0..oh {
                    let iy = (i * s.stride + u).wrapping_sub(s.pad);
                    if iy >= s.in_h || j0 >= j1 {
                        continue;
                    }
                    let src = &col[row + i * ow + j0..row + i * ow + j1];
                    let x0 = j0 * s.stride + v - s.pad;
                    let dst = &mut plane[iy * s.in_w + x0..(iy + 1) * s.in_w];
                    if s.stride == 1 {
                        for (d, &g) in dst[..src.len()].iter_mut().zip(src) {
                            *d += g;
                        }
                    } else {
                        for (d, &g) in dst.iter_mut().step_by(s.stride).zip(src) {
                            *d += g;
                        }
                    }
                }
            }
        }
    }
}

/// `Σ v`, in 16 interleaved partial sums (lane l adds `v[l], v[l + 16], …`)
/// added pairwise at the end, then the tail: a fixed order the compiler can
/// vectorise, where one running sum waits on every addition in turn.
fn sum<T: Real>(v: &[T]) -> T {
    let mut lanes = [T::ZERO; 16];
    let chunks = v.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        let (lo, hi) = lanes.split_at_mut(width);
        for (a, &b) in lo.iter_mut().zip(&hi[..width]) {
            *a += b;
        }
    }
    tail.iter().fold(lanes[0], |a, &x| a + x)
}

/// The output columns j whose input column `j·s − p + v` lies in `[0, n)`:
/// the half-open range `[j0, j1)` (empty when `j0 ≥ j1`, then `j0 = j1`).
fn valid_range(v: usize, pad: usize, s: usize, n: usize, out: usize) -> (usize, usize) {
    // j·s + v ≥ pad  ⇔  j ≥ ⌈(pad − v)/s⌉.
    let j0 = pad.saturating_sub(v).div_ceil(s).min(out);
    // j·s + v − pad ≤ n − 1  ⇔  j ≤ ⌊(n − 1 + pad − v)/s⌋ (none if n − 1 + pad < v).
    let j1 = match (n - 1 + pad).checked_sub(v) {
        Some(m) => (m / s + 1).min(out),
        None => 0,
    };
    (j0, j1.max(j0))
}

/// Forward: `y ← act(conv(x, W) + b)`, writing `y: (batch, out_c, out_h,
/// out_w)` from `x: (batch, in_c, in_h, in_w)`, `w: (out_c, in_c, kh, kw)`,
/// `b: (out_c)`. Per sample: im2col, then one GEMM `y_n ← act(W·col_n + b)`
/// with y_n pre-filled with the bias rows (β = 1) and the activation fused in
/// the GEMM epilogue.
///
/// # Panics
/// If the shape is invalid, a slice has the wrong length, or `scratch` was
/// made for another batch size or shape.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward<T: Real>(
    y: &mut [T],
    x: &[T],
    w: &[T],
    b: &[T],
    batch: usize,
    shape: &Conv2dShape,
    act: Activation,
    scratch: &mut ConvScratch<T>,
) {
    let s = *shape;
    scratch.check(batch, &s, "conv2d_forward");
    assert_eq!(x.len(), batch * s.in_len(), "conv2d_forward: x length");
    assert_eq!(y.len(), batch * s.out_len(), "conv2d_forward: y length");
    assert_eq!(w.len(), s.weight_len(), "conv2d_forward: w length");
    assert_eq!(b.len(), s.out_c, "conv2d_forward: b length");
    if batch == 0 {
        return;
    }
    let (p, k, g) = (s.out_h() * s.out_w(), s.k(), scratch.per_group);
    let w_m = MatRef::new(w, s.out_c, k);
    let shifted = scratch.fwd_shift;
    y.par_chunks_mut(g * s.out_len())
        .zip(x.par_chunks(g * s.in_len()))
        .zip(scratch.groups.par_iter_mut())
        .with_min_len(crate::parallel::min_len(1))
        .for_each(|((yg, xg), grp)| {
            for (yn, xn) in yg
                .chunks_exact_mut(s.out_len())
                .zip(xg.chunks_exact(s.in_len()))
            {
                if shifted {
                    conv_shift::forward_sample(yn, xn, w, b, &s, act, &mut grp.shift);
                    continue;
                }
                im2col(&mut grp.col, p, xn, &s);
                for (row, &bo) in yn.chunks_exact_mut(p).zip(b) {
                    row.fill(bo);
                }
                T::gemm(
                    T::ONE,
                    w_m,
                    MatRef::new(&grp.col, k, p),
                    T::ONE,
                    MatMut::new(yn, s.out_c, p),
                    Epilogue { bias: None, act },
                );
            }
        });
}

/// Backward, given `dz = ∂L/∂z: (batch, out_c, out_h, out_w)` (the gradient
/// with respect to the pre-activation) and the forward input x:
/// - `dw ← Σ_n dz_n·im2col(x_n)ᵀ`, `(out_c, in_c, kh, kw)` (overwrites);
/// - `db ← Σ_{n,i,j} dz[n,·,i,j]` (overwrites);
/// - `dx ← col2im(Wᵀ·dz_n)` per sample, `(batch, in_c, in_h, in_w)`
///   (overwrites) when `dx` is given.
///
/// Sums over samples are formed per group of samples, then over groups in
/// order (see the module doc), so they do not depend on the thread count.
///
/// # Panics
/// If the shape is invalid, a slice has the wrong length, or `scratch` was
/// made for another batch size or shape.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward<T: Real>(
    dw: &mut [T],
    db: &mut [T],
    dx: Option<&mut [T]>,
    dz: &[T],
    x: &[T],
    w: &[T],
    batch: usize,
    shape: &Conv2dShape,
    scratch: &mut ConvScratch<T>,
) {
    let s = *shape;
    scratch.check(batch, &s, "conv2d_backward");
    assert_eq!(x.len(), batch * s.in_len(), "conv2d_backward: x length");
    assert_eq!(dz.len(), batch * s.out_len(), "conv2d_backward: dz length");
    assert_eq!(w.len(), s.weight_len(), "conv2d_backward: w length");
    assert_eq!(dw.len(), s.weight_len(), "conv2d_backward: dw length");
    assert_eq!(db.len(), s.out_c, "conv2d_backward: db length");
    if let Some(dx) = dx.as_deref() {
        assert_eq!(dx.len(), x.len(), "conv2d_backward: dx length");
    }
    let (p, k, g) = (s.out_h() * s.out_w(), s.k(), scratch.per_group);
    let w_m = MatRef::new(w, s.out_c, k);
    let shifted = scratch.bwd_shift;
    if shifted {
        conv_shift::transpose_weight(&mut scratch.wt, w, &s);
    }
    let wt = &scratch.wt[..];
    let groups = &mut scratch.groups[..batch.div_ceil(g)];
    let run = |dz_g: &[T], x_g: &[T], dx_g: Option<&mut [T]>, grp: &mut Group<T>| {
        grp.db.fill(T::ZERO);
        let mut dx_samples = dx_g.map(|d| d.chunks_exact_mut(s.in_len()));
        for (n, (dzn, xn)) in dz_g
            .chunks_exact(s.out_len())
            .zip(x_g.chunks_exact(s.in_len()))
            .enumerate()
        {
            for (acc, row) in grp.db.iter_mut().zip(dzn.chunks_exact(p)) {
                *acc += sum(row);
            }
            let dxn = dx_samples.as_mut().and_then(|it| it.next());
            if shifted {
                conv_shift::backward_sample(dxn, dzn, xn, wt, &s, n == 0, &mut grp.shift);
                continue;
            }
            im2col(&mut grp.col, p, xn, &s);
            let dz_m = MatRef::new(dzn, s.out_c, p);
            T::gemm(
                T::ONE,
                dz_m,
                MatRef::new(&grp.col, k, p).t(),
                if n == 0 { T::ZERO } else { T::ONE },
                MatMut::new(&mut grp.dw, s.out_c, k),
                Epilogue::NONE,
            );
            if let Some(dxn) = dxn {
                T::gemm(
                    T::ONE,
                    w_m.t(),
                    dz_m,
                    T::ZERO,
                    MatMut::new(&mut grp.col, k, p),
                    Epilogue::NONE,
                );
                dxn.fill(T::ZERO);
                col2im(dxn, &grp.col, p, &s);
            }
        }
        if shifted {
            conv_shift::untranspose_dw(&mut grp.dw, &grp.shift, &s);
        }
    };
    let dz_chunks = dz.par_chunks(g * s.out_len());
    let x_chunks = x.par_chunks(g * s.in_len());
    match dx {
        Some(dx) => dz_chunks
            .zip(x_chunks)
            .zip(dx.par_chunks_mut(g * s.in_len()))
            .zip(groups.par_iter_mut())
            .with_min_len(crate::parallel::min_len(1))
            .for_each(|(((dz_g, x_g), dx_g), grp)| run(dz_g, x_g, Some(dx_g), grp)),
        None => dz_chunks
            .zip(x_chunks)
            .zip(groups.par_iter_mut())
            .with_min_len(crate::parallel::min_len(1))
            .for_each(|((dz_g, x_g), grp)| run(dz_g, x_g, None, grp)),
    }
    dw.fill(T::ZERO);
    db.fill(T::ZERO);
    for grp in groups.iter() {
        for (d, &v) in dw.iter_mut().zip(&grp.dw) {
            *d += v;
        }
        for (d, &v) in db.iter_mut().zip(&grp.db) {
            *d += v;
        }
    }
}
