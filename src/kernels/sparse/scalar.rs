//! Portable scalar twins of the sparse products, generic over [`Real`]: the
//! specification the SIMD paths are tested against, and the kernels of the
//! `f64` model.

use super::Csr;
use crate::kernels::{MatMut, MatRef, Real, Trans};

/// Asserts that `starts` is a valid row index over `nnz` entries and that
/// every column of those entries is below `col_limit`.
fn check_pattern(op: &str, starts: &[usize], cols: &[u32], nnz: usize, col_limit: usize) {
    assert!(!starts.is_empty(), "{op}: `starts` is empty");
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "{op}: `starts` decreases"
    );
    let (first, last) = (starts[0], starts[starts.len() - 1]);
    assert!(
        last <= nnz,
        "{op}: rows end at entry {last}, only {nnz} entries"
    );
    if let Some(&bad) = cols[first..last].iter().find(|&&j| j as usize >= col_limit) {
        panic!("{op}: column {bad} out of range (the dense operand has {col_limit} rows)");
    }
}

/// Asserts that a dense view is used as stored and fits its slice.
fn check_view(op: &str, name: &str, data_len: usize, rows: usize, cols: usize, ld: usize) {
    assert!(ld >= cols, "{op}: {name}: ld {ld} < cols {cols}");
    if rows > 0 && cols > 0 {
        let need = (rows - 1)
            .checked_mul(ld)
            .and_then(|v| v.checked_add(cols))
            .expect("view size overflows usize");
        assert!(
            need <= data_len,
            "{op}: {name}: {rows}×{cols} view with ld {ld} needs {need} elements, slice has {data_len}"
        );
    }
}

/// The checks of [`super::spmm`]: `S` has `c.rows` rows, its values match
/// its columns, every column indexes a row of `A`, `A` and `C` have the same
/// width, and both views fit their slices (and are not transposed).
///
/// # Panics
/// If any of these fails.
pub fn check_spmm<T: Copy>(s: &Csr<'_, T>, a: &MatRef<'_, T>, c: &MatMut<'_, T>) {
    assert_eq!(
        s.cols.len(),
        s.vals.len(),
        "spmm: {} columns but {} values",
        s.cols.len(),
        s.vals.len()
    );
    check_pattern("spmm", s.starts, s.cols, s.cols.len(), a.rows);
    assert!(a.trans == Trans::No, "spmm: A must not be transposed");
    check_view("spmm", "A", a.data.len(), a.rows, a.cols, a.ld);
    check_view("spmm", "C", c.data.len(), c.rows, c.cols, c.ld);
    assert!(
        s.rows() == c.rows && a.cols == c.cols,
        "spmm: S has {} rows, A is {}×{}, C is {}×{}",
        s.rows(),
        a.rows,
        a.cols,
        c.rows,
        c.cols
    );
}

/// The checks of [`super::sddmm`]: X has one row per row of the pattern, X
/// and Y have the same width, every column indexes a row of Y, `out` holds
/// one value per entry, and the views fit their slices.
///
/// # Panics
/// If any of these fails.
pub fn check_sddmm<T: Copy>(
    starts: &[usize],
    cols: &[u32],
    x: &MatRef<'_, T>,
    y: &MatRef<'_, T>,
    out_len: usize,
) {
    check_pattern("sddmm", starts, cols, cols.len(), y.rows);
    assert!(
        x.trans == Trans::No && y.trans == Trans::No,
        "sddmm: X and Y must not be transposed"
    );
    check_view("sddmm", "X", x.data.len(), x.rows, x.cols, x.ld);
    check_view("sddmm", "Y", y.data.len(), y.rows, y.cols, y.ld);
    let nnz = starts[starts.len() - 1] - starts[0];
    assert!(
        x.rows == starts.len() - 1 && x.cols == y.cols && out_len == nnz,
        "sddmm: {} pattern rows with {nnz} entries, X is {}×{}, Y is {}×{}, out has {out_len}",
        starts.len() - 1,
        x.rows,
        x.cols,
        y.rows,
        y.cols
    );
}

/// See [`super::spmm`]: for each row, `c[r, i] = (…((0 + v₀·a₀ᵢ) + v₁·a₁ᵢ) …)`
/// over the row's entries in order.
///
/// # Panics
/// As [`check_spmm`].
pub fn spmm<T: Real>(s: Csr<'_, T>, a: MatRef<'_, T>, c: MatMut<'_, T>) {
    check_spmm(&s, &a, &c);
    spmm_unchecked(s, a, c);
}

/// [`spmm`] after [`check_spmm`] has passed.
pub(super) fn spmm_unchecked<T: Real>(s: Csr<'_, T>, a: MatRef<'_, T>, c: MatMut<'_, T>) {
    let width = c.cols;
    for r in 0..c.rows {
        let out = &mut c.data[r * c.ld..r * c.ld + width];
        out.fill(T::ZERO);
        for e in s.starts[r]..s.starts[r + 1] {
            let (v, j) = (s.vals[e], s.cols[e] as usize);
            let row = &a.data[j * a.ld..j * a.ld + width];
            for (o, &w) in out.iter_mut().zip(row) {
                *o += v * w;
            }
        }
    }
}

/// See [`super::sddmm`]: each product is rounded to `T`, then the products
/// are summed in order in f64 and the sum rounded to `T`.
///
/// # Panics
/// As [`check_sddmm`].
pub fn sddmm<T: Real>(
    starts: &[usize],
    cols: &[u32],
    x: MatRef<'_, T>,
    y: MatRef<'_, T>,
    out: &mut [T],
) {
    check_sddmm(starts, cols, &x, &y, out.len());
    sddmm_unchecked(starts, cols, x, y, out);
}

/// [`sddmm`] after [`check_sddmm`] has passed.
pub(super) fn sddmm_unchecked<T: Real>(
    starts: &[usize],
    cols: &[u32],
    x: MatRef<'_, T>,
    y: MatRef<'_, T>,
    out: &mut [T],
) {
    let (width, base) = (x.cols, starts[0]);
    for r in 0..starts.len() - 1 {
        let xr = &x.data[r * x.ld..r * x.ld + width];
        for e in starts[r]..starts[r + 1] {
            let j = cols[e] as usize;
            let yr = &y.data[j * y.ld..j * y.ld + width];
            let sum: f64 = xr.iter().zip(yr).map(|(&p, &q)| (p * q).to_f64()).sum();
            out[e - base] = T::from_f64(sum);
        }
    }
}

/// The checks of [`super::transpose`]: `dst` is `src` with rows and columns
/// swapped, neither view is transposed, and both fit their slices.
///
/// # Panics
/// If any of these fails.
pub fn check_transpose<T: Copy>(src: &MatRef<'_, T>, dst: &MatMut<'_, T>) {
    assert!(
        src.trans == Trans::No,
        "transpose: src must not be marked transposed"
    );
    check_view(
        "transpose",
        "src",
        src.data.len(),
        src.rows,
        src.cols,
        src.ld,
    );
    check_view(
        "transpose",
        "dst",
        dst.data.len(),
        dst.rows,
        dst.cols,
        dst.ld,
    );
    assert!(
        dst.rows == src.cols && dst.cols == src.rows,
        "transpose: src is {}×{}, dst is {}×{}",
        src.rows,
        src.cols,
        dst.rows,
        dst.cols
    );
}

/// See [`super::transpose`].
///
/// # Panics
/// As [`check_transpose`].
pub fn transpose<T: Copy>(src: MatRef<'_, T>, dst: MatMut<'_, T>) {
    check_transpose(&src, &dst);
    transpose_unchecked(src, dst);
}

/// [`transpose`] after [`check_transpose`] has passed.
pub(super) fn transpose_unchecked<T: Copy>(src: MatRef<'_, T>, dst: MatMut<'_, T>) {
    for r in 0..src.rows {
        for c in 0..src.cols {
            dst.data[c * dst.ld + r] = src.data[r * src.ld + c];
        }
    }
}
