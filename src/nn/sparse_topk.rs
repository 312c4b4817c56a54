//! The sparse path of a top-k code: the layers on either side of the code
//! touch only the units each sample keeps.
//!
//! With a code layer t of n units keeping k per sample, and the dense layer
//! t+1 after it (`W_d: (out, n)`), a training step on the dense path does
//! four products of cost batch·n·width: the decoder's forward pass
//! `h_{t+1} = act(c·W_dᵀ + b)`, its weight gradient `dW_d = dzᵀ·c`, the code
//! gradient `dc = dz·W_d` and the encoder's weight gradient `dW_e = dz_tᵀ·x`
//! (five with the input gradient `dx = dz_t·W_e` when the code follows
//! another layer). The code c has k non-zeros per row, so each needs only
//! batch·k·width:
//!
//! - forward: row i of the output is Σ over its entries c_ij·W_d[:, j], a
//!   sum of gathered rows of W_dᵀ ([`crate::kernels::sparse::spmm`]); W_dᵀ
//!   is copied once per forward pass into the workspace (the model keeps
//!   the PyTorch `(out, in)` layout), so each gather reads one contiguous row;
//! - code gradient: only the kept entries need one, `dc_ij = dz_i·W_d[:, j]`
//!   ([`crate::kernels::sparse::sddmm`] against the same copy);
//! - weight gradients: with the entries indexed by unit (the transposed
//!   code, a counting sort), column j of `dW_d` and row j of `dW_e` are sums
//!   over the samples that kept unit j; units no sample kept get exact zeros,
//!   written in the same pass. `dW_d` is produced in tiles of 64 outputs ×
//!   64 units and transposed into place, one task per block of 64 rows;
//! - the code layer's input gradient (when t > 0) gathers rows of `W_e`.
//!
//! Every output element is summed by one task, in an order fixed by the
//! data (samples in order for a unit, entries in column order for a
//! sample), so results are bit-identical on any number of threads. The code
//! is kept as (column, value) lists per sample in preallocated buffers, and
//! the step allocates nothing.
//!
//! The path applies to TopK and BatchTopK codes whose next layer is dense,
//! in untied models. [`TopkPath`] chooses it: `auto` takes it when it pays
//! (see [`sparse_pays`]); the environment variable `SPARSE_AE_TOPK_PATH`
//! (`auto`, `dense`, `sparse`) sets the default, and
//! [`crate::nn::Workspace::with_topk_path`] overrides it per workspace.

use super::config::{LayerSpec, ModelConfig};
use super::sparsity::{topk_batch, topk_rows_indexed};
use crate::error::{Error, Result};
use crate::kernels::{Activation, Csr, MatMut, MatRef, Real};
use rayon::prelude::*;
use std::sync::OnceLock;

/// How a TopK model computes the layers next to its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopkPath {
    /// The sparse path where it applies and pays ([`sparse_pays`]).
    Auto,
    /// Dense GEMMs, as for any other layer.
    Dense,
    /// The sparse path wherever it applies.
    Sparse,
}

/// Name of the environment variable that sets the default [`TopkPath`].
pub const TOPK_PATH_ENV: &str = "SPARSE_AE_TOPK_PATH";

impl TopkPath {
    /// The path's name (`auto`, `dense`, `sparse`).
    pub fn name(self) -> &'static str {
        match self {
            TopkPath::Auto => "auto",
            TopkPath::Dense => "dense",
            TopkPath::Sparse => "sparse",
        }
    }

    /// Parses a path name.
    ///
    /// # Errors
    /// [`Error::Config`] for anything but `auto`, `dense` or `sparse`.
    pub fn from_name(name: &str) -> Result<TopkPath> {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(TopkPath::Auto),
            "dense" => Ok(TopkPath::Dense),
            "sparse" => Ok(TopkPath::Sparse),
            _ => Err(Error::config(
                TOPK_PATH_ENV,
                format!("unknown top-k path `{name}`; use auto, dense or sparse"),
            )),
        }
    }

    /// The path named by `SPARSE_AE_TOPK_PATH`, or `Auto` when it is unset.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown value.
    pub fn from_env() -> Result<TopkPath> {
        match Error::env_text(TOPK_PATH_ENV)? {
            Some(v) => TopkPath::from_name(&v),
            None => Ok(TopkPath::Auto),
        }
    }

    /// Whether a workspace for `cfg` at batch size `batch` on this path
    /// takes the sparse path: where it applies ([`sparse_applies`]), and for
    /// `Auto` where it pays ([`sparse_pays`]).
    pub fn takes_sparse(self, cfg: &ModelConfig, batch: usize) -> bool {
        let chosen = match self {
            TopkPath::Dense => false,
            TopkPath::Sparse => true,
            TopkPath::Auto => sparse_pays(cfg, batch),
        };
        chosen && sparse_applies(cfg)
    }

    /// The default of new workspaces, read from the environment on first
    /// use (a later change is refused by [`TopkPath::check_unchanged`]). A
    /// bad value is reported once on stderr and `Auto` is used; programs
    /// that want the error call [`TopkPath::from_env`] first (the library's
    /// entry points do, through [`crate::parallel::check_env`]).
    pub fn active() -> TopkPath {
        *ACTIVE.get_or_init(|| {
            TopkPath::from_env().unwrap_or_else(|e| {
                crate::io::warn(format_args!("sparse-ae: {e}; using auto"));
                TopkPath::Auto
            })
        })
    }
}

/// The default path of new workspaces, once read ([`TopkPath::active`]).
static ACTIVE: OnceLock<TopkPath> = OnceLock::new();

impl TopkPath {
    /// Checks that `SPARSE_AE_TOPK_PATH` still names the default this
    /// process read at its first workspace: it is read once, so a later
    /// change would be ignored, and is refused instead
    /// ([`crate::parallel::check_env`] calls this).
    ///
    /// # Errors
    /// As [`TopkPath::from_env`]; [`Error::Config`] naming the variable when
    /// it names another path than the one this process read.
    pub fn check_unchanged() -> Result<()> {
        let now = TopkPath::from_env()?;
        match ACTIVE.get() {
            Some(&was) if was != now => Err(Error::config(
                TOPK_PATH_ENV,
                format!(
                    "now {}, but this process read {} at its first workspace; the default path is read once per process: set it before that, or in a new process (Trainer::set_topk_path chooses per trainer)",
                    now.name(),
                    was.name()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Whether the sparse path can run `cfg`: a TopK or BatchTopK code followed
/// by a dense layer, without tied weights or AuxK.
pub fn sparse_applies(cfg: &ModelConfig) -> bool {
    // AuxK adds gradient at dead latents outside the kept entries.
    cfg.sae.auxk.is_none()
        && cfg.topk.is_some_and(|t| {
            !cfg.tied && matches!(cfg.layers.get(t.layer + 1), Some(LayerSpec::Dense { .. }))
        })
}

/// Whether the sparse path is expected to be faster for `cfg` at `batch`:
/// it must keep at most 1/16 of the units, and the batch must hold at least
/// 64 samples. Below that the per-step costs that do not shrink with the
/// batch (copying the decoder weight transposed, writing both weight
/// gradients whole) outweigh the products saved: measured on a 784-1024-784
/// model with k = 32 and on 768-16384-768 with k = 32, the two paths break
/// even near batch 64, and at k = n/8 they are level at batch 256.
pub fn sparse_pays(cfg: &ModelConfig, batch: usize) -> bool {
    cfg.topk
        .is_some_and(|t| batch >= 64 && 16 * t.k <= cfg.width(t.layer))
}

/// Rows of a batch per parallel task in the per-sample products.
const ROWS_PER_TASK: usize = 8;
/// Tile of the decoder weight gradient: outputs × units.
const TILE_OUT: usize = 64;
const TILE_UNITS: usize = 64;
/// Units per parallel task in the encoder weight gradient and the transpose.
const UNITS_PER_TASK: usize = 64;

/// The buffers of the sparse path, part of a [`crate::nn::Workspace`].
#[derive(Clone, Debug)]
pub struct SparseTopk<T> {
    /// The code layer t and the widths around it.
    layer: usize,
    units: usize,
    inp: usize,
    out: usize,
    batch: usize,
    /// Kept per sample (TopK) or in the whole batch (BatchTopK, `k·batch`).
    k: usize,
    batch_variant: bool,
    /// The code by sample: entries `starts[i]..starts[i+1]` of `idx`/`val`.
    starts: Vec<usize>,
    idx: Vec<u32>,
    val: Vec<T>,
    /// ∂L/∂(code) at each entry, then ∂L/∂(pre-activation).
    grad: Vec<T>,
    /// The code by unit: entries `unit_starts[j]..unit_starts[j+1]` of
    /// `unit_sample` (the sample) and `unit_entry` (the entry by sample).
    unit_starts: Vec<usize>,
    unit_fill: Vec<usize>,
    unit_sample: Vec<u32>,
    unit_entry: Vec<u32>,
    /// A per-unit copy of the values or gradients (`val`/`grad` by unit).
    unit_coef: Vec<T>,
    /// The decoder weight transposed, `(units, out)`.
    wt: Vec<T>,
}

impl<T: Real> SparseTopk<T> {
    /// The buffers for `cfg` at `batch`, if `path` (and for `Auto` the cost
    /// model) chooses the sparse path and it applies.
    ///
    /// # Panics
    /// If the system refuses a buffer ([`SparseTopk::try_new`] returns the
    /// error instead).
    pub fn new(cfg: &ModelConfig, batch: usize, path: TopkPath) -> Option<SparseTopk<T>> {
        SparseTopk::try_new(cfg, batch, path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`SparseTopk::new`], its buffers reserved fallibly.
    ///
    /// # Errors
    /// [`crate::Error::Value`] when the system refuses a buffer.
    pub fn try_new(
        cfg: &ModelConfig,
        batch: usize,
        path: TopkPath,
    ) -> crate::Result<Option<SparseTopk<T>>> {
        use crate::memory::try_vec;
        const WHAT: &str = "the sparse top-k code's buffers";
        let Some(t) = cfg.topk else {
            return Ok(None);
        };
        if !path.takes_sparse(cfg, batch) {
            return Ok(None);
        }
        let units = cfg.width(t.layer);
        let inp = if t.layer == 0 {
            cfg.input
        } else {
            cfg.width(t.layer - 1)
        };
        let out = cfg.width(t.layer + 1);
        let k = t.k.min(units);
        let nnz = batch * k;
        let mut starts = crate::memory::try_with_capacity(WHAT, batch + 1)?;
        starts.extend((0..=batch).map(|i| i * k));
        Ok(Some(SparseTopk {
            layer: t.layer,
            units,
            inp,
            out,
            batch,
            k,
            batch_variant: t.batch,
            starts,
            idx: try_vec(WHAT, nnz, 0)?,
            val: try_vec(WHAT, nnz, T::ZERO)?,
            grad: try_vec(WHAT, nnz, T::ZERO)?,
            unit_starts: try_vec(WHAT, units + 1, 0)?,
            unit_fill: try_vec(WHAT, units, 0)?,
            unit_sample: try_vec(WHAT, nnz, 0)?,
            unit_entry: try_vec(WHAT, nnz, 0)?,
            unit_coef: try_vec(WHAT, nnz, T::ZERO)?,
            wt: try_vec(WHAT, units * out, T::ZERO)?,
        }))
    }

    /// Bytes the buffers hold (their capacities).
    pub fn heap_bytes(&self) -> u64 {
        use crate::memory::vec_bytes;
        [&self.starts, &self.unit_starts, &self.unit_fill]
            .map(vec_bytes)
            .into_iter()
            .chain([&self.idx, &self.unit_sample, &self.unit_entry].map(vec_bytes))
            .chain([&self.val, &self.grad, &self.unit_coef, &self.wt].map(vec_bytes))
            .sum()
    }

    /// The code layer t (the path also runs layer t + 1).
    pub fn code_layer(&self) -> usize {
        self.layer
    }

    /// Entries of the code of the last forward pass.
    fn nnz(&self) -> usize {
        self.starts[self.batch]
    }

    /// The code of the last forward pass by sample: row i lists the units
    /// sample i kept (in increasing order) and their values.
    pub fn code(&self) -> Csr<'_, T> {
        let nnz = self.nnz();
        Csr {
            starts: &self.starts,
            cols: &self.idx[..nnz],
            vals: &self.val[..nnz],
        }
    }

    /// The gradient at each entry of [`Self::code`]: ∂L/∂(code) after
    /// [`Self::decoder_backward`], ∂L/∂(pre-activation) after
    /// [`Self::encoder_backward`].
    pub fn code_grad(&self) -> &[T] {
        &self.grad[..self.nnz()]
    }

    /// The top-k selection of the code layer's output `h: (batch, units)`
    /// (as [`super::sparsity::topk_rows`] or `topk_batch`), recording the
    /// kept entries by sample and by unit.
    pub fn select(&mut self, h: &mut [T], scratch: &mut [T]) {
        let units = self.units;
        if self.batch_variant {
            topk_batch(h, self.k * self.batch, scratch);
            self.record_nonzeros(h);
        } else {
            let code = Some((&mut self.idx[..], &mut self.val[..]));
            topk_rows_indexed(h, units, self.k, scratch, code);
            self.index_by_unit();
        }
    }

    /// The BatchTopK selection of one part of a batch whose threshold was
    /// found over the whole batch (see `crate::dist`): keeps the values of
    /// `h` above `t` and the first `ties` equal to it (`cut = Some((t,
    /// ties))`), or all of them (`None`). A part may keep more than `k` per
    /// sample; the buffers then grow to its count (an allocation).
    pub fn select_cut(&mut self, h: &mut [T], cut: Option<(T, usize)>) {
        if let Some((t, ties)) = cut {
            super::sparsity::keep_above(h, t, ties);
        }
        self.record_nonzeros(h);
    }

    /// Records the non-zeros of the selected code `h` as the code by sample
    /// and by unit. The kept values per row vary; zeros (kept or not) carry
    /// neither a value nor a gradient, so the non-zeros are the code.
    fn record_nonzeros(&mut self, h: &[T]) {
        let nnz = h.iter().filter(|&&v| v != T::ZERO).count();
        if nnz > self.idx.len() {
            self.idx.resize(nnz, 0);
            self.val.resize(nnz, T::ZERO);
            self.grad.resize(nnz, T::ZERO);
            self.unit_sample.resize(nnz, 0);
            self.unit_entry.resize(nnz, 0);
            self.unit_coef.resize(nnz, T::ZERO);
        }
        let mut n = 0;
        for (i, row) in h.chunks_exact(self.units).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if v != T::ZERO {
                    self.idx[n] = j as u32;
                    self.val[n] = v;
                    n += 1;
                }
            }
            self.starts[i + 1] = n;
        }
        self.index_by_unit();
    }

    /// Counting sort of the entries by unit, samples in increasing order.
    fn index_by_unit(&mut self) {
        let nnz = self.nnz();
        self.unit_starts.fill(0);
        for &j in &self.idx[..nnz] {
            self.unit_starts[j as usize + 1] += 1;
        }
        for j in 0..self.units {
            self.unit_starts[j + 1] += self.unit_starts[j];
        }
        self.unit_fill
            .copy_from_slice(&self.unit_starts[..self.units]);
        for i in 0..self.batch {
            for e in self.starts[i]..self.starts[i + 1] {
                let fill = &mut self.unit_fill[self.idx[e] as usize];
                self.unit_sample[*fill] = i as u32;
                self.unit_entry[*fill] = e as u32;
                *fill += 1;
            }
        }
    }

    /// Forward pass of layer t + 1, `h ← act(c·Wᵀ + b)` with `w: (out, units)`.
    pub fn decoder_forward(&mut self, h: &mut [T], w: &[T], b: &[T], act: Activation) {
        let (units, out) = (self.units, self.out);
        transpose(w, out, units, &mut self.wt);
        let code = Csr {
            starts: &self.starts,
            cols: &self.idx,
            vals: &self.val,
        };
        let wt = MatRef::new(&self.wt, units, out);
        h.par_chunks_mut(ROWS_PER_TASK * out)
            .enumerate()
            .with_min_len(crate::parallel::min_len(1))
            .for_each(|(c, rows)| {
                let (r0, n) = (c * ROWS_PER_TASK, rows.len() / out);
                let block = Csr {
                    starts: &code.starts[r0..=r0 + n],
                    ..code
                };
                T::spmm(block, wt, MatMut::new(rows, n, out));
                T::bias_add(rows, out, b);
                T::act_forward(act, rows);
            });
    }

    /// Backward pass of layer `l` (the code layer t or the layer t + 1
    /// after it); overwrites `dw` and `db`, and `dx` when given. See
    /// [`Self::decoder_backward`] and [`Self::encoder_backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        l: usize,
        dw: &mut [T],
        db: &mut [T],
        dx: Option<&mut [T]>,
        dz: &[T],
        x: &[T],
        w: &[T],
        code_terms: CodeTerms<'_, T>,
    ) {
        if l == self.layer {
            self.encoder_backward(dw, db, dx, x, w, code_terms);
        } else {
            self.decoder_backward(dw, db, dz);
        }
    }

    /// Backward pass of layer t + 1 given `dz: (batch, out)`: `dW ← dzᵀ·c`
    /// (zero in the columns of units no sample kept), `db ← Σ_batch dz`,
    /// and the code gradient at the kept entries, `dc_e = dz_i·W[:, j]`,
    /// kept for [`Self::encoder_backward`].
    pub fn decoder_backward(&mut self, dw: &mut [T], db: &mut [T], dz: &[T]) {
        let (units, out, batch, nnz) = (self.units, self.out, self.batch, self.nnz());
        let wt = MatRef::new(&self.wt, units, out);
        let idx = &self.idx;
        par_entry_blocks(&self.starts, 0, &mut self.grad[..nnz], &|r0, starts, g| {
            let n = starts.len() - 1;
            let dz_rows = MatRef::new(&dz[r0 * out..(r0 + n) * out], n, out);
            T::sddmm(starts, idx, dz_rows, wt, g);
        });
        for (c, &e) in self.unit_coef[..nnz].iter_mut().zip(&self.unit_entry) {
            *c = self.val[e as usize];
        }
        let by_unit = Csr {
            starts: &self.unit_starts,
            cols: &self.unit_sample[..nnz],
            vals: &self.unit_coef[..nnz],
        };
        dw.par_chunks_mut(TILE_OUT * units)
            .enumerate()
            .with_min_len(crate::parallel::min_len(1))
            .for_each(|(c, rows)| {
                let (o0, n_out) = (c * TILE_OUT, rows.len() / units);
                let dz_cols = MatRef::new(&dz[o0..], batch, n_out).with_ld(out);
                let mut tile = [T::ZERO; TILE_OUT * TILE_UNITS];
                for j0 in (0..units).step_by(TILE_UNITS) {
                    let n_units = TILE_UNITS.min(units - j0);
                    let block = Csr {
                        starts: &by_unit.starts[j0..=j0 + n_units],
                        ..by_unit
                    };
                    let t = &mut tile[..n_units * n_out];
                    T::spmm(block, dz_cols, MatMut::new(t, n_units, n_out));
                    let dst = MatMut::new(&mut rows[j0..], n_out, n_units).with_ld(units);
                    T::transpose(MatRef::new(t, n_units, n_out), dst);
                }
            });
        T::col_sum(dz, out, db);
    }

    /// Backward pass of the code layer t, from the code gradient left by
    /// [`Self::decoder_backward`]: adds the penalties on the code, applies
    /// the top-k and activation derivatives at the kept entries, then
    /// `dW ← dzᵀ·x` (zero in the rows of units no sample kept), `db ← Σ dz`
    /// and, when `dx` is given, `dx ← dz·W` (`w: (units, inp)`).
    pub fn encoder_backward(
        &mut self,
        dw: &mut [T],
        db: &mut [T],
        dx: Option<&mut [T]>,
        x: &[T],
        w: &[T],
        terms: CodeTerms<'_, T>,
    ) {
        let (units, inp, batch, nnz) = (self.units, self.inp, self.batch, self.nnz());
        for e in 0..nnz {
            let v = self.val[e];
            self.grad[e] = terms.apply(self.grad[e], v, self.idx[e] as usize);
        }
        for (c, &e) in self.unit_coef[..nnz].iter_mut().zip(&self.unit_entry) {
            *c = self.grad[e as usize];
        }
        let by_unit = Csr {
            starts: &self.unit_starts,
            cols: &self.unit_sample[..nnz],
            vals: &self.unit_coef[..nnz],
        };
        let x_m = MatRef::new(x, batch, inp);
        dw.par_chunks_mut(UNITS_PER_TASK * inp)
            .enumerate()
            .with_min_len(crate::parallel::min_len(1))
            .for_each(|(c, rows)| {
                let (j0, n) = (c * UNITS_PER_TASK, rows.len() / inp);
                let block = Csr {
                    starts: &by_unit.starts[j0..=j0 + n],
                    ..by_unit
                };
                T::spmm(block, x_m, MatMut::new(rows, n, inp));
            });
        for (j, d) in db.iter_mut().enumerate() {
            let entries = &by_unit.vals[by_unit.starts[j]..by_unit.starts[j + 1]];
            *d = entries.iter().fold(T::ZERO, |s, &g| s + g);
        }
        if let Some(dx) = dx {
            let code_grad = Csr {
                starts: &self.starts,
                cols: &self.idx,
                vals: &self.grad,
            };
            let w_m = MatRef::new(w, units, inp);
            dx.par_chunks_mut(ROWS_PER_TASK * inp)
                .enumerate()
                .with_min_len(crate::parallel::min_len(1))
                .for_each(|(c, rows)| {
                    let (r0, n) = (c * ROWS_PER_TASK, rows.len() / inp);
                    let block = Csr {
                        starts: &code_grad.starts[r0..=r0 + n],
                        ..code_grad
                    };
                    T::spmm(block, w_m, MatMut::new(rows, n, inp));
                });
        }
    }
}

/// What the code layer's backward pass adds and applies at each kept entry,
/// in the dense path's order: `g ← (g + λ/B·sign(h) + g_KL[j])·act′(h)`, and
/// 0 where h = 0 (the top-k derivative).
#[derive(Clone, Copy, Debug)]
pub struct CodeTerms<'a, T> {
    /// The code layer's activation.
    pub act: Activation,
    /// λ/B of an L1 penalty on the code.
    pub l1: Option<T>,
    /// The per-unit KL gradient of a KL penalty on the code.
    pub kl: Option<&'a [T]>,
}

impl<'a, T: Real> CodeTerms<'a, T> {
    /// The terms of layer `l` of `cfg` at batch size `batch`; `kl_g` is the
    /// per-unit KL gradient of the forward pass (used if the KL penalty is
    /// on layer `l`).
    pub fn of_layer(cfg: &ModelConfig, l: usize, batch: usize, kl_g: &'a [T]) -> Self {
        CodeTerms {
            act: cfg.layers[l].act(),
            l1: cfg
                .l1
                .filter(|p| p.layer == l)
                .map(|p| T::from_f64(p.lambda / batch as f64)),
            kl: cfg.kl.filter(|p| p.layer == l).map(|_| kl_g),
        }
    }

    #[inline]
    fn apply(&self, mut g: T, h: T, j: usize) -> T {
        if h == T::ZERO {
            return T::ZERO;
        }
        if let Some(s) = self.l1 {
            if h > T::ZERO {
                g += s;
            } else if h < T::ZERO {
                g -= s;
            }
        }
        if let Some(kl) = self.kl {
            g += kl[j];
        }
        g * self.act.deriv_from_output(h)
    }
}

/// `dst ← srcᵀ` for `src: (rows, cols)`, `dst: (cols, rows)`, in parallel
/// over strips of 64 `dst` rows (64 columns of `src`).
fn transpose<T: Real>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    dst.par_chunks_mut(UNITS_PER_TASK * rows)
        .enumerate()
        .with_min_len(crate::parallel::min_len(1))
        .for_each(|(c, strip)| {
            let (c0, n) = (c * UNITS_PER_TASK, strip.len() / rows);
            let src = MatRef::new(&src[c0..], rows, n).with_ld(cols);
            T::transpose(src, MatMut::new(strip, n, rows));
        });
}

/// Runs `f(first_row, starts, entries)` on blocks of at most
/// `ROWS_PER_TASK` rows of a row-indexed pattern in parallel; `entries` is
/// the part of `out` holding the block's entries `starts[0]..starts[n]`.
fn par_entry_blocks<T: Send>(
    starts: &[usize],
    first_row: usize,
    out: &mut [T],
    f: &(impl Fn(usize, &[usize], &mut [T]) + Sync),
) {
    let rows = starts.len() - 1;
    if rows <= ROWS_PER_TASK {
        return f(first_row, starts, out);
    }
    let mid = rows / 2;
    let (a, b) = out.split_at_mut(starts[mid] - starts[0]);
    crate::parallel::join(
        || par_entry_blocks(&starts[..=mid], first_row, a, f),
        || par_entry_blocks(&starts[mid..], first_row + mid, b, f),
    );
}
