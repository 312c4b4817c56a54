//! Every path of the sparse products (`kernels::sparse`) against the scalar
//! twin and against an f64 reference.
//!
//! For each SIMD path a missing CPU feature prints "skipping <isa>", and fails
//! the test when `SPARSE_AE_REQUIRE_ISA` lists the path.
//!
//! Shapes: widths 0..=70 cover every tail and every unrolled block of both
//! vector widths, 768 the code width of the benchmark; rows with no entries,
//! repeated columns, and strided views whose gaps hold NaN that must survive.
//!
//! Tolerances:
//! - `transpose`: moves values, so every path must give the definition bit
//!   for bit (NaN payloads included), and leave the gaps of strided views;
//! - `spmm`: the SIMD bodies add the twin's products in its order without FMA,
//!   so the results are bit-identical; against the exact sum each element is
//!   within γ_m·Σ|vₑ·aₑ| (m entries in the row, γ_m = m·u/(1 − m·u), u = 2⁻²⁴);
//! - `sddmm`: both round the same f32 products and sum them in f64 in
//!   different orders, so the f64 sums differ by at most 2·n·2⁻⁵³·Σ|xᵢyᵢ| and,
//!   after each is rounded to f32, |Δ| ≤ 2.5·u·|twin| + 4·n·2⁻⁵³·Σ|xᵢyᵢ|;
//!   against the exact dot product (u per product, (n − 1)·2⁻⁵³ for the sum,
//!   u for the final rounding), |Δ| ≤ (2·u + u² + 2·n·2⁻⁵³)·Σ|xᵢyᵢ|.

mod common;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::kernels::sparse::{self, scalar};
use sparse_ae::kernels::{Csr, Isa, MatMut, MatRef};

const U: f64 = 1.0 / (1u64 << 24) as f64;

every_isa!(
    spmm_matches_twin_and_reference,
    sddmm_matches_twin_and_reference,
    transpose_moves_every_value,
);

/// A random pattern over `rows` rows with 0..=max_per_row entries each
/// (columns below `ncols`, repeats allowed), and its values.
fn pattern(rng: &mut StdRng, rows: usize, max_per_row: usize, ncols: usize) -> Pattern {
    let mut starts = vec![0];
    let mut cols = Vec::new();
    for _ in 0..rows {
        let n = rng.random_range(0..=max_per_row);
        for _ in 0..n {
            cols.push(rng.random_range(0..ncols as u32));
        }
        starts.push(cols.len());
    }
    let vals = cols.iter().map(|_| rng.random_range(-2.0..2.0)).collect();
    Pattern { starts, cols, vals }
}

struct Pattern {
    starts: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

fn matrix(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The shapes swept: (rows, entries per row at most, rows of the dense
/// operand, width, padding of the row strides).
fn shapes() -> Vec<(usize, usize, usize, usize, usize)> {
    let mut v: Vec<_> = (0..=70).map(|w| (5, 6, 9, w, w % 3)).collect();
    v.extend([(3, 40, 50, 768, 0), (4, 3, 2, 129, 5), (1, 0, 1, 16, 0)]);
    v.push((0, 0, 4, 8, 0));
    v
}

fn spmm_matches_twin_and_reference(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(11);
    for (rows, per_row, arows, width, pad) in shapes() {
        let p = pattern(&mut rng, rows, per_row, arows);
        let lda = width + pad;
        let a = matrix(&mut rng, arows * lda);
        let ldc = width + 2 * pad;
        let mut c_simd = vec![f32::NAN; rows * ldc];
        let mut c_twin = c_simd.clone();
        let s = Csr {
            starts: &p.starts,
            cols: &p.cols,
            vals: &p.vals,
        };
        let a_m = MatRef::new(&a, arows, width).with_ld(lda);
        sparse::spmm(
            isa,
            s,
            a_m,
            MatMut::new(&mut c_simd, rows, width).with_ld(ldc),
        );
        scalar::spmm(s, a_m, MatMut::new(&mut c_twin, rows, width).with_ld(ldc));
        for r in 0..rows {
            for i in 0..ldc {
                let (got, twin) = (c_simd[r * ldc + i], c_twin[r * ldc + i]);
                if i >= width {
                    assert!(got.is_nan(), "{isa}: gap of C at ({r}, {i}) was written");
                    continue;
                }
                assert_eq!(
                    got.to_bits(),
                    twin.to_bits(),
                    "{isa}: width {width} ({r}, {i})"
                );
                let entries = p.starts[r]..p.starts[r + 1];
                let (mut exact, mut mag) = (0.0f64, 0.0f64);
                for e in entries.clone() {
                    let t = p.vals[e] as f64 * a[p.cols[e] as usize * lda + i] as f64;
                    exact += t;
                    mag += t.abs();
                }
                let m = entries.len() as f64;
                let gamma = m * U / (1.0 - m * U);
                assert!(
                    (got as f64 - exact).abs() <= gamma * mag,
                    "{isa}: width {width} ({r}, {i}): {got} vs {exact}"
                );
            }
        }
    }
}

fn sddmm_matches_twin_and_reference(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(12);
    for (rows, per_row, yrows, width, pad) in shapes() {
        let p = pattern(&mut rng, rows, per_row, yrows);
        let (ldx, ldy) = (width + pad, width + 2 * pad);
        let x = matrix(&mut rng, rows * ldx);
        let y = matrix(&mut rng, yrows * ldy);
        let nnz = p.cols.len();
        let mut o_simd = vec![f32::NAN; nnz];
        let mut o_twin = o_simd.clone();
        let x_m = MatRef::new(&x, rows, width).with_ld(ldx);
        let y_m = MatRef::new(&y, yrows, width).with_ld(ldy);
        sparse::sddmm(isa, &p.starts, &p.cols, x_m, y_m, &mut o_simd);
        scalar::sddmm(&p.starts, &p.cols, x_m, y_m, &mut o_twin);
        for r in 0..rows {
            for e in p.starts[r]..p.starts[r + 1] {
                let j = p.cols[e] as usize;
                let (mut exact, mut mag) = (0.0f64, 0.0f64);
                for i in 0..width {
                    let t = x[r * ldx + i] as f64 * y[j * ldy + i] as f64;
                    exact += t;
                    mag += t.abs();
                }
                let n = width as f64;
                let (got, twin) = (o_simd[e] as f64, o_twin[e] as f64);
                let eps53 = 2.0 * n * U * U / 32.0;
                assert!(
                    (got - twin).abs() <= 2.5 * U * twin.abs() + 2.0 * eps53 * mag,
                    "{isa}: width {width} entry {e}: {got} vs twin {twin}"
                );
                assert!(
                    (got - exact).abs() <= (2.0 * U + U * U + eps53) * mag,
                    "{isa}: width {width} entry {e}: {got} vs exact {exact}"
                );
            }
        }
    }
}

fn transpose_moves_every_value(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(14);
    let mut shapes: Vec<(usize, usize)> = (0..=40).map(|r| (r, (r * 7) % 37 + 1)).collect();
    shapes.extend([
        (768, 64),
        (64, 64),
        (17, 100),
        (0, 5),
        (5, 0),
        (33, 1),
        (40, 70),
        (31, 49),
    ]);
    for (rows, cols) in shapes {
        let (sld, dld) = (cols + rows % 3, rows + 2);
        let mut src: Vec<f32> = (0..rows * sld)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        if let Some(v) = src.get_mut(rows * sld / 2) {
            *v = f32::from_bits(0x7fc0_1234);
        }
        let mut dst = vec![f32::from_bits(0x7fa0_0001); cols * dld];
        sparse::transpose(
            isa,
            MatRef::new(&src, rows, cols).with_ld(sld),
            MatMut::new(&mut dst, cols, rows).with_ld(dld),
        );
        for c in 0..cols {
            for r in 0..dld {
                let got = dst[c * dld + r].to_bits();
                let want = if r < rows {
                    src[r * sld + c].to_bits()
                } else {
                    0x7fa0_0001
                };
                assert_eq!(got, want, "{isa}: {rows}×{cols} at ({c}, {r})");
            }
        }
    }
}

/// Sub-blocks of rows give the same results as the whole matrix: the
/// indices in `starts` are absolute, and `sddmm` writes the block's entries.
#[test]
fn row_blocks_match_the_whole() {
    let mut rng = StdRng::seed_from_u64(13);
    let (rows, arows, width) = (9, 20, 37);
    let p = pattern(&mut rng, rows, 5, arows);
    let a = matrix(&mut rng, arows * width);
    let x = matrix(&mut rng, rows * width);
    let s = Csr {
        starts: &p.starts,
        cols: &p.cols,
        vals: &p.vals,
    };
    let a_m = MatRef::new(&a, arows, width);
    let mut whole = vec![0.0; rows * width];
    sparse::spmm(Isa::active(), s, a_m, MatMut::new(&mut whole, rows, width));
    let mut dots = vec![0.0; p.cols.len()];
    let x_m = MatRef::new(&x, rows, width);
    sparse::sddmm(Isa::active(), &p.starts, &p.cols, x_m, a_m, &mut dots);
    for (r0, r1) in [(0, 4), (4, 9), (2, 3)] {
        let sub = Csr {
            starts: &p.starts[r0..=r1],
            ..s
        };
        let mut part = vec![0.0; (r1 - r0) * width];
        sparse::spmm(
            Isa::active(),
            sub,
            a_m,
            MatMut::new(&mut part, r1 - r0, width),
        );
        assert_eq!(part, whole[r0 * width..r1 * width]);
        let (e0, e1) = (p.starts[r0], p.starts[r1]);
        let mut d = vec![0.0; e1 - e0];
        let xs = MatRef::new(&x[r0 * width..r1 * width], r1 - r0, width);
        sparse::sddmm(Isa::active(), &p.starts[r0..=r1], &p.cols, xs, a_m, &mut d);
        assert_eq!(d, dots[e0..e1]);
    }
}

#[test]
#[should_panic(expected = "column 20 out of range")]
fn spmm_rejects_a_column_out_of_range() {
    let a = vec![0.0f32; 20 * 3];
    let mut c = vec![0.0f32; 3];
    let s = Csr {
        starts: &[0, 2],
        cols: &[1, 20],
        vals: &[1.0, 1.0],
    };
    sparse::spmm(
        Isa::Scalar,
        s,
        MatRef::new(&a, 20, 3),
        MatMut::new(&mut c, 1, 3),
    );
}

#[test]
#[should_panic(expected = "decreases")]
fn sddmm_rejects_decreasing_starts() {
    let y = vec![0.0f32; 6];
    let x = vec![0.0f32; 6];
    let mut out = vec![0.0f32; 0];
    sparse::sddmm(
        Isa::Scalar,
        &[1, 0, 1],
        &[0],
        MatRef::new(&x, 2, 3),
        MatRef::new(&y, 2, 3),
        &mut out,
    );
}
