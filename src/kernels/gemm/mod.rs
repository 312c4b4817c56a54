//! General matrix multiply: `C ← act(α·op(A)·op(B) + β·C + bias)`.
//!
//! Row-major storage with leading dimensions, `op` = identity or transpose per
//! operand, and an optional fused epilogue (bias per column of C, then an
//! activation) applied while each block of C is still in cache.

pub mod reference;

use super::{Activation, Isa, Real};

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// op(X) = X.
    No,
    /// op(X) = Xᵀ.
    Yes,
}

/// Whether a GEMM may split its work across the rayon pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// One thread.
    Sequential,
    /// Blocks of C on the rayon pool, when the product is large enough to pay.
    Rayon,
}

/// A read-only row-major matrix view: `rows × cols` stored with row stride
/// `ld ≥ cols`, used as `op(X)` according to `trans`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// The backing slice; element (r, c) is `data[r·ld + c]`.
    pub data: &'a [T],
    /// Stored rows.
    pub rows: usize,
    /// Stored columns.
    pub cols: usize,
    /// Row stride.
    pub ld: usize,
    /// Whether the operand is op(X) = Xᵀ.
    pub trans: Trans,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A dense `rows × cols` view (ld = cols), used as stored.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            ld: cols,
            trans: Trans::No,
        }
    }

    /// The same storage with another row stride.
    pub fn with_ld(mut self, ld: usize) -> Self {
        self.ld = ld;
        self
    }

    /// The same storage used transposed (toggles `trans`).
    pub fn t(mut self) -> Self {
        self.trans = match self.trans {
            Trans::No => Trans::Yes,
            Trans::Yes => Trans::No,
        };
        self
    }

    /// Rows of op(X).
    pub fn op_rows(&self) -> usize {
        if self.trans == Trans::No {
            self.rows
        } else {
            self.cols
        }
    }

    /// Columns of op(X).
    pub fn op_cols(&self) -> usize {
        if self.trans == Trans::No {
            self.cols
        } else {
            self.rows
        }
    }

    /// Element (i, j) of op(X).
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> T {
        match self.trans {
            Trans::No => self.data[i * self.ld + j],
            Trans::Yes => self.data[j * self.ld + i],
        }
    }

    fn check(&self, name: &str) {
        assert!(
            self.ld >= self.cols,
            "gemm: {name}: ld {} < cols {}",
            self.ld,
            self.cols
        );
        if self.rows > 0 && self.cols > 0 {
            let need = (self.rows - 1)
                .checked_mul(self.ld)
                .and_then(|v| v.checked_add(self.cols))
                .expect("gemm: view size overflows usize");
            assert!(
                need <= self.data.len(),
                "gemm: {name}: {}×{} view with ld {} needs {need} elements, slice has {}",
                self.rows,
                self.cols,
                self.ld,
                self.data.len()
            );
        }
    }
}

/// A mutable row-major matrix view: `rows × cols` with row stride `ld ≥ cols`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    /// The backing slice; element (r, c) is `data[r·ld + c]`.
    pub data: &'a mut [T],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride.
    pub ld: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// A dense `rows × cols` view (ld = cols).
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            ld: cols,
        }
    }

    /// The same storage with another row stride.
    pub fn with_ld(mut self, ld: usize) -> Self {
        self.ld = ld;
        self
    }

    fn check(&self) {
        assert!(
            self.ld >= self.cols,
            "gemm: C: ld {} < cols {}",
            self.ld,
            self.cols
        );
        if self.rows > 0 && self.cols > 0 {
            let need = (self.rows - 1)
                .checked_mul(self.ld)
                .and_then(|v| v.checked_add(self.cols))
                .expect("gemm: view size overflows usize");
            assert!(
                need <= self.data.len(),
                "gemm: C: {}×{} view with ld {} needs {need} elements, slice has {}",
                self.rows,
                self.cols,
                self.ld,
                self.data.len()
            );
        }
    }
}

/// What happens to each element of C after the product:
/// `c ← act(α·Σ + β·c + bias[j])`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a, T> {
    /// A bias per column of C (length n), or none.
    pub bias: Option<&'a [T]>,
    /// The activation applied last.
    pub act: Activation,
}

impl<'a, T> Epilogue<'a, T> {
    /// No bias, linear activation: a plain GEMM.
    pub const NONE: Epilogue<'a, T> = Epilogue {
        bias: None,
        act: Activation::Linear,
    };

    /// Bias per column, then an activation: a dense layer's forward pass.
    pub fn bias_act(bias: &'a [T], act: Activation) -> Self {
        Epilogue {
            bias: Some(bias),
            act,
        }
    }

    /// Whether the epilogue does anything.
    pub fn is_none(&self) -> bool {
        self.bias.is_none() && self.act == Activation::Linear
    }
}

/// Checks the operand shapes and returns (m, n, k).
///
/// # Panics
/// If op(A) is not m×k, op(B) not k×n, C not m×n, a view does not fit its
/// slice, or the bias is not of length n.
pub fn check_shapes<T: Copy>(
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &MatMut<'_, T>,
    epi: &Epilogue<'_, T>,
) -> (usize, usize, usize) {
    a.check("A");
    b.check("B");
    c.check();
    let (m, k) = (a.op_rows(), a.op_cols());
    let n = b.op_cols();
    assert_eq!(
        b.op_rows(),
        k,
        "gemm: op(A) is {m}×{k} but op(B) is {}×{n}",
        b.op_rows()
    );
    assert!(
        c.rows == m && c.cols == n,
        "gemm: C is {}×{}, expected {m}×{n}",
        c.rows,
        c.cols
    );
    if let Some(bias) = epi.bias {
        assert_eq!(
            bias.len(),
            n,
            "gemm: bias has {} elements, C has {n} columns",
            bias.len()
        );
    }
    (m, n, k)
}

/// `C ← act(α·op(A)·op(B) + β·C + bias)` on the active path ([`Isa::active`]),
/// parallel over blocks of C when the product is large.
///
/// Shapes: op(A) is m×k, op(B) is k×n, C is m×n, bias has n elements. When
/// β = 0, C is only written, never read: NaN in C is ignored. Each element of C
/// is summed in the same order whatever the thread count, so results are
/// bit-identical on 1 or many threads.
///
/// # Panics
/// On any shape mismatch (see [`check_shapes`]).
pub fn gemm(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epilogue<'_, f32>,
) {
    gemm_with(Isa::active(), Parallelism::Rayon, alpha, a, b, beta, c, epi)
}

/// [`gemm`] on a chosen path and parallelism.
///
/// # Panics
/// On any shape mismatch, or if `isa` is not available on this CPU.
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    isa: Isa,
    par: Parallelism,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epilogue<'_, f32>,
) {
    assert!(
        isa.is_available(),
        "gemm: kernel path {isa} is not available on this CPU"
    );
    let _ = par;
    reference::gemm(alpha, a, b, beta, c, epi)
}

/// Applies the epilogue `c ← act(c + bias[j])` to a finished row-major block.
pub(crate) fn apply_epilogue<T: Real>(c: &mut MatMut<'_, T>, epi: &Epilogue<'_, T>) {
    if epi.is_none() {
        return;
    }
    for i in 0..c.rows {
        let row = &mut c.data[i * c.ld..i * c.ld + c.cols];
        crate::kernels::elementwise::scalar::bias_act(row, epi.bias, epi.act);
    }
}
